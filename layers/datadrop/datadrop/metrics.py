"""The held-out metrics a dataset version can be judged by, per problem type, and which way is better.

Stdlib only: the config, the prepare step and the evaluate step all import it in Lambda.

A metric's direction decides everything downstream: which run is best (`better_first_key`), whether
the best run passes its threshold (`passes`), and how the decision reads ("rmse 312.1 <= threshold
400"). Thresholds of higher-is-better metrics are minimums; of lower-is-better ones, maximums.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

ProblemType = Literal["binary", "multiclass", "regression"]
MetricName = Literal[
    "accuracy", "balanced_accuracy", "macro_precision", "macro_recall", "macro_f1", "roc_auc", "log_loss",
    "r2", "rmse", "mae", "mape",
]  # fmt: skip

CLASSIFICATION: Final = ("binary", "multiclass")


@dataclass(frozen=True)
class MetricSpec:
    name: str
    problem_types: tuple[str, ...]
    higher_is_better: bool
    # What a missing threshold means: a number, "stack" (the stack's AccuracyThreshold parameter),
    # or None (the config must give one: the metric is in the target's units, or has no sensible default).
    default_threshold: float | Literal["stack"] | None
    description: str


METRICS: Final[dict[str, MetricSpec]] = {
    spec.name: spec
    for spec in (
        MetricSpec("accuracy", CLASSIFICATION, True, "stack", "share of test rows whose class is right"),
        MetricSpec("balanced_accuracy", CLASSIFICATION, True, "stack", "recall per class, averaged over the classes"),
        MetricSpec("macro_precision", CLASSIFICATION, True, "stack", "precision per class, averaged over the classes"),
        MetricSpec("macro_recall", CLASSIFICATION, True, "stack", "recall per class, averaged over the classes seen"),
        MetricSpec("macro_f1", CLASSIFICATION, True, "stack", "F1 per class, averaged over the classes"),
        MetricSpec("roc_auc", CLASSIFICATION, True, "stack", "area under the ROC curve (one-vs-rest, averaged, for multiclass)"),
        MetricSpec("log_loss", CLASSIFICATION, False, None, "mean negative log probability of the true class"),
        MetricSpec("r2", ("regression",), True, 0.5, "coefficient of determination (1 is perfect, 0 predicts the mean)"),
        MetricSpec("rmse", ("regression",), False, None, "root mean squared error, in the target's units"),
        MetricSpec("mae", ("regression",), False, None, "mean absolute error, in the target's units"),
        MetricSpec("mape", ("regression",), False, None, "mean absolute percentage error, as a fraction (0.1 is 10%)"),
    )
}

DEFAULT_METRIC: Final[dict[str, str]] = {"binary": "accuracy", "multiclass": "accuracy", "regression": "r2"}


class MetricError(ValueError):
    """A metric, problem type and threshold that do not fit together; the message says how to fix it."""


def spec(metric: str) -> MetricSpec:
    try:
        return METRICS[metric]
    except KeyError:
        raise MetricError(f"unknown metric {metric!r}: use one of {', '.join(METRICS)}") from None


def metrics_of(problem_type: str) -> list[str]:
    return [name for name, candidate in METRICS.items() if problem_type in candidate.problem_types]


def resolve_metric(metric: str | None, problem_type: str) -> str:
    """The configured metric, or the problem type's default; MetricError when it belongs to another problem type."""
    if metric is None:
        return DEFAULT_METRIC[problem_type]
    if problem_type not in spec(metric).problem_types:
        kind = "a regression metric" if "regression" in spec(metric).problem_types else "a classification metric"
        raise MetricError(
            f"metric {metric} is {kind}, but the problem type is {problem_type}: use one of "
            f"{', '.join(metrics_of(problem_type))} (or leave metric out for {DEFAULT_METRIC[problem_type]})"
        )
    return metric


def resolve_threshold(metric: str, threshold: float | None, stack_default: float) -> float:
    """The configured threshold (checked against the metric's range), or the metric's default;
    MetricError when it is out of range, or missing for a metric without a default."""
    if threshold is not None:
        check_threshold(metric, threshold)
        return threshold
    default = spec(metric).default_threshold
    if default == "stack":
        return stack_default
    if default is None:
        why = "is in the target's units" if metric in ("rmse", "mae") else "has no default that fits every dataset"
        instead = "r2 (default threshold 0.5)" if metric in ("rmse", "mae", "mape") else "accuracy"
        raise MetricError(
            f"metric {metric} {why}, so it needs a threshold: set `threshold` in the dataset config to the largest "
            f"held-out {metric} to deploy, or use metric {instead}"
        )
    return default


SHARES: Final = ("accuracy", "balanced_accuracy", "macro_precision", "macro_recall", "macro_f1", "roc_auc")


def check_threshold(metric: str, threshold: float) -> None:
    """Shares lie in 0..1, R² is at most 1, errors and losses are at least 0."""
    if metric in SHARES and not 0 <= threshold <= 1:
        raise MetricError(f"threshold {threshold} for metric {metric} must be between 0 and 1 (a share of the test rows)")
    if metric == "r2" and threshold > 1:
        raise MetricError(f"threshold {threshold} for metric r2 must be at most 1 (a perfect fit)")
    if not spec(metric).higher_is_better and threshold < 0:
        raise MetricError(f"threshold {threshold} for metric {metric} must be at least 0 (it is the largest {metric} to deploy)")


def passes(metric: str, value: float, threshold: float) -> bool:
    """At least the threshold for a higher-is-better metric, at most it for a lower-is-better one."""
    return value >= threshold if spec(metric).higher_is_better else value <= threshold


def better_first_key(metric: str, value: float) -> float:
    """A sort key that puts the better value first (ascending sort)."""
    return -value if spec(metric).higher_is_better else value


def comparison(metric: str, value: float, threshold: float) -> str:
    """The decision in words, e.g. "held-out rmse 312.1 <= threshold 400" or "... > threshold 400: not deployed"."""
    higher = spec(metric).higher_is_better
    passed = passes(metric, value, threshold)
    sign = (">=" if passed else "<") if higher else ("<=" if passed else ">")
    text = f"held-out {metric} {format_value(value)} {sign} threshold {format_value(threshold)}"
    return text if passed else text + ": not deployed"


def format_value(value: float) -> str:
    """Four decimals (as decisions always read), one for values in the thousands and above (rmse of prices)."""
    if abs(value) < 1000:
        return f"{value:.4f}"
    return f"{value:.1f}"


def improvement(metric: str, candidate: float, champion: float) -> float:
    """How much better the candidate is than the champion, in the metric's units: candidate -
    champion for a higher-is-better metric, champion - candidate for a lower-is-better one."""
    return candidate - champion if spec(metric).higher_is_better else champion - candidate


def beats(metric: str, candidate: float, champion: float, min_improvement: float) -> bool:
    """The gate's second test: the candidate is better than the champion by at least min_improvement
    (0.0: at least as good; a negative margin tolerates that much worse)."""
    return improvement(metric, candidate, champion) >= min_improvement - 1e-12


def champion_comparison(metric: str, candidate: float, champion: float, champion_version: str, min_improvement: float) -> str:
    """The gate's second test in words."""
    better = improvement(metric, candidate, champion)
    verdict = "beats" if beats(metric, candidate, champion, min_improvement) else "does not beat"
    text = (
        f"held-out {metric} {format_value(candidate)} {verdict} the champion (version {champion_version}, "
        f"{format_value(champion)} on the same test rows) by the required {format_value(min_improvement)} "
        f"(improvement {format_value(better)})"
    )
    return text if verdict == "beats" else text + ": not deployed"
