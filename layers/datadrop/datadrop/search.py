"""The run plan: which hyperparameters each run of a dataset version trains with.

The config's `hyperparameters` are a search space: a plain value is fixed, a list is a grid axis,
a {min, max, scale, type} range is sampled. `search.strategy` grid takes every combination of the
lists (ranges are not allowed there); random draws `max_runs` points, seeded, so the same config
always plans the same runs. Values become the strings SageMaker's hyperparameters are.

bayesian plans nothing up front: each run's values depend on how the earlier runs scored. It is one
SageMaker hyperparameter tuning job (`tuning_ranges` turns the space into its ParameterRanges; the
local SageMaker explores them with Optuna's TPE), and its training jobs become the version's runs.
"""

from __future__ import annotations

import itertools
import math
import random
from collections import Counter
from collections.abc import Mapping
from typing import Any

from datadrop.config import HyperparameterSpec, Range, Scalar, SearchConfig

DEFAULT_RANDOM_RUNS = 10
MAX_RANGES_PER_KIND = 30  # CreateHyperParameterTuningJob: 30 integer, 30 continuous, 30 categorical


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
    if search.strategy == "bayesian":
        varied = [name for name, spec in space.items() if isinstance(spec, (list, Range))]
        if not varied:
            raise SearchSpaceError(
                "a bayesian search needs something to search: give at least one hyperparameter a list or a {min, max} range"
            )
        for kind, count in Counter(_range_kind(space[name]) for name in varied).items():
            if count > MAX_RANGES_PER_KIND:
                raise SearchSpaceError(
                    f"a SageMaker tuning job takes at most {MAX_RANGES_PER_KIND} {kind} ranges; this space has {count}"
                )
    return search.max_runs or DEFAULT_RANDOM_RUNS


def as_hyperparameter(value: Scalar | bool) -> str:
    """SageMaker's hyperparameters are strings; numbers keep a short, exact spelling."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def plan_runs(
    space: Mapping[str, HyperparameterSpec], search: SearchConfig, defaults: Mapping[str, str], fixed: Mapping[str, str]
) -> list[dict[str, str]]:
    """Each run's full hyperparameters: the algorithm's `defaults`, the planned values, then `fixed`
    (what the data decides, such as the objective and class count), which always wins."""
    if search.strategy == "bayesian":
        raise ValueError("a bayesian search has no plan: its runs come from a tuning job (tuning_ranges)")
    size = plan_size(space, search)
    base = dict(defaults)
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


def _range_kind(spec: HyperparameterSpec) -> str:
    if isinstance(spec, list):
        return "categorical"
    return "integer" if isinstance(spec, Range) and spec.type == "int" else "continuous"


def tuning_ranges(space: Mapping[str, HyperparameterSpec]) -> dict[str, list[dict[str, Any]]]:
    """The varied hyperparameters as a tuning job's ParameterRanges: a list is categorical, a range
    is integer or continuous, its scale Linear or Logarithmic (never Auto: the config says which)."""
    ranges: dict[str, list[dict[str, Any]]] = {
        "IntegerParameterRanges": [],
        "ContinuousParameterRanges": [],
        "CategoricalParameterRanges": [],
    }
    for name, spec in space.items():
        if isinstance(spec, list):
            ranges["CategoricalParameterRanges"].append({"Name": name, "Values": [as_hyperparameter(value) for value in spec]})
        elif isinstance(spec, Range):
            key = "IntegerParameterRanges" if spec.type == "int" else "ContinuousParameterRanges"
            low, high = (int(spec.min), int(spec.max)) if spec.type == "int" else (spec.min, spec.max)
            ranges[key].append(
                {
                    "Name": name,
                    "MinValue": as_hyperparameter(low),
                    "MaxValue": as_hyperparameter(high),
                    "ScalingType": "Logarithmic" if spec.scale == "log" else "Linear",
                }
            )
    return {key: value for key, value in ranges.items() if value}


def static_hyperparameters(
    space: Mapping[str, HyperparameterSpec], defaults: Mapping[str, str], fixed: Mapping[str, str]
) -> dict[str, str]:
    """What every run of a tuning job shares: the algorithm's defaults for what is not searched,
    the config's plain values, then `fixed` (what the data decides)."""
    varied = {name for name, spec in space.items() if isinstance(spec, (list, Range))}
    base = {name: value for name, value in defaults.items() if name not in varied}
    base.update({name: as_hyperparameter(spec) for name, spec in space.items() if not isinstance(spec, (list, Range))})
    return {**base, **fixed}
