"""The run plan: a search space and a strategy become each run's hyperparameters, deterministically."""

from __future__ import annotations

import math

import pytest
from datadrop.algorithms.xgboost import ALGORITHM as XGBOOST
from datadrop.config import ConfigError, parse_config
from datadrop.search import plan_runs, static_hyperparameters, tuning_ranges

XGBOOST_DEFAULTS = XGBOOST.default_hyperparameters("binary")

OBJECTIVE = {"objective": "multi:softprob", "num_class": "3"}


def _plan(text: str) -> list[dict[str, str]]:
    config = parse_config("target: species\n" + text, "config/penguins.yaml")
    return plan_runs(config.hyperparameters, config.search, XGBOOST_DEFAULTS, OBJECTIVE)


def test_fixed_values_make_one_run_with_the_defaults_filled_in() -> None:
    (run,) = _plan("hyperparameters: {max_depth: 3}\n")
    assert run["max_depth"] == "3" and run["num_round"] == "100" and run["objective"] == "multi:softprob"


def test_a_grid_is_every_combination_of_its_lists() -> None:
    runs = _plan("hyperparameters: {max_depth: [2, 4], eta: [0.1, 0.2, 0.3], num_round: 20}\n")
    assert len(runs) == 6
    assert {(run["max_depth"], run["eta"]) for run in runs} == {(d, e) for d in ("2", "4") for e in ("0.1", "0.2", "0.3")}
    assert all(run["num_round"] == "20" and run["num_class"] == "3" for run in runs)


def test_the_data_decides_the_objective_whatever_the_config_says() -> None:
    (run,) = _plan("hyperparameters: {objective: 'reg:squarederror'}\n")
    assert run["objective"] == "multi:softprob"


def test_random_search_is_seeded_and_respects_ranges_and_scales() -> None:
    text = (
        "hyperparameters: {eta: {min: 0.001, max: 1, scale: log}, max_depth: {min: 2, max: 8, type: int}, subsample: [0.5, 1.0]}\n"
        "search: {strategy: random, max_runs: 40, seed: 7}\n"
    )
    runs = _plan(text)
    assert runs == _plan(text)  # the same config plans the same runs
    assert len(runs) == 40
    etas = [float(run["eta"]) for run in runs]
    assert all(0.001 <= eta <= 1 for eta in etas)
    # log scale: about as many draws below 0.03 (the geometric middle) as above it
    assert 10 <= sum(eta < math.sqrt(0.001) for eta in etas) <= 30
    assert all(run["max_depth"] in {str(depth) for depth in range(2, 9)} for run in runs)
    assert {run["subsample"] for run in runs} == {"0.5", "1.0"}
    assert runs != _plan(text.replace("seed: 7", "seed: 8"))


def test_random_search_defaults_to_ten_runs() -> None:
    assert len(_plan("hyperparameters: {eta: {min: 0.1, max: 0.3}}\nsearch: {strategy: random}\n")) == 10


# -- bayesian: a tuning job's ranges ------------------------------------------------------------
BAYESIAN = """hyperparameters:
  num_round: 20
  max_depth: {min: 1, max: 8, type: int}
  eta: {min: 0.01, max: 1.0, scale: log}
  subsample: [0.6, 0.9]
search: {strategy: bayesian, max_runs: 12, max_parallel: 3, seed: 7}
"""


def test_a_bayesian_space_becomes_a_tuning_job_s_parameter_ranges() -> None:
    config = parse_config("target: species\n" + BAYESIAN, "config/penguins.yaml")
    assert tuning_ranges(config.hyperparameters) == {
        "IntegerParameterRanges": [{"Name": "max_depth", "MinValue": "1", "MaxValue": "8", "ScalingType": "Linear"}],
        "ContinuousParameterRanges": [{"Name": "eta", "MinValue": "0.01", "MaxValue": "1.0", "ScalingType": "Logarithmic"}],
        "CategoricalParameterRanges": [{"Name": "subsample", "Values": ["0.6", "0.9"]}],
    }
    static = static_hyperparameters(config.hyperparameters, XGBOOST_DEFAULTS, OBJECTIVE)
    # what is searched is not static; the defaults fill in the rest; the data's objective wins
    assert static == {"num_round": "20", "min_child_weight": "1", **OBJECTIVE}


def test_a_bayesian_search_has_no_plan_up_front() -> None:
    with pytest.raises(ValueError, match="tuning job"):
        _plan(BAYESIAN)


@pytest.mark.parametrize(
    ("space", "problem"),
    [
        ("hyperparameters: {max_depth: 3}\n", "needs something to search"),
        ("hyperparameters: {" + ", ".join(f"p{i}: [1, 2]" for i in range(31)) + "}\n", "at most 30 categorical"),
    ],
)
def test_a_bayesian_search_that_sagemaker_would_refuse_is_a_config_error(space: str, problem: str) -> None:
    with pytest.raises(ConfigError, match=problem):
        parse_config(f"target: species\n{space}search: {{strategy: bayesian}}\n", "config/penguins.yaml")
