"""The run plan: a search space and a strategy become each run's hyperparameters, deterministically."""

from __future__ import annotations

import math

from datadrop.config import parse_config
from datadrop.search import plan_runs

OBJECTIVE = {"objective": "multi:softprob", "num_class": "3"}


def _plan(text: str) -> list[dict[str, str]]:
    config = parse_config("target: species\n" + text, "config/penguins.yaml")
    return plan_runs(config.hyperparameters, config.search, OBJECTIVE)


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
