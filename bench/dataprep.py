#!/usr/bin/env python3
"""The prepare step on large, dirty CSVs: time and peak memory of `datadrop.dataprep.prepare`,
against the same cleaning in plain pandas and against the floor of any CSV-in/CSV-out step, all
measured in the same run on this machine; and prepare's time per million cells on wide files.

Input: for every size in --sizes (MB = 10^6 bytes), a synthetic CSV of about that size, generated
once by a child (numpy + polars, deterministic for --seed) and cached in bench/.data/ (git-ignored):
a header and 10 columns shaped like the penguins example, about 58 bytes a row (17,200 rows per MB).
Dirty on purpose: a 3-class target `species` (0.1 % `NA`, so those rows are
dropped), numeric columns with `NA`/`n/a`/`NaN` (1-2 %) and a few non-numbers ("unknown"),
categorical columns with "" / `NA` / `?` / `null` (3-5 %), values padded with spaces (1-2 %), a
header name with a trailing space, and 0.2 % of the rows exact copies of other rows.

What it runs, per size, alternately (datadrop, floor, pandas, datadrop, ...), with the repository's venv:

  datadrop  `.venv/bin/python -c <DATADROP> FILE`: imports datadrop.config and datadrop.dataprep
            (so polars, pydantic, PyYAML), runs `prepare(FILE, parse_config("target: species", "bench"))`
            on the file's path, as the prepare step does after downloading the upload to /tmp. Inside the
            child: seconds for imports and prepare (and prepare's own steps, `dataprep.last_timings`),
            peak RSS so far after each (getrusage), and the rows of the quality report.
  pandas    `.venv/bin/python bench/pandas_prepare.py FILE species`: the same cleaning in plain pandas
            (strip, junk tokens missing, drop missing targets and exact duplicates, stratified split,
            median imputation, category codes fitted on train, label-first headerless CSVs); see its
            docstring. It runs --pandas-runs times per size (default 1: it is slow).
  floor     `.venv/bin/python -c <FLOOR> FILE`: `polars.read_csv(FILE, infer_schema=False)` and
            `write_csv` of the frame into a BytesIO: the engine's own parse and write, the floor of any
            step that reads a CSV and writes one, with no cleaning, no split and no encoding.

All run under `/usr/bin/time -v` (max RSS = its "Maximum resident set size"; wall = spawn to exit
as seen by this script). Without a working `/usr/bin/time -v` (or with --rusage) max RSS comes from
os.wait4. Before a size is measured its file is read once, so every subject finds it in the page
cache. MB/s = input MB / median wall. Targets, judged at sizes of 1000 MB and more: datadrop at least
10x faster than pandas, within 2x the floor, and a peak RSS under 2.5x the file size.

Wide files (--wide 1000,5000,20000): CSVs of --wide-rows rows (default 1000) and that many feature
columns (a third numeric with decimals, a third categorical with 20 levels, a third integers; 2 %
`NA`) plus a 3-class target, cached in bench/.data/ too; datadrop's prepare step (the seconds
inside the child) per million cells, which stays flat when the time is linear in the cells.

Bytecode (--bytecode): by default (warm) a first child imports everything into a private
PYTHONPYCACHEPREFIX, so the measured children import compiled modules; `env` passes the
environment as it is (PYTHONDONTWRITEBYTECODE=1 and a venv without .pyc compile on every run).

The projection for Lambda fits a straight line, peak RSS = fixed + k * input MB, through the
median peaks of the sizes measured (with one size: fixed = the child's peak after imports), and
solves it for 3008 MB and 10240 MB (Lambda's MB are MiB). It is an extrapolation: the handler
also holds boto3 and the S3 transfer buffers, which this does not measure.

Stdlib only (the children use the venv). Exit status: 0 every measured run exited 0 with its
result, 1 a run failed, 2 setup error (no venv, generation failed).

Usage: .venv/bin/python bench/dataprep.py [--sizes 100,1000] [--runs N] [--pandas-runs N] [--wide 1000,5000,20000]
       [--json] [--rusage] [--bytecode warm|env]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from local_flow import contention, machine, measurement_method, run_child, stats  # bench/local_flow.py (shared helpers)
from machine import fmt_or_dash as _f  # bench/machine.py
from machine import print_run_header

REPO = Path(__file__).resolve().parent.parent
DATA_DIR = REPO / "bench" / ".data"
PYTHON = REPO / ".venv" / "bin" / "python"
TARGET = "species"
GENERATOR_VERSION = 1  # part of the cached file's name: bump when GENERATE changes its output
SUBJECTS = ("datadrop", "floor", "pandas")
PANDAS_SCRIPT = REPO / "bench" / "pandas_prepare.py"
TARGETS_FROM_MB = 1000  # the issue's targets are judged at 1 GB and more
TARGET_PANDAS_RATIO = 10.0  # datadrop at least this many times faster than pandas
TARGET_FLOOR_RATIO = 2.0  # datadrop's wall within this multiple of the floor's
TARGET_RSS_RATIO = 2.5  # datadrop's peak RSS under this multiple of the file size
LAMBDA_LIMITS_MIB = (3008, 10240)
LAMBDA_TIMEOUT_S = 900

# The generator, run as `python -c GENERATE PATH BYTES SEED`. Writes PATH, prints one JSON line.
GENERATE = r"""
import json, os, sys, time
import numpy as np
import polars as pl

