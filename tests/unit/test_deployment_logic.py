"""The deployment section of a dataset config, the DeploymentConfig it becomes, and endpoint statuses."""

from __future__ import annotations

import json
from pathlib import Path

import botocore.session
import pytest
from datadrop.config import ConfigError, DeploymentSettings, parse_config
from datadrop.deployment import BUSY_ENDPOINT_STATUSES, FINAL_ENDPOINT_STATUSES, deployment_config
from datadrop.events import endpoint_status
from datadrop.incoming.sagemaker import EndpointStateChange

from tests import strict_requests

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "aws-events"
UPDATE_ENDPOINT = botocore.session.get_session().get_service_model("sagemaker").operation_model("UpdateEndpoint")


def _valid(config: dict) -> list[str]:
    request = {
        "EndpointName": "datadrop--penguins",
        "EndpointConfigName": "datadrop--penguins-abc-r01",
        "DeploymentConfig": config,
    }
    return strict_requests.violations(UPDATE_ENDPOINT, request)


def test_defaults_are_all_at_once_without_rollback_alarms() -> None:
    config = parse_config("target: species\n", "config/penguins.yaml")
    assert config.deployment == DeploymentSettings()
    assert deployment_config(config.deployment) == {
        "BlueGreenUpdatePolicy": {
            "TrafficRoutingConfiguration": {"Type": "ALL_AT_ONCE", "WaitIntervalInSeconds": 0},
            "TerminationWaitInSeconds": 0,
        }
    }


@pytest.mark.parametrize("traffic", ["all_at_once", "canary", "linear"])
def test_every_traffic_shift_is_a_deployment_config_sagemaker_accepts(traffic: str) -> None:
    settings = DeploymentSettings.model_validate(
        {
            "traffic": traffic,
            "step_percent": 25,
            "wait_seconds": 600,
            "termination_wait_seconds": 900,
            "max_execution_seconds": 7200,
            "rollback_alarms": ["a-5xx", "a latency p99"],
        }
    )
    config = deployment_config(settings)
    assert _valid(config) == []
    routing = config["BlueGreenUpdatePolicy"]["TrafficRoutingConfiguration"]
    assert routing["Type"] == traffic.upper()
    assert ("CanarySize" in routing, "LinearStepSize" in routing) == (traffic == "canary", traffic == "linear")
    if traffic != "all_at_once":
        assert routing["WaitIntervalInSeconds"] == 600
        assert next(value for key, value in routing.items() if key.endswith("Size")) == {"Type": "CAPACITY_PERCENT", "Value": 25}
    assert config["AutoRollbackConfiguration"] == {"Alarms": [{"AlarmName": "a-5xx"}, {"AlarmName": "a latency p99"}]}
    assert config["BlueGreenUpdatePolicy"]["MaximumExecutionTimeoutInSeconds"] == 7200


@pytest.mark.parametrize(
    ("section", "field"),
    [
        ("{traffic: rolling}", "deployment.traffic"),
        ("{wait_seconds: 3601}", "deployment.wait_seconds"),
        ("{max_execution_seconds: 60}", "deployment.max_execution_seconds"),
        ("{step_percent: 0}", "deployment.step_percent"),
        ("{rollback_alarms: ['  ']}", "deployment.rollback_alarms"),
        ("{rollback_alarms: [a, a]}", "deployment.rollback_alarms"),
        (f"{{rollback_alarms: [{', '.join(f'a{n}' for n in range(11))}]}}", "deployment.rollback_alarms"),
        ("{canary: 10}", "deployment.canary"),
    ],
)
def test_a_bad_deployment_section_is_rejected_naming_the_field(section: str, field: str) -> None:
    with pytest.raises(ConfigError) as error:
        parse_config(f"target: species\ndeployment: {section}\n", "config/penguins.yaml")
    assert field in str(error.value)


def test_the_deployment_section_does_not_change_the_version() -> None:
    """How a model is rolled out does not change the model: same data and config, same version."""
    plain = parse_config("target: species\n", "c")
    rolled = parse_config("target: species\ndeployment: {traffic: canary, rollback_alarms: [x]}\n", "c")
    assert plain.fingerprint() == rolled.fingerprint()
    assert "deployment" not in json.loads(plain.fingerprint())


@pytest.mark.parametrize(
    ("spelt", "api"),
    [
        ("IN_SERVICE", "InService"),
        ("InService", "InService"),
        ("CREATING", "Creating"),
        ("UPDATING", "Updating"),
        ("SYSTEM_UPDATING", "SystemUpdating"),
        ("ROLLING_BACK", "RollingBack"),
        ("DELETING", "Deleting"),
        ("FAILED", "Failed"),
        ("UPDATE_ROLLBACK_FAILED", "UpdateRollbackFailed"),
        ("UpdateRollbackFailed", "UpdateRollbackFailed"),
        ("OUT_OF_SERVICE", "OutOfService"),
    ],
)
def test_every_endpoint_status_is_read_in_either_spelling(spelt: str, api: str) -> None:
    assert endpoint_status(spelt) == api
    enum = botocore.session.get_session().get_service_model("sagemaker").shape_for("EndpointStatus").enum
    assert api in enum
    for sample in ("sagemaker_endpoint_state_change.docs.json", "sagemaker_endpoint_state_change.mlspace_derived.json"):
        event = json.loads((FIXTURES / sample).read_text())
        event["detail"]["EndpointStatus"] = spelt
        assert EndpointStateChange.model_validate(event).detail.EndpointStatus == api


def test_every_status_sagemaker_has_is_either_busy_final_or_out_of_service() -> None:
    enum = set(botocore.session.get_session().get_service_model("sagemaker").shape_for("EndpointStatus").enum)
    assert enum == BUSY_ENDPOINT_STATUSES | FINAL_ENDPOINT_STATUSES | {"OutOfService"}
    assert not BUSY_ENDPOINT_STATUSES & FINAL_ENDPOINT_STATUSES
