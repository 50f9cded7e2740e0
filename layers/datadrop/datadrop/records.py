"""The state table's records, typed: a dataset version and each of its runs, with the one
transition table that says which status may follow which (datadrop.state writes them, every
change conditional on that table). Reads return these models, never raw items."""

# No `from __future__ import annotations` in the modules that define models: see datadrop.events.
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from datadrop.events import DatasetPrepared, ModelApproved


class VersionStatus(StrEnum):
    PREPARED = "PREPARED"
    TRAINING = "TRAINING"
    APPROVED = "APPROVED"
    PENDING_APPROVAL = "PENDING_APPROVAL"  # passed the gate; approval: manual waits for a person
    REJECTED = "REJECTED"  # evaluated: below the threshold, not better than the champion, or rejected by a person
    FAILED = "FAILED"  # every run failed, or the sweeper gave up on it
    DEPLOYING = "DEPLOYING"
    DEPLOYED = "DEPLOYED"
    DEPLOYMENT_FAILED = "DEPLOYMENT_FAILED"
    SUPERSEDED = "SUPERSEDED"  # approved, not deployed: a newer version of the dataset serves or goes out instead


class RunStatus(StrEnum):
    PENDING = "PENDING"  # planned; its training job is not created yet (e.g. waiting for SageMaker capacity)
    TRAINING = "TRAINING"
    EVALUATING = "EVALUATING"
    EVALUATED = "EVALUATED"
    FAILED = "FAILED"


# Which status may follow which. A status listed among its own successors is re-entrant: a retry
# after a failure half-way through the step repeats its (idempotent) work.
VERSION_TRANSITIONS: dict[VersionStatus, frozenset[VersionStatus]] = {
    VersionStatus.PREPARED: frozenset({VersionStatus.TRAINING, VersionStatus.FAILED}),
    VersionStatus.TRAINING: frozenset(
        {
            VersionStatus.TRAINING,
            VersionStatus.APPROVED,
            VersionStatus.REJECTED,
            VersionStatus.FAILED,
            VersionStatus.PENDING_APPROVAL,
        }
    ),
    # A person approves or rejects the package in the model registry (Studio, or `datadrop approve|reject`).
    VersionStatus.PENDING_APPROVAL: frozenset({VersionStatus.APPROVED, VersionStatus.REJECTED}),
    # An approval waits in APPROVED while its endpoint is busy (one deployment per endpoint at a time).
    VersionStatus.APPROVED: frozenset({VersionStatus.DEPLOYING, VersionStatus.DEPLOYMENT_FAILED, VersionStatus.SUPERSEDED}),
    VersionStatus.DEPLOYING: frozenset({VersionStatus.DEPLOYING, VersionStatus.DEPLOYED, VersionStatus.DEPLOYMENT_FAILED}),
    VersionStatus.REJECTED: frozenset(),
    VersionStatus.DEPLOYED: frozenset(),
    # A retry (`datadrop retry`, or uploading the same bytes again) starts a failed version over.
    VersionStatus.FAILED: frozenset({VersionStatus.PREPARED}),
    VersionStatus.DEPLOYMENT_FAILED: frozenset(),
    VersionStatus.SUPERSEDED: frozenset(),
}
RUN_TRANSITIONS: dict[RunStatus, frozenset[RunStatus]] = {
    # A run takes one of the version's training slots on PENDING → TRAINING, before its job is
    # created, and gives it back when it leaves TRAINING (TRAINING → PENDING: SageMaker had no capacity).
    RunStatus.PENDING: frozenset({RunStatus.TRAINING, RunStatus.FAILED}),
    RunStatus.TRAINING: frozenset({RunStatus.PENDING, RunStatus.EVALUATING, RunStatus.FAILED}),
    RunStatus.EVALUATING: frozenset({RunStatus.EVALUATING, RunStatus.EVALUATED, RunStatus.FAILED}),
    RunStatus.EVALUATED: frozenset(),
    RunStatus.FAILED: frozenset(),
}
TERMINAL_VERSION_STATUSES = frozenset(status for status, successors in VERSION_TRANSITIONS.items() if not successors) | {
    VersionStatus.FAILED,  # terminal until someone retries it
}
TERMINAL_RUN_STATUSES = frozenset(status for status, successors in RUN_TRANSITIONS.items() if not successors)


# Each step reads a few of these; defer_build leaves the others unbuilt. A handler builds the ones it
# uses at import (datadrop.lambda_support.prebuilt).
_RECORD = ConfigDict(extra="ignore", frozen=True, defer_build=True)


