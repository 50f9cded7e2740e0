"""The events datadrop publishes (source `datadrop`, on its own bus).

Published details are pydantic models, so subscribers get a stable, documented shape. The events
the steps consume as EventBridge delivers them (S3's, SageMaker's, and the envelopes around
datadrop's own) are in the datadrop.incoming package; `endpoint_status` stays here for the deploy step's
calls, which read DescribeEndpoint without any event.
"""

# No `from __future__ import annotations` here, nor in the other modules that define models
# (config, records, settings, quality, quality_summary, datadrop.incoming): pydantic would compile every
# field's annotation string when it creates the class, which cost every handler's import about 30 M
# instructions (4 % of `import boto3`; bench/layers.py). Annotations naming a class defined later
# are quoted.
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from datadrop.algorithms.base import DataFacts
from datadrop.config import (
    AlgorithmChoice,
    DeploymentSettings,
    ExperimentSettings,
    GateConfig,
    HyperparameterSpec,
    SearchConfig,
)
from datadrop.quality_summary import QualitySummary

SOURCE = "datadrop"


# Each handler validates a few of these models; defer_build builds a model's validator on its
# first use instead of at import, so a cold start pays only for the models it uses.
_LAZY = ConfigDict(defer_build=True)


class DatadropEvent(BaseModel):
    """Base of every published detail; DETAIL_TYPE is the EventBridge detail-type."""

    model_config = ConfigDict(extra="forbid", defer_build=True)
    DETAIL_TYPE: ClassVar[str]
    dataset: str
    version: str | None = None
    event_id: str | None = Field(
        None,
        description="Stable id of this announcement: a re-delivery (or, after a crash between PutEvents and its "
        "bookkeeping, a re-publication) carries the same id, so subscribers can drop duplicates",
    )


class SourceObject(BaseModel):
    model_config = _LAZY

    bucket: str
    key: str
    version_id: str | None = None
    etag: str | None = None


class PreparedArtifacts(BaseModel):
    model_config = _LAZY

    train: str = Field(description="S3 prefix of the train channel (headerless CSV, label first)")
    validation: str = Field(description="S3 prefix of the validation channel")
    test: str = Field(description="S3 URI of the held-out test rows: raw values, target removed")
    test_labels: str = Field(description="S3 URI of the held-out labels (JSON list)")
    recipe: str
    serving_bundle: str = Field(description="sourcedir.tar.gz with the inference script and the recipe")
    profile: str = Field(description="S3 URI of the data-quality report (JSON, datadrop.quality.QualityReport)")
    train_standardised: str | None = Field(
        None, description="S3 prefix of the train channel with standardised features (only when an algorithm reads it)"
    )
    validation_standardised: str | None = Field(None, description="S3 prefix of the validation channel, standardised")
    train_recordio: str | None = Field(
        None, description="S3 prefix of the standardised train rows as RecordIO-protobuf (only when an algorithm reads it)"
    )
    validation_recordio: str | None = Field(None, description="S3 prefix of the validation rows as RecordIO-protobuf")


class RunSummary(BaseModel):
    model_config = _LAZY

    run_index: int
    run_name: str
    training_job: str
    status: str
    hyperparameters: dict[str, str]
    algorithm: str = Field("xgboost", description="the algorithm the run trained (datadrop.algorithms)")
    metrics: dict[str, float] = Field(default_factory=dict)
    model_data_url: str | None = None
    failure_reason: str | None = None
    evaluation_id: str | None = None  # the model scored on the test split (datadrop.names.evaluation_id)

    def metric_or(self, name: str) -> float | None:
        return self.metrics.get(name) if self.status == "EVALUATED" else None


