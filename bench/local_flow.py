#!/usr/bin/env python3
"""Upload to serving model in local mode: wall time and peak memory of `datadrop run`, against a
bare-hands baseline on the same file, measured in the same run on this machine.

What it runs (from the repository root, with the repository's .venv):

  datadrop  `.venv/bin/datadrop run examples/penguins/penguins.csv --dataset penguins
            --config examples/penguins/species.yaml --json`: the whole local service (moto S3,
            DynamoDB, EventBridge, SQS and SageMaker control plane in-process; the four handlers;
            SageMaker Experiments; xgboost training; batch transform of the raw test rows; a local
            HTTP endpoint and one prediction through it). Recorded: wall seconds, max RSS, exit status,
            and from the JSON summary the held-out accuracy and `seconds` (the CLI's own timer, from
            the local stack starting to the summary; it excludes interpreter start, imports and exit).
            The progress lines the CLI prints on stderr ("[   2.0s] ...") are timestamped on arrival,
            which splits the wall time into steps.
  baseline  `.venv/bin/python -c <BASELINE>`: the bare minimum a person does by hand without
            datadrop, on the same CSV and config (pandas is not installed, so polars): read the CSV
            (the config's missing_values as nulls), drop rows with a missing target, encode
            categoricals as codes, fill numeric nulls with the column medians, a seeded random
            70/15/15 split (not stratified), `xgboost.train` with the config's hyperparameters plus
            objective multi:softprob and num_class (validation split as the watch list), predict the
            test split, print the accuracy. The floor: what the algorithm alone costs. datadrop minus
            baseline is datadrop's overhead (moto, events, S3 round-trips, experiments, batch
            transform, HTTP endpoint).

Bytecode (--bytecode): by default (warm) the children write bytecode into a private, temporary
PYTHONPYCACHEPREFIX during the warm-up round, so the measured runs import compiled modules, as any
second run does on a usual machine. With `--bytecode env` they inherit this environment unchanged:
where PYTHONDONTWRITEBYTECODE=1 is set and the venv was installed without .pyc (uv's default), every
run compiles every module it imports, which costs seconds here. The table says which.

Both run under `/usr/bin/time -v` (max RSS = "Maximum resident set size" of the child; wall = the
parent's perf_counter from spawn to exit). Without a working `/usr/bin/time -v` (or with --rusage)
the script says so and falls back to the child's resource usage from os.wait4, the per-child form of
resource.getrusage(RUSAGE_CHILDREN). Runs are interleaved (datadrop, baseline, datadrop, ...) after
--warmup discarded rounds, so machine noise spreads over both rows.

Stdlib only (the children use the venv). Exit status: 0 every measured run exited 0 with an
accuracy, 1 a run failed, 2 setup error.

Usage: .venv/bin/python bench/local_flow.py [--runs N] [--warmup N] [--json] [--rusage] [--bytecode warm|env]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from machine import describe_machine, print_run_header  # bench/machine.py
from machine import fmt_or_dash as _f

REPO = Path(__file__).resolve().parent.parent
VENV_BIN = REPO / ".venv" / "bin"
DATADROP = VENV_BIN / "datadrop"
PYTHON = VENV_BIN / "python"
CSV = Path("examples/penguins/penguins.csv")
CONFIG = Path("examples/penguins/species.yaml")
DATASET = "penguins"
TIME = "/usr/bin/time"

# The baseline, run as `python -c BASELINE CSV CONFIG`. Prints one JSON line on stdout.
BASELINE = r"""
import json, sys, time
t0 = time.perf_counter()
import numpy as np
import polars as pl
import xgboost as xgb
import yaml
t1 = time.perf_counter()

