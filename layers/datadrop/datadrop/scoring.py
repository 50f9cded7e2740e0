"""Scoring a batch transform's predictions against the held-out labels, streaming.

The evaluate step reads the transform output (JSON Lines, one prediction per test row) and the
test labels (one JSON list) as streams of chunks and scores them row by row: the confusion counts,
each row's loss (or error and true value) in an `array('d')`, summed exactly with math.fsum at the
end, and for ROC AUC one `array('d')` of scores per class and side: 8 bytes per row and number,
never a Python object per row. 1M test rows score in a few tens of MB (bench/evaluation.py).
Stdlib only: it runs in the evaluate Lambda, whose layer stays small.

Every metric is scikit-learn's definition (a unit test compares each with scikit-learn to 1e-9):
- accuracy, balanced accuracy (the mean recall over the classes present in the test labels);
- precision, recall and F1 per class and macro-averaged over the classes that occur in the labels
  or the predictions (scikit-learn's `labels=None`; a class never predicted has precision 0);
- ROC AUC: binary, of the second class's probability; multiclass, one-vs-rest, the mean over the
  classes with both positive and negative test rows (scikit-learn's `multi_class="ovr"`, macro);
- log loss, of the true class's probability clipped to [eps, 1 - eps] (eps: float64's);
- regression: RMSE, MAE, R² and MAPE (over the rows whose true value is not 0).
A metric that is undefined on the test split (AUC with one class only; MAPE with every true value 0)
is None, and `undefined` says why.

`model_quality_report` lays the result out as SageMaker Model Quality metrics are:
`{"version", "dataset", "<problem>_metrics": {name: {"value", "standard_deviation"}}}` (the
standard deviation is the metric's standard error where one follows from the running sums, else
null), plus a `datadrop` section with per-class numbers and what was undefined.
"""

from __future__ import annotations

import codecs
import heapq
import json
import math
import sys
from array import array
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import Any

EPS = sys.float_info.epsilon  # scikit-learn clips probabilities to [eps, 1 - eps] of their dtype
SORT_RUN = 1 << 16  # values sorted at once (as Python floats); runs are merged into arrays

CLASSIFICATION_SCALARS = (
    "accuracy",
    "balanced_accuracy",
    "macro_precision",
    "macro_recall",
    "macro_f1",
    "roc_auc",
    "log_loss",
)
REGRESSION_SCALARS = ("rmse", "mae", "r2", "mape")
SECTION = {
    "binary": "binary_classification_metrics",
    "multiclass": "multiclass_classification_metrics",
    "regression": "regression_metrics",
}


class ScoringError(ValueError):
    """The transform output and the labels cannot be scored together; the message says why."""


# ---------------------------------------------------------------------------------------------
# Streams
# ---------------------------------------------------------------------------------------------
def iter_lines(chunks: Iterable[bytes]) -> Iterator[str]:
    """The non-blank lines of a UTF-8 byte stream given in chunks of any size."""
    text = codecs.getincrementaldecoder("utf-8")()
    rest = ""
    for chunk in chunks:
        if not chunk:
            continue
        lines = (rest + text.decode(chunk)).split("\n")
        rest = lines.pop()
        for line in lines:
            if line and not line.isspace():
                yield line
    rest += text.decode(b"", final=True)
    if rest.strip():
        yield rest


def iter_json_lines(chunks: Iterable[bytes]) -> Iterator[Any]:
    decoder = json.JSONDecoder()
    raw_decode, decode = decoder.raw_decode, decoder.decode
    for number, line in enumerate(iter_lines(chunks), start=1):
        try:
            value, end = raw_decode(line)  # the common case: one object and nothing around it
            yield value if end == len(line) else decode(line)
        except ValueError:
            try:
                yield decode(line)  # whitespace around it
            except ValueError as error:
                raise ScoringError(f"line {number} of the transform output is not JSON: {error}") from error


_WHITESPACE = " \t\r\n"


