"""SageMaker's AutoGluon-Tabular (JumpStart script mode: autogluon-classification-ensemble /
autogluon-regression-ensemble).

Images, keys and hyperparameters: the JumpStart spec "autogluon-classification-ensemble" v1.1.1 (SageMaker
Python SDK v2.257.6 test fixture): AutoGluon DLC 0.4.3 py38 for training and inference, not prepacked
(the model serves with the inference script's S3 URI). eval_metric per docs autogluon-tabular-hyperparameters.md
("auto": AUC for binary, accuracy for multiclass, RMSE for regression). The spec declares no metrics
("metrics": []); AutoGluon logs "\\t<score>\\t = Validation score   (<metric>)" per model, the best
(last-fitted) ensemble last, scores in higher-is-better form (errors negated) — UNVERIFIED against
the JumpStart script, which the other helper's twin must reproduce.
"""

from __future__ import annotations

from typing import ClassVar

from datadrop.algorithms.jumpstart import (
    AUTOGLUON_0_4_INFERENCE,
    AUTOGLUON_0_4_TRAINING,
    JumpStartAlgorithm,
    JumpStartModel,
)
from datadrop.algorithms.lightgbm import COLUMNS_RESPONSE

METRIC_BY_PROBLEM = {"binary": "roc_auc", "multiclass": "accuracy", "regression": "root_mean_squared_error"}
REGRESSION_METRICS = frozenset(
    {
        "root_mean_squared_error",
        "mean_squared_error",
        "mean_absolute_error",
        "median_absolute_error",
        "r2",
        "pearsonr",
        "spearmanr",
    }
)
VALIDATION_SCORE_REGEX = r"([-+]?[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s+= Validation score"


class AutoGluonTabular(JumpStartAlgorithm):
    name: ClassVar[str] = "autogluon"
    title: ClassVar[str] = "AutoGluon-Tabular"
    problem_types: ClassVar[frozenset[str]] = frozenset({"binary", "multiclass", "regression"})
    response = COLUMNS_RESPONSE  # the churn notebook reads ["probabilities"] from all four algorithms
    local_twin: ClassVar[str] = "autogluon"
    local_extra: ClassVar[str | None] = "autogluon"
    classification = JumpStartModel(
        "autogluon-classification-ensemble",
        AUTOGLUON_0_4_TRAINING,
        AUTOGLUON_0_4_INFERENCE,
        "source-directory-tarballs/autogluon/transfer_learning/classification/v1.0.2/sourcedir.tar.gz",
        "autogluon-training/train-autogluon-classification-ensemble.tar.gz",
        "source-directory-tarballs/autogluon/inference/classification/v1.0.0/sourcedir.tar.gz",
    )
    # UNVERIFIED: mirrored from the classification spec.
    regression = JumpStartModel(
        "autogluon-regression-ensemble",
        AUTOGLUON_0_4_TRAINING,
        AUTOGLUON_0_4_INFERENCE,
        "source-directory-tarballs/autogluon/transfer_learning/regression/v1.0.2/sourcedir.tar.gz",
        "autogluon-training/train-autogluon-regression-ensemble.tar.gz",
        "source-directory-tarballs/autogluon/inference/regression/v1.0.0/sourcedir.tar.gz",
    )

    def default_hyperparameters(self, problem_type: str) -> dict[str, str]:
        return {
            "presets": "medium_quality",
            "auto_stack": "False",
            "num_bag_folds": "0",
            "num_stack_levels": "0",
            "verbosity": "2",
        }

    def derived_for(self, problem_type: str) -> dict[str, str]:
        return {"eval_metric": METRIC_BY_PROBLEM[problem_type]}

    def problem_kind(self, plain: dict[str, str]) -> str:
        return "regression" if plain.get("eval_metric") in REGRESSION_METRICS else "classification"

    def metric_definitions(self, plain: dict[str, str]) -> list[dict[str, str]]:
        metric = plain.get("eval_metric", "auto")
        return [{"Name": f"validation:{metric}", "Regex": VALIDATION_SCORE_REGEX}]

    def tuning_objective(self, problem_type: str) -> dict[str, str]:
        # AutoGluon reports every score higher-is-better (errors negated).
        return {"Type": "Maximize", "MetricName": f"validation:{METRIC_BY_PROBLEM[problem_type]}"}


ALGORITHM = AutoGluonTabular()