csv_path, config_path = sys.argv[1], sys.argv[2]
cfg = yaml.safe_load(open(config_path))
target = cfg["target"]
na = cfg.get("missing_values") or ["", "NA"]
df = pl.read_csv(csv_path, null_values=na, infer_schema_length=None)
df = df.filter(pl.col(target).is_not_null())
features = [c for c in df.columns if c != target and c not in (cfg.get("drop_columns") or [])]
categorical = [c for c in features if df.schema[c] == pl.String]
numeric = [c for c in features if c not in categorical]
classes = sorted(df[target].unique().to_list())
df = df.with_columns(
    pl.col(target).cast(pl.Enum(classes)).to_physical().alias(target),
    *[pl.col(c).cast(pl.Categorical).to_physical() for c in categorical],   # null stays null -> NaN
    *[pl.col(c).cast(pl.Float64).fill_null(pl.col(c).median()) for c in numeric],
)
X = df.select(features).cast(pl.Float64).to_numpy()
y = df[target].to_numpy()

split = cfg.get("split") or {}
rng = np.random.default_rng(split.get("seed", 42))
order = rng.permutation(len(y))
n_test = int(round(len(y) * split.get("test", 0.15)))
n_val = int(round(len(y) * split.get("validation", 0.15)))
test, val, train = order[:n_test], order[n_test:n_test + n_val], order[n_test + n_val:]
t2 = time.perf_counter()

params = {k: v for k, v in (cfg.get("hyperparameters") or {}).items() if k != "num_round"}
params.update(objective="multi:softprob", num_class=len(classes))
num_round = int((cfg.get("hyperparameters") or {}).get("num_round", 100))
dtrain = xgb.DMatrix(X[train], label=y[train], missing=np.nan)
dval = xgb.DMatrix(X[val], label=y[val], missing=np.nan)
booster = xgb.train(params, dtrain, num_boost_round=num_round, evals=[(dval, "validation")], verbose_eval=False)
t3 = time.perf_counter()

