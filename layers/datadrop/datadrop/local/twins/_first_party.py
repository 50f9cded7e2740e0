"""What the Linear Learner and k-NN twins share: the first-party containers' hyperparameter
parsing (strings in, typed and checked values out) and their inference request and response
formats (SageMaker Developer Guide, "Common Data Formats for Inference" (cdf-inference),
"Linear learner response formats" and "k-NN Request and Response Formats").
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from datadrop.local.twins.base import ClientError

CSV = "text/csv"
JSON = "application/json"
JSONLINES = "application/jsonlines"
RECORDIO = "application/x-recordio-protobuf"
ACCEPTS = (JSON, JSONLINES)


@dataclass(frozen=True)
class Spec:
    """One hyperparameter: its kind ("int", "float", "bool", "str"), whether "auto" is allowed, and
    its valid values: `low`/`high` (with inclusiveness) for numbers, `choices` for strings."""

    kind: str
    auto: bool = False
    low: float | None = None
    low_inclusive: bool = True
    high: float | None = None
    high_inclusive: bool = True
    choices: tuple[str, ...] = ()


def parse_hyperparameters(hyperparameters: dict[str, str], specs: dict[str, Spec], algorithm: str) -> dict[str, Any]:
    """Typed values ("auto" kept as the string) for every hyperparameter given; unknown names and bad
    values raise ClientError naming the hyperparameter and what it takes."""
    parsed: dict[str, Any] = {}
    for name, raw in hyperparameters.items():
        spec = specs.get(name)
        if spec is None:
            raise ClientError(f"{algorithm}: unknown hyperparameter {name!r}; valid ones are {', '.join(sorted(specs))}")
        parsed[name] = _parse_one(name, str(raw).strip(), spec)
    return parsed


def _parse_one(name: str, text: str, spec: Spec) -> Any:
    if spec.auto and text.lower() == "auto":
        return "auto"
    what = _describe(spec)
    try:
        if spec.kind == "bool":
            if text.lower() not in ("true", "false"):
                raise ValueError(text)
            return text.lower() == "true"
        if spec.kind == "str":
            if spec.choices and text not in spec.choices:
                raise ValueError(text)
            return text
        number = float(text)
        if not math.isfinite(number) or (spec.kind == "int" and not number.is_integer()):
            raise ValueError(text)
    except ValueError:
        raise ClientError(f"Hyperparameter {name}: invalid value {text!r}; expected {what}") from None
    value: Any = int(number) if spec.kind == "int" else number
    too_low = spec.low is not None and (value < spec.low or (value == spec.low and not spec.low_inclusive))
    too_high = spec.high is not None and (value > spec.high or (value == spec.high and not spec.high_inclusive))
    if too_low or too_high:
        raise ClientError(f"Hyperparameter {name}: value {text} out of range; expected {what}")
    return value


def _describe(spec: Spec) -> str:
    if spec.kind == "bool":
        text = "true or false"
    elif spec.kind == "str":
        text = "one of " + ", ".join(spec.choices) if spec.choices else "a string"
    else:
        noun = "an integer" if spec.kind == "int" else "a number"
        low = "-inf" if spec.low is None else f"{spec.low:g}"
        high = "inf" if spec.high is None else f"{spec.high:g}"
        text = f"{noun} in {'[' if spec.low_inclusive else '('}{low}, {high}{']' if spec.high_inclusive else ')'}"
    return f"'auto' or {text}" if spec.auto else text


def require(parsed: dict[str, Any], names: Iterable[str]) -> None:
    missing = [name for name in names if name not in parsed or parsed[name] == "auto"]
    if missing:
        raise ClientError(f"Missing required hyperparameter(s): {', '.join(missing)}")


def check_features(x: np.ndarray, feature_dim: int, channel: str, algorithm: str) -> None:
    """The container's index/weights have `feature_dim` inputs; the CSV parser has no missing values."""
    if x.shape[1] != feature_dim:
        raise ClientError(
            f"{channel} channel has {x.shape[1]} feature columns but feature_dim is {feature_dim} "
            "(text/csv: the label first, then exactly feature_dim features)"
        )
    if np.isnan(x).any():
        row = int(np.flatnonzero(np.isnan(x).any(axis=1))[0]) + 1
        raise ClientError(
            f"{algorithm} does not accept missing values: empty feature in {channel} channel at row {row}; "
            "impute missing values before training"
        )


