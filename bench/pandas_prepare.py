#!/usr/bin/env python3
"""The prepare step's cleaning written in plain pandas, as a person would without datadrop: the
comparison bench/dataprep.py measures datadrop's prepare against.

Same steps as `datadrop.dataprep.prepare` on the bench's files, none of its diagnosis or report:
every value read as text and stripped; junk tokens (the config's default missing values) made
missing; rows with a missing target dropped, then exact duplicate rows; a stratified split per class
(15 % test, 15 % validation, seeded); per column, numeric when 95 % of its present training values
are numbers (training median imputed) or else categorical (category codes fitted on the training
rows, -1 for missing and unseen); train and validation written label first, headerless, the test
rows' raw values and their labels too. Writes nothing to disk: the CSVs are built in memory, as
prepare's are.

Usage: python bench/pandas_prepare.py FILE TARGET   (prints one JSON line: rows, output bytes, seconds per step)
"""

from __future__ import annotations

import time

STARTED = time.perf_counter()

import io
import json
import resource
import sys

import numpy as np
import pandas as pd

IMPORTED = time.perf_counter()

MISSING = ["", "NA", "N/A", "n/a", "NaN", "nan", "null", "NULL", "None", "?", "-"]  # datadrop's defaults
VALIDATION, TEST, SEED = 0.15, 0.15, 42
NUMERIC_SHARE = 0.95


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e6


def prepare(path: str, target: str) -> dict:
    steps: dict[str, float] = {}
    started = time.perf_counter()

    def lap(step: str) -> None:
        nonlocal started
        now = time.perf_counter()
        steps[step] = now - started
        started = now

    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    frame.columns = [name.strip() for name in frame.columns]
    rows_read = len(frame)
    lap("read_csv")
    for name in frame.columns:
        stripped = frame[name].str.strip()
        frame[name] = stripped.where(~stripped.isin(MISSING))
    lap("strip, missing tokens")

    frame = frame[frame[target].notna()]
    frame = frame.drop_duplicates()
    lap("drop missing target, duplicates")

    # Stratified split: within each class, rows in a seeded random order; the first go to test, then validation.
    order = np.random.default_rng(SEED).random(len(frame))
    rank = pd.Series(order, index=frame.index).groupby(frame[target]).rank(method="first")
    size = frame.groupby(target)[target].transform("size")
    n_test = (size * TEST).round().clip(lower=1)
    n_validation = (size * VALIDATION).round().clip(lower=1)
    split = np.where(rank <= n_test, "test", np.where(rank <= n_test + n_validation, "validation", "train"))
    train_rows = split == "train"
    lap("split")

    classes = sorted(frame[target].unique())
    labels = pd.Categorical(frame[target], categories=classes).codes
    features = [name for name in frame.columns if name != target]
    encoded = {}
    for name in features:
        values = frame[name]
        numbers = pd.to_numeric(values, errors="coerce")
        present = values[train_rows].notna().sum()
        if present and numbers[train_rows].notna().sum() >= NUMERIC_SHARE * present:
            encoded[name] = numbers.fillna(numbers[train_rows].median())
        else:
            categories = sorted(values[train_rows].dropna().unique())
            encoded[name] = pd.Series(pd.Categorical(values, categories=categories).codes, index=frame.index)
    matrix = pd.DataFrame({"label": labels, **encoded}, index=frame.index)
    lap("fit, encode")

    outputs = {}
    for part in ("train", "validation"):
        buffer = io.StringIO()
        matrix[split == part].to_csv(buffer, header=False, index=False)
        outputs[part] = buffer.getvalue().encode()
    buffer = io.StringIO()  # JSON Lines, as datadrop writes the test split (pandas' way: one object per line)
    frame.loc[split == "test", features].to_json(buffer, orient="records", lines=True, force_ascii=False)
    outputs["test"] = buffer.getvalue().encode()
    test_labels = frame.loc[split == "test", target].tolist()
    lap("write splits")
    return {
        "rows": {
            "read": rows_read,
            "usable": len(frame),
            **{part: int((split == part).sum()) for part in ("train", "validation", "test")},
        },
        "test_labels": len(test_labels),
        "output_bytes": sum(len(data) for data in outputs.values()),
        "steps": steps,
    }


def main() -> None:
    t0 = time.perf_counter()
    result = prepare(sys.argv[1], sys.argv[2])
    result["steps"] = {"import": IMPORTED - STARTED, **result["steps"]}
    result["seconds"] = time.perf_counter() - t0
    result["peak_rss_mb"] = {"after prepare": peak_mb()}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