proba = booster.predict(xgb.DMatrix(X[test], missing=np.nan))
accuracy = float((proba.argmax(axis=1) == y[test]).mean())
t4 = time.perf_counter()
print(f"accuracy {accuracy:.4f}", file=sys.stderr)
print(json.dumps({
    "accuracy": accuracy,
    "rows": {"train": len(train), "validation": len(val), "test": len(test)},
    "params": {**params, "num_round": num_round},
    "steps": {"import numpy, polars, xgboost, yaml": t1 - t0, "read CSV, clean, encode, split": t2 - t1,
              "xgboost.train": t3 - t2, "predict test split, accuracy": t4 - t3},
}))
"""

STAMP = re.compile(r"^\[\s*([0-9.]+)s\] (.*)$")


class SetupError(Exception):
    pass


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# ------------------------------------------------------------------ running one child


def time_works() -> tuple[bool, str]:
    if not Path(TIME).is_file() or not os.access(TIME, os.X_OK):
        return False, f"{TIME} is missing"
    with tempfile.NamedTemporaryFile("r", suffix=".time") as out:
        proc = subprocess.run([TIME, "-v", "-o", out.name, "true"], capture_output=True, text=True)
        if proc.returncode != 0 or "Maximum resident set size" not in Path(out.name).read_text():
            return False, f"{TIME} -v does not work here (not GNU time?)"
    return True, f"{TIME} -v"


def parse_time_v(text: str) -> dict:
    out: dict = {}
    for line in text.splitlines():
        key, _, value = line.strip().rpartition(": ")
        if key == "Maximum resident set size (kbytes)":
            out["max_rss_kb"] = int(value)
        elif key.startswith("Elapsed (wall clock) time"):
            parts = [float(p) for p in value.split(":")]
            secs = 0.0
            for p in parts:
                secs = secs * 60 + p
            out["time_elapsed_s"] = secs
        elif key == "Exit status":
            out["exit_status"] = int(value)
        elif key == "User time (seconds)":
            out["user_s"] = float(value)
        elif key == "System time (seconds)":
            out["sys_s"] = float(value)
        elif line.strip().startswith("Command terminated by signal"):
            out["signal"] = line.strip()
    return out


def run_child(cmd: list[str], use_time: bool, timeout: float, env: dict[str, str]) -> dict:
    """Run cmd in REPO; lines of stdout and stderr timestamped on arrival (seconds since spawn)."""
    lines: dict[str, list[tuple[float, str]]] = {"stdout": [], "stderr": []}
    time_file = None
    full = cmd
    if use_time:
        fd, time_file = tempfile.mkstemp(suffix=".time")
        os.close(fd)
        full = [TIME, "-v", "-o", time_file, *cmd]
    t0 = time.perf_counter()
    # Own session, so a timeout kills the whole group (time and the command under it), nothing else.
    proc = subprocess.Popen(
        full, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, bufsize=1, start_new_session=True
    )

    def kill_group() -> None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def reader(stream, name):
        for line in stream:
            lines[name].append((time.perf_counter() - t0, line.rstrip("\n")))

    threads = [
        threading.Thread(target=reader, args=(proc.stdout, "stdout"), daemon=True),
        threading.Thread(target=reader, args=(proc.stderr, "stderr"), daemon=True),
    ]
    for t in threads:
        t.start()
    sample: dict = {}
    timer = threading.Timer(timeout, kill_group)
    timer.start()
    try:
        if use_time:
            proc.wait()
            wall = time.perf_counter() - t0
        else:
            _, status, usage = os.wait4(proc.pid, 0)
            wall = time.perf_counter() - t0
            proc.returncode = os.waitstatus_to_exitcode(status)
            # Linux reports ru_maxrss in KiB, macOS in bytes.
            sample["max_rss_kb"] = usage.ru_maxrss // 1024 if sys.platform == "darwin" else usage.ru_maxrss
            sample["user_s"], sample["sys_s"] = usage.ru_utime, usage.ru_stime
            sample["exit_status"] = proc.returncode
    finally:
        timer.cancel()
    for t in threads:
        t.join(timeout=10)
    if time_file:
        sample.update(parse_time_v(Path(time_file).read_text()))
        os.unlink(time_file)
        # time's own exit status mirrors the child's; a signal shows as 128+n
        sample.setdefault("exit_status", proc.returncode)
    sample["wall_s"] = wall
    sample["returncode"] = proc.returncode
    sample["stdout"] = lines["stdout"]
    sample["stderr"] = lines["stderr"]
    return sample


# ------------------------------------------------------------------ the two subjects


def step_key(message: str) -> str:
    """A progress line without its run-specific parts (versions, ports, handler results)."""
    message = message.split(" → ", 1)[0]
    message = re.sub(r"\b[0-9a-f]{12}\b", "<version>", message)
    message = re.sub(r"127\.0\.0\.1:\d+", "127.0.0.1:<port>", message)
    message = re.sub(r"\d+\.\d{4}", "<x>", message)
    return message.strip()


def run_datadrop(use_time: bool, timeout: float, env: dict[str, str]) -> dict:
    cmd = [str(DATADROP), "run", str(CSV), "--dataset", DATASET, "--config", str(CONFIG), "--json"]
    s = run_child(cmd, use_time, timeout, env)
    text = "\n".join(line for _, line in s["stdout"])
    summary = None
    try:
        summary = json.loads(text)
    except ValueError:
        start = text.find("{")
        if start >= 0:
            try:
                summary = json.loads(text[start:])
            except ValueError:
                summary = None
    s["status"] = summary.get("status") if summary else None
    s["accuracy"] = None
    s["cli_seconds"] = summary.get("seconds") if summary else None
    if summary:
        if summary.get("metric") == "accuracy" and summary.get("value") is not None:
            s["accuracy"] = summary["value"]
        else:
            best = next((r for r in summary.get("runs", []) if r.get("run_index") == summary.get("best_run")), None)
            if best:
                s["accuracy"] = (best.get("test_metrics") or {}).get("accuracy")
    # Steps from the progress lines: stamp = CLI timer, arrival = seconds since spawn.
    progress = []
    for arrival, line in s["stderr"]:
        m = STAMP.match(line)
        if m:
            progress.append((float(m.group(1)), arrival, m.group(2)))
    steps = []
    if progress:
        offset = progress[0][1] - progress[0][0]  # spawn -> CLI timer start (interpreter + imports)
        steps.append(("start: python, imports (moto, boto3, datadrop), until the CLI timer starts", offset))
        prev = 0.0
        for stamp, _, message in progress:
            steps.append((step_key(message), stamp - prev))
            prev = stamp
        summary_at = s["stdout"][0][0] if s["stdout"] else None
        if summary_at is not None:
            steps.append(("summary: example prediction through the endpoint, JSON printed", summary_at - offset - prev))
            steps.append(("exit: endpoint stopped, moto torn down, interpreter exit", s["wall_s"] - summary_at))
    s["steps"] = steps
    s["error_tail"] = [line for _, line in s["stderr"] if not STAMP.match(line)][-5:]
    return s


def run_baseline(use_time: bool, timeout: float, env: dict[str, str]) -> dict:
    s = run_child([str(PYTHON), "-c", BASELINE, str(CSV), str(CONFIG)], use_time, timeout, env)
    out = None
    for _, line in reversed(s["stdout"]):
        try:
            out = json.loads(line)
            break
        except ValueError:
            continue
    s["accuracy"] = out.get("accuracy") if out else None
    s["rows"] = out.get("rows") if out else None
    s["params"] = out.get("params") if out else None
    s["steps"] = list(out["steps"].items()) if out else []
    if s["steps"]:
        inner = sum(v for _, v in s["steps"])
        s["steps"].append(("python start and exit (wall minus the above)", s["wall_s"] - inner))
    s["error_tail"] = [line for _, line in s["stderr"]][-5:]
    return s


# ------------------------------------------------------------------ machine


def measurement_method(force_rusage: bool, warnings: list[str]) -> tuple[bool, str]:
    """/usr/bin/time -v when it works (and --rusage is not given), else os.wait4's rusage."""
    if force_rusage:
        return False, "os.wait4 rusage of the child (--rusage)"
    use_time, how = time_works()
    if use_time:
        return True, how
    warnings.append(f"{how}: falling back to the child's rusage from os.wait4 for max RSS")
    log(f"warning: {warnings[-1]}")
    return False, "os.wait4 rusage of the child (fallback)"


