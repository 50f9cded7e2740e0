"""SageMaker's TabTransformer (JumpStart script mode: pytorch-tabtransformerclassification-model /
pytorch-tabtransformerregression-model).

Hyperparameters: docs tabtransformer-hyperparameters.md. Metrics: docs tabtransformer-tuning.md gives
the regexes "metrics={'f1': (\\S+)}" (binary), "metrics={'accuracy': (\\S+)}" (multiclass) and
"metrics={'r2': (\\S+)}" (regression), all maximized; the script picks its metric and loss from the
labels (no metric hyperparameter), so a datadrop-only `problem_type` hyperparameter marks which model
(classification or regression) the request trains — JumpStart scripts parse with parse_known_args
(as the LightGBM and CatBoost scripts do), which ignores it: UNVERIFIED for this script.
UNVERIFIED: images and keys (the SDK holds no TabTransformer spec); the PyTorch images of the
LightGBM/CatBoost specs and JumpStart's PyTorch key layout (pytorch-training/train-<model>.tar.gz,
source-directory-tarballs/pytorch/transfer_learning/<task>/prepack/...) are assumed.
"""

from __future__ import annotations

from typing import ClassVar

from datadrop.algorithms.jumpstart import PYTORCH_1_9_TRAINING, PYTORCH_2_0_INFERENCE, JumpStartAlgorithm, JumpStartModel
from datadrop.algorithms.lightgbm import COLUMNS_RESPONSE

METRIC_BY_PROBLEM = {"binary": "f1", "multiclass": "accuracy", "regression": "r2"}
PROBLEM_TYPE_KEY = "problem_type"


class TabTransformer(JumpStartAlgorithm):
    name: ClassVar[str] = "tabtransformer"
    title: ClassVar[str] = "TabTransformer"
    problem_types: ClassVar[frozenset[str]] = frozenset({"binary", "multiclass", "regression"})
    response = COLUMNS_RESPONSE
    local_twin: ClassVar[str] = "tabtransformer"
    local_extra: ClassVar[str | None] = "torch"
    classification = JumpStartModel(
        "pytorch-tabtransformerclassification-model",
        PYTORCH_1_9_TRAINING,
        PYTORCH_2_0_INFERENCE,
        "source-directory-tarballs/pytorch/transfer_learning/tabtransformerclassification/prepack/v1.0.0/sourcedir.tar.gz",
        "pytorch-training/train-pytorch-tabtransformerclassification-model.tar.gz",
    )
    regression = JumpStartModel(
        "pytorch-tabtransformerregression-model",
        PYTORCH_1_9_TRAINING,
        PYTORCH_2_0_INFERENCE,
        "source-directory-tarballs/pytorch/transfer_learning/tabtransformerregression/prepack/v1.0.0/sourcedir.tar.gz",
        "pytorch-training/train-pytorch-tabtransformerregression-model.tar.gz",
    )

    def default_hyperparameters(self, problem_type: str) -> dict[str, str]:
        return {
            # datadrop's defaults, not JumpStart's (5 epochs of 256 rows): a few hundred rows need more passes.
            "n_epochs": "40",
            "patience": "10",
            "learning_rate": "0.001",
            "batch_size": "32",
            "input_dim": "32",
            "n_blocks": "4",
            "attn_dropout": "0.2",
            "mlp_dropout": "0.1",
            "frac_shared_embed": "0.25",
        }

    def derived_for(self, problem_type: str) -> dict[str, str]:
        return {PROBLEM_TYPE_KEY: problem_type}

    def problem_kind(self, plain: dict[str, str]) -> str:
        return "regression" if plain.get(PROBLEM_TYPE_KEY) == "regression" else "classification"

    def metric_definitions(self, plain: dict[str, str]) -> list[dict[str, str]]:
        return [
            {"Name": f"validation:{m}", "Regex": f"metrics={{'{m}': (\\S+)}}"} for m in dict.fromkeys(METRIC_BY_PROBLEM.values())
        ]

    def tuning_objective(self, problem_type: str) -> dict[str, str]:
        return {"Type": "Maximize", "MetricName": f"validation:{METRIC_BY_PROBLEM[problem_type]}"}


ALGORITHM = TabTransformer()