class DatasetPrepared(DatadropEvent):
    DETAIL_TYPE: ClassVar[str] = "DatasetPrepared"
    version: str
    source: SourceObject
    artifacts: PreparedArtifacts
    problem_type: Literal["binary", "multiclass", "regression"]
    classes: list[str] = Field(description="the target's classes, in label-index order; empty for regression")
    rows: dict[str, int]
    metric: str
    threshold: float
    hyperparameters: dict[str, HyperparameterSpec] = Field(
        default_factory=dict,
        description="the search space of a version with one algorithm and no `algorithms` (events before them): "
        "a value is fixed, a list a grid axis, a range sampled",
    )
    algorithms: list[AlgorithmChoice] = Field(
        default_factory=list, description="the algorithms the runs train, each with its search space; empty: xgboost"
    )
    feature_dim: int = Field(0, ge=0, description="encoded features per row (the label not counted)")
    search: SearchConfig = Field(default_factory=SearchConfig)
    experiment: ExperimentSettings = Field(default_factory=ExperimentSettings)
    gate: GateConfig = Field(default_factory=GateConfig, description="what the best run must beat the champion by")
    approval: Literal["auto", "manual"] = Field("auto", description="manual: a person approves in the model registry")
    deployment: DeploymentSettings = Field(
        default_factory=DeploymentSettings, description="how the version's model replaces the one its endpoint serves"
    )
    quality: QualitySummary | None = Field(
        None, description="the data-quality report in short (the whole report: artifacts.profile); absent in older events"
    )

    def algorithm_choices(self) -> list[AlgorithmChoice]:
        """Each algorithm of the version's runs with its search space (an event without
        `algorithms`: XGBoost with `hyperparameters`)."""
        return self.algorithms or [AlgorithmChoice(name="xgboost", hyperparameters=self.hyperparameters)]

    def data_facts(self) -> DataFacts:
        """What the data decides about every run's hyperparameters."""
        return DataFacts(self.problem_type, len(self.classes), self.feature_dim, self.rows.get("train", 0))


class DatasetRejected(DatadropEvent):
    DETAIL_TYPE: ClassVar[str] = "DatasetRejected"
    source: SourceObject
    stage: Literal["config", "data"]
    reason: str


class TrainingStarted(DatadropEvent):
    DETAIL_TYPE: ClassVar[str] = "TrainingStarted"
    version: str
    experiment_name: str
    run_group: str
    runs: list[RunSummary]  # planned runs; empty for a Bayesian search, whose runs the tuning job launches
    tuning_job: str | None = None  # the SageMaker hyperparameter tuning job of a Bayesian search
    max_runs: int | None = None  # the tuning job's budget


class RunEvaluated(DatadropEvent):
    DETAIL_TYPE: ClassVar[str] = "RunEvaluated"
    version: str
    run: RunSummary
    report: str
    evaluation_id: str


class ChampionScore(BaseModel):
    """The model the endpoint serves when a version is judged, scored again on the new test rows."""

    model_config = _LAZY

    version: str = Field(description="the dataset version whose model serves")
    run_index: int
    value: float | None = Field(description="its held-out metric on the new test split; None when it could not be scored")
    report: str | None = Field(None, description="S3 URI of its evaluation report on the new test split")
    min_improvement: float = Field(description="how much better than this the best run had to be")
    failure_reason: str | None = Field(
        None, description="why it could not be scored (the decision then used the threshold alone)"
    )


class ModelDecision(DatadropEvent):
    version: str
    metric: str = Field(
        description="the held-out metric judged: accuracy, balanced_accuracy, macro_precision, macro_recall, macro_f1, "
        "roc_auc, log_loss (classification); r2, rmse, mae or mape (regression)"
    )
    value: float | None
    threshold: float = Field(
        description="a minimum for the higher-is-better metrics (accuracy-like and r2); a maximum for log_loss, rmse, "
        "mae and mape (lower is better)"
    )
    reason: str
    best_run: RunSummary | None
    run_count: int = Field(description="runs in this attempt of the version")
    failed_runs: int
    leaderboard: str | None = Field(
        None, description="S3 URI of the leaderboard JSON: every run, best first (kept out of the event, which must stay small)"
    )
    model_package_arn: str | None = None
    champion: ChampionScore | None = Field(
        None, description="the model in production, re-scored on this version's test split; None: no endpoint yet"
    )
    approval: Literal["auto", "manual"] = Field(
        "auto", description="auto: the gate approved it; manual: a person approved it in the model registry"
    )


class ModelApproved(ModelDecision):
    DETAIL_TYPE: ClassVar[str] = "ModelApproved"


class ModelRejected(ModelDecision):
    DETAIL_TYPE: ClassVar[str] = "ModelRejected"


class ModelPendingApproval(ModelDecision):
    """The best run passed the gate and waits in the model registry for a person (approval: manual)."""

    DETAIL_TYPE: ClassVar[str] = "ModelPendingApproval"


