from __future__ import annotations

import math

import pytest
from datadrop.evaluation import choose_best, score
from datadrop.events import RunSummary


def _prediction(label: str, p: float, other: str) -> dict:
    return {"label": label, "probabilities": {label: p, other: 1 - p}}


def test_score_counts_every_row() -> None:
    labels = ["a", "a", "b", "b"]
    predictions = [_prediction("a", 0.9, "b"), _prediction("b", 0.6, "a"), _prediction("b", 0.8, "a"), _prediction("b", 0.7, "a")]
    report = score(labels, predictions, ["a", "b"])
    assert report["accuracy"] == 0.75
    assert report["confusion_matrix"] == {"a": {"a": 1, "b": 1}, "b": {"a": 0, "b": 2}}
    assert report["per_class"]["a"]["recall"] == 0.5
    assert report["per_class"]["b"]["precision"] == pytest.approx(2 / 3)
    expected_log_loss = -(math.log(0.9) + math.log(0.4) + math.log(0.8) + math.log(0.7)) / 4
    assert report["log_loss"] == pytest.approx(expected_log_loss)


def test_score_refuses_incomplete_output() -> None:
    with pytest.raises(ValueError, match="incomplete"):
        score(["a", "b"], [_prediction("a", 0.9, "b")], ["a", "b"])


def _run(index: int, status: str, accuracy: float | None) -> RunSummary:
    return RunSummary(
        run_index=index,
        run_name=f"r{index}",
        training_job=f"job-{index}",
        status=status,
        hyperparameters={},
        metrics={} if accuracy is None else {"accuracy": accuracy},
    )


def test_best_run_is_highest_and_earliest_on_ties() -> None:
    runs = [_run(1, "EVALUATED", 0.8), _run(2, "EVALUATED", 0.9), _run(3, "EVALUATED", 0.9), _run(4, "FAILED", None)]
    assert choose_best(runs, "accuracy").run_index == 2
    assert choose_best([_run(1, "FAILED", None)], "accuracy") is None
