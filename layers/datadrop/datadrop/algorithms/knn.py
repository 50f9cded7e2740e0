"""SageMaker's built-in k-nearest neighbors (k-NN), served in an inference pipeline:
datadrop's preprocessing → the k-NN container → datadrop's postprocessing.

Contracts, from the SageMaker Developer Guide:
- Hyperparameters (kNN_hyperparameters): `feature_dim`, `k`, `predictor_type` (classifier or
  regressor) and `sample_size` (points sampled from the training data into the index) are all
  required, positive integers besides predictor_type.
- Channels (k-nearest-neighbors, "Input/Output Interface"): train and test only; the test channel
  is what emits scores. `text/csv; label_size=1` training data: the label is the first column
  (kNN-in-formats).
- Tuning (kNN-tuning): the only metrics are `test:accuracy` (classifier) and `test:mse`
  (regressor), computed on the test channel. datadrop never tunes on its test split, so k-NN runs
  with its given hyperparameters and `tuning_objective` says so.
- Inference (k-nearest-neighbors, kNN-inference-formats): "For batch transform, k-NN supports the
  application/jsonlines data format for both input and output": requests {"features": [...]} per
  line, answers {"predicted_label": 0.0} per line. Classification answers the majority label of the
  k neighbours, regression their mean label; no score.
"""

from __future__ import annotations

from typing import Any, ClassVar

from datadrop.algorithms.base import JSONLINES, Algorithm, AlgorithmError, DataFacts, ResponseFormat, TrainingLaunch
from datadrop.algorithms.images import first_party_image_uri

REPOSITORY = "knn"
PREDICTOR_TYPES: dict[str, str] = {"binary": "classifier", "multiclass": "classifier", "regression": "regressor"}
DEFAULT_K = 10
# Every training row goes into the index up to this many (an exact brute-force index in memory on
# an ml.m5 instance: 200k points of a few dozen floats is tens of MB).
MAX_SAMPLE_SIZE = 200_000


class KNN(Algorithm):
    name: ClassVar[str] = "knn"
    title: ClassVar[str] = "k-NN"
    problem_types: ClassVar[frozenset[str]] = frozenset(PREDICTOR_TYPES)
    serving = "pipeline"
    # JSON Lines in and out: the one format k-NN takes in batch transform, and an endpoint takes it too.
    response: ClassVar[ResponseFormat | None] = ResponseFormat(
        request_content_type=JSONLINES, accept=JSONLINES, records_key=None, score_key=None, label_key="predicted_label"
    )
    local_twin: ClassVar[str] = "knn"
    training_channels: ClassVar[tuple[str, ...]] = ("train",)  # its docs list train and test only
    standardise_features: ClassVar[bool] = True  # distances / SGD on raw magnitudes (datadrop.channels)

    def default_hyperparameters(self, problem_type: str) -> dict[str, str]:
        self.check_problem_type(problem_type)
        return {"k": str(DEFAULT_K)}

    def derived_hyperparameters(self, facts: DataFacts) -> dict[str, str]:
        """predictor_type and feature_dim from the data; sample_size = the training rows (capped), so
        the index holds the whole training set. k is the config's (default 10) unless the index is
        smaller than the default: then k = sample_size, as k must not exceed the points indexed.
        (A config k above sample_size is not clamped here, derived values cannot see the config:
        the container rejects it, and so does the twin.)"""
        self.check_problem_type(facts.problem_type)
        if facts.train_rows < 1:
            raise AlgorithmError("k-NN needs at least one training row")
        sample_size = min(facts.train_rows, MAX_SAMPLE_SIZE)
        derived = {
            "predictor_type": PREDICTOR_TYPES[facts.problem_type],
            "feature_dim": str(facts.feature_dim),
            "sample_size": str(sample_size),
        }
        if sample_size < DEFAULT_K:
            derived["k"] = str(sample_size)
        return derived

    def training(self, region: str, hyperparameters: dict[str, str]) -> TrainingLaunch:
        # First-party containers publish their own metrics: no MetricDefinitions.
        return TrainingLaunch(
            {"TrainingImage": first_party_image_uri(region, REPOSITORY), "TrainingInputMode": "File"}, dict(hyperparameters)
        )

    def tuning_objective(self, problem_type: str) -> dict[str, str]:
        self.check_problem_type(problem_type)
        raise AlgorithmError(
            "k-NN cannot be tuned by datadrop: its only tuning metrics are test:accuracy and test:mse, computed on the "
            "test channel (SageMaker docs, 'Tune a k-NN Model'), and datadrop never tunes on the test split; "
            "train k-NN with fixed hyperparameters (set k in the config) or pick another algorithm to tune"
        )

    def inference_container(self, region: str, model_data_url: str, problem_type: str) -> dict[str, Any]:
        return {"Image": first_party_image_uri(region, REPOSITORY), "ModelDataUrl": model_data_url}


ALGORITHM = KNN()