def media_type(header: str) -> tuple[str, dict[str, str]]:
    """'text/csv; label_size=0' -> ('text/csv', {'label_size': '0'})."""
    parts = [part.strip() for part in (header or "").split(";")]
    params: dict[str, str] = {}
    for part in parts[1:]:
        key, _, value = part.partition("=")
        if key:
            params[key.strip().lower()] = value.strip()
    return parts[0].lower(), params


def decode_features(body: bytes, content_type: str, feature_dim: int, accepted: tuple[str, ...]) -> np.ndarray:
    """The rows of an /invocations request (features only), as the first-party containers read them:
    text/csv (optionally ;label_size=N: the first N columns are labels and skipped), application/json
    {"instances": [{"features": [...]} | {"data": {"features": {"values": [...]}}}]} and
    application/jsonlines, one such instance per line. Sparse instances (keys/shape/values) too."""
    kind, params = media_type(content_type)
    if kind not in accepted:
        raise ValueError(f"Unsupported content type {content_type!r}; the local twin accepts {', '.join(accepted)}")
    text = body.decode(params.get("charset", "utf-8"))
    rows: list[list[float]]
    if kind == CSV:
        label_size = int(params.get("label_size", "0"))
        rows = []
        for record in csv.reader(io.StringIO(text)):
            if not record or not any(field.strip() for field in record):
                continue
            try:
                rows.append([float(field) for field in record[label_size:]])
            except ValueError as error:
                raise ValueError(f"Unable to parse text/csv request: {error}") from None
    elif kind == JSON:
        try:
            document = json.loads(text)
        except json.JSONDecodeError as error:
            raise ValueError(f"Unable to parse application/json request: {error}") from None
        if not isinstance(document, dict) or not isinstance(document.get("instances"), list):
            raise ValueError('application/json request must be {"instances": [{"features": [...]}, ...]}')
        rows = [_instance(instance, feature_dim) for instance in document["instances"]]
    else:
        rows = []
        for number, line in enumerate(text.splitlines(), start=1):
            if line.strip():
                try:
                    rows.append(_instance(json.loads(line), feature_dim))
                except json.JSONDecodeError as error:
                    raise ValueError(f"Unable to parse application/jsonlines request, line {number}: {error}") from None
    if not rows:
        raise ValueError("The request has no records")
    widths = {len(row) for row in rows}
    if widths != {feature_dim}:
        raise ValueError(f"Each record must have feature_dim={feature_dim} features, got {sorted(widths)}")
    return np.asarray(rows, dtype=np.float64)


def _instance(instance: Any, feature_dim: int) -> list[float]:
    if isinstance(instance, dict) and isinstance(instance.get("features"), list):
        return [float(value) for value in instance["features"]]
    features = instance.get("data", {}).get("features") if isinstance(instance, dict) else None
    if isinstance(features, dict) and isinstance(features.get("values"), list):
        if "keys" in features:  # sparse: values at keys, zeros elsewhere
            shape = features.get("shape") or [feature_dim]
            dense = [0.0] * int(shape[0])
            for key, value in zip(features["keys"], features["values"], strict=True):
                dense[int(key)] = float(value)
            return dense
        return [float(value) for value in features["values"]]
    raise ValueError('each instance must be {"features": [...]} or {"data": {"features": {"values": [...]}}}')


def encode_predictions(records: list[dict[str, Any]], accept: str) -> tuple[bytes, str]:
    """application/json: {"predictions": [record, ...]}; application/jsonlines: one record a line."""
    kind, params = media_type(accept or JSON)
    if kind in ("", "*/*"):
        kind = JSON
    if kind not in ACCEPTS:
        raise ValueError(f"Unsupported accept type {accept!r}; the local twin answers {', '.join(ACCEPTS)}")
    if params.get("verbose", "false").lower() == "true":
        raise ValueError("verbose=true answers are not supported by the local twin")
    if kind == JSON:
        return json.dumps({"predictions": records}).encode(), JSON
    return ("\n".join(json.dumps(record) for record in records) + "\n").encode(), JSONLINES


def labelled_metric(channel: str) -> Callable[[str, float], dict[str, Any]]:
    return lambda name, value: {"MetricName": f"{channel}:{name}", "Value": float(value)}
