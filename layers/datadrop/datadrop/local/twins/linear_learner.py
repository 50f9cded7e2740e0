"""Linear Learner's twin: what SageMaker's Linear Learner container does, with numpy and scikit-learn.

Training: a linear model (weights + bias) trained by mini-batch gradient descent over `epochs`
passes, on features standardized first (`normalize_data`, true by default) and, for regression,
a standardized label (`normalize_label` auto); early stopping on the validation loss
(`early_stopping_patience` 3, `early_stopping_tolerance` 0.001) keeps the best epoch; a binary
classifier then picks its decision threshold on the validation channel by
`binary_classifier_model_selection_criteria` (accuracy by default). Metrics carry the names of the
container's ("Tune a linear learner model"): `<channel>:objective_loss` and, per predictor type,
binary_classification_accuracy / precision / recall / binary_f_beta / roc_auc_score,
multiclass_accuracy / multiclass_top_k_accuracy / macro_precision / macro_recall / macro_f_beta /
dcg, or mse / absolute_loss, for the validation and test channels, plus train:objective_loss.

Serving: `invoke` answers text/csv, application/json and application/jsonlines requests with
{"predictions": [{"score": .., "predicted_label": ..}]} (application/json) or one record per line
(application/jsonlines), as "Linear learner response formats" shows: binary score = P(label 1),
multiclass score = one probability per class, regression {"score": value} only.

How this twin differs from the cloud container:
- One model. The container trains `num_models` models in parallel (auto: several, with nearby
  learning rates and regularization) and keeps the best on the validation set; the twin trains the
  one the hyperparameters describe. Metric values therefore differ a little; names and shapes match.
- `auto` values the docs leave to the container are the twin's own: optimizer adam, learning_rate
  0.1 (adam/rmsprop) or 0.01 (sgd), momentum 0.9, wd and l1 0, bias_lr_mult 1, bias_wd_mult 0,
  positive_example_weight_mult 1, learning-rate schedule x0.9 every epoch down to 1e-5.
- objective_loss of a regressor is measured on the original label scale (mean squared error for
  squared_loss); the container may report it on its normalized scale.
- dcg is the mean of 1/log2(1 + rank of the true class) over the channel's rows.
- Pipe mode, recordIO-protobuf, GPUs, checkpoints and multi-instance training are not modelled;
  missing feature values (empty CSV fields) are refused, as the CSV reader cannot fill them.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
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

MODEL_FILE = "model_algo-1"  # the container's file name inside model.tar.gz; here JSON
ACCEPTED_CONTENT_TYPES = (CSV, JSON, JSONLINES)
SEED = 0
EPSILON = 1e-12

_F = "float"
_I = "int"
_B = "bool"
_S = "str"
# ll_hyperparameters (SageMaker Developer Guide) and the SDK's LinearLearner validators.
_HYPERPARAMETERS: dict[str, Spec] = {
    "feature_dim": Spec(_I, auto=True, low=1),
    "predictor_type": Spec(_S, choices=("binary_classifier", "multiclass_classifier", "regressor")),
    "num_classes": Spec(_I, low=3, high=1_000_000),
    "accuracy_top_k": Spec(_I, low=1, high=1_000_000),
    "balance_multiclass_weights": Spec(_B),
    "beta_1": Spec(_F, auto=True, low=0, high=1, high_inclusive=False),
    "beta_2": Spec(_F, auto=True, low=0, high=1, high_inclusive=False),
    "bias_lr_mult": Spec(_F, auto=True, low=0, low_inclusive=False),
    "bias_wd_mult": Spec(_F, auto=True, low=0),
    "binary_classifier_model_selection_criteria": Spec(
        _S,
        choices=(
            "accuracy",
            "f1",
            "f_beta",
            "precision_at_target_recall",
            "recall_at_target_precision",
            "cross_entropy_loss",
            "loss_function",
        ),
    ),
    "early_stopping_patience": Spec(_I, low=1),
    "early_stopping_tolerance": Spec(_F, low=0, low_inclusive=False),
    "epochs": Spec(_I, low=1),
    "f_beta": Spec(_F, low=0, low_inclusive=False),
    "huber_delta": Spec(_F, low=0),
    "init_bias": Spec(_F),
    "init_method": Spec(_S, choices=("uniform", "normal")),
    "init_scale": Spec(_F, low=0, low_inclusive=False),
    "init_sigma": Spec(_F, low=0, low_inclusive=False),
    "l1": Spec(_F, auto=True, low=0),
    "learning_rate": Spec(_F, auto=True, low=0, low_inclusive=False),
    "loss": Spec(
        _S,
        choices=(
            "auto",
            "logistic",
            "squared_loss",
            "absolute_loss",
            "hinge_loss",
            "eps_insensitive_squared_loss",
            "eps_insensitive_absolute_loss",
            "quantile_loss",
            "huber_loss",
            "softmax_loss",
        ),
    ),
    "loss_insensitivity": Spec(_F, low=0, low_inclusive=False),
    "lr_scheduler_factor": Spec(_F, auto=True, low=0, low_inclusive=False, high=1, high_inclusive=False),
    "lr_scheduler_minimum_lr": Spec(_F, auto=True, low=0, low_inclusive=False),
    "lr_scheduler_step": Spec(_I, auto=True, low=1),
    "margin": Spec(_F, low=0),
    "mini_batch_size": Spec(_I, low=1),
    "momentum": Spec(_F, auto=True, low=0, high=1, high_inclusive=False),
    "normalize_data": Spec(_B, auto=True),
    "normalize_label": Spec(_B, auto=True),
    "num_calibration_samples": Spec(_I, auto=True, low=1),
    "num_models": Spec(_I, auto=True, low=1),
    "num_point_for_scaler": Spec(_I, low=1),
    "optimizer": Spec(_S, choices=("auto", "sgd", "adam", "rmsprop")),
    "positive_example_weight_mult": Spec(_S),  # 'auto', 'balanced' or a positive float: checked below
    "quantile": Spec(_F, low=0, low_inclusive=False, high=1, high_inclusive=False),
    "target_precision": Spec(_F, low=0, low_inclusive=False, high=1, high_inclusive=False),
    "target_recall": Spec(_F, low=0, low_inclusive=False, high=1, high_inclusive=False),
    "unbias_data": Spec(_B, auto=True),
    "unbias_label": Spec(_B, auto=True),
    "use_bias": Spec(_B),
    "use_lr_scheduler": Spec(_B),
    "wd": Spec(_F, auto=True, low=0),
    "_tuning_objective_metric": Spec(_S),  # added by a tuning job; the container ignores it here too
}
_DEFAULTS: dict[str, Any] = {
    "accuracy_top_k": 3,
    "balance_multiclass_weights": False,
    "binary_classifier_model_selection_criteria": "accuracy",
    "early_stopping_patience": 3,
    "early_stopping_tolerance": 0.001,
    "epochs": 15,
    "f_beta": 1.0,
    "huber_delta": 1.0,
    "init_bias": 0.0,
    "init_method": "uniform",
    "init_scale": 0.07,
    "init_sigma": 0.01,
    "loss": "auto",
    "loss_insensitivity": 0.01,
    "margin": 1.0,
    "mini_batch_size": 1000,
    "normalize_data": True,
    "num_point_for_scaler": 10_000,
    "optimizer": "auto",
    "positive_example_weight_mult": "1.0",
    "quantile": 0.5,
    "target_precision": 0.8,
    "target_recall": 0.8,
    "use_bias": True,
    "use_lr_scheduler": True,
}
_LOSSES: dict[str, tuple[str, ...]] = {
    "binary_classifier": ("logistic", "hinge_loss"),
    "multiclass_classifier": ("softmax_loss",),
    "regressor": (
        "squared_loss",
        "absolute_loss",
        "eps_insensitive_squared_loss",
        "eps_insensitive_absolute_loss",
        "quantile_loss",
        "huber_loss",
    ),
}
_AUTO_LOSS = {"binary_classifier": "logistic", "multiclass_classifier": "softmax_loss", "regressor": "squared_loss"}

__all__ = ["MODEL_FILE", "invoke", "load", "train"]


@dataclass
class LinearModel:
    """What the twin's model file holds; `scores` and `labels` answer like the container."""

    predictor_type: str
    loss: str
    weights: np.ndarray  # (feature_dim, outputs)
    bias: np.ndarray  # (outputs,)
    feature_mean: np.ndarray
    feature_scale: np.ndarray
    label_mean: float = 0.0
    label_scale: float = 1.0
    threshold: float = 0.5
    num_classes: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def feature_dim(self) -> int:
        return int(self.weights.shape[0])

    def raw(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(((x - self.feature_mean) / self.feature_scale) @ self.weights + self.bias)

    def scores(self, x: np.ndarray) -> np.ndarray:
        """binary: P(label 1) (logistic) or the margin (hinge); multiclass: (n, K) probabilities;
        regression: the prediction on the label's scale."""
        z = self.raw(x)
        if self.predictor_type == "multiclass_classifier":
            return _softmax(z)
        if self.predictor_type == "binary_classifier":
            return _sigmoid(z[:, 0]) if self.loss == "logistic" else z[:, 0]
        return np.asarray(z[:, 0] * self.label_scale + self.label_mean)

    def labels(self, scores: np.ndarray) -> np.ndarray:
        if self.predictor_type == "multiclass_classifier":
            return np.asarray(np.argmax(scores, axis=1))
        return (scores > self.threshold).astype(np.int64)

    def to_json(self) -> str:
        return json.dumps({
            "predictor_type": self.predictor_type,
            "loss": self.loss,
            "weights": self.weights.tolist(),
            "bias": self.bias.tolist(),
            "feature_mean": self.feature_mean.tolist(),
            "feature_scale": self.feature_scale.tolist(),
            "label_mean": self.label_mean,
            "label_scale": self.label_scale,
            "threshold": self.threshold,
            "num_classes": self.num_classes,
            "extra": self.extra,
        })  # fmt: skip

    @classmethod
    def from_json(cls, text: str) -> LinearModel:
        data = json.loads(text)
        return cls(
            predictor_type=data["predictor_type"],
            loss=data["loss"],
            weights=np.asarray(data["weights"], dtype=np.float64),
            bias=np.asarray(data["bias"], dtype=np.float64),
            feature_mean=np.asarray(data["feature_mean"], dtype=np.float64),
            feature_scale=np.asarray(data["feature_scale"], dtype=np.float64),
            label_mean=float(data["label_mean"]),
            label_scale=float(data["label_scale"]),
            threshold=float(data["threshold"]),
            num_classes=int(data["num_classes"]),
            extra=dict(data.get("extra", {})),
        )


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return np.asarray(1.0 / (1.0 + np.exp(-np.clip(z, -500, 500))))


def _softmax(z: np.ndarray) -> np.ndarray:
    shifted = np.exp(z - z.max(axis=1, keepdims=True))
    return np.asarray(shifted / shifted.sum(axis=1, keepdims=True))


def _settings(hyperparameters: dict[str, str]) -> dict[str, Any]:
    hp = {**_DEFAULTS, **parse_hyperparameters(hyperparameters, _HYPERPARAMETERS, "Linear Learner")}
    require(hp, ["predictor_type"])
    predictor = hp["predictor_type"]
    if predictor == "multiclass_classifier" and "num_classes" not in hp:
        raise ClientError("Hyperparameter num_classes is required when predictor_type is multiclass_classifier")
    loss = _AUTO_LOSS[predictor] if hp["loss"] == "auto" else hp["loss"]
    if loss not in _LOSSES[predictor]:
        raise ClientError(
            f"Hyperparameter loss: {loss} is not valid for {predictor}; expected auto or {', '.join(_LOSSES[predictor])}"
        )
    hp["loss"] = loss
    weight = str(hp["positive_example_weight_mult"]).strip()
    if weight not in ("auto", "balanced"):
        try:
            if not float(weight) > 0:
                raise ValueError(weight)
        except ValueError:
            raise ClientError(
                f"Hyperparameter positive_example_weight_mult: invalid value {weight!r}; expected 'auto', 'balanced' or a number > 0"
            ) from None
    optimizer = "adam" if hp["optimizer"] == "auto" else hp["optimizer"]
    hp["optimizer"] = optimizer
    if hp.get("learning_rate", "auto") == "auto":
        hp["learning_rate"] = 0.01 if optimizer == "sgd" else 0.1
    for name, auto_value in (("wd", 0.0), ("l1", 0.0), ("bias_lr_mult", 1.0), ("bias_wd_mult", 0.0), ("momentum", 0.9)):
        if hp.get(name, "auto") == "auto":
            hp[name] = auto_value
    for name, auto_value in (("beta_1", 0.9), ("beta_2", 0.999)):
        if hp.get(name, "auto") == "auto":
            hp[name] = auto_value
    return hp


def _check_labels(y: np.ndarray, hp: dict[str, Any], channel: str) -> None:
    predictor = hp["predictor_type"]
    if predictor == "binary_classifier" and not np.isin(y, (0.0, 1.0)).all():
        bad = sorted(set(np.unique(y).tolist()) - {0.0, 1.0})[:5]
        raise ClientError(f"{channel} labels must be 0 or 1 for binary_classifier, found {bad}")
    if predictor == "multiclass_classifier":
        classes = hp["num_classes"]
        ok = (y >= 0) & (y < classes) & (np.floor(y) == y)
        if not ok.all():
            raise ClientError(
                f"{channel} labels must be integers in [0, {classes - 1}] for num_classes={classes}, found {y[~ok][:5].tolist()}"
            )


def _loss_and_gradient(z: np.ndarray, y: np.ndarray, hp: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """Per-row loss (n,) and d loss / d z (n, outputs) for the raw outputs z (n, outputs)."""
    loss = hp["loss"]
    if loss == "softmax_loss":
        p = _softmax(z)
        rows = np.arange(len(y))
        onehot = np.zeros_like(p)
        onehot[rows, y.astype(np.int64)] = 1.0
        return -np.log(np.maximum(p[rows, y.astype(np.int64)], EPSILON)), p - onehot
    s = z[:, 0]
    if loss == "logistic":
        p = _sigmoid(s)
        values = -(y * np.log(np.maximum(p, EPSILON)) + (1 - y) * np.log(np.maximum(1 - p, EPSILON)))
        gradient = p - y
    elif loss == "hinge_loss":
        sign = 2 * y - 1
        gap = hp["margin"] - sign * s
        values = np.maximum(gap, 0.0)
        gradient = np.where(gap > 0, -sign, 0.0)
    else:
        residual = s - y
        values, gradient = _regression_loss(residual, hp)
    return values, gradient[:, None]


def _regression_loss(r: np.ndarray, hp: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    loss = hp["loss"]
    if loss == "squared_loss":
        return r**2, 2 * r
    if loss == "absolute_loss":
        return np.abs(r), np.sign(r)
    if loss == "huber_loss":
        delta = hp["huber_delta"]
        small = np.abs(r) <= delta
        return np.where(small, 0.5 * r**2, delta * (np.abs(r) - 0.5 * delta)), np.where(small, r, delta * np.sign(r))
    epsilon = hp["loss_insensitivity"]
    excess = np.maximum(np.abs(r) - epsilon, 0.0)
    if loss == "eps_insensitive_squared_loss":
        return excess**2, 2 * excess * np.sign(r)
    if loss == "eps_insensitive_absolute_loss":
        return excess, np.where(excess > 0, np.sign(r), 0.0)
    q = hp["quantile"]  # quantile_loss: under-prediction (r < 0) weighs q, over-prediction 1 - q
    return np.where(r < 0, -q * r, (1 - q) * r), np.where(r < 0, -q, 1 - q)


def _row_weights(y: np.ndarray, hp: dict[str, Any]) -> np.ndarray:
    weights = np.ones_like(y, dtype=np.float64)
    if hp["predictor_type"] == "binary_classifier":
        setting = str(hp["positive_example_weight_mult"])
        positives = float((y == 1).sum())
        if setting == "balanced":
            multiplier = (len(y) - positives) / positives if positives else 1.0
        elif setting == "auto":
            multiplier = 1.0
        else:
            multiplier = float(setting)
        weights[y == 1] = multiplier
    elif hp["predictor_type"] == "multiclass_classifier" and hp["balance_multiclass_weights"]:
        counts = np.bincount(y.astype(np.int64), minlength=hp["num_classes"]).astype(np.float64)
        present = counts > 0
        class_weight = np.zeros_like(counts)
        class_weight[present] = len(y) / (present.sum() * counts[present])
        weights = class_weight[y.astype(np.int64)]
    return weights


class _Optimizer:
    def __init__(self, hp: dict[str, Any], shapes: list[tuple[int, ...]]) -> None:
        self.kind = hp["optimizer"]
        self.beta_1, self.beta_2, self.momentum = hp["beta_1"], hp["beta_2"], hp["momentum"]
        self.first = [np.zeros(shape) for shape in shapes]
        self.second = [np.zeros(shape) for shape in shapes]
        self.steps = 0

    def step(self, parameters: list[np.ndarray], gradients: list[np.ndarray], rates: list[float]) -> None:
        self.steps += 1
        for index, (parameter, gradient, rate) in enumerate(zip(parameters, gradients, rates, strict=True)):
            if self.kind == "sgd":
                self.first[index] = self.momentum * self.first[index] - rate * gradient
                parameter += self.first[index]
            elif self.kind == "rmsprop":
                self.second[index] = 0.9 * self.second[index] + 0.1 * gradient**2
                parameter -= rate * gradient / (np.sqrt(self.second[index]) + 1e-8)
            else:
                self.first[index] = self.beta_1 * self.first[index] + (1 - self.beta_1) * gradient
                self.second[index] = self.beta_2 * self.second[index] + (1 - self.beta_2) * gradient**2
                first = self.first[index] / (1 - self.beta_1**self.steps)
                second = self.second[index] / (1 - self.beta_2**self.steps)
                parameter -= rate * first / (np.sqrt(second) + 1e-8)


def _scaler(x: np.ndarray, hp: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    sample = x[: hp["num_point_for_scaler"]]
    normalize = hp["normalize_data"] in (True, "auto")
    unbias = hp.get("unbias_data", "auto")
    unbias = (normalize or hp["use_bias"]) if unbias == "auto" else unbias
    mean = sample.mean(axis=0) if unbias or normalize else np.zeros(x.shape[1])
    scale = sample.std(axis=0) if normalize else np.ones(x.shape[1])
    return mean, np.where(scale > 0, scale, 1.0)


def train(channels: dict[str, Path], hyperparameters: dict[str, str], model_dir: Path) -> Metrics:
    """Train as the Linear Learner container does (see the module docstring); FinalMetricDataList out."""
    hp = _settings(dict(hyperparameters))
    unknown = set(channels) - {"train", "validation", "test"}
    if unknown:
        raise ClientError(f"Unsupported channel(s) {sorted(unknown)}; Linear Learner takes train, validation and test")
    if "train" not in channels:
        raise ClientError("Missing required channel: train")
    data: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for channel in ("train", "validation", "test"):
        if channels.get(channel) is not None:
            x, y = read_csv_channel(channels[channel], channel)
            if hp.get("feature_dim", "auto") == "auto":  # auto: the train channel's width
                hp["feature_dim"] = x.shape[1]
            check_features(x, hp["feature_dim"], channel, "Linear Learner")
            _check_labels(y, hp, channel)
            data[channel] = (x.astype(np.float64), y.astype(np.float64))
    model = _fit(data, hp)
    model_dir = Path(model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    (model_dir / MODEL_FILE).write_text(model.to_json())

    metrics: Metrics = []
    for channel in ("validation", "test"):
        if channel in data:
            metrics.extend(_channel_metrics(model, *data[channel], hp, channel))
    train_loss = _objective_loss(model, *data["train"], hp)
    metrics.append(labelled_metric("train")("objective_loss", train_loss))
    return metrics


def _fit(data: dict[str, tuple[np.ndarray, np.ndarray]], hp: dict[str, Any]) -> LinearModel:
    x, y = data["train"]
    predictor = hp["predictor_type"]
    rng = np.random.default_rng(SEED)
    mean, scale = _scaler(x, hp)
    label_mean, label_scale = 0.0, 1.0
    if predictor == "regressor":
        normalize_label = hp.get("normalize_label", "auto")
        unbias_label = hp.get("unbias_label", "auto")
        if normalize_label in (True, "auto"):
            label_mean, label_scale = float(y.mean()), float(y.std()) or 1.0
        elif unbias_label is True or (unbias_label == "auto" and hp["use_bias"]):
            label_mean = float(y.mean())
    outputs = hp["num_classes"] if predictor == "multiclass_classifier" else 1
    dim = x.shape[1]
    if hp["init_method"] == "normal":
        weights = rng.normal(0.0, hp["init_sigma"], size=(dim, outputs))
    else:
        weights = rng.uniform(-hp["init_scale"], hp["init_scale"], size=(dim, outputs))
    bias = np.full(outputs, hp["init_bias"] if hp["use_bias"] else 0.0)
    model = LinearModel(
        predictor, hp["loss"], weights, bias, mean, scale, label_mean, label_scale, num_classes=hp.get("num_classes", 0)
    )

    xs = (x - mean) / scale
    target = (y - label_mean) / label_scale if predictor == "regressor" else y
    row_weights = _row_weights(y, hp)
    optimizer = _Optimizer(hp, [weights.shape, bias.shape])
    batch = hp["mini_batch_size"]
    steps_per_epoch = max(1, math.ceil(len(y) / batch))
    rate = hp["learning_rate"]
    schedule_step = steps_per_epoch if hp.get("lr_scheduler_step", "auto") == "auto" else hp["lr_scheduler_step"]
    schedule_factor = 0.9 if hp.get("lr_scheduler_factor", "auto") == "auto" else hp["lr_scheduler_factor"]
    minimum_rate = 1e-5 if hp.get("lr_scheduler_minimum_lr", "auto") == "auto" else hp["lr_scheduler_minimum_lr"]
    watched = data.get("validation", data["train"])
    best_loss, best_state, stale = math.inf, (weights.copy(), bias.copy()), 0
    for _epoch in range(hp["epochs"]):
        order = rng.permutation(len(y))
        for start in range(0, len(y), batch):
            rows = order[start : start + batch]
            z = xs[rows] @ model.weights + model.bias
            _, gradient = _loss_and_gradient(z, target[rows], hp)
            gradient = gradient * row_weights[rows, None] / row_weights[rows].sum()
            weight_gradient = xs[rows].T @ gradient + hp["wd"] * model.weights
            bias_gradient = gradient.sum(axis=0) + hp["wd"] * hp["bias_wd_mult"] * model.bias
            parameters = [model.weights, model.bias] if hp["use_bias"] else [model.weights]
            gradients = [weight_gradient, bias_gradient] if hp["use_bias"] else [weight_gradient]
            optimizer.step(parameters, gradients, [rate, rate * hp["bias_lr_mult"]][: len(parameters)])
            if hp["l1"] > 0:  # proximal step: the L1 penalty drives small weights to exactly zero
                model.weights[:] = np.sign(model.weights) * np.maximum(np.abs(model.weights) - rate * hp["l1"], 0.0)
            if hp["use_lr_scheduler"] and optimizer.steps % schedule_step == 0:
                rate = max(rate * schedule_factor, minimum_rate)
        epoch_loss = _objective_loss(model, *watched, hp)
        if epoch_loss < best_loss * (1 - hp["early_stopping_tolerance"]) or best_loss == math.inf:
            stale = 0
        else:
            stale += 1
        if epoch_loss < best_loss:
            best_loss, best_state = epoch_loss, (model.weights.copy(), model.bias.copy())
        if stale >= hp["early_stopping_patience"]:
            break
    model.weights, model.bias = best_state
    if predictor == "binary_classifier":
        model.threshold = _threshold(model, *watched, hp)
    return model


def _objective_loss(model: LinearModel, x: np.ndarray, y: np.ndarray, hp: dict[str, Any]) -> float:
    z = model.raw(x)
    if model.predictor_type == "regressor":
        values, _ = _regression_loss(z[:, 0] * model.label_scale + model.label_mean - y, hp)
    else:
        values, _ = _loss_and_gradient(z, y, hp)
    return float(values.mean())


def _threshold(model: LinearModel, x: np.ndarray, y: np.ndarray, hp: dict[str, Any]) -> float:
    """The decision threshold on the score that best meets binary_classifier_model_selection_criteria,
    over a sample of num_calibration_samples rows (all of them when auto)."""
    criterion = hp["binary_classifier_model_selection_criteria"]
    default = 0.5 if model.loss == "logistic" else 0.0
    if criterion in ("cross_entropy_loss", "loss_function") or len(np.unique(y)) < 2:
        return default
    samples = hp.get("num_calibration_samples", "auto")
    if samples != "auto" and samples < len(y):
        keep = np.random.default_rng(SEED).choice(len(y), size=samples, replace=False)
        x, y = x[keep], y[keep]
    scores = model.scores(x)
    candidates = np.unique(np.concatenate([[default], scores]))
    # Predict 1 when score > threshold: each candidate t labels the rows scoring above it positive.
    best, best_value = default, -math.inf
    for threshold in candidates:
        predicted = scores > threshold
        tp = float((predicted & (y == 1)).sum())
        fp = float((predicted & (y == 0)).sum())
        fn = float((~predicted & (y == 1)).sum())
        precision = tp / (tp + fp) if tp + fp else 0.0
        recall = tp / (tp + fn) if tp + fn else 0.0
        if criterion == "accuracy":
            value = float((predicted == (y == 1)).mean())
        elif criterion in ("f1", "f_beta"):
            beta = 1.0 if criterion == "f1" else hp["f_beta"]
            value = _f_beta(precision, recall, beta)
        elif criterion == "precision_at_target_recall":
            value = precision if recall >= hp["target_recall"] else -math.inf
        else:
            value = recall if precision >= hp["target_precision"] else -math.inf
        if value > best_value:
            best, best_value = float(threshold), value
    return best


def _f_beta(precision: float, recall: float, beta: float) -> float:
    denominator = beta**2 * precision + recall
    return (1 + beta**2) * precision * recall / denominator if denominator else 0.0


def _channel_metrics(model: LinearModel, x: np.ndarray, y: np.ndarray, hp: dict[str, Any], channel: str) -> Metrics:
    from sklearn import metrics as sk

    metric = labelled_metric(channel)
    out: Metrics = [metric("objective_loss", _objective_loss(model, x, y, hp))]
    scores = model.scores(x)
    if model.predictor_type == "regressor":
        out += [metric("mse", float(np.mean((scores - y) ** 2))), metric("absolute_loss", float(np.mean(np.abs(scores - y))))]
        return out
    predicted = model.labels(scores)
    truth = y.astype(np.int64)
    beta = hp["f_beta"]
    if model.predictor_type == "binary_classifier":
        out += [
            metric("binary_classification_accuracy", sk.accuracy_score(truth, predicted)),
            metric("precision", sk.precision_score(truth, predicted, zero_division=0)),
            metric("recall", sk.recall_score(truth, predicted, zero_division=0)),
            metric("binary_f_beta", sk.fbeta_score(truth, predicted, beta=beta, zero_division=0)),
        ]
        if len(np.unique(truth)) == 2:
            out.append(metric("roc_auc_score", sk.roc_auc_score(truth, scores)))
        return out
    classes = list(range(model.num_classes))
    rank = (scores > scores[np.arange(len(truth)), truth][:, None]).sum(axis=1) + 1  # 1 = the true class scored highest
    top_k = min(hp["accuracy_top_k"], model.num_classes)
    out += [
        metric("multiclass_accuracy", sk.accuracy_score(truth, predicted)),
        metric("multiclass_top_k_accuracy", float((rank <= top_k).mean())),
        metric("macro_precision", sk.precision_score(truth, predicted, labels=classes, average="macro", zero_division=0)),
        metric("macro_recall", sk.recall_score(truth, predicted, labels=classes, average="macro", zero_division=0)),
        metric("macro_f_beta", sk.fbeta_score(truth, predicted, beta=beta, labels=classes, average="macro", zero_division=0)),
        metric("dcg", float(np.mean(1.0 / np.log2(rank + 1)))),
    ]
    return out


def load(model_dir: Path) -> LinearModel:
    """Read what `train` wrote, as the inference container does at start-up."""
    path = Path(model_dir) / MODEL_FILE
    if not path.is_file():
        raise FileNotFoundError(f"No Linear Learner model ({MODEL_FILE}) in {model_dir}")
    return LinearModel.from_json(path.read_text())


def invoke(model: LinearModel, body: bytes, content_type: str, accept: str) -> tuple[bytes, str]:
    """One /invocations request, answered as "Linear learner response formats" shows."""
    x = decode_features(body, content_type, model.feature_dim, ACCEPTED_CONTENT_TYPES)
    scores = model.scores(x)
    records: list[dict[str, Any]]
    if model.predictor_type == "regressor":
        records = [{"score": float(score)} for score in scores]
    elif model.predictor_type == "multiclass_classifier":
        labels = model.labels(scores)
        records = [
            {"score": [float(p) for p in row], "predicted_label": int(label)} for row, label in zip(scores, labels, strict=True)
        ]
    else:
        labels = model.labels(scores)
        records = [{"score": float(score), "predicted_label": int(label)} for score, label in zip(scores, labels, strict=True)]
    return encode_predictions(records, accept)