class _Record(BaseModel):
    # Items carry bookkeeping no reader needs (keys, attention); unknown attributes are ignored.
    model_config = _RECORD

    dataset: str
    version: str
    attempt: int = 1
    outbox: dict[str, Any] = Field(default_factory=dict)  # events written with a change, not yet published
    milestones: dict[str, str] = Field(default_factory=dict)  # what was recorded once, and when
    failure_reason: str | None = None
    waiting_reason: str | None = None  # SageMaker's last "not now"
    created_at: str = ""
    updated_at: str = ""
    status_since: str = ""


class VersionRecord(_Record):
    """One dataset version (sk VERSION#<version>): prepared, trained, decided, deployed."""

    status: VersionStatus
    prepared: str | None = None  # the DatasetPrepared event, JSON (kept whole for the sweeper and retries)
    source: dict[str, Any] | None = None
    rows: dict[str, int] = Field(default_factory=dict)
    metric: str = "accuracy"
    threshold: float | None = None
    problem_type: str | None = None
    classes: list[str] = Field(default_factory=list)
    artifacts: dict[str, str] = Field(default_factory=dict)
    # fan-out and fan-in (datadrop.state: training slots)
    run_count: int | None = None  # planned runs; a tuning job's budget until it ends, then its job count
    max_parallel: int | None = None
    running: int = 0  # runs in TRAINING
    started: int = 0  # runs of this attempt that left PENDING
    tuning_job: str | None = None  # a Bayesian search's SageMaker tuning job
    tuning_ended: str | None = None  # its final status, once seen
    tuning_failure_reason: str | None = None
    # the decision and the deployment
    decision_reason: str | None = None
    best_run: int | None = None
    best_value: float | None = None
    model_package_arn: str | None = None
    decision: str | None = None  # the ModelApproved/ModelRejected event, JSON
    endpoint_name: str | None = None
    endpoint_config_name: str | None = None
    endpoint_status: str | None = None  # where the endpoint ended when this version's deployment failed
    serving_version: str | None = None  # which version the endpoint still served then (None: none)
    superseded_by: str | None = None

    def prepared_event(self) -> DatasetPrepared:
        if self.prepared is None:
            raise ValueError(f"version {self.version} of {self.dataset} has no DatasetPrepared event")
        return DatasetPrepared.model_validate_json(self.prepared)

    def approval(self) -> ModelApproved:
        if self.decision is None:
            raise ValueError(f"version {self.version} of {self.dataset} has no decision")
        return ModelApproved.model_validate_json(self.decision)


class ChampionStatus(StrEnum):
    EVALUATING = "EVALUATING"
    EVALUATED = "EVALUATED"
    FAILED = "FAILED"  # the champion could not score the new test split: the threshold alone judges


class ChampionRecord(BaseModel):
    """The champion (the model the endpoint served when a version was judged) re-scored on that
    version's test split (sk VERSION#<version>#CHAMPION#<champion version>)."""

    model_config = _RECORD

    dataset: str
    version: str  # the version being judged (its test split)
    champion_version: str
    champion_run_index: int
    champion_attempt: int = 1
    status: ChampionStatus
    model_name: str
    model_data_url: str
    transform_job: str
    metrics: dict[str, float] = Field(default_factory=dict)
    report: str | None = None
    evaluation_id: str | None = None
    failure_reason: str | None = None
    waiting_reason: str | None = None


class EndpointSlot(BaseModel):
    """One version's deployment as the endpoint's record holds it."""

    model_config = _RECORD

    dataset: str
    version: str
    order: str  # versions compare by this: when the version was prepared, then its name
    config: str  # its endpoint config
    model: str


class EndpointRecord(BaseModel):
    """One endpoint (pk ENDPOINT#<name>): what it serves, the one deployment in flight, and the
    newest approval waiting for it. Every change is conditional on what the writer read, so two
    deployments never interleave on one endpoint."""

    model_config = _RECORD

    endpoint_name: str
    dataset: str
    serving: EndpointSlot | None = None
    in_flight: EndpointSlot | None = None
    waiting: EndpointSlot | None = None
    updated_at: str = ""


class RunRecord(_Record):
    """One attempt of one run (sk VERSION#<version>#RUN#<nnnn>): a training job and its evaluation."""

    run_index: int
    status: RunStatus
    run_name: str
    training_job: str
    hyperparameters: dict[str, str] = Field(default_factory=dict)  # as a person wrote them (not script mode's encoding)
    algorithm: str = "xgboost"  # datadrop.algorithms name; records written before there was a choice are XGBoost's
    tuning_job: str | None = None  # set when a tuning job launched it (adopted)
    training_metrics: dict[str, float] = Field(default_factory=dict)  # SageMaker's, from DescribeTrainingJob
    model_data_url: str | None = None
    metrics: dict[str, float] = Field(default_factory=dict)  # held-out
    report: str | None = None
    evaluation_id: str | None = None
