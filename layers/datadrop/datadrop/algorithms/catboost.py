"""SageMaker's CatBoost (JumpStart script mode: catboost-classification-model / catboost-regression-model).

Hyperparameter names and defaults: the JumpStart spec (SageMaker Python SDK v2.257.6 test fixture
"catboost-classification-model" v2.1.6) and docs catboost-hyperparameters.md. The script picks
eval_metric AUC (binary), MultiClass (multiclass) or RMSE (regression) and fits with the validation
channel as eval_set; CatBoost then logs "bestTest = <v>" / "bestIteration = <n>", the regex docs
catboost-tuning.md gives for all three metrics.
"""

from __future__ import annotations

from typing import ClassVar

from datadrop.algorithms.jumpstart import (
    PYTORCH_1_9_TRAINING,
    PYTORCH_2_0_INFERENCE,
    JumpStartAlgorithm,
    JumpStartModel,
    metric_regex,
)
from datadrop.algorithms.lightgbm import COLUMNS_RESPONSE

METRIC_BY_PROBLEM = {"binary": "AUC", "multiclass": "MultiClass", "regression": "RMSE"}
REGRESSION_METRICS = frozenset({"RMSE", "MAE", "MAPE", "R2", "Quantile", "Poisson", "Huber", "MSLE", "SMAPE"})
MAXIMIZED_METRICS = frozenset({"AUC", "Accuracy", "R2", "F1", "Precision", "Recall", "PRAUC", "MCC"})


class CatBoost(JumpStartAlgorithm):
    name: ClassVar[str] = "catboost"
    title: ClassVar[str] = "CatBoost"
    problem_types: ClassVar[frozenset[str]] = frozenset({"binary", "multiclass", "regression"})
    response = COLUMNS_RESPONSE  # same inference response as LightGBM (the same JumpStart notebooks)
    local_twin: ClassVar[str] = "catboost"
    classification = JumpStartModel(
        "catboost-classification-model",
        PYTORCH_1_9_TRAINING,
        PYTORCH_2_0_INFERENCE,
        "source-directory-tarballs/catboost/transfer_learning/classification/prepack/v1.1.1/sourcedir.tar.gz",
        "catboost-training/train-catboost-classification-model.tar.gz",
    )
    # UNVERIFIED: the SDK holds no regression spec; same layout and versions as classification assumed.
    regression = JumpStartModel(
        "catboost-regression-model",
        PYTORCH_1_9_TRAINING,
        PYTORCH_2_0_INFERENCE,
        "source-directory-tarballs/catboost/transfer_learning/regression/prepack/v1.1.1/sourcedir.tar.gz",
        "catboost-training/train-catboost-regression-model.tar.gz",
    )

    def default_hyperparameters(self, problem_type: str) -> dict[str, str]:
        return {
            "iterations": "500",
            "early_stopping_rounds": "5",
            "learning_rate": "0.03",
            "depth": "6",
            "l2_leaf_reg": "3",
            "random_strength": "1.0",
        }

    def derived_for(self, problem_type: str) -> dict[str, str]:
        return {"eval_metric": METRIC_BY_PROBLEM[problem_type]}

    def problem_kind(self, plain: dict[str, str]) -> str:
        return "regression" if plain.get("eval_metric") in REGRESSION_METRICS else "classification"

    def metric_definitions(self, plain: dict[str, str]) -> list[dict[str, str]]:
        """One metric: CatBoost's bestTest is the eval_metric's value on the validation channel."""
        metric = plain.get("eval_metric", "Auto")
        if metric == "Auto":
            metric = METRIC_BY_PROBLEM["regression" if self.problem_kind(plain) == "regression" else "multiclass"]
        return [{"Name": f"validation:{metric}", "Regex": metric_regex("bestTest = ")}]

    def tuning_objective(self, problem_type: str) -> dict[str, str]:
        metric = METRIC_BY_PROBLEM[problem_type]
        return {"Type": "Maximize" if metric in MAXIMIZED_METRICS else "Minimize", "MetricName": f"validation:{metric}"}


ALGORITHM = CatBoost()
