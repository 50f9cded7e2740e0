"""XGBoost's twin: what the SageMaker XGBoost container does in algorithm mode, with xgboost.

Served by datadrop's inference script (script mode), so no `load`/`invoke` here: the local
endpoint runs the script, as the container does.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from datadrop.local.twins.base import ClientError, Metrics, TrainingFailed, read_csv_channel

MODEL_FILE = "xgboost-model"
MAX_THREADS = 2
SMALL_DATA_ROWS = 100_000

__all__ = ["MODEL_FILE", "TrainingFailed", "train"]

_INT = "int"
_FLOAT = "float"
_STR = "str"
# The SageMaker XGBoost container's (algorithm mode) hyperparameters and their types.
_HYPERPARAMETERS: dict[str, str] = {
    "num_round": _INT,
    "csv_weights": _INT,
    "early_stopping_rounds": _INT,
    "booster": _STR,
    "verbosity": _INT,
    "nthread": _INT,
    "eta": _FLOAT,
    "gamma": _FLOAT,
    "max_depth": _INT,
    "min_child_weight": _FLOAT,
    "max_delta_step": _FLOAT,
    "subsample": _FLOAT,
    "colsample_bytree": _FLOAT,
    "colsample_bylevel": _FLOAT,
    "colsample_bynode": _FLOAT,
    "lambda": _FLOAT,
    "alpha": _FLOAT,
    "tree_method": _STR,
    "sketch_eps": _FLOAT,
    "scale_pos_weight": _FLOAT,
    "updater": _STR,
    "dsplit": _STR,
    "refresh_leaf": _INT,
    "process_type": _STR,
    "grow_policy": _STR,
    "max_leaves": _INT,
    "max_bin": _INT,
    "predictor": _STR,
    "monotone_constraints": _STR,
    "interaction_constraints": _STR,
    "sample_type": _STR,
    "normalize_type": _STR,
    "rate_drop": _FLOAT,
    "one_drop": _INT,
    "skip_drop": _FLOAT,
    "lambda_bias": _FLOAT,
    "tweedie_variance_power": _FLOAT,
    "objective": _STR,
    "num_class": _INT,
    "base_score": _FLOAT,
    "_tuning_objective_metric": _STR,
    "eval_metric": _STR,
    "seed": _INT,
    "num_parallel_tree": _INT,
    "save_model_on_termination": _STR,
    "aft_loss_distribution": _STR,
    "aft_loss_distribution_scale": _FLOAT,
    "single_precision_histogram": _STR,
    "deterministic_histogram": _STR,
    "sampling_method": _STR,
    "prob_buffer_row": _FLOAT,
    "use_dask_gpu_training": _STR,
    "_kfold": _INT,
    "_num_cv_round": _INT,
}
_ALIASES = {"learning_rate": "eta", "min_split_loss": "gamma", "reg_lambda": "lambda", "reg_alpha": "alpha"}
# (low, low_inclusive, high, high_inclusive); None = unbounded
_RANGES: dict[str, tuple[float | None, bool, float | None, bool]] = {
    "num_round": (1, True, None, False),
    "early_stopping_rounds": (1, True, None, False),
    "eta": (0, True, 1, True),
    "gamma": (0, True, None, False),
    "max_depth": (0, True, None, False),
    "min_child_weight": (0, True, None, False),
    "subsample": (0, False, 1, True),
    "colsample_bytree": (0, False, 1, True),
    "colsample_bylevel": (0, False, 1, True),
    "colsample_bynode": (0, False, 1, True),
    "lambda": (0, True, None, False),
    "alpha": (0, True, None, False),
    "num_class": (2, True, None, False),
    "nthread": (1, True, None, False),
    "scale_pos_weight": (0, False, None, False),
}
_CHOICES: dict[str, tuple[str, ...]] = {
    "booster": ("gbtree", "gblinear", "dart"),
    "tree_method": ("auto", "exact", "approx", "hist", "gpu_hist"),
    "grow_policy": ("depthwise", "lossguide"),
}
# Accepted like the container but meaningless for a local single-node CPU run.
_IGNORED = {
    "save_model_on_termination",
    "_tuning_objective_metric",
    "predictor",
    "dsplit",
    "single_precision_histogram",
    "deterministic_histogram",
    "prob_buffer_row",
    "use_dask_gpu_training",
    "csv_weights",
}
# Metrics the container computes in Python (custom_metrics.py) rather than xgboost.
_CONTAINER_CUSTOM_METRICS = {
    "accuracy",
    "balanced_accuracy",
    "f1",
    "f1_binary",
    "f1_macro",
    "mse",
    "r2",
    "precision",
    "precision_macro",
    "precision_micro",
    "recall",
    "recall_macro",
    "recall_micro",
    "mae",
}
# Metrics where larger is better (xgboost's own naming), for early stopping direction.
_MAXIMIZE_PREFIXES = ("auc", "aucpr", "map", "ndcg", "pre", "interval-regression-accuracy")


def _parse_hyperparameters(hyperparameters: dict[str, str]) -> dict[str, Any]:
    """Strings in (as SageMaker passes them), typed and range-checked values out."""
    out: dict[str, Any] = {}
    for key, value in hyperparameters.items():
        name = _ALIASES.get(key, key)
        kind = _HYPERPARAMETERS.get(name)
        if kind is None:
            raise ClientError(f"Extraneous hyperparameter found: {key}")
        text = str(value).strip()
        try:
            if kind == _INT:
                number = float(text)
                if not number.is_integer():
                    raise ValueError(text)
                parsed: Any = int(number)
            elif kind == _FLOAT:
                parsed = float(text)
                if not math.isfinite(parsed):
                    raise ValueError(text)
            else:
                parsed = text
        except ValueError:
            raise ClientError(f"Hyperparameter {key}: could not parse value {value!r} as {kind}") from None
        if name in _RANGES:
            lo, lo_inc, hi, hi_inc = _RANGES[name]
            bad = (lo is not None and (parsed < lo or (parsed == lo and not lo_inc))) or (
                hi is not None and (parsed > hi or (parsed == hi and not hi_inc))
            )
            if bad:
                interval = f"{'[' if lo_inc else '('}{lo if lo is not None else '-inf'}, {hi if hi is not None else 'inf'}{']' if hi_inc else ')'}"
                raise ClientError(f"Hyperparameter {key}: value {parsed} not in range {interval}")
        if name in _CHOICES and parsed not in _CHOICES[name]:
            raise ClientError(f"Hyperparameter {key}: value {parsed!r} not in {list(_CHOICES[name])}")
        out[name] = parsed
    if "num_round" not in out:
        raise ClientError("Missing required hyperparameter: num_round")
    objective = out.get("objective")
    if objective in ("multi:softmax", "multi:softprob") and "num_class" not in out:
        raise ClientError("Require input for parameter 'num_class' for multi-classification")
    if "num_class" in out and objective is None:
        raise ClientError("Do not need to setup parameter 'num_class' for learning task other than multi-classification.")
    if out.get("csv_weights"):
        raise ClientError("csv_weights=1 is not supported by the local runner")
    if str(out.get("use_dask_gpu_training", "false")).lower() == "true":
        raise ClientError("use_dask_gpu_training=true is not supported by the local runner")
    if "_kfold" in out or "_num_cv_round" in out:
        raise ClientError("cross-validation (_kfold/_num_cv_round) is not supported by the local runner")
    if "eval_metric" in out:
        metrics = [m.strip() for m in str(out["eval_metric"]).split(",") if m.strip()]
        custom = [m for m in metrics if m in _CONTAINER_CUSTOM_METRICS]
        if custom:
            raise ClientError(
                f"eval_metric {', '.join(custom)}: computed by the SageMaker container itself, not by xgboost; "
                "the local runner supports xgboost's own metrics (e.g. error, logloss, merror, mlogloss, auc)"
            )
        out["eval_metric"] = metrics
    return out


def _check_labels(y: np.ndarray, objective: str, num_class: int | None, channel: str) -> None:
    if objective.startswith("binary:") and not np.isin(y, (0.0, 1.0)).all():
        raise ClientError(
            f"{channel} labels must be 0 or 1 for objective {objective}, found {sorted(set(np.unique(y).tolist()) - {0.0, 1.0})[:5]}"
        )
    if objective.startswith("multi:") and num_class is not None:
        ok = (y >= 0) & (y < num_class) & (np.floor(y) == y)
        if not ok.all():
            raise ClientError(
                f"{channel} labels must be integers in [0, {num_class}) for objective {objective}, found {y[~ok][:5].tolist()}"
            )


def train(channels: dict[str, Path], hyperparameters: dict[str, str], model_dir: Path) -> Metrics:
    """Do what the SageMaker XGBoost container does in algorithm mode; return FinalMetricDataList.

    Metrics are ``<channel>:<eval_metric>`` at the last boosting round run (what the container
    logs last, hence what SageMaker records). Without ``eval_metric``, classification reports
    both the error rate and the log loss. As in the container, ``early_stopping_rounds`` acts
    only with a validation channel and an explicit ``eval_metric`` (its last entry decides),
    and the saved model keeps the best round's trees.
    """
    import xgboost as xgb

    hp = _parse_hyperparameters(dict(hyperparameters))
    unknown_channels = set(channels) - {"train", "validation"}
    if unknown_channels:
        raise ClientError(f"Unsupported channel(s) {sorted(unknown_channels)}; expected train and optional validation")
    if "train" not in channels:
        raise ClientError("Missing required channel: train")
    x_train, y_train = read_csv_channel(channels["train"], "train")
    evals_data: list[tuple[str, np.ndarray, np.ndarray]] = [("train", x_train, y_train)]
    if channels.get("validation") is not None:
        x_val, y_val = read_csv_channel(channels["validation"], "validation")
        if x_val.shape[1] != x_train.shape[1]:
            raise ClientError(f"validation has {x_val.shape[1]} feature columns but train has {x_train.shape[1]}")
        evals_data.append(("validation", x_val, y_val))

    num_round = hp.pop("num_round")
    early = hp.pop("early_stopping_rounds", None)
    for key in _IGNORED:
        hp.pop(key, None)
    objective = str(hp.get("objective", "reg:squarederror"))
    for channel, _, y in evals_data:
        _check_labels(y, objective, hp.get("num_class"), channel)
    user_metrics: list[str] = list(hp.get("eval_metric", []))
    if not user_metrics:
        hp.pop("eval_metric", None)
        if objective.startswith("multi:"):
            hp["eval_metric"] = ["merror", "mlogloss"]
        elif objective.startswith("binary:"):
            hp["eval_metric"] = ["error", "logloss"]
    # Small data trains in milliseconds on one thread, while two threads can stall for seconds
    # when another process holds a core (measured in bench/README.md).
    default_threads = 1 if len(evals_data[0][2]) < SMALL_DATA_ROWS else MAX_THREADS
    hp["nthread"] = min(int(hp.get("nthread", default_threads)), MAX_THREADS)
    hp.setdefault("seed", 0)
    hp.setdefault("verbosity", 0)

    callbacks = []
    # Like the container: early stopping watches the validation channel and the LAST
    # user-given eval_metric, and keeps the best iteration's trees (save_best).
    if early and len(evals_data) > 1 and user_metrics:
        metric = user_metrics[-1]
        callbacks.append(
            xgb.callback.EarlyStopping(
                rounds=early,
                data_name="validation",
                metric_name=metric,
                maximize=metric.startswith(_MAXIMIZE_PREFIXES),
                save_best=True,
            )
        )

    dmatrices = [(xgb.DMatrix(x, label=y, missing=np.nan, nthread=hp["nthread"]), name) for name, x, y in evals_data]
    history: dict[str, dict[str, list[float]]] = {}
    try:
        booster = xgb.train(
            hp,
            dmatrices[0][0],
            num_boost_round=num_round,
            evals=dmatrices,
            callbacks=callbacks,
            evals_result=history,
            verbose_eval=False,
        )
    except xgb.core.XGBoostError as exc:
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
        raise ClientError(f"XGB train call failed: {message}") from None

    model_dir = Path(model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():  # the container's file name has no extension: UBJSON, as there
        warnings.simplefilter("ignore", UserWarning)
        booster.save_model(str(model_dir / MODEL_FILE))

    metrics: list[dict] = []
    for channel in ("validation", "train"):
        for metric, values in history.get(channel, {}).items():
            if values:
                metrics.append({"MetricName": f"{channel}:{metric}", "Value": float(values[-1])})
    return metrics