path, target_bytes, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
CHUNK = 1_000_000
SPECIES = pl.Series(["Adelie", "Chinstrap", "Gentoo"])
ISLANDS = pl.Series(["Biscoe", "Dream", "Torgersen"])
SEXES = pl.Series(["female", "male"])
TAGS = pl.Series([f"tag-{i:02d}" for i in range(40)])
COLUMNS = ["species", "island", "bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g ",
           "sex", "year", "tag", "score"]


def chunk(stream, n):
    # Every chunk has its own generator (seed, chunk number): the file depends only on seed and size.
    rng = np.random.default_rng([seed, stream])
    y = rng.choice(3, size=n, p=[0.45, 0.2, 0.35])

    def mask(share):
        return pl.Series(rng.random(n) < share)

    def number(means, sd, decimals):
        s = pl.Series(np.asarray(means, dtype=np.float64)[y] + rng.normal(0.0, sd, n))
        return s.round(decimals).cast(pl.String) if decimals else s.round(0).cast(pl.Int64).cast(pl.String)

    def dirty(s, na_share, pad_share, tokens=("NA",)):
        token = pl.Series(list(tokens)).gather(rng.integers(0, len(tokens), n))
        padded = pl.concat_str([pl.lit(" "), pl.lit(s), pl.lit("  ")])
        return pl.select(
            pl.when(mask(na_share)).then(pl.lit(token)).when(mask(pad_share)).then(padded).otherwise(pl.lit(s))
        ).to_series()

    score = pl.Series(rng.lognormal(1.0, 0.8, n) * (1 + y)).round(3).cast(pl.String)
    score = pl.select(pl.when(mask(0.0002)).then(pl.lit("unknown")).otherwise(pl.lit(score))).to_series()
    columns = [
        dirty(SPECIES.gather(y), 0.001, 0.01),
        dirty(ISLANDS.gather((y + rng.choice(4, n, p=[0.6, 0.2, 0.1, 0.1])) % 3), 0.03, 0.02, ("", "NA")),
        dirty(number([38.8, 48.8, 47.5], 3.0, 1), 0.02, 0.02),
        dirty(number([18.3, 18.4, 15.0], 1.2, 1), 0.02, 0.0),
        dirty(number([190, 196, 217], 7.0, 0), 0.01, 0.0),
        dirty(number([3700, 3733, 5076], 450.0, 0), 0.01, 0.0, ("NA", "n/a")),
        dirty(SEXES.gather(rng.integers(0, 2, n)), 0.03, 0.02, ("", "NA", "?")),
        pl.Series(2007 + rng.integers(0, 3, n)).cast(pl.String),
        dirty(TAGS.gather(rng.integers(0, len(TAGS), n)), 0.05, 0.01, ("", "null")),
        dirty(score, 0.01, 0.0, ("NA", "NaN")),
    ]
    frame = pl.DataFrame(dict(zip(COLUMNS, columns)))
    k = n // 500  # 0.2 % of the rows become exact copies of other rows of the chunk
    picked = rng.choice(n, 2 * k, replace=False)
    take = np.arange(n)
    take[picked[k:]] = picked[:k]
    return frame[take], k


t0 = time.perf_counter()
probe, _ = chunk(1 << 30, 20_000)
per_row = len(probe.write_csv(include_header=False)) / 20_000
rows = max(100, round(target_bytes / per_row))
duplicates = 0
with open(path, "wb") as out:
    for index, start in enumerate(range(0, rows, CHUNK)):
        frame, k = chunk(index, min(CHUNK, rows - start))
        frame.write_csv(out, include_header=index == 0)
        duplicates += k
print(json.dumps({"rows": rows, "bytes": os.path.getsize(path), "duplicates_injected": duplicates,
                  "columns": len(COLUMNS), "seconds": time.perf_counter() - t0}))
"""
# The wide-file generator, run as `python -c GENERATE_WIDE PATH ROWS COLUMNS SEED`. Writes PATH, prints one JSON line.
GENERATE_WIDE = r"""
import json, os, sys, time
import numpy as np
import polars as pl

path, rows, columns, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
t0 = time.perf_counter()
rng = np.random.default_rng([seed, columns])
y = rng.choice(3, size=rows, p=[0.5, 0.3, 0.2])
LEVELS = np.array([f"level-{i:02d}" for i in range(20)])
data = {"label": np.array(["a", "b", "c"])[y]}
for j in range(columns):
    kind = j % 3
    if kind == 0:
        values = np.round(rng.normal(y * 0.5, 1.0), 2).astype(str)
    elif kind == 1:
        values = LEVELS[(y * 3 + rng.integers(0, 14, rows)) % 20]
    else:
        values = rng.integers(0, 1000, rows).astype(str)
    values = np.where(rng.random(rows) < 0.02, "NA", values)
    data[f"f{j:05d}"] = values