def iter_json_array(chunks: Iterable[bytes]) -> Iterator[Any]:
    """The items of one JSON array, given in chunks of any size, one at a time."""
    decoder = json.JSONDecoder()
    text = codecs.getincrementaldecoder("utf-8")()
    buffer, position, started = "", 0, False
    stream = iter(chunks)
    final = False
    while True:
        try:
            chunk = next(stream)
        except StopIteration:
            chunk, final = b"", True
        buffer = buffer[position:] + text.decode(chunk, final=final)
        position, size = 0, len(buffer)
        while True:
            while position < size and buffer[position] in _WHITESPACE:
                position += 1
            if position >= size:
                break
            if not started:
                if buffer[position] != "[":
                    raise ScoringError("the test labels are not a JSON list")
                started, position = True, position + 1
                continue
            if buffer[position] == "]":
                return
            if buffer[position] == ",":
                position += 1
                continue
            try:
                value, end = decoder.raw_decode(buffer, position)
            except ValueError:
                if final:
                    raise ScoringError(f"the test labels are not a JSON list (at character {position})") from None
                break  # the item continues in the next chunk
            after = end
            while after < size and buffer[after] in _WHITESPACE:
                after += 1
            if after >= size or buffer[after] not in ",]":
                if not final:
                    break  # a number may go on in the next chunk ("1" of "1e-7"): decode it again with more
                if after < size:
                    raise ScoringError(f"the test labels are not a JSON list (at character {after})")
            yield value
            position = end
        if final:
            raise ScoringError("the test labels end before their list does")


# ---------------------------------------------------------------------------------------------
# Sorts
# ---------------------------------------------------------------------------------------------
def sorted_floats(values: array) -> array:  # type: ignore[type-arg]
    """`values` ascending, as a new array: runs of SORT_RUN sorted as Python floats, then merged,
    so at no time are there more than SORT_RUN float objects."""
    runs = [array("d", sorted(values[start : start + SORT_RUN])) for start in range(0, len(values), SORT_RUN)]
    if len(runs) <= 1:
        return runs[0] if runs else array("d")
    merged = array("d")
    merged.extend(heapq.merge(*runs))
    return merged


def roc_auc(positives: array, negatives: array) -> float | None:  # type: ignore[type-arg]
    """The probability that a positive row scores above a negative one (ties count half): the
    area under the ROC curve, exactly (integer counts). None when either side is empty."""
    if not positives or not negatives:
        return None
    positive, negative = sorted_floats(positives), sorted_floats(negatives)
    below = at_most = 0  # negatives scoring < and <= the current positive score
    twice_wins = 0
    count = len(negative)
    for score in positive:
        while below < count and negative[below] < score:
            below += 1
        at_most = max(at_most, below)
        while at_most < count and negative[at_most] <= score:
            at_most += 1
        twice_wins += below + at_most  # 2 * (below + (at_most - below) / 2)
    return twice_wins / (2 * len(positive) * count)


