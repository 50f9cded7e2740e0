"""Fault injection: whatever fails, each run gets exactly one job, each event goes out once, nothing stays stuck.

The whole flow runs in local mode on the real example, once per fault, each fault in its own
dataset of one shared local stack (so a scenario costs a flow, not a stack). Faults are injected
into the AWS calls the handlers make (the calls of Powertools' idempotency table are its own
bookkeeping and are left alone):
- a crash right after each kind of call that changes something, in each step;
- PutEvents refusing the entry, once, at each point the flow publishes;
- ResourceLimitExceeded, and throttling that outlasted botocore's retries, on the first of every
  SageMaker Create* call;
- every event delivered three times, in shuffled order.
After each flow (the local runtime runs the sweeper whenever it is idle) the version is deployed,
each run has exactly one training job, one transform job and one endpoint, every announcement was
published exactly once, and no event went to a dead-letter queue.
"""

from __future__ import annotations

import json
import os
import random
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from botocore.client import BaseClient
from botocore.exceptions import ClientError
from datadrop.local.runtime import LocalStack, _normalise_moto_event
from datadrop.state import TERMINAL_VERSION_STATUSES
from moto import mock_aws

from tests import strict_requests

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "penguins"
CONFIG = (EXAMPLE / "species.yaml").read_text()
DATA = (EXAMPLE / "penguins.csv").read_bytes()
ANNOUNCEMENTS = ["DatasetPrepared", "TrainingStarted", "RunEvaluated", "ModelApproved", "DeploymentStarted", "ModelDeployed"]

pytestmark = pytest.mark.e2e

# Every call a step makes that changes something outside it. A crash after a read is the same as a
# crash before the next call, so reads are covered by the crash after the write before them.
# test_the_crash_points_cover_every_write_the_flow_makes keeps this list complete.
CRASH_POINTS = [
    ("PrepareFunction", "PutObject"),
    ("PrepareFunction", "PutItem"),
    ("PrepareFunction", "PutEvents"),
    ("PrepareFunction", "UpdateItem"),
    ("TrainFunction", "UpdateItem"),
    ("TrainFunction", "PutItem"),
    ("TrainFunction", "CreateExperiment"),
    ("TrainFunction", "CreateTrial"),
    ("TrainFunction", "CreateTrialComponent"),
    ("TrainFunction", "AssociateTrialComponent"),
    ("TrainFunction", "TransactWriteItems"),
    ("TrainFunction", "CreateTrainingJob"),
    ("TrainFunction", "PutEvents"),
    ("EvaluateFunction", "UpdateItem"),
    ("EvaluateFunction", "PutItem"),
    ("EvaluateFunction", "TransactWriteItems"),
    ("EvaluateFunction", "BatchPutMetrics"),
    ("EvaluateFunction", "CreateModel"),
    ("EvaluateFunction", "CreateTransformJob"),
    ("EvaluateFunction", "PutObject"),
    ("EvaluateFunction", "UpdateTrialComponent"),
    ("EvaluateFunction", "CreateModelPackageGroup"),
    ("EvaluateFunction", "CreateModelPackage"),
    ("EvaluateFunction", "PutEvents"),
    ("DeployFunction", "UpdateItem"),
    ("DeployFunction", "PutItem"),
    ("DeployFunction", "CreateEndpointConfig"),
    ("DeployFunction", "CreateEndpoint"),
    ("DeployFunction", "PutEvents"),
]
READS = {"GetItem", "Query", "GetObject", "DescribeTrainingJob", "DescribeTransformJob", "DescribeEndpoint"}
PUBLISHING_POINTS = 5  # PutEvents calls of a clean flow (evaluate publishes RunEvaluated and the decision in one)


class InjectedCrash(Exception):
    """The process died right after an AWS call took effect."""


@dataclass
class Faults:
    """What to break in the current scenario; each fault fires once."""

    idempotency_table: str
    crash_after: tuple[str, str] | None = None
    refuse_put_events_at: int | None = None  # the n-th PutEvents of the scenario's handlers
    capacity_code: str | None = None  # raised by the first call of every SageMaker Create* per resource
    crashed: bool = False
    in_flight: set[str] = field(default_factory=set)  # event ids of the PutEvents a crash followed
    put_events_seen: int = 0
    refused: bool = False
    capacity_refused: set[tuple[str, str]] = field(default_factory=set)

    def reset(self, **changes: Any) -> None:
        self.crash_after, self.refuse_put_events_at, self.capacity_code = None, None, None
        self.crashed, self.put_events_seen, self.refused = False, 0, False
        self.in_flight = set()
        self.capacity_refused = set()
        for name, value in changes.items():
            setattr(self, name, value)