pl.DataFrame(data).write_csv(path)
print(json.dumps({"rows": rows, "columns": columns + 1, "bytes": os.path.getsize(path), "seconds": time.perf_counter() - t0}))
"""


# datadrop, run as `python -c DATADROP PATH TARGET`. Prints one JSON line on stdout.
DATADROP = r"""
import json, resource, sys, time
def peak_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e6
t0 = time.perf_counter()
from datadrop import dataprep
from datadrop.config import parse_config
t1 = time.perf_counter()
rss_imports = peak_mb()
prepared = dataprep.prepare(sys.argv[1], parse_config(f"target: {sys.argv[2]}", "bench"))
t2 = time.perf_counter()
rss_prepare = peak_mb()
profile = prepared.report.model_dump()
print(json.dumps({
    "rows": {**profile["rows"], **{name: split["rows"] for name, split in profile["splits"].items()}},
    "output_bytes": len(prepared.train_csv) + len(prepared.validation_csv) + len(prepared.test_rows_jsonl),
    "features": len(prepared.recipe["features"]),
    "steps": {"import": t1 - t0, "prepare": t2 - t1},
    "prepare_steps": dataprep.last_timings,
    "counts": dataprep.last_counts,
    "peak_rss_mb": {"after import": rss_imports, "after prepare": rss_prepare},
}))
"""

# The floor, run as `python -c FLOOR PATH`. Prints one JSON line on stdout.
FLOOR = r"""
import io, json, resource, sys, time
def peak_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e6
t0 = time.perf_counter()
import polars as pl
t1 = time.perf_counter()
rss_imports = peak_mb()
frame = pl.read_csv(sys.argv[1], infer_schema=False)
t2 = time.perf_counter()
rss_read = peak_mb()
buffer = io.BytesIO()
frame.write_csv(buffer)
out = buffer.getvalue()
t3 = time.perf_counter()
rss_write = peak_mb()
print(json.dumps({
    "rows": {"read": frame.height},
    "output_bytes": len(out),
    "steps": {"import": t1 - t0, "read_csv": t2 - t1, "write_csv": t3 - t2},
    "peak_rss_mb": {"after import": rss_imports, "after read_csv": rss_read, "after write_csv": rss_write},
}))
"""


class SetupError(Exception):
    pass


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# ------------------------------------------------------------------ input files


def size_label(size_mb: float) -> str:
    return f"{size_mb:g}"


def dataset(size_mb: float, seed: int, env: dict[str, str], timeout: float) -> dict:
    """The cached CSV of about size_mb MB for seed (generated by a child if missing), and what it holds."""
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    stem = f"dirty-{size_label(size_mb)}MB-seed{seed}-v{GENERATOR_VERSION}"
    path, meta_path = DATA_DIR / f"{stem}.csv", DATA_DIR / f"{stem}.json"
    if path.is_file() and meta_path.is_file():
        meta = json.loads(meta_path.read_text())
        if meta.get("bytes") == path.stat().st_size:
            return {**meta, "path": str(path), "generated_now": False}
    log(f"generating {path.relative_to(REPO)} (about {size_mb:g} MB, seed {seed}) ...")
    tmp = path.with_suffix(".csv.tmp")
    try:
        proc = subprocess.run(
            [str(PYTHON), "-c", GENERATE, str(tmp), str(int(size_mb * 1e6)), str(seed)],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired as exc:
        tmp.unlink(missing_ok=True)
        raise SetupError(f"generating {path.name} took more than {timeout:.0f} s") from exc
    if proc.returncode != 0:
        tmp.unlink(missing_ok=True)
        raise SetupError(f"generating {path.name} failed (exit {proc.returncode}): {proc.stderr.strip()[-800:]}")
    meta = json.loads(proc.stdout.strip().splitlines()[-1])
    meta["seed"] = seed
    tmp.replace(path)
    meta_path.write_text(json.dumps(meta, indent=2) + "\n")
    log(f"  {meta['rows']:,} rows, {meta['bytes'] / 1e6:.1f} MB in {meta['seconds']:.1f} s")
    return {**meta, "path": str(path), "generated_now": True}


def warm_page_cache(path: str) -> None:
    with open(path, "rb") as f:
        while f.read(1 << 24):
            pass


# ------------------------------------------------------------------ the two subjects


def last_json(sample: dict) -> dict | None:
    for _, line in reversed(sample["stdout"]):
        try:
            out = json.loads(line)
        except ValueError:
            continue
        if isinstance(out, dict):
            return out
    return None


def run_subject(name: str, path: str, use_time: bool, timeout: float, env: dict[str, str], target: str = TARGET) -> dict:
    command = {
        "datadrop": ["-c", DATADROP, path, target],
        "floor": ["-c", FLOOR, path],
        "pandas": [str(PANDAS_SCRIPT), path, target],
    }[name]
    s = run_child([str(PYTHON), *command], use_time, timeout, env)
    out = last_json(s)
    s["result"] = out
    s["steps"] = list(out["steps"].items()) if out else []
    if s["steps"]:
        s["steps"].append(("python start and exit (wall minus the above)", s["wall_s"] - sum(v for _, v in s["steps"])))
    s["ok"] = s["returncode"] == 0 and out is not None
    s["error_tail"] = [line for _, line in s["stderr"]][-5:]
    return s


# ------------------------------------------------------------------ statistics


def summarize(samples: list[dict], input_mb: float) -> dict:
    rss = [s["max_rss_kb"] * 1024 / 1e6 if s.get("max_rss_kb") is not None else None for s in samples]
    out = {
        "wall_s": stats([s["wall_s"] for s in samples]),
        "max_rss_mb": stats(rss),
        "max_rss_per_input_mb": stats([r / input_mb if r is not None else None for r in rss]),
        "cpu_s": stats([(s["user_s"] + s["sys_s"]) if "user_s" in s and "sys_s" in s else None for s in samples]),
        "exit_statuses": [s.get("exit_status", s["returncode"]) for s in samples],
        "steps": [],
        "peak_rss_mb_inside": [],
        "prepare_steps": [],
    }
    for key, getter in (
        ("steps", lambda s: s["steps"]),
        ("peak_rss_mb_inside", lambda s: list(((s["result"] or {}).get("peak_rss_mb") or {}).items())),
        ("prepare_steps", lambda s: list(((s["result"] or {}).get("prepare_steps") or {}).items())),
    ):
        order: list[str] = []
        values: dict[str, list[float]] = {}
        for s in samples:
            for step, v in getter(s):
                if step not in values:
                    order.append(step)
                    values[step] = []
                values[step].append(v)
        out[key] = [{"step": k, **(stats(values[k]) or {})} for k in order]
    first = next((s["result"] for s in samples if s["result"]), None) or {}
    out["rows"] = first.get("rows")
    out["output_bytes"] = first.get("output_bytes")
    return out


def ratios(summaries: dict[str, dict], input_mb: float) -> dict:
    """The issue's three numbers: pandas / datadrop wall, datadrop / floor wall, datadrop's peak RSS / input."""

    def median(name: str, key: str) -> float | None:
        return (summaries[name][key] or {}).get("median")

    dd_wall, pandas_wall, floor_wall = median("datadrop", "wall_s"), median("pandas", "wall_s"), median("floor", "wall_s")
    dd_rss = median("datadrop", "max_rss_mb")
    return {
        "pandas_over_datadrop": pandas_wall / dd_wall if pandas_wall and dd_wall else None,
        "datadrop_over_floor": dd_wall / floor_wall if dd_wall and floor_wall else None,
        "datadrop_rss_over_input": dd_rss / input_mb if dd_rss else None,
        "floor_rss_over_input": (median("floor", "max_rss_mb") or 0) / input_mb or None,
        "pandas_rss_over_input": (median("pandas", "max_rss_mb") or 0) / input_mb or None,
    }


def wide_dataset(columns: int, rows: int, seed: int, env: dict[str, str], timeout: float) -> dict:
    """The cached wide CSV (generated by a child if missing)."""
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    stem = f"wide-{columns}x{rows}-seed{seed}-v{GENERATOR_VERSION}"
    path, meta_path = DATA_DIR / f"{stem}.csv", DATA_DIR / f"{stem}.json"
    if path.is_file() and meta_path.is_file():
        meta = json.loads(meta_path.read_text())
        if meta.get("bytes") == path.stat().st_size:
            return {**meta, "path": str(path)}
    log(f"generating {path.relative_to(REPO)} ({columns} columns x {rows} rows) ...")
    tmp = path.with_suffix(".csv.tmp")
    proc = subprocess.run(
        [str(PYTHON), "-c", GENERATE_WIDE, str(tmp), str(rows), str(columns), str(seed)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if proc.returncode != 0:
        tmp.unlink(missing_ok=True)
        raise SetupError(f"generating {path.name} failed (exit {proc.returncode}): {proc.stderr.strip()[-800:]}")
    meta = json.loads(proc.stdout.strip().splitlines()[-1])
    tmp.replace(path)
    meta_path.write_text(json.dumps(meta, indent=2) + "\n")
    return {**meta, "path": str(path)}


def measure_wide(columns: int, args: argparse.Namespace, use_time: bool, env: dict[str, str]) -> tuple[dict, bool]:
    """datadrop's prepare on a wide file, --runs times: seconds (inside the child) per million cells."""
    meta = wide_dataset(columns, args.wide_rows, args.seed, env, args.timeout)
    warm_page_cache(meta["path"])
    cells = meta["rows"] * meta["columns"]
    samples = []
    ok = True
    for i in range(args.runs):
        s = run_subject("datadrop", meta["path"], use_time, args.timeout, env, target="label")
        prepare_s = dict(s["steps"]).get("prepare")
        log(
            f"wide {columns} columns run {i + 1}/{args.runs}: prepare {prepare_s or 0:.2f} s, wall {s['wall_s']:.2f} s, "
            f"{(s.get('max_rss_kb') or 0) * 1024 / 1e6:.0f} MB, exit {s['returncode']}"
        )
        if not s["ok"]:
            log("  failed:\n    " + "\n    ".join(s["error_tail"]))
            ok = False
        samples.append(s)
    prepare_seconds = [dict(s["steps"]).get("prepare") for s in samples if s["ok"]]
    summary = summarize(samples, meta["bytes"] / 1e6)
    median_prepare = (stats(prepare_seconds) or {}).get("median")
    return {
        "columns": meta["columns"],
        "rows": meta["rows"],
        "cells": cells,
        "bytes": meta["bytes"],
        "prepare_s": stats(prepare_seconds),
        "prepare_s_per_million_cells": median_prepare / (cells / 1e6) if median_prepare else None,
        "datadrop": summary,
        "prepare_steps": (samples[0]["result"] or {}).get("prepare_steps") if samples else None,
        "counts": (samples[0]["result"] or {}).get("counts") if samples else None,
    }, ok