def machine() -> dict:
    try:
        child_py = subprocess.run(
            [str(PYTHON), "-c", "import sys; print(sys.version.split()[0])"], capture_output=True, text=True, timeout=30
        ).stdout.strip()
    except OSError:
        child_py = None
    return describe_machine(child_py, str(PYTHON))


# ------------------------------------------------------------------ statistics


def contention() -> dict:
    """Load average and CPU pressure (PSI "some": share of time a runnable task waited for a CPU)."""
    out: dict = {}
    try:
        out["load_avg"] = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        pass
    try:
        some = Path("/proc/pressure/cpu").read_text().splitlines()[0]
        out["cpu_pressure_some"] = {k: float(v) for k, v in (kv.split("=") for kv in some.split()[1:]) if k != "total"}
    except (OSError, ValueError, IndexError):
        pass
    return out


def stats(values: list) -> dict | None:
    vals = [v for v in values if v is not None]
    if not vals:
        return None
    return {"median": statistics.median(vals), "min": min(vals), "max": max(vals), "n": len(vals)}


def summarize(samples: list[dict]) -> dict:
    out = {
        "wall_s": stats([s["wall_s"] for s in samples]),
        "max_rss_mb": stats([s["max_rss_kb"] * 1024 / 1e6 if s.get("max_rss_kb") is not None else None for s in samples]),
        "cpu_s": stats([(s["user_s"] + s["sys_s"]) if "user_s" in s and "sys_s" in s else None for s in samples]),
        "accuracy": stats([s.get("accuracy") for s in samples]),
        "exit_statuses": [s.get("exit_status", s["returncode"]) for s in samples],
    }
    if any("cli_seconds" in s for s in samples):
        out["cli_seconds"] = stats([s.get("cli_seconds") for s in samples])
    # per-step medians, in the order of the first run that has them
    order: list[str] = []
    values: dict[str, list[float]] = {}
    for s in samples:
        for key, v in s["steps"]:
            if key not in values:
                order.append(key)
                values[key] = []
            if v is not None:
                values[key].append(v)
    out["steps"] = [{"step": k, **(stats(values[k]) or {})} for k in order]
    return out


