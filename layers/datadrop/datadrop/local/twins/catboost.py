"""CatBoost's twin: what the JumpStart CatBoost script (transfer_learning.py, run by the PyTorch
training container) and its inference script do, with catboost.

Training follows the script: argparse over the request's hyperparameters (names and defaults of the
JumpStart spec), loss Logloss / MultiClass / RMSE and eval_metric "Auto" → AUC / MultiClass / RMSE,
`model.fit(train_pool, eval_set=validation_pool)` with early_stopping_rounds (CatBoost keeps the
best iteration), then `score = model.get_best_score()["validation"][eval_metric]` logged as
"<eval_metric>: <score>". CatBoost itself ends its log with "bestTest = <score>" and
"bestIteration = <n>", the line the algorithm's MetricDefinitions parse (docs catboost-tuning.md);
the twin writes both and returns validation:<eval_metric> = that score.

How this twin differs:
- the classification/regression choice comes from the `eval_metric` hyperparameter datadrop derives
  (the real jobs run different scripts for the two);
- the twin writes the bestTest/bestIteration lines itself (CatBoost's per-iteration log is off);
- no pretrained `model` channel, no categorical_index.json; at most 2 threads; catboost 1.2 (the
  container pins catboost 1.0.1 for training, 1.2.2 for inference);
- the model file is CatBoost's binary format `model` (as the script saves it) plus a JSON info file.
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

MODEL_FILE = "model"
MAX_THREADS = 2
REGRESSION_METRICS = frozenset({"RMSE", "MAE", "MAPE", "R2", "Quantile", "Poisson", "Huber", "MSLE", "SMAPE"})


def _parser() -> argparse.ArgumentParser:
    """The script's arguments with the JumpStart spec's defaults (catboost-classification-model v2.1.6)."""
    parser = argparse.ArgumentParser(prog="transfer_learning.py", add_help=False)
    add = parser.add_argument
    add("--iterations", type=int, default=500)
    add("--early_stopping_rounds", type=int, default=5)
    add("--eval_metric", type=str, default="Auto")
    add("--learning_rate", type=float, default=0.03)
    add("--depth", type=float, default=6)  # float in the script too
    add("--l2_leaf_reg", type=float, default=3)
    add("--random_strength", type=float, default=1.0)
    add("--max_leaves", type=int, default=31)
    add("--rsm", type=float, default=1)
    add("--sampling_frequency", type=str, default="PerTreeLevel", choices=["PerTreeLevel", "PerTree"])
    add("--min_data_in_leaf", type=int, default=1)
    add("--bagging_temperature", type=float, default=1)
    add("--boosting_type", type=str, default="Auto", choices=["Auto", "Ordered", "Plain"])
    add("--scale_pos_weight", type=float, default=1.0)
    add("--max_bin", type=str, default="Auto")
    add("--grow_policy", type=str, default="SymmetricTree", choices=["SymmetricTree", "Depthwise", "Lossguide"])
    add("--random_seed", type=int, default=0)
    add("--thread_count", type=int, default=-1)
    add("--verbose", type=int, default=1)
    return parser


def _check(args: argparse.Namespace) -> None:
    if not 1 <= args.iterations <= 100000:
        raise ClientError(f"iterations must be in [1, 100000], got {args.iterations}")
    if not 1 <= args.depth <= 16:
        raise ClientError(f"depth must be in [1, 16], got {args.depth:g}")
    if not 0 < args.learning_rate <= 1:
        raise ClientError(f"learning_rate must be in (0, 1], got {args.learning_rate}")
    if args.thread_count == 0:  # the script's own message
        raise ClientError(
            "Hyperparameter thread_count is found to be 0. Please ensure thread_count is more than 0 or equal to -1. "
            "Value -1 means that the number of threads is equal to the number of processor cores."
        )
    if args.max_bin != "Auto" and not args.max_bin.isdigit():
        raise ClientError(f"max_bin must be 'Auto' or an integer, got {args.max_bin!r}")


def train(channels: dict[str, Path], hyperparameters: dict[str, str], model_dir: Path) -> Metrics:
    from catboost import CatBoostClassifier, CatBoostError, CatBoostRegressor, Pool

    args = parse_arguments(_parser(), hyperparameters)
    _check(args)
    x_train, y_train, x_val, y_val = read_channels(channels)
    regression = args.eval_metric in REGRESSION_METRICS
    threads = MAX_THREADS if args.thread_count < 0 else min(args.thread_count, MAX_THREADS)
    params: dict[str, Any] = {
        "iterations": args.iterations,
        "learning_rate": args.learning_rate,
        "depth": int(args.depth),
        "l2_leaf_reg": args.l2_leaf_reg,
        "random_strength": args.random_strength,
        "rsm": args.rsm,
        "sampling_frequency": args.sampling_frequency,
        "min_data_in_leaf": args.min_data_in_leaf,
        "bagging_temperature": args.bagging_temperature,
        "grow_policy": args.grow_policy,
        "random_seed": args.random_seed,
        "thread_count": threads,
        "verbose": False,
        "allow_writing_files": False,
    }
    if args.early_stopping_rounds > 0:
        params["early_stopping_rounds"] = args.early_stopping_rounds
    if args.grow_policy == "Lossguide":
        params["max_leaves"] = args.max_leaves
    if args.boosting_type != "Auto":
        params["boosting_type"] = args.boosting_type
    if args.max_bin != "Auto":
        params["max_bin"] = int(args.max_bin)
    if regression:
        kind, num_classes = "regression", 0
        metric = args.eval_metric
        estimator: Any = CatBoostRegressor(loss_function="RMSE", eval_metric=metric, **params)
    else:
        kind, num_classes = "classification", class_count(y_train, y_val)
        binary = num_classes == 2
        metric = ("AUC" if binary else "MultiClass") if args.eval_metric == "Auto" else args.eval_metric
        extra = {"scale_pos_weight": args.scale_pos_weight} if binary else {}
        estimator = CatBoostClassifier(
            loss_function="Logloss" if binary else "MultiClass",
            eval_metric=metric,
            class_names=list(range(num_classes)),
            **extra,
            **params,
        )
        y_train, y_val = y_train.astype(np.int64), y_val.astype(np.int64)
    try:
        estimator.fit(Pool(x_train, y_train), eval_set=Pool(x_val, y_val))
    except CatBoostError as error:
        raise ClientError(f"CatBoost training failed: {str(error).strip().splitlines()[0]}") from None
    score = float(estimator.get_best_score()["validation"][metric])
    log(f"bestTest = {score}")
    log(f"bestIteration = {estimator.get_best_iteration()}")
    log(f"{metric}: {score}")

    model_dir = Path(model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    estimator.save_model(str(model_dir / MODEL_FILE))
    write_model_info(model_dir, {"kind": kind, "num_classes": num_classes, "feature_dim": int(x_train.shape[1])})
    return [{"MetricName": f"validation:{metric}", "Value": score}]


def load(model_dir: Path) -> Any:
    from catboost import CatBoostClassifier, CatBoostRegressor

    info = read_model_info(model_dir)
    estimator: Any = CatBoostRegressor() if info["kind"] == "regression" else CatBoostClassifier()
    estimator.load_model(str(Path(model_dir) / MODEL_FILE))
    return {"estimator": estimator, **info}


def invoke(model: Any, body: bytes, content_type: str, accept: str) -> tuple[bytes, str]:
    """The JumpStart CatBoost inference script's answer (see _jumpstart_tabular)."""
    features = parse_features(body, content_type, int(model["feature_dim"]))
    estimator = model["estimator"]
    values = estimator.predict(features) if model["kind"] == "regression" else estimator.predict_proba(features)
    return respond(np.asarray(values, dtype=np.float64), model["kind"] == "regression", accept)
