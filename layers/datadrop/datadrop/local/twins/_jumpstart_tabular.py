"""What the LightGBM and CatBoost twins share: the JumpStart scripts' channels and hyperparameter
parsing, and the JumpStart inference scripts' /invocations contract.

Inference (amazon-sagemaker-examples, sm-lightgbm_catboost_tabular_classification.ipynb and
churn-prediction-lightgbm-catboost-tabtransformer-autogluon.ipynb; SDK spec `predictor_specs`):
text/csv features in, no header, no label; Accept application/json (default) answers
{"probabilities": [[P0, .., PK-1], ...]} for classification — binary as two columns, as the churn
notebook's `np.argmax(probs, axis=1)` over two classes implies — and {"prediction": [...]} for
regression. Accept application/json;verbose adds "labels" and "predicted_label" (UNVERIFIED shape:
the class indices, and the argmax per row).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np

from datadrop.local.twins.base import ClientError, read_csv_channel, script_mode_hyperparameters

CSV = "text/csv"
JSON = "application/json"
JSON_VERBOSE = "application/json;verbose"
MODEL_INFO_FILE = "__models_info__.json"  # the scripts' model_info.save_model_info output


def parse_arguments(parser: argparse.ArgumentParser, hyperparameters: dict[str, str]) -> argparse.Namespace:
    """As the container does: the toolkit JSON-decodes each value and passes `--key value`; the
    script reads them with `parse_known_args` (unknown keys ignored, a bad value is an error)."""
    argv: list[str] = []
    for key, value in script_mode_hyperparameters(hyperparameters).items():
        argv += [f"--{key}", value if isinstance(value, str) else json.dumps(value)]
    try:
        args, _unknown = parser.parse_known_args(argv)
    except SystemExit:
        raise ClientError(f"Invalid hyperparameters: {parser.format_usage().strip()}") from None
    return args


def read_channels(channels: dict[str, Path]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """train (or training) and validation channels; without validation the scripts hold out 20%
    of train (seed 200, docs InputOutput-LightGBM)."""
    train = channels.get("train") or channels.get("training")
    if train is None:
        raise ClientError("Missing required channel: train (or training)")
    x_train, y_train = read_csv_channel(train, "train")
    if channels.get("validation") is not None:
        x_val, y_val = read_csv_channel(channels["validation"], "validation")
        if x_val.shape[1] != x_train.shape[1]:
            raise ClientError(f"validation has {x_val.shape[1]} feature columns but train has {x_train.shape[1]}")
    else:
        order = np.random.default_rng(200).permutation(len(y_train))
        held = order[: max(1, int(0.2 * len(order)))]
        kept = np.setdiff1d(order, held)
        x_train, y_train, x_val, y_val = x_train[kept], y_train[kept], x_train[held], y_train[held]
    return x_train, y_train, x_val, y_val


def class_count(y_train: np.ndarray, y_val: np.ndarray) -> int:
    """Classes are the label indices 0..K-1 (the scripts infer binary vs multiclass from the labels)."""
    labels = np.unique(np.concatenate([y_train, y_val]))
    if not np.all(np.floor(labels) == labels) or labels.min() < 0:
        raise ClientError(f"Classification labels must be integers 0..K-1, found {labels[:5].tolist()}")
    k = int(labels.max()) + 1
    if k < 2:
        raise ClientError("Classification needs at least two classes in the label column")
    return k


def write_model_info(model_dir: Path, info: dict[str, Any]) -> None:
    (model_dir / MODEL_INFO_FILE).write_text(json.dumps({"is_trained_on_input_data": True, **info}))


def read_model_info(model_dir: Path) -> dict[str, Any]:
    info: dict[str, Any] = json.loads((Path(model_dir) / MODEL_INFO_FILE).read_text())
    return info


def parse_features(body: bytes, content_type: str, feature_dim: int) -> np.ndarray:
    media_type = content_type.split(";")[0].strip().lower()
    if media_type != CSV:
        raise ValueError(f"Unsupported content type {content_type!r}: this model accepts {CSV}")
    rows = [line for line in body.decode("utf-8").splitlines() if line.strip()]
    if not rows:
        raise ValueError("Empty request: send one CSV row of features per line")
    data = np.full((len(rows), feature_dim), np.nan, dtype=np.float64)
    for i, line in enumerate(rows):
        fields = line.split(",")
        if len(fields) != feature_dim:
            raise ValueError(f"Row {i + 1} has {len(fields)} features, the model expects {feature_dim}")
        for j, field in enumerate(fields):
            text = field.strip()
            if text:
                try:
                    data[i, j] = float(text)
                except ValueError:
                    raise ValueError(f"Row {i + 1}, column {j + 1}: {text!r} is not a number") from None
    return data


def respond(values: np.ndarray, kind: str, num_classes: int, accept: str) -> tuple[bytes, str]:
    """values: probabilities (n, K) for classification, predictions (n,) for regression."""
    wanted = (accept or JSON).replace(" ", "").lower()
    if wanted in ("*/*", ""):
        wanted = JSON
    if wanted not in (JSON, JSON_VERBOSE):
        raise ValueError(f"Unsupported accept type {accept!r}: this model answers {JSON} or {JSON_VERBOSE}")
    if kind == "regression":
        body: dict[str, Any] = {"prediction": [float(v) for v in values]}
    else:
        body = {"probabilities": [[float(p) for p in row] for row in values]}
        if wanted == JSON_VERBOSE:
            body["labels"] = list(range(num_classes))
            body["predicted_label"] = [int(i) for i in np.argmax(values, axis=1)]
    return json.dumps(body).encode("utf-8"), wanted
