from __future__ import annotations

import pytest
from datadrop.algorithms.xgboost import ALGORITHM as XGBOOST
from datadrop.config import ConfigError, parse_config, validate_dataset_name
from datadrop.search import plan_runs

XGBOOST_DEFAULTS = XGBOOST.default_hyperparameters("binary")


def test_minimal_config_gets_defaults() -> None:
    config = parse_config("target: species\n", "config/penguins.yaml")
    assert config.target == "species"
    assert config.threshold is None and config.metric is None
    assert config.judged_by("multiclass", 0.8) == ("accuracy", 0.8)
    assert config.judged_by("regression", 0.8) == ("r2", 0.5)
    (only_run,) = plan_runs(config.hyperparameters, config.search, XGBOOST_DEFAULTS, {})
    assert only_run["num_round"] == "100"


def test_json_config_and_hyperparameters_become_strings() -> None:
    config = parse_config('{"target": "y", "threshold": 0.9, "hyperparameters": {"max_depth": 3, "eta": 0.1}}', "c.json")
    assert config.judged_by("binary", 0.5) == ("accuracy", 0.9)
    (only_run,) = plan_runs(config.hyperparameters, config.search, XGBOOST_DEFAULTS, {})
    assert only_run["max_depth"] == "3"
    assert only_run["eta"] == "0.1"


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("threshold: 0.9\n", "target: Field required"),
        ("target: y\nthreshold: 1.5\n", "threshold 1.5 is above 1, but without a metric"),
        ("target: y\nmetric: accuracy\nthreshold: 1.5\n", "must be between 0 and 1"),
        ("target: y\nproblem_type: regression\nmetric: accuracy\n", "metric accuracy is a classification metric"),
        ("target: y\nproblem_type: binary\nmetric: rmse\nthreshold: 4\n", "metric rmse is a regression metric"),
        ("target: y\nproblem_type: regression\nmetric: rmse\n", "metric rmse is in the target's units"),
        ("target: y\nmetric: mae\n", "set `threshold` in the dataset config to the largest held-out mae"),
        ("target: y\nmetric: rmse\nthreshold: -1\n", "must be at least 0"),
        ("target: y\nmetric: r2\nthreshold: 1.2\n", "must be at most 1"),
        (
            "target: y\nmetric: auc\n",
            "metric: Input should be 'accuracy', 'balanced_accuracy', 'macro_precision', 'macro_recall', 'macro_f1', 'roc_auc', 'log_loss', 'r2', 'rmse', 'mae' or 'mape'",
        ),
        ("target: y\ntreshold: 0.9\n", "treshold: Extra inputs are not permitted"),
        ("target: y\nsplit: {validation: 0.4, test: 0.4}\n", "at least 20% of the rows for training"),
        ("- a\n- b\n", "must be a mapping"),
        ("target: [unclosed\n", "not valid YAML"),
        ("target: y\nhyperparameters: {eta: {min: 0.01, max: 0.3}}\n", "are ranges: a grid needs lists"),
        ("target: y\nhyperparameters: {eta: {min: 0.3, max: 0.01}}\n", "must be below max"),
        ("target: y\nhyperparameters: {eta: {min: 0, max: 1, scale: log}}\n", "needs min > 0"),
        ("target: y\nhyperparameters: {eta: []}\n", "is an empty list"),
        ("target: y\nhyperparameters: {a: [1, 2, 3], b: [1, 2]}\nsearch: {max_runs: 5}\n", "6 combinations, more than"),
        ("target: y\nsearch: {strategy: annealing}\n", "search.strategy: Input should be 'grid', 'random' or 'bayesian'"),
        ("target: y\nsearch: {strategy: random, max_runs: 500}\n", "less than or equal to 200"),
        ("target: y\nexperiment: {display_name: 'my penguins'}\n", "experiment.display_name: String should match pattern"),
        ("target: y\nexperiment: {tags: {'aws:owner': me}}\n", "prefixes are reserved"),
        ("target: y\nexperiment: {tags: {team: 'a|b'}}\n", "letters, digits, spaces"),
    ],
)
def test_bad_configs_name_the_field(text: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "s3://bucket/config/d.yaml")
    assert "s3://bucket/config/d.yaml" in str(caught.value)
    assert fragment in str(caught.value)


def test_config_fingerprint_changes_with_content() -> None:
    assert parse_config("target: a", "x").fingerprint() != parse_config("target: b", "x").fingerprint()


@pytest.mark.parametrize("name", ["Penguins", "-x", "a_b", "a" * 31, ""])
def test_dataset_names_must_fit_sagemaker_names(name: str) -> None:
    with pytest.raises(ConfigError, match="lowercase letters"):
        validate_dataset_name(name)
