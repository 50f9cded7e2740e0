"""The streaming scorer against scikit-learn, metric by metric, and its streams chunk by chunk."""

from __future__ import annotations

import json
import random
from array import array
from typing import Any

import numpy as np
import pytest
from datadrop import scoring
from sklearn import metrics as sk

TOLERANCE = 1e-9


def _chunks(body: bytes, size: int) -> list[bytes]:
    return [body[start : start + size] for start in range(0, len(body), size)]


def _classification(rows: int, classes: list[str], seed: int, ties: bool = False) -> tuple[list[str], list[dict[str, Any]]]:
    rng = random.Random(seed)
    truths, predictions = [], []
    for _ in range(rows):
        truth = rng.choice(classes)
        weights = [rng.random() + (1.5 if label == truth and rng.random() < 0.7 else 0.0) for label in classes]
        if ties:
            weights = [round(weight, 1) + 0.05 for weight in weights]
        total = sum(weights)
        probabilities = {label: weight / total for label, weight in zip(classes, weights)}
        predictions.append({"label": max(probabilities, key=lambda label: probabilities[label]), "probabilities": probabilities})
        truths.append(truth)
    return truths, predictions


def sklearn_classification(truths: list[str], predictions: list[dict[str, Any]], classes: list[str]) -> dict[str, float]:
    """scikit-learn's metrics of the same predictions (classes sorted as scikit-learn sorts them)."""
    predicted = [prediction["label"] for prediction in predictions]
    ordered = sorted(classes)
    probabilities = np.array([[prediction["probabilities"][label] for label in ordered] for prediction in predictions])
    expected = {
        "accuracy": sk.accuracy_score(truths, predicted),
        "balanced_accuracy": sk.balanced_accuracy_score(truths, predicted),
        "macro_precision": sk.precision_score(truths, predicted, average="macro", zero_division=0),
        "macro_recall": sk.recall_score(truths, predicted, average="macro", zero_division=0),
        "macro_f1": sk.f1_score(truths, predicted, average="macro", zero_division=0),
        "log_loss": sk.log_loss(truths, probabilities, labels=ordered),
    }
    if len(classes) == 2:
        positive = classes[1]
        expected["roc_auc"] = sk.roc_auc_score([truth == positive for truth in truths], probabilities[:, ordered.index(positive)])
    else:
        expected["roc_auc"] = sk.roc_auc_score(truths, probabilities, multi_class="ovr", labels=ordered)
    precision, recall, f1, support = sk.precision_recall_fscore_support(truths, predicted, labels=ordered, zero_division=0)
    for position, label in enumerate(ordered):
        expected[f"{label}:precision"] = precision[position]
        expected[f"{label}:recall"] = recall[position]
        expected[f"{label}:f1"] = f1[position]
        expected[f"{label}:support"] = support[position]
    return expected


def ours(result: dict[str, Any]) -> dict[str, float]:
    flat = {name: result[name] for name in scoring.CLASSIFICATION_SCALARS}
    for label, numbers in result["per_class"].items():
        for name in ("precision", "recall", "f1", "support"):
            flat[f"{label}:{name}"] = numbers[name]
    return flat


@pytest.mark.parametrize(
    ("classes", "rows", "ties"),
    [
        (["no", "yes"], 400, False),
        (["no", "yes"], 300, True),
        (["Adelie", "Chinstrap", "Gentoo"], 500, False),
        (list("abcd"), 200, True),
    ],
)
def test_classification_metrics_equal_scikit_learn(classes: list[str], rows: int, ties: bool) -> None:
    truths, predictions = _classification(rows, classes, seed=rows, ties=ties)
    result = scoring.score_stream("multiclass", classes, truths, predictions)
    expected = sklearn_classification(truths, predictions, classes)
    assert ours(result) == pytest.approx(expected, abs=TOLERANCE, rel=TOLERANCE)
    confusion = sk.confusion_matrix(truths, [prediction["label"] for prediction in predictions], labels=classes)
    assert [[result["confusion_matrix"][truth][guess] for guess in classes] for truth in classes] == confusion.tolist()


def test_roc_auc_merges_sorted_runs_exactly(monkeypatch: pytest.MonkeyPatch) -> None:
    """Runs of a few values each (the merge path), with many ties across runs."""
    monkeypatch.setattr(scoring, "SORT_RUN", 7)
    rng = random.Random(3)
    labels = [rng.random() < 0.4 for _ in range(1000)]
    scores = [round(rng.random(), 2) for _ in labels]
    positives = array("d", [score for score, label in zip(scores, labels) if label])
    negatives = array("d", [score for score, label in zip(scores, labels) if not label])
    assert scoring.roc_auc(positives, negatives) == pytest.approx(sk.roc_auc_score(labels, scores), abs=TOLERANCE)
    assert list(scoring.sorted_floats(array("d", scores))) == sorted(scores)


