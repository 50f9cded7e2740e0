"""SageMaker's built-in Linear Learner (algorithm mode), served in an inference pipeline:
datadrop's preprocessing → the Linear Learner container → datadrop's postprocessing.

Contracts, from the SageMaker Developer Guide:
- Hyperparameters (ll_hyperparameters): `predictor_type` is required (binary_classifier,
  multiclass_classifier or regressor); `num_classes` is required for multiclass_classifier (3 to
  1,000,000); `feature_dim` is the number of features (required in older versions of the page,
  `auto` today: we always send it). Defaults: epochs 15, mini_batch_size 1000, normalize_data true.
- Channels (linear-learner, "Input/Output interface"): train, validation (optional), test
  (optional); `text/csv` training data has the label in the first column.
- Tuning (linear-learner-tuning): `validation:objective_loss` (Minimize) is listed for every
  predictor type: logistic loss (binary), softmax loss (multiclass), squared loss (regression).
- Inference (LL-in-formats, cdf-inference): `text/csv` requests; `application/json` answers
  {"predictions": [{"score": 0.4, "predicted_label": 0}]} (binary: score = P(label 1));
  multiclass: score is one probability per class; regression: {"score": value} only.
"""

from __future__ import annotations

from typing import Any, ClassVar

from datadrop.algorithms.base import CSV, JSON, Algorithm, DataFacts, ResponseFormat, TrainingLaunch
from datadrop.algorithms.images import first_party_image_uri

REPOSITORY = "linear-learner"
PREDICTOR_TYPES: dict[str, str] = {
    "binary": "binary_classifier",
    "multiclass": "multiclass_classifier",
    "regression": "regressor",
}


class LinearLearner(Algorithm):
    name: ClassVar[str] = "linear-learner"
    title: ClassVar[str] = "Linear Learner"
    problem_types: ClassVar[frozenset[str]] = frozenset(PREDICTOR_TYPES)
    serving = "pipeline"
    # The container answers regression with {"score": value} and no predicted_label: the
    # postprocessing stage reads the score as the value (ResponseFormat: "regression: the value").
    response: ClassVar[ResponseFormat | None] = ResponseFormat(request_content_type=CSV, accept=JSON)
    local_twin: ClassVar[str] = "linear_learner"

    def default_hyperparameters(self, problem_type: str) -> dict[str, str]:
        """Small and fast for datadrop's tabular data: more passes over smaller batches than the
        container's defaults (15 epochs of 1000 rows: a few hundred rows would get 15 updates).
        Early stopping (patience 3 on the validation loss, the container's default) ends long runs."""
        self.check_problem_type(problem_type)
        return {"epochs": "30", "mini_batch_size": "100"}

    def derived_hyperparameters(self, facts: DataFacts) -> dict[str, str]:
        self.check_problem_type(facts.problem_type)
        derived = {"predictor_type": PREDICTOR_TYPES[facts.problem_type], "feature_dim": str(facts.feature_dim)}
        if facts.problem_type == "multiclass":
            derived["num_classes"] = str(facts.num_classes)
        return derived

    def training(self, region: str, hyperparameters: dict[str, str]) -> TrainingLaunch:
        # First-party containers publish their own metrics: no MetricDefinitions.
        return TrainingLaunch(
            {"TrainingImage": first_party_image_uri(region, REPOSITORY), "TrainingInputMode": "File"}, dict(hyperparameters)
        )

    def tuning_objective(self, problem_type: str) -> dict[str, str]:
        """`validation:objective_loss`, Minimize: listed as a tuning metric for every predictor
        type (linear-learner-tuning), a proper loss like XGBoost's logloss/mlogloss/rmse, on the
        validation channel (never the test split)."""
        self.check_problem_type(problem_type)
        return {"Type": "Minimize", "MetricName": "validation:objective_loss"}

    def inference_container(self, region: str, model_data_url: str, problem_type: str) -> dict[str, Any]:
        return {"Image": first_party_image_uri(region, REPOSITORY), "ModelDataUrl": model_data_url}


ALGORITHM = LinearLearner()