def _fit(points: list[tuple[float, float]]) -> tuple[float, float]:
    """Least-squares intercept and slope of y = a + b x."""
    n = len(points)
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    sxx = sum((x - mx) ** 2 for x, _ in points)
    b = sum((x - mx) * (y - my) for x, y in points) / sxx
    return my - b * mx, b


def lambda_projection(entries: list[dict]) -> dict | None:
    """Largest input that fits each Lambda memory size, extrapolated linearly from the measured sizes.

    With two sizes or more: a straight line through (input MB, median peak RSS) and (input MB, median
    wall), least squares. With one: the child's peak RSS after imports as the intercept, wall / input.
    """
    measured = [e for e in entries if (e["datadrop"]["max_rss_mb"] or {}).get("median") and e["datadrop"]["wall_s"]]
    if not measured:
        return None
    if len({e["input_mb"] for e in measured}) >= 2:
        fixed_mb, per_mb = _fit([(e["input_mb"], e["datadrop"]["max_rss_mb"]["median"]) for e in measured])
        _, per_mb_s = _fit([(e["input_mb"], e["datadrop"]["wall_s"]["median"]) for e in measured])
        how = f"least-squares line through the medians of {len(measured)} sizes"
    else:
        e = measured[0]
        dd = e["datadrop"]
        fixed_mb = next((st.get("median") for st in dd["peak_rss_mb_inside"] if st["step"] == "after import"), None)
        if fixed_mb is None:
            return None
        per_mb = (dd["max_rss_mb"]["median"] - fixed_mb) / e["input_mb"]
        per_mb_s = dd["wall_s"]["median"] / e["input_mb"]
        how = f"one size ({e['input_mb']:.0f} MB): peak RSS after imports + the rest per input MB"
    limits = []
    for mib in LAMBDA_LIMITS_MIB:
        limit_mb = mib * 1048576 / 1e6
        max_input = (limit_mb - fixed_mb) / per_mb
        limits.append(
            {"lambda_mb": mib, "limit_mb": limit_mb, "max_input_mb": max_input, "wall_s_here_at_that_size": max_input * per_mb_s}
        )
    return {"how": how, "fixed_mb": fixed_mb, "mb_per_input_mb": per_mb, "wall_s_per_input_mb": per_mb_s, "limits": limits}


