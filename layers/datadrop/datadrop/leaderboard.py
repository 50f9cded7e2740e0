"""The leaderboard of a dataset version: its runs side by side, as a table, CSV, JSON or a plot.

Built from the state table's run records (so it also works while the runs are still training),
for `datadrop runs` and `datadrop plot`. Only the hyperparameters that differ between runs are
shown: the fixed ones say nothing about which run is better.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from datadrop.metrics import better_first_key, format_value, spec
from datadrop.state import RunRecord, StateStore, VersionRecord


class NoSuchVersion(LookupError):
    pass


@dataclass
class Leaderboard:
    dataset: str
    version: str
    status: str
    metric: str
    threshold: float | None
    best_run: int | None
    runs: list[dict[str, Any]] = field(default_factory=list)  # best first, then the rest by index

    @property
    def higher_is_better(self) -> bool:
        return spec(self.metric).higher_is_better

    @property
    def varied(self) -> list[str]:
        """The hyperparameters whose value differs between runs of one algorithm (different
        algorithms have different hyperparameters: the algorithm column tells those apart)."""
        names = sorted({name for run in self.runs for name in run["hyperparameters"]})
        by_algorithm: dict[str, list[dict[str, Any]]] = {}
        for run in self.runs:
            by_algorithm.setdefault(run.get("algorithm", "xgboost"), []).append(run)
        return [
            name
            for name in names
            if any(len({run["hyperparameters"].get(name) for run in runs}) > 1 for runs in by_algorithm.values())
        ]

    def rows(self) -> list[dict[str, Any]]:
        """One flat row per run: index, status, the varied hyperparameters, the metrics, best or not."""
        rows = []
        for run in self.runs:
            row: dict[str, Any] = {
                "run": run["run_index"],
                "algorithm": run.get("algorithm", "xgboost"),
                "status": run["status"],
                "best": run["run_index"] == self.best_run,
            }
            row.update({name: run["hyperparameters"].get(name, "") for name in self.varied})
            row.update({f"train {name}": value for name, value in sorted(run.get("training_metrics", {}).items())})
            row.update({f"test {name}": value for name, value in sorted(run.get("metrics", {}).items())})
            row["failure"] = run.get("failure_reason") or ""
            rows.append(row)
        return rows

    def as_dict(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset,
            "version": self.version,
            "status": self.status,
            "metric": self.metric,
            "higher_is_better": self.higher_is_better,
            "threshold": self.threshold,
            "best_run": self.best_run,
            "varied": self.varied,
            "runs": self.runs,
        }


def load(state: StateStore, dataset: str, version: str | None = None) -> Leaderboard:
    """The version's leaderboard (the newest version of the dataset when none is given)."""
    versions = _versions(state, dataset)
    if version is None:
        return _board(state, versions[0])
    matching = [candidate for candidate in versions if candidate.version == version]
    if not matching:
        known = ", ".join(sorted(candidate.version for candidate in versions))
        raise NoSuchVersion(f"dataset {dataset!r} has no version {version!r}; it has: {known}")
    return _board(state, matching[0])


def load_all(state: StateStore, dataset: str) -> list[Leaderboard]:
    """Every version's leaderboard, newest first: how the dataset's data and results moved."""
    return [_board(state, item) for item in _versions(state, dataset)]


def _versions(state: StateStore, dataset: str) -> list[VersionRecord]:
    """The dataset's versions, newest first; NoSuchVersion when it has none."""
    versions = sorted(state.list_versions(dataset), key=lambda candidate: candidate.created_at, reverse=True)
    if not versions:
        raise NoSuchVersion(f"dataset {dataset!r} has no versions yet: upload to incoming/{dataset}/")
    return versions


def _board(state: StateStore, item: VersionRecord) -> Leaderboard:
    metric = item.metric

    def rank(run: RunRecord) -> tuple[bool, float, int]:
        value = run.metrics.get(metric)
        return (value is None, better_first_key(metric, float(value)) if value is not None else 0.0, run.run_index)

    runs = sorted(state.list_runs(item.dataset, item.version, item.attempt), key=rank)
    return Leaderboard(
        dataset=item.dataset,
        version=item.version,
        status=item.status.value,
        metric=metric,
        threshold=item.threshold,
        best_run=item.best_run,
        runs=[run.model_dump(mode="json", exclude={"outbox", "milestones"}) for run in runs],
    )


def _cell(value: Any) -> str:
    if isinstance(value, bool):
        return "*" if value else ""
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def as_table(board: Leaderboard) -> str:
    """A plain-text table a person can read in a terminal; the best run is marked with *."""
    rows = board.rows()
    header = f"{board.dataset} version {board.version}: {board.status}, {len(rows)} run(s), ranked by held-out {board.metric}"
    notes = [] if board.higher_is_better else ["lower is better"]
    if board.threshold is not None:
        notes.append(f"threshold {format_value(board.threshold)}")
    if notes:
        header += f" ({', '.join(notes)})"
    if not rows:
        return header + "\n(no runs yet)\n"
    columns = [column for column in rows[0] if column != "failure"] + (["failure"] if any(row["failure"] for row in rows) else [])
    cells = [[_cell(row.get(column, "")) for column in columns] for row in rows]
    widths = [max(len(column), *(len(line[index]) for line in cells)) for index, column in enumerate(columns)]
    lines = [header, "  ".join(column.ljust(width) for column, width in zip(columns, widths, strict=True)).rstrip()]
    lines += ["  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip() for line in cells]
    return "\n".join(lines) + "\n"


def as_csv(*boards: Leaderboard) -> str:
    """One row per run; with several versions, each row starts with its version."""
    several = len(boards) > 1
    rows = [({"version": board.version} if several else {}) | row for board in boards for row in board.rows()]
    buffer = io.StringIO()
    columns = list(dict.fromkeys(column for row in rows for column in row))
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def plot(board: Leaderboard, path: Path) -> list[str]:
    """A PNG of the held-out metric against each varied hyperparameter (one panel each), the best
    run highlighted. Returns the hyperparameters plotted."""
    import matplotlib

    matplotlib.use("Agg")  # files only: no display needed
    import matplotlib.pyplot as plt

    scored = [run for run in board.runs if board.metric in run.get("metrics", {})]
    varied = board.varied or ["run_index"]
    figure, axes = plt.subplots(1, len(varied), figsize=(4.2 * len(varied), 3.6), squeeze=False, sharey=True)
    for axis, name in zip(axes[0], varied, strict=True):
        xs = [_as_number(run["run_index"] if name == "run_index" else run["hyperparameters"].get(name)) for run in scored]
        ys = [float(run["metrics"][board.metric]) for run in scored]
        axis.scatter(xs, ys, color="#4c72b0", alpha=0.8, label="runs")
        best = [(x, y) for run, x, y in zip(scored, xs, ys, strict=True) if run["run_index"] == board.best_run]
        if best:
            axis.scatter(*zip(*best, strict=True), color="#dd8452", s=120, marker="*", label="best", zorder=3)
        if board.threshold is not None:
            axis.axhline(board.threshold, color="#c44e52", linestyle="--", linewidth=1, label="threshold")
        axis.set_xlabel(name)
        axis.grid(alpha=0.3)
    axes[0][0].set_ylabel(f"held-out {board.metric}")
    axes[0][-1].legend(loc="lower right" if board.higher_is_better else "upper right", fontsize="small")
    figure.suptitle(f"{board.dataset} {board.version}: {len(scored)} scored run(s)")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return varied


def _as_number(value: Any) -> float | str:
    try:
        return float(value)
    except (TypeError, ValueError):
        return str(value)
