"""LightGBM's twin: what the JumpStart LightGBM script (transfer_learning.py, run by the PyTorch
training container) and its inference script do, with lightgbm.

Training follows the script: argparse over the request's hyperparameters (names and defaults of the
JumpStart spec), objective binary / multiclass (num_class) / regression from the labels,
`lgb.train(params, train, num_boost_round, valid_sets=[val, train], valid_names=["val", "train"],
early_stopping_rounds)`; LightGBM then logs, per round, "[N]\\tval's <metric>: <v>\\ttrain's
<metric>: <v>" and at the end the best round's line (after "Early stopping, best iteration is:" or
"Did not meet early stopping. Best iteration is:"), which the algorithm's MetricDefinitions parse:
the final values are the best round's, returned as validation:<metric> and train:<metric>.

How this twin differs:
- the classification/regression choice comes from the `metric` hyperparameter datadrop derives
  (the real jobs run different scripts for the two); "auto" falls back to the labels (integers → classes);
- lightgbm 4.x with callbacks instead of the script's lightgbm 3.3.3 `early_stopping_rounds`
  argument; the log lines are written by the twin in 3.3.3's format;
- no pretrained `model` channel (JumpStart's starts from scratch unless the artifact was trained),
  no categorical_index.json, no Dask / multi-instance training; at most 2 threads;
- the model is saved as LightGBM's text format `model.txt` plus a JSON info file (the container
  pickles the booster with joblib).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np

from datadrop.local.twins._jumpstart_tabular import (
    class_count,
    log,
    parse_arguments,
    parse_features,
    read_channels,
    read_model_info,
    respond,
    write_model_info,
)
from datadrop.local.twins.base import ClientError, Metrics

MODEL_FILE = "model.txt"
MAX_THREADS = 2
REGRESSION_METRICS = frozenset({"rmse", "l1", "l2", "huber", "fair", "poisson", "quantile", "mape", "gamma", "tweedie"})
MAXIMIZED = ("auc", "average_precision", "auc_mu", "map", "ndcg")


def _parser() -> argparse.ArgumentParser:
    """The script's arguments with the JumpStart spec's defaults (lightgbm-classification-model v2.1.6)."""
    parser = argparse.ArgumentParser(prog="transfer_learning.py", add_help=False)
    add = parser.add_argument
    add("--num_boost_round", type=int, default=5000)
    add("--early_stopping_rounds", type=int, default=30)
    add("--metric", type=str, default="auto")
    add("--learning_rate", type=float, default=0.009)
    add("--num_leaves", type=int, default=67)
    add("--feature_fraction", type=float, default=0.74)
    add("--bagging_fraction", type=float, default=0.53)
    add("--bagging_freq", type=int, default=5)
    add("--max_depth", type=int, default=11)
    add("--min_data_in_leaf", type=int, default=26)
    add("--max_delta_step", type=float, default=0.0)
    add("--lambda_l1", type=float, default=0.0)
    add("--lambda_l2", type=float, default=0.0)
    add("--boosting", type=str, default="gbdt", choices=["gbdt", "rf", "dart", "goss"])
    add("--min_gain_to_split", type=float, default=0.0)
    add("--scale_pos_weight", type=float, default=1.0)
    add("--tree_learner", type=str, default="serial", choices=["serial", "feature", "data", "voting"])
    add("--feature_fraction_bynode", type=float, default=1.0)
    add("--is_unbalance", type=str, default="False", choices=["True", "False"])
    add("--max_bin", type=int, default=255)
    add("--num_threads", type=int, default=0)
    add("--verbosity", type=int, default=1)
    add("--use_dask", type=str, default="False", choices=["True", "False"])
    return parser


def _check(args: argparse.Namespace) -> None:
    if not 1 <= args.num_boost_round <= 100000:
        raise ClientError(f"num_boost_round must be in [1, 100000], got {args.num_boost_round}")
    if not args.learning_rate > 0:
        raise ClientError(f"learning_rate must be positive, got {args.learning_rate}")
    if not 2 <= args.num_leaves <= 131072:
        raise ClientError(f"num_leaves must be in [2, 131072], got {args.num_leaves}")
    for name in ("feature_fraction", "bagging_fraction", "feature_fraction_bynode"):
        if not 0 < getattr(args, name) <= 1:
            raise ClientError(f"{name} must be in (0, 1], got {getattr(args, name)}")
    if args.use_dask == "True":
        raise ClientError("use_dask=True (Dask training) is not supported by the local runner")


def train(channels: dict[str, Path], hyperparameters: dict[str, str], model_dir: Path) -> Metrics:
    import lightgbm as lgb

    args = parse_arguments(_parser(), hyperparameters)
    _check(args)
    x_train, y_train, x_val, y_val = read_channels(channels)
    regression = args.metric in REGRESSION_METRICS or (
        args.metric == "auto" and not np.all(np.floor(np.concatenate([y_train, y_val])) == np.concatenate([y_train, y_val]))
    )
    params: dict[str, Any] = {
        "learning_rate": args.learning_rate,
        "num_leaves": args.num_leaves,
        "feature_fraction": args.feature_fraction,
        "bagging_fraction": args.bagging_fraction,
        "bagging_freq": args.bagging_freq,
        "max_depth": args.max_depth,
        "min_data_in_leaf": args.min_data_in_leaf,
        "max_delta_step": args.max_delta_step,
        "lambda_l1": args.lambda_l1,
        "lambda_l2": args.lambda_l2,
        "boosting": args.boosting,
        "min_gain_to_split": args.min_gain_to_split,
        "tree_learner": args.tree_learner,
        "feature_fraction_bynode": args.feature_fraction_bynode,
        "max_bin": args.max_bin,
        "num_threads": min(args.num_threads or MAX_THREADS, MAX_THREADS),
        "verbosity": -1,  # LightGBM's own chatter; the twin writes the evaluation lines itself
        "seed": 0,
    }
    if regression:
        kind, num_classes = "regression", 0
        params.update(objective="regression", metric="rmse" if args.metric == "auto" else args.metric)
    else:
        kind, num_classes = "classification", class_count(y_train, y_val)
        if num_classes == 2:
            params.update(objective="binary", metric="binary_logloss" if args.metric == "auto" else args.metric)
            params.update(scale_pos_weight=args.scale_pos_weight, is_unbalance=args.is_unbalance == "True")
        else:
            params.update(objective="multiclass", num_class=num_classes)
            params.update(metric="multi_logloss" if args.metric == "auto" else args.metric)
    metric = str(params["metric"])

    history: dict[str, dict[str, list[float]]] = {}

    def log_round(env: Any) -> None:
        parts = [f"{name}'s {m}: {value:g}" for name, m, value, _ in env.evaluation_result_list]
        log(f"[{env.iteration + 1}]\t" + "\t".join(parts))

    callbacks = [lgb.record_evaluation(history), log_round]
    if args.early_stopping_rounds > 0:
        callbacks.append(lgb.early_stopping(args.early_stopping_rounds, first_metric_only=False, verbose=False))
    dtrain = lgb.Dataset(x_train, y_train, free_raw_data=False)
    dval = lgb.Dataset(x_val, y_val, reference=dtrain, free_raw_data=False)
    try:
        booster = lgb.train(
            params,
            dtrain,
            num_boost_round=args.num_boost_round,
            valid_sets=[dval, dtrain],
            valid_names=["val", "train"],
            callbacks=callbacks,
        )
    except lgb.basic.LightGBMError as error:
        raise ClientError(f"LightGBM training failed: {str(error).strip().splitlines()[0]}") from None

    best = booster.best_iteration or len(history["val"][metric])
    stopped_early = best < len(history["val"][metric])
    log("Early stopping, best iteration is:" if stopped_early else "Did not meet early stopping. Best iteration is:")
    finals = {name: values[metric][best - 1] for name, values in history.items()}
    log(f"[{best}]\tval's {metric}: {finals['val']:g}\ttrain's {metric}: {finals['train']:g}")

    model_dir = Path(model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    booster.save_model(str(model_dir / MODEL_FILE), num_iteration=best)
    write_model_info(model_dir, {"kind": kind, "num_classes": num_classes, "feature_dim": int(x_train.shape[1])})
    return [
        {"MetricName": f"validation:{metric}", "Value": float(finals["val"])},
        {"MetricName": f"train:{metric}", "Value": float(finals["train"])},
    ]


def load(model_dir: Path) -> Any:
    import lightgbm as lgb

    info = read_model_info(model_dir)
    return {"booster": lgb.Booster(model_file=str(Path(model_dir) / MODEL_FILE)), **info}


def invoke(model: Any, body: bytes, content_type: str, accept: str) -> tuple[bytes, str]:
    """The JumpStart LightGBM inference script's answer (see _jumpstart_tabular)."""
    features = parse_features(body, content_type, int(model["feature_dim"]))
    raw = np.asarray(model["booster"].predict(features))
    if model["kind"] == "classification" and model["num_classes"] == 2:
        raw = np.column_stack([1.0 - raw, raw])
    return respond(raw, model["kind"] == "regression", accept)
