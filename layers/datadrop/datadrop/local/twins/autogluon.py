"""AutoGluon-Tabular's twin: what the JumpStart AutoGluon-Tabular training and inference scripts do,
with autogluon.tabular (the optional extra ``datadrop[autogluon]``).

Contract (AWS docs, autogluon-tabular.md and autogluon-tabular-hyperparameters.md in
github.com/awsdocs/amazon-sagemaker-developer-guide):
- Training and inference are text/csv; training CSV has no header and the label first; the model is an
  ``autogluon.tabular.TabularPredictor`` saved in the model directory, loaded with
  ``TabularPredictor.load(model_dir)``; its feature columns are named ``feature_0 ... feature_d``.
- Hyperparameters (script mode, JSON-encoded in the request) and defaults: eval_metric "auto"
  (binary roc_auc, multiclass accuracy, regression root_mean_squared_error), presets "medium_quality",
  auto_stack "False", num_bag_folds "0" (0..10, never 1), num_bag_sets 1 (1..20), num_stack_levels 0 (0..3),
  refit_full "False", set_best_to_refit_full "False", save_space "False", verbosity 2 (0..4).
- Without a validation set AutoGluon holds out part of train itself (notebook: "a fraction of training data
  is randomly sampled to serve as the validation data").
- Inference (a copy of the JumpStart script, see _jumpstart_tabular): ``TabularPredictor.load(model_dir)``,
  the CSV rows named with ``feature_metadata_in.get_features()``, ``{"probabilities": predict_proba(...)}``.

How this twin differs from the cloud container:
- Models: the container fits the preset's full zoo (LightGBM, CatBoost, XGBoost, random forests, extra
  trees, k-NN, linear and neural nets, most of them needing torch). The twin fits the ones that need no
  torch and no CatBoost: LightGBM (GBM), random forest (RF), extra trees (XT) and the linear model (LR),
  then AutoGluon's weighted ensemble, with the same presets, bagging and stacking arguments.
- Time: the twin caps ``fit`` at ``LOCAL_TIME_LIMIT_SECONDS`` (the container has no cap but the job's
  MaxRuntimeInSeconds) and at ``MAX_CPUS`` cores.
- Metrics: JumpStart declares no AutoGluon metric definitions that we could find (its notebooks do not tune
  AutoGluon). The twin reports ``validation:<eval_metric>`` in the metric's own sign (an error such as
  root_mean_squared_error is positive), scored on the validation channel, or on AutoGluon's own holdout when
  there is none; plus ``train:<eval_metric>`` on the training rows.
- Problem kind: from the JumpStart model id in ``sagemaker_submit_directory`` (classification/regression
  scripts are separate models there), else from the labels (see _jumpstart_tabular.problem_kind).
- Inference: Accept ``application/json;verbose`` adds ``predicted_label`` as the JumpStart LightGBM script
  does; the AutoGluon script copy we found answers ``probabilities`` only. Other Accept types are refused.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from datadrop.local.twins._jumpstart_tabular import (
    Kind,
    as_bool,
    as_number,
    check_range,
    data_channels,
    parse_features,
    problem_kind,
    read_table,
    respond,
)
from datadrop.local.twins.base import ClientError, Metrics, script_mode_hyperparameters

__all__ = ["LOCAL_MODELS", "LOCAL_TIME_LIMIT_SECONDS", "invoke", "load", "train"]

LABEL = "label"
LOCAL_TIME_LIMIT_SECONDS = 120
MAX_CPUS = 2
# AutoGluon model keys (autogluon.tabular's hyperparameter dict) that need neither torch nor catboost.
LOCAL_MODELS: dict[str, Any] = {"GBM": {}, "RF": {}, "XT": {}, "LR": {}}

PRESETS = ("best_quality", "high_quality", "good_quality", "medium_quality", "optimize_for_deployment", "interpretable")
DEFAULT_EVAL_METRIC: dict[str, str] = {"binary": "roc_auc", "multiclass": "accuracy", "regression": "root_mean_squared_error"}
_KNOWN = {
    "eval_metric",
    "presets",
    "auto_stack",
    "num_bag_folds",
    "num_bag_sets",
    "num_stack_levels",
    "refit_full",
    "set_best_to_refit_full",
    "save_space",
    "verbosity",
}


def _features(x: np.ndarray) -> list[str]:
    return [f"feature_{i}" for i in range(x.shape[1])]


def _frame(x: np.ndarray, y: np.ndarray | None, kind: Kind) -> Any:
    import pandas as pd

    frame = pd.DataFrame(x.astype(np.float64), columns=_features(x))
    if y is not None:
        frame.insert(0, LABEL, y.astype(np.int64) if kind != "regression" else y.astype(np.float64))
    return frame


def _settings(hyperparameters: dict[str, str]) -> dict[str, Any]:
    hp = script_mode_hyperparameters(hyperparameters)
    unknown = sorted(set(hp) - _KNOWN)
    if unknown:
        raise ClientError(f"Unknown hyperparameter(s) {unknown}; AutoGluon-Tabular takes {sorted(_KNOWN)}")
    settings: dict[str, Any] = {
        "eval_metric": str(hp.get("eval_metric", "auto")),
        "presets": str(hp.get("presets", "medium_quality")),
        "auto_stack": as_bool("auto_stack", hp.get("auto_stack", "False")),
        "num_bag_folds": int(as_number("num_bag_folds", hp.get("num_bag_folds", 0), int)),
        "num_bag_sets": int(as_number("num_bag_sets", hp.get("num_bag_sets", 1), int)),
        "num_stack_levels": int(as_number("num_stack_levels", hp.get("num_stack_levels", 0), int)),
        "refit_full": as_bool("refit_full", hp.get("refit_full", "False")),
        "set_best_to_refit_full": as_bool("set_best_to_refit_full", hp.get("set_best_to_refit_full", "False")),
        "save_space": as_bool("save_space", hp.get("save_space", "False")),
        "verbosity": int(as_number("verbosity", hp.get("verbosity", 2), int)),
    }
    if settings["presets"] not in PRESETS:
        raise ClientError(f"Hyperparameter presets: {settings['presets']!r} not in {list(PRESETS)}")
    check_range("num_bag_folds", settings["num_bag_folds"], 0, 10)
    if settings["num_bag_folds"] == 1:
        raise ClientError("Hyperparameter num_bag_folds: 1 is not valid (0 turns bagging off, 2..10 bag)")
    check_range("num_bag_sets", settings["num_bag_sets"], 1, 20)
    check_range("num_stack_levels", settings["num_stack_levels"], 0, 3)
    if settings["num_stack_levels"] > 0 and settings["num_bag_folds"] < 2 and not settings["auto_stack"]:
        raise ClientError("Hyperparameter num_stack_levels > 0 needs num_bag_folds >= 2")
    check_range("verbosity", settings["verbosity"], 0, 4)
    if settings["set_best_to_refit_full"] and not settings["refit_full"]:
        raise ClientError("Hyperparameter set_best_to_refit_full is only valid with refit_full set to True")
    return settings


def train(channels: dict[str, Path], hyperparameters: dict[str, str], model_dir: Path) -> Metrics:
    """Fit a TabularPredictor as the JumpStart AutoGluon-Tabular script does; return FinalMetricDataList."""
    from autogluon.core.metrics import get_metric
    from autogluon.tabular import TabularPredictor

    settings = _settings(hyperparameters)
    train_path, validation_path, _ = data_channels(channels)
    x_train, y_train = read_table(train_path, "train")
    kind = problem_kind(hyperparameters, y_train)
    validation: tuple[np.ndarray, np.ndarray] | None = None
    if validation_path is not None:
        x_val, y_val = read_table(validation_path, "validation")
        if x_val.shape[1] != x_train.shape[1]:
            raise ClientError(f"validation has {x_val.shape[1]} feature columns but train has {x_train.shape[1]}")
        if kind != "regression" and not set(np.unique(y_val)) <= set(np.unique(y_train)):
            unseen = sorted(set(np.unique(y_val).tolist()) - set(np.unique(y_train).tolist()))
            raise ClientError(f"validation labels {unseen[:5]} never occur in train")
        validation = (x_val, y_val)
    if kind != "regression" and len(np.unique(y_train)) < 2:
        raise ClientError("train holds a single class: classification needs at least two")

    metric_name = DEFAULT_EVAL_METRIC[kind] if settings["eval_metric"] == "auto" else settings["eval_metric"]
    try:
        metric = get_metric(metric_name, kind)
    except (ValueError, KeyError) as exc:
        raise ClientError(f"Hyperparameter eval_metric: {exc}") from None

    model_dir = Path(model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    train_frame = _frame(x_train, y_train, kind)
    tuning_frame = _frame(*validation, kind) if validation is not None else None
    bagging = settings["auto_stack"] or settings["num_bag_folds"] >= 2
    fit_args: dict[str, Any] = {
        "presets": settings["presets"],
        "hyperparameters": LOCAL_MODELS,
        "time_limit": LOCAL_TIME_LIMIT_SECONDS,
        "num_cpus": MAX_CPUS,
        "num_gpus": 0,
        "auto_stack": settings["auto_stack"],
        "dynamic_stacking": False,  # a sub-fit per stack level: minutes, not seconds, for a local run
    }
    if not settings["auto_stack"]:
        fit_args["num_bag_folds"] = settings["num_bag_folds"]
        if settings["num_bag_folds"] >= 2:
            fit_args["num_bag_sets"] = settings["num_bag_sets"]
            fit_args["num_stack_levels"] = settings["num_stack_levels"]
    if bagging and tuning_frame is not None:
        fit_args["use_bag_holdout"] = True  # AutoGluon ignores tuning_data while bagging unless told to keep it
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            predictor = TabularPredictor(
                label=LABEL, problem_type=kind, eval_metric=metric, path=str(model_dir), verbosity=settings["verbosity"]
            ).fit(train_frame, tuning_data=tuning_frame, **fit_args)
        except (ValueError, AssertionError) as exc:
            raise ClientError(f"AutoGluon fit failed: {exc}") from None
        if settings["refit_full"]:
            predictor.refit_full(set_best_to_refit_full=settings["set_best_to_refit_full"])
        if settings["save_space"]:
            predictor.save_space()

        metrics: Metrics = []
        if tuning_frame is not None:
            score = float(predictor.evaluate(tuning_frame, silent=True)[metric.name])
        else:
            board = predictor.leaderboard(silent=True)
            score = float(board.loc[board["model"] == predictor.model_best, "score_val"].iloc[0])
        metrics.append({"MetricName": f"validation:{metric_name}", "Value": float(metric.convert_score_to_original(score))})
        train_score = float(predictor.evaluate(train_frame, silent=True)[metric.name])
        metrics.append({"MetricName": f"train:{metric_name}", "Value": float(metric.convert_score_to_original(train_score))})
    logging.getLogger(__name__).info("AutoGluon best model %s", predictor.model_best)
    return metrics


def load(model_dir: Path) -> Any:
    """``TabularPredictor.load(model_dir)``, as the inference script's model_fn."""
    from autogluon.tabular import TabularPredictor

    return TabularPredictor.load(str(model_dir), check_packages=False, verbosity=0)


def invoke(model: Any, body: bytes, content_type: str, accept: str) -> tuple[bytes, str]:
    """Answer /invocations as the JumpStart AutoGluon inference script (see _jumpstart_tabular)."""
    columns = list(model.feature_metadata_in.get_features())
    rows = parse_features(body, content_type, len(columns))
    import pandas as pd

    frame = pd.DataFrame(rows, columns=columns)
    kind: Kind = model.problem_type
    if kind == "regression":
        values = np.asarray(model.predict(frame), dtype=np.float64)
    else:
        values = np.asarray(model.predict_proba(frame, as_multiclass=True), dtype=np.float64)
    return respond(values, kind == "regression", accept)
