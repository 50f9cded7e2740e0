"""The work of the local SageMaker's jobs, in this process or a worker process: training by the
algorithm's twin (datadrop.local.twins), batch transform (datadrop.local.transform). Local only:
imports numpy and the twins' libraries.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, redirect_stdout
from pathlib import Path
from typing import Any

from datadrop.local import twins
from datadrop.local.model import ModelFiles
from datadrop.local.transform import run_batch_transform
from datadrop.local.twins.base import TrainingFailed

__all__ = ["TrainingFailed", "TrainingOutcome", "exit_with_parent", "train_in_process", "transform_in_process", "warm_up"]


TrainingOutcome = tuple[list[dict[str, Any]], str | None]  # (final metrics, failure reason)


def train_in_process(
    algorithm: str, channels: dict[str, Path], hyperparameters: dict[str, str], model_dir: Path
) -> TrainingOutcome:
    """The training container's work, here or in a worker process (`LocalCompute.step`): the
    algorithm's final metrics, or why it failed (bad data or hyperparameters, as SageMaker says)."""
    try:
        with twins.needs_extra(algorithm), _container_log():
            return twins.trainer(algorithm)(channels, hyperparameters, model_dir), None
    except TrainingFailed as error:
        return [], str(error)
    except twins.MissingExtra as error:  # this machine lacks the twin's library: the job fails saying which extra
        return [], f"AlgorithmError: {error}"


@contextmanager
def _container_log() -> Iterator[None]:
    """What a training container prints (LightGBM's and CatBoost's per-round lines, TabTransformer's
    metrics) goes to CloudWatch Logs on SageMaker; here, to stderr, never to stdout, which belongs
    to the CLI (`datadrop run --json` prints exactly one JSON object there). At the file-descriptor
    level: the libraries' C++ parts write to fd 1 directly."""
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        os.dup2(2, 1)
        with redirect_stdout(sys.stderr):
            yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def transform_in_process(model: ModelFiles, files: list[tuple[Path, Path]], content_type: str, accept: str) -> str | None:
    """A batch transform job's work, here or in a worker process: each input file through the
    model into its output file. None when done, or why it failed (as SageMaker would say)."""
    try:
        for source, output in files:
            output.parent.mkdir(parents=True, exist_ok=True)
            run_batch_transform(model, source, output, content_type=content_type, accept=accept)
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
    XGBoost's twin and the inference script import when first called)."""
    import xgboost  # noqa: F401