def _install(faults: Faults) -> Iterator[None]:
    validated_call = BaseClient._make_api_call

    def faulty_call(client: BaseClient, operation: str, params: dict[str, Any]) -> Any:
        function = os.environ.get("AWS_LAMBDA_FUNCTION_NAME")
        if function is None or params.get("TableName") == faults.idempotency_table:
            return validated_call(client, operation, params)
        # Local SageMaker announces its state changes on the default bus from inside the handler's
        # process; that is SageMaker's doing, not a step's, so only the service bus counts.
        publishes = operation == "PutEvents" and any(entry.get("EventBusName") for entry in params["Entries"])
        if operation == "PutEvents" and not publishes:
            return validated_call(client, operation, params)
        if publishes:
            faults.put_events_seen += 1
            if faults.refuse_put_events_at == faults.put_events_seen and not faults.refused:
                faults.refused = True
                entries = [{"ErrorCode": "InternalException", "ErrorMessage": "injected"} for _ in params["Entries"]]
                return {"FailedEntryCount": len(entries), "Entries": entries}
        service = client.meta.service_model.service_name
        if faults.capacity_code and service == "sagemaker" and operation.startswith("Create"):
            resource = next((str(value) for name, value in params.items() if name.endswith("Name")), "")
            if (operation, resource) not in faults.capacity_refused:
                faults.capacity_refused.add((operation, resource))
                raise ClientError({"Error": {"Code": faults.capacity_code, "Message": "injected"}}, operation)
        response = validated_call(client, operation, params)
        if faults.crash_after == (function, operation) and not faults.crashed:
            faults.crashed = True
            if publishes:
                faults.in_flight = {json.loads(entry["Detail"])["event_id"] for entry in params["Entries"]}
            raise InjectedCrash(f"{function} died after {operation}")
        return response

    BaseClient._make_api_call = faulty_call  # type: ignore[method-assign]
    try:
        yield
    finally:
        BaseClient._make_api_call = validated_call  # type: ignore[method-assign]


class ShufflingStack(LocalStack):
    """Delivers what is waiting in every rule's queue three times, in a shuffled order, when asked to."""

    triplicate: bool = False
    rng: random.Random = random.Random(7)

    def _deliver_one_batch(self) -> bool:
        if not self.triplicate:
            return super()._deliver_one_batch()
        waiting = []
        for queue_url, (route, _) in self._queues.items():
            for message in self.sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", []):
                waiting.append((route, message["Body"]))
                self.sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
        deliveries = [(route, body) for route, body in waiting for _ in range(3)]
        self.rng.shuffle(deliveries)
        for route, body in deliveries:
            delivery = self._invoke(route, _normalise_moto_event(json.loads(body)))
            if delivery.error is not None:
                self.dead_letters.append(delivery)
        return bool(deliveries)


@pytest.fixture(scope="module")
def shared() -> Iterator[tuple[ShufflingStack, Faults]]:
    assert strict_requests.installed()
    with mock_aws(), ShufflingStack(template_path=REPO / "template.yaml") as stack:
        faults = Faults(idempotency_table=stack.settings.idempotency_table_name)
        installed = _install(faults)
        next(installed)
        try:
            yield stack, faults
        finally:
            next(installed, None)


_scenario_numbers = iter(range(1, 1000))


def _flow(stack: ShufflingStack, config: str = CONFIG) -> str:
    """Upload the example as a new dataset and drain the stack; returns the dataset name."""
    dataset = f"faults-{next(_scenario_numbers):03d}"
    stack.put_config(dataset, config)
    stack.s3.put_object(Bucket=stack.settings.data_bucket_name, Key=f"incoming/{dataset}/penguins.csv", Body=DATA)
    dead_before = len(stack.dead_letters)
    stack.drain()
    assert stack.dead_letters[dead_before:] == [], [delivery.error for delivery in stack.dead_letters[dead_before:]]
    return dataset


def _item(stack: LocalStack, dataset: str, version: str) -> dict[str, Any]:
    """The version's raw item: what the sweeper's index sees (a record keeps only what readers need)."""
    return stack.services.state.get(stack.services.state.version_item(dataset, version)) or {}


