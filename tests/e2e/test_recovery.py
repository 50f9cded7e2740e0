"""Recovery in local mode: lost events are found by the sweeper, stuck work is ended with a reason,
and a failed version starts over when the same bytes are uploaded again."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from botocore.client import BaseClient
from botocore.exceptions import ClientError
from datadrop.local import runner
from datadrop.local.runtime import LocalStack
from datadrop.local.twins import xgboost as xgboost_twin
from moto import mock_aws

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "penguins"
DATA = (EXAMPLE / "penguins.csv").read_bytes()

pytestmark = pytest.mark.e2e


@pytest.fixture
def stack() -> Iterator[LocalStack]:
    with mock_aws(), LocalStack(template_path=REPO / "template.yaml") as local:
        local.put_config("penguins", (EXAMPLE / "species.yaml").read_text())
        yield local


def _upload(stack: LocalStack) -> None:
    stack.s3.put_object(Bucket=stack.settings.data_bucket_name, Key="incoming/penguins/penguins.csv", Body=DATA)


def _queue_of(stack: LocalStack, rule: str) -> str:
    return next(url for url, (_, name) in stack._queues.items() if name == rule)


def test_a_lost_training_event_is_found_by_the_sweeper(stack: LocalStack) -> None:
    _upload(stack)
    while stack._deliver_one_batch():  # prepare, then train: the training job is created
        pass
    assert stack.compute.run_next() is not None  # the job runs and SageMaker announces Completed...
    stack.sqs.purge_queue(QueueUrl=_queue_of(stack, "EvaluateFunction-TrainingJobStateChange"))  # ...which is lost
    stack.drain()
    assert stack.dead_letters == []
    (deployed,) = stack.events_of("ModelDeployed")
    assert deployed["endpoint_name"] == "datadrop--penguins"
    continued = [line for report in stack.sweeps for line in report.continued]
    assert any("Completed: evaluating" in line for line in continued), continued


def test_training_that_failed_for_a_transient_reason_is_retried_by_uploading_the_same_bytes(
    stack: LocalStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_train = xgboost_twin.train
    calls = []

    def flaky_train(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) == 1:
            raise runner.TrainingFailed("InternalServerError: the instance was lost (injected)")
        return real_train(*args, **kwargs)

    monkeypatch.setattr(xgboost_twin, "train", flaky_train)
    _upload(stack)
    stack.drain()
    (rejected,) = stack.events_of("VersionFailed")
    assert "every run failed" in rejected["reason"] and "instance was lost" in rejected["reason"]
    (version,) = stack.services.state.list_versions("penguins")
    assert version.status == "FAILED"

    _upload(stack)  # the same bytes again: before, this answered "duplicate" forever
    stack.drain()
    assert stack.dead_letters == []
    first, second = stack.events_of("DatasetPrepared")
    assert first["version"] == second["version"] and first["event_id"] != second["event_id"]
    (deployed,) = stack.events_of("ModelDeployed")
    assert deployed["version"] == version.version
    (version,) = stack.services.state.list_versions("penguins")
    assert version.status == "DEPLOYED" and version.attempt == 2
    jobs = stack.compute.jobs("training")
    assert jobs == [f"datadrop--penguins-{version.version}-r01", f"datadrop--penguins-{version.version}-r01-a2"]


def test_work_stuck_past_the_limit_ends_with_a_reason_and_can_be_retried(stack: LocalStack) -> None:
    validated_call = BaseClient._make_api_call
    quota_full = True

    def no_capacity(client: BaseClient, operation: str, params: dict[str, Any]) -> Any:
        if operation == "CreateTrainingJob" and quota_full:
            raise ClientError({"Error": {"Code": "ResourceLimitExceeded", "Message": "ml.m5.large quota is 0"}}, operation)
        return validated_call(client, operation, params)

    BaseClient._make_api_call = no_capacity  # type: ignore[method-assign]
    try:
        _upload(stack)
        stack.drain(max_idle_sweeps=3)
        (version,) = stack.services.state.list_versions("penguins")
        assert version.status == "TRAINING"  # waiting, not failed, not dead-lettered
        assert stack.dead_letters == []
        (run,) = stack.services.state.list_runs("penguins", version.version)
        assert run.status == "PENDING" and "ResourceLimitExceeded" in (run.waiting_reason or "")

        report = stack.sweep(now=datetime.now(UTC) + timedelta(hours=25))
        assert len(report.ended) == 1, report
        (failed,) = stack.events_of("VersionFailed")
        assert failed["stage"] == "training"
        assert "stuck in TRAINING" in failed["reason"] and f"datadrop retry penguins {version.version}" in failed["reason"]
        assert stack.services.state.list_versions("penguins")[0].status == "FAILED"
    finally:
        BaseClient._make_api_call = validated_call  # type: ignore[method-assign]

    quota_full = False
    _upload(stack)
    stack.drain()
    (deployed,) = stack.events_of("ModelDeployed")
    assert deployed["version"] == version.version