# ------------------------------------------------------------------ main


def parse_sizes(text: str) -> list[float]:
    try:
        sizes = [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--sizes wants comma-separated numbers of MB, not {text!r}") from None
    if any(size <= 0 for size in sizes):
        raise argparse.ArgumentTypeError("--sizes wants positive numbers of MB, e.g. 50,200 or 1000")
    return sizes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python bench/dataprep.py",
        description=(
            "Time and peak memory of the prepare step (datadrop.dataprep.prepare) on synthetic, dirty CSVs of the "
            "given sizes, against the same cleaning in plain pandas and the floor in the same run: polars read_csv "
            "(all columns as text) and write_csv into memory. All under /usr/bin/time -v; runs interleaved."
        ),
        epilog="Exit status: 0 every measured run succeeded, 1 a run failed, 2 setup error. "
        "Generated files are cached in bench/.data/ (git-ignored); delete it to free the space.",
    )
    parser.add_argument(
        "--sizes",
        type=parse_sizes,
        default=parse_sizes("100"),
        help="input sizes in MB (10^6 bytes), comma-separated (default 100; e.g. 100,1000); empty: none",
    )
    parser.add_argument("--runs", type=int, default=3, help="measured runs of datadrop and the floor per size (default 3)")
    parser.add_argument(
        "--pandas-runs", type=int, default=1, help="measured runs of the pandas script per size (default 1; 0: none)"
    )
    parser.add_argument(
        "--wide",
        type=lambda text: [int(part) for part in text.split(",") if part.strip()],
        default=[],
        help="also prepare wide files with these numbers of columns (e.g. 1000,5000,20000) and print the time per million cells",
    )
    parser.add_argument("--wide-rows", type=int, default=1000, help="rows of the wide files (default 1000)")
    parser.add_argument(
        "--warmup",
        type=int,
        default=0,
        help="discarded rounds of both per size before the measured ones (default 0; the file is "
        "read into the page cache and the bytecode compiled beforehand anyway)",
    )
    parser.add_argument("--seed", type=int, default=42, help="seed of the generated files (default 42)")
    parser.add_argument("--json", action="store_true", help="print the numbers as JSON instead of the table")
    parser.add_argument(
        "--rusage", action="store_true", help="do not use /usr/bin/time -v; take max RSS from os.wait4 (the fallback)"
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=LAMBDA_TIMEOUT_S,
        help=f"seconds before a run is killed (default {LAMBDA_TIMEOUT_S}, Lambda's maximum)",
    )
    parser.add_argument(
        "--bytecode",
        choices=["warm", "env"],
        default="warm",
        help="warm (default): one child first imports datadrop and polars into a private PYTHONPYCACHEPREFIX, so the "
        "measured children import compiled modules; env: the children get this environment as it is",
    )
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    if args.warmup < 0:
        parser.error("--warmup must be 0 or more")

    if not (PYTHON.is_file() and os.access(PYTHON, os.X_OK)):
        log(f"error: {PYTHON} (the venv python) not found: run examples/demo or tests/run once to create .venv")
        return 2

    warnings: list[str] = []
    use_time, method = measurement_method(args.rusage, warnings)

    started = dt.datetime.now(dt.UTC)
    info = machine()
    available = info.get("memory_available_gb")
    env = dict(os.environ)
    # the children import this checkout's datadrop, whatever the venv has installed
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO / "layers" / "datadrop"), env.get("PYTHONPATH")]))
    pycache = None
    if args.bytecode == "warm":
        pycache = tempfile.mkdtemp(prefix="datadrop-bench-pycache.")
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = pycache
        bytecode = "warm: a first child compiled datadrop, polars and numpy into a private PYTHONPYCACHEPREFIX"
    else:
        bytecode = (
            f"env: as inherited (PYTHONDONTWRITEBYTECODE={os.environ.get('PYTHONDONTWRITEBYTECODE', 'unset')}, "
            f"PYTHONPYCACHEPREFIX={os.environ.get('PYTHONPYCACHEPREFIX', 'unset')})"
        )

    entries: list[dict] = []
    wide_entries: list[dict] = []
    failed = False
    try:
        if pycache:
            prime = subprocess.run(
                [str(PYTHON), "-c", "import numpy, polars, datadrop.config, datadrop.dataprep"],
                cwd=REPO,
                env=env,
                capture_output=True,
                text=True,
                timeout=300,
            )
            if prime.returncode != 0:
                raise SetupError(f"importing datadrop and polars failed: {prime.stderr.strip()[-800:]}")
        files = [dataset(size, args.seed, env, args.timeout) for size in args.sizes]
        for size, meta in zip(args.sizes, files):
            input_mb = meta["bytes"] / 1e6
            if available and args.pandas_runs and input_mb * 9 / 1e3 > available:
                warnings.append(
                    f"{input_mb:.0f} MB input: the pandas child may need about {input_mb * 9 / 1e3:.1f} "
                    f"GB but only {available} GB were available at start"
                )
                log(f"warning: {warnings[-1]}")
            warm_page_cache(meta["path"])
            samples: dict[str, list[dict]] = {name: [] for name in SUBJECTS}
            for i in range(args.warmup + args.runs):
                warm = i < args.warmup
                label = (
                    f"{size:g} MB warm-up {i + 1}/{args.warmup}" if warm else f"{size:g} MB run {i - args.warmup + 1}/{args.runs}"
                )
                parts = []
                for name in SUBJECTS:
                    if name == "pandas" and i - args.warmup >= args.pandas_runs:
                        continue  # pandas takes minutes a gigabyte
                    s = run_subject(name, meta["path"], use_time, args.timeout, env)
                    parts.append(
                        f"{name} {s['wall_s']:.2f} s, {(s.get('max_rss_kb') or 0) * 1024 / 1e6:.0f} MB, exit {s['returncode']}"
                    )
                    if not s["ok"]:
                        tail = "\n    ".join(s["error_tail"])
                        log(f"  {name} failed (exit {s['returncode']}):\n    {tail}")
                    if not warm:
                        samples[name].append(s)
                        failed = failed or not s["ok"]
                log(f"{label}: " + "; ".join(parts) + (" (discarded)" if warm else ""))
            summaries = {name: summarize(samples[name], input_mb) for name in SUBJECTS}
            entry = {
                "size_mb": size,
                "input_mb": input_mb,
                "file": {k: meta[k] for k in ("path", "rows", "bytes", "columns", "duplicates_injected", "seed", "generated_now")}
                | {"generation_s": meta["seconds"]},
                **summaries,
                "ratios": ratios(summaries, input_mb),
                "samples": {
                    name: [
                        {
                            k: s.get(k)
                            for k in ("wall_s", "max_rss_kb", "time_elapsed_s", "user_s", "sys_s", "exit_status", "returncode")
                        }
                        | {"result": s["result"]}
                        for s in group
                    ]
                    for name, group in samples.items()
                },
            }
            entries.append(entry)
        for columns in args.wide:
            entry, ok = measure_wide(columns, args, use_time, env)
            wide_entries.append(entry)
            failed = failed or not ok
    except SetupError as exc:
        log(f"error: {exc}")
        return 2
    finally:
        if pycache:
            shutil.rmtree(pycache, ignore_errors=True)
    info["after"] = contention()

    result = {
        "date": started.isoformat(timespec="seconds"),
        "machine": info,
        "runs": args.runs,
        "warmup": args.warmup,
        "method": method,
        "bytecode": bytecode,
        "commands": {
            "datadrop": f".venv/bin/python -c <DATADROP in bench/dataprep.py> FILE {TARGET}",
            "pandas": f".venv/bin/python bench/pandas_prepare.py FILE {TARGET}",
            "floor": ".venv/bin/python -c <FLOOR in bench/dataprep.py> FILE",
        },
        "pandas_runs": args.pandas_runs,
        "sizes": entries,
        "wide": wide_entries,
        "lambda_projection": lambda_projection(entries),
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
        f"datadrop prepare step on synthetic dirty CSVs: {r['runs']} measured run(s) of datadrop and the floor per size, "
        f"{r['pandas_runs']} of pandas"
        + (f" (+{r['warmup']} discarded warm-up)" if r["warmup"] else "")
        + f", interleaved; measured with {r['method']}"
    )
    print_run_header(r)
    if r["sizes"]:
        print_sizes(r)
    if r["wide"]:
        print_wide(r)
    print_projection_and_targets(r)


