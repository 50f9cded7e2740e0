"""Factorization Machines' twin: what SageMaker's factorization-machines container does, in numpy.

The model (fact-machines-howitworks.md) is y = w0 + <w, x> + sum_{i<j} <v_i, v_j> x_i x_j, computed
as w0 + <w, x> + 1/2 sum_f ((sum_i v_if x_i)^2 - sum_i v_if^2 x_i^2); binary classifiers minimise
the log loss of sigmoid(y), regressors the squared error. Hyperparameters are the container's, with
its documented defaults (fact-machines-hyperparameters.md); channels are train (RecordIO-protobuf,
Float32, label under "values") and optionally test, which is scored with the metric names of
fm-tuning.md (test:rmse; test:binary_classification_accuracy, test:binary_classification_cross_entropy,
test:binary_f_beta). `invoke` answers as fm-in-formats.md shows, taking application/json or
application/x-recordio-protobuf (fact-machines.md), never text/csv.

How this twin differs from the cloud container
-----------------------------------------------
* Optimiser: plain mini-batch SGD with the per-term learning rates (bias_lr, linear_lr, factors_lr)
  and L2 weight decays (bias_wd, linear_wd, factors_wd), the gradient averaged over the batch (or
  multiplied by rescale_grad when set) and clipped to clip_gradient when set. The container's
  optimiser is not documented (its `eps` hyperparameter suggests an adaptive one); `eps` is accepted
  and unused here. Scores therefore differ from the cloud's for the same hyperparameters.
* Random numbers: a fixed seed (the container has no seed hyperparameter); one host, one CPU.
* The model file is ``model_algo-1`` as the container names it, but it holds numpy arrays (an .npz),
  not the container's MXNet model: a model trained here is served only by this twin.
* A "validation" channel (or any channel but train and test) is refused: the docs name only train
  and test, and no FM metric is computed on a validation channel. Unverified against the container.
* Unknown hyperparameters are refused, as SageMaker's first-party containers validate theirs; an
  init method "uniform" or "constant" without its scale or value is refused too (the docs give those
  no default). A model whose parameters stop being finite fails the job (lower the learning rates).
* The JSON answer's predicted_label is an integer 0/1, as fm-in-formats.md shows it; JSON Lines
  (application/jsonlines, same page) is answered too.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from datadrop import recordio
from datadrop.local.twins.base import ClientError, Metrics, channel_files

MODEL_FILE = "model_algo-1"
SEED = 0
JSON_TYPE = "application/json"
JSONLINES_TYPE = "application/jsonlines"
RECORDIO_TYPE = "application/x-recordio-protobuf"
CHANNELS = ("train", "test")

_REQUIRED = ("feature_dim", "num_factors", "predictor_type")
_INIT_METHODS = ("normal", "uniform", "constant")
# name -> (type, documented default or None); fact-machines-hyperparameters.md.
_OPTIONAL: dict[str, tuple[type, Any]] = {
    "epochs": (int, 1),
    "mini_batch_size": (int, 1000),
    "clip_gradient": (float, None),
    "eps": (float, None),
    "rescale_grad": (float, None),
    "bias_lr": (float, 0.1),
    "linear_lr": (float, 0.001),
    "factors_lr": (float, 0.0001),
    "bias_wd": (float, 0.01),
    "linear_wd": (float, 0.001),
    "factors_wd": (float, 0.00001),
    "bias_init_method": (str, "normal"),
    "bias_init_scale": (float, None),
    "bias_init_sigma": (float, 0.01),
    "bias_init_value": (float, None),
    "linear_init_method": (str, "normal"),
    "linear_init_scale": (float, None),
    "linear_init_sigma": (float, 0.01),
    "linear_init_value": (float, None),
    "factors_init_method": (str, "normal"),
    "factors_init_scale": (float, None),
    "factors_init_sigma": (float, 0.001),
    "factors_init_value": (float, None),
}
_IGNORED = ("_tuning_objective_metric",)  # added by SageMaker to a tuning job's training jobs
_NON_NEGATIVE = {"bias_lr", "linear_lr", "factors_lr", "bias_wd", "linear_wd", "factors_wd"} | {
    f"{term}_init_{what}" for term in ("bias", "linear", "factors") for what in ("scale", "sigma")
}


@dataclass
class Model:
    predictor_type: str
    bias: float
    linear: np.ndarray  # (feature_dim,)
    factors: np.ndarray  # (feature_dim, num_factors)

    @property
    def feature_dim(self) -> int:
        return int(self.linear.shape[0])

    def raw(self, x: np.ndarray) -> np.ndarray:
        xv = x @ self.factors
        pairwise = 0.5 * ((xv**2).sum(axis=1) - ((x**2) @ (self.factors**2)).sum(axis=1))
        result: np.ndarray = self.bias + x @ self.linear + pairwise
        return result

    def score(self, x: np.ndarray) -> np.ndarray:
        raw = self.raw(x)
        return _sigmoid(raw) if self.predictor_type == "binary_classifier" else raw


def _sigmoid(z: np.ndarray) -> np.ndarray:
    result: np.ndarray = 0.5 * (1.0 + np.tanh(0.5 * z))  # no overflow warnings for large |z|
    return result


def parse_hyperparameters(hyperparameters: dict[str, str]) -> dict[str, Any]:
    unknown = sorted(set(hyperparameters) - set(_REQUIRED) - set(_OPTIONAL) - set(_IGNORED))
    if unknown:
        raise ClientError(f"Unknown hyperparameter(s) for factorization-machines: {', '.join(unknown)}")
    missing = [name for name in _REQUIRED if name not in hyperparameters]
    if missing:
        raise ClientError(f"Missing required hyperparameter(s): {', '.join(missing)}")
    params: dict[str, Any] = {}
    for name in ("feature_dim", "num_factors"):
        params[name] = _parse(name, hyperparameters[name], int)
        if params[name] < 1:
            raise ClientError(f"Hyperparameter {name} must be a positive integer, got {hyperparameters[name]!r}")
    params["predictor_type"] = hyperparameters["predictor_type"]
    if params["predictor_type"] not in ("binary_classifier", "regressor"):
        raise ClientError(f"predictor_type must be binary_classifier or regressor, got {params['predictor_type']!r}")
    for name, (kind, default) in _OPTIONAL.items():
        params[name] = default if name not in hyperparameters else _parse(name, hyperparameters[name], kind)
    for name in ("epochs", "mini_batch_size"):
        if params[name] < 1:
            raise ClientError(f"Hyperparameter {name} must be a positive integer, got {params[name]!r}")
    for name in _NON_NEGATIVE:
        if params[name] is not None and params[name] < 0:
            raise ClientError(f"Hyperparameter {name} must be non-negative, got {params[name]!r}")
    for term in ("bias", "linear", "factors"):
        method = params[f"{term}_init_method"]
        if method not in _INIT_METHODS:
            raise ClientError(f"{term}_init_method must be one of {', '.join(_INIT_METHODS)}, got {method!r}")
        needed = {"uniform": f"{term}_init_scale", "constant": f"{term}_init_value"}.get(method)
        if needed and params[needed] is None:
            raise ClientError(f"{term}_init_method {method} needs {needed}")
    return params


def _parse(name: str, text: str, kind: type) -> Any:
    if kind is str:
        return text
    try:
        value = float(text)
    except (TypeError, ValueError):
        raise ClientError(f"Hyperparameter {name} must be a number, got {text!r}") from None
    if not math.isfinite(value):
        raise ClientError(f"Hyperparameter {name} must be finite, got {text!r}")
    if kind is int:
        if value != int(value):
            raise ClientError(f"Hyperparameter {name} must be an integer, got {text!r}")
        return int(value)
    return value


def _init(rng: np.random.Generator, params: dict[str, Any], term: str, shape: tuple[int, ...]) -> np.ndarray:
    method = params[f"{term}_init_method"]
    if method == "normal":
        return rng.normal(0.0, params[f"{term}_init_sigma"], size=shape)
    if method == "uniform":
        scale = params[f"{term}_init_scale"]
        return rng.uniform(-scale, scale, size=shape)
    return np.full(shape, float(params[f"{term}_init_value"]))


def read_channel(path: Path, channel: str, feature_dim: int, need_labels: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Every RecordIO-protobuf file of a channel -> (X float64, y float64)."""
    files = channel_files(path, channel)
    if not files:
        raise ClientError(f"No data in {channel} channel path {path}")
    features: list[list[float]] = []
    labels: list[float] = []
    for file in files:
        try:
            for index, (label, row) in enumerate(recordio.read_records(file.read_bytes())):
                if len(row) != feature_dim:
                    raise ClientError(
                        f"Record {index} of {file.name} in channel {channel} has {len(row)} features; feature_dim is {feature_dim}"
                    )
                if label is None and need_labels:
                    raise ClientError(f"Record {index} of {file.name} in channel {channel} has no label")
                features.append(row)
                labels.append(math.nan if label is None else label)
        except recordio.RecordIOError as error:
            raise ClientError(f"Unable to read {file.name} in channel {channel} as RecordIO-protobuf: {error}") from None
    x = np.asarray(features, dtype=np.float32).astype(np.float64)
    return x, np.asarray(labels, dtype=np.float64)


