"""Regression as a problem type: how prepare recognises and splits a numeric target, how runs are
scored (against numpy references of scikit-learn's definitions), and how the metric's direction
decides the best run and the threshold."""

from __future__ import annotations

import json
import math
import random
from typing import Any

import numpy as np
import pytest
from datadrop import dataprep, metrics, scoring
from datadrop.algorithms.xgboost import ALGORITHM as XGBOOST
from datadrop.algorithms.xgboost import objective as xgboost_objective
from datadrop.config import DatasetConfig, parse_config
from datadrop.dataprep import DatasetRejected, PreparedDataset, prepare
from datadrop.evaluation import choose_best, headline_metrics
from datadrop.events import RunSummary
from datadrop.quality import render_table

from tests.held_out import held_out_records
from tests.unit.test_dataprep import (
    PENGUINS,
    csv_rows,
    parse_matrix,
    ref_encode,
    ref_number,
    ref_split,
    same_float,
    to_csv,
)

HEADER = ["price", "size", "city", "note"]


def houses(n: int = 200, seed: int = 5) -> list[list[str]]:
    """A price that depends on size and city, with a few missing and non-numeric prices."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        size = rng.uniform(30, 200)
        city = rng.choice(["Oslo", "Lima", "Pune"])
        price = 1000 * size + {"Oslo": 50_000, "Lima": 0, "Pune": 20_000}[city] + rng.gauss(0, 5000)
        text = f"{price:.2f}"
        if i % 50 == 7:
            text = "NA"  # missing: dropped as missing
        elif i % 50 == 9:
            text = ["call us", "n.a.", "tbd", "?!"][i // 50]  # present but not a number
        rows.append([text, f"{size:.1f}", city, rng.choice(["x", "y"])])
    return rows


def regression_config(**more: object) -> DatasetConfig:
    return DatasetConfig.model_validate({"target": "price", **more})


# ----------------------------------------------------------------------------------------------
# Which problem type


def test_a_numeric_target_with_many_values_is_regression() -> None:
    prepared = prepare(to_csv(HEADER, houses()), regression_config())
    assert prepared.recipe["problem_type"] == "regression" and prepared.recipe["classes"] == []
    report = prepared.report
    assert report.target.problem_type == "regression" and report.target.classes == {}
    assert report.rows.missing_target == 4 and report.rows.non_numeric_target == 4
    assert report.rows.dropped == {"missing_target": 4, "non_numeric_target": 4}
    assert report.rows.usable == 192
    (note,) = [note for note in report.normalisations if note.step == "non_numeric_target_dropped"]
    assert note.count == 4 and "'call us', 'n.a.', 'tbd', '?!'" in note.detail
    summary = report.target.summary
    assert summary is not None and summary.min < summary.median < summary.max
    target_column = next(column for column in report.columns if column.name == "price")
    assert target_column.role == "target" and target_column.type == "number"
    shown = render_table(report)
    assert "target 'price' (regression): min " in shown and "mean" in shown
    assert "rows whose target is not a number dropped" in shown
    assert report.summary().rows_dropped == {"missing_target": 4, "non_numeric_target": 4}


def test_a_numeric_target_with_few_values_stays_classification() -> None:
    rows = [[str(i % 5 + 1), f"{i * 0.7:.1f}", "Oslo", "x"] for i in range(120)]  # a 1-5 rating
    prepared = prepare(to_csv(HEADER, rows), regression_config())
    assert prepared.recipe["problem_type"] == "multiclass" and prepared.recipe["classes"] == ["1", "2", "3", "4", "5"]
    assert prepared.report.target.summary is None


def test_exactly_max_classes_numbers_stay_classification_and_one_more_is_regression() -> None:
    def kind(distinct: int) -> str:
        rows = [[str(i % distinct), str(i), "Oslo", side] for side in "xyz" for i in range(distinct)]
        return prepare(to_csv(HEADER, rows), regression_config()).recipe["problem_type"]

    assert kind(dataprep.MAX_CLASSES) == "multiclass"
    assert kind(dataprep.MAX_CLASSES + 1) == "regression"


def test_problem_type_regression_is_taken_as_configured_even_with_few_values() -> None:
    rows = [[str(i % 5 + 1), f"{i * 0.7:.1f}", "Oslo", "x"] for i in range(120)]
    prepared = prepare(to_csv(HEADER, rows), regression_config(problem_type="regression"))
    assert prepared.recipe["problem_type"] == "regression"
    assert parse_matrix(prepared.train_csv)[0][0] in {1.0, 2.0, 3.0, 4.0, 5.0}


def test_a_mostly_text_target_is_not_regression_with_auto() -> None:
    rows = [[f"{i}" if i % 3 else f"id-{i}", str(i), "Oslo", "x"] for i in range(120)]
    with pytest.raises(DatasetRejected, match="an ID or free-text column"):
        prepare(to_csv(HEADER, rows), regression_config())


# ----------------------------------------------------------------------------------------------
# The split and the label, against a plain-Python reference of the rules


def ref_regression_rows(data: bytes, target: str, missing: list[str]) -> tuple[list[str], list[dict[str, str]]]:
    """Cleaned rows: stripped; empty rows, missing and non-numeric targets dropped, then duplicates."""
    records = csv_rows(data)
    header = [name.strip() for name in records[0]]
    seen, rows = set(), []
    for record in records[1:]:
        row = dict(zip(header, (value.strip() for value in record)))
        if row[target] in missing or ref_number(row[target]) is None:
            continue
        if tuple(row.values()) not in seen:
            seen.add(tuple(row.values()))
            rows.append(row)
    return header, rows


def ref_bins(values: list[float], validation: float, test: float) -> list[str]:
    """Each row's quantile bin: rank by value (ties: file order), `bins` equal shares of the ranks."""
    n = len(values)
    bins = max(1, min(10, math.floor(n * min(validation, test) / 3)))
    order = sorted(range(n), key=lambda index: (values[index], index))
    rank = {index: position for position, index in enumerate(order)}
    return [str(rank[index] * bins // n) for index in range(n)]


def assert_regression_matches_reference(data: bytes, config: DatasetConfig, prepared: PreparedDataset) -> None:
    target = config.target
    header, rows = ref_regression_rows(data, target, config.missing_values)
    values = [float(row[target]) for row in rows]
    strata = [{"stratum": stratum} for stratum in ref_bins(values, config.split.validation, config.split.test)]
    where = ref_split(strata, "stratum", config.split.validation, config.split.test, config.split.seed)
    recipe = prepared.recipe
    for split, produced in (("train", prepared.train_csv), ("validation", prepared.validation_csv)):
        expected = [[value] + ref_encode(recipe, row) for row, value, place in zip(rows, values, where) if place == split]
        got = parse_matrix(produced)
        assert len(got) == len(expected), split
        for got_row, expected_row in zip(got, expected):
            assert all(same_float(a, b) for a, b in zip(got_row, expected_row, strict=True)), (split, got_row, expected_row)
    test_rows = [(row, value) for row, value, place in zip(rows, values, where) if place == "test"]
    features_header = [name for name in header if name != target]
    assert held_out_records(prepared) == [[row[name] for name in features_header] for row, _ in test_rows]
    assert prepared.test_labels == [value for _, value in test_rows]
    assert all(isinstance(value, float) for value in prepared.test_labels)


@pytest.mark.parametrize("seed", [42, 7])
def test_split_is_stratified_by_quantile_bins_and_labels_are_the_numbers(seed: int) -> None:
    data = to_csv(HEADER, houses())
    config = regression_config(split={"seed": seed})
    prepared = prepare(data, config)
    assert_regression_matches_reference(data, config, prepared)
    splits = prepared.report.splits
    assert (splits["train"].rows, splits["validation"].rows, splits["test"].rows) == (
        138,
        27,
        27,
    )  # 9 bins of 21-22 rows: 3 test, 3 validation each
    assert all(part.classes == {} and part.target is not None for part in splits.values())


def test_split_is_deterministic_and_seeded() -> None:
    data = to_csv(HEADER, houses())
    first, again = prepare(data, regression_config()), prepare(data, regression_config())
    other = prepare(data, regression_config(split={"seed": 1}))
    assert (first.train_csv, first.test_labels) == (again.train_csv, again.test_labels)
    assert first.test_labels != other.test_labels


def test_a_small_file_is_split_as_one_stratum() -> None:
    rows = [[f"{i * 1.25 + 0.5}", str(i * 3), "Oslo", "x"] for i in range(60)]
    data = to_csv(HEADER, rows)
    config = regression_config(problem_type="regression")
    prepared = prepare(data, config)
    assert_regression_matches_reference(data, config, prepared)  # 60 * 0.15 / 3 = 3 bins


def test_penguin_body_mass_is_regression() -> None:
    prepared = prepare((PENGUINS / "penguins.csv").read_bytes(), parse_config("target: body_mass_g", "c"))
    assert prepared.recipe["problem_type"] == "regression"
    assert prepared.report.rows.usable == 342 and prepared.report.rows.missing_target == 2
    test_mean = prepared.report.splits["test"].target.mean  # type: ignore[union-attr]
    assert abs(test_mean - prepared.report.target.summary.mean) < 100  # type: ignore[union-attr]


def test_only_one_number_is_rejected() -> None:
    rows = [["7.5", str(i), "Oslo", "x"] for i in range(60)]
    with pytest.raises(DatasetRejected, match="only one value"):
        prepare(to_csv(HEADER, rows), regression_config(problem_type="regression"))


# ----------------------------------------------------------------------------------------------
# Scoring: each metric equals scikit-learn's definition (computed here with numpy; scikit-learn is
# not a dependency)


def np_reference(truth: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    error = truth - predicted
    return {
        "rmse": float(np.sqrt(np.mean(error**2))),  # sklearn.metrics.root_mean_squared_error
        "mae": float(np.mean(np.abs(error))),  # mean_absolute_error
        "r2": float(1 - np.sum(error**2) / np.sum((truth - truth.mean()) ** 2)),  # r2_score
        # mean_absolute_percentage_error (max(|y|, eps) in the denominator; no zeros here)
        "mape": float(np.mean(np.abs(error) / np.maximum(np.abs(truth), np.finfo(np.float64).eps))),
    }


@pytest.mark.parametrize("seed", range(5))
def test_regression_metrics_equal_the_reference(seed: int) -> None:
    rng = np.random.default_rng(seed)
    truth = rng.normal(4000, 800, size=57)
    predicted = truth + rng.normal(0, 300, size=57)
    report = _score_regression(truth.tolist(), [{"value": value} for value in predicted.tolist()])
    for name, expected in np_reference(truth, predicted).items():
        assert report[name] == pytest.approx(expected, rel=1e-12, abs=1e-9), name
    assert report["rows"] == 57 and report["mape_skipped_rows"] == 0
    assert report["mean_error"] == pytest.approx(float(np.mean(predicted - truth)), abs=1e-9)


def test_mape_leaves_out_rows_whose_true_value_is_zero_and_says_how_many() -> None:
    truth = [0.0, 10.0, 0.0, 20.0]
    predicted = [1.0, 11.0, -1.0, 18.0]
    report = _score_regression(truth, [{"value": value} for value in predicted])
    assert report["mape"] == pytest.approx((0.1 + 0.1) / 2) and report["mape_skipped_rows"] == 2
    only_zeros = _score_regression([0.0, 0.0], [{"value": 1.0}, {"value": 0.0}])
    assert only_zeros["mape"] is None and only_zeros["mape_skipped_rows"] == 2
    assert "mape" not in headline_metrics(only_zeros, "regression")


def test_r2_of_a_constant_test_split_is_finite_as_in_scikit_learn() -> None:
    assert _score_regression([5.0, 5.0], [{"value": 5.0}, {"value": 5.0}])["r2"] == 1.0
    assert _score_regression([5.0, 5.0], [{"value": 4.0}, {"value": 5.0}])["r2"] == 0.0


def test_regression_scoring_refuses_incomplete_or_wrong_output() -> None:
    with pytest.raises(ValueError, match="incomplete"):
        _score_regression([1.0, 2.0], [{"value": 1.0}])
    with pytest.raises(ValueError, match="must be"):
        _score_regression([1.0], [{"label": "a"}])


def test_headline_metrics_per_problem_type() -> None:
    report = _score_regression([1.0, 2.0, 4.0], [{"value": 1.5}, {"value": 2.0}, {"value": 3.0}])
    assert set(headline_metrics(report, "regression")) == {"rmse", "mae", "r2", "mape"}
    classification = {"accuracy": 1.0, "macro_f1": 1.0, "log_loss": 0.1, "per_class": {}}
    assert headline_metrics(classification, "multiclass") == {"accuracy": 1.0, "macro_f1": 1.0, "log_loss": 0.1}


# ----------------------------------------------------------------------------------------------
# Direction: which run is best, and what passes


def run(index: int, **values: float) -> RunSummary:
    return RunSummary(
        run_index=index, run_name=f"r{index}", training_job=f"job-{index}", status="EVALUATED", hyperparameters={}, metrics=values
    )


def test_lowest_error_is_the_best_run_and_ties_go_to_the_earlier_run() -> None:
    runs = [run(1, rmse=400.0, r2=0.7), run(2, rmse=300.0, r2=0.8), run(3, rmse=300.0, r2=0.8), run(4, rmse=350.0, r2=0.9)]
    assert choose_best(runs, "rmse").run_index == 2  # type: ignore[union-attr]
    assert choose_best(runs, "r2").run_index == 4  # type: ignore[union-attr]
    assert choose_best([run(1, accuracy=0.8), run(2, accuracy=0.9)], "accuracy").run_index == 2  # type: ignore[union-attr]
    assert choose_best([run(1, log_loss=0.3), run(2, log_loss=0.2)], "log_loss").run_index == 2  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("metric", "value", "threshold", "passed", "reason"),
    [
        ("rmse", 312.1, 400.0, True, "held-out rmse 312.1000 <= threshold 400.0000"),
        ("rmse", 400.0, 400.0, True, "held-out rmse 400.0000 <= threshold 400.0000"),
        ("rmse", 412.5, 400.0, False, "held-out rmse 412.5000 > threshold 400.0000: not deployed"),
        ("mae", 1234.56, 1000.0, False, "held-out mae 1234.6 > threshold 1000.0: not deployed"),
        ("r2", 0.82, 0.5, True, "held-out r2 0.8200 >= threshold 0.5000"),
        ("r2", 0.4, 0.5, False, "held-out r2 0.4000 < threshold 0.5000: not deployed"),
        ("accuracy", 0.86, 0.95, False, "held-out accuracy 0.8600 < threshold 0.9500: not deployed"),
        ("log_loss", 0.2, 0.3, True, "held-out log_loss 0.2000 <= threshold 0.3000"),
    ],
)
def test_a_threshold_is_a_minimum_or_a_maximum_by_the_metric(
    metric: str, value: float, threshold: float, passed: bool, reason: str
) -> None:
    assert metrics.passes(metric, value, threshold) is passed
    assert metrics.comparison(metric, value, threshold) == reason


def test_default_metric_and_threshold_per_problem_type() -> None:
    assert metrics.resolve_metric(None, "regression") == "r2"
    assert metrics.resolve_metric(None, "binary") == "accuracy"
    assert metrics.resolve_threshold("r2", None, 0.8) == 0.5
    assert metrics.resolve_threshold("accuracy", None, 0.8) == 0.8
    with pytest.raises(metrics.MetricError, match="needs a threshold"):
        metrics.resolve_threshold("rmse", None, 0.8)
    with pytest.raises(metrics.MetricError, match="is a regression metric, but the problem type is multiclass"):
        metrics.resolve_metric("rmse", "multiclass")
    assert set(metrics.metrics_of("regression")) == {"r2", "rmse", "mae", "mape"}


# ----------------------------------------------------------------------------------------------
# Training


def test_regression_trains_squared_error_and_tunes_validation_rmse() -> None:
    assert xgboost_objective("regression", 0) == {"objective": "reg:squarederror", "eval_metric": "rmse"}
    assert XGBOOST.tuning_objective("regression") == {"Type": "Minimize", "MetricName": "validation:rmse"}


def test_recipe_of_a_regression_is_json_and_bundles() -> None:
    from datadrop.serving import build_serving_bundle

    prepared = prepare(to_csv(HEADER, houses()), regression_config())
    assert build_serving_bundle(json.dumps(prepared.recipe).encode())


def test_datadrop_runs_ranks_by_the_metric_s_direction() -> None:
    from datadrop import leaderboard
    from datadrop.records import RunRecord, RunStatus, VersionRecord, VersionStatus

    version = VersionRecord(
        dataset="mass", version="v1", status=VersionStatus.REJECTED, metric="rmse", threshold=100.0, best_run=2
    )
    runs = [
        RunRecord(
            dataset="mass",
            version="v1",
            run_index=index,
            status=RunStatus.EVALUATED,
            run_name=f"r{index}",
            training_job=f"job-{index}",
            hyperparameters={"max_depth": str(index)},
            metrics={"rmse": rmse, "r2": 0.8},
        )
        for index, rmse in ((1, 350.0), (2, 310.0), (3, 420.0))
    ]

    class State:
        def list_runs(self, dataset: str, version_name: str, attempt: int) -> list[RunRecord]:
            return runs

    board = leaderboard._board(State(), version)  # type: ignore[arg-type]
    assert [run["run_index"] for run in board.runs] == [2, 1, 3]
    assert board.as_dict()["higher_is_better"] is False
    table = leaderboard.as_table(board)
    assert (
        table.splitlines()[0]
        == "mass version v1: REJECTED, 3 run(s), ranked by held-out rmse (lower is better, threshold 100.0000)"
    )


def _score_regression(truths: list[float], predictions: list[dict[str, Any]]) -> dict[str, Any]:
    return scoring.score_stream("regression", [], truths, predictions)
