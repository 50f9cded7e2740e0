"""Local twins of SageMaker's algorithm containers, one module per algorithm (named by the
algorithm's `local_twin`). Imported only in local mode."""

from __future__ import annotations

import importlib
from types import ModuleType

from datadrop import algorithms
from datadrop.local.twins.base import ClientError, Metrics, Trainer, TrainingFailed

__all__ = ["ClientError", "Metrics", "MissingExtra", "TrainingFailed", "module", "trainer"]


class MissingExtra(ImportError):
    """A twin whose library is not installed; the message names the pip extra that brings it."""


def module(algorithm_name: str) -> ModuleType:
    """The twin module of an algorithm, imported on first use (its library may be heavy, or absent)."""
    algorithm = algorithms.get(algorithm_name)
    try:
        return importlib.import_module(f"{__name__}.{algorithm.local_twin}")
    except ModuleNotFoundError as error:
        if error.name and error.name.startswith("datadrop"):
            raise
        extra = algorithm.local_extra or "local"
        raise MissingExtra(
            f"{algorithm.title} runs locally with {error.name}, which is not installed: pip install 'datadrop[{extra}]'"
        ) from error


def trainer(algorithm_name: str) -> Trainer:
    train: Trainer = module(algorithm_name).train
    return train