def _assert_done_exactly_once(stack: LocalStack, dataset: str, may_repeat: frozenset[str] = frozenset()) -> None:
    versions = stack.services.state.list_versions(dataset)
    assert [version.status for version in versions] == ["DEPLOYED"], [
        (version.decision_reason, version.failure_reason, stack.services.state.list_runs(dataset, version.version))
        for version in versions
    ]
    assert all(version.status in TERMINAL_VERSION_STATUSES | {"DEPLOYED"} for version in versions)
    (version,) = versions
    assert version.outbox == {} and "attention" not in _item(stack, dataset, version.version)

    ours = f"--{dataset}-"
    assert len([job for job in stack.compute.jobs("training") if ours in job]) == 1
    assert len([job for job in stack.compute.jobs("transform") if ours in job]) == 1
    assert len(stack.sagemaker.list_training_jobs(NameContains=dataset)["TrainingJobSummaries"]) == 1
    assert len(stack.sagemaker.list_transform_jobs(NameContains=dataset)["TransformJobSummaries"]) == 1
    assert len(stack.sagemaker.list_endpoints(NameContains=dataset)["Endpoints"]) == 1

    published = [event for event in stack.published if event["detail"].get("dataset") == dataset]
    ids_by_type: dict[str, set[str]] = {}
    for event in published:
        ids_by_type.setdefault(event["detail-type"], set()).add(event["detail"]["event_id"])
    # One announcement of each kind: never a second, different announcement of the same change.
    assert {kind: len(ids) for kind, ids in ids_by_type.items()} == dict.fromkeys(ANNOUNCEMENTS, 1)
    copies = Counter(event["detail"]["event_id"] for event in published)
    repeated = {event_id for event_id, count in copies.items() if count > 1}
    # A process that dies after PutEvents succeeded and before the outbox entries are removed cannot
    # know the events went out; the retry publishes them again with the same event_id (subscribers
    # drop them by id, as datadrop's own handlers do). Nothing else may ever repeat, nor twice.
    assert repeated <= may_repeat, copies
    assert max(copies.values()) <= 2, copies


def test_a_clean_flow_publishes_each_announcement_once(shared: tuple[ShufflingStack, Faults]) -> None:
    stack, faults = shared
    faults.reset()
    _assert_done_exactly_once(stack, _flow(stack))


def test_the_crash_points_cover_every_write_the_flow_makes(shared: tuple[ShufflingStack, Faults]) -> None:
    stack, faults = shared
    faults.reset()
    start = len(strict_requests.RECORDED)
    _flow(stack)
    made = {
        (call.function, call.operation)
        for call in strict_requests.RECORDED[start:]
        # The sweeper has no writes of its own to crash after; SageMaker's own work is not a step's.
        if call.function and call.function not in ("SweepFunction", "SageMakerExecutionRole") and call.operation not in READS
    }
    made.discard(("PrepareFunction", "DeleteItem"))  # Powertools' own (idempotency table), never ours
    made.discard(("DeployFunction", "DeleteItem"))  # the same, for the endpoint's Creating event deploy ignores
    assert made - set(CRASH_POINTS) == set(), "add these to CRASH_POINTS"
    assert faults.put_events_seen == PUBLISHING_POINTS


@pytest.mark.parametrize("crash_point", CRASH_POINTS, ids=[f"{f}-{op}" for f, op in CRASH_POINTS])
def test_a_crash_after_any_write_loses_nothing_and_repeats_nothing(
    shared: tuple[ShufflingStack, Faults], crash_point: tuple[str, str]
) -> None:
    stack, faults = shared
    faults.reset(crash_after=crash_point)
    dataset = _flow(stack)
    assert faults.crashed, f"the flow never made {crash_point}"
    _assert_done_exactly_once(stack, dataset, may_repeat=frozenset(faults.in_flight))


@pytest.mark.parametrize("publication", range(1, PUBLISHING_POINTS + 1))
def test_put_events_refusing_once_loses_no_announcement(shared: tuple[ShufflingStack, Faults], publication: int) -> None:
    stack, faults = shared
    faults.reset(refuse_put_events_at=publication)
    dataset = _flow(stack)
    assert faults.refused
    _assert_done_exactly_once(stack, dataset)


@pytest.mark.parametrize("code", ["ResourceLimitExceeded", "ThrottlingException"])
def test_no_capacity_on_every_create_waits_and_then_finishes(shared: tuple[ShufflingStack, Faults], code: str) -> None:
    stack, faults = shared
    faults.reset(capacity_code=code)
    dataset = _flow(stack)
    refused = {operation for operation, _ in faults.capacity_refused}
    assert stack.services.state.list_versions(dataset)[0].status == "DEPLOYED", [r.as_dict() for r in stack.sweeps[-12:]]
    assert {"CreateTrainingJob", "CreateTransformJob", "CreateEndpoint", "CreateModel", "CreateEndpointConfig"} <= refused
    _assert_done_exactly_once(stack, dataset)


