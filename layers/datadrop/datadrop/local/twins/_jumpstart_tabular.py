"""What the four JumpStart twins (LightGBM, CatBoost, AutoGluon-Tabular, TabTransformer) share: the
channels and hyperparameters their training scripts read, the problem kind, and the /invocations
contract of JumpStart's tabular inference scripts.

Sources:
- Channels: the JumpStart notebooks train with ONE channel, ``{"training": s3_prefix}``, whose prefix
  holds ``train/`` and optional ``validation/`` sub-directories (headerless CSV, label first) and, for
  TabTransformer, an optional ``categorical_index.json`` (amazon-sagemaker-examples,
  build_and_train_models/sm-tabtransformer_tabular_classification.ipynb,
  archived/Amazon_Tabular_Classification_AutoGluon.ipynb); the LightGBM docs take ``train`` (or
  ``training``) and ``validation`` channels directly, which is what datadrop sends. JumpStart's
  ``model_uri`` adds a ``model`` channel with a dummy pre-trained tarball ("the pre-trained model
  tarball is dummy and fine-tune means training from scratch", same notebook); the ``code`` channel
  holds the script, which the twin is. Without validation the scripts hold out 20% of train (seed
  200, docs InputOutput-LightGBM).
- Responses: the inference scripts (``transform_fn``) take ``text/csv`` features only (no header, no
  label), answer classification with ``{"probabilities": [[p0, p1, ...], ...]}`` (binary as two
  columns: the notebooks take the argmax over axis 1) and, when Accept ends with ``;verbose``, add
  ``"predicted_label"`` (the argmax) and ``"labels"`` (the class indices: UNVERIFIED); regression
  answers ``{"prediction": [...]}``; the body is sagemaker_inference's ``encoder.encode(output,
  accept)`` after the ``;verbose`` suffix is dropped, so its content type is application/json (a copy
  of JumpStart's LightGBM inference.py in github.com/ucegbe/sagemaker_training,
  LighGBM/model_cat/js_inference_code/inference.py and model_reg/; the notebooks read
  ``["probabilities"]`` and ``["prediction"]``).
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any, Literal

import numpy as np

from datadrop.local.twins.base import ClientError, channel_files, read_csv_channel, script_mode_hyperparameters

Kind = Literal["binary", "multiclass", "regression"]
CSV = "text/csv"
JSON = "application/json"
VERBOSE = ";verbose"
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


def data_channels(channels: dict[str, Path]) -> tuple[Path, Path | None, Path | None]:
    """(train, validation or None, the directory that may hold categorical_index.json or None)."""
    unknown = set(channels) - {"training", "train", "validation", "model", "code"}  # code: the script (the twin is it)
    if unknown:
        raise ClientError(f"Unsupported channel(s) {sorted(unknown)}; expected training (or train and validation) and model")
    if "training" in channels:
        root = Path(channels["training"])
        train = root / "train"
        if not train.is_dir():
            raise ClientError(f"The training channel must hold a train/ directory (found none under {root})")
        validation = root / "validation"
        return train, (validation if validation.is_dir() and channel_files(validation, "validation") else None), root
    if "train" not in channels:
        raise ClientError("Missing required channel: training (or train)")
    validation_path = channels.get("validation")
    return Path(channels["train"]), (Path(validation_path) if validation_path is not None else None), Path(channels["train"])


def read_table(path: Path, channel: str) -> tuple[np.ndarray, np.ndarray]:
    """Headerless CSV files, label first -> (X, y); JSON side files (categorical_index.json) are not data."""
    files = [f for f in channel_files(path, channel) if f.suffix.lower() != ".json"]
    if not files:
        raise ClientError(f"No data in {channel} channel path {path}")
    parts = [read_csv_channel(f, channel) for f in files]
    widths = {x.shape[1] for x, _ in parts}
    if len(widths) > 1:
        raise ClientError(f"{channel} files have different column counts: {sorted(w + 1 for w in widths)}")
    return np.concatenate([x for x, _ in parts]), np.concatenate([y for _, y in parts])


# What datadrop's declarations (datadrop.algorithms.autogluon / tabtransformer) say: TabTransformer's
# `problem_type`, AutoGluon's regression `eval_metric`s.
REGRESSION_METRICS = {
    name: "regression"
    for name in ("root_mean_squared_error", "mean_squared_error", "mean_absolute_error", "median_absolute_error", "r2")
}


def problem_kind(hyperparameters: dict[str, str], y: np.ndarray) -> Kind:
    """Classification or regression, as the JumpStart model id decides (``...-classification-...`` or
    ``...-regression-...``, visible in the script-mode ``sagemaker_submit_directory``/``sagemaker_program``);
    binary or multiclass as the containers decide, from the number of distinct labels. Without a model id
    in the request, integral labels mean classification."""
    decoded = script_mode_hyperparameters(hyperparameters)
    declared = str(decoded.get("problem_type", "")) or REGRESSION_METRICS.get(str(decoded.get("eval_metric", "")), "")
    if declared == "regression":
        return "regression"
    source = " ".join(str(hyperparameters.get(k, "")) for k in ("sagemaker_submit_directory", "sagemaker_program")).lower()
    if "regression" in source:
        return "regression"
    integral = bool(np.all(np.floor(y) == y))
    if "classification" not in source and not integral:
        return "regression"
    if not integral or (y < 0).any():
        bad = y[(np.floor(y) != y) | (y < 0)][:5].tolist()
        raise ClientError(f"Classification labels must be class indices 0, 1, ..., K-1; found {bad}")
    return "binary" if len(np.unique(y)) <= 2 else "multiclass"


def as_bool(name: str, value: Any) -> bool:
    """JumpStart's boolean hyperparameters are the strings "True"/"False"."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "1"):
        return True
    if text in ("false", "0"):
        return False
    raise ClientError(f"Hyperparameter {name}: {value!r} is not one of 'True', 'False'")


