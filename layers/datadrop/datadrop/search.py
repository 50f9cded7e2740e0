"""The run plan: which hyperparameters each run of a dataset version trains with.

The config's `hyperparameters` are a search space: a plain value is fixed, a list is a grid axis,
a {min, max, scale, type} range is sampled. `search.strategy` grid takes every combination of the
lists (ranges are not allowed there); random draws `max_runs` points, seeded, so the same config
always plans the same runs. Values become the strings SageMaker's hyperparameters are.
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Mapping

from datadrop.config import DEFAULT_XGBOOST_HYPERPARAMETERS, HyperparameterSpec, Range, Scalar, SearchConfig

DEFAULT_RANDOM_RUNS = 10


class SearchSpaceError(ValueError):
    """A search space and strategy that do not fit together; the message says how to fix it."""


def plan_size(space: Mapping[str, HyperparameterSpec], search: SearchConfig) -> int:
    ranges = [name for name, spec in space.items() if isinstance(spec, Range)]
    if search.strategy == "grid":
        if ranges:
            raise SearchSpaceError(
                f"hyperparameters {', '.join(ranges)} are ranges: a grid needs lists; use `search: {{strategy: random}}` to sample ranges"
            )
        size = math.prod(len(spec) for spec in space.values() if isinstance(spec, list))
        if search.max_runs is not None and size > search.max_runs:
            raise SearchSpaceError(f"the grid has {size} combinations, more than search.max_runs {search.max_runs}")
        return size
    return search.max_runs or DEFAULT_RANDOM_RUNS


def as_hyperparameter(value: Scalar | bool) -> str:
    """SageMaker's hyperparameters are strings; numbers keep a short, exact spelling."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def plan_runs(space: Mapping[str, HyperparameterSpec], search: SearchConfig, fixed: Mapping[str, str]) -> list[dict[str, str]]:
    """Each run's full hyperparameters: the algorithm's defaults, the planned values, then `fixed`
    (what the data decides, such as the objective and class count), which always wins."""
    size = plan_size(space, search)
    base = dict(DEFAULT_XGBOOST_HYPERPARAMETERS)
    base.update({name: as_hyperparameter(spec) for name, spec in space.items() if not isinstance(spec, (list, Range))})
    varied = {name: spec for name, spec in space.items() if isinstance(spec, (list, Range))}
    points: list[dict[str, Scalar]]
    if search.strategy == "grid":  # plan_size made sure a grid has no ranges
        axes = {name: spec for name, spec in varied.items() if isinstance(spec, list)}
        points = [dict(zip(axes, values, strict=True)) for values in itertools.product(*axes.values())]
    else:
        rng = random.Random(search.seed)
        points = [{name: _draw(spec, rng) for name, spec in varied.items()} for _ in range(size)]
    return [{**base, **{name: as_hyperparameter(value) for name, value in point.items()}, **fixed} for point in points]


def _draw(spec: HyperparameterSpec, rng: random.Random) -> Scalar:
    if isinstance(spec, list):
        return rng.choice(spec)
    if not isinstance(spec, Range):
        return spec
    if spec.scale == "log":
        value = math.exp(rng.uniform(math.log(spec.min), math.log(spec.max)))
    else:
        value = rng.uniform(spec.min, spec.max)
    if spec.type == "int":
        return min(int(spec.max), max(int(spec.min), round(value)))
    return float(f"{value:.6g}")
