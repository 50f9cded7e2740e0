"""What every local twin shares: the training container's failure reasons and its CSV channels.

A twin does what an algorithm's SageMaker container does, on this machine, under the same
contract: channel directories in, files in the model directory out (the local SageMaker tars them
into model.tar.gz), the final metrics returned as FinalMetricDataList; and, for algorithms served
in an inference pipeline, `load` + `invoke` answer /invocations with the same body the real
container answers.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Protocol

import numpy as np

Metrics = list[dict[str, Any]]  # [{"MetricName": "validation:accuracy", "Value": 0.9}, ...]


class TrainingFailed(Exception):
    """A training job failure; ``reason`` reads like SageMaker's FailureReason ("ClientError: ...")."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class ClientError(TrainingFailed, ValueError):
    """Bad hyperparameters or data (the container's UserError): still a ValueError for callers."""

    def __init__(self, message: str) -> None:
        super().__init__(f"ClientError: {message}")


class Trainer(Protocol):
    def __call__(self, channels: dict[str, Path], hyperparameters: dict[str, str], model_dir: Path) -> Metrics: ...


class Twin(Protocol):
    """A twin module's interface (module-level functions). `load` and `invoke` only for pipeline algorithms."""

    def train(self, channels: dict[str, Path], hyperparameters: dict[str, str], model_dir: Path) -> Metrics: ...

    def load(self, model_dir: Path) -> Any: ...

    def invoke(self, model: Any, body: bytes, content_type: str, accept: str) -> tuple[bytes, str]: ...


def script_mode_hyperparameters(hyperparameters: dict[str, str]) -> dict[str, Any]:
    """What a script-mode container (sagemaker-training toolkit) hands the script: each value
    JSON-decoded, the toolkit's own sagemaker_* keys left out."""
    decoded: dict[str, Any] = {}
    for key, value in hyperparameters.items():
        if key.startswith("sagemaker_"):
            continue
        try:
            decoded[key] = json.loads(value)
        except ValueError:
            decoded[key] = value  # the toolkit keeps a value that is not JSON as it is
    return decoded


def channel_files(path: Path, channel: str) -> list[Path]:
    """A channel is a file or a directory of files (hidden files skipped, like S3 prefixes)."""
    path = Path(path)
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise ClientError(f"No data in {channel} channel path {path}")
    files = sorted(
        p for p in path.rglob("*") if p.is_file() and not any(part.startswith(".") for part in p.relative_to(path).parts)
    )
    return [p for p in files if p.stat().st_size > 0]


def read_csv_channel(path: Path, channel: str) -> tuple[np.ndarray, np.ndarray]:
    """Headerless CSV, label first -> (X, y); empty fields are missing values (NaN)."""
    import polars as pl

    files = channel_files(path, channel)
    if not files:
        raise ClientError(f"No data in {channel} channel path {path}")
    parts: list[np.ndarray] = []
    width: int | None = None
    for file in files:
        try:
            frame = pl.read_csv(file, has_header=False, infer_schema=False)
        except Exception as exc:  # noqa: BLE001 - polars raises several types for ragged rows, bad quoting, ...
            raise ClientError(f"Loading csv data failed: {file.name} in channel {channel}: {exc}") from None
        if width is None:
            width = frame.width
        elif frame.width != width:
            raise ClientError(f"{channel} channel files have different column counts ({width} vs {frame.width} in {file.name})")
        stripped = [pl.col(c).str.strip_chars() for c in frame.columns]
        casted = frame.select([s.cast(pl.Float64, strict=False) for s in stripped])
        bad_rows = frame.select(
            pl.any_horizontal(
                [((s.str.len_chars() > 0) & s.cast(pl.Float64, strict=False).is_null()).fill_null(False) for s in stripped]
            ).alias("bad")
        )["bad"]
        if bad_rows.any():
            row_idx = int(bad_rows.arg_true()[0])
            col_idx = next(
                i for i, v in enumerate(frame.row(row_idx)) if v is not None and v.strip() and casted.row(row_idx)[i] is None
            )
            raise ClientError(
                f"Non-numeric value {frame.row(row_idx)[col_idx]!r} in {channel} channel, file {file.name}, "
                f"line {row_idx + 1}, column {col_idx + 1}: training CSV must be numeric with the label first"
            )
        parts.append(casted.to_numpy().astype(np.float32, copy=False))
    data = np.concatenate(parts) if len(parts) > 1 else parts[0]
    if data.shape[1] < 2:
        raise ClientError(f"{channel} channel needs a label column and at least one feature column")
    y, x = data[:, 0], np.ascontiguousarray(data[:, 1:])
    if np.isnan(y).any():
        line = int(np.flatnonzero(np.isnan(y))[0]) + 1
        raise ClientError(f"Missing label in {channel} channel at row {line}: the first column must hold the label")
    return x, y