def print_sizes(r: dict) -> None:
    print()
    widths = (22, 9, 7, 7, 7, 6, 7, 6, 6, 6, 7, 7)
    fmt = "  ".join(f"{{:<{w}}}" if i in (0, 1) else f"{{:>{w}}}" for i, w in enumerate(widths))
    print(fmt.format("input", "", "wall", "(s)", "", "MB/s", "max RSS", "(MB)", "", "RSS /", "cpu (s)", "exit"))
    print(fmt.format("", "", "median", "min", "max", "", "median", "min", "max", "input", "median", ""))
    rule = fmt.format(*("-" * w for w in widths))
    print(rule)
    for e in r["sizes"]:
        labels = [f"{e['input_mb']:.1f} MB", f"{e['file']['rows']:,} rows"]
        for name in SUBJECTS:
            row = e[name]
            w, rss, ratio, cpu = (
                row["wall_s"] or {},
                row["max_rss_mb"] or {},
                row["max_rss_per_input_mb"] or {},
                row["cpu_s"] or {},
            )
            print(
                fmt.format(
                    labels.pop(0) if labels else "",
                    name,
                    _f(w.get("median"), ".2f"),
                    _f(w.get("min"), ".2f"),
                    _f(w.get("max"), ".2f"),
                    _f(e["input_mb"] / w["median"] if w.get("median") else None, ".1f"),
                    _f(rss.get("median"), ".0f"),
                    _f(rss.get("min"), ".0f"),
                    _f(rss.get("max"), ".0f"),
                    (_f(ratio.get("median"), ".2f") + "x" if ratio else "-"),
                    _f(cpu.get("median"), ".2f"),
                    ",".join(map(str, row["exit_statuses"])),
                )
            )
        q = e["ratios"]
        print(
            f"{'':22}  ratios (medians): pandas / datadrop {_f(q['pandas_over_datadrop'], '.1f')}x, datadrop / floor "
            f"{_f(q['datadrop_over_floor'], '.2f')}x, datadrop peak RSS / input {_f(q['datadrop_rss_over_input'], '.2f')}x "
            f"(floor {_f(q['floor_rss_over_input'], '.2f')}x, pandas {_f(q['pandas_rss_over_input'], '.2f')}x)"
        )
        print(rule)
    print(
        "wall = spawn to exit as seen by this script (interpreter start and imports included); MB/s = input MB / "
        "median wall; max RSS = the child's peak resident set; RSS / input = max RSS over the file size; "
        "cpu = user + sys; MB = 10^6 bytes."
    )

    for e in r["sizes"]:
        print()
        f = e["file"]
        print(
            f"{e['input_mb']:.1f} MB input ({f['rows']:,} rows x {f['columns']} columns, seed {f['seed']}, "
            f"{f['duplicates_injected']:,} duplicate rows injected; generated in {f['generation_s']:.1f} s"
            + ("" if f["generated_now"] else ", cached")
            + ")"
        )
        for name in SUBJECTS:
            row = e[name]
            steps = ", ".join(f"{st['step'].split(' (')[0]} {st['median']:.2f}" for st in row["steps"] if "median" in st)
            print(f"  {name:8}  seconds (median): {steps}")
            if name == "datadrop" and row.get("prepare_steps"):
                inside = ", ".join(f"{st['step']} {st['median']:.2f}" for st in row["prepare_steps"] if "median" in st)
                print(f"  {'':8}  prepare's steps (median s): {inside}")
            rows = row.get("rows") or {}
            if name == "datadrop" and rows:
                print(
                    f"  {'':8}  rows: read {rows.get('read', 0):,}, empty {rows.get('empty', 0):,}, missing target "
                    f"{rows.get('missing_target', 0):,}, duplicates {rows.get('duplicates', 0):,}, usable "
                    f"{rows.get('usable', 0):,} -> train {rows.get('train', 0):,} / validation "
                    f"{rows.get('validation', 0):,} / test {rows.get('test', 0):,}; splits written "
                    f"{(row.get('output_bytes') or 0) / 1e6:.1f} MB"
                )
            elif name == "pandas" and rows:
                print(
                    f"  {'':8}  rows: read {rows.get('read', 0):,}, usable {rows.get('usable', 0):,} -> train "
                    f"{rows.get('train', 0):,} / validation {rows.get('validation', 0):,} / test {rows.get('test', 0):,}; "
                    f"CSVs written {(row.get('output_bytes') or 0) / 1e6:.1f} MB"
                )
            elif rows:
                print(f"  {'':8}  rows: read {rows.get('read', 0):,}; CSV written {(row.get('output_bytes') or 0) / 1e6:.1f} MB")