def test_undefined_metrics_are_none_and_say_why() -> None:
    result = scoring.score_stream(
        "binary", ["no", "yes"], ["yes", "yes"], [{"label": "yes", "probabilities": {"no": 0.2, "yes": 0.8}}] * 2
    )
    assert result["roc_auc"] is None and "two classes" in result["undefined"]["roc_auc"]
    assert "roc_auc" not in scoring.scalars(result, "binary")
    # A class of the dataset that the test split lacks and nothing predicts: left out of the macro averages.
    truths, predictions = _classification(120, ["a", "b"], seed=1)
    result = scoring.score_stream("multiclass", ["a", "b", "c"], truths, predictions)
    assert result["macro_f1"] == pytest.approx(sk.f1_score(truths, [p["label"] for p in predictions], average="macro"))
    assert "roc_auc:c" in result["undefined"]


def test_regression_metrics_equal_scikit_learn() -> None:
    rng = random.Random(5)
    truths = [rng.uniform(2500, 6500) for _ in range(700)]
    predicted = [truth + rng.gauss(0, 300) for truth in truths]
    result = scoring.score_stream("regression", [], truths, [{"value": value} for value in predicted])
    assert result["rmse"] == pytest.approx(sk.root_mean_squared_error(truths, predicted), rel=TOLERANCE)
    assert result["mae"] == pytest.approx(sk.mean_absolute_error(truths, predicted), rel=TOLERANCE)
    assert result["r2"] == pytest.approx(sk.r2_score(truths, predicted), rel=TOLERANCE)
    assert result["mape"] == pytest.approx(sk.mean_absolute_percentage_error(truths, predicted), rel=TOLERANCE)


@pytest.mark.parametrize("size", [1, 2, 3, 7, 64, 1 << 20])
def test_streams_parse_across_any_chunk_boundary(size: int) -> None:
    labels = ["Adelie", 'quote " and \\ slash', "Gentoo", 12345.678, -1e-7, True, None, "é ü 漢"]
    body = json.dumps(labels, indent=2).encode()
    assert list(scoring.iter_json_array(_chunks(body, size))) == labels
    lines = b'{"label": "a"}\n\n{"label": "b", "x": 1.25}\n{"value": 3}'
    assert list(scoring.iter_json_lines(_chunks(lines, size))) == [{"label": "a"}, {"label": "b", "x": 1.25}, {"value": 3}]


def test_streams_refuse_what_is_not_a_list_or_incomplete_output() -> None:
    with pytest.raises(scoring.ScoringError, match="not a JSON list"):
        list(scoring.iter_json_array([b'{"a": 1}']))
    with pytest.raises(scoring.ScoringError, match="end before"):
        list(scoring.iter_json_array([b'["a", "b"']))
    with pytest.raises(scoring.ScoringError, match="incomplete"):
        scoring.score_stream("regression", [], [1.0, 2.0], [{"value": 1.0}])
    with pytest.raises(scoring.ScoringError, match="more predictions"):
        scoring.score_stream("regression", [], [1.0], [{"value": 1.0}, {"value": 2.0}])


def test_the_report_is_laid_out_as_sagemaker_model_quality_metrics() -> None:
    truths, predictions = _classification(100, ["no", "yes"], seed=9)
    result = scoring.score_stream("binary", ["no", "yes"], truths, predictions)
    report = scoring.model_quality_report(result, "binary", {"model": "s3://m"})
    section = report["binary_classification_metrics"]
    assert report["dataset"]["item_count"] == 100
    for name in (*scoring.CLASSIFICATION_SCALARS, "precision", "recall", "f1", "auc"):
        assert set(section[name]) == {"value", "standard_deviation"}, name
    assert section["auc"]["value"] == section["roc_auc"]["value"]
    assert section["recall"]["value"] == result["per_class"]["yes"]["recall"]
    assert section["confusion_matrix"] == result["confusion_matrix"]
    assert report["datadrop"]["per_class"]["no"]["support"] == truths.count("no")
    regression = scoring.score_stream("regression", [], [1.0, 2.0, 4.0], [{"value": 1.5}, {"value": 2.0}, {"value": 3.0}])
    shaped = scoring.model_quality_report(regression, "regression", {})
    assert set(shaped["regression_metrics"]) == {"mse", "rmse", "mae", "r2", "mape"}
    json.dumps(report, allow_nan=False)  # strict JSON: no NaN anywhere


@pytest.mark.parametrize(
    ("metric", "candidate", "champion", "margin", "beaten"),
    [
        ("accuracy", 0.90, 0.90, 0.0, True),  # at least as good
        ("accuracy", 0.90, 0.91, 0.0, False),
        ("accuracy", 0.92, 0.90, 0.01, True),
        ("accuracy", 0.905, 0.90, 0.01, False),
        ("accuracy", 0.895, 0.90, -0.01, True),  # a negative margin tolerates that much worse
        ("log_loss", 0.30, 0.35, 0.05, True),  # lower is better: champion - candidate
        ("log_loss", 0.33, 0.35, 0.05, False),
        ("rmse", 310.0, 300.0, 0.0, False),
        ("roc_auc", 0.95, 0.94, 0.0, True),
    ],
)
def test_the_gate_beats_the_champion_in_the_metrics_direction(
    metric: str, candidate: float, champion: float, margin: float, beaten: bool
) -> None:
    from datadrop.metrics import beats, champion_comparison

    assert beats(metric, candidate, champion, margin) is beaten
    words = champion_comparison(metric, candidate, champion, "v1", margin)
    assert ("does not beat" in words) is not beaten and words.endswith("not deployed") is not beaten
