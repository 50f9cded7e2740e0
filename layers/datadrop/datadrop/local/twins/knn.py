"""k-NN's twin: what SageMaker's k-nearest-neighbors container does, with scikit-learn.

Training samples `sample_size` rows of the train channel into an index (seeded, without
replacement; every row when the channel has fewer); with a test channel it reports
`test:accuracy` (classifier) or `test:mse` (regressor), the container's only metrics ("Tune a k-NN
Model"). `feature_dim`, `k`, `predictor_type` and `sample_size` are required, as in the container
("k-NN Hyperparameters"). Channels: train and test only ("Input/Output Interface for the k-NN
Algorithm").

Serving: `invoke` finds the k nearest indexed points and answers the majority label among them
(classifier) or their mean label (regressor), as {"predictions": [{"predicted_label": 0.0}]}
(application/json) or {"predicted_label": 0.0} per line (application/jsonlines), for text/csv,
application/json and application/jsonlines requests ("k-NN Request and Response Formats").

How this twin differs from the cloud container:
- The index is exact brute-force search (scikit-learn, algorithm="brute") whatever `index_type`
  says; faiss.IVFFlat / faiss.IVFPQ in the container are approximate, so a few answers may differ.
  `dimension_reduction_type` (sign, fjlt) is checked but not applied: the twin searches the full
  feature space. INNER_PRODUCT ranks by the largest inner product, COSINE by cosine distance.
- Ties: a classifier's vote between equally frequent labels goes to the smallest label (the
  container's tie rule is not documented).
- The container's sample is its own random draw; the twin's is seeded (SEED), so runs repeat.
- A k larger than the points indexed is refused with a ClientError (the container's behaviour
  there is not documented); a validation channel is refused (the docs list train and test only).
- verbose=true answers, recordIO-protobuf, Pipe mode and GPUs are not modelled; missing feature
  values (empty CSV fields) are refused, as the CSV reader cannot fill them.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from datadrop.local.twins._first_party import (
    CSV,
    JSON,
    JSONLINES,
    Spec,
    check_features,
    decode_features,
    encode_predictions,
    labelled_metric,
    parse_hyperparameters,
    require,
)
from datadrop.local.twins.base import ClientError, Metrics, read_csv_channel

MODEL_FILE = "model_algo-1"  # the container's file name inside model.tar.gz; here a numpy archive
ACCEPTED_CONTENT_TYPES = (CSV, JSON, JSONLINES)
SEED = 0

# kNN_hyperparameters (SageMaker Developer Guide) and the SDK's KNN validators.
_HYPERPARAMETERS: dict[str, Spec] = {
    "feature_dim": Spec("int", low=1),
    "k": Spec("int", low=1),
    "predictor_type": Spec("str", choices=("classifier", "regressor")),
    "sample_size": Spec("int", low=1),
    "dimension_reduction_target": Spec("int", low=1),
    "dimension_reduction_type": Spec("str", choices=("sign", "fjlt")),
    "faiss_index_ivf_nlists": Spec("int", auto=True, low=1),
    "faiss_index_pq_m": Spec("str", choices=tuple(str(m) for m in (1, 2, 3, 4, 8, 12, 16, 20, 24, 28, 32, 40, 48, 56, 64, 96))),
    "index_metric": Spec("str", choices=("L2", "INNER_PRODUCT", "COSINE")),
    "index_type": Spec("str", choices=("faiss.Flat", "faiss.IVFFlat", "faiss.IVFPQ")),
    "mini_batch_size": Spec("int", low=1),
    "_tuning_objective_metric": Spec("str"),  # added by a tuning job
}

__all__ = ["MODEL_FILE", "invoke", "load", "train"]


@dataclass
class KnnModel:
    """The sampled points and their labels; `predict` answers like the container."""

    predictor_type: str
    k: int
    index_metric: str
    points: np.ndarray  # (sample, feature_dim)
    labels: np.ndarray  # (sample,)

    @property
    def feature_dim(self) -> int:
        return int(self.points.shape[1])

    def neighbours(self, x: np.ndarray) -> np.ndarray:
        """Indices (n, k) of each row's k nearest indexed points, nearest first."""
        if self.index_metric == "INNER_PRODUCT":
            similarity = x @ self.points.T
            return np.asarray(np.argsort(-similarity, axis=1, kind="stable")[:, : self.k])
        from sklearn.neighbors import NearestNeighbors

        metric = "cosine" if self.index_metric == "COSINE" else "euclidean"
        index = NearestNeighbors(n_neighbors=self.k, algorithm="brute", metric=metric).fit(self.points)
        return np.asarray(index.kneighbors(x, return_distance=False))

    def predict(self, x: np.ndarray) -> np.ndarray:
        neighbour_labels = self.labels[self.neighbours(x)]
        if self.predictor_type == "regressor":
            return np.asarray(neighbour_labels.mean(axis=1))
        votes = []
        for row in neighbour_labels:
            values, counts = np.unique(row, return_counts=True)  # sorted: the smallest label wins a tie
            votes.append(values[np.argmax(counts)])
        return np.asarray(votes, dtype=np.float64)


