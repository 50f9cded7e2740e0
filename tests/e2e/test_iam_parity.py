"""Least privilege, measured: each principal is granted in template.yaml exactly what it really calls.

The whole service runs in local mode on the real example through the paths the functions have:
1. an upload that ends at a deployed endpoint, then every event of it delivered again;
2. a second version of the same dataset (deploy updates the endpoint), with EventBridge refusing
   the first publication of each step once (the step fails, Powertools drops its idempotency
   record, and the retry finds its pending events with a query);
3. the first file again (a duplicate: prepare publishes what may be pending, nothing more);
4. an upload without a config (rejected), and one whose training job fails;
5. a third version where SageMaker refuses the first of every Create* for lack of capacity and
   every "SageMaker ... State Change" event is lost: the sweeper continues every step from what
   SageMaker says, and updates the endpoint itself;
6. work the sweeper gives up on a day later, and the operator's `retry_version` of it.

Every AWS request of those scenarios is attributed to the principal that makes it in AWS: the
function the local runtime runs (AWS_LAMBDA_FUNCTION_NAME), or SageMakerExecutionRole for what the
local SageMaker does on SageMaker's behalf (datadrop.local.compute). Each request becomes the IAM
actions it needs, with their resources:
- the operation's own action (s3:GetObject with a VersionId is s3:GetObjectVersion, ListObjectsV2
  is s3:ListBucket, sagemaker-metrics signs as sagemaker);
- sagemaker:AddTags for a SageMaker Create* request with Tags (SageMaker authorises tag-on-create),
  iam:PassRole for one that hands SageMaker a role;
- s3:ListBucket for a GetObject answered NoSuchKey: without it S3 answers 403, and the code that
  tells a missing object from a denied one (prepare looking for the config) would break.
moto has no UpdateEndpoint, so the local adapter sends none: its update_endpoint counts as the one
UpdateEndpoint request SageMakerCompute.update_endpoint makes in AWS.

Then, per principal: no action used and not granted; no action a statement grants that is not used
on one of that statement's resources, unless NOT_MEASURED says why (and template.yaml too, with a
"# why:" comment); and every use's resource within a grant of its action. Statement Conditions are
not evaluated: they only narrow a grant (and the uses here are the ones they admit: iam:PassRole to
SageMaker only).

Requests with no principal (the test and the local runtime themselves) are not compared; nor is
`datadrop retry`: no role of the stack runs it, an operator does with their own credentials
(OPERATOR_NEEDS pins what recovery.retry_version needs; the CLI also calls cloudformation:DescribeStacks).
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from botocore.client import BaseClient
from botocore.exceptions import ClientError
from datadrop import recovery
from datadrop.local.compute import ACCOUNT, SAGEMAKER_ROLE, LocalCompute, as_function
from datadrop.local.runtime import REGION, Delivery, LocalStack, load_template
from moto import mock_aws

from tests import strict_requests

REPO = Path(__file__).resolve().parents[2]
TEMPLATE = REPO / "template.yaml"
EXAMPLE = REPO / "examples" / "penguins"
CONFIG = (EXAMPLE / "species.yaml").read_text()
DATA = (EXAMPLE / "penguins.csv").read_bytes()

pytestmark = pytest.mark.e2e

FUNCTIONS = ("PrepareFunction", "TrainFunction", "EvaluateFunction", "DeployFunction", "SweepFunction")
PRINCIPALS = (*FUNCTIONS, SAGEMAKER_ROLE)
# `datadrop retry` runs recovery.retry_version with the operator's own credentials: no role in the template.
OPERATOR = "DatadropOperator"
# The state table's GetItem/UpdateItem and the service bus (`datadrop retry`'s caller also needs DescribeStacks).
OPERATOR_NEEDS = {"dynamodb:GetItem", "dynamodb:UpdateItem", "events:PutEvents"}

# Granted and not used in these scenarios: why each is kept. template.yaml says so too, with a
# "# why:" comment on the action's line or just above its statement.
_LOGS = "SageMaker's job and endpoint containers log to CloudWatch Logs; the local ones do not"
_IMAGE = "SageMaker pulls the algorithms' images from ECR; locally each algorithm is its twin, a Python package"
_JUMPSTART = "SageMaker reads JumpStart's public script and model channels; the local SageMaker does not fetch them (the twin is the script)"
_FAILED_ENDPOINT = (
    "a Failed endpoint takes only DeleteEndpoint: the next deployment deletes it and creates it again; no endpoint of "
    "these scenarios fails (tests/integration/test_safe_deploy.py covers it)"
)
NOT_MEASURED: dict[str, dict[str, str]] = {
    "EvaluateFunction": {
        "sagemaker:DescribeTransformJob": (
            "evaluation asks for a Failed transform job's reason when its event carries none; the local SageMaker "
            "always sends one"
        ),
    },
    "DeployFunction": {"sagemaker:DeleteEndpoint": _FAILED_ENDPOINT},
    "SweepFunction": {
        "sagemaker:DeleteEndpoint": _FAILED_ENDPOINT,
        "sagemaker:DescribeModelPackage": (
            "the sweeper asks the registry only about a version waiting for a person whose approval event was lost; "
            "no scenario here approves by hand (tests/integration/test_aws_registry.py sweeps one)"
        ),
    },
    SAGEMAKER_ROLE: {
        "s3:AbortMultipartUpload": "SageMaker uploads large outputs in parts; the local SageMaker puts them whole",
        "logs:CreateLogGroup": _LOGS,
        "logs:CreateLogStream": _LOGS,
        "logs:DescribeLogStreams": _LOGS,
        "logs:PutLogEvents": _LOGS,
        "cloudwatch:PutMetricData": "SageMaker publishes job and endpoint instance metrics; no local twin does",
        "ecr:GetAuthorizationToken": _IMAGE,
        "ecr:BatchCheckLayerAvailability": _IMAGE,
        "ecr:BatchGetImage": _IMAGE,
        "ecr:GetDownloadUrlForLayer": _IMAGE,
        # Keyed "<Sid>: <action>": the same actions are used, on the artifact bucket, by other statements.
        "ListJumpStartPytorchChannels: s3:ListBucket": _JUMPSTART,
        "ReadJumpStartPytorchChannels: s3:GetObject": _JUMPSTART,
        "ListJumpStartAutogluonChannels: s3:ListBucket": _JUMPSTART,
        "ReadJumpStartAutogluonChannels: s3:GetObject": _JUMPSTART,
    },
}

# Requests made from the SageMaker role's seat that the role is never asked to authorise.
SERVICE_ITSELF = {
    (SAGEMAKER_ROLE, "events:PutEvents"): "SageMaker emits its state-change events on the default bus itself",
    # The local SageMaker creates a tuning job's training jobs through the API; SageMaker does it inside.
    (SAGEMAKER_ROLE, "sagemaker:CreateTrainingJob"): "a tuning job launches its training jobs itself",
    (SAGEMAKER_ROLE, "sagemaker:AddTags"): "a tuning job tags the training jobs it launches itself",
    (SAGEMAKER_ROLE, "iam:PassRole"): "a tuning job passes its job definition's role to its training jobs itself",
}

# The IAM action of an API operation, where the two are spelled differently.
_ACTION_OF = {
    ("s3", "ListObjectsV2"): "s3:ListBucket",
    ("s3", "HeadObject"): "s3:GetObject",
    ("s3", "HeadBucket"): "s3:ListBucket",
}

# SageMaker operation -> (request member naming the resource, ARN resource type).
_SAGEMAKER_RESOURCES: dict[str, list[tuple[str, str]]] = {}
for _member, _kind, _operations in [
    ("ExperimentName", "experiment", ["CreateExperiment", "DescribeExperiment"]),
    ("TrialName", "experiment-trial", ["CreateTrial", "DescribeTrial", "AssociateTrialComponent"]),
    (
        "TrialComponentName",
        "experiment-trial-component",
        ["CreateTrialComponent", "DescribeTrialComponent", "UpdateTrialComponent", "AssociateTrialComponent", "BatchPutMetrics"],
    ),
    ("TrainingJobName", "training-job", ["CreateTrainingJob", "DescribeTrainingJob"]),
    ("TransformJobName", "transform-job", ["CreateTransformJob", "DescribeTransformJob"]),
    ("ModelName", "model", ["CreateModel", "DescribeModel"]),
    ("EndpointConfigName", "endpoint-config", ["CreateEndpointConfig", "DescribeEndpointConfig"]),
    ("EndpointName", "endpoint", ["CreateEndpoint", "DescribeEndpoint", "UpdateEndpoint", "DeleteEndpoint"]),
    ("ModelPackageGroupName", "model-package-group", ["CreateModelPackageGroup", "DescribeModelPackageGroup"]),
    (
        "HyperParameterTuningJobName",
        "hyper-parameter-tuning-job",
        ["CreateHyperParameterTuningJob", "DescribeHyperParameterTuningJob", "ListTrainingJobsForHyperParameterTuningJob"],
    ),
]:
    for _operation in _operations:
        _SAGEMAKER_RESOURCES.setdefault(_operation, []).append((_member, _kind))
_PASSED_ROLE_MEMBERS = ("RoleArn", "ExecutionRoleArn")


@dataclass(frozen=True)
class Use:
    """One IAM action a principal needed, on one resource (an ARN)."""

    principal: str
    action: str
    resource: str


def _sagemaker_arn(kind: str, name: str) -> str:
    return f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:{kind}/{name.lower()}"  # SageMaker ARNs spell names in lowercase


def uses_of(
    principal: str, service: str, operation: str, params: dict[str, Any], response: Any = None, error: str | None = None
) -> list[Use]:
    """The actions (and resources) one request needs from its principal's policy."""
    action = _ACTION_OF.get((service, operation), f"{service}:{operation}")
    if service == "s3":
        bucket = f"arn:aws:s3:::{params['Bucket']}"
        if "Key" not in params:
            return [Use(principal, action, bucket)]
        if operation == "GetObject" and params.get("VersionId"):
            action = "s3:GetObjectVersion"
        uses = [Use(principal, action, f"{bucket}/{params['Key']}")]
        if error == "NoSuchKey":  # a 404, not a 403, takes s3:ListBucket
            uses.append(Use(principal, "s3:ListBucket", bucket))
        return uses
    if service == "dynamodb" and operation == "TransactWriteItems":
        # A transaction is authorised item by item, as the single-item write it contains.
        return [
            Use(principal, f"dynamodb:{kind}Item", f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{item[kind]['TableName']}")
            for item in params["TransactItems"]
            for kind in ("Put", "Update", "Delete")
            if kind in item
        ] + [
            Use(
                principal,
                "dynamodb:ConditionCheckItem",
                f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{item['ConditionCheck']['TableName']}",
            )
            for item in params["TransactItems"]
            if "ConditionCheck" in item
        ]
    if service == "dynamodb":
        table = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{params['TableName']}"
        return [Use(principal, action, f"{table}/index/{params['IndexName']}" if params.get("IndexName") else table)]
    if service == "events" and operation == "PutEvents":
        buses = {entry.get("EventBusName") or "default" for entry in params["Entries"]}
        return [Use(principal, action, f"arn:aws:events:{REGION}:{ACCOUNT}:event-bus/{bus}") for bus in sorted(buses)]
    if service == "sagemaker":
        if operation == "CreateModelPackage":  # named by SageMaker: "<group>/<version>"
            group = params["ModelPackageGroupName"]
            arns = [response["ModelPackageArn"] if response else _sagemaker_arn("model-package", f"{group}/*")]
        else:
            members = _SAGEMAKER_RESOURCES.get(operation)
            assert members, f"teach the parity test the resource of sagemaker:{operation}"
            arns = [_sagemaker_arn(kind, params[member]) for member, kind in members]
        uses = [Use(principal, action, arn) for arn in arns]
        if operation.startswith("Create") and params.get("Tags"):
            uses += [Use(principal, "sagemaker:AddTags", arn) for arn in arns]  # tag-on-create
        uses += [Use(principal, "iam:PassRole", params[member]) for member in _PASSED_ROLE_MEMBERS if params.get(member)]
        return uses
    raise AssertionError(f"teach the parity test the resource of {service}:{operation}")


# ---------------------------------------------------------------------------------------------
# Recording and faults
# ---------------------------------------------------------------------------------------------
@dataclass
class Recorder:
    """Every request of the scenarios, as uses, and the faults the scenarios inject."""

    uses: list[Use] = field(default_factory=list)
    refused: list[Use] = field(default_factory=list)
    # The faults, each by dataset: SageMaker has no capacity for its Create* requests (the first per
    # resource, or every one); its "SageMaker ... State Change" events are lost; EventBridge refuses
    # the first publication of each principal about it.
    no_capacity_once: set[str] = field(default_factory=set)
    no_capacity_ever: set[str] = field(default_factory=set)
    state_changes_lost: set[str] = field(default_factory=set)
    publication_refused_once: set[str] = field(default_factory=set)
    capacity_refused: set[tuple[str, str]] = field(default_factory=set)
    lost: list[str] = field(default_factory=list)
    publications_refused: set[str] = field(default_factory=set)  # principals
    updates_not_sent: list[str] = field(default_factory=list)  # principals

    def no_capacity(self, service: str, operation: str, params: dict[str, Any]) -> bool:
        if service != "sagemaker" or not operation.startswith("Create"):
            return False
        resource = next((str(value) for name, value in params.items() if name.endswith("Name")), "")
        if _names_any(resource, self.no_capacity_ever):
            return True
        if _names_any(resource, self.no_capacity_once) and (operation, resource) not in self.capacity_refused:
            self.capacity_refused.add((operation, resource))
            return True
        return False

    def loses(self, operation: str, params: dict[str, Any]) -> bool:
        """A state change SageMaker announces on the default bus that never reaches a rule."""
        if operation != "PutEvents":
            return False
        changes = [entry for entry in params["Entries"] if entry.get("Source") == "aws.sagemaker"]
        lost = [entry for entry in changes if _names_any((entry.get("Resources") or [""])[0], self.state_changes_lost)]
        self.lost += [entry["DetailType"] for entry in lost]
        return bool(lost) and len(lost) == len(params["Entries"])

    def refuses_publication(self, principal: str | None, operation: str, params: dict[str, Any]) -> bool:
        if operation != "PutEvents" or principal is None or principal in self.publications_refused:
            return False
        about = {json.loads(entry["Detail"]).get("dataset") for entry in params["Entries"] if entry.get("EventBusName")}
        if about & self.publication_refused_once:
            self.publications_refused.add(principal)
            return True
        return False


def _names_any(resource: str, datasets: set[str]) -> bool:
    """Whether a SageMaker name (or ARN) is one of these datasets' ("<prefix>--<dataset>...")."""
    return any(re.search(rf"--{re.escape(dataset)}(-|$)", resource) for dataset in datasets)


def _install(recorder: Recorder, compute: LocalCompute) -> Callable[[], None]:
    validated_call = BaseClient._make_api_call  # strict_requests' recorder and checks, below ours

    def recorded_call(client: BaseClient, operation: str, params: dict[str, Any]) -> Any:
        principal = os.environ.get("AWS_LAMBDA_FUNCTION_NAME")
        model = client.meta.service_model
        service = model.signing_name or model.endpoint_prefix
        # Quotas refuse the stack's requests, not the ones SageMaker makes inside (a tuning job's launches).
        if principal != SAGEMAKER_ROLE and recorder.no_capacity(service, operation, params):
            if principal:  # refused after IAM allowed it: a use all the same
                recorder.refused += uses_of(principal, service, operation, params)
            raise ClientError({"Error": {"Code": "ResourceLimitExceeded", "Message": "injected"}}, operation)
        if recorder.refuses_publication(principal, operation, params):
            recorder.refused += uses_of(str(principal), service, operation, params)
            entries = [{"ErrorCode": "InternalException", "ErrorMessage": "injected"} for _ in params["Entries"]]
            return {"FailedEntryCount": len(entries), "Entries": entries}
        if recorder.loses(operation, params):
            return {"FailedEntryCount": 0, "Entries": [{"EventId": "lost"} for _ in params["Entries"]]}
        response, error = None, None
        try:
            response = validated_call(client, operation, params)
            return response
        except ClientError as failure:
            error = failure.response["Error"]["Code"]
            raise
        finally:
            if principal:
                recorder.uses += uses_of(principal, service, operation, params, response, error)

    # moto has no UpdateEndpoint, so the local adapter swaps the model itself and sends nothing; in
    # AWS mode this is exactly one UpdateEndpoint request of the calling function.
    local_update = compute.update_endpoint

    def update_endpoint(request: dict[str, Any]) -> None:
        principal = os.environ.get("AWS_LAMBDA_FUNCTION_NAME")
        if principal:
            recorder.updates_not_sent.append(principal)
            recorder.uses += uses_of(principal, "sagemaker", "UpdateEndpoint", request)
        local_update(request)

    BaseClient._make_api_call = recorded_call  # type: ignore[method-assign]
    compute.update_endpoint = update_endpoint  # type: ignore[method-assign]

    def uninstall() -> None:
        BaseClient._make_api_call = validated_call  # type: ignore[method-assign]
        compute.update_endpoint = local_update  # type: ignore[method-assign]

    return uninstall


# ---------------------------------------------------------------------------------------------
# The scenarios
# ---------------------------------------------------------------------------------------------
@dataclass
class Measured:
    stack: LocalStack
    recorder: Recorder
    recorded: list[strict_requests.RecordedCall]  # strict_requests.RECORDED during the scenarios
    grants: dict[str, list[Grant]]  # template.yaml's, resolved to the local stack's names


BAYESIAN = """target: species
hyperparameters: {num_round: 10, max_depth: {min: 2, max: 5, type: int}}
search: {strategy: bayesian, max_runs: 2, max_parallel: 1}
"""


def _upload(
    stack: LocalStack, dataset: str, body: bytes = DATA, config: str | None = CONFIG, max_idle_sweeps: int = 20
) -> str | None:
    """Upload a file as `dataset` and run the flow until it settles; returns the version it made, if any."""
    if config is not None:
        stack.put_config(dataset, config)
    published_before = len(stack.published)
    stack.s3.put_object(Bucket=stack.settings.data_bucket_name, Key=f"incoming/{dataset}/data.csv", Body=body)
    stack.drain(max_idle_sweeps=max_idle_sweeps)
    assert stack.dead_letters == [], [delivery.error for delivery in stack.dead_letters]
    details = [event["detail"] for event in stack.published[published_before:]]
    versions = {detail["version"] for detail in details if detail.get("dataset") == dataset and detail.get("version")}
    assert len(versions) <= 1, versions
    return versions.pop() if versions else None


def _redeliver(stack: LocalStack, deliveries: list[Delivery]) -> None:
    for delivery in deliveries:
        event = delivery.event
        entry = {"Source": event["source"], "DetailType": event["detail-type"], "Detail": json.dumps(event["detail"])}
        entry["EventBusName"] = stack.settings.event_bus_name if event["source"] == "datadrop" else "default"
        stack.events_client.put_events(Entries=[entry])
    stack.drain()
    assert stack.dead_letters == [], [delivery.error for delivery in stack.dead_letters]


def _status(stack: LocalStack, dataset: str) -> list[str]:
    return [version.status.value for version in stack.services.state.list_versions(dataset)]


@pytest.fixture(scope="module")
def measured() -> Iterator[Measured]:
    assert strict_requests.installed()
    recorder = Recorder()
    with mock_aws(), LocalStack(template_path=TEMPLATE) as stack:
        recorded_before = len(strict_requests.RECORDED)
        uninstall = _install(recorder, stack.compute)
        try:
            # 1. Upload → endpoint.
            rows = DATA.decode().splitlines(keepends=True)
            first = _upload(stack, "penguins")
            assert _status(stack, "penguins") == ["DEPLOYED"]
            # Every event of that flow delivered again: each step answers from its idempotency record.
            _redeliver(stack, list(stack.deliveries))
            assert len(stack.compute.jobs("training")) == 1 and _status(stack, "penguins") == ["DEPLOYED"]

            # 2. Another version of the same dataset: deploy updates the endpoint. Each step's first
            # publication is refused; the step fails and its retry publishes.
            recorder.publication_refused_once.add("penguins")
            second = _upload(stack, "penguins", "".join(rows[:-12]).encode())
            recorder.publication_refused_once.clear()
            assert recorder.publications_refused == set(FUNCTIONS) - {"SweepFunction"}
            assert recorder.updates_not_sent == ["DeployFunction"]

            # 3. The first file again: a duplicate.
            assert _upload(stack, "penguins") in (first, None)

            # 4. No config: rejected. Impossible hyperparameters: the training job fails.
            _upload(stack, "no-config", config=None)
            assert [event["reason"] for event in stack.events_of("DatasetRejected")], "the upload was not rejected"
            _upload(stack, "bad-hp", config="target: species\nhyperparameters: {max_depth: -3}\n")
            assert "max_depth" in stack.events_of("VersionFailed")[-1]["reason"]

            # 5. A third version, with no capacity for the first of every Create* and every SageMaker state
            # change lost: the sweeper (the local runtime runs it whenever it is idle) does every step.
            recorder.no_capacity_once.add("penguins")
            recorder.state_changes_lost.add("penguins")
            third = _upload(stack, "penguins", "".join(rows[:-24]).encode())
            recorder.no_capacity_once.clear()
            recorder.state_changes_lost.clear()
            assert len({first, second, third}) == 3 and _status(stack, "penguins") == ["DEPLOYED"] * 3
            assert {operation for operation, _ in recorder.capacity_refused} >= {
                "CreateTrainingJob",
                "CreateModel",
                "CreateTransformJob",
                "CreateEndpointConfig",
            }
            assert sorted(set(recorder.lost)) == [
                "SageMaker Endpoint State Change",
                "SageMaker Training Job State Change",
                "SageMaker Transform Job State Change",
            ]
            assert recorder.updates_not_sent == ["DeployFunction", "SweepFunction"]

            # 6. Never any capacity: the sweeper gives up a day later. The operator retries it; SageMaker
            # refuses the first of every Create* again, so the sweeper creates this dataset's first endpoint.
            recorder.no_capacity_ever.add("given-up")
            version = _upload(stack, "given-up", max_idle_sweeps=0)
            assert version is not None
            assert _status(stack, "given-up") == ["TRAINING"]
            report = stack.sweep(now=datetime.now(UTC) + timedelta(hours=25))
            assert report.ended and _status(stack, "given-up") == ["FAILED"], report.as_dict()
            recorder.no_capacity_ever.clear()
            with as_function(OPERATOR):
                assert recovery.retry_version(stack.services, "given-up", version) == 2
            recorder.no_capacity_once.add("given-up")
            stack.drain()
            assert _status(stack, "given-up") == ["DEPLOYED"]
            assert ("CreateEndpoint", "datadrop--given-up") in recorder.capacity_refused

            # 7. Bayesian searches: a tuning job whose training jobs become runs; then one that SageMaker
            # first has no capacity for and whose every state change is lost: the sweeper starts it,
            # closes it when SageMaker says it ended, and adopts and evaluates its training jobs.
            assert _upload(stack, "bayes", config=BAYESIAN) is not None
            assert _status(stack, "bayes") == ["DEPLOYED"] and len(stack.compute.tuning_jobs()) == 1
            recorder.no_capacity_once.add("hpo-lost")
            recorder.state_changes_lost.add("hpo-lost")
            assert _upload(stack, "hpo-lost", config=BAYESIAN) is not None
            recorder.no_capacity_once.clear()
            recorder.state_changes_lost.clear()
            assert _status(stack, "hpo-lost") == ["DEPLOYED"]
            assert any(operation == "CreateHyperParameterTuningJob" for operation, _ in recorder.capacity_refused)
            assert "SageMaker HyperParameter Tuning Job State Change" in recorder.lost
        finally:
            uninstall()
        yield Measured(stack, recorder, strict_requests.RECORDED[recorded_before:], granted(stack))


# ---------------------------------------------------------------------------------------------
# What template.yaml grants
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Grant:
    action: str  # may hold IAM wildcards
    resource: str  # resolved to the local stack's names; may hold wildcards
    sid: str


def _resolver(stack: LocalStack, template: dict[str, Any]) -> Callable[[Any], list[Any]]:
    """Resolve !Ref, !Sub, !GetAtt, !FindInMap and !If to the local stack's names. A value is a list of
    alternatives: both branches of an !If (a grant that may exist is granted), none for AWS::NoValue."""
    settings = stack.settings
    names = {
        "DataBucket": settings.data_bucket_name,
        "ArtifactBucket": settings.artifact_bucket_name,
        "StateTable": settings.state_table_name,
        "IdempotencyTable": settings.idempotency_table_name,
        "EventBus": settings.event_bus_name,
        "NamePrefix": settings.name_prefix,
        "ArtifactPrefix": settings.artifact_prefix,
        "AWS::Partition": "aws",
        "AWS::Region": REGION,
        "AWS::AccountId": ACCOUNT,
        "AWS::StackName": "datadrop-local",
    }
    arns = {
        "DataBucket.Arn": f"arn:aws:s3:::{settings.data_bucket_name}",
        "ArtifactBucket.Arn": f"arn:aws:s3:::{settings.artifact_bucket_name}",
        "StateTable.Arn": f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{settings.state_table_name}",
        "IdempotencyTable.Arn": f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{settings.idempotency_table_name}",
        "EventBus.Arn": f"arn:aws:events:{REGION}:{ACCOUNT}:event-bus/{settings.event_bus_name}",
        "SageMakerExecutionRole.Arn": settings.sagemaker_role_arn,
    }

    def substitute(text: str, variables: dict[str, str]) -> str:
        def value(match: re.Match[str]) -> str:
            name = match.group(1)
            found = variables.get(name, names.get(name, arns.get(name)))
            assert found is not None, f"the parity test cannot resolve ${{{name}}}"
            return found

        return re.sub(r"\$\{([^}!]+)\}", value, text)

    def resolve(node: Any) -> list[Any]:
        if isinstance(node, list):
            return [[value for item in node for value in resolve(item)]]
        if not isinstance(node, dict):
            return [node]
        if set(node) == {"Ref"}:
            return [] if node["Ref"] == "AWS::NoValue" else [names[node["Ref"]]]
        if set(node) == {"Fn::GetAtt"}:
            return [arns[".".join(node["Fn::GetAtt"])]]
        if set(node) == {"Fn::Sub"}:
            sub = node["Fn::Sub"]
            if isinstance(sub, str):
                return [substitute(sub, {})]
            variables = {name: resolve(value)[0] for name, value in sub[1].items()}
            return [substitute(sub[0], variables)]
        if set(node) == {"Fn::FindInMap"}:
            mapping, key, attribute = (resolve(part)[0] for part in node["Fn::FindInMap"])
            return [template["Mappings"][mapping][key][attribute]]
        if set(node) == {"Fn::If"}:
            _, when_true, when_false = node["Fn::If"]
            return [*resolve(when_true), *resolve(when_false)]
        alternatives: list[dict[str, Any]] = [{}]
        for key, value in node.items():
            alternatives = [{**partial, key: option} for partial in alternatives for option in resolve(value)]
        return alternatives

    return resolve


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def granted(stack: LocalStack) -> dict[str, list[Grant]]:
    """Every principal's Allow grants: the functions' inline Policies and the SageMaker role's."""
    template = load_template(TEMPLATE)
    resolve = _resolver(stack, template)
    grants: dict[str, list[Grant]] = {}
    for principal in PRINCIPALS:
        properties = template["Resources"][principal]["Properties"]
        if principal == SAGEMAKER_ROLE:
            documents = [policy["PolicyDocument"] for policy in properties["Policies"]]
        else:
            documents = properties["Policies"]
        for document in documents:
            assert isinstance(document, dict) and "Statement" in document, f"{principal}: only inline statements are measured"
            for statements in resolve(document["Statement"]):
                for statement in _as_list(statements):
                    assert statement["Effect"] in ("Allow", "Deny")
                    if statement["Effect"] != "Allow":
                        continue
                    grants.setdefault(principal, []).extend(
                        Grant(action, resource, statement.get("Sid", "?"))
                        for action in _as_list(statement["Action"])
                        for resource in _as_list(statement["Resource"])
                    )
    return grants


def _covers(grants: list[Grant], action: str, resource: str | None = None) -> bool:
    return any(
        fnmatch.fnmatchcase(action, grant.action) and (resource is None or fnmatch.fnmatchcase(resource, grant.resource))
        for grant in grants
    )


def _uses(measured: Measured) -> list[Use]:
    """What the principals of template.yaml needed: sent, or refused after IAM let it through."""
    return [
        use
        for use in [*measured.recorder.uses, *measured.recorder.refused]
        if use.principal in PRINCIPALS and (use.principal, use.action) not in SERVICE_ITSELF
    ]


def used_actions(measured: Measured) -> dict[str, set[str]]:
    used: dict[str, set[str]] = {principal: set() for principal in PRINCIPALS}
    for use in _uses(measured):
        used[use.principal].add(use.action)
    return used


# ---------------------------------------------------------------------------------------------
# The tests
# ---------------------------------------------------------------------------------------------
def test_the_scenarios_are_what_strict_requests_recorded(measured: Measured) -> None:
    """Our recorder sees what tests/strict_requests.py records (plus the requests the test refused)."""
    ours = {(use.principal, use.action) for use in measured.recorder.uses}  # the refused never reached strict_requests
    theirs = {
        (call.function, _ACTION_OF.get((call.service, call.operation), call.iam_action))
        for call in measured.recorded
        if call.function and call.operation != "TransactWriteItems"  # authorised item by item (datadrop's: updates)
    } | {(call.function, "dynamodb:UpdateItem") for call in measured.recorded if call.operation == "TransactWriteItems"}
    implied = {"sagemaker:AddTags", "iam:PassRole", "s3:ListBucket", "sagemaker:UpdateEndpoint"}
    assert theirs <= ours
    assert {action for _, action in ours - theirs} <= implied
    assert {principal for principal, _ in theirs} == {*PRINCIPALS, OPERATOR}


@pytest.mark.parametrize("principal", PRINCIPALS)
def test_every_action_used_is_granted(measured: Measured, principal: str) -> None:
    grants = measured.grants[principal]
    missing = sorted(action for action in used_actions(measured)[principal] if not _covers(grants, action))
    assert missing == [], f"{principal} calls these without a grant in template.yaml"


@pytest.mark.parametrize("principal", PRINCIPALS)
def test_every_action_granted_is_used_or_says_why(measured: Measured, principal: str) -> None:
    """Per statement: each action it grants is used on one of the statement's resources."""
    uses = [use for use in _uses(measured) if use.principal == principal]
    by_statement: dict[tuple[str, str], list[Grant]] = {}
    for grant in measured.grants[principal]:
        by_statement.setdefault((grant.sid, grant.action), []).append(grant)
    unused = sorted(
        f"{sid}: {action}"
        for (sid, action), grants in by_statement.items()
        if not any(_covers(grants, use.action, use.resource) for use in uses)
    )
    reasons = NOT_MEASURED.get(principal, {})

    def excused(grant: str) -> bool:
        return grant in reasons or grant.split(": ")[1] in reasons

    assert [grant for grant in unused if not excused(grant)] == [], f"{principal} never uses these grants"
    # The reasons stay true: each is for an action granted here (or a statement's action) that really goes unused.
    assert sorted(reasons) == sorted({grant if grant in reasons else grant.split(": ")[1] for grant in unused})


@pytest.mark.parametrize("principal", PRINCIPALS)
def test_every_resource_used_is_within_a_grant(measured: Measured, principal: str) -> None:
    grants = measured.grants[principal]
    outside = sorted(
        {
            f"{use.action} on {use.resource}"
            for use in _uses(measured)
            if use.principal == principal and not _covers(grants, use.action, use.resource)
        }
    )
    assert outside == [], f"{principal} reaches these outside the resources template.yaml grants"


def test_grants_kept_without_use_say_why_in_the_template() -> None:
    """Each NOT_MEASURED action has its "# why:" in template.yaml, on every line naming it or just above its statement."""
    text = TEMPLATE.read_text()
    for principal, reasons in NOT_MEASURED.items():
        block = re.search(rf"^  {principal}:\n(.*?)(?=^  \S)", text, re.MULTILINE | re.DOTALL)
        assert block, principal
        lines = block.group(1).splitlines()
        for reason in reasons:
            sid, _, action = reason.rpartition(": ")
            naming = [index for index, line in enumerate(lines) if re.search(rf"[\s:]{re.escape(action)}(\s|$)", line)]
            if sid:  # only that statement's lines
                naming = [index for index in naming if _statement_sid(lines, index) == sid]
            assert naming, f"{principal}: {action} is not in its policy"
            for index in naming:
                assert "# why:" in lines[index] or "# why:" in _comment_above_statement(lines, index), (
                    f"{principal}: say why {action} is kept, on its line or above its statement"
                )


def _statement_sid(lines: list[str], index: int) -> str:
    """The Sid of the statement that holds lines[index]."""
    start = next(at for at in range(index, -1, -1) if lines[at].lstrip().startswith("- Sid:"))
    return lines[start].split("- Sid:", 1)[1].strip()


def _comment_above_statement(lines: list[str], index: int) -> str:
    """The comment lines right above the statement (its "- Sid:" line) that holds lines[index]."""
    start = next(at for at in range(index, -1, -1) if lines[at].lstrip().startswith("- Sid:"))
    comments = []
    for line in reversed(lines[:start]):
        if not line.lstrip().startswith("#"):
            break
        comments.append(line)
    return "\n".join(comments)


def test_retry_needs_only_the_state_table_and_the_bus(measured: Measured) -> None:
    """`datadrop retry` is the operator's call, with their own credentials (no role of the stack runs it)."""
    needs = {use.action for use in measured.recorder.uses if use.principal == OPERATOR}
    assert needs == OPERATOR_NEEDS