# ------------------------------------------------------------------ main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python bench/local_flow.py",
        description=(
            "Time from upload to a serving model in local mode (`datadrop run` on examples/penguins) and its peak "
            "memory, against a baseline in the same run: a bare polars + xgboost script doing the same cleaning, "
            "split, training and held-out scoring by hand. Both under /usr/bin/time -v; runs interleaved."
        ),
        epilog="Exit status: 0 every measured run succeeded, 1 a run failed, 2 setup error.",
    )
    parser.add_argument("--runs", type=int, default=3, help="measured runs of each (default 3)")
    parser.add_argument(
        "--warmup", type=int, default=1, help="discarded rounds of both first, for the OS page cache (default 1; 0 for none)"
    )
    parser.add_argument("--json", action="store_true", help="print the numbers as JSON instead of the table")
    parser.add_argument(
        "--rusage", action="store_true", help="do not use /usr/bin/time -v; take max RSS from os.wait4 (the fallback)"
    )
    parser.add_argument("--timeout", type=float, default=600, help="seconds before a run is killed (default 600)")
    parser.add_argument(
        "--bytecode",
        choices=["warm", "env"],
        default="warm",
        help="warm (default): the children may write bytecode, into a private PYTHONPYCACHEPREFIX filled by the "
        "warm-up round, so measured runs import compiled modules, as a second `datadrop run` does on a usual machine; "
        "env: the children get this environment as it is (with PYTHONDONTWRITEBYTECODE=1 and a venv installed "
        "without .pyc, every run compiles every module it imports)",
    )
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    if args.warmup < 0:
        parser.error("--warmup must be 0 or more")
    if args.bytecode == "warm" and args.warmup < 1:
        parser.error("--bytecode warm needs --warmup 1 or more (the warm-up round compiles the bytecode)")

    try:
        for path, what in ((DATADROP, "the datadrop CLI"), (PYTHON, "the venv python")):
            if not (path.is_file() and os.access(path, os.X_OK)):
                raise SetupError(f"{path} ({what}) not found: run examples/demo or tests/run once to create .venv")
        for path in (CSV, CONFIG):
            if not (REPO / path).is_file():
                raise SetupError(f"{REPO / path} not found")
    except SetupError as exc:
        log(f"error: {exc}")
        return 2

    warnings: list[str] = []
    use_time, method = measurement_method(args.rusage, warnings)

    started = dt.datetime.now(dt.UTC)
    info = machine()
    env = dict(os.environ)
    pycache = None
    venv_pyc = sum(1 for _ in (REPO / ".venv").glob("lib/python*/site-packages/**/*.pyc"))
    venv_py = sum(1 for _ in (REPO / ".venv").glob("lib/python*/site-packages/**/*.py"))
    if args.bytecode == "warm":
        pycache = tempfile.mkdtemp(prefix="datadrop-bench-pycache.")
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = pycache
        bytecode = (
            "warm: children compile into a private PYTHONPYCACHEPREFIX in the warm-up round and import "
            "bytecode in the measured runs"
        )
    else:
        bytecode = (
            f"env: as inherited (PYTHONDONTWRITEBYTECODE={os.environ.get('PYTHONDONTWRITEBYTECODE', 'unset')}, "
            f"PYTHONPYCACHEPREFIX={os.environ.get('PYTHONPYCACHEPREFIX', 'unset')})"
        )
    bytecode += f"; the venv's site-packages hold {venv_pyc} .pyc for {venv_py} .py files"
    datadrop_samples: list[dict] = []
    baseline_samples: list[dict] = []
    total = args.warmup + args.runs
    try:
        for i in range(total):
            warm = i < args.warmup
            label = f"warm-up {i + 1}/{args.warmup}" if warm else f"run {i - args.warmup + 1}/{args.runs}"
            d = run_datadrop(use_time, args.timeout, env)
            b = run_baseline(use_time, args.timeout, env)
            log(
                f"{label}: datadrop {d['wall_s']:.2f} s, {d.get('max_rss_kb', 0) * 1024 / 1e6:.0f} MB, exit "
                f"{d['returncode']}, accuracy {d['accuracy']}; baseline {b['wall_s']:.2f} s, "
                f"{b.get('max_rss_kb', 0) * 1024 / 1e6:.0f} MB, exit {b['returncode']}, accuracy {b['accuracy']}"
                + (" (discarded)" if warm else "")
            )
            for s, name in ((d, "datadrop"), (b, "baseline")):
                if s["returncode"] != 0 or s.get("accuracy") is None:
                    tail = "\n    ".join(s["error_tail"])
                    log(f"  {name} failed (exit {s['returncode']}):\n    {tail}")
            if not warm:
                datadrop_samples.append(d)
                baseline_samples.append(b)
    finally:
        if pycache:
            shutil.rmtree(pycache, ignore_errors=True)
    info["after"] = contention()

    dd, bl = summarize(datadrop_samples), summarize(baseline_samples)
    overhead = {
        "wall_s": dd["wall_s"]["median"] - bl["wall_s"]["median"],
        "wall_ratio": dd["wall_s"]["median"] / bl["wall_s"]["median"] if bl["wall_s"]["median"] else None,
        "max_rss_mb": (dd["max_rss_mb"]["median"] - bl["max_rss_mb"]["median"])
        if dd["max_rss_mb"] and bl["max_rss_mb"]
        else None,
        "max_rss_ratio": (dd["max_rss_mb"]["median"] / bl["max_rss_mb"]["median"])
        if dd["max_rss_mb"] and bl["max_rss_mb"]
        else None,
        # Noise on a shared machine only adds time, so the fastest runs are the best estimate of the cost itself.
        "wall_s_of_minimums": dd["wall_s"]["min"] - bl["wall_s"]["min"],
    }
    failed = any(s["returncode"] != 0 or s.get("accuracy") is None for s in datadrop_samples + baseline_samples)
    b0 = next((s for s in baseline_samples if s.get("params")), {})
    result = {
        "date": started.isoformat(timespec="seconds"),
        "machine": info,
        "runs": args.runs,
        "warmup": args.warmup,
        "method": method,
        "bytecode": bytecode,
        "commands": {
            "datadrop": f".venv/bin/datadrop run {CSV} --dataset {DATASET} --config {CONFIG} --json",
            "baseline": f".venv/bin/python -c <BASELINE in bench/local_flow.py> {CSV} {CONFIG}",
        },
        "baseline_params": b0.get("params"),
        "baseline_rows": b0.get("rows"),
        "datadrop": dd,
        "baseline": bl,
        "overhead": overhead,
        "samples": {
            name: [
                {
                    k: s.get(k)
                    for k in (
                        "wall_s",
                        "max_rss_kb",
                        "time_elapsed_s",
                        "user_s",
                        "sys_s",
                        "exit_status",
                        "accuracy",
                        "cli_seconds",
                        "status",
                    )
                }
                | {"steps": [{"step": k, "s": v} for k, v in s["steps"]]}
                for s in samples
            ]
            for name, samples in (("datadrop", datadrop_samples), ("baseline", baseline_samples))
        },
        "warnings": warnings,
        "passed": not failed,
    }
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print_table(result)
    return 1 if failed else 0