def _check_labels(y: np.ndarray, predictor_type: str, channel: str) -> None:
    if predictor_type == "binary_classifier" and not np.isin(y, (0.0, 1.0)).all():
        bad = y[~np.isin(y, (0.0, 1.0))][0]
        raise ClientError(f"Label {bad!r} in channel {channel}: binary_classifier labels must be 0 or 1")
    if not np.isfinite(y).all():
        raise ClientError(f"Non-finite label in channel {channel}")


def fit(x: np.ndarray, y: np.ndarray, params: dict[str, Any]) -> Model:
    rng = np.random.default_rng(SEED)
    dim, k = params["feature_dim"], params["num_factors"]
    model = Model(
        params["predictor_type"],
        float(_init(rng, params, "bias", (1,))[0]),
        _init(rng, params, "linear", (dim,)),
        _init(rng, params, "factors", (dim, k)),
    )
    batch_size = params["mini_batch_size"]
    with np.errstate(over="ignore", invalid="ignore"):  # divergence is reported below, once, as the job's failure
        for _epoch in range(params["epochs"]):
            _epoch_of_sgd(model, x, y, rng, params, batch_size)
            if not (math.isfinite(model.bias) and np.isfinite(model.linear).all() and np.isfinite(model.factors).all()):
                raise ClientError(
                    "Training diverged (model parameters are no longer finite): lower the learning rates or rescale the features"
                )
    return model