def _settings(hyperparameters: dict[str, str]) -> dict[str, Any]:
    hp = parse_hyperparameters(hyperparameters, _HYPERPARAMETERS, "k-NN")
    require(hp, ["feature_dim", "k", "predictor_type", "sample_size"])
    if "dimension_reduction_type" in hp:
        target = hp.get("dimension_reduction_target")
        if target is None:
            raise ClientError("Hyperparameter dimension_reduction_target is required when dimension_reduction_type is set")
        if not target < hp["feature_dim"]:
            raise ClientError(
                f"Hyperparameter dimension_reduction_target: {target} must be less than feature_dim {hp['feature_dim']}"
            )
    if hp.get("index_type") == "faiss.IVFPQ" and hp.get("index_metric") in ("INNER_PRODUCT", "COSINE"):
        raise ClientError(f"index_metric {hp['index_metric']} is not supported with index_type faiss.IVFPQ")
    return hp


def train(channels: dict[str, Path], hyperparameters: dict[str, str], model_dir: Path) -> Metrics:
    """Sample the train channel into the index; score the test channel when there is one."""
    hp = _settings(dict(hyperparameters))
    unknown = set(channels) - {"train", "test"}
    if unknown:
        raise ClientError(f"Unsupported channel(s) {sorted(unknown)}; k-NN takes a train channel and an optional test channel")
    if "train" not in channels:
        raise ClientError("Missing required channel: train")
    x, y = read_csv_channel(channels["train"], "train")
    check_features(x, hp["feature_dim"], "train", "k-NN")
    if not np.isfinite(y).all():
        raise ClientError("train labels must be finite numbers")
    rows = len(y)
    if rows > hp["sample_size"]:
        keep = np.sort(np.random.default_rng(SEED).choice(rows, size=hp["sample_size"], replace=False))
        x, y = x[keep], y[keep]
    if hp["k"] > len(y):
        raise ClientError(
            f"Hyperparameter k={hp['k']} exceeds the {len(y)} points sampled into the index (sample_size={hp['sample_size']}, train rows={rows})"
        )
    model = KnnModel(hp["predictor_type"], hp["k"], hp.get("index_metric", "L2"), x.astype(np.float64), y.astype(np.float64))
    model_dir = Path(model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    np.savez(
        buffer,
        points=model.points,
        labels=model.labels,
        settings=np.array([model.predictor_type, str(model.k), model.index_metric]),
    )
    (model_dir / MODEL_FILE).write_bytes(buffer.getvalue())

    if channels.get("test") is None:
        return []
    x_test, y_test = read_csv_channel(channels["test"], "test")
    check_features(x_test, hp["feature_dim"], "test", "k-NN")
    predicted = model.predict(x_test.astype(np.float64))
    metric = labelled_metric("test")
    if model.predictor_type == "regressor":
        return [metric("mse", float(np.mean((predicted - y_test) ** 2)))]
    return [metric("accuracy", float(np.mean(predicted == y_test)))]


def load(model_dir: Path) -> KnnModel:
    """Read what `train` wrote, as the inference container does at start-up."""
    path = Path(model_dir) / MODEL_FILE
    if not path.is_file():
        raise FileNotFoundError(f"No k-NN model ({MODEL_FILE}) in {model_dir}")
    with np.load(io.BytesIO(path.read_bytes()), allow_pickle=False) as archive:
        predictor_type, k, index_metric = (str(value) for value in archive["settings"])
        return KnnModel(predictor_type, int(k), index_metric, archive["points"], archive["labels"])


def invoke(model: KnnModel, body: bytes, content_type: str, accept: str) -> tuple[bytes, str]:
    """One /invocations request, answered as "k-NN Request and Response Formats" shows."""
    x = decode_features(body, content_type, model.feature_dim, ACCEPTED_CONTENT_TYPES)
    return encode_predictions([{"predicted_label": float(label)} for label in model.predict(x)], accept)
