"""SageMaker's built-in Factorization Machines, served in an inference pipeline (datadrop's
preprocessing -> the FM container -> datadrop's postprocessing).

Contracts, from the SageMaker Developer Guide (awsdocs/amazon-sagemaker-developer-guide, doc_source/):
* fact-machines.md: binary classification or regression only; training data recordIO-protobuf with
  Float32 tensors only ("CSV is not a good candidate"); channels train and, optionally, test (the
  test channel is the one scored); inference takes application/json and x-recordio-protobuf; the
  binary label is 1 when the score is >= 0.5.
* fact-machines-hyperparameters.md: feature_dim, num_factors and predictor_type
  (binary_classifier | regressor) are required; the optional ones and their defaults.
* fm-tuning.md: the metrics it reports are test:rmse (regressor) and test:binary_classification_accuracy,
  test:binary_classification_cross_entropy, test:binary_f_beta (binary): test channel only.
* fm-in-formats.md: JSON answers {"predictions": [{"score": s, "predicted_label": l}]} (binary) or
  {"predictions": [{"score": s}]} (regression).
The JSON request body {"instances": [{"features": [...]}, ...]} is cdf-inference.md's "multiple
records" form, the one the SageMaker Python SDK's own FM integration test sends
(tests/integ/test_byo_estimator.py, fm_serializer).
"""

from __future__ import annotations

from typing import Any, ClassVar

from datadrop.algorithms.base import JSON, RECORDIO_PROTOBUF, Algorithm, AlgorithmError, DataFacts, ResponseFormat, TrainingLaunch
from datadrop.algorithms.images import first_party_image_uri

REPOSITORY = "factorization-machines"
PREDICTOR_TYPES = {"binary": "binary_classifier", "regression": "regressor"}
# fm-tuning.md: every metric FM reports is computed on the test channel.
TEST_METRICS = {
    "binary": ("test:binary_classification_accuracy", "test:binary_classification_cross_entropy", "test:binary_f_beta"),
    "regression": ("test:rmse",),
}


class FactorizationMachines(Algorithm):
    name: ClassVar[str] = "factorization-machines"
    title: ClassVar[str] = "Factorization Machines"
    problem_types: ClassVar[frozenset[str]] = frozenset({"binary", "regression"})
    training_content_type: ClassVar[str] = RECORDIO_PROTOBUF
    training_channels: ClassVar[tuple[str, ...]] = ("train",)  # its docs list train and test only
    standardise_features: ClassVar[bool] = True  # distances / SGD on raw magnitudes (datadrop.channels)
    serving = "pipeline"
    # The container does not take text/csv (fact-machines.md); datadrop's preprocessing sends JSON.
    response: ClassVar[ResponseFormat | None] = ResponseFormat(
        request_content_type=JSON,
        accept=JSON,
        layout="records",
        records_key="predictions",
        score_key="score",  # binary: P(class 1); regression: the value
        label_key="predicted_label",  # binary only: the regression answer has just "score"
    )
    local_twin: ClassVar[str] = "factorization_machines"

    def default_hyperparameters(self, problem_type: str) -> dict[str, str]:
        """num_factors is required by the container (64 is the docs' starting point for sparse data in
        the 10^4..10^7 feature range; datadrop's encoded tabular data has tens of features, so fewer).
        The container's defaults of 1 epoch and mini-batches of 1000 barely move a model on a few
        thousand rows, hence more epochs and smaller batches; the learning rates and weight decays
        stay the container's (bias_lr 0.1, linear_lr 0.001, factors_lr 0.0001, ...)."""
        self.check_problem_type(problem_type)
        return {"num_factors": "16", "epochs": "50", "mini_batch_size": "100"}

    def derived_hyperparameters(self, facts: DataFacts) -> dict[str, str]:
        self.check_problem_type(facts.problem_type)
        if facts.problem_type == "binary" and facts.num_classes != 2:
            raise AlgorithmError(f"{self.name} binary classification needs exactly 2 classes, got {facts.num_classes}")
        if facts.feature_dim < 1:
            raise AlgorithmError(f"{self.name} needs at least one feature column")
        return {"feature_dim": str(facts.feature_dim), "predictor_type": PREDICTOR_TYPES[facts.problem_type]}

    def training(self, region: str, hyperparameters: dict[str, str]) -> TrainingLaunch:
        """Algorithm mode: the image and the hyperparameters as the request carries them (strings).
        The train channel must be RecordIO-protobuf (`datadrop.recordio.csv_to_recordio`)."""
        return TrainingLaunch(
            {"TrainingImage": first_party_image_uri(region, REPOSITORY), "TrainingInputMode": "File"}, dict(hyperparameters)
        )

    def tuning_objective(self, problem_type: str) -> dict[str, str]:
        """None that datadrop can use: Factorization Machines reports its metrics on the test channel
        only (fm-tuning.md: test:rmse, test:binary_classification_accuracy, ...), and datadrop never
        tunes on its test split, which stays held out for the final evaluation."""
        self.check_problem_type(problem_type)
        raise AlgorithmError(
            f"{self.title} cannot be tuned by datadrop: SageMaker's Factorization Machines reports its metrics "
            f"({', '.join(TEST_METRICS[problem_type])}) on the test channel only, and datadrop keeps the test split "
            "held out; train it without tuning (set fixed hyperparameters) or pick an algorithm that reports validation metrics"
        )

    def inference_container(self, region: str, model_data_url: str, problem_type: str) -> dict[str, Any]:
        return {"Image": first_party_image_uri(region, REPOSITORY), "ModelDataUrl": model_data_url}


ALGORITHM = FactorizationMachines()