def _epoch_of_sgd(
    model: Model, x: np.ndarray, y: np.ndarray, rng: np.random.Generator, params: dict[str, Any], batch_size: int
) -> None:
    """One pass over the rows in a fresh random order, a mini-batch SGD step per batch."""
    clip, rescale = params["clip_gradient"], params["rescale_grad"]
    order = rng.permutation(len(y))
    for start in range(0, len(order), batch_size):
        batch = order[start : start + batch_size]
        xb, yb = x[batch], y[batch]
        # d loss / d raw prediction: both losses give (prediction - target) on their own scale.
        residual = model.score(xb) - yb
        scale = rescale if rescale is not None else 1.0 / len(batch)
        xv = xb @ model.factors
        grads = [
            residual.sum() * scale,
            (xb.T @ residual) * scale,
            (xb.T @ (residual[:, None] * xv) - model.factors * ((xb**2).T @ residual)[:, None]) * scale,
        ]
        if clip is not None:
            grads = [np.clip(g, -clip, clip) for g in grads]
        model.bias -= params["bias_lr"] * float(grads[0] + params["bias_wd"] * model.bias)
        model.linear -= params["linear_lr"] * (grads[1] + params["linear_wd"] * model.linear)
        model.factors -= params["factors_lr"] * (grads[2] + params["factors_wd"] * model.factors)


def score_test_channel(model: Model, x: np.ndarray, y: np.ndarray) -> Metrics:
    score = model.score(x)
    if model.predictor_type == "regressor":
        return [{"MetricName": "test:rmse", "Value": float(np.sqrt(np.mean((score - y) ** 2)))}]
    predicted = (score >= 0.5).astype(np.float64)  # fact-machines.md: label 1 when score >= 0.5
    p = np.clip(score, 1e-12, 1 - 1e-12)
    true_positive = float(((predicted == 1) & (y == 1)).sum())
    denominator = float(predicted.sum() + y.sum())
    return [
        {"MetricName": "test:binary_classification_accuracy", "Value": float((predicted == y).mean())},
        {
            "MetricName": "test:binary_classification_cross_entropy",
            "Value": float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p))),
        },
        # F1 at threshold 0.5 (fact-machines.md: "F1 Score (at threshold =0.5)").
        {"MetricName": "test:binary_f_beta", "Value": 2 * true_positive / denominator if denominator else 0.0},
    ]


