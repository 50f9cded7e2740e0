"""template.yaml: the wiring, the guarantees and the lint, checked without AWS.

The local runtime rebuilds its routing from the EventBridgeRule events in template.yaml, so these
tests pin what it relies on (event names, literal Patterns, EventBusName absent or !Ref EventBus)
as well as what a deployment must keep (retries and dead letters, TLS-only encrypted buckets with
access logs and lifecycle rules, table keys and indexes, log retention, least-privilege IAM scoped
to the "<NamePrefix>--" names the library gives every SageMaker resource).
"""

from __future__ import annotations

import copy
import fnmatch
import itertools
import json
import re
from pathlib import Path
from typing import Any

import pytest
from cfnlint.decode import cfn_yaml
from datadrop import algorithms as algorithm_registry
from datadrop import names, state
from datadrop.algorithms import DataFacts, UnsupportedRegion, jumpstart
from datadrop.algorithms import images as algorithms

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE_PATH = ROOT / "template.yaml"
EVENTS_DIR = ROOT / "events"

# Function -> {event name -> (bus, source)}; bus None is the default bus.
EXPECTED_WIRING: dict[str, dict[str, tuple[str | None, str]]] = {
    "PrepareFunction": {"S3ObjectCreated": (None, "aws.s3")},
    "TrainFunction": {"DatasetPrepared": ("EventBus", "datadrop")},
    "EvaluateFunction": {
        "TrainingJobStateChange": (None, "aws.sagemaker"),
        "TransformJobStateChange": (None, "aws.sagemaker"),
        "TuningJobStateChange": (None, "aws.sagemaker"),
        "ModelPackageStateChange": (None, "aws.sagemaker"),
    },
    "DeployFunction": {
        "ModelApproved": ("EventBus", "datadrop"),
        "EndpointStateChange": (None, "aws.sagemaker"),
    },
    "SweepFunction": {},  # scheduled (ScheduleV2), not an EventBridgeRule: the local runtime runs it itself
}

EXPECTED_ENVIRONMENT = {
    "STATE_TABLE_NAME",
    "IDEMPOTENCY_TABLE_NAME",
    "EVENT_BUS_NAME",
    "DATA_BUCKET_NAME",
    "ARTIFACT_BUCKET_NAME",
    "ARTIFACT_PREFIX",
    "NAME_PREFIX",
    "DEFAULT_ACCURACY_THRESHOLD",
    "SAGEMAKER_ROLE_ARN",
    "TRAINING_INSTANCE_TYPE",
    "TRANSFORM_INSTANCE_TYPE",
    "ENDPOINT_INSTANCE_TYPE",
    "STUCK_AFTER_MINUTES",
    "GIVE_UP_AFTER_HOURS",
    "DATADROP_COMPUTE",
    "POWERTOOLS_SERVICE_NAME",
    "POWERTOOLS_LOG_LEVEL",
    "POWERTOOLS_METRICS_NAMESPACE",
}

# Sample event -> the rule that must receive it (names as deployed: NamePrefix "datadrop").
SAMPLE_EVENT_ROUTES = {
    "prepare_s3_object_created.json": ("PrepareFunction", "S3ObjectCreated"),
    "evaluate_training_job_completed.json": ("EvaluateFunction", "TrainingJobStateChange"),
    "evaluate_training_job_failed.json": ("EvaluateFunction", "TrainingJobStateChange"),
    "evaluate_transform_job_completed.json": ("EvaluateFunction", "TransformJobStateChange"),
    "evaluate_tuning_job_completed.json": ("EvaluateFunction", "TuningJobStateChange"),
    "evaluate_tuning_training_job_completed.json": ("EvaluateFunction", "TrainingJobStateChange"),
    "deploy_endpoint_in_service.json": ("DeployFunction", "EndpointStateChange"),
}
SAMPLE_DATA_BUCKET = "datadrop-data-example"

# What the library names the resources of one run of stack "datadrop", and of a stack whose prefix
# starts the same way ("datadrop-x"): the template's filters must take the first and never the second.
OUR_RUN = names.RunNames("datadrop", "penguins", "0123456789ab", 1)
OUR_NAMES = {
    "TrainingJobName": OUR_RUN.training_job,
    "TransformJobName": OUR_RUN.transform_job,
    "EndpointName": names.endpoint_name("datadrop", "penguins"),
}
OTHER_STACK_RUN = names.RunNames("datadrop-x", "penguins", "0123456789ab", 1)
# The actions each function calls on DynamoDB (the state table's conditional writes and queries,
# and Powertools idempotency).
STATE_TABLE_ACTIONS = {"dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:Query"}
# Only the steps that read a version's runs query the table (the IAM parity test measures it).
QUERIES_RUNS = {"TrainFunction", "EvaluateFunction", "SweepFunction"}
# No GetItem: Powertools 3 reads a duplicate's record from the failed conditional PutItem (tests/e2e/test_iam_parity.py).
IDEMPOTENCY_TABLE_ACTIONS = {"dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"}
S3_WRITE_ACTIONS = {"s3:PutObject", "s3:DeleteObject", "s3:DeleteObjectVersion", "s3:PutObjectAcl", "s3:RestoreObject"}


# ----------------------------------------------------------------------------- helpers


def _plain(node: Any) -> Any:
    """cfn-lint's node classes -> plain dict/list/str, so comparisons and json.dumps are simple."""
    return json.loads(json.dumps(node))


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return _plain(cfn_yaml.load(str(TEMPLATE_PATH)))


@pytest.fixture(scope="module")
def resources(template: dict[str, Any]) -> dict[str, Any]:
    return template["Resources"]


def _of_type(resources: dict[str, Any], type_: str) -> dict[str, dict[str, Any]]:
    return {name: res for name, res in resources.items() if res["Type"] == type_}