def print_wide(r: dict) -> None:
    print()
    print(f"wide files: datadrop's prepare (seconds inside the child, median of {r['runs']}) per million cells")
    wfmt = "{:>8}  {:>6}  {:>11}  {:>8}  {:>10}  {:>12}  {:>8}  {:>8}"
    print(wfmt.format("columns", "rows", "cells", "MB", "prepare s", "s / M cells", "wall s", "RSS MB"))
    for w in r["wide"]:
        dd = w["datadrop"]
        print(
            wfmt.format(
                f"{w['columns']:,}",
                f"{w['rows']:,}",
                f"{w['cells']:,}",
                f"{w['bytes'] / 1e6:.1f}",
                _f((w["prepare_s"] or {}).get("median"), ".2f"),
                _f(w["prepare_s_per_million_cells"], ".3f"),
                _f((dd["wall_s"] or {}).get("median"), ".2f"),
                _f((dd["max_rss_mb"] or {}).get("median"), ".0f"),
            )
        )
    for w in r["wide"]:
        steps = w.get("prepare_steps") or {}
        print(
            f"  {w['columns']:,} columns, prepare's steps (s, first run): " + ", ".join(f"{k} {v:.2f}" for k, v in steps.items())
        )
    for w in r["wide"]:
        counts, peak = w.get("counts") or {}, (w["datadrop"]["max_rss_mb"] or {}).get("median")
        if counts:  # the memory check's line (dataprep.PREPARE_BYTES_PER_DISTINCT ...) against what was measured
            print(
                f"  {w['columns']:,} columns: {counts['distinct_values']:,} distinct values (summed over the columns); "
                f"the memory check plans {counts['planned_bytes'] / 1e6:,.0f} MB beyond the runtime (headroom "
                f"included), peak RSS {_f(peak, ',.0f')} MB (imports included)"
            )