class DeploymentStarted(DatadropEvent):
    DETAIL_TYPE: ClassVar[str] = "DeploymentStarted"
    version: str
    endpoint_name: str
    endpoint_config_name: str
    model_name: str
    update: bool


class ModelDeployed(DatadropEvent):
    DETAIL_TYPE: ClassVar[str] = "ModelDeployed"
    version: str
    endpoint_name: str
    endpoint_config_name: str | None = None
    invocation_url: str


class DeploymentFailed(DatadropEvent):
    DETAIL_TYPE: ClassVar[str] = "DeploymentFailed"
    endpoint_name: str
    reason: str
    endpoint_config_name: str | None = Field(None, description="the endpoint config this deployment tried to put in service")
    endpoint_status: str | None = Field(
        None,
        description="where the endpoint ended: InService (the update was rolled back; the previous model serves), "
        "Failed (nothing serves; the next deployment deletes and re-creates it) or UpdateRollbackFailed (a mix of "
        "the old and new fleets serves)",
    )
    serving_version: str | None = Field(None, description="the dataset version whose model the endpoint still serves, if any")
    serving_endpoint_config: str | None = Field(None, description="the endpoint config the endpoint runs now, if any")


class DeploymentSuperseded(DatadropEvent):
    """An approved version that will not be deployed: a newer version of the dataset serves, is
    being deployed, or waits for the endpoint too (one deployment per endpoint at a time)."""

    DETAIL_TYPE: ClassVar[str] = "DeploymentSuperseded"
    version: str
    endpoint_name: str
    superseded_by: str = Field(description="the newer version that serves, or goes out, instead")
    reason: str


class VersionFailed(DatadropEvent):
    """A version ended without a decision: every run failed, or the sweeper gave up on it."""

    DETAIL_TYPE: ClassVar[str] = "VersionFailed"
    version: str
    stage: Literal["training", "evaluation", "deployment"]
    reason: str
    run_count: int | None = None
    failed_runs: int | None = None
    leaderboard: str | None = Field(None, description="S3 URI of the leaderboard JSON: every run with its failure reason")


class PublishFailed(RuntimeError):
    pass


# PutEvents takes at most 10 entries per request.
PUT_EVENTS_BATCH = 10


@dataclass
class EventPublisher:
    """Puts outbox entries on the service bus. The state store's outbox is the only caller: a
    step never publishes directly, so an event goes out only for a change that was recorded."""

    client: Any  # boto3 EventBridge client
    bus_name: str

    def publish_entries(self, entries: Sequence[Any], on_published: Callable[[str], None]) -> int:
        """Publish `entries` (event_id, detail_type, detail) in order; `on_published(event_id)` for
        each accepted one. Raises PublishFailed after the batch if EventBridge refused any."""
        published = 0
        for start in range(0, len(entries), PUT_EVENTS_BATCH):
            batch = entries[start : start + PUT_EVENTS_BATCH]
            response = self.client.put_events(
                Entries=[
                    {
                        "Source": SOURCE,
                        "DetailType": entry.detail_type,
                        "Detail": entry.detail,
                        "EventBusName": self.bus_name,
                        "Resources": [],
                    }
                    for entry in batch
                ]
            )
            refused = []
            for entry, result in zip(batch, response.get("Entries", [])):
                if result.get("ErrorCode"):
                    refused.append(f"{entry.detail_type}: {result.get('ErrorCode')} {result.get('ErrorMessage', '')}")
                else:
                    on_published(entry.event_id)
                    published += 1
            if refused:
                # The refused entries stay in the outbox; the retried invocation or the sweeper publishes them.
                raise PublishFailed("EventBridge refused " + "; ".join(refused))
        return published


_ENDPOINT_STATUS = {
    "IN_SERVICE": "InService",
    "CREATING": "Creating",
    "UPDATING": "Updating",
    "SYSTEM_UPDATING": "SystemUpdating",
    "ROLLING_BACK": "RollingBack",
    "OUT_OF_SERVICE": "OutOfService",
    "DELETING": "Deleting",
    "FAILED": "Failed",
    "UPDATE_ROLLBACK_FAILED": "UpdateRollbackFailed",
}


def endpoint_status(value: str) -> str:
    """An EndpointStatus in DescribeEndpoint's spelling (InService), whichever way it came (IN_SERVICE)."""
    return _ENDPOINT_STATUS.get(value.upper(), value)