def _functions(resources: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return _of_type(resources, "AWS::Serverless::Function")


def _rules(resources: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """(function, event name, event properties) for every EventBridgeRule event."""
    found = []
    for function_name, function in _functions(resources).items():
        for event_name, event in function["Properties"].get("Events", {}).items():
            if event["Type"] == "EventBridgeRule":
                found.append((function_name, event_name, event["Properties"]))
    return found


def _rule(resources: dict[str, Any], function: str, event: str) -> dict[str, Any]:
    return resources[function]["Properties"]["Events"][event]["Properties"]


def _resolve(node: Any, values: dict[str, str]) -> Any:
    """Resolve the !Ref / !Sub a Pattern may hold, as CloudFormation would with these values."""
    if isinstance(node, list):
        return [_resolve(item, values) for item in node]
    if isinstance(node, dict):
        if set(node) == {"Ref"}:
            return values[node["Ref"]]
        if set(node) == {"Fn::Sub"} and isinstance(node["Fn::Sub"], str):
            return re.sub(r"\$\{([^}!]+)\}", lambda m: values[m.group(1)], node["Fn::Sub"])
        return {key: _resolve(value, values) for key, value in node.items()}
    return node


def _deployed_pattern(resources: dict[str, Any], function: str, event: str) -> dict[str, Any]:
    return _resolve(
        _rule(resources, function, event)["Pattern"],
        {"NamePrefix": "datadrop", "DataBucket": SAMPLE_DATA_BUCKET},
    )


def _matches(pattern: dict[str, Any], event: dict[str, Any]) -> bool:
    from moto.events.models import EventPattern  # EventBridge's matcher, as the local runtime uses it

    return EventPattern.load(json.dumps(pattern)).matches_event(event)


def _statements(policy_document: dict[str, Any]) -> list[dict[str, Any]]:
    statements = policy_document["Statement"]
    return statements if isinstance(statements, list) else [statements]


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _inline_statements(function: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        statement
        for policy in function["Properties"].get("Policies", [])
        if isinstance(policy, dict) and "Statement" in policy
        for statement in _statements(policy)
    ]


def _policy_templates(function: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [
        (name, args)
        for policy in function["Properties"].get("Policies", [])
        if isinstance(policy, dict) and "Statement" not in policy
        for name, args in policy.items()
    ]


def _arn(resource: Any) -> str:
    """A resource of a policy statement as text: !Sub's string, !GetAtt X.Arn as "${X.Arn}"."""
    if isinstance(resource, str):
        return resource
    if "Fn::Sub" in resource:
        sub = resource["Fn::Sub"]
        return sub if isinstance(sub, str) else sub[0]
    if "Fn::GetAtt" in resource:
        return "${" + ".".join(resource["Fn::GetAtt"]) + "}"
    if "Ref" in resource:
        return "${" + resource["Ref"] + "}"
    raise AssertionError(f"unexpected resource {resource}")


def _subs(node: Any) -> list[str]:
    """Every !Sub string anywhere under node."""
    if isinstance(node, list):
        return [text for item in node for text in _subs(item)]
    if isinstance(node, dict):
        found = []
        for key, value in node.items():
            if key == "Fn::Sub":
                found.append(value if isinstance(value, str) else value[0])
                if not isinstance(value, str):
                    found.extend(_subs(value[1]))
            else:
                found.extend(_subs(value))
        return found
    return []


def _branches(node: Any) -> list[Any]:
    """A list whose items may be !If: every item either branch may give (none for AWS::NoValue)."""
    found = []
    for item in _as_list(node):
        if isinstance(item, dict) and set(item) == {"Fn::If"}:
            found.extend(_branches(item["Fn::If"][1:]))
        elif item != {"Ref": "AWS::NoValue"}:
            found.append(item)
    return found


def _role_statements(resources: dict[str, Any], name: str) -> list[dict[str, Any]]:
    """The inline statements of a function or of the SageMaker execution role (a statement under
    !If counts: it exists in some region)."""
    if resources[name]["Type"] == "AWS::IAM::Role":
        return [
            statement
            for policy in resources[name]["Properties"]["Policies"]
            for statement in _branches(_statements(policy["PolicyDocument"]))
        ]
    return _inline_statements(resources[name])


def _grants(statements: list[dict[str, Any]]) -> set[tuple[str, str]]:
    """(action, resource) for every Allow statement."""
    return {
        (action, _arn(resource))
        for statement in statements
        if statement["Effect"] == "Allow"
        for action in _as_list(statement["Action"])
        for resource in _branches(statement["Resource"])
    }


def _allowed(statements: list[dict[str, Any]], action: str, arn: str) -> bool:
    """Whether an Allow statement grants action on this concrete resource text (IAM's * matches anything)."""
    return any(granted_action == action and fnmatch.fnmatchcase(arn, pattern) for granted_action, pattern in _grants(statements))


def _skips(resource: dict[str, Any]) -> dict[str, str]:
    return {skip["id"]: skip.get("comment", "") for skip in resource.get("Metadata", {}).get("checkov", {}).get("skip", [])}


# ----------------------------------------------------------------------------- functions


def test_functions_and_their_events_are_the_ones_the_local_runtime_expects(resources):
    rules: dict[str, set[str]] = {name: set() for name in _functions(resources)}
    for function, event, _ in _rules(resources):
        rules[function].add(event)
    assert rules == {name: set(events) for name, events in EXPECTED_WIRING.items()}
    not_rules = {
        (name, event_name, event["Type"])
        for name, function in _functions(resources).items()
        for event_name, event in function["Properties"].get("Events", {}).items()
        if event["Type"] != "EventBridgeRule"
    }
    assert not_rules == {("SweepFunction", "Sweep", "ScheduleV2")}


def _layers(template: dict[str, Any], function: dict[str, Any]) -> list[Any]:
    """A function's layers as SAM deploys them: the Globals list first, then the function's own."""
    return template["Globals"]["Function"].get("Layers", []) + function["Properties"].get("Layers", [])


def test_every_function_is_python312_and_uses_the_library_layer(template, resources):
    globals_ = template["Globals"]["Function"]
    assert globals_["Runtime"] == "python3.12"
    assert globals_["Handler"] == "app.handler"
    assert globals_["Layers"] == [{"Ref": "LibraryLayer"}]
    for name, function in _functions(resources).items():
        properties = function["Properties"]
        assert properties.get("Runtime", globals_["Runtime"]) == "python3.12", name
        assert {"Ref": "LibraryLayer"} in _layers(template, function), name


def test_polars_layer_is_attached_to_the_prepare_function_only(template, resources):
    # polars is most of the code size; tests/unit/test_layers.py checks only prepare's code imports it.
    layered = {name for name, function in _functions(resources).items() if {"Ref": "PolarsLayer"} in _layers(template, function)}
    assert layered == {"PrepareFunction"}
    assert _layers(template, resources["PrepareFunction"]) == [{"Ref": "LibraryLayer"}, {"Ref": "PolarsLayer"}]


@pytest.mark.parametrize(("layer", "content_uri"), [("LibraryLayer", "layers/datadrop/"), ("PolarsLayer", "layers/polars/")])
def test_layers_are_built_by_their_makefile_for_python312(resources, layer, content_uri):
    resource = resources[layer]
    assert resource["Type"] == "AWS::Serverless::LayerVersion"
    # makefile, not python3.12: SAM's python3.12 build ships no bytecode (tests/unit/test_layers.py checks the recipe).
    assert resource["Metadata"] == {"BuildMethod": "makefile", "BuildArchitecture": "x86_64"}
    assert resource["Properties"]["ContentUri"] == content_uri
    assert resource["Properties"]["CompatibleRuntimes"] == ["python3.12"]
    assert resource["Properties"]["CompatibleArchitectures"] == ["x86_64"]
    content = ROOT / content_uri
    assert (content / "Makefile").is_file()
    assert (content / "requirements.txt").is_file()


def test_library_layer_ships_the_library(resources):
    content = ROOT / resources["LibraryLayer"]["Properties"]["ContentUri"]
    assert (content / "datadrop" / "__init__.py").is_file()


def test_every_code_uri_is_a_directory_of_the_repository(resources):
    for name, function in _functions(resources).items():
        code_uri = function["Properties"]["CodeUri"]
        expected = f"functions/{name.removesuffix('Function').lower()}/"
        assert code_uri == expected, name
        assert (ROOT / code_uri).is_dir(), f"{name}: {code_uri} does not exist"


def test_globals_export_every_setting_the_library_reads(template):
    variables = template["Globals"]["Function"]["Environment"]["Variables"]
    assert set(variables) >= EXPECTED_ENVIRONMENT
    assert variables["DATADROP_COMPUTE"] == "sagemaker"
    assert variables["EVENT_BUS_NAME"] == {"Ref": "EventBus"}
    assert variables["SAGEMAKER_ROLE_ARN"] == {"Fn::GetAtt": ["SageMakerExecutionRole", "Arn"]}
    assert variables["NAME_PREFIX"] == {"Ref": "NamePrefix"}
    assert variables["STUCK_AFTER_MINUTES"] == {"Ref": "StuckAfterMinutes"}
    assert variables["GIVE_UP_AFTER_HOURS"] == {"Ref": "GiveUpAfterHours"}
    # Everything Settings.from_environment reads, but the region (Lambda sets AWS_REGION itself).
    from datadrop.local.runtime import local_settings

    assert set(variables) >= set(local_settings().as_environment()) - {"AWS_DEFAULT_REGION"}


def test_every_function_has_its_own_sqs_dead_letter_queue(resources):
    targets = []
    for name, function in _functions(resources).items():
        dlq = function["Properties"]["DeadLetterQueue"]
        assert dlq["Type"] == "SQS", name
        queue = dlq["TargetArn"]["Fn::GetAtt"][0]
        assert resources[queue]["Type"] == "AWS::SQS::Queue", name
        targets.append(queue)
    assert len(set(targets)) == len(targets)


def test_every_function_retries_twice_within_the_age_its_trigger_allows(resources):
    """Lambda's own retries of a failed invocation; the dead-letter queue is the one failure sink."""
    for name, function in _functions(resources).items():
        config = function["Properties"]["EventInvokeConfig"]
        assert config["MaximumRetryAttempts"] == 2, name
        assert "DestinationConfig" not in config, f"{name}: failures go to its DeadLetterQueue, not to a destination too"
        trigger_ages = {
            event["Properties"]["RetryPolicy"]["MaximumEventAgeInSeconds"] for event in function["Properties"]["Events"].values()
        }
        assert trigger_ages == {config["MaximumEventAgeInSeconds"]}, name


def test_every_function_logs_to_its_own_group_with_retention(resources):
    groups = []
    for name, function in _functions(resources).items():
        group = function["Properties"]["LoggingConfig"]["LogGroup"]["Ref"]
        properties = resources[group]["Properties"]
        assert resources[group]["Type"] == "AWS::Logs::LogGroup", name
        assert properties["RetentionInDays"] == {"Ref": "LogRetentionDays"}, name
        assert properties["LogGroupName"] == {"Fn::Sub": f"/aws/lambda/${{AWS::StackName}}/{name}"}, name
        groups.append(group)
    assert len(set(groups)) == len(groups)


def test_sagemaker_job_log_groups_are_created_only_on_request_and_kept(template, resources):
    """/aws/sagemaker/TrainingJobs and TransformJobs are shared by the whole account and region."""
    assert template["Parameters"]["CreateSageMakerLogGroups"]["Default"] == "false"
    assert template["Conditions"]["OwnsSageMakerLogGroups"] == {"Fn::Equals": [{"Ref": "CreateSageMakerLogGroups"}, "true"]}
    owned = {
        resource["Properties"]["LogGroupName"]: resource
        for resource in _of_type(resources, "AWS::Logs::LogGroup").values()
        if not isinstance(resource["Properties"]["LogGroupName"], dict)
    }
    assert set(owned) == {"/aws/sagemaker/TrainingJobs", "/aws/sagemaker/TransformJobs"}
    for name, resource in owned.items():
        assert resource["Condition"] == "OwnsSageMakerLogGroups", name
        assert resource["DeletionPolicy"] == "Retain" and resource["UpdateReplacePolicy"] == "Retain", name
        assert resource["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionDays"}, name


@pytest.mark.parametrize(
    ("function", "parameter", "condition"),
    [
        ("TrainFunction", "TrainConcurrency", "ReservesTrainConcurrency"),
        ("SweepFunction", "SweepConcurrency", "ReservesSweepConcurrency"),
    ],
)
def test_reserved_concurrency_is_a_parameter_where_zero_reserves_nothing(template, resources, function, parameter, condition):
    assert resources[function]["Properties"]["ReservedConcurrentExecutions"] == {
        "Fn::If": [condition, {"Ref": parameter}, {"Ref": "AWS::NoValue"}]
    }
    assert template["Conditions"][condition] == {"Fn::Not": [{"Fn::Equals": [{"Ref": parameter}, "0"]}]}
    assert template["Parameters"][parameter]["Type"] == "Number"
    assert int(template["Parameters"][parameter]["MinValue"]) == 0
    assert int(template["Parameters"]["TrainConcurrency"]["Default"]) == 2
    assert int(template["Parameters"]["SweepConcurrency"]["Default"]) == 1


def test_functions_without_reserved_concurrency_say_why(resources):
    for name, function in _functions(resources).items():
        if "ReservedConcurrentExecutions" not in function["Properties"]:
            assert "reservation" in _skips(function).get("CKV_AWS_115", ""), name
        else:
            assert "CKV_AWS_115" not in _skips(function), name


# ----------------------------------------------------------------------------- the sweeper


def test_sweeper_runs_every_five_minutes_on_eventbridge_scheduler(resources):
    properties = resources["SweepFunction"]["Properties"]
    assert properties["Timeout"] == 300
    schedule = properties["Events"]["Sweep"]
    assert schedule["Type"] == "ScheduleV2"
    assert schedule["Properties"]["ScheduleExpression"] == "rate(5 minutes)"
    # Schedule names are unique per account: SAM's default (the logical id) would clash between stacks.
    assert schedule["Properties"]["Name"] == {"Fn::Sub": "${NamePrefix}--sweep"}
    retry = schedule["Properties"]["RetryPolicy"]
    assert retry["MaximumRetryAttempts"] >= 1
    assert 60 <= retry["MaximumEventAgeInSeconds"] <= 3600
    dead_letter = schedule["Properties"]["DeadLetterConfig"]["Arn"]["Fn::GetAtt"][0]
    assert dead_letter == "EventDeliveryDeadLetterQueue"


def test_sweeper_reads_the_attention_index(resources):
    """The index the library queries for stuck work (datadrop.state) exists, and only the sweeper queries it."""
    properties = resources["StateTable"]["Properties"]
    indexes = {index["IndexName"]: index for index in properties["GlobalSecondaryIndexes"]}
    index = indexes[state.ATTENTION_INDEX]
    assert index["KeySchema"] == [
        {"AttributeName": "attention", "KeyType": "HASH"},
        {"AttributeName": "updated_at", "KeyType": "RANGE"},
    ]
    assert index["Projection"] == {"ProjectionType": "ALL"}
    assert {"AttributeName": "attention", "AttributeType": "S"} in properties["AttributeDefinitions"]
    assert {"AttributeName": "updated_at", "AttributeType": "S"} in properties["AttributeDefinitions"]
    index_arn = f"${{StateTable.Arn}}/index/{state.ATTENTION_INDEX}"
    readers = {name for name in _functions(resources) if _allowed(_role_statements(resources, name), "dynamodb:Query", index_arn)}
    assert readers == {"SweepFunction"}


def test_sweeper_may_do_what_train_evaluate_and_deploy_do(resources):
    """It continues their work, so it holds every SageMaker grant they hold (and SageMaker's truth: Describe*)."""
    sweeper = _grants(_role_statements(resources, "SweepFunction"))
    for step in ("TrainFunction", "EvaluateFunction", "DeployFunction"):
        needed = {grant for grant in _grants(_role_statements(resources, step)) if grant[0].startswith("sagemaker:")}
        assert needed <= sweeper, f"sweeper lacks {sorted(needed - sweeper)} of {step}"
    actions = {action for action, _ in sweeper}
    assert {"sagemaker:DescribeTrainingJob", "sagemaker:DescribeTransformJob", "sagemaker:DescribeEndpoint"} <= actions
    assert "events:PutEvents" in actions


# ----------------------------------------------------------------------------- rules


def test_every_rule_retries_and_dead_letters(resources):
    rules = _rules(resources)
    assert len(rules) == sum(len(events) for events in EXPECTED_WIRING.values())
    for function, event, properties in rules:
        assert properties["RetryPolicy"] == {"MaximumRetryAttempts": 4, "MaximumEventAgeInSeconds": 3600}, event
        dead_letter = properties["DeadLetterConfig"]
        if "Arn" in dead_letter:
            queue = dead_letter["Arn"]["Fn::GetAtt"][0]
            assert resources[queue]["Type"] == "AWS::SQS::Queue", event
        else:
            assert dead_letter.get("Type") == "SQS", f"{function}.{event}"


def test_event_delivery_dead_letter_queue_accepts_exactly_our_rules(resources):
    queues = {
        properties["DeadLetterConfig"]["Arn"]["Fn::GetAtt"][0]
        for _, _, properties in _rules(resources)
        if "Arn" in properties["DeadLetterConfig"]
    }
    policies = _of_type(resources, "AWS::SQS::QueuePolicy")
    for queue in queues:
        allows = [
            statement
            for policy in policies.values()
            if {"Ref": queue} in policy["Properties"]["Queues"]
            for statement in _statements(policy["Properties"]["PolicyDocument"])
            if statement["Effect"] == "Allow" and statement["Principal"] == {"Service": "events.amazonaws.com"}
        ]
        assert allows, f"EventBridge may not send to {queue}"
        source_arns = {
            arn["Fn::GetAtt"][0] for statement in allows for arn in statement["Condition"]["ArnEquals"]["aws:SourceArn"]
        }
        # SAM names the rule of event E of function F "FE".
        assert source_arns == {function + event for function, event, _ in _rules(resources)}


def test_rules_keep_the_shape_the_local_runtime_parses(resources):
    for function, event, properties in _rules(resources):
        bus, source = EXPECTED_WIRING[function][event]
        assert isinstance(properties["Pattern"], dict), event
        assert properties["Pattern"]["source"] == [source], event
        if bus is None:
            assert "EventBusName" not in properties, event
        else:
            assert properties["EventBusName"] == {"Ref": bus}, event
        assert set(properties) <= {"Pattern", "EventBusName", "RetryPolicy", "DeadLetterConfig"}, event


def test_s3_rule_listens_to_incoming_objects_of_the_data_bucket(resources):
    pattern = _rule(resources, "PrepareFunction", "S3ObjectCreated")["Pattern"]
    assert pattern["detail-type"] == ["Object Created"]
    assert pattern["detail"]["bucket"]["name"] == [{"Ref": "DataBucket"}]
    assert pattern["detail"]["object"]["key"] == [{"prefix": "incoming/"}]


@pytest.mark.parametrize(
    ("function", "event", "name_field"),
    [
        ("EvaluateFunction", "TrainingJobStateChange", "TrainingJobName"),
        ("EvaluateFunction", "TransformJobStateChange", "TransformJobName"),
        ("EvaluateFunction", "TuningJobStateChange", "HyperParameterTuningJobName"),
        ("DeployFunction", "EndpointStateChange", "EndpointName"),
    ],
)
def test_sagemaker_rules_only_take_our_resources(resources, function, event, name_field):
    detail = _rule(resources, function, event)["Pattern"]["detail"]
    assert detail[name_field] == [{"prefix": {"Fn::Sub": "${NamePrefix}--"}}]


def test_every_name_prefix_filter_ends_at_the_delimiter(template):
    """Wherever the template names our SageMaker resources (rule filters, IAM ARNs, the schedule),
    NamePrefix is followed by "--", which no other stack's prefix can produce."""
    uses = [text for text in _subs(template["Resources"]) if "${NamePrefix}" in text]
    assert len(uses) >= 25
    for text in uses:
        assert all(text[match.end() :].startswith("--") for match in re.finditer(r"\$\{NamePrefix\}", text)), text


def test_name_prefixes_cannot_shadow_each_other(template):
    """No valid prefix followed by "--" starts another valid prefix followed by "--"."""
    pattern = re.compile(template["Parameters"]["NamePrefix"]["AllowedPattern"])
    candidates = ["".join(chars) for length in range(1, 7) for chars in itertools.product("a1-", repeat=length)]
    valid = [prefix for prefix in candidates if pattern.fullmatch(prefix)]
    assert "a-1" in valid and "a--1" not in valid and "a-" not in valid
    for ours, theirs in itertools.permutations(valid, 2):
        assert not f"{theirs}--".startswith(f"{ours}--"), (ours, theirs)


@pytest.mark.parametrize(
    ("function", "event", "status_field"),
    [
        ("EvaluateFunction", "TrainingJobStateChange", "TrainingJobStatus"),
        ("EvaluateFunction", "TransformJobStateChange", "TransformJobStatus"),
        ("EvaluateFunction", "TuningJobStateChange", "HyperParameterTuningJobStatus"),
    ],
)
def test_job_rules_only_take_terminal_states(resources, function, event, status_field):
    detail = _rule(resources, function, event)["Pattern"]["detail"]
    assert sorted(detail[status_field]) == ["Completed", "Failed", "Stopped"]


def _named_as_the_library_names(event: dict[str, Any], run: names.RunNames = OUR_RUN) -> dict[str, Any]:
    """The sample with its SageMaker resource names as datadrop.names gives them to `run`."""
    changed = copy.deepcopy(event)
    library_names = {
        "TrainingJobName": run.training_job,
        "TransformJobName": run.transform_job,
        "EndpointName": names.endpoint_name(run.prefix, run.dataset),
        "HyperParameterTuningJobName": names.tuning_job_name(run.prefix, run.dataset, run.version, run.attempt),
    }
    for field, value in library_names.items():
        if field in changed["detail"]:
            changed["detail"][field] = value
    return changed


@pytest.mark.parametrize("sample", sorted(SAMPLE_EVENT_ROUTES))
def test_sample_event_reaches_exactly_its_rule(resources, sample):
    """Each documented event shape, carrying the names the library gives our resources."""
    event = _named_as_the_library_names(json.loads((EVENTS_DIR / sample).read_text()))
    matched = {
        (function, name)
        for function, name, _ in _rules(resources)
        if _matches(_deployed_pattern(resources, function, name), event)
    }
    assert matched == {SAMPLE_EVENT_ROUTES[sample]}


@pytest.mark.parametrize("sample", sorted(SAMPLE_EVENT_ROUTES))
def test_sample_event_as_written_reaches_exactly_its_rule(resources, sample):
    """The samples themselves (for `sam local invoke -e` and the docs) carry names datadrop acts on."""
    event = json.loads((EVENTS_DIR / sample).read_text())
    matched = {
        (function, name)
        for function, name, _ in _rules(resources)
        if _matches(_deployed_pattern(resources, function, name), event)
    }
    assert matched == {SAMPLE_EVENT_ROUTES[sample]}


def _with(event: dict[str, Any], path: tuple[str, ...], value: Any) -> dict[str, Any]:
    changed = copy.deepcopy(event)
    node = changed
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return changed


@pytest.mark.parametrize(
    ("sample", "path", "value"),
    [
        ("prepare_s3_object_created.json", ("detail", "object", "key"), "config/penguins.yaml"),
        ("prepare_s3_object_created.json", ("detail", "object", "key"), "penguins/incoming/penguins.csv"),
        ("prepare_s3_object_created.json", ("detail", "bucket", "name"), "someone-elses-bucket"),
        ("evaluate_training_job_completed.json", ("detail", "TrainingJobName"), "kmeans-1"),
        ("evaluate_training_job_completed.json", ("detail", "TrainingJobStatus"), "InProgress"),
        # Another stack whose prefix starts like ours ("datadrop-x"), and the old single-hyphen names.
        ("evaluate_training_job_completed.json", ("detail", "TrainingJobName"), OTHER_STACK_RUN.training_job),
        ("evaluate_training_job_completed.json", ("detail", "TrainingJobName"), "datadrop-penguins-0123456789ab-r01"),
        ("evaluate_transform_job_completed.json", ("detail", "TransformJobName"), "datadropx-penguins"),
        ("evaluate_transform_job_completed.json", ("detail", "TransformJobName"), OTHER_STACK_RUN.transform_job),
        ("evaluate_tuning_job_completed.json", ("detail", "HyperParameterTuningJobName"), "xgboost-211007-1457"),
        (
            "evaluate_tuning_job_completed.json",
            ("detail", "HyperParameterTuningJobName"),
            names.tuning_job_name("datadrop-x", "penguins", "0123456789ab", 1),
        ),
        ("evaluate_tuning_job_completed.json", ("detail", "HyperParameterTuningJobStatus"), "InProgress"),
        ("deploy_endpoint_in_service.json", ("detail", "EndpointName"), "MyEndpoint"),
        ("deploy_endpoint_in_service.json", ("detail", "EndpointName"), names.endpoint_name("datadrop-x", "penguins")),
        ("deploy_endpoint_in_service.json", ("detail", "EndpointName"), "datadrop-penguins"),
    ],
)
def test_events_that_are_not_ours_reach_no_rule(resources, sample, path, value):
    event = _with(_named_as_the_library_names(json.loads((EVENTS_DIR / sample).read_text())), path, value)
    assert not [
        (function, name)
        for function, name, _ in _rules(resources)
        if _matches(_deployed_pattern(resources, function, name), event)
    ]


# ----------------------------------------------------------------------------- storage


@pytest.mark.parametrize("bucket", ["DataBucket", "ArtifactBucket", "AccessLogBucket"])
def test_buckets_are_versioned_encrypted_private_and_retained(resources, bucket):
    resource = resources[bucket]
    properties = resource["Properties"]
    assert resource["DeletionPolicy"] == "Retain"
    assert resource["UpdateReplacePolicy"] == "Retain"
    assert properties["VersioningConfiguration"] == {"Status": "Enabled"}
    encryption = properties["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert encryption[0]["ServerSideEncryptionByDefault"]["SSEAlgorithm"] in {"AES256", "aws:kms"}
    assert properties["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True,
        "BlockPublicPolicy": True,
        "IgnorePublicAcls": True,
        "RestrictPublicBuckets": True,
    }
    assert properties["OwnershipControls"] == {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]}


def test_data_bucket_sends_events_to_eventbridge(resources):
    notification = resources["DataBucket"]["Properties"]["NotificationConfiguration"]
    assert notification["EventBridgeConfiguration"]["EventBridgeEnabled"] is True


@pytest.mark.parametrize("bucket", ["DataBucket", "ArtifactBucket", "AccessLogBucket"])
def test_buckets_refuse_requests_without_tls(resources, bucket):
    policies = [
        policy["Properties"]
        for policy in _of_type(resources, "AWS::S3::BucketPolicy").values()
        if policy["Properties"]["Bucket"] == {"Ref": bucket}
    ]
    assert len(policies) == 1
    denials = [
        statement
        for statement in _statements(policies[0]["PolicyDocument"])
        if statement["Effect"] == "Deny"
        and statement["Principal"] == "*"
        and _as_list(statement["Action"]) == ["s3:*"]
        and str(statement["Condition"]["Bool"]["aws:SecureTransport"]).lower() == "false"
    ]
    assert denials, f"{bucket} accepts plain HTTP"
    covered = {json.dumps(resource, sort_keys=True) for resource in _as_list(denials[0]["Resource"])}
    assert json.dumps({"Fn::GetAtt": [bucket, "Arn"]}, sort_keys=True) in covered
    assert json.dumps({"Fn::Sub": f"${{{bucket}.Arn}}/*"}, sort_keys=True) in covered


@pytest.mark.parametrize(("bucket", "prefix"), [("DataBucket", "data-bucket/"), ("ArtifactBucket", "artifact-bucket/")])
def test_buckets_log_access_to_the_access_log_bucket(resources, bucket, prefix):
    logging = resources[bucket]["Properties"]["LoggingConfiguration"]
    assert logging["DestinationBucketName"] == {"Ref": "AccessLogBucket"}
    assert logging["LogFilePrefix"] == prefix
    assert "CKV_AWS_18" not in _skips(resources[bucket])
    # The log bucket enforces bucket-owner ownership (no ACLs), so the S3 logging service writes
    # under its bucket policy: only this bucket's logs, only under its prefix, only from this account.
    (policy,) = [
        policy["Properties"]["PolicyDocument"]
        for policy in _of_type(resources, "AWS::S3::BucketPolicy").values()
        if policy["Properties"]["Bucket"] == {"Ref": "AccessLogBucket"}
    ]
    (grant,) = [
        statement
        for statement in _statements(policy)
        if statement["Effect"] == "Allow"
        and statement["Condition"]["ArnLike"]["aws:SourceArn"] == {"Fn::GetAtt": [bucket, "Arn"]}
    ]
    assert grant["Principal"] == {"Service": "logging.s3.amazonaws.com"}
    assert _as_list(grant["Action"]) == ["s3:PutObject"]
    assert grant["Resource"] == {"Fn::Sub": f"${{AccessLogBucket.Arn}}/{prefix}*"}
    assert grant["Condition"]["StringEquals"] == {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}


def test_access_log_bucket_expires_its_logs_and_says_why_it_logs_nowhere(resources):
    resource = resources["AccessLogBucket"]
    assert "LoggingConfiguration" not in resource["Properties"]
    assert "access-log bucket" in _skips(resource)["CKV_AWS_18"]
    rules = resource["Properties"]["LifecycleConfiguration"]["Rules"]
    assert any(
        rule["Status"] == "Enabled" and rule.get("ExpirationInDays") == {"Ref": "AccessLogRetentionDays"} for rule in rules
    )
    assert any(rule["Status"] == "Enabled" and "NoncurrentVersionExpiration" in rule for rule in rules)


def _lifecycle(resources: dict[str, Any], bucket: str) -> list[dict[str, Any]]:
    return [rule for rule in resources[bucket]["Properties"]["LifecycleConfiguration"]["Rules"] if rule["Status"] == "Enabled"]


@pytest.mark.parametrize("bucket", ["DataBucket", "ArtifactBucket"])
def test_noncurrent_versions_expire(resources, bucket):
    expiring = [rule for rule in _lifecycle(resources, bucket) if "NoncurrentVersionExpiration" in rule]
    assert [rule["NoncurrentVersionExpiration"] for rule in expiring] == [
        {"NoncurrentDays": {"Ref": "NoncurrentVersionRetentionDays"}}
    ]
    assert all("Prefix" not in rule and "TagFilters" not in rule for rule in expiring), "the whole bucket"
    assert any(rule.get("AbortIncompleteMultipartUpload") for rule in _lifecycle(resources, bucket))


def test_the_current_version_of_an_upload_never_expires_or_moves(resources):
    """The uploaded object is never modified or deleted: no rule touches current versions."""
    for rule in resources["DataBucket"]["Properties"]["LifecycleConfiguration"]["Rules"]:
        assert not {"ExpirationInDays", "ExpirationDate", "Transitions", "Transition"} & set(rule), rule["Id"]


def test_old_artifacts_move_to_infrequent_access_and_expire_only_on_request(template, resources):
    (rule,) = [rule for rule in _lifecycle(resources, "ArtifactBucket") if "Transitions" in rule]
    assert rule["Transitions"] == [{"StorageClass": "STANDARD_IA", "TransitionInDays": {"Ref": "ArtifactTransitionDays"}}]
    assert rule["ExpirationInDays"] == {
        "Fn::If": ["ExpiresArtifacts", {"Ref": "ArtifactExpirationDays"}, {"Ref": "AWS::NoValue"}]
    }
    assert template["Conditions"]["ExpiresArtifacts"] == {"Fn::Not": [{"Fn::Equals": [{"Ref": "ArtifactExpirationDays"}, "0"]}]}
    assert int(template["Parameters"]["ArtifactExpirationDays"]["Default"]) == 0  # served models need their files
    assert int(template["Parameters"]["ArtifactTransitionDays"]["MinValue"]) >= 30  # S3's minimum for STANDARD_IA


def test_state_table_keys_recovery_and_encryption(resources):
    properties = resources["StateTable"]["Properties"]
    assert properties["KeySchema"] == [
        {"AttributeName": "pk", "KeyType": "HASH"},
        {"AttributeName": "sk", "KeyType": "RANGE"},
    ]
    assert {"AttributeName": "pk", "AttributeType": "S"} in properties["AttributeDefinitions"]
    assert {"AttributeName": "sk", "AttributeType": "S"} in properties["AttributeDefinitions"]
    assert properties["BillingMode"] == "PAY_PER_REQUEST"
    assert properties["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True
    assert properties["SSESpecification"]["SSEEnabled"] is True


def test_idempotency_table_matches_powertools_defaults(resources):
    properties = resources["IdempotencyTable"]["Properties"]
    assert properties["KeySchema"] == [{"AttributeName": "id", "KeyType": "HASH"}]
    assert properties["AttributeDefinitions"] == [{"AttributeName": "id", "AttributeType": "S"}]
    assert properties["TimeToLiveSpecification"] == {"AttributeName": "expiration", "Enabled": True}
    assert properties["BillingMode"] == "PAY_PER_REQUEST"


def test_event_bus_is_named_after_the_stack(resources):
    assert resources["EventBus"]["Properties"]["Name"] == {"Fn::Sub": "${AWS::StackName}-events"}


# ----------------------------------------------------------------------------- IAM


def test_no_sam_policy_templates_are_left(resources):
    """Every grant is an explicit statement naming the actions the step calls (CRUD templates grant far more)."""
    for name, function in _functions(resources).items():
        assert _policy_templates(function) == [], name
        assert all(isinstance(policy, dict) and "Statement" in policy for policy in function["Properties"]["Policies"]), name


def test_no_function_may_write_to_the_data_bucket(resources):
    """The uploaded object is never modified or deleted: on DataBucket, reads only."""
    for name in _functions(resources):
        for action, resource in _grants(_role_statements(resources, name)):
            if resource.startswith("${DataBucket.Arn}"):
                assert action in {"s3:GetObject", "s3:GetObjectVersion", "s3:ListBucket"}, f"{name}: {action} on {resource}"


def test_only_prepare_reads_the_data_bucket_and_only_uploads_and_configs(resources):
    readers = {
        name
        for name in _functions(resources)
        for _, resource in _grants(_role_statements(resources, name))
        if resource.startswith("${DataBucket.Arn}")
    }
    assert readers == {"PrepareFunction"}
    statements = _role_statements(resources, "PrepareFunction")
    for key in ("incoming/penguins/penguins.csv", "config/penguins.yaml"):
        assert _allowed(statements, "s3:GetObject", f"${{DataBucket.Arn}}/{key}")
        assert _allowed(statements, "s3:GetObjectVersion", f"${{DataBucket.Arn}}/{key}")
    assert not _allowed(statements, "s3:GetObject", "${DataBucket.Arn}/elsewhere/x.csv")
    # A missing config must be a 404 (try the next file name), not a 403: that takes s3:ListBucket.
    assert _allowed(statements, "s3:ListBucket", "${DataBucket.Arn}")


def _artifact_key(relative: str) -> str:
    return "${ArtifactBucket.Arn}/" + relative


# Keys as the template sees them: under the ArtifactPrefix parameter, whatever its value.
LOCATIONS = names.DatasetLocations("artifacts", "penguins", "0123456789ab", "${ArtifactPrefix}")
PREPARED_KEYS = [
    LOCATIONS.key(relative)
    for relative in (
        LOCATIONS.TRAIN,
        LOCATIONS.VALIDATION,
        LOCATIONS.TEST_FEATURES,
        LOCATIONS.TEST_LABELS,
        LOCATIONS.RECIPE,
        LOCATIONS.PROFILE,
        LOCATIONS.SERVING_BUNDLE,
    )
]
MODEL_KEY = LOCATIONS.training_output_uri().split("/", 3)[3] + f"{OUR_RUN.training_job}/output/model.tar.gz"
PREDICTIONS_KEY = LOCATIONS.evaluation_output_uri(1).split("/", 3)[3] + "test.jsonl.out"
REPORT_KEY = LOCATIONS.report_key(1)


def test_function_s3_grants_follow_the_artifact_layout(resources):
    prepare = _role_statements(resources, "PrepareFunction")
    evaluate = _role_statements(resources, "EvaluateFunction")
    for key in PREPARED_KEYS:
        assert _allowed(prepare, "s3:PutObject", _artifact_key(key)), key
    for key in (LOCATIONS.key(LOCATIONS.TEST_LABELS), PREDICTIONS_KEY):
        assert _allowed(evaluate, "s3:GetObject", _artifact_key(key)), key
    assert _allowed(evaluate, "s3:PutObject", _artifact_key(REPORT_KEY))
    assert not _allowed(evaluate, "s3:PutObject", _artifact_key(LOCATIONS.key(LOCATIONS.TRAIN)))
    for name in ("TrainFunction", "DeployFunction"):
        assert not [grant for grant in _grants(_role_statements(resources, name)) if grant[0].startswith("s3:")], name


def test_function_dynamodb_and_event_grants(resources):
    for name in _functions(resources):
        grants = _grants(_role_statements(resources, name))
        expected = STATE_TABLE_ACTIONS if name in QUERIES_RUNS else STATE_TABLE_ACTIONS - {"dynamodb:Query"}
        assert {action for action, resource in grants if resource == "${StateTable.Arn}"} == expected, name
        idempotency = {action for action, resource in grants if resource == "${IdempotencyTable.Arn}"}
        # The sweeper is not a Powertools-idempotent handler: its every step is a conditional write.
        assert idempotency == (set() if name == "SweepFunction" else IDEMPOTENCY_TABLE_ACTIONS), name
        assert ("events:PutEvents", "${EventBus.Arn}") in grants, name
        assert {action for action, _ in grants if action.startswith(("dynamodb:", "events:"))} <= (
            STATE_TABLE_ACTIONS | IDEMPOTENCY_TABLE_ACTIONS | {"events:PutEvents"}
        ), name


def test_function_policies_are_scoped(resources):
    for name, function in _functions(resources).items():
        for statement in _inline_statements(function):
            actions = _as_list(statement["Action"])
            assert all(not action.endswith("*") for action in actions), f"{name}: wildcard action"
            assert statement["Resource"] != "*", f"{name}: {actions} on every resource"


def test_sagemaker_role_is_passed_only_to_sagemaker(resources):
    passers = set()
    for name, function in _functions(resources).items():
        for statement in _inline_statements(function):
            if "iam:PassRole" in _as_list(statement["Action"]):
                assert _as_list(statement["Action"]) == ["iam:PassRole"], name
                assert statement["Resource"] == {"Fn::GetAtt": ["SageMakerExecutionRole", "Arn"]}, name
                assert statement["Condition"] == {"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}}
                passers.add(name)
    assert passers == {"TrainFunction", "EvaluateFunction", "SweepFunction"}  # deploy only names the model evaluate made


def test_sagemaker_permissions_are_scoped_to_the_name_prefix(resources):
    """Every SageMaker name is "<NamePrefix>--..." (datadrop.names), so every grant can say so."""
    checked = 0
    for name in [*_functions(resources), "SageMakerExecutionRole"]:
        for statement in _role_statements(resources, name):
            if not any(action.startswith("sagemaker:") for action in _as_list(statement["Action"])):
                continue
            for resource in _as_list(statement["Resource"]):
                arn = _arn(resource)
                assert re.fullmatch(
                    r"arn:\$\{AWS::Partition\}:sagemaker:\$\{AWS::Region\}:\$\{AWS::AccountId\}:[a-z-]+/\$\{NamePrefix\}--\*",
                    arn,
                ), f"{name}: {arn}"
                checked += 1
    assert checked >= 20


def test_sagemaker_grants_cover_the_names_the_library_gives(resources):
    """Resolved for stack "datadrop": its names are granted; those of stack "datadrop-x" are not."""

    def granted(function: str, action: str, resource: str) -> bool:
        arn = f"arn:${{AWS::Partition}}:sagemaker:${{AWS::Region}}:${{AWS::AccountId}}:{resource}"
        return any(
            granted_action == action and fnmatch.fnmatchcase(arn, pattern.replace("${NamePrefix}", "datadrop"))
            for granted_action, pattern in _grants(_role_statements(resources, function))
        )

    def created_by(prefix: str) -> list[tuple[str, str, str]]:
        run = names.RunNames(prefix, "penguins", "0123456789ab", 1)
        return [
            ("TrainFunction", "sagemaker:CreateExperiment", f"experiment/{names.experiment_name(prefix, 'penguins')}"),
            (
                "TrainFunction",
                "sagemaker:CreateTrial",
                f"experiment-trial/{names.run_group_name(prefix, 'penguins', run.version)}",
            ),
            ("TrainFunction", "sagemaker:CreateTrainingJob", f"training-job/{run.training_job}"),
            ("EvaluateFunction", "sagemaker:CreateModel", f"model/{run.model}"),
            ("EvaluateFunction", "sagemaker:CreateTransformJob", f"transform-job/{run.transform_job}"),
            (
                "EvaluateFunction",
                "sagemaker:CreateModelPackageGroup",
                f"model-package-group/{names.model_package_group_name(prefix, 'penguins')}",
            ),
            ("DeployFunction", "sagemaker:CreateEndpointConfig", f"endpoint-config/{run.endpoint_config}"),
            ("DeployFunction", "sagemaker:CreateEndpoint", f"endpoint/{names.endpoint_name(prefix, 'penguins')}"),
        ]

    for grant in created_by("datadrop"):
        assert granted(*grant), grant
    for grant in created_by("datadrop-x"):
        assert not granted(*grant), grant


def test_sagemaker_execution_role_trusts_only_sagemaker_of_this_account(resources):
    document = resources["SageMakerExecutionRole"]["Properties"]["AssumeRolePolicyDocument"]
    (statement,) = _statements(document)
    assert statement["Principal"] == {"Service": "sagemaker.amazonaws.com"}
    assert statement["Condition"]["StringEquals"] == {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}
    assert statement["Condition"]["ArnLike"] == {
        "aws:SourceArn": {"Fn::Sub": "arn:${AWS::Partition}:sagemaker:${AWS::Region}:${AWS::AccountId}:*"}
    }


def test_sagemaker_execution_role_reaches_only_the_dataset_artifacts(resources):
    statements = _role_statements(resources, "SageMakerExecutionRole")
    s3 = {(action, resource) for action, resource in _grants(statements) if action.startswith("s3:")}
    assert not [grant for grant in s3 if "DataBucket" in grant[1]], (
        "SageMaker reads only what prepare copied to the artifact bucket"
    )
    # Besides the artifacts: JumpStart's public content, read only (the JumpStart test says which keys).
    jumpstart_content = {
        grant for grant in s3 if grant[1].startswith("arn:${AWS::Partition}:s3:::jumpstart-cache-prod-${AWS::Region}")
    }
    assert {action for action, _ in jumpstart_content} == JUMPSTART_READ_ACTIONS
    assert {resource for _, resource in s3 - jumpstart_content} <= {"${ArtifactBucket.Arn}"} | {
        resource for _, resource in s3 if resource.startswith("${ArtifactBucket.Arn}/${ArtifactPrefix}/")
    }
    for key in [*PREPARED_KEYS, MODEL_KEY]:
        assert _allowed(statements, "s3:GetObject", _artifact_key(key)), key
    for key in (MODEL_KEY, PREDICTIONS_KEY):
        assert _allowed(statements, "s3:PutObject", _artifact_key(key)), key
    for key in PREPARED_KEYS:  # the jobs write their outputs only
        assert not _allowed(statements, "s3:PutObject", _artifact_key(key)), key


# ----------------------------------------------------------------------------- the SageMaker role's images and JumpStart channels

PLACEHOLDER_ACCOUNT = "none"  # a mapping's cell where its table has no account for the region
DEPLOYABLE_REGIONS = sorted(algorithms.XGBOOST_REGISTRIES)  # elsewhere the XGBoost lookup fails the deployment, by design
TABLE_REGIONS = sorted(
    set(algorithms.XGBOOST_REGISTRIES)
    | set(algorithms.FIRST_PARTY_REGISTRIES)
    | set(algorithms.SKLEARN_REGISTRIES)
    | set(jumpstart.DLC_REGISTRIES)
)
ECR_PULL_ACTIONS = ("ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer")
JUMPSTART_READ_ACTIONS = {"s3:GetObject", "s3:ListBucket"}
_PARTITION_BY_REGION_PREFIX = (
    ("cn-", "aws-cn"),
    ("us-gov-", "aws-us-gov"),
    ("us-isob-", "aws-iso-b"),
    ("us-isof-", "aws-iso-f"),
    ("us-iso-", "aws-iso"),
)
SAMPLE_FACTS = {
    "binary": DataFacts("binary", 2, 4, 200),
    "multiclass": DataFacts("multiclass", 3, 4, 200),
    "regression": DataFacts("regression", 0, 4, 200),
}


def _partition(region: str) -> str:
    return next((partition for prefix, partition in _PARTITION_BY_REGION_PREFIX if region.startswith(prefix)), "aws")


def _column(repository: str) -> str:
    """A deep learning container's column in DeepLearningContainerRegistry: "pytorch-training" -> "PytorchTraining"."""
    return "".join(part.capitalize() for part in repository.split("-"))


def _deep_learning_container_use() -> dict[str, set[str]]:
    """Repository -> the regions where a JumpStart algorithm that runs it is available."""
    use: dict[str, set[str]] = {}
    for name in algorithm_registry.names():
        algorithm = algorithm_registry.get(name)
        if not isinstance(algorithm, jumpstart.JumpStartAlgorithm):
            continue
        for model in (algorithm.classification, algorithm.regression):
            if model is None:
                continue
            for image in (model.training_image, model.inference_image):
                use.setdefault(image.repository, set()).update(algorithm.supported_regions(model))
    return use


def _expected_image_mappings() -> dict[str, dict[str, dict[str, str]]]:
    """template.yaml's image Mappings, generated from datadrop's registry tables. XGBoost's is its table:
    a region without XGBoost cannot deploy. Every other has a key for each XGBoost region too, "none"
    where its table has no account, so those regions deploy."""

    def with_placeholders(table: dict[str, str]) -> dict[str, dict[str, str]]:
        return {
            region: {"Account": table.get(region, PLACEHOLDER_ACCOUNT)} for region in sorted(set(DEPLOYABLE_REGIONS) | set(table))
        }

    use = _deep_learning_container_use()
    return {
        "XGBoostImageRegistry": {region: {"Account": account} for region, account in algorithms.XGBOOST_REGISTRIES.items()},
        "FirstPartyImageRegistry": with_placeholders(algorithms.FIRST_PARTY_REGISTRIES),
        "ScikitLearnImageRegistry": with_placeholders(algorithms.SKLEARN_REGISTRIES),
        "DeepLearningContainerRegistry": {
            region: {
                _column(repository): jumpstart.DLC_REGISTRIES[region] if region in regions else PLACEHOLDER_ACCOUNT
                for repository, regions in sorted(use.items())
            }
            for region in sorted(set(DEPLOYABLE_REGIONS) | set().union(*use.values()))
        },
    }


def _mappings_yaml(mappings: dict[str, dict[str, dict[str, str]]]) -> str:
    """The Mappings as template.yaml spells them, to paste when a table changes."""
    lines = []
    for name, rows in mappings.items():
        lines.append(f"  {name}:")
        lines += [
            f"    {region}: {{{', '.join(f'{key}: {json.dumps(value)}' for key, value in row.items())}}}"
            for region, row in rows.items()
        ]
    return "\n".join(lines)


_NO_VALUE = object()


def _in_region(template: dict[str, Any], region: str) -> Any:
    """A function that evaluates a template node as CloudFormation does in this region: Fn::FindInMap
    (a missing key raises KeyError, as it fails a deployment), Fn::If on the template's Conditions,
    the pseudo parameters AWS::Region and AWS::Partition, Fn::Sub's variables. Any other name
    (${ArtifactBucket.Arn}, ${NamePrefix}) stays as the text the other tests read."""
    pseudo = {"AWS::Region": region, "AWS::Partition": _partition(region)}

    def condition(name: str) -> bool:
        return bool(evaluate(template["Conditions"][name]))

    def evaluate(node: Any) -> Any:
        if isinstance(node, list):
            return [value for value in (evaluate(item) for item in node) if value is not _NO_VALUE]
        if not isinstance(node, dict):
            return node
        (function, argument), *rest = node.items()
        if rest:
            return {
                key: value for key, value in ((key, evaluate(value)) for key, value in node.items()) if value is not _NO_VALUE
            }
        if function == "Ref":
            return _NO_VALUE if argument == "AWS::NoValue" else pseudo.get(argument, "${" + argument + "}")
        if function == "Fn::GetAtt":
            return "${" + ".".join(argument) + "}"
        if function == "Fn::Sub":
            text, variables = (argument, {}) if isinstance(argument, str) else (argument[0], evaluate(argument[1]))
            values = {**pseudo, **variables}
            return re.sub(r"\$\{([^}!]+)\}", lambda match: values.get(match.group(1), match.group(0)), text)
        if function == "Fn::FindInMap":
            mapping, key, attribute = evaluate(argument)
            return template["Mappings"][mapping][key][attribute]
        if function == "Fn::If":
            name, when_true, when_false = argument
            return evaluate(when_true if condition(name) else when_false)
        if function == "Fn::Equals":
            left, right = evaluate(argument)
            return left == right
        if function == "Fn::Not":
            return not evaluate(argument[0])
        if function == "Fn::And":
            return all(evaluate(argument))
        if function == "Fn::Or":
            return any(evaluate(argument))
        if function == "Condition":
            return condition(argument)
        return {function: evaluate(argument)}

    return evaluate


def _deployed_role_statements(template: dict[str, Any], region: str) -> list[dict[str, Any]]:
    """The SageMaker execution role's statements as IAM gets them in a stack of this region."""
    evaluate = _in_region(template, region)
    return [
        statement
        for policy in template["Resources"]["SageMakerExecutionRole"]["Properties"]["Policies"]
        for statement in _statements(evaluate(policy["PolicyDocument"]))
    ]


@pytest.fixture(scope="module")
def deployed_role(template: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    return {region: _deployed_role_statements(template, region) for region in DEPLOYABLE_REGIONS}


def _what_sagemaker_fetches(name: str, region: str) -> tuple[set[str], set[str]]:
    """(image URIs, S3 URIs outside the artifact bucket) that SageMaker fetches with the execution role
    for the algorithm's training jobs and models in this region, over every problem type it takes:
    its training image, its own container in the model, the scikit-learn stages of a pipeline, the
    JumpStart channels and inference script. Nothing where the algorithm is not available."""
    algorithm = algorithm_registry.get(name)
    images: set[str] = set()
    objects: set[str] = set()
    for problem_type in sorted(algorithm.problem_types):
        hyperparameters = {
            **algorithm.default_hyperparameters(problem_type),
            **algorithm.derived_hyperparameters(SAMPLE_FACTS[problem_type]),
        }
        try:
            launch = algorithm.training(region, hyperparameters)
            container = algorithm.inference_container(region, "s3://artifacts/model.tar.gz", problem_type)
        except UnsupportedRegion:
            continue
        images |= {launch.algorithm_specification["TrainingImage"], container["Image"]}
        if algorithm.serving == "pipeline":
            images.add(algorithms.sklearn_image_uri(region))
        objects |= {channel["DataSource"]["S3DataSource"]["S3Uri"] for channel in launch.extra_channels}
        submit_directory = container.get("Environment", {}).get("SAGEMAKER_SUBMIT_DIRECTORY", "")
        if submit_directory.startswith("s3://"):
            objects.add(submit_directory)
    return images, objects


def _repository_arn(image_uri: str, region: str) -> str:
    """<account>.dkr.ecr.<region>.<suffix>/<repository>:<tag> -> the repository's ARN."""
    registry, _, repository_and_tag = image_uri.partition("/")
    repository = repository_and_tag.rsplit(":", 1)[0]
    return f"arn:{_partition(region)}:ecr:{region}:{registry.split('.')[0]}:repository/{repository}"


def _bucket_and_key(uri: str) -> tuple[str, str]:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return bucket, key


def test_image_mappings_are_the_python_registry_tables(template):
    expected = _expected_image_mappings()
    assert template["Mappings"] == expected, "template.yaml's Mappings should be:\n" + _mappings_yaml(expected)


def test_the_stack_deploys_where_xgboost_runs_and_fails_elsewhere(template, deployed_role):
    assert set(deployed_role) == set(algorithms.XGBOOST_REGISTRIES)
    for statements in deployed_role.values():  # the "none" of a mapping never reaches IAM
        assert not [arn for _, arn in _grants(statements) if f":{PLACEHOLDER_ACCOUNT}:" in arn]
    for region in sorted(set(TABLE_REGIONS) - set(DEPLOYABLE_REGIONS)):
        with pytest.raises(KeyError):
            _deployed_role_statements(template, region)


@pytest.mark.parametrize("name", algorithm_registry.names())
def test_sagemaker_execution_role_pulls_every_image_of_the_algorithm_where_it_runs(deployed_role, name):
    runs_in = []
    for region in DEPLOYABLE_REGIONS:
        images, _ = _what_sagemaker_fetches(name, region)
        for image in images:
            for action in ECR_PULL_ACTIONS:
                assert _allowed(deployed_role[region], action, _repository_arn(image, region)), (region, action, image)
        if images:
            runs_in.append(region)
    assert len(runs_in) >= 20, f"{name} runs in too few regions for this test to mean something: {runs_in}"


def test_sagemaker_execution_role_pulls_nothing_else(resources, deployed_role):
    for region, statements in deployed_role.items():
        used = {
            _repository_arn(image, region)
            for name in algorithm_registry.names()
            for image in _what_sagemaker_fetches(name, region)[0]
        }
        for action in ECR_PULL_ACTIONS:
            assert {arn for granted, arn in _grants(statements) if granted == action} == used, (region, action)
        assert {action for action, _ in _grants(statements) if action.startswith("ecr:")} == {
            *ECR_PULL_ACTIONS,
            "ecr:GetAuthorizationToken",
        }
    # The only grants on every resource are actions that have no resource type.
    statements = _role_statements(resources, "SageMakerExecutionRole")
    unscoped = {action for action, resource in _grants(statements) if resource == "*"}
    assert unscoped == {"cloudwatch:PutMetricData", "ecr:GetAuthorizationToken"}
    (metrics,) = [statement for statement in statements if _as_list(statement["Action"]) == ["cloudwatch:PutMetricData"]]
    assert metrics["Condition"] == {"StringLike": {"cloudwatch:namespace": "/aws/sagemaker/*"}}


def test_sagemaker_execution_role_reads_exactly_the_jumpstart_channels(deployed_role):
    """JumpStart's channels and inference scripts (jumpstart.py URIs) are readable, as an S3Prefix
    channel needs (ListBucket with that prefix, GetObject); nothing else in JumpStart's buckets is,
    and nothing there is writable."""
    readable_somewhere = 0
    for region, statements in deployed_role.items():
        partition = _partition(region)
        objects = {uri for name in algorithm_registry.names() for uri in _what_sagemaker_fetches(name, region)[1]}
        assert all(jumpstart.is_jumpstart_content(uri) for uri in objects), objects
        buckets = {_bucket_and_key(uri)[0] for uri in objects}
        assert buckets <= {f"jumpstart-cache-prod-{region}"}
        bucket_arn = f"arn:{partition}:s3:::jumpstart-cache-prod-{region}"
        keys = {_bucket_and_key(uri)[1] for uri in objects}
        for key in keys:
            assert _allowed(statements, "s3:GetObject", f"{bucket_arn}/{key}"), (region, key)
            assert _allowed(statements, "s3:ListBucket", bucket_arn), region
        # Exactly: GetObject on those keys only, ListBucket only with those prefixes, nothing more.
        on_jumpstart = [
            statement
            for statement in statements
            if any(
                fnmatch.fnmatchcase(resource, "arn:*:s3:::jumpstart-cache-prod-*") for resource in _as_list(statement["Resource"])
            )
        ]
        assert {action for statement in on_jumpstart for action in _as_list(statement["Action"])} <= JUMPSTART_READ_ACTIONS
        assert {(action, arn) for action, arn in _grants(on_jumpstart) if action == "s3:GetObject"} == {
            ("s3:GetObject", f"{bucket_arn}/{key}") for key in keys
        }, region
        listed = [statement for statement in on_jumpstart if "s3:ListBucket" in _as_list(statement["Action"])]
        assert all(_as_list(statement["Resource"]) == [bucket_arn] for statement in listed), region
        prefixes = {prefix for statement in listed for prefix in statement["Condition"]["StringEquals"]["s3:prefix"]}
        assert all(set(statement["Condition"]) == {"StringEquals"} for statement in listed)
        assert prefixes == keys, region
        other_key = "some-other-model/model.tar.gz"
        assert not _allowed(statements, "s3:GetObject", f"{bucket_arn}/{other_key}")
        for action in sorted(S3_WRITE_ACTIONS | {"s3:AbortMultipartUpload", "s3:PutObjectTagging"}):
            for key in sorted(keys | {other_key}):
                assert not _allowed(statements, action, f"{bucket_arn}/{key}"), (region, action, key)
        readable_somewhere += bool(keys)
    assert readable_somewhere >= 20


# ----------------------------------------------------------------------------- operations


def test_every_queue_has_an_alarm(resources):
    alarmed = {
        dimension["Value"]["Fn::GetAtt"][0]
        for alarm in _of_type(resources, "AWS::CloudWatch::Alarm").values()
        if alarm["Properties"]["MetricName"] == "ApproximateNumberOfMessagesVisible"
        for dimension in alarm["Properties"]["Dimensions"]
        if dimension["Name"] == "QueueName"
    }
    assert alarmed == set(_of_type(resources, "AWS::SQS::Queue"))
    assert "SweepDeadLetterQueue" in alarmed
    for alarm in _of_type(resources, "AWS::CloudWatch::Alarm").values():
        assert alarm["Properties"]["Threshold"] == 1
        assert alarm["Properties"]["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"


def test_every_checkov_skip_gives_a_reason(resources):
    for name, resource in resources.items():
        for check, reason in _skips(resource).items():
            assert len(reason) > 30, f"{name} skips {check} without a reason"
            assert "CloudTrail" not in reason, f"{name}: the stack creates no CloudTrail trail"


def test_outputs(template):
    outputs = template["Outputs"]
    assert set(outputs) >= {
        "DataBucketName",
        "ArtifactBucketName",
        "AccessLogBucketName",
        "EventBusName",
        "StateTableName",
        "IdempotencyTableName",
        "SageMakerExecutionRoleArn",
        "UploadCommand",
    }
    upload = outputs["UploadCommand"]["Value"]["Fn::Sub"]
    assert upload.startswith("aws s3 cp ") and "s3://${DataBucket}/incoming/" in upload


def test_parameters(template):
    parameters = template["Parameters"]
    prefix = parameters["NamePrefix"]
    assert prefix["Default"] == "datadrop" and prefix["MaxLength"] == 12
    pattern = re.compile(prefix["AllowedPattern"])
    assert pattern.fullmatch("datadrop") and pattern.fullmatch("dd-2") and pattern.fullmatch("a-b-c")
    for bad in ("DataDrop", "-x", "a_b", "dd-", "a--b", "datadrop-"):
        assert not pattern.fullmatch(bad), bad
    assert names.PREFIX_PATTERN.pattern == prefix["AllowedPattern"]  # the library refuses what the stack refuses
    threshold = parameters["AccuracyThreshold"]
    assert threshold["Type"] == "Number" and float(threshold["Default"]) == 0.8
    assert float(threshold["MinValue"]) == 0 and float(threshold["MaxValue"]) == 1
    assert parameters["StuckAfterMinutes"]["Type"] == "Number"
    assert int(parameters["StuckAfterMinutes"]["Default"]) == 30 and int(parameters["StuckAfterMinutes"]["MinValue"]) == 5
    assert parameters["GiveUpAfterHours"]["Type"] == "Number"
    assert int(parameters["GiveUpAfterHours"]["Default"]) == 24 and int(parameters["GiveUpAfterHours"]["MinValue"]) == 1
    assert int(parameters["LogRetentionDays"]["Default"]) in parameters["LogRetentionDays"]["AllowedValues"]
    grouped = {
        name
        for group in template["Metadata"]["AWS::CloudFormation::Interface"]["ParameterGroups"]
        for name in group["Parameters"]
    }
    assert grouped == set(parameters)


# ----------------------------------------------------------------------------- lint


def test_cfn_lint_reports_no_errors_or_warnings():
    from cfnlint.api import ManualArgs, lint_file

    matches = lint_file(TEMPLATE_PATH, config=ManualArgs(regions=["us-east-1"]))
    problems = [f"{m.rule.id} {m.message} (line {m.linenumber})" for m in matches if m.rule.id[0] in "EW"]
    assert problems == []


def test_every_dead_letter_alarm_notifies_the_optional_topic(template: dict[str, Any], resources: dict[str, Any]) -> None:
    assert template["Parameters"]["AlarmTopicArn"]["Default"] == ""
    assert template["Conditions"]["HasAlarmTopic"] == {"Fn::Not": [{"Fn::Equals": [{"Ref": "AlarmTopicArn"}, ""]}]}
    queues = _of_type(resources, "AWS::SQS::Queue")
    alarms = _of_type(resources, "AWS::CloudWatch::Alarm")
    watched = {alarm["Properties"]["Dimensions"][0]["Value"]["Fn::GetAtt"][0] for alarm in alarms.values()}
    assert watched == set(queues)  # one alarm per dead-letter queue
    for name, alarm in alarms.items():
        assert alarm["Properties"]["AlarmActions"] == {
            "Fn::If": ["HasAlarmTopic", [{"Ref": "AlarmTopicArn"}], {"Ref": "AWS::NoValue"}]
        }, name


def test_one_calls_retry_budget_fits_in_every_functions_timeout(template: dict) -> None:
    """A throttled call gives up (and the sweeper takes over) before Lambda kills the invocation."""
    from datadrop.services import worst_case_call_seconds

    default = template["Globals"]["Function"]["Timeout"]
    for name, resource in template["Resources"].items():
        if resource["Type"] == "AWS::Serverless::Function":
            assert resource["Properties"].get("Timeout", default) > worst_case_call_seconds(), name
