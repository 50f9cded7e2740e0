"""The training channels each algorithm reads, written by prepare beside the plain CSV splits.

Every algorithm reads the same rows. Most take datadrop's CSV (label first, encoded features) as
it is. k-NN and Factorization Machines measure distances and learn by plain SGD, so raw
magnitudes (a body mass in grams beside a bill depth in millimetres) swamp the other features or
make training diverge: they read the features standardised with the training split's mean and
standard deviation, which the recipe keeps (`standardise`) so the preprocessing stage of their
inference pipeline applies the same. Factorization Machines reads only RecordIO-protobuf.
Imported by the prepare step only (polars).
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from datadrop import algorithms, recordio
from datadrop.algorithms.base import RECORDIO_PROTOBUF
from datadrop.names import DatasetLocations

STANDARDISE_KEY = "standardise"  # in the recipe: {"mean": [...], "scale": [...]}, one per encoded feature


@dataclass
class Channels:
    """What to write besides the plain splits: files by key, the recipe's additions, the artifacts' URIs."""

    files: dict[str, tuple[bytes, str]] = field(default_factory=dict)  # key → (body, content type)
    recipe: dict[str, Any] = field(default_factory=dict)
    artifacts: dict[str, str] = field(default_factory=dict)


def standardisation(train_csv: bytes) -> dict[str, list[float]]:
    """Mean and standard deviation (population) of each feature column of the training split; a
    constant column keeps scale 1, so it maps to 0."""
    import polars as pl

    frame = pl.read_csv(io.BytesIO(train_csv), has_header=False, infer_schema=False)
    features = frame.select(pl.col(name).cast(pl.Float64) for name in frame.columns[1:])
    means = features.mean().row(0)
    deviations = features.std(ddof=0).row(0)
    return {
        "mean": [float(mean or 0.0) for mean in means],
        "scale": [float(deviation) if deviation else 1.0 for deviation in deviations],
    }


def standardised_csv(split_csv: bytes, scaling: dict[str, list[float]]) -> bytes:
    """The split with its features standardised, the label as it was."""
    import polars as pl

    frame = pl.read_csv(io.BytesIO(split_csv), has_header=False, infer_schema=False)
    label, *features = frame.columns
    scaled = frame.select(
        pl.col(label),
        *(
            ((pl.col(name).cast(pl.Float64) - mean) / scale).alias(name)
            for name, mean, scale in zip(features, scaling["mean"], scaling["scale"], strict=True)
        ),
    )
    return scaled.write_csv(include_header=False).encode()


def _recordio(split_csv: bytes) -> bytes:
    out = io.BytesIO()
    recordio.csv_to_recordio(split_csv.decode("utf-8").splitlines(), out)
    return out.getvalue()


def algorithm_channels(
    algorithm_names: Iterable[str], locations: DatasetLocations, train_csv: bytes, validation_csv: bytes
) -> Channels:
    """The standardised CSV and RecordIO splits the algorithms need, if any."""
    chosen = [algorithms.get(name) for name in algorithm_names]
    channels = Channels()
    if not any(algorithm.standardise_features for algorithm in chosen):
        return channels
    scaling = standardisation(train_csv)
    channels.recipe[STANDARDISE_KEY] = scaling
    splits = {"train": standardised_csv(train_csv, scaling), "validation": standardised_csv(validation_csv, scaling)}
    relative = {"train": locations.TRAIN_STANDARDISED, "validation": locations.VALIDATION_STANDARDISED}
    for split, body in splits.items():
        channels.files[locations.key(relative[split])] = (body, "text/csv")
        channels.artifacts[f"{split}_standardised"] = locations.channel_uri(relative[split])
    if any(algorithm.training_content_type == RECORDIO_PROTOBUF for algorithm in chosen):
        recordio_relative = {"train": locations.TRAIN_RECORDIO, "validation": locations.VALIDATION_RECORDIO}
        for split, body in splits.items():
            channels.files[locations.key(recordio_relative[split])] = (_recordio(body), RECORDIO_PROTOBUF)
            channels.artifacts[f"{split}_recordio"] = locations.channel_uri(recordio_relative[split])
    return channels
