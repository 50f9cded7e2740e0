"""What the JumpStart tabular twins (AutoGluon-Tabular, TabTransformer) share: the channel layout
their training scripts read, the problem kind, and the /invocations encoding of their inference scripts.

Sources:
- Channels: the JumpStart notebooks train with ONE channel, ``{"training": s3_prefix}``, whose prefix
  holds ``train/`` and optional ``validation/`` sub-directories (each with a headerless ``data.csv``,
  label first) and, for TabTransformer, an optional ``categorical_index.json``
  (amazon-sagemaker-examples, build_and_train_models/sm-tabtransformer_tabular_classification.ipynb,
  archived/Amazon_Tabular_Classification_AutoGluon.ipynb). JumpStart's ``model_uri`` adds a ``model``
  channel with a dummy pre-trained tarball ("the pre-trained model tarball is dummy and fine-tune means
  training from scratch", same notebook). The twins also take datadrop's usual ``train``/``validation``
  channels.
- Responses: the JumpStart tabular inference scripts (``transform_fn``) accept ``text/csv`` only,
  answer classification with ``{"probabilities": [[p0, p1, ...], ...]}`` and, when Accept ends with
  ``;verbose``, add ``"predicted_label"`` (the argmax); regression answers ``{"prediction": [...]}``;
  the body is sagemaker_inference's ``encoder.encode(output, accept)`` after the ``;verbose`` suffix is
  dropped (a copy of JumpStart's LightGBM classification/regression inference.py in
  github.com/ucegbe/sagemaker_training, LighGBM/model_cat/js_inference_code/inference.py and
  LighGBM/model_reg/js_inference_code/; the notebooks read ``["probabilities"]`` and ``["prediction"]``).
"""

from __future__ import annotations

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


def parse_request(body: bytes, content_type: str, feature_count: int) -> np.ndarray:
    """A text/csv request of encoded features (no label) -> float rows; empty fields are missing (NaN)."""
    if (content_type or "").strip().lower() != CSV:
        raise ValueError(f"Unsupported content type {content_type!r}: this container accepts {CSV} only")
    text = body.decode("utf-8") if isinstance(body, bytes | bytearray) else str(body)
    rows: list[list[float]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        fields = line.split(",")
        if len(fields) != feature_count:
            raise ValueError(f"Row {number} has {len(fields)} features; the model was trained on {feature_count}")
        try:
            rows.append([float(f) if f.strip() else math.nan for f in fields])
        except ValueError:
            raise ValueError(f"Row {number} has a non-numeric feature: {line[:200]!r}") from None
    if not rows:
        raise ValueError("Empty request: send one CSV row of features per record")
    return np.asarray(rows, dtype=np.float64)


def encode_response(kind: Kind, values: np.ndarray, accept: str) -> tuple[bytes, str]:
    """The inference scripts' answer: probabilities (+ predicted_label when verbose) or prediction."""
    accept = (accept or JSON).strip()
    verbose = accept.lower().endswith(VERBOSE)
    media = accept[: -len(VERBOSE)] if verbose else accept
    if media.lower() not in (JSON, "*/*"):
        raise ValueError(f"Unsupported Accept {accept!r}: this container answers {JSON} or {JSON}{VERBOSE}")
    output: dict[str, Any]
    if kind == "regression":
        output = {"prediction": [float(v) for v in values]}
    else:
        output = {"probabilities": np.asarray(values, dtype=np.float64).tolist()}
        if verbose:
            output["predicted_label"] = np.argmax(values, axis=1).astype(int).tolist()
    return json.dumps(output).encode("utf-8"), JSON