def train(channels: dict[str, Path], hyperparameters: dict[str, str], model_dir: Path) -> Metrics:
    extra = sorted(set(channels) - set(CHANNELS))
    if extra:
        raise ClientError(
            f"Factorization Machines takes the channels train and test (optional); got unexpected {', '.join(extra)}"
        )
    if "train" not in channels:
        raise ClientError("Factorization Machines needs a train channel")
    params = parse_hyperparameters(hyperparameters)
    x, y = read_channel(channels["train"], "train", params["feature_dim"])
    _check_labels(y, params["predictor_type"], "train")
    model = fit(x, y, params)
    model_dir = Path(model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    with (model_dir / MODEL_FILE).open("wb") as handle:  # a file handle: np.savez would append ".npz" to a path
        np.savez(
            handle,
            predictor_type=np.array(model.predictor_type),
            bias=np.array(model.bias),
            linear=model.linear,
            factors=model.factors,
        )
    if "test" not in channels:
        return []
    x_test, y_test = read_channel(channels["test"], "test", params["feature_dim"])
    _check_labels(y_test, params["predictor_type"], "test")
    return score_test_channel(model, x_test, y_test)


def load(model_dir: Path) -> Model:
    with np.load(Path(model_dir) / MODEL_FILE) as arrays:
        return Model(str(arrays["predictor_type"]), float(arrays["bias"]), arrays["linear"], arrays["factors"])


def _media_type(value: str) -> str:
    return value.split(";")[0].strip().lower()


def _json_instances(body: bytes, feature_dim: int) -> np.ndarray:
    """cdf-inference.md's JSON request: {"instances": [{"features": [...]}, ...]} or
    {"instances": [{"data": {"features": {"values": [...], "keys": [...], "shape": [...]}}}, ...]}."""
    try:
        payload = json.loads(body)
    except ValueError as error:
        raise ValueError(f"Request body is not JSON: {error}") from None
    instances = payload.get("instances") if isinstance(payload, dict) else None
    if not isinstance(instances, list):
        raise ValueError('JSON request must be {"instances": [{"features": [...]}, ...]}')  # noqa: TRY004 - a bad request body, ValueError by the twin contract
    rows = []
    for index, instance in enumerate(instances):
        features = instance.get("features") if isinstance(instance, dict) else None
        if features is None and isinstance(instance, dict) and isinstance(instance.get("data"), dict):
            tensor = instance["data"].get("features")
            if isinstance(tensor, dict):
                features = tensor.get("values")
                if tensor.get("keys"):
                    dense = [0.0] * feature_dim
                    for key, value in zip(tensor["keys"], tensor.get("values", []), strict=True):
                        dense[int(key)] = value
                    features = dense
        if not isinstance(features, list) or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in features):
            raise ValueError(f'instance {index} has no numeric "features" list')
        rows.append(features)
    return _matrix(rows, feature_dim)


def _matrix(rows: list[list[float]], feature_dim: int) -> np.ndarray:
    for index, row in enumerate(rows):
        if len(row) != feature_dim:
            raise ValueError(f"instance {index} has {len(row)} features; the model expects {feature_dim}")
    return np.asarray(rows, dtype=np.float32).reshape(len(rows), feature_dim).astype(np.float64)


def invoke(model: Model, body: bytes, content_type: str, accept: str) -> tuple[bytes, str]:
    request_type = _media_type(content_type)
    if request_type == JSON_TYPE:
        x = _json_instances(body, model.feature_dim)
    elif request_type == RECORDIO_TYPE:
        try:
            x = _matrix([features for _label, features in recordio.read_records(body)], model.feature_dim)
        except recordio.RecordIOError as error:
            raise ValueError(f"Request body is not RecordIO-protobuf: {error}") from None
    else:
        raise ValueError(
            f"Unsupported content type {content_type!r}: Factorization Machines takes {JSON_TYPE} or {RECORDIO_TYPE}"
        )
    answer_type = _media_type(accept) if accept and _media_type(accept) != "*/*" else JSON_TYPE
    scores = model.score(x)
    binary = model.predictor_type == "binary_classifier"
    records: list[dict[str, Any]] = [
        {"score": float(s), "predicted_label": int(s >= 0.5)} if binary else {"score": float(s)} for s in scores
    ]
    if answer_type == JSON_TYPE:
        return json.dumps({"predictions": records}).encode(), JSON_TYPE
    if answer_type == JSONLINES_TYPE:
        return "".join(json.dumps(r) + "\n" for r in records).encode(), JSONLINES_TYPE
    if answer_type == RECORDIO_TYPE:
        framed = (recordio.frame(recordio.encode_record(None, {k: [float(v)] for k, v in r.items()})) for r in records)
        return b"".join(framed), RECORDIO_TYPE
    raise ValueError(
        f"Unsupported accept {accept!r}: Factorization Machines answers {JSON_TYPE}, {JSONLINES_TYPE} or {RECORDIO_TYPE}"
    )
