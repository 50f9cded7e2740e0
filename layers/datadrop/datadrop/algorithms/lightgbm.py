"""SageMaker's LightGBM (JumpStart script mode: lightgbm-classification-model / lightgbm-regression-model).

Hyperparameter names and defaults: the JumpStart spec (SageMaker Python SDK v2.257.6 test fixture
"lightgbm-classification-model" v2.1.6) and docs lightgbm-hyperparameters.md. Metrics: the script
trains with `valid_sets=[val, train]`, `valid_names=["val", "train"]` (its transfer_learning.py), so
LightGBM logs "[N]\\tval's <metric>: <v>\\ttrain's <metric>: <v>" per round and, at the end, the best
round's line again; the spec's regex is "multi_logloss: ([0-9\\.]+)" (docs lightgbm-tuning.md: "<metric>: ...").
"""

from __future__ import annotations

from typing import ClassVar

from datadrop.algorithms.base import CSV, JSON, ResponseFormat
from datadrop.algorithms.jumpstart import (
    PYTORCH_1_9_TRAINING,
    PYTORCH_2_0_INFERENCE,
    JumpStartAlgorithm,
    JumpStartModel,
    metric_regex,
)

METRIC_BY_PROBLEM = {"binary": "binary_logloss", "multiclass": "multi_logloss", "regression": "rmse"}
REGRESSION_METRICS = frozenset({"rmse", "l1", "l2", "huber", "fair", "poisson", "quantile", "mape", "gamma", "tweedie"})
MAXIMIZED_METRICS = frozenset({"auc", "average_precision", "auc_mu", "map", "ndcg"})

# Columns of probabilities (binary: [P0, P1]) or a list of values (regression): the JumpStart
# notebooks read `json.loads(body)["probabilities"]` / `["prediction"]` (amazon-sagemaker-examples
# sm-lightgbm_catboost_tabular_classification.ipynb, Amazon_Tabular_Regression_LightGBM_CatBoost.ipynb).
COLUMNS_RESPONSE = ResponseFormat(
    request_content_type=CSV,
    accept=JSON,
    layout="columns",
    records_key=None,
    score_key=None,
    label_key=None,
    probabilities_key="probabilities",
    prediction_key="prediction",
)


class LightGBM(JumpStartAlgorithm):
    name: ClassVar[str] = "lightgbm"
    title: ClassVar[str] = "LightGBM"
    problem_types: ClassVar[frozenset[str]] = frozenset({"binary", "multiclass", "regression"})
    response = COLUMNS_RESPONSE
    local_twin: ClassVar[str] = "lightgbm"
    classification = JumpStartModel(
        "lightgbm-classification-model",
        PYTORCH_1_9_TRAINING,
        PYTORCH_2_0_INFERENCE,
        "source-directory-tarballs/lightgbm/transfer_learning/classification/prepack/v1.1.1/sourcedir.tar.gz",
        "lightgbm-training/train-lightgbm-classification-model.tar.gz",
    )
    # UNVERIFIED: the SDK holds no regression spec; same layout and versions as classification assumed.
    regression = JumpStartModel(
        "lightgbm-regression-model",
        PYTORCH_1_9_TRAINING,
        PYTORCH_2_0_INFERENCE,
        "source-directory-tarballs/lightgbm/transfer_learning/regression/prepack/v1.1.1/sourcedir.tar.gz",
        "lightgbm-training/train-lightgbm-regression-model.tar.gz",
    )

    def default_hyperparameters(self, problem_type: str) -> dict[str, str]:
        return {
            "num_boost_round": "5000",
            "early_stopping_rounds": "30",
            "learning_rate": "0.009",
            "num_leaves": "67",
            "feature_fraction": "0.74",
            "bagging_fraction": "0.53",
            "bagging_freq": "5",
            "max_depth": "11",
            "min_data_in_leaf": "26",
        }

    def derived_for(self, problem_type: str) -> dict[str, str]:
        return {"metric": METRIC_BY_PROBLEM[problem_type]}

    def problem_kind(self, plain: dict[str, str]) -> str:
        return "regression" if plain.get("metric") in REGRESSION_METRICS else "classification"

    def metric_definitions(self, plain: dict[str, str]) -> list[dict[str, str]]:
        metrics = dict.fromkeys([*METRIC_BY_PROBLEM.values(), plain.get("metric", "auto")])
        metrics.pop("auto", None)
        return [
            {"Name": f"{channel}:{metric}", "Regex": metric_regex(f"{label}'s {metric}: ")}
            for metric in metrics
            for channel, label in (("validation", "val"), ("train", "train"))
        ]

    def tuning_objective(self, problem_type: str) -> dict[str, str]:
        metric = METRIC_BY_PROBLEM[problem_type]
        return {"Type": "Maximize" if metric in MAXIMIZED_METRICS else "Minimize", "MetricName": f"validation:{metric}"}


ALGORITHM = LightGBM()