def print_projection_and_targets(r: dict) -> None:
    p = r.get("lambda_projection")
    if p:
        print()
        print(
            f"Lambda projection ({p['how']}): datadrop's peak RSS = {p['fixed_mb']:.0f} MB + "
            f"{p['mb_per_input_mb']:.2f} MB per input MB; wall {p['wall_s_per_input_mb']:.3f} s per input MB here"
        )
        for lim in p["limits"]:
            print(
                f"  {lim['lambda_mb']:>5} MB Lambda ({lim['limit_mb']:.0f} MB): largest input about "
                f"{lim['max_input_mb']:.0f} MB, which takes about {lim['wall_s_here_at_that_size']:.0f} s on this "
                f"machine (timeout {LAMBDA_TIMEOUT_S} s); not counted: boto3 and the S3 transfer buffers"
            )

    judged = [e for e in r["sizes"] if e["size_mb"] >= TARGETS_FROM_MB]
    if judged:
        print()
        print(f"targets (judged at {TARGETS_FROM_MB:g} MB and more):")
        for e in judged:
            q = e["ratios"]
            for label, value, ok in (
                (f"pandas / datadrop >= {TARGET_PANDAS_RATIO:g}x", q["pandas_over_datadrop"], lambda v: v >= TARGET_PANDAS_RATIO),
                (f"datadrop / floor <= {TARGET_FLOOR_RATIO:g}x", q["datadrop_over_floor"], lambda v: v <= TARGET_FLOOR_RATIO),
                (
                    f"datadrop peak RSS / input < {TARGET_RSS_RATIO:g}x",
                    q["datadrop_rss_over_input"],
                    lambda v: v < TARGET_RSS_RATIO,
                ),
            ):
                verdict = "-   " if value is None else "PASS" if ok(value) else "MISS"
                print(f"  {verdict}  {e['input_mb']:.0f} MB: {label}: {_f(value, '.2f')}x")
    for w in r["warnings"]:
        print(f"warning: {w}")
    print()
    print("PASS: every run exited 0 with its result" if r["passed"] else "FAIL: a run failed (details above on stderr)")


if __name__ == "__main__":
    sys.exit(main())
