"""What an algorithm declares, once, for every step that launches, scores or serves it.

One module per algorithm in this package (found by `datadrop.algorithms.registry`), each with a
module-level ``ALGORITHM`` instance of a subclass of `Algorithm`. Lambda imports this: standard
library only. The algorithm's local twin (datadrop.local.twins.<module>) is named here but imported
only in local mode.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar, Literal

ProblemType = Literal["binary", "multiclass", "regression"]
CSV = "text/csv"
JSON = "application/json"
JSONLINES = "application/jsonlines"
RECORDIO_PROTOBUF = "application/x-recordio-protobuf"


class AlgorithmError(ValueError):
    """An algorithm that cannot do what the config asks (a problem type it does not support, say);
    the message says what to change."""


@dataclass(frozen=True)
class DataFacts:
    """What the data decides about a run's hyperparameters (feature_dim, num_classes, k, ...)."""

    problem_type: ProblemType
    num_classes: int  # 0 for regression
    feature_dim: int  # encoded features, the label not counted
    train_rows: int


@dataclass(frozen=True)
class ResponseFormat:
    """How datadrop's pre- and postprocessing stages talk to the algorithm's inference container.

    The preprocessing stage sends the encoded features as `request_content_type`, asking for
    `accept`; the postprocessing stage reads the answer with the keys below and turns it into labels
    and probabilities in the dataset's own terms. Passed to both stages as JSON
    (`DATADROP_ALGORITHM_IO`), so the container-side script needs no algorithm table of its own.

    layout "records": one object per row: {"predictions": [{...}, ...]} (JSON) or one {...} per line
    (JSON Lines); `score_key` and `label_key` name the fields. layout "columns": {"<probabilities_key>":
    [[p, ...], ...], "<prediction_key>": [...]}, one entry per row.
    """

    request_content_type: str
    accept: str
    layout: Literal["records", "columns"] = "records"
    records_key: str | None = "predictions"  # None: JSON Lines, one record per line
    score_key: str | None = "score"  # binary: P(class 1) or [P0, P1]; multiclass: [P0, ..]; regression: the value
    label_key: str | None = "predicted_label"  # the class index (classification) or the value (regression)
    probabilities_key: str | None = None
    prediction_key: str | None = None


@dataclass(frozen=True)
class TrainingLaunch:
    """The algorithm's part of CreateTrainingJob (and of a tuning job's TrainingJobDefinition)."""

    algorithm_specification: dict[str, Any]  # TrainingImage, TrainingInputMode, MetricDefinitions when the container needs them
    hyperparameters: dict[str, str]  # as the job request carries them (script mode: JSON-encoded, plus sagemaker_*)
    extra_channels: list[dict[str, Any]] = field(default_factory=list)  # JumpStart's `model` channel


class Algorithm(ABC):
    """One of SageMaker's tabular algorithms, as datadrop trains, tunes, scores and serves it."""

    name: ClassVar[str]  # as the config spells it: "xgboost", "linear-learner", ...
    title: ClassVar[str]  # for people: "XGBoost", "Linear Learner"
    problem_types: ClassVar[frozenset[str]]
    training_content_type: ClassVar[str] = CSV  # of the train and validation channels
    # The channels its container takes of datadrop's splits: k-NN and Factorization Machines take no
    # validation channel (their docs list train and test; datadrop never trains with the test split).
    training_channels: ClassVar[tuple[str, ...]] = ("train", "validation")
    # Distance- and plain-SGD-based algorithms read features standardised with the training split's
    # mean and deviation (datadrop.channels), in training and in their pipeline's preprocessing stage.
    standardise_features: ClassVar[bool] = False
    # "script": the algorithm's own container runs datadrop's inference script on raw rows (XGBoost).
    # "pipeline": an inference pipeline: datadrop's preprocessing → the algorithm's container → datadrop's postprocessing.
    serving: ClassVar[Literal["script", "pipeline"]] = "pipeline"
    response: ClassVar[ResponseFormat | None] = None  # pipeline algorithms: how their container answers
    # Batch transform input the algorithm's container takes, when the pipeline's first container is
    # not the one that decides (it always is here: the preprocessing stage takes the raw CSV rows).
    local_twin: ClassVar[str]  # module under datadrop.local.twins
    local_extra: ClassVar[str | None] = None  # the pip extra its twin needs, when the demo's install lacks it

    def check_problem_type(self, problem_type: str) -> None:
        if problem_type not in self.problem_types:
            raise AlgorithmError(
                f"{self.name} does not support {problem_type} problems (it supports {', '.join(sorted(self.problem_types))}); "
                "pick another algorithm or set problem_type"
            )

    @abstractmethod
    def default_hyperparameters(self, problem_type: str) -> dict[str, str]:
        """The values a run trains with unless the config says otherwise."""

    @abstractmethod
    def derived_hyperparameters(self, facts: DataFacts) -> dict[str, str]:
        """What the data decides (objective, num_classes, feature_dim, predictor_type, ...): always wins over the config."""

    @abstractmethod
    def training(self, region: str, hyperparameters: dict[str, str]) -> TrainingLaunch:
        """Image, hyperparameters as the request carries them, extra channels."""

    @abstractmethod
    def tuning_objective(self, problem_type: str) -> dict[str, str]:
        """A tuning job's HyperParameterTuningJobObjective: a validation metric the container emits."""

    @abstractmethod
    def inference_container(self, region: str, model_data_url: str, problem_type: str) -> dict[str, Any]:
        """The algorithm's own container in the model (Image, ModelDataUrl, Environment)."""

    def stage_settings(self) -> str:
        """What datadrop's pipeline stages need to know of the algorithm (DATADROP_ALGORITHM_IO):
        its request and response format, and whether its features are standardised."""
        if self.response is None:
            raise AlgorithmError(f"{self.name} is not served by an inference pipeline")
        settings = {**asdict(self.response), "standardise": self.standardise_features}
        return json.dumps(settings, sort_keys=True, separators=(",", ":"))

    def plain_hyperparameters(self, request_hyperparameters: dict[str, str]) -> dict[str, str]:
        """The run's hyperparameters as a person wrote them, from what a job request carries
        (the inverse of `training(...).hyperparameters` for script mode)."""
        return dict(request_hyperparameters)
