"""Local twins of SageMaker XGBoost training, batch transform and real-time endpoints.

They run the real thing (xgboost training, the real ``inference.py`` behind a real HTTP
server) under the SageMaker container's contract, so local mode exercises the same code and
data formats as AWS mode. Local only: imports numpy/xgboost.
"""

from __future__ import annotations

import importlib.util
import itertools
import json
import logging
import math
import os
import socket
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
import warnings
from collections.abc import Callable, Iterator
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType
from typing import Any, Self

import numpy as np

from datadrop.serving import INFERENCE_PROGRAM

MODEL_FILE = "xgboost-model"
MAX_THREADS = 2
SMALL_DATA_ROWS = 100_000
MAX_PAYLOAD_BYTES = 6 * 1024 * 1024  # SageMaker real-time InvokeEndpoint limit

__all__ = [
    "LocalEndpoint",
    "TrainingFailed",
    "load_inference_module",
    "run_batch_transform",
    "train_xgboost",
]


class TrainingFailed(Exception):
    """A training job failure; ``reason`` reads like SageMaker's FailureReason ("ClientError: ...")."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class _ClientError(TrainingFailed, ValueError):
    """Bad hyperparameters or data (the container's UserError): still a ValueError for callers."""

    def __init__(self, message: str) -> None:
        super().__init__(f"ClientError: {message}")


# --------------------------------------------------------------------------- inference module


def load_inference_module(code_dir: Path) -> ModuleType:
    """Import ``code_dir/inference.py`` under a fresh module name, so endpoints don't share state."""
    path = Path(code_dir) / INFERENCE_PROGRAM
    if not path.is_file():
        raise FileNotFoundError(f"no {INFERENCE_PROGRAM} in {code_dir}")
    name = f"datadrop_inference_{uuid.uuid4().hex}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # some stdlib helpers look classes up by module name
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return module


# --------------------------------------------------------------------------- training

_INT = "int"
_FLOAT = "float"
_STR = "str"
# The SageMaker XGBoost container's (algorithm mode) hyperparameters and their types.
_HYPERPARAMETERS: dict[str, str] = {
    "num_round": _INT,
    "csv_weights": _INT,
    "early_stopping_rounds": _INT,
    "booster": _STR,
    "verbosity": _INT,
    "nthread": _INT,
    "eta": _FLOAT,
    "gamma": _FLOAT,
    "max_depth": _INT,
    "min_child_weight": _FLOAT,
    "max_delta_step": _FLOAT,
    "subsample": _FLOAT,
    "colsample_bytree": _FLOAT,
    "colsample_bylevel": _FLOAT,
    "colsample_bynode": _FLOAT,
    "lambda": _FLOAT,
    "alpha": _FLOAT,
    "tree_method": _STR,
    "sketch_eps": _FLOAT,
    "scale_pos_weight": _FLOAT,
    "updater": _STR,
    "dsplit": _STR,
    "refresh_leaf": _INT,
    "process_type": _STR,
    "grow_policy": _STR,
    "max_leaves": _INT,
    "max_bin": _INT,
    "predictor": _STR,
    "monotone_constraints": _STR,
    "interaction_constraints": _STR,
    "sample_type": _STR,
    "normalize_type": _STR,
    "rate_drop": _FLOAT,
    "one_drop": _INT,
    "skip_drop": _FLOAT,
    "lambda_bias": _FLOAT,
    "tweedie_variance_power": _FLOAT,
    "objective": _STR,
    "num_class": _INT,
    "base_score": _FLOAT,
    "_tuning_objective_metric": _STR,
    "eval_metric": _STR,
    "seed": _INT,
    "num_parallel_tree": _INT,
    "save_model_on_termination": _STR,
    "aft_loss_distribution": _STR,
    "aft_loss_distribution_scale": _FLOAT,
    "single_precision_histogram": _STR,
    "deterministic_histogram": _STR,
    "sampling_method": _STR,
    "prob_buffer_row": _FLOAT,
    "use_dask_gpu_training": _STR,
    "_kfold": _INT,
    "_num_cv_round": _INT,
}
_ALIASES = {"learning_rate": "eta", "min_split_loss": "gamma", "reg_lambda": "lambda", "reg_alpha": "alpha"}
# (low, low_inclusive, high, high_inclusive); None = unbounded
_RANGES: dict[str, tuple[float | None, bool, float | None, bool]] = {
    "num_round": (1, True, None, False),
    "early_stopping_rounds": (1, True, None, False),
    "eta": (0, True, 1, True),
    "gamma": (0, True, None, False),
    "max_depth": (0, True, None, False),
    "min_child_weight": (0, True, None, False),
    "subsample": (0, False, 1, True),
    "colsample_bytree": (0, False, 1, True),
    "colsample_bylevel": (0, False, 1, True),
    "colsample_bynode": (0, False, 1, True),
    "lambda": (0, True, None, False),
    "alpha": (0, True, None, False),
    "num_class": (2, True, None, False),
    "nthread": (1, True, None, False),
    "scale_pos_weight": (0, False, None, False),
}
_CHOICES: dict[str, tuple[str, ...]] = {
    "booster": ("gbtree", "gblinear", "dart"),
    "tree_method": ("auto", "exact", "approx", "hist", "gpu_hist"),
    "grow_policy": ("depthwise", "lossguide"),
}
# Accepted like the container but meaningless for a local single-node CPU run.
_IGNORED = {
    "save_model_on_termination",
    "_tuning_objective_metric",
    "predictor",
    "dsplit",
    "single_precision_histogram",
    "deterministic_histogram",
    "prob_buffer_row",
    "use_dask_gpu_training",
    "csv_weights",
}
# Metrics the container computes in Python (custom_metrics.py) rather than xgboost.
_CONTAINER_CUSTOM_METRICS = {
    "accuracy",
    "balanced_accuracy",
    "f1",
    "f1_binary",
    "f1_macro",
    "mse",
    "r2",
    "precision",
    "precision_macro",
    "precision_micro",
    "recall",
    "recall_macro",
    "recall_micro",
    "mae",
}
# Metrics where larger is better (xgboost's own naming), for early stopping direction.
_MAXIMIZE_PREFIXES = ("auc", "aucpr", "map", "ndcg", "pre", "interval-regression-accuracy")


def _parse_hyperparameters(hyperparameters: dict[str, str]) -> dict[str, Any]:
    """Strings in (as SageMaker passes them), typed and range-checked values out."""
    out: dict[str, Any] = {}
    for key, value in hyperparameters.items():
        name = _ALIASES.get(key, key)
        kind = _HYPERPARAMETERS.get(name)
        if kind is None:
            raise _ClientError(f"Extraneous hyperparameter found: {key}")
        text = str(value).strip()
        try:
            if kind == _INT:
                number = float(text)
                if not number.is_integer():
                    raise ValueError(text)
                parsed: Any = int(number)
            elif kind == _FLOAT:
                parsed = float(text)
                if not math.isfinite(parsed):
                    raise ValueError(text)
            else:
                parsed = text
        except ValueError:
            raise _ClientError(f"Hyperparameter {key}: could not parse value {value!r} as {kind}") from None
        if name in _RANGES:
            lo, lo_inc, hi, hi_inc = _RANGES[name]
            bad = (lo is not None and (parsed < lo or (parsed == lo and not lo_inc))) or (
                hi is not None and (parsed > hi or (parsed == hi and not hi_inc))
            )
            if bad:
                interval = f"{'[' if lo_inc else '('}{lo if lo is not None else '-inf'}, {hi if hi is not None else 'inf'}{']' if hi_inc else ')'}"
                raise _ClientError(f"Hyperparameter {key}: value {parsed} not in range {interval}")
        if name in _CHOICES and parsed not in _CHOICES[name]:
            raise _ClientError(f"Hyperparameter {key}: value {parsed!r} not in {list(_CHOICES[name])}")
        out[name] = parsed
    if "num_round" not in out:
        raise _ClientError("Missing required hyperparameter: num_round")
    objective = out.get("objective")
    if objective in ("multi:softmax", "multi:softprob") and "num_class" not in out:
        raise _ClientError("Require input for parameter 'num_class' for multi-classification")
    if "num_class" in out and objective is None:
        raise _ClientError("Do not need to setup parameter 'num_class' for learning task other than multi-classification.")
    if out.get("csv_weights"):
        raise _ClientError("csv_weights=1 is not supported by the local runner")
    if str(out.get("use_dask_gpu_training", "false")).lower() == "true":
        raise _ClientError("use_dask_gpu_training=true is not supported by the local runner")
    if "_kfold" in out or "_num_cv_round" in out:
        raise _ClientError("cross-validation (_kfold/_num_cv_round) is not supported by the local runner")
    if "eval_metric" in out:
        metrics = [m.strip() for m in str(out["eval_metric"]).split(",") if m.strip()]
        custom = [m for m in metrics if m in _CONTAINER_CUSTOM_METRICS]
        if custom:
            raise _ClientError(
                f"eval_metric {', '.join(custom)}: computed by the SageMaker container itself, not by xgboost; "
                "the local runner supports xgboost's own metrics (e.g. error, logloss, merror, mlogloss, auc)"
            )
        out["eval_metric"] = metrics
    return out


def _channel_files(path: Path, channel: str) -> list[Path]:
    """A channel is a file or a directory of files (hidden files skipped, like S3 prefixes)."""
    path = Path(path)
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise _ClientError(f"No data in {channel} channel path {path}")
    files = sorted(
        p for p in path.rglob("*") if p.is_file() and not any(part.startswith(".") for part in p.relative_to(path).parts)
    )
    return [p for p in files if p.stat().st_size > 0]


def _read_csv_channel(path: Path, channel: str) -> tuple[np.ndarray, np.ndarray]:
    """Headerless CSV, label first -> (X, y); empty fields are missing values (NaN)."""
    import polars as pl

    files = _channel_files(path, channel)
    if not files:
        raise _ClientError(f"No data in {channel} channel path {path}")
    parts: list[np.ndarray] = []
    width: int | None = None
    for file in files:
        try:
            frame = pl.read_csv(file, has_header=False, infer_schema=False)
        except Exception as exc:  # noqa: BLE001 - polars raises several types for ragged rows, bad quoting, ...
            raise _ClientError(f"Loading csv data failed: {file.name} in channel {channel}: {exc}") from None
        if width is None:
            width = frame.width
        elif frame.width != width:
            raise _ClientError(f"{channel} channel files have different column counts ({width} vs {frame.width} in {file.name})")
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
            raise _ClientError(
                f"Non-numeric value {frame.row(row_idx)[col_idx]!r} in {channel} channel, file {file.name}, "
                f"line {row_idx + 1}, column {col_idx + 1}: training CSV must be numeric with the label first"
            )
        parts.append(casted.to_numpy().astype(np.float32, copy=False))
    data = np.concatenate(parts) if len(parts) > 1 else parts[0]
    if data.shape[1] < 2:
        raise _ClientError(f"{channel} channel needs a label column and at least one feature column")
    y, x = data[:, 0], np.ascontiguousarray(data[:, 1:])
    if np.isnan(y).any():
        line = int(np.flatnonzero(np.isnan(y))[0]) + 1
        raise _ClientError(f"Missing label in {channel} channel at row {line}: the first column must hold the label")
    return x, y


def _check_labels(y: np.ndarray, objective: str, num_class: int | None, channel: str) -> None:
    if objective.startswith("binary:") and not np.isin(y, (0.0, 1.0)).all():
        raise _ClientError(
            f"{channel} labels must be 0 or 1 for objective {objective}, found {sorted(set(np.unique(y).tolist()) - {0.0, 1.0})[:5]}"
        )
    if objective.startswith("multi:") and num_class is not None:
        ok = (y >= 0) & (y < num_class) & (np.floor(y) == y)
        if not ok.all():
            raise _ClientError(
                f"{channel} labels must be integers in [0, {num_class}) for objective {objective}, found {y[~ok][:5].tolist()}"
            )


def train_xgboost(channels: dict[str, Path], hyperparameters: dict[str, str], model_dir: Path) -> list[dict]:
    """Do what the SageMaker XGBoost container does in algorithm mode; return FinalMetricDataList.

    Metrics are ``<channel>:<eval_metric>`` at the last boosting round run (what the container
    logs last, hence what SageMaker records). Without ``eval_metric``, classification reports
    both the error rate and the log loss. As in the container, ``early_stopping_rounds`` acts
    only with a validation channel and an explicit ``eval_metric`` (its last entry decides),
    and the saved model keeps the best round's trees.
    """
    import xgboost as xgb

    hp = _parse_hyperparameters(dict(hyperparameters))
    unknown_channels = set(channels) - {"train", "validation"}
    if unknown_channels:
        raise _ClientError(f"Unsupported channel(s) {sorted(unknown_channels)}; expected train and optional validation")
    if "train" not in channels:
        raise _ClientError("Missing required channel: train")
    x_train, y_train = _read_csv_channel(channels["train"], "train")
    evals_data: list[tuple[str, np.ndarray, np.ndarray]] = [("train", x_train, y_train)]
    if channels.get("validation") is not None:
        x_val, y_val = _read_csv_channel(channels["validation"], "validation")
        if x_val.shape[1] != x_train.shape[1]:
            raise _ClientError(f"validation has {x_val.shape[1]} feature columns but train has {x_train.shape[1]}")
        evals_data.append(("validation", x_val, y_val))

    num_round = hp.pop("num_round")
    early = hp.pop("early_stopping_rounds", None)
    for key in _IGNORED:
        hp.pop(key, None)
    objective = str(hp.get("objective", "reg:squarederror"))
    for channel, _, y in evals_data:
        _check_labels(y, objective, hp.get("num_class"), channel)
    user_metrics: list[str] = list(hp.get("eval_metric", []))
    if not user_metrics:
        hp.pop("eval_metric", None)
        if objective.startswith("multi:"):
            hp["eval_metric"] = ["merror", "mlogloss"]
        elif objective.startswith("binary:"):
            hp["eval_metric"] = ["error", "logloss"]
    # Small data trains in milliseconds on one thread, while two threads can stall for seconds
    # when another process holds a core (measured in bench/README.md).
    default_threads = 1 if len(evals_data[0][2]) < SMALL_DATA_ROWS else MAX_THREADS
    hp["nthread"] = min(int(hp.get("nthread", default_threads)), MAX_THREADS)
    hp.setdefault("seed", 0)
    hp.setdefault("verbosity", 0)

    callbacks = []
    # Like the container: early stopping watches the validation channel and the LAST
    # user-given eval_metric, and keeps the best iteration's trees (save_best).
    if early and len(evals_data) > 1 and user_metrics:
        metric = user_metrics[-1]
        callbacks.append(
            xgb.callback.EarlyStopping(
                rounds=early,
                data_name="validation",
                metric_name=metric,
                maximize=metric.startswith(_MAXIMIZE_PREFIXES),
                save_best=True,
            )
        )

    dmatrices = [(xgb.DMatrix(x, label=y, missing=np.nan, nthread=hp["nthread"]), name) for name, x, y in evals_data]
    history: dict[str, dict[str, list[float]]] = {}
    try:
        booster = xgb.train(
            hp,
            dmatrices[0][0],
            num_boost_round=num_round,
            evals=dmatrices,
            callbacks=callbacks,
            evals_result=history,
            verbose_eval=False,
        )
    except xgb.core.XGBoostError as exc:
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
        raise _ClientError(f"XGB train call failed: {message}") from None

    model_dir = Path(model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():  # the container's file name has no extension: UBJSON, as there
        warnings.simplefilter("ignore", UserWarning)
        booster.save_model(str(model_dir / MODEL_FILE))

    metrics: list[dict] = []
    for channel in ("validation", "train"):
        for metric, values in history.get(channel, {}).items():
            if values:
                metrics.append({"MetricName": f"{channel}:{metric}", "Value": float(values[-1])})
    return metrics


# --------------------------------------------------------------------------- batch transform


TrainingOutcome = tuple[list[dict[str, Any]], str | None]  # (final metrics, failure reason)


def train_in_process(channels: dict[str, Path], hyperparameters: dict[str, str], model_dir: Path) -> TrainingOutcome:
    """The training container's work, here or in a worker process (`LocalCompute.step`): the
    algorithm's final metrics, or why it failed (bad data or hyperparameters, as SageMaker says)."""
    try:
        return train_xgboost(channels, hyperparameters, model_dir), None
    except TrainingFailed as error:
        return [], str(error)


def transform_in_process(
    code_dir: Path, model_dir: Path, files: list[tuple[Path, Path]], content_type: str, accept: str
) -> str | None:
    """A batch transform job's work, here or in a worker process: each input file through the
    model into its output file. None when done, or why it failed (as SageMaker would say)."""
    try:
        for source, output in files:
            output.parent.mkdir(parents=True, exist_ok=True)
            run_batch_transform(code_dir, model_dir, source, output, content_type=content_type, accept=accept)
    except Exception as error:  # noqa: BLE001 - a failed job is reported as SageMaker would: status + reason
        return f"{type(error).__name__}: {error}"[:1024]
    return None


def exit_with_parent(check_seconds: float = 1.0) -> None:
    """A job process's initializer: end the process when the service that started it is gone. A
    worker killed with SIGKILL cannot stop its pool, whose processes would otherwise wait forever."""
    parent = os.getppid()

    def watch() -> None:
        while True:
            time.sleep(check_seconds)
            if os.getppid() != parent:
                os._exit(0)

    threading.Thread(target=watch, name="datadrop-exit-with-parent", daemon=True).start()


def warm_up() -> None:
    """What a new worker process pays once, paid before its first job: importing xgboost (which
    `train_xgboost` and the inference script import when first called)."""
    import xgboost  # noqa: F401


def _csv_records(lines: Iterator[str]) -> Iterator[str]:
    """Group physical lines into CSV records: a quoted field may span lines, a record never splits."""
    pending: list[str] = []
    quotes = 0
    for line in lines:
        pending.append(line)
        quotes += line.count('"')
        if quotes % 2 == 0:
            record = "".join(pending).rstrip("\r\n")
            pending, quotes = [], 0
            if record.strip():
                yield record
    if pending:
        record = "".join(pending).rstrip("\r\n")
        if record.strip():
            yield record  # unbalanced quote at EOF: let input_fn report it


def _line_records(lines: Iterator[str]) -> Iterator[str]:
    for line in lines:
        record = line.rstrip("\r\n")
        if record.strip():
            yield record


def _batched(records: Iterator[str], size: int) -> Iterator[list[str]]:
    while chunk := list(itertools.islice(records, size)):
        yield chunk


def run_batch_transform(
    code_dir: Path,
    model_dir: Path,
    input_file: Path,
    output_file: Path,
    content_type: str = "text/csv",
    accept: str = "application/jsonlines",
    batch_size: int = 1000,
) -> int:
    """SageMaker batch transform with SplitType=Line, AssembleWith=Line, BatchStrategy=MultiRecord.

    Each mini-batch is an independent request through input_fn/predict_fn/output_fn (so, as on
    SageMaker, a header line only describes the mini-batch it lands in). Writes one output line
    per data record and returns the number of records predicted.
    """
    if batch_size < 1:
        raise ValueError("batch_size must be >= 1")
    media = content_type.split(";", 1)[0].strip().lower()
    if media == "text/csv":
        splitter = _csv_records
    elif media in ("application/jsonlines", "application/x-jsonlines", "application/jsonl"):
        splitter = _line_records
    else:
        raise ValueError(f"batch transform supports text/csv and application/jsonlines input, not {content_type!r}")
    module = load_inference_module(Path(code_dir))
    model = module.model_fn(str(model_dir))
    output_file = Path(output_file)
    output_file.parent.mkdir(parents=True, exist_ok=True)
    written = 0
    start = 1
    with open(input_file, encoding="utf-8-sig", newline="") as src, open(output_file, "w", encoding="utf-8", newline="\n") as dst:
        for batch in _batched(splitter(iter(src)), batch_size):
            body = "\n".join(batch)
            try:
                data = module.input_fn(body, content_type)
                prediction = module.predict_fn(data, model)
                result = module.output_fn(prediction, accept)
            except ValueError as exc:
                raise ValueError(f"records {start}-{start + len(batch) - 1} of {Path(input_file).name}: {exc}") from exc
            text = result[0] if isinstance(result, tuple) else result
            if isinstance(text, bytes):
                text = text.decode("utf-8")
            out_lines = text.split("\n") if text else []
            expected = len(data)
            if len(out_lines) != expected:
                raise RuntimeError(
                    f"output_fn returned {len(out_lines)} lines for {expected} records; Accept {accept} cannot be assembled by line"
                )
            dst.writelines(line + "\n" for line in out_lines)
            written += expected
            start += len(batch)
    return written


# --------------------------------------------------------------------------- endpoint


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Quiet: a client that hangs up mid-response is not worth a traceback on stderr."""


# What the SageMaker XGBoost container answers when the inference script raises: in script mode
# (one model) it serves with sagemaker-containers' Flask worker, whose Transformer wraps every
# exception of input_fn, predict_fn and output_fn in a ClientError that nothing handles, so Flask
# answers with its generic 500 page (the reason goes to the endpoint's CloudWatch log). The local
# endpoint answers the same, and logs the reason (logger "datadrop.local.endpoint").
CONTAINER_ERROR_STATUS = HTTPStatus.INTERNAL_SERVER_ERROR
CONTAINER_ERROR_BODY = (
    b"<!doctype html>\n<html lang=en>\n<title>500 Internal Server Error</title>\n<h1>Internal Server Error</h1>\n"
    b"<p>The server encountered an internal error and was unable to complete your request. Either the server is "
    b"overloaded or there is an error in the application.</p>\n"
)
CONTAINER_ERROR_TYPE = "text/html; charset=utf-8"
HEALTH_CHECK_SECONDS = 30.0
endpoint_log = logging.getLogger("datadrop.local.endpoint")


class HealthCheckFailed(RuntimeError):
    """A new model's server did not answer /ping with 200: traffic stays where it was."""


class _ModelServer:
    """One model served on a port of its own (one instance of the endpoint's fleet): /ping and
    /invocations, as the inference container answers them."""

    def __init__(self, code_dir: Path, model_dir: Path, host: str, max_payload_bytes: int) -> None:
        self.code_dir, self.model_dir = Path(code_dir), Path(model_dir)
        self.host = host
        self.max_payload_bytes = max_payload_bytes
        self._served: tuple[ModuleType, Any] | None = None
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    def start(self, port: int = 0) -> Self:
        """Load the model (like container start-up: a broken model fails here) and serve."""
        module = load_inference_module(self.code_dir)
        self._served = (module, module.model_fn(str(self.model_dir)))
        self._server, self._thread = _serve(self.host, port, _handler_class(self.invoke, lambda: True, self.max_payload_bytes))
        self.port = int(self._server.server_address[1])
        return self

    def stop(self) -> None:
        _stop_serving(self._server, self._thread)
        self._server, self._thread = None, None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def healthy(self, timeout: float = HEALTH_CHECK_SECONDS) -> bool:
        """GET /ping answers 200 (as SageMaker checks a new instance before it takes traffic)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                with urllib.request.urlopen(f"{self.url}/ping", timeout=5) as response:
                    if response.status == HTTPStatus.OK:
                        return True
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)

    def invoke(self, body: bytes, content_type: str | None, accept: str | None) -> tuple[int, bytes, str]:
        """One /invocations call: (status, body, content type). Whatever the script raises is a 500
        with the container's body, as in SageMaker."""
        if self._served is None:
            raise RuntimeError("endpoint has no model")
        module, model = self._served
        if not accept or accept.strip() in ("*/*", ""):
            accept = "text/csv"  # SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT (datadrop.serving.container_environment)
        try:
            data = module.input_fn(body, content_type)
            prediction = module.predict_fn(data, model)
            result = module.output_fn(prediction, accept)
        except Exception as exc:  # noqa: BLE001 - the container answers 500 to anything the script raises
            endpoint_log.warning("the inference script failed (the client sees HTTP 500): %s: %s", type(exc).__name__, exc)
            return CONTAINER_ERROR_STATUS, CONTAINER_ERROR_BODY, CONTAINER_ERROR_TYPE
        text, out_type = result if isinstance(result, tuple) else (result, accept)
        payload = text.encode("utf-8") if isinstance(text, str) else bytes(text)
        return HTTPStatus.OK, payload, out_type


class LocalEndpoint:
    """A real HTTP server answering /ping and /invocations like a SageMaker endpoint, on one port
    for its whole life. Behind it, each model is served by a server of its own: a new model
    (`swap`) is started and health-checked (/ping) before any request goes to it, and the old one
    stops only after that, so clients see no failed request during an update (blue/green)."""

    def __init__(
        self, code_dir: Path, model_dir: Path, host: str = "127.0.0.1", port: int = 0, max_payload_bytes: int = MAX_PAYLOAD_BYTES
    ) -> None:
        self.host = host
        self.port = port
        self.max_payload_bytes = max_payload_bytes
        self._code_dir = Path(code_dir)
        self._model_dir = Path(model_dir)
        self._instance: _ModelServer | None = None
        self._lock = threading.Lock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle
    def start(self) -> Self:
        """Start the model's server, check its health, then serve on the endpoint's port."""
        if self._server is not None:
            return self
        self._instance = self._started(self._code_dir, self._model_dir)
        try:
            handler = _handler_class(self.invoke, self._healthy, self.max_payload_bytes)
            self._server, self._thread = _serve(self.host, self.port, handler)
        except BaseException:
            self._instance.stop()
            raise
        self.port = int(self._server.server_address[1])
        return self

    def stop(self) -> None:
        """Stop serving and release the ports."""
        _stop_serving(self._server, self._thread)
        self._server, self._thread = None, None
        instance, self._instance = self._instance, None
        if instance is not None:
            instance.stop()

    def swap(self, code_dir: Path, model_dir: Path) -> None:
        """Blue/green: serve another model once its own server is up and answers /ping; then stop
        the old one. If the new model fails to load or to answer, the current one keeps serving."""
        green = self._started(Path(code_dir), Path(model_dir))
        with self._lock:
            blue, self._instance = self._instance, green
            self._code_dir, self._model_dir = Path(code_dir), Path(model_dir)
        if blue is not None:
            blue.stop()  # requests it was answering finish: they hold their model, not its socket

    def _started(self, code_dir: Path, model_dir: Path) -> _ModelServer:
        instance = _ModelServer(code_dir, model_dir, self.host, self.max_payload_bytes).start()
        if not instance.healthy():
            instance.stop()
            raise HealthCheckFailed(f"the model server for {model_dir} did not answer /ping")
        return instance

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("endpoint is not started")
        return f"http://{self.host}:{self.port}"

    @property
    def invocations_url(self) -> str:
        return f"{self.url}/invocations"

    @property
    def model_url(self) -> str:
        """The server of the model serving now (it changes at every swap; the endpoint's URL does not)."""
        return self._current().url

    def _current(self) -> _ModelServer:
        with self._lock:
            instance = self._instance
        if instance is None:
            raise RuntimeError("endpoint has no model")
        return instance

    def _healthy(self) -> bool:
        with self._lock:
            return self._instance is not None

    def invoke(self, body: bytes, content_type: str | None, accept: str | None) -> tuple[int, bytes, str]:
        """One /invocations call, answered by the model serving now."""
        return self._current().invoke(body, content_type, accept)


def _serve(host: str, port: int, handler: type[BaseHTTPRequestHandler]) -> tuple[_Server, threading.Thread]:
    server = _Server((host, port), handler)
    thread = threading.Thread(
        target=server.serve_forever,
        kwargs={"poll_interval": 0.1},
        name=f"datadrop-endpoint-{server.server_address[1]}",
        daemon=True,
    )
    thread.start()
    return server, thread


def _stop_serving(server: _Server | None, thread: threading.Thread | None) -> None:
    """Stop what `_serve` started (either may already be gone) and release its port."""
    if server is not None:
        server.shutdown()
        server.server_close()
    if thread is not None:
        thread.join(timeout=5)


def _handler_class(
    invoke: Callable[[bytes, str | None, str | None], tuple[int, bytes, str]],
    healthy: Callable[[], bool],
    max_payload_bytes: int,
) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "datadrop-local-endpoint"

        def log_message(self, format: str, *args: Any) -> None:
            pass  # quiet: no per-request stderr lines

        def setup(self) -> None:
            super().setup()
            # Headers and body are separate writes: with Nagle's algorithm on, the body waits for
            # the client's delayed ACK of the headers (about 40 ms on Linux) on every response.
            self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def _send(self, status: int, body: bytes = b"", content_type: str | None = None) -> None:
            self.send_response(status)
            if content_type:
                self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if body and self.command != "HEAD":
                self.wfile.write(body)

        def do_GET(self) -> None:
            if self.path.split("?", 1)[0] == "/ping":
                self._send(HTTPStatus.OK if healthy() else HTTPStatus.SERVICE_UNAVAILABLE)
            else:
                self._send(HTTPStatus.NOT_FOUND, _error_body(404, f"no route {self.path}"), "application/json")

        def do_POST(self) -> None:
            if self.path.split("?", 1)[0] != "/invocations":
                self._drain()
                self._send(HTTPStatus.NOT_FOUND, _error_body(404, f"no route {self.path}"), "application/json")
                return
            length = self.headers.get("Content-Length")
            if length is None:
                self.close_connection = True
                self._send(HTTPStatus.LENGTH_REQUIRED, _error_body(411, "Content-Length required"), "application/json")
                return
            try:
                size = int(length)
            except ValueError:
                self.close_connection = True
                self._send(HTTPStatus.BAD_REQUEST, _error_body(400, "bad Content-Length"), "application/json")
                return
            if size > max_payload_bytes:
                self.close_connection = True
                self._send(
                    HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                    _error_body(413, f"payload of {size} bytes exceeds {max_payload_bytes}"),
                    "application/json",
                )
                return
            body = self.rfile.read(size)
            status, payload, out_type = invoke(body, self.headers.get("Content-Type"), self.headers.get("Accept"))
            self._send(status, payload, out_type)

        def _drain(self) -> None:
            try:
                n = int(self.headers.get("Content-Length") or 0)
            except ValueError:
                n = 0
            if 0 < n <= max_payload_bytes:
                self.rfile.read(n)
            else:
                self.close_connection = True

    return Handler


def _error_body(status: int, message: str) -> bytes:
    return json.dumps({"status": int(status), "message": message}).encode("utf-8")
