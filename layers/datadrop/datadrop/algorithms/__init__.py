"""The algorithms datadrop trains: one module per algorithm, each with an ``ALGORITHM``
(datadrop.algorithms.base.Algorithm). Adding one is adding a module here (and its local twin
under datadrop.local.twins); nothing else lists them.
"""

from __future__ import annotations

import importlib
import pkgutil
from functools import cache

from datadrop.algorithms.base import Algorithm, AlgorithmError, DataFacts, ResponseFormat, TrainingLaunch
from datadrop.algorithms.images import UnsupportedRegion, xgboost_image_uri

DEFAULT_ALGORITHM = "xgboost"
ALGORITHM_TAG = "datadrop:algorithm"  # on every training job: which algorithm (and local twin) it runs
_NOT_ALGORITHMS = {"base", "images", "jumpstart"}

__all__ = [
    "ALGORITHM_TAG",
    "DEFAULT_ALGORITHM",
    "Algorithm",
    "AlgorithmError",
    "DataFacts",
    "ResponseFormat",
    "TrainingLaunch",
    "UnsupportedRegion",
    "get",
    "names",
    "xgboost_image_uri",
]


@cache
def _registry() -> dict[str, Algorithm]:
    found: dict[str, Algorithm] = {}
    for module_info in pkgutil.iter_modules(__path__):
        if module_info.name in _NOT_ALGORITHMS or module_info.name.startswith("_"):
            continue
        algorithm = getattr(importlib.import_module(f"{__name__}.{module_info.name}"), "ALGORITHM", None)
        if isinstance(algorithm, Algorithm):
            found[algorithm.name] = algorithm
    return dict(sorted(found.items()))


def names() -> list[str]:
    """Every algorithm's config name, sorted."""
    return list(_registry())


def get(name: str) -> Algorithm:
    """The algorithm a config names; an unknown name lists the known ones."""
    try:
        return _registry()[name]
    except KeyError:
        raise AlgorithmError(f"unknown algorithm {name!r}; datadrop has {', '.join(names())}") from None
