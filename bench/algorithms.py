#!/usr/bin/env python3
"""Every algorithm on the penguins example, locally: held-out metrics per algorithm for a binary
(sex), a multiclass (species) and a regression (body_mass_g) target, and each run's wall time.

One local stack per problem type runs one run group of every algorithm that supports it (the
same splits, the same test rows), with each algorithm's defaults. XGBoost, the algorithm datadrop
had alone before, is the baseline of the same run. Prints a Markdown table for the README, and the
machine it ran on (bench/machine.py).

    .venv/bin/python bench/algorithms.py [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "layers" / "datadrop"))
sys.path.insert(0, str(REPO / "bench"))

from machine import describe_machine

TARGETS = {"binary": "sex", "multiclass": "species", "regression": "body_mass_g"}
SHOWN = {
    "binary": ("accuracy", "roc_auc", "log_loss"),
    "multiclass": ("accuracy", "macro_f1", "log_loss"),
    "regression": ("r2", "rmse", "mae"),
}


def run_group(problem_type: str) -> list[dict[str, Any]]:
    from datadrop import algorithms
    from datadrop.local.runtime import LocalStack
    from moto import mock_aws

    names = [name for name in algorithms.names() if problem_type in algorithms.get(name).problem_types]
    config = (
        f"target: {TARGETS[problem_type]}\nproblem_type: {problem_type}\ndrop_columns: [year]\nthreshold: 0.1\n"
        + ("metric: r2\n" if problem_type == "regression" else "")
        + f"algorithms: [{', '.join(names)}]\nsearch: {{max_parallel: 1}}\n"
    )
    dataset = f"bench-{problem_type}"
    with mock_aws(), LocalStack(template_path=REPO / "template.yaml") as stack:
        started: dict[str, float] = {}
        seconds: dict[str, float] = {}
        submit = stack.compute._submit

        def timed(kind: str, name: str, request: dict[str, Any], create: Any) -> bool:
            started[name] = time.perf_counter()
            return submit(kind, name, request, create)  # type: ignore[arg-type]

        finish = stack.compute._finish_training

        def finished(name: str, job: Any, model_dir: Path, outcome: Any) -> None:
            seconds[name] = time.perf_counter() - started[name]
            finish(name, job, model_dir, outcome)

        stack.compute._submit = timed  # type: ignore[method-assign]
        stack.compute._finish_training = finished  # type: ignore[method-assign]
        stack.put_config(dataset, config)
        stack.upload(REPO / "examples" / "penguins" / "penguins.csv", dataset)
        stack.drain()
        (version,) = stack.services.state.list_versions(dataset)
        return [
            {
                "problem_type": problem_type,
                "algorithm": run.algorithm,
                "status": run.status.value,
                "metrics": run.metrics,
                "training_seconds": seconds.get(run.training_job),
                "best": run.run_index == version.best_run,
                "failure": run.failure_reason,
            }
            for run in stack.services.state.list_runs(dataset, version.version)
        ]


def markdown(rows: list[dict[str, Any]]) -> str:
    lines = []
    for problem_type, metrics in SHOWN.items():
        group = [row for row in rows if row["problem_type"] == problem_type]
        lines.append(f"\n{problem_type} (penguins `{TARGETS[problem_type]}`), held-out test rows:\n")
        lines.append("| algorithm | " + " | ".join(metrics) + " | training (s) |")
        lines.append("|---|" + "---:|" * (len(metrics) + 1))
        for row in group:
            name = f"**{row['algorithm']}**" if row["best"] else row["algorithm"]
            if row["status"] != "EVALUATED":
                lines.append(f"| {name} | failed: {row['failure']} |")
                continue
            cells = [f"{row['metrics'][metric]:.3f}" if row["metrics"].get(metric) is not None else "n/a" for metric in metrics]
            lines.append(f"| {name} | " + " | ".join(cells) + f" | {row['training_seconds'] or 0:.1f} |")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="print the rows as JSON instead of Markdown")
    args = parser.parse_args()
    rows: list[dict[str, Any]] = []
    for problem_type in SHOWN:
        print(f"bench: {problem_type} run group ...", file=sys.stderr, flush=True)
        rows += run_group(problem_type)
    machine = describe_machine(sys.version.split()[0], sys.executable)
    if args.json:
        print(json.dumps({"date": time.strftime("%Y-%m-%d"), "machine": machine, "rows": rows}, indent=2))
    else:
        print(
            f"date: {time.strftime('%Y-%m-%d')}; machine: {machine['cpu_model']}, {machine['cores']} cores, "
            f"{machine['memory_total_gb']} GB RAM, load {machine['load_avg']}; python {machine['python']}"
        )
        print(markdown(rows))
    return 0 if all(row["status"] == "EVALUATED" for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
