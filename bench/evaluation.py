"""Scoring a large test split: the evaluate step's streaming scorer against loading everything.

Generates a batch transform output (JSON Lines, one `{"label", "probabilities"}` per row, or
`{"value"}` for regression) and its test labels (one JSON list) of `--rows` rows in a temporary
directory, then scores them in child processes under `/usr/bin/time -v`, one mode at a time:
- `streaming`: what the evaluate step runs (`datadrop.scoring`: the files read in 1 MB chunks, as
  `ObjectStore.stream_uri` reads S3, every metric of the report including ROC AUC);
- `load-all` (the baseline): the whole output read and `json.loads`-ed into a list of dicts and the
  labels `json.load`-ed into a list, then scored from those lists (what the evaluate step did before).
Prints wall time and peak RSS (maximum resident set size) per mode, and the machine.

    .venv/bin/python bench/evaluation.py --rows 1000000
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import describe_machine

REPO = Path(__file__).resolve().parents[1]
CLASSES = ["Adelie", "Chinstrap", "Gentoo"]

CHILD = r"""
import json, sys, time
from datadrop import scoring
mode, problem, labels_path, output_path = sys.argv[1:5]
classes = json.loads(sys.argv[5])

def chunks(path):
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            yield chunk

started = time.perf_counter()
if mode == "streaming":
    result = scoring.score_stream(problem, classes, scoring.iter_json_array(chunks(labels_path)),
                                  scoring.iter_json_lines(chunks(output_path)))
else:
    with open(output_path, "rb") as handle:
        predictions = [json.loads(line) for line in handle.read().decode().splitlines() if line.strip()]
    with open(labels_path, "rb") as handle:
        truths = json.load(handle)
    result = scoring.score_stream(problem, classes, truths, predictions)
print(json.dumps({"seconds": time.perf_counter() - started, "metrics": scoring.scalars(result, problem)}))
"""


def generate(directory: Path, rows: int, problem: str, seed: int) -> tuple[Path, Path]:
    rng = random.Random(seed)
    labels_path, output_path = directory / "labels.json", directory / "test.csv.out"
    with labels_path.open("w") as labels, output_path.open("w") as output:
        labels.write("[\n")
        for row in range(rows):
            if problem == "regression":
                truth = rng.uniform(2500, 6500)
                labels.write(f"  {truth!r}")
                output.write(json.dumps({"value": truth + rng.gauss(0, 300)}) + "\n")
            else:
                truth_label = rng.choice(CLASSES)
                weights = [rng.random() + (1.0 if label == truth_label and rng.random() < 0.8 else 0.0) for label in CLASSES]
                total = sum(weights)
                probabilities = {label: weight / total for label, weight in zip(CLASSES, weights)}
                labels.write("  " + json.dumps(truth_label))
                best = max(probabilities, key=lambda label: probabilities[label])
                output.write(json.dumps({"label": best, "probabilities": probabilities}) + "\n")
            labels.write(",\n" if row < rows - 1 else "\n")
        labels.write("]\n")
    return labels_path, output_path


def measure(mode: str, problem: str, labels: Path, output: Path) -> dict:
    environment = {**os.environ, "PYTHONPATH": str(REPO / "layers" / "datadrop")}
    command = ["/usr/bin/time", "-v", sys.executable, "-c", CHILD, mode, problem, str(labels), str(output), json.dumps(CLASSES)]
    done = subprocess.run(command, capture_output=True, text=True, env=environment, check=True)
    peak_kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", done.stderr).group(1))  # type: ignore[union-attr]
    wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (\S+)", done.stderr).group(1)  # type: ignore[union-attr]
    parts = [float(part) for part in wall.split(":")]
    wall_seconds = sum(part * 60**power for power, part in enumerate(reversed(parts)))
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    return {"mode": mode, "wall_seconds": wall_seconds, "scoring_seconds": answer["seconds"],
            "peak_rss_mb": peak_kb / 1024, "metrics": answer["metrics"]}  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--problem", choices=["multiclass", "regression"], default="multiclass")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", action="store_true", help="print the raw numbers as JSON")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="datadrop-bench-evaluation-") as temporary:
        labels, output = generate(Path(temporary), args.rows, args.problem, args.seed)
        sizes = {"labels_mb": labels.stat().st_size / 2**20, "output_mb": output.stat().st_size / 2**20}
        results = [measure(mode, args.problem, labels, output) for mode in ("streaming", "load-all")]
    if results[0]["metrics"] != results[1]["metrics"]:
        print("the two modes disagree on the metrics:", results, file=sys.stderr)
        return 1
    machine = describe_machine(sys.version.split()[0], sys.executable)
    if args.json:
        print(json.dumps({"rows": args.rows, "problem": args.problem, **sizes, "results": results, "machine": machine}, indent=2))
        return 0
    print(
        f"{args.rows:,} test rows ({args.problem}): transform output {sizes['output_mb']:.0f} MB, labels {sizes['labels_mb']:.0f} MB"
    )
    print(f"{'mode':<10} {'wall s':>8} {'scoring s':>10} {'peak RSS MB':>12}")
    for result in results:
        print(
            f"{result['mode']:<10} {result['wall_seconds']:>8.1f} {result['scoring_seconds']:>10.1f} {result['peak_rss_mb']:>12.0f}"
        )
    print("metrics (identical in both modes):", ", ".join(f"{k} {v:.4f}" for k, v in results[0]["metrics"].items()))
    print(f"date: {datetime.now(UTC).isoformat(timespec='seconds')}")
    print(
        f"machine: {machine['platform']}; {machine['cpu_model']}; {machine['usable_cores']} cores usable; "
        f"{machine['memory_total_gb']} GB RAM; load avg {machine['load_avg']}; Python {machine['python']}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