# ---------------------------------------------------------------------------------------------
# Scorers
# ---------------------------------------------------------------------------------------------
class ClassificationScorer:
    """Classification metrics of predictions ({label, probabilities}) against true labels, one row at a time."""

    def __init__(self, classes: list[str]) -> None:
        self.classes = [str(label) for label in classes]
        self.index = {label: position for position, label in enumerate(self.classes)}
        self.labels = list(self.classes)  # the dataset's classes, then any other label seen
        self.confusion: list[list[int]] = [[0] * len(self.labels) for _ in self.labels]
        self.rows = 0
        self.labels_only = 0  # rows answered with a label and no probabilities (k-NN gives none)
        self.losses = array("d")  # per row, summed exactly (math.fsum) at the end
        # ROC AUC: binary, the second class's probability; multiclass, each class's (one-vs-rest).
        self.scored = self.classes[1:2] if len(self.classes) == 2 else list(self.classes)
        self.positives = {label: array("d") for label in self.scored}
        self.negatives = {label: array("d") for label in self.scored}

    def _position(self, label: str) -> int:
        position = self.index.get(label)
        if position is None:
            position = self.index[label] = len(self.labels)
            self.labels.append(label)
            for row in self.confusion:
                row.append(0)
            self.confusion.append([0] * len(self.labels))
        return position

    def add(self, truth: Any, prediction: Any) -> None:
        try:
            guess = str(prediction["label"])
            probabilities = prediction.get("probabilities")
        except (KeyError, TypeError, AttributeError) as error:
            raise ScoringError(f"a classification prediction must be {{'label', 'probabilities'}}: {error!r}") from error
        actual = str(truth)
        self.confusion[self._position(actual)][self._position(guess)] += 1
        self.rows += 1
        if probabilities is None:
            self.labels_only += 1
            return
        probability = min(max(float(probabilities.get(actual, 0.0)), EPS), 1.0 - EPS)
        self.losses.append(-math.log(probability))
        positives, negatives = self.positives, self.negatives
        for label in self.scored:
            (positives if label == actual else negatives)[label].append(float(probabilities.get(label, 0.0)))

    def result(self) -> dict[str, Any]:
        if not self.rows:
            raise ScoringError("no test rows to score")
        rows, labels, confusion = self.rows, self.labels, self.confusion
        size = len(labels)
        actual = [sum(confusion[truth]) for truth in range(size)]
        predicted = [sum(confusion[truth][guess] for truth in range(size)) for guess in range(size)]
        per_class: dict[str, dict[str, Any]] = {}
        for position, label in enumerate(labels):
            hits = confusion[position][position]
            precision = hits / predicted[position] if predicted[position] else 0.0
            recall = hits / actual[position] if actual[position] else 0.0
            f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
            per_class[label] = {"precision": precision, "recall": recall, "f1": f1, "support": actual[position]}
        occurring = [label for position, label in enumerate(labels) if actual[position] or predicted[position]]
        present = [label for position, label in enumerate(labels) if actual[position]]
        undefined: dict[str, str] = {}
        aucs: dict[str, float] = {}
        for label in self.scored:
            area = roc_auc(self.positives[label], self.negatives[label])
            self.positives[label], self.negatives[label] = array("d"), array("d")  # done with them
            if area is None:
                side = "no" if not actual[self.index[label]] else "only"
                undefined[f"roc_auc:{label}"] = f"the test split has {side} rows of class {label!r}"
            else:
                aucs[label] = area
                per_class[label]["roc_auc"] = area
        if len(self.classes) == 2:
            auc = aucs.get(self.classes[1])
        else:
            auc = sum(aucs.values()) / len(aucs) if aucs else None
        if self.labels_only:
            why = f"{self.labels_only} of {rows} test rows were answered with a label and no class probabilities"
            auc = None
            undefined = {key: value for key, value in undefined.items() if not key.startswith("roc_auc")}
            undefined["roc_auc"] = undefined["log_loss"] = why
        elif auc is None:
            undefined["roc_auc"] = "every test row has the same class: ROC AUC needs rows of two classes"
        accuracy = sum(confusion[position][position] for position in range(size)) / rows
        loss: float | None = None if self.labels_only else math.fsum(self.losses) / rows
        loss_squares = math.fsum(value * value for value in self.losses)
        self.losses = array("d")
        return {
            "rows": rows,
            "classes": labels,
            "accuracy": accuracy,
            "balanced_accuracy": sum(per_class[label]["recall"] for label in present) / len(present),
            "macro_precision": sum(per_class[label]["precision"] for label in occurring) / len(occurring),
            "macro_recall": sum(per_class[label]["recall"] for label in occurring) / len(occurring),
            "macro_f1": sum(per_class[label]["f1"] for label in occurring) / len(occurring),
            "roc_auc": auc,
            "log_loss": loss,
            "per_class": per_class,
            "confusion_matrix": {
                truth: {guess: confusion[row][column] for column, guess in enumerate(labels)} for row, truth in enumerate(labels)
            },
            "standard_errors": {
                "accuracy": math.sqrt(accuracy * (1 - accuracy) / rows),
                "log_loss": None if loss is None else _standard_error(loss_squares, loss, rows),
            },
            "undefined": undefined,
        }


