"""template.yaml: the wiring, the guarantees and the lint, checked without AWS.

The local runtime rebuilds its routing from the EventBridgeRule events in template.yaml, so these
tests pin what it relies on (event names, literal Patterns, EventBusName absent or !Ref EventBus)
as well as what a deployment must keep (retries and dead letters, TLS-only encrypted buckets,
table keys, least-privilege IAM).
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest
from cfnlint.decode import cfn_yaml

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
    },
    "DeployFunction": {
        "ModelApproved": ("EventBus", "datadrop"),
        "EndpointStateChange": (None, "aws.sagemaker"),
    },
}

EXPECTED_ENVIRONMENT = {
    "STATE_TABLE_NAME",
    "IDEMPOTENCY_TABLE_NAME",
    "EVENT_BUS_NAME",
    "DATA_BUCKET_NAME",
    "ARTIFACT_BUCKET_NAME",
    "NAME_PREFIX",
    "DEFAULT_ACCURACY_THRESHOLD",
    "SAGEMAKER_ROLE_ARN",
    "TRAINING_INSTANCE_TYPE",
    "TRANSFORM_INSTANCE_TYPE",
    "ENDPOINT_INSTANCE_TYPE",
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
    "deploy_endpoint_in_service.json": ("DeployFunction", "EndpointStateChange"),
}
SAMPLE_DATA_BUCKET = "datadrop-data-example"


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


# ----------------------------------------------------------------------------- functions


def test_functions_and_their_events_are_the_ones_the_local_runtime_expects(resources):
    wiring = {name: set(function["Properties"].get("Events", {})) for name, function in _functions(resources).items()}
    assert wiring == {name: set(events) for name, events in EXPECTED_WIRING.items()}


def test_every_function_is_python312_and_uses_the_library_layer(template, resources):
    globals_ = template["Globals"]["Function"]
    assert globals_["Runtime"] == "python3.12"
    assert globals_["Handler"] == "app.handler"
    assert {"Ref": "LibraryLayer"} in globals_["Layers"]
    for name, function in _functions(resources).items():
        properties = function["Properties"]
        assert properties.get("Runtime", globals_["Runtime"]) == "python3.12", name
        assert {"Ref": "LibraryLayer"} in properties.get("Layers", globals_["Layers"]), name


def test_library_layer_is_built_for_python312_from_the_library(resources):
    layer = resources["LibraryLayer"]
    assert layer["Type"] == "AWS::Serverless::LayerVersion"
    assert layer["Metadata"]["BuildMethod"] == "python3.12"
    assert "python3.12" in layer["Properties"]["CompatibleRuntimes"]
    content = ROOT / layer["Properties"]["ContentUri"]
    assert (content / "requirements.txt").is_file()
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


def test_every_function_has_its_own_sqs_dead_letter_queue(resources):
    targets = []
    for name, function in _functions(resources).items():
        dlq = function["Properties"]["DeadLetterQueue"]
        assert dlq["Type"] == "SQS", name
        queue = dlq["TargetArn"]["Fn::GetAtt"][0]
        assert resources[queue]["Type"] == "AWS::SQS::Queue", name
        targets.append(queue)
    assert len(set(targets)) == len(targets)


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
        ("DeployFunction", "EndpointStateChange", "EndpointName"),
    ],
)
def test_sagemaker_rules_only_take_our_resources(resources, function, event, name_field):
    detail = _rule(resources, function, event)["Pattern"]["detail"]
    assert detail[name_field] == [{"prefix": {"Fn::Sub": "${NamePrefix}-"}}]


@pytest.mark.parametrize(
    ("function", "event", "status_field"),
    [
        ("EvaluateFunction", "TrainingJobStateChange", "TrainingJobStatus"),
        ("EvaluateFunction", "TransformJobStateChange", "TransformJobStatus"),
    ],
)
def test_job_rules_only_take_terminal_states(resources, function, event, status_field):
    detail = _rule(resources, function, event)["Pattern"]["detail"]
    assert sorted(detail[status_field]) == ["Completed", "Failed", "Stopped"]


@pytest.mark.parametrize("sample", sorted(SAMPLE_EVENT_ROUTES))
def test_sample_event_reaches_exactly_its_rule(resources, sample):
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
        ("evaluate_transform_job_completed.json", ("detail", "TransformJobName"), "datadropx-penguins"),
        ("deploy_endpoint_in_service.json", ("detail", "EndpointName"), "MyEndpoint"),
    ],
)
def test_events_that_are_not_ours_reach_no_rule(resources, sample, path, value):
    event = _with(json.loads((EVENTS_DIR / sample).read_text()), path, value)
    assert not [
        (function, name)
        for function, name, _ in _rules(resources)
        if _matches(_deployed_pattern(resources, function, name), event)
    ]


# ----------------------------------------------------------------------------- storage


@pytest.mark.parametrize("bucket", ["DataBucket", "ArtifactBucket"])
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


def test_data_bucket_sends_events_to_eventbridge(resources):
    notification = resources["DataBucket"]["Properties"]["NotificationConfiguration"]
    assert notification["EventBridgeConfiguration"]["EventBridgeEnabled"] is True


@pytest.mark.parametrize("bucket", ["DataBucket", "ArtifactBucket"])
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


def test_no_function_may_write_to_the_data_bucket(resources):
    """The uploaded object is never modified or deleted: only read policies on DataBucket."""
    for name, function in _functions(resources).items():
        for policy, args in _policy_templates(function):
            if args.get("BucketName") == {"Ref": "DataBucket"}:
                assert policy == "S3ReadPolicy", f"{name} has {policy} on DataBucket"
        for statement in _inline_statements(function):
            for action in _as_list(statement["Action"]):
                assert not action.startswith("s3:"), f"{name}: inline S3 statement, use the policy templates"


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
    assert passers == {"TrainFunction", "EvaluateFunction", "DeployFunction"}


def test_sagemaker_permissions_are_scoped_to_the_name_prefix(resources):
    """Every SageMaker name is "<NamePrefix>-..." (datadrop.names), so every grant can say so."""
    roles = {name: function["Properties"] for name, function in _functions(resources).items()}
    roles["SageMakerExecutionRole"] = {
        "Policies": [policy["PolicyDocument"] for policy in resources["SageMakerExecutionRole"]["Properties"]["Policies"]]
    }
    checked = 0
    for name, properties in roles.items():
        for statement in _inline_statements({"Properties": properties}):
            if not any(action.startswith("sagemaker:") for action in _as_list(statement["Action"])):
                continue
            for resource in _as_list(statement["Resource"]):
                arn = resource["Fn::Sub"] if isinstance(resource, dict) else resource
                assert re.fullmatch(
                    r"arn:\$\{AWS::Partition\}:sagemaker:\$\{AWS::Region\}:\$\{AWS::AccountId\}:[a-z-]+/\$\{NamePrefix\}-\*",
                    arn,
                ), f"{name}: {arn}"
                checked += 1
    assert checked >= 10


def test_sagemaker_execution_role_trusts_only_sagemaker(resources):
    document = resources["SageMakerExecutionRole"]["Properties"]["AssumeRolePolicyDocument"]
    principals = [statement["Principal"] for statement in _statements(document)]
    assert principals == [{"Service": "sagemaker.amazonaws.com"}]


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
    for alarm in _of_type(resources, "AWS::CloudWatch::Alarm").values():
        assert alarm["Properties"]["Threshold"] == 1
        assert alarm["Properties"]["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"


def test_outputs(template):
    outputs = template["Outputs"]
    assert set(outputs) >= {
        "DataBucketName",
        "ArtifactBucketName",
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
    assert pattern.fullmatch("datadrop") and pattern.fullmatch("dd-2")
    assert not pattern.fullmatch("DataDrop") and not pattern.fullmatch("-x") and not pattern.fullmatch("a_b")
    threshold = parameters["AccuracyThreshold"]
    assert threshold["Type"] == "Number" and float(threshold["Default"]) == 0.8
    assert float(threshold["MinValue"]) == 0 and float(threshold["MaxValue"]) == 1


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
