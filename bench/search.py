#!/usr/bin/env python3
"""Hyperparameter search in local mode: random against Bayesian (Optuna's TPE, the local twin of
SageMaker's tuning job) on the same space, budget and data, measured in the same run.

For each strategy and seed, one child process (the repository's .venv) runs the whole local service
on the penguins example (predict `sex`, a binary problem) with this config:

  hyperparameters: num_round 30, max_depth int 1..10, eta log 0.005..1, min_child_weight 1..20,
                   subsample 0.5..1
  search:          {strategy: <random|bayesian>, max_runs: --runs, max_parallel: --parallel, seed}

and reports: the best validation log loss any run reached (what the search optimises), the held-out
test accuracy of the run datadrop approved (what the search is for, scored on rows no run saw), the
wall time, and seconds per run. Bayesian search is sequential by nature (each run waits for the
scores before it), so its wall time is the price of its better choices; random search plans
everything up front.

Stdlib only (the children use the venv). Usage:
  .venv/bin/python bench/search.py [--runs 16] [--parallel 2] [--seeds 1,2,3] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
from machine import describe_machine

CHILD = r"""
import json, sys, time
from pathlib import Path
from moto import mock_aws
from datadrop.local.runtime import LocalStack

strategy, runs, parallel, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
root = Path(sys.argv[5])
config = f'''target: sex
threshold: 0.5
hyperparameters:
  num_round: 30
  max_depth: {{min: 1, max: 10, type: int}}
  eta: {{min: 0.005, max: 1.0, scale: log}}
  min_child_weight: {{min: 1, max: 20}}
  subsample: {{min: 0.5, max: 1.0}}
search: {{strategy: {strategy}, max_runs: {runs}, max_parallel: {parallel}, seed: {seed}}}
'''
started = time.perf_counter()
with mock_aws(), LocalStack(template_path=root / "template.yaml") as stack:
    stack.put_config("penguins", config)
    stack.upload(root / "examples" / "penguins" / "penguins.csv", "penguins")
    stack.drain(max_steps=10_000)
    (version,) = stack.services.state.list_versions("penguins")
    records = stack.services.state.list_runs("penguins", version.version, version.attempt)
    losses = [run.training_metrics["validation:logloss"] for run in records if "validation:logloss" in run.training_metrics]
    print(json.dumps({
        "runs": len(records),
        "best_validation_logloss": min(losses),
        "approved_test_accuracy": version.best_value,
        "status": version.status.value,
        "seconds": time.perf_counter() - started,
    }))
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=16, help="max_runs of each search (16)")
    parser.add_argument("--parallel", type=int, default=2, help="max_parallel of each search (2)")
    parser.add_argument("--seeds", default="1,2,3", help="search seeds, comma-separated (1,2,3)")
    parser.add_argument("--json", action="store_true", help="print the raw numbers as JSON")
    args = parser.parse_args()
    python = ROOT / ".venv" / "bin" / "python"
    if not python.exists():
        print("bench/search.py: run tests/run or examples/demo first (it creates .venv)", file=sys.stderr)
        return 2
    seeds = [int(seed) for seed in args.seeds.split(",")]
    results: dict[str, list[dict]] = {"random": [], "bayesian": []}
    for seed in seeds:
        for strategy, rows in results.items():  # interleaved, so machine noise spreads over both
            wall = time.perf_counter()
            done = subprocess.run(
                [str(python), "-c", CHILD, strategy, str(args.runs), str(args.parallel), str(seed), str(ROOT)],
                capture_output=True,
                text=True,
                check=False,
            )
            if done.returncode != 0:
                print(done.stderr[-3000:], file=sys.stderr)
                return 1
            result = json.loads(done.stdout.strip().splitlines()[-1])
            result.update(seed=seed, wall=time.perf_counter() - wall)
            rows.append(result)
            print(f"  {strategy:8s} seed {seed}: {json.dumps(result)}", file=sys.stderr)
    machine = describe_machine(None, str(python))
    if args.json:
        print(json.dumps({"machine": machine, "runs": args.runs, "parallel": args.parallel, "results": results}, indent=2))
        return 0
    print(f"machine: {machine}")
    print(f"{args.runs} runs per search, {args.parallel} at a time, seeds {seeds}; medians over the seeds\n")
    print(f"{'strategy':10s} {'best validation logloss':>24s} {'approved test accuracy':>23s} {'wall s':>8s} {'s per run':>10s}")
    for strategy, rows in results.items():
        loss = statistics.median(row["best_validation_logloss"] for row in rows)
        accuracy = statistics.median(row["approved_test_accuracy"] for row in rows)
        wall = statistics.median(row["wall"] for row in rows)
        print(f"{strategy:10s} {loss:24.4f} {accuracy:23.4f} {wall:8.1f} {wall / args.runs:10.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