class RegressionScorer:
    """Regression metrics of predictions ({value}) against true values, one row at a time.

    rmse, mae and r2 are scikit-learn's mean_squared_error (square-rooted), mean_absolute_error and
    r2_score (a constant test split scores 1.0 when predicted exactly, else 0.0, as its force_finite
    does). mape is the mean of |error| / |true value| over the rows whose true value is not 0 (a
    percentage of 0 is undefined; scikit-learn would divide by machine epsilon instead), as a
    fraction: 0.1 is 10%. `mape_skipped_rows` says how many rows it left out.
    """

    def __init__(self) -> None:
        self.truths = array("d")  # per row: 16 bytes a row, summed exactly (math.fsum) at the end
        self.errors = array("d")

    @property
    def rows(self) -> int:
        return len(self.truths)

    def add(self, truth: Any, prediction: Any) -> None:
        try:
            guess = float(prediction["value"])
        except (KeyError, TypeError, ValueError) as error:
            raise ScoringError(f"a regression prediction must be {{'value': <number>}}: {error!r}") from error
        actual = float(truth)
        self.truths.append(actual)
        self.errors.append(guess - actual)

    def result(self) -> dict[str, Any]:
        rows, truths, errors = self.rows, self.truths, self.errors
        if not rows:
            raise ScoringError("no test rows to score")
        squared = math.fsum(error * error for error in errors)
        mean_truth = math.fsum(truths) / rows
        total = math.fsum((truth - mean_truth) ** 2 for truth in truths)
        if total:
            r2 = 1.0 - squared / total
        else:
            r2 = 1.0 if squared == 0 else 0.0
        mse, mae = squared / rows, math.fsum(abs(error) for error in errors) / rows
        relative = array("d", (abs(error) / abs(truth) for truth, error in zip(truths, errors) if truth != 0))
        mape = math.fsum(relative) / len(relative) if relative else None
        undefined = (
            {} if mape is not None else {"mape": "every true value in the test split is 0: a percentage of 0 is undefined"}
        )
        standard_errors = {
            "mse": _standard_error(math.fsum(error**4 for error in errors), mse, rows),
            "mae": _standard_error(squared, mae, rows),
        }
        if mape is not None:
            standard_errors["mape"] = _standard_error(math.fsum(value * value for value in relative), mape, len(relative))
        return {
            "rows": rows,
            "rmse": math.sqrt(mse),
            "mse": mse,
            "mae": mae,
            "r2": r2,
            "mape": mape,
            "mape_skipped_rows": rows - len(relative),
            "mean_error": math.fsum(errors) / rows,  # > 0: the model predicts too high on average
            "standard_errors": standard_errors,
            "undefined": undefined,
        }


def _standard_error(sum_of_squares: float, mean: float, rows: int) -> float | None:
    """The standard error of a mean, from the sum of the squared values and their mean."""
    if rows < 2:
        return None
    variance = max(sum_of_squares / rows - mean * mean, 0.0) * rows / (rows - 1)
    return math.sqrt(variance / rows)


def score_stream(
    problem_type: str | None, classes: list[str], truths: Iterable[Any], predictions: Iterable[Any]
) -> dict[str, Any]:
    """Score predictions against true values, both streamed in test-row order."""
    scorer: ClassificationScorer | RegressionScorer = (
        RegressionScorer() if problem_type == "regression" else ClassificationScorer(classes)
    )
    truth_stream, prediction_stream = iter(truths), iter(predictions)
    for truth in truth_stream:
        prediction = next(prediction_stream, None)
        if prediction is None:
            raise ScoringError(f"{scorer.rows} predictions for more test rows: the transform output is incomplete")
        scorer.add(truth, prediction)
    if next(prediction_stream, None) is not None:
        raise ScoringError(f"more predictions than the {scorer.rows} test rows: the transform output does not fit the split")
    return scorer.result()


def scalars(result: dict[str, Any], problem_type: str | None) -> dict[str, float]:
    """The scalar metrics of a result (the ones logged to the run as `test:<name>`); undefined ones are left out."""
    names = REGRESSION_SCALARS if problem_type == "regression" else CLASSIFICATION_SCALARS
    return {name: float(result[name]) for name in names if result.get(name) is not None}


def model_quality_report(result: dict[str, Any], problem_type: str | None, about: dict[str, Any]) -> dict[str, Any]:
    """The result in SageMaker Model Quality metrics' layout (ModelMetrics.ModelQuality.Statistics)."""
    kind = problem_type if problem_type in SECTION else "multiclass"
    errors = result.get("standard_errors", {})

    def metric(name: str, value: float | None) -> dict[str, Any]:
        return {"value": value, "standard_deviation": errors.get(name)}

    if kind == "regression":
        names: tuple[str, ...] = ("mse", *REGRESSION_SCALARS)
        section: dict[str, Any] = {name: metric(name, result.get(name)) for name in names}
    else:
        section = {name: metric(name, result.get(name)) for name in CLASSIFICATION_SCALARS}
        section["confusion_matrix"] = result["confusion_matrix"]
        if kind == "binary":
            # SageMaker's binary names: precision, recall and F1 of the positive (second) class, and auc.
            positive = result["classes"][1] if len(result["classes"]) > 1 else result["classes"][0]
            for name in ("precision", "recall", "f1"):
                section[name] = metric(name, result["per_class"].get(positive, {}).get(name))
            section["auc"] = metric("auc", result.get("roc_auc"))
    extras = {key: value for key, value in result.items() if key not in section and key not in ("standard_errors", "rows")}
    return {
        "version": 0.0,
        "dataset": {"item_count": result["rows"], "evaluation_time": datetime.now(UTC).isoformat(timespec="seconds")},
        SECTION[kind]: section,
        "datadrop": {"problem_type": kind, **about, **extras},
    }
