"""Safe deployments in AWS mode: the real handlers and adapter on moto, SageMaker's endpoint
statuses played by a test double at the compute port (moto has no UpdateEndpoint and puts every
endpoint InService at once: tests/integration/sagemaker_endpoints.py). Every request is checked
against the service model (tests/strict_requests.py) and asserted call by call.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml
from datadrop.state import VersionStatus
from datadrop.storage import split_s3_uri

from tests.conftest import sample_event
from tests.integration.conftest import AwsHarness, envelope
from tests.integration.sagemaker_endpoints import SageMakerEndpointsDouble

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "penguins"
DATA = (EXAMPLE / "penguins.csv").read_bytes()
ENDPOINT = "datadrop--penguins"
ALARMS = ["penguins-endpoint-5xx", "penguins-endpoint-latency-p99"]
# Mutating SageMaker calls, in the order deploy made them (Describe* only read).
WRITES = ("CreateEndpointConfig", "CreateEndpoint", "UpdateEndpoint", "DeleteEndpoint")


@pytest.fixture
def sagemaker(aws: AwsHarness) -> SageMakerEndpointsDouble:
    double = SageMakerEndpointsDouble(aws.services.sagemaker, aws.settings.region)
    aws.services.compute = double
    return double


def _config(threshold: float, **deployment: Any) -> str:
    config = yaml.safe_load((EXAMPLE / "species.yaml").read_text())
    config["threshold"] = threshold  # a new config: a new version of the same data
    if deployment:
        config["deployment"] = deployment
    return yaml.safe_dump(config)


def _fresh(event: dict[str, Any]) -> dict[str, Any]:
    """A new delivery (its own EventBridge id: the handlers' idempotency keys on it)."""
    return {**event, "id": str(uuid.uuid4())}


def _approve(aws: AwsHarness, threshold: float, **deployment: Any) -> dict[str, Any]:
    """Upload the example with its own config and play it through train and evaluate: its ModelApproved."""
    aws.put_config("penguins", _config(threshold, **deployment))
    put = aws.services.objects.client.put_object(Bucket=aws.settings.data_bucket_name, Key="incoming/penguins/p.csv", Body=DATA)
    upload = sample_event("prepare_s3_object_created.json")
    upload["detail"]["bucket"]["name"] = aws.settings.data_bucket_name
    upload["detail"]["object"].update(
        {"key": "incoming/penguins/p.csv", "version-id": put.get("VersionId"), "etag": put["ETag"].strip('"'), "size": len(DATA)}
    )
    assert aws.invoke("prepare", _fresh(upload))["outcome"] == "prepared"
    prepared = aws.details("DatasetPrepared")[-1]
    aws.invoke("train", envelope("DatasetPrepared", prepared))
    job = f"datadrop--penguins-{prepared['version']}-r01"
    aws.invoke("evaluate", _fresh(sample_event("evaluate_training_job_completed.json", TrainingJobName=job)))
    # Play batch transform: every test row right.
    labels = json.loads(aws.services.objects.read_uri(prepared["artifacts"]["test_labels"]))
    lines = [json.dumps({"label": label, "probabilities": {label: 1.0}}) for label in labels]
    transform = next(request for request in aws.requests("CreateTransformJob") if request["TransformJobName"] == job)
    bucket, prefix = split_s3_uri(transform["TransformOutput"]["S3OutputPath"])
    aws.services.objects.write(bucket, prefix + "test.jsonl.out", ("\n".join(lines) + "\n").encode())
    aws.invoke("evaluate", _fresh(sample_event("evaluate_transform_job_completed.json", TransformJobName=job)))
    # A model serves already: the gate re-scores it (the champion) on these test rows too, every row right.
    for champion in [
        r for r in aws.requests("CreateTransformJob") if f"-{prepared['version']}-champion-" in r["TransformJobName"]
    ]:
        bucket, prefix = split_s3_uri(champion["TransformOutput"]["S3OutputPath"])
        aws.services.objects.write(bucket, prefix + "test.jsonl.out", ("\n".join(lines) + "\n").encode())
        done = sample_event("evaluate_transform_job_completed.json", TransformJobName=champion["TransformJobName"])
        aws.invoke("evaluate", _fresh(done))
    approved = aws.details("ModelApproved")[-1]
    assert approved["version"] == prepared["version"]
    return approved


def _writes(aws: AwsHarness, since: int = 0) -> list[tuple[str, str]]:
    return [
        (name, str(params.get("EndpointConfigName", params.get("EndpointName"))))
        for name, params in aws.calls[since:]
        if name in WRITES
    ]


def _deploy(aws: AwsHarness, approved: dict[str, Any]) -> str:
    return str(aws.invoke("deploy", envelope("ModelApproved", approved))["outcome"])


def _status(aws: AwsHarness, version: str) -> Any:
    item = aws.services.state.get_version("penguins", version)
    assert item is not None
    return item


def _config_of(approved: dict[str, Any]) -> str:
    return f"datadrop--penguins-{approved['version']}-r01"


def test_first_deployment_creates_then_later_ones_update_blue_green_with_rollback_alarms(
    aws: AwsHarness, sagemaker: SageMakerEndpointsDouble
) -> None:
    v1 = _approve(aws, 0.5)
    calls = len(aws.calls)
    assert _deploy(aws, v1) == "creating"
    assert _writes(aws, calls) == [("CreateEndpointConfig", _config_of(v1)), ("CreateEndpoint", _config_of(v1))]
    config = aws.requests("CreateEndpointConfig")[-1]
    assert config == {
        "EndpointConfigName": _config_of(v1),
        "ProductionVariants": [
            {
                "VariantName": "AllTraffic",
                "ModelName": _config_of(v1),
                "InitialInstanceCount": 1,
                "InstanceType": aws.settings.endpoint_instance_type,
                "InitialVariantWeight": 1.0,
            }
        ],
        "Tags": [{"Key": "datadrop:dataset", "Value": "penguins"}, {"Key": "datadrop:version", "Value": v1["version"]}],
    }
    assert aws.requests("CreateEndpoint")[-1] == {
        "EndpointName": ENDPOINT,
        "EndpointConfigName": _config_of(v1),
        "Tags": [{"Key": "datadrop:dataset", "Value": "penguins"}],
    }
    # Creating (the docs' spelling) changes nothing; IN_SERVICE without EndpointConfigName (the
    # mlspace sample's shape): DescribeEndpoint says which config serves.
    assert aws.invoke("deploy", sagemaker.change(ENDPOINT, "Creating", spelling="docs"))["outcome"] == "ignored"
    assert aws.details("ModelDeployed") == []
    aws.invoke("deploy", sagemaker.change(ENDPOINT, "InService", spelling="docs", event_config=False))
    (deployed,) = aws.details("ModelDeployed")
    assert (deployed["version"], deployed["endpoint_config_name"]) == (v1["version"], _config_of(v1))
    assert _status(aws, v1["version"]).status == VersionStatus.DEPLOYED

    # The second version: UpdateEndpoint with the dataset's blue/green policy and its alarms.
    deployment = {
        "traffic": "canary",
        "step_percent": 50,
        "wait_seconds": 120,
        "termination_wait_seconds": 600,
        "max_execution_seconds": 3600,
        "rollback_alarms": ALARMS,
    }
    v2 = _approve(aws, 0.6, **deployment)
    calls = len(aws.calls)
    assert _deploy(aws, v2) == "updating"
    assert _writes(aws, calls) == [("CreateEndpointConfig", _config_of(v2)), ("UpdateEndpoint", _config_of(v2))]
    expected_update = {
        "EndpointName": ENDPOINT,
        "EndpointConfigName": _config_of(v2),
        "DeploymentConfig": {
            "BlueGreenUpdatePolicy": {
                "TrafficRoutingConfiguration": {
                    "Type": "CANARY",
                    "WaitIntervalInSeconds": 120,
                    "CanarySize": {"Type": "CAPACITY_PERCENT", "Value": 50},
                },
                "TerminationWaitInSeconds": 600,
                "MaximumExecutionTimeoutInSeconds": 3600,
            },
            "AutoRollbackConfiguration": {"Alarms": [{"AlarmName": name} for name in ALARMS]},
        },
    }
    assert aws.requests("UpdateEndpoint") == [expected_update]  # as built by the adapter
    assert sagemaker.updates == [expected_update]  # as serialized, after validation
    (started,) = [event for event in aws.details("DeploymentStarted") if event["version"] == v2["version"]]
    assert started["update"] is True

    # A late copy of v1's IN_SERVICE says nothing about v2: SageMaker says it is still Updating.
    stale = sagemaker.event(ENDPOINT, "InService", config=_config_of(v1), spelling="docs")
    assert aws.invoke("deploy", stale)["outcome"] == "in progress (Updating)"
    for status in ("Updating", "SystemUpdating", "Creating", "RollingBack", "Deleting", "OutOfService"):
        event = sagemaker.event(ENDPOINT, status, config=_config_of(v1), spelling="docs")
        assert aws.invoke("deploy", event)["outcome"] == "ignored"  # not settled: nothing to do yet
    assert aws.details("DeploymentFailed") == [] and len(aws.details("ModelDeployed")) == 1
    aws.invoke("deploy", sagemaker.change(ENDPOINT, "InService"))
    assert [event["version"] for event in aws.details("ModelDeployed")] == [v1["version"], v2["version"]]
    endpoint = aws.services.state.get_endpoint(ENDPOINT)
    assert endpoint is not None and endpoint.serving is not None and endpoint.in_flight is None
    assert endpoint.serving.version == v2["version"]


def test_all_at_once_without_alarms_sends_no_auto_rollback(aws: AwsHarness, sagemaker: SageMakerEndpointsDouble) -> None:
    v1 = _approve(aws, 0.5)
    _deploy(aws, v1)
    aws.invoke("deploy", sagemaker.change(ENDPOINT, "InService"))
    v2 = _approve(aws, 0.6)
    _deploy(aws, v2)
    assert aws.requests("UpdateEndpoint") == [
        {
            "EndpointName": ENDPOINT,
            "EndpointConfigName": _config_of(v2),
            "DeploymentConfig": {
                "BlueGreenUpdatePolicy": {
                    "TrafficRoutingConfiguration": {"Type": "ALL_AT_ONCE", "WaitIntervalInSeconds": 0},
                    "TerminationWaitInSeconds": 0,
                }
            },
        }
    ]


def _serving_v1_then_update_to_v2(aws: AwsHarness, sagemaker: SageMakerEndpointsDouble) -> tuple[dict, dict]:
    v1 = _approve(aws, 0.5)
    _deploy(aws, v1)
    aws.invoke("deploy", sagemaker.change(ENDPOINT, "InService"))
    v2 = _approve(aws, 0.6, rollback_alarms=ALARMS)
    assert _deploy(aws, v2) == "updating"
    return v1, v2


@pytest.mark.parametrize(("spelling", "event_config"), [("api", True), ("docs", True), ("api", False), ("docs", False)], ids=str)
def test_an_update_rolled_back_is_a_failed_deployment_and_the_previous_model_keeps_serving(
    aws: AwsHarness, sagemaker: SageMakerEndpointsDouble, spelling: Any, event_config: bool
) -> None:
    v1, v2 = _serving_v1_then_update_to_v2(aws, sagemaker)
    # An alarm went off: SageMaker rolls back and the endpoint is InService on the old config again.
    rolling_back = sagemaker.change(ENDPOINT, "RollingBack", spelling=spelling, event_config=event_config)
    assert aws.invoke("deploy", rolling_back)["outcome"] == "ignored"
    reason = f"Alarm {ALARMS[0]} went off during the deployment; rolled back"
    back = sagemaker.change(
        ENDPOINT, "InService", config=_config_of(v1), failure_reason=reason, spelling=spelling, event_config=event_config
    )
    assert aws.invoke("deploy", back)["outcome"] == "failed"
    (failed,) = aws.details("DeploymentFailed")
    assert failed["version"] == v2["version"]
    assert failed["endpoint_status"] == "InService"
    assert failed["serving_version"] == v1["version"] and failed["serving_endpoint_config"] == _config_of(v1)
    assert failed["endpoint_config_name"] == _config_of(v2)
    assert (
        reason in failed["reason"]
        and "rolled it back" in failed["reason"]
        and f"version {v1['version']} still serves" in failed["reason"]
    )
    # The state table says the same.
    item = _status(aws, v2["version"])
    assert item.status == VersionStatus.DEPLOYMENT_FAILED
    assert (item.endpoint_status, item.serving_version) == ("InService", v1["version"])
    assert _status(aws, v1["version"]).status == VersionStatus.DEPLOYED
    endpoint = aws.services.state.get_endpoint(ENDPOINT)
    assert endpoint is not None and endpoint.in_flight is None and endpoint.serving is not None
    assert endpoint.serving.version == v1["version"]
    assert [event["version"] for event in aws.details("ModelDeployed")] == [v1["version"]]
    # The same event again changes nothing.
    back["id"] = "another-delivery"
    assert aws.invoke("deploy", back)["outcome"] != "failed"
    assert len(aws.details("DeploymentFailed")) == 1


def test_an_update_whose_rollback_failed_too_is_reported_with_where_the_endpoint_is(
    aws: AwsHarness, sagemaker: SageMakerEndpointsDouble
) -> None:
    v1, v2 = _serving_v1_then_update_to_v2(aws, sagemaker)
    aws.invoke("deploy", sagemaker.change(ENDPOINT, "RollingBack", spelling="docs"))
    event = sagemaker.change(ENDPOINT, "UpdateRollbackFailed", failure_reason="Rollback failed: instance limit", spelling="docs")
    assert event["detail"]["EndpointStatus"] == "UPDATE_ROLLBACK_FAILED"
    assert aws.invoke("deploy", event)["outcome"] == "failed"
    (failed,) = aws.details("DeploymentFailed")
    assert failed["version"] == v2["version"] and failed["endpoint_status"] == "UpdateRollbackFailed"
    assert "mix of the old and new" in failed["reason"] and "Rollback failed: instance limit" in failed["reason"]
    assert failed["serving_version"] == v1["version"]
    assert _status(aws, v2["version"]).endpoint_status == "UpdateRollbackFailed"
    # UpdateEndpoint is how SageMaker gets such an endpoint back: the next version updates it.
    v3 = _approve(aws, 0.7)
    assert _deploy(aws, v3) == "updating"
    assert aws.requests("UpdateEndpoint")[-1]["EndpointConfigName"] == _config_of(v3)


def test_an_in_service_event_with_a_failure_reason_is_matched_by_what_serves(
    aws: AwsHarness, sagemaker: SageMakerEndpointsDouble
) -> None:
    """InService and a FailureReason: DescribeEndpoint decides: on the old config it is a failed update."""
    v1, v2 = _serving_v1_then_update_to_v2(aws, sagemaker)
    sagemaker.change(ENDPOINT, "InService", config=_config_of(v1), failure_reason="health check failed")
    event = sagemaker.event(ENDPOINT, "InService", config=_config_of(v2), failure_reason="health check failed")
    assert aws.invoke("deploy", event)["outcome"] == "failed"
    (failed,) = aws.details("DeploymentFailed")
    assert failed["serving_version"] == v1["version"] and "health check failed" in failed["reason"]


def test_an_endpoint_failed_at_creation_is_reported_and_the_next_version_recreates_it(
    aws: AwsHarness, sagemaker: SageMakerEndpointsDouble
) -> None:
    v1 = _approve(aws, 0.5)
    _deploy(aws, v1)
    reason = "The primary container for production variant AllTraffic did not pass the ping health check."
    assert (
        aws.invoke("deploy", sagemaker.change(ENDPOINT, "Failed", failure_reason=reason, spelling="docs"))["outcome"] == "failed"
    )
    (failed,) = aws.details("DeploymentFailed")
    assert failed["version"] == v1["version"] and failed["endpoint_status"] == "Failed"
    assert failed["serving_version"] is None and reason in failed["reason"]
    assert _status(aws, v1["version"]).status == VersionStatus.DEPLOYMENT_FAILED

    # A Failed endpoint takes only DeleteEndpoint: the next version deletes it and creates it again.
    v2 = _approve(aws, 0.6)
    calls = len(aws.calls)
    assert _deploy(aws, v2) == "creating"
    assert _writes(aws, calls) == [
        ("CreateEndpointConfig", _config_of(v2)),
        ("DeleteEndpoint", ENDPOINT),
        ("CreateEndpoint", _config_of(v2)),
    ]
    assert aws.requests("UpdateEndpoint") == []
    aws.invoke("deploy", sagemaker.change(ENDPOINT, "InService"))
    (deployed,) = aws.details("ModelDeployed")
    assert deployed["version"] == v2["version"]


def test_versions_approved_while_the_endpoint_is_creating_wait_and_the_newest_serves(
    aws: AwsHarness, sagemaker: SageMakerEndpointsDouble
) -> None:
    v1, v2, v3 = _approve(aws, 0.5), _approve(aws, 0.6), _approve(aws, 0.7)
    assert _deploy(aws, v1) == "creating"
    calls = len(aws.calls)
    # While v1 is Creating: v2 waits; v3, newer, takes its place (v2 is superseded, never lost silently).
    assert _deploy(aws, v2) == "waiting"
    assert _status(aws, v2["version"]).status == VersionStatus.APPROVED
    assert "Creating" in str(_status(aws, v2["version"]).waiting_reason) or "being deployed" in str(
        _status(aws, v2["version"]).waiting_reason
    )
    assert _deploy(aws, v3) == "waiting"
    assert _writes(aws, calls) == []  # nothing interleaves with the deployment in flight
    (superseded,) = aws.details("DeploymentSuperseded")
    assert (superseded["version"], superseded["superseded_by"]) == (v2["version"], v3["version"])
    assert _status(aws, v2["version"]).status == VersionStatus.SUPERSEDED
    _deploy(aws, v2)  # its approval delivered again changes nothing
    assert _status(aws, v2["version"]).status == VersionStatus.SUPERSEDED and _writes(aws, calls) == []

    # v1 InService: ModelDeployed, and the waiting v3 goes out at once, as an update.
    calls = len(aws.calls)
    outcome = aws.invoke("deploy", sagemaker.change(ENDPOINT, "InService", spelling="docs"))["outcome"]
    assert outcome == f"deployed; next: {v3['version']} updating"
    assert _writes(aws, calls) == [("CreateEndpointConfig", _config_of(v3)), ("UpdateEndpoint", _config_of(v3))]
    aws.invoke("deploy", sagemaker.change(ENDPOINT, "Updating", spelling="docs"))
    aws.invoke("deploy", sagemaker.change(ENDPOINT, "InService", spelling="docs", event_config=False))
    assert [event["version"] for event in aws.details("ModelDeployed")] == [v1["version"], v3["version"]]
    assert [_status(aws, v["version"]).status for v in (v1, v2, v3)] == [
        VersionStatus.DEPLOYED,
        VersionStatus.SUPERSEDED,
        VersionStatus.DEPLOYED,
    ]
    endpoint = aws.services.state.get_endpoint(ENDPOINT)
    assert endpoint is not None and endpoint.serving is not None and endpoint.serving.version == v3["version"]
    assert endpoint.in_flight is None and endpoint.waiting is None


def test_two_versions_approved_while_creating_both_end_and_the_newer_serves(
    aws: AwsHarness, sagemaker: SageMakerEndpointsDouble
) -> None:
    v1, v2 = _approve(aws, 0.5), _approve(aws, 0.6)
    assert _deploy(aws, v1) == "creating"
    assert _deploy(aws, v2) == "waiting"
    aws.invoke("deploy", sagemaker.change(ENDPOINT, "InService"))
    aws.invoke("deploy", sagemaker.change(ENDPOINT, "InService"))
    assert [event["version"] for event in aws.details("ModelDeployed")] == [v1["version"], v2["version"]]
    assert [_status(aws, v["version"]).status for v in (v1, v2)] == [VersionStatus.DEPLOYED, VersionStatus.DEPLOYED]
    assert sagemaker.describe_endpoint(ENDPOINT)["EndpointConfigName"] == _config_of(v2)  # type: ignore[index]


def test_an_older_approval_never_replaces_a_newer_model_that_serves(aws: AwsHarness, sagemaker: SageMakerEndpointsDouble) -> None:
    v1, v2 = _approve(aws, 0.5), _approve(aws, 0.6)
    assert _deploy(aws, v2) == "creating"  # v2's approval came first
    aws.invoke("deploy", sagemaker.change(ENDPOINT, "InService"))
    calls = len(aws.calls)
    assert _deploy(aws, v1) == "superseded"
    assert _writes(aws, calls) == []
    (superseded,) = aws.details("DeploymentSuperseded")
    assert superseded["version"] == v1["version"] and superseded["superseded_by"] == v2["version"]
    assert "serves" in superseded["reason"]
    assert _status(aws, v1["version"]).status == VersionStatus.SUPERSEDED


def test_an_approval_while_sagemaker_updates_the_endpoint_itself_waits_for_it(
    aws: AwsHarness, sagemaker: SageMakerEndpointsDouble
) -> None:
    v1 = _approve(aws, 0.5)
    _deploy(aws, v1)
    aws.invoke("deploy", sagemaker.change(ENDPOINT, "InService"))
    maintenance = sagemaker.change(ENDPOINT, "SystemUpdating", spelling="docs")
    assert aws.invoke("deploy", maintenance)["outcome"] == "ignored"
    v2 = _approve(aws, 0.6)
    calls = len(aws.calls)
    assert _deploy(aws, v2) == "waiting"
    assert _writes(aws, calls) == []
    assert "SystemUpdating" in str(_status(aws, v2["version"]).waiting_reason)
    # Maintenance over: the endpoint's InService event starts the waiting approval.
    outcome = aws.invoke("deploy", sagemaker.change(ENDPOINT, "InService", spelling="docs"))["outcome"]
    assert outcome == f"no deployment in flight; next: {v2['version']} updating"
    assert aws.requests("UpdateEndpoint")[-1]["EndpointConfigName"] == _config_of(v2)


def test_sagemaker_refusing_the_update_fails_the_deployment_and_frees_the_endpoint(
    aws: AwsHarness, sagemaker: SageMakerEndpointsDouble
) -> None:
    """A DeploymentConfig SageMaker refuses (its ValidationException) is a DeploymentFailed, not a retry loop."""
    v1 = _approve(aws, 0.5)
    _deploy(aws, v1)
    aws.invoke("deploy", sagemaker.change(ENDPOINT, "InService"))
    v2 = _approve(aws, 0.6)
    sagemaker.refuse_updates = "canary size exceeds the fleet"
    assert _deploy(aws, v2) == "failed"
    (failed,) = aws.details("DeploymentFailed")
    assert failed["reason"].startswith("SageMaker refused UpdateEndpoint: canary size exceeds the fleet")
    assert failed["serving_version"] == v1["version"] and failed["endpoint_status"] == "InService"
    assert _status(aws, v2["version"]).status == VersionStatus.DEPLOYMENT_FAILED
    endpoint = aws.services.state.get_endpoint(ENDPOINT)
    assert endpoint is not None and endpoint.in_flight is None and endpoint.serving is not None
    assert endpoint.serving.version == v1["version"]