def print_table(r: dict) -> None:
    print()
    print(
        f"datadrop local flow, upload to serving model: {r['runs']} measured runs each "
        f"(+{r['warmup']} discarded warm-up), interleaved; measured with {r['method']}"
    )
    print_run_header(r)
    print()
    widths = (26, 7, 7, 7, 7, 7, 7, 7, 7, 7, 6, 6)
    fmt = "  ".join(f"{{:<{w}}}" if i == 0 else f"{{:>{w}}}" for i, w in enumerate(widths))
    print(fmt.format("", "wall", "(s)", "", "max RSS", "(MB)", "", "cpu (s)", "accuracy", "", "", "exit"))
    print(fmt.format("", "median", "min", "max", "median", "min", "max", "median", "median", "min", "max", ""))
    print(fmt.format(*("-" * w for w in widths)))
    for name, label in (("datadrop", "datadrop run --json"), ("baseline", "baseline (polars+xgboost)")):
        row = r[name]
        w, rss, cpu, acc = row["wall_s"], row["max_rss_mb"] or {}, row["cpu_s"] or {}, row["accuracy"] or {}
        print(
            fmt.format(
                label,
                _f(w["median"], ".2f"),
                _f(w["min"], ".2f"),
                _f(w["max"], ".2f"),
                _f(rss.get("median"), ".0f"),
                _f(rss.get("min"), ".0f"),
                _f(rss.get("max"), ".0f"),
                _f(cpu.get("median"), ".2f"),
                _f(acc.get("median"), ".4f"),
                _f(acc.get("min"), ".4f"),
                _f(acc.get("max"), ".4f"),
                ",".join(map(str, row["exit_statuses"])),
            )
        )
    o = r["overhead"]
    print(fmt.format(*("-" * w for w in widths)))
    print(
        f"overhead (datadrop - baseline, medians): wall +{o['wall_s']:.2f} s ({_f(o['wall_ratio'], '.1f')}x the "
        f"baseline), max RSS +{_f(o['max_rss_mb'], '.0f')} MB ({_f(o['max_rss_ratio'], '.1f')}x); "
        f"of the minimums (noise only adds): wall +{o['wall_s_of_minimums']:.2f} s"
    )
    cs = r["datadrop"].get("cli_seconds")
    if cs:
        print(
            f"datadrop's own `seconds` (CLI timer, local stack start -> summary; no interpreter start, imports "
            f"or exit): median {cs['median']:.1f}, min {cs['min']:.1f}, max {cs['max']:.1f}"
        )
    for name, title in (
        (
            "datadrop",
            (
                "where datadrop's wall time goes (median per step over the measured runs; "
                "steps end at the progress line the CLI prints)"
            ),
        ),
        ("baseline", "where the baseline's wall time goes (median per step, timed inside the child)"),
    ):
        steps = r[name]["steps"]
        if not steps:
            continue
        print()
        print(title + ":")
        for st in steps:
            if "median" in st:
                print(f"  {st['median']:7.2f} s  {st['step']}")
    p = r.get("baseline_params")
    if p:
        print()
        print(
            f"baseline hyperparameters: {json.dumps(p, sort_keys=True)}; rows {json.dumps(r['baseline_rows'])} "
            "(random split, not stratified; datadrop adds its defaults, e.g. eta 0.2, subsample 0.9)"
        )
    print(
        "wall = spawn to exit as seen by this script; max RSS = the child's peak resident set (MB = 10^6 bytes); "
        "cpu = user + sys."
    )
    for w in r["warnings"]:
        print(f"warning: {w}")
    print()
    print("PASS: every run exited 0 with an accuracy" if r["passed"] else "FAIL: a run failed (details above on stderr)")


if __name__ == "__main__":
    sys.exit(main())
