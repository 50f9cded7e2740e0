"""Local mode: a second version replaces the first blue/green, and the endpoint never fails a request."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from datadrop.local.runtime import LocalStack
from moto import mock_aws

from tests.e2e.polling import Poller

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "penguins"
DATA = EXAMPLE / "penguins.csv"

pytestmark = pytest.mark.e2e


@pytest.fixture
def stack() -> Iterator[LocalStack]:
    with mock_aws(), LocalStack(template_path=REPO / "template.yaml") as local:
        yield local


def test_a_second_version_is_deployed_as_an_update_and_a_polling_client_sees_no_failed_request(stack: LocalStack) -> None:
    config = yaml.safe_load((EXAMPLE / "species.yaml").read_text())
    stack.put_config("penguins", yaml.safe_dump(config))
    stack.upload(DATA, "penguins")
    stack.drain()
    (first,) = stack.events_of("ModelDeployed")
    url = first["invocation_url"]

    swaps: list[tuple[float, float]] = []
    update = stack.compute.update_endpoint

    def timed_update(request: dict[str, Any]) -> None:
        started = time.monotonic()
        update(request)
        swaps.append((started, time.monotonic()))

    stack.compute.update_endpoint = timed_update  # type: ignore[method-assign]
    poller = Poller(url)
    poller.start()
    try:
        # A new config (the same data): a new version, rolled out blue/green as its config says.
        second_config = {**config, "threshold": 0.85, "deployment": {"traffic": "canary", "step_percent": 50, "wait_seconds": 60}}
        stack.put_config("penguins", yaml.safe_dump(second_config))
        stack.upload(DATA, "penguins")
        stack.drain()
        time.sleep(0.2)  # a few more requests on the new model
    finally:
        poller.stop()
    assert stack.dead_letters == [], [d.error for d in stack.dead_letters]

    deployed = stack.events_of("ModelDeployed")
    assert len(deployed) == 2 and deployed[0]["version"] == first["version"]
    second = deployed[1]
    assert second["version"] != first["version"]
    assert second["invocation_url"] == url  # the endpoint keeps its URL
    started = [event for event in stack.events_of("DeploymentStarted") if event["version"] == second["version"]]
    assert [event["update"] for event in started] == [True]
    assert stack.events_of("DeploymentFailed") == []
    described = stack.sagemaker.describe_endpoint(EndpointName="datadrop--penguins")
    assert second["version"] in stack.compute.describe_endpoint("datadrop--penguins")["EndpointConfigName"]  # type: ignore[index]
    assert described["EndpointName"] == "datadrop--penguins"

    (swap,) = swaps
    during = [answer for answer in poller.answers if swap[0] <= answer[0] <= swap[1]]
    assert during, "the client asked nothing while the model was swapped"
    failed = [answer for answer in poller.answers if answer[1] != 200]
    assert failed == [], failed[:3]
    assert len(poller.answers) > 20
    assert {answer[2] for answer in poller.answers} <= {"Adelie", "Chinstrap", "Gentoo"}
    endpoint = stack.services.state.get_endpoint("datadrop--penguins")
    assert endpoint is not None and endpoint.serving is not None and endpoint.serving.version == second["version"]
    assert any("blue/green" in line for line in stack.compute.log)


def test_a_new_model_that_fails_its_health_check_is_rolled_back_and_the_old_one_keeps_serving(stack: LocalStack) -> None:
    config = yaml.safe_load((EXAMPLE / "species.yaml").read_text())
    stack.put_config("penguins", yaml.safe_dump(config))
    stack.upload(DATA, "penguins")
    stack.drain()
    (first,) = stack.events_of("ModelDeployed")

    # The local SageMaker's new fleet for the next version does not come up (as a container whose
    # model does not load): SageMaker keeps the old fleet and reports the update rolled back.
    materialise = stack.compute._endpoint_model

    def broken_for_new_configs(endpoint: str, config_name: str) -> Any:
        if first["version"] not in config_name:
            raise RuntimeError("the model server did not answer /ping")
        return materialise(endpoint, config_name)

    stack.compute._endpoint_model = broken_for_new_configs  # type: ignore[method-assign]
    poller = Poller(first["invocation_url"])
    poller.start()
    try:
        stack.put_config("penguins", yaml.safe_dump({**config, "threshold": 0.85}))
        stack.upload(DATA, "penguins")
        stack.drain()
    finally:
        poller.stop()
    assert stack.dead_letters == [], [d.error for d in stack.dead_letters]

    (failed,) = stack.events_of("DeploymentFailed")
    assert failed["version"] != first["version"]
    assert failed["endpoint_status"] == "InService" and failed["serving_version"] == first["version"]
    assert "did not answer /ping" in failed["reason"]
    assert [event["version"] for event in stack.events_of("ModelDeployed")] == [first["version"]]
    item = stack.services.state.get_version("penguins", failed["version"])
    assert item is not None and item.status == "DEPLOYMENT_FAILED" and item.serving_version == first["version"]
    described = stack.compute.describe_endpoint("datadrop--penguins")
    assert described is not None and first["version"] in described["EndpointConfigName"]
    assert "did not answer /ping" in described["FailureReason"]
    assert poller.answers and {answer[1] for answer in poller.answers} == {200}
