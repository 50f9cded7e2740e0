"""SageMaker's built-in XGBoost (algorithm mode for training; script mode, with datadrop's inference
script, for serving raw rows: no inference pipeline needed)."""

from __future__ import annotations

from typing import Any, ClassVar

from datadrop.algorithms.base import Algorithm, DataFacts, TrainingLaunch
from datadrop.algorithms.images import xgboost_image_uri


class XGBoost(Algorithm):
    name: ClassVar[str] = "xgboost"
    title: ClassVar[str] = "XGBoost"
    problem_types: ClassVar[frozenset[str]] = frozenset({"binary", "multiclass", "regression"})
    serving = "script"
    local_twin: ClassVar[str] = "xgboost"

    def default_hyperparameters(self, problem_type: str) -> dict[str, str]:
        return {"num_round": "100", "max_depth": "4", "eta": "0.2", "subsample": "0.9", "min_child_weight": "1"}

    def derived_hyperparameters(self, facts: DataFacts) -> dict[str, str]:
        return objective(facts.problem_type, facts.num_classes)

    def training(self, region: str, hyperparameters: dict[str, str]) -> TrainingLaunch:
        return TrainingLaunch({"TrainingImage": xgboost_image_uri(region), "TrainingInputMode": "File"}, dict(hyperparameters))

    def tuning_objective(self, problem_type: str) -> dict[str, str]:
        """The validation channel's loss (validation:logloss, validation:mlogloss or validation:rmse,
        each listed with direction Minimize in SageMaker's XGBoost tuning docs). Never the test
        split: that one stays held out."""
        return {"Type": "Minimize", "MetricName": f"validation:{objective(problem_type, 2)['eval_metric']}"}

    def inference_container(self, region: str, model_data_url: str, problem_type: str) -> dict[str, Any]:
        return {"Image": xgboost_image_uri(region), "ModelDataUrl": model_data_url}


def objective(problem_type: str, num_classes: int) -> dict[str, str]:
    """Objective, class count and evaluation metric for the built-in algorithm (strings, as SageMaker wants)."""
    if problem_type == "regression":
        return {"objective": "reg:squarederror", "eval_metric": "rmse"}
    if problem_type == "binary":
        return {"objective": "binary:logistic", "eval_metric": "logloss"}
    return {"objective": "multi:softprob", "num_class": str(num_classes), "eval_metric": "mlogloss"}


ALGORITHM = XGBoost()