def as_number(name: str, value: Any, kind: type[int | float]) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ClientError(f"Hyperparameter {name}: could not parse {value!r} as {kind.__name__}") from None
    if not math.isfinite(number) or (kind is int and not number.is_integer()):
        raise ClientError(f"Hyperparameter {name}: could not parse {value!r} as {kind.__name__}")
    return int(number) if kind is int else number


def check_range(
    name: str, value: float, low: float, high: float | None, *, low_open: bool = False, high_open: bool = False
) -> None:
    too_low = value < low or (low_open and value == low)
    too_high = high is not None and (value > high or (high_open and value == high))
    if too_low or too_high:
        interval = (
            f"{'(' if low_open else '['}{low}, {high if high is not None else 'inf'}{')' if high_open or high is None else ']'}"
        )
        raise ClientError(f"Hyperparameter {name}: value {value} not in range {interval}")


def read_channels(channels: dict[str, Path]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(x_train, y_train, x_validation, y_validation); without a validation channel, 20% of train
    held out (seed 200), as the scripts do."""
    train, validation, _ = data_channels(channels)
    x_train, y_train = read_table(train, "train")
    if validation is not None:
        x_val, y_val = read_table(validation, "validation")
        if x_val.shape[1] != x_train.shape[1]:
            raise ClientError(f"validation has {x_val.shape[1]} feature columns but train has {x_train.shape[1]}")
        return x_train, y_train, x_val, y_val
    order = np.random.default_rng(200).permutation(len(y_train))
    held = order[: max(1, int(0.2 * len(order)))]
    kept = np.setdiff1d(order, held)
    return x_train[kept], y_train[kept], x_train[held], y_train[held]


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
    """A text/csv request of encoded features (no label) -> float rows; empty fields are missing (NaN)."""
    if (content_type or "").split(";")[0].strip().lower() != CSV:
        raise ValueError(f"Unsupported content type {content_type!r}: this container accepts {CSV} only")
    rows: list[list[float]] = []
    for number, line in enumerate(bytes(body).decode("utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        fields = line.split(",")
        if len(fields) != feature_dim:
            raise ValueError(
                f"Row {number} has {len(fields)} features; the model expects {feature_dim} (it was trained on {feature_dim})"
            )
        try:
            rows.append([float(field) if field.strip() else math.nan for field in fields])
        except ValueError:
            raise ValueError(f"Row {number} has a non-numeric feature, which is not a number: {line[:200]!r}") from None
    if not rows:
        raise ValueError("Empty request: send one CSV row of features per record")
    return np.asarray(rows, dtype=np.float64)


def respond(values: np.ndarray, regression: bool, accept: str) -> tuple[bytes, str]:
    """The inference scripts' answer: probabilities (n, K) for classification (with `labels` and
    `predicted_label` when Accept is verbose), predictions (n,) for regression."""
    accept = (accept or JSON).replace(" ", "")
    verbose = accept.lower().endswith(VERBOSE)
    media = accept[: -len(VERBOSE)] if verbose else accept
    if media.lower() not in (JSON, "*/*"):
        raise ValueError(f"Unsupported Accept {accept!r}: the accept types this container answers are {JSON} and {JSON}{VERBOSE}")
    output: dict[str, Any]
    if regression:
        output = {"prediction": [float(v) for v in values]}
    else:
        probabilities = np.asarray(values, dtype=np.float64)
        output = {"probabilities": probabilities.tolist()}
        if verbose:
            output["labels"] = list(range(probabilities.shape[1]))
            output["predicted_label"] = np.argmax(probabilities, axis=1).astype(int).tolist()
    return json.dumps(output).encode("utf-8"), JSON


def log(line: str) -> None:
    """A line of the container's log (the local runner sends it to stderr: see runner._container_log)."""
    print(line, flush=True)
