"""Local twins of SageMaker's algorithm containers, one module per algorithm (named by the
algorithm's `local_twin`). Imported only in local mode."""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType

from datadrop import algorithms
from datadrop.local.twins.base import ClientError, Metrics, Trainer, TrainingFailed

__all__ = ["ClientError", "Metrics", "MissingExtra", "TrainingFailed", "module", "needs_extra", "trainer"]


class MissingExtra(ImportError):
    """A twin whose library is not installed; the message names the pip extra that brings it."""


@contextmanager
def needs_extra(algorithm_name: str) -> Iterator[None]:
    """A library the twin imports (when loaded, or lazily when it trains) that is not installed
    becomes MissingExtra, naming the pip extra that brings it."""
    try:
        yield
    except ModuleNotFoundError as error:
        if not error.name or error.name.startswith("datadrop"):
            raise
        algorithm = algorithms.get(algorithm_name)
        extra = algorithm.local_extra or "local"
        raise MissingExtra(
            f"{algorithm.title} runs locally with {error.name}, which is not installed: pip install 'datadrop[{extra}]'"
        ) from error


def module(algorithm_name: str) -> ModuleType:
    """The twin module of an algorithm, imported on first use (its library may be heavy, or absent)."""
    algorithm = algorithms.get(algorithm_name)
    with needs_extra(algorithm_name):
        return importlib.import_module(f"{__name__}.{algorithm.local_twin}")


def trainer(algorithm_name: str) -> Trainer:
    train: Trainer = module(algorithm_name).train
    return train