def test_every_event_delivered_three_times_in_shuffled_order(shared: tuple[ShufflingStack, Faults]) -> None:
    stack, faults = shared
    faults.reset()
    stack.triplicate = True
    try:
        dataset = _flow(stack)
    finally:
        stack.triplicate = False
    _assert_done_exactly_once(stack, dataset)


# -- a Bayesian search: the tuning job's training jobs are adopted as runs -------------------------
BAYESIAN = """target: species
threshold: 0.5
hyperparameters: {num_round: 10, max_depth: {min: 2, max: 6, type: int}}
search: {strategy: bayesian, max_runs: 2, max_parallel: 1, seed: 1}
"""
# The writes a Bayesian search adds (adoption: the run, its mapping and its slot in one transaction,
# then its Experiments run), and the ones it shares with the grid flow, as the tuning flow makes them.
TUNING_CRASH_POINTS = [
    ("TrainFunction", "UpdateItem"),
    ("TrainFunction", "CreateExperiment"),
    ("TrainFunction", "CreateTrial"),
    ("TrainFunction", "CreateHyperParameterTuningJob"),
    ("TrainFunction", "PutEvents"),
    ("EvaluateFunction", "TransactWriteItems"),
    ("EvaluateFunction", "CreateTrialComponent"),
    ("EvaluateFunction", "AssociateTrialComponent"),
    ("EvaluateFunction", "UpdateItem"),
    ("EvaluateFunction", "PutItem"),
    ("EvaluateFunction", "PutEvents"),
]


def _assert_searched_exactly_once(stack: LocalStack, dataset: str, may_repeat: frozenset[str] = frozenset()) -> None:
    (version,) = stack.services.state.list_versions(dataset)
    runs = stack.services.state.list_runs(dataset, version.version)
    assert version.status == "DEPLOYED", (version.decision_reason, version.failure_reason, runs)
    assert version.outbox == {} and "attention" not in _item(stack, dataset, version.version) and version.running == 0
    ours = [name for name in stack.compute.tuning_jobs() if f"--{dataset}-" in name]
    assert len(ours) == 1
    jobs = [job for job in stack.compute.jobs("training") if job.startswith(ours[0])]
    assert len(jobs) == 2
    assert sorted(run.training_job for run in runs) == sorted(jobs) and [run.run_index for run in runs] == [1, 2]
    assert all(run.status == "EVALUATED" for run in runs)
    components = stack.sagemaker.list_trial_components(TrialName=f"datadrop--{dataset}-{version.version}")
    assert len(components["TrialComponentSummaries"]) == 3  # two runs and the data preparation's record

    published = [event for event in stack.published if event["detail"].get("dataset") == dataset]
    ids_by_type: dict[str, set[str]] = {}
    for event in published:
        ids_by_type.setdefault(event["detail-type"], set()).add(event["detail"]["event_id"])
    assert {kind: len(ids) for kind, ids in ids_by_type.items()} == {**dict.fromkeys(ANNOUNCEMENTS, 1), "RunEvaluated": 2}
    copies = Counter(event["detail"]["event_id"] for event in published)
    assert {event_id for event_id, count in copies.items() if count > 1} <= may_repeat, copies


def test_the_tuning_crash_points_are_writes_the_tuning_flow_makes(shared: tuple[ShufflingStack, Faults]) -> None:
    stack, faults = shared
    faults.reset()
    start = len(strict_requests.RECORDED)
    _assert_searched_exactly_once(stack, _flow(stack, BAYESIAN))
    made = {(call.function, call.operation) for call in strict_requests.RECORDED[start:]}
    assert set(TUNING_CRASH_POINTS) <= made


@pytest.mark.parametrize("crash_point", TUNING_CRASH_POINTS, ids=[f"{f}-{op}" for f, op in TUNING_CRASH_POINTS])
def test_a_crash_after_any_write_of_a_bayesian_search_loses_nothing_and_repeats_nothing(
    shared: tuple[ShufflingStack, Faults], crash_point: tuple[str, str]
) -> None:
    stack, faults = shared
    faults.reset(crash_after=crash_point)
    dataset = _flow(stack, BAYESIAN)
    assert faults.crashed, f"the flow never made {crash_point}"
    _assert_searched_exactly_once(stack, dataset, may_repeat=frozenset(faults.in_flight))


def test_a_bayesian_search_under_triple_shuffled_delivery_adopts_each_job_once(shared: tuple[ShufflingStack, Faults]) -> None:
    stack, faults = shared
    faults.reset()
    stack.triplicate = True
    try:
        dataset = _flow(stack, BAYESIAN)
    finally:
        stack.triplicate = False
    _assert_searched_exactly_once(stack, dataset)
