"""Unit tests for datadrop.dataprep: validation, cleaning, the split, fitting and the encoding contract.

The encoding is checked against a reference written here in plain Python from the rules (the
serving code implements the same rules), including a plain-Python re-implementation of the
split, so the train/validation CSVs can be compared row by row with what the rules say.
"""

from __future__ import annotations

import csv
import datetime
import gzip
import io
import json
import math
import random
import re
import statistics
from collections import Counter
from pathlib import Path

import polars as pl
import pytest
from datadrop import dataprep, reading, splitting
from datadrop.config import DatasetConfig, parse_config
from datadrop.dataprep import DatasetRejected, PreparedDataset, prepare
from datadrop.quality import CategoricalSummary, NumericSummary
from datadrop.recipe import encode_row, number_expr, parse_number

from tests.held_out import held_out_records, written_splits

ROOT = Path(__file__).resolve().parents[2]
PENGUINS = ROOT / "examples" / "penguins"
MISSING = ["", "NA", "N/A", "n/a", "NaN", "nan", "null", "NULL", "None", "?", "-"]


# ----------------------------------------------------------------------------------------------
# Reference implementation of the rules, in plain Python (independent of dataprep's code).

U64 = (1 << 64) - 1


def ref_splitmix64(seed: int, count: int) -> list[int]:
    state, out = seed & U64, []
    for _ in range(count):
        state = (state + 0x9E3779B97F4A7C15) & U64
        z = state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & U64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & U64
        out.append(z ^ (z >> 31))
    return out


def ref_number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


REF_TRUE, REF_FALSE = {"true", "t", "yes", "y", "1"}, {"false", "f", "no", "n", "0"}
REF_DATETIME = re.compile(
    r"(\d{4})[-/](\d{2})[-/](\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:[.,]\d{1,9})?)?(?:Z|[+-]\d{2}(?::?\d{2})?)?)?", re.ASCII
)


def ref_datetime(text: str) -> datetime.datetime | None:
    """The wall-clock time a value writes (zone and fraction of a second ignored), by the datetime module."""
    match = REF_DATETIME.fullmatch(text)
    if match is None:
        return None
    year, month, day, hour, minute, second = (int(group or 0) for group in match.groups())
    try:
        return datetime.datetime(year, month, day, hour, minute, second)
    except ValueError:  # no such day, hour, ...
        return None


def ref_datetime_part(moment: datetime.datetime, part: str) -> float:
    if part == "day_of_week":
        return float(moment.weekday())
    if part == "epoch_days":
        return (moment - datetime.datetime(1970, 1, 1)) / datetime.timedelta(days=1)
    return float(getattr(moment, part))


def ref_encode(recipe: dict, row: dict[str, str]) -> list[float]:
    missing = set(recipe["missing_tokens"])
    out = []
    for feature in recipe["features"]:
        text = row[feature.get("column", feature["name"])].strip()
        if feature["kind"] == "boolean":
            folded = text.casefold()
            out.append(-1.0 if text in missing else 1.0 if folded in REF_TRUE else 0.0 if folded in REF_FALSE else -1.0)
        elif feature["kind"] == "datetime":
            moment = None if text in missing else ref_datetime(text)
            out.append(feature["fill"] if moment is None else ref_datetime_part(moment, feature["part"]))
        elif feature["kind"] == "numeric":
            written = feature.get("number_format")
            if written and re.fullmatch(written["pattern"], text):
                text = re.sub(f"[{re.escape(written['remove'])}]", "", text).replace(written["decimal"], ".")
            number = None if text in missing else ref_number(text)
            out.append(feature["fill"] if number is None else number)
        else:
            categories = feature["categories"]
            # missing is decided on the stripped text as written; only present values are case-folded
            looked_up = text.casefold() if feature.get("normalise") == "casefold" else text
            out.append(float(categories.index(looked_up)) if looked_up in categories and text not in missing else -1.0)
    return out


def ref_label_key(label: str) -> str:
    number = ref_number(label)
    return f"number {number!r}" if number is not None else " ".join(label.casefold().split())


def ref_merged_labels(labels: list[str]) -> dict[str, str]:
    """Each label -> its class: of the labels with the same key, the most frequent (ties: the smallest)."""
    counts = Counter(labels)
    groups: dict[str, list[str]] = {}
    for label in counts:
        groups.setdefault(ref_label_key(label), []).append(label)
    merged = {}
    for group in groups.values():
        kept = min(group, key=lambda label: (-counts[label], label))
        merged.update({label: kept for label in group})
    return merged


def ref_clean(data: bytes, target: str, missing: list[str], merge_labels: bool = True) -> tuple[list[str], list[dict[str, str]]]:
    """Header and cleaned rows (stripped; empty rows and missing targets dropped, labels merged, then duplicates
    dropped), in order."""
    records = list(csv.reader(io.StringIO(data.decode("utf-8-sig"), newline="")))
    header = [name.strip() for name in records[0]]
    kept = []
    for record in records[1:]:
        values = tuple(value.strip() for value in record)
        if all(value == "" for value in values):
            continue
        row = dict(zip(header, values))
        if row[target] not in missing:
            kept.append(row)
    merged = ref_merged_labels([row[target] for row in kept]) if merge_labels else {}
    seen, rows = set(), []
    for row in kept:
        row[target] = merged.get(row[target], row[target])
        values = tuple(row.values())
        if values not in seen:
            seen.add(values)
            rows.append(row)
    return header, rows


def ref_split(rows: list[dict[str, str]], target: str, validation: float, test: float, seed: int) -> list[str]:
    """'train' / 'validation' / 'test' per cleaned row: per class, rows by SplitMix64 key; test first."""
    keys = ref_splitmix64(seed, len(rows))
    by_class: dict[str, list[int]] = {}
    for index, row in enumerate(rows):
        by_class.setdefault(row[target], []).append(index)
    where = ["train"] * len(rows)
    for indices in by_class.values():
        n = len(indices)
        n_test, n_val = max(1, math.floor(n * test + 0.5)), max(1, math.floor(n * validation + 0.5))
        while n_test + n_val > n - 1:
            if n_test >= n_val:
                n_test -= 1
            else:
                n_val -= 1
        ordered = sorted(indices, key=lambda i: keys[i])
        for position, index in enumerate(ordered):
            where[index] = "test" if position < n_test else "validation" if position < n_test + n_val else "train"
    return where


def parse_matrix(data: bytes) -> list[list[float]]:
    return [[float(field) for field in line.split(",")] for line in data.decode().splitlines()]


def csv_rows(data: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(data.decode(), newline="")))


def to_csv(header: list[str], rows: list[list[str]], newline: str = "\n", delimiter: str = ",") -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator=newline, delimiter=delimiter)
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue().encode()


def missing_of(prepared: PreparedDataset) -> dict[str, int]:
    return {column.name: column.missing for column in prepared.report.columns}


def same_float(a: float, b: float) -> bool:
    return a == b and math.copysign(1.0, a) == math.copysign(1.0, b)


def assert_matches_reference(data: bytes, config: DatasetConfig, prepared: PreparedDataset) -> None:
    """Every output equals what the rules say, row by row (via the reference clean/split/encode)."""
    target = config.target
    header, rows = ref_clean(data, target, config.missing_values, config.merge_labels)
    where = ref_split(rows, target, config.split.validation, config.split.test, config.split.seed)
    recipe = prepared.recipe
    classes = recipe["classes"]
    assert classes == sorted({row[target] for row in rows})
    for split, produced in (("train", prepared.train_csv), ("validation", prepared.validation_csv)):
        expected = [
            [float(classes.index(row[target]))] + ref_encode(recipe, row) for row, place in zip(rows, where) if place == split
        ]
        got = parse_matrix(produced)
        assert len(got) == len(expected), split
        for got_row, expected_row in zip(got, expected):
            assert len(got_row) == len(expected_row)
            assert all(same_float(a, b) for a, b in zip(got_row, expected_row)), (split, got_row, expected_row)
    test_rows = [row for row, place in zip(rows, where) if place == "test"]
    features_header = [name for name in header if name != target]
    assert held_out_records(prepared) == [[row[name] for name in features_header] for row in test_rows]
    assert prepared.test_labels == [row[target] for row in test_rows]
    # dataprep's own plain-Python encoder (for the serving code) agrees with this reference
    for record in held_out_records(prepared):
        row = dict(zip(features_header, record))
        assert encode_row(recipe, row) == ref_encode(recipe, row)


# ----------------------------------------------------------------------------------------------
# A small dirty dataset, built so that every rule is exercised.


def dirty_dataset(n: int = 150, seed: int = 3) -> tuple[list[str], list[list[str]]]:
    rng = random.Random(seed)
    header = ["id", " label ", "num", "count", "city", "mostly_text", "constant", "nothing", "code", "flag"]
    odd_numbers = [" 2.50 ", "1e3", "+.5", "-0", "0.1", "NaN", "?", "5.", "-1E-2", "", "NA", "007", "1_000", "١٢", "１.５"]
    not_numbers = ["inf", "1e400", "1__0", "abc"]
    cities = ["Zürich", "a, b", 'say "hi"', "two\nlines", "Oslo", "Lima", " Lima", "NA"]
    rows = []
    for i in range(n):
        label = ["ant", "bee", "cat"][i % 3]
        if i % 17 == 0:
            label = " " + label + " "  # padded target value, same class after stripping
        if i in (5, 6):
            label = "NA"  # missing target
        if i % 40 == 0:
            num = not_numbers[(i // 40) % len(not_numbers)]  # rare (< 5%), so the column stays numeric
        elif i % 7 == 0:
            num = odd_numbers[(i // 7) % len(odd_numbers)]
        else:
            num = repr(rng.uniform(-100, 100))
        city = rng.choice(cities) if i % 11 else f"only-{i}"  # singletons: unseen outside train
        mostly = str(rng.randint(0, 9)) if i % 10 else "n/a-ish"
        rows.append(
            [
                str(i),
                label,
                num,
                str(rng.randint(0, 5)),
                city,
                mostly,
                "same",
                rng.choice(["", "NA"]),
                f"c{i:04d}",
                rng.choice(["yes", "", "yes"]),
            ]
        )
    rows += [list(rows[10]), list(rows[11]), list(rows[10])]  # exact duplicates
    rows.append([""] * len(header))  # an empty row (",,,,")
    return header, rows


# ----------------------------------------------------------------------------------------------
# Rejections: each reason names the problem and the fix.


def rows_of(n: int, classes: list[str]) -> list[list[str]]:
    return [[classes[i % len(classes)], str(i), ["x", "y"][i % 2]] for i in range(n)]


GOOD_HEADER = ["target", "f1", "f2"]
GOOD = to_csv(GOOD_HEADER, rows_of(60, ["a", "b"]))


def reject(data: bytes, **config) -> str:
    config.setdefault("target", "target")
    with pytest.raises(DatasetRejected) as caught:
        prepare(data, DatasetConfig(**config))
    reason = caught.value.reason
    assert reason == str(caught.value) and "\n" not in reason
    return reason


@pytest.mark.parametrize(
    ("data", "config", "expected"),
    [
        (b"", {}, ["empty (0 bytes)", "upload a CSV file"]),
        (b"  \n\r\n\t ", {}, ["only whitespace", "upload a CSV file"]),
        (b"target,f1,f2\n", {}, ["no data rows", "3 columns"]),
        (b"target,f1,f2", {}, ["no data rows"]),
        (b"target,f1,f2\n\n ,,\n", {}, ["no data rows"]),
        (
            b"target,f1\nA,caf\xc3\xa9\nB,caf\xe9\n",
            {},
            ["not UTF-8", "line 3", "0xe9", "mixes two encodings", "save it as UTF-8"],
        ),
        (gzip.compress(GOOD, mtime=0)[:40], {}, ["gzip", "does not decompress", "cut off"]),
        (gzip.compress(gzip.compress(GOOD, mtime=0), mtime=0), {}, ["gzip-compressed twice", "compress the CSV file once"]),
        (b"PK\x03\x04\x14\x00\x06\x00", {}, ["Excel", "export", "CSV"]),
        (b"\x00\x01\x02\x03binary\x00", {}, ["binary", "NUL", "UTF-8"]),
        (GOOD.replace(b"\n", b"\r"), {}, ["CR only", "LF or CRLF"]),
        (b"\r\n" + GOOD, {}, ["starts with a blank line", "must be the header"]),
        ("target,f1\nA,1\n".encode("utf-16-le"), {}, ["NUL bytes", "UTF-16 text without a byte order mark", "UTF-8"]),
        (GOOD + b"a,1,x,extra\n", {}, ["line 62", "4 fields", "header (line 1) has 3", "quotes"]),
        (b"target,f1,f2\na,1,x\nb,2\na,3,x\n", {}, ["line 3", "2 fields", "has 3", "fix or remove that line"]),
        (b"target,f1,f2\na,1,x\nb,2,5'6\"\n", {}, ["line 3", "double quote", "write the quote inside twice"]),
        (b'target,f1,f2\na,1,x\nb,2,"open\n', {}, ["line 3", "never closed"]),
        (b"target,f1,target\na,1,x\n", {}, ["'target' twice", "columns 1 and 3", "unique name"]),
        (b"target, f1 ,f1\na,1,x\n", {}, ["'f1' twice", "unique name"]),
        (b"target,,f2\na,1,x\n", {}, ["column 2 of 3", "empty name", "give every column a name"]),
        (b"target,f1,\na,1,\n", {}, ["column 3 of 3", "trailing commas"]),
        (GOOD, {"target": "Target "}, ["'Target' is not in the file", "did you mean 'target'", "'f1', 'f2'"]),
        (GOOD, {"target": "f_1"}, ["did you mean 'f1'", "set `target`"]),
        (b"target:f1:f2\na:1:x\n", {}, ["separated by colons", "comma, semicolon, tab and pipe"]),
        (GOOD, {"drop_columns": ["F2", "nope"]}, ["'F2' (did you mean 'f2'?)", "'nope'", "fix or remove them"]),
        (GOOD, {"drop_columns": ["target"]}, ["lists the target column", "remove it from drop_columns"]),
        (
            to_csv(GOOD_HEADER, rows_of(40, ["a"]) + [["NA", "1", "x"], ["", "2", "y"]]),
            {},
            ["only one class ('a')", "after dropping 2 rows with a missing target", "at least 2"],
        ),
        (to_csv(GOOD_HEADER, [["NA", "1", "x"]] * 3), {}, ["every row has a missing target", "missing_values"]),
        (
            to_csv(GOOD_HEADER, rows_of(60, ["a", "b", "c"])),
            {"problem_type": "binary"},
            ["problem_type is binary", "3 classes", "'a', 'b', 'c'", "set problem_type to multiclass"],
        ),
        (
            to_csv(GOOD_HEADER, [[f"{i * 1.5}", "1", "x"] for i in range(80)]),
            {"problem_type": "multiclass"},
            ["80 distinct values", "at most 50", "regression target", "set problem_type to regression"],
        ),
        (
            to_csv(GOOD_HEADER, [[f"{i}.5" if i % 2 else f"n{i}", "1", "x"] for i in range(80)]),
            {"problem_type": "regression"},
            ["problem_type is regression but only 40 of the 80", "'n0', 'n2'"],
        ),
        (
            to_csv(GOOD_HEADER, [["7", str(i), "x"] for i in range(40)]),
            {"problem_type": "regression"},
            ["only one value ('7')", "nothing to predict"],
        ),
        (
            to_csv(GOOD_HEADER, [[f"{i * 1.5}", str(i), side] for side in "xy" for i in range(20)]),
            {},
            ["class '0.0' has 2 rows", "if the target is a number to predict, set problem_type: regression"],
        ),
        (to_csv(GOOD_HEADER, [[f"user-{i}", "1", "x"] for i in range(80)]), {}, ["ID or free-text column"]),
        (
            to_csv(GOOD_HEADER, rows_of(20, ["a", "b"]) + rows_of(20, ["a", "b"])),
            {},
            ["only 20 usable rows", "20 exact duplicates", "at least 30", "upload more rows"],
        ),
        (
            to_csv(GOOD_HEADER, rows_of(58, ["a", "b"]) + [["rare", "1", "x"], ["rare", "2", "y"]]),
            {},
            ["class 'rare' has 2 rows", "at least 3 rows", "train, validation and test"],
        ),
        (
            to_csv(GOOD_HEADER + ["id"], [[["a", "b"][i % 2], "1", "NA", str(i)] for i in range(60)]),
            {"drop_columns": ["id"]},
            ["no usable feature", "f1: every number in the training rows is 1.0", "f2: every value", "drop_columns"],
        ),
        (GOOD, {"drop_columns": ["f1", "f2"]}, ["no usable feature", "f1: listed in drop_columns"]),
    ],
)
def test_rejections_say_what_is_wrong_and_what_to_fix(data: bytes, config: dict, expected: list[str]) -> None:
    reason = reject(data, **config)
    for part in expected:
        assert part in reason, f"{part!r} not in {reason!r}"


def test_rejects_an_id_like_target_also_with_many_rows_per_value() -> None:
    rows = [[f"id{i % 60}", "1", "x"] for i in range(180)]
    assert "60 distinct values" in reject(to_csv(GOOD_HEADER, rows))


def test_rejection_reasons_are_single_sentences_without_tracebacks() -> None:
    reason = reject(b'target,f1\n1,"x"y\n')
    assert "Traceback" not in reason and "polars" not in reason.lower()


# ----------------------------------------------------------------------------------------------
# The penguins example, with its two configs.


@pytest.fixture(scope="module")
def penguins() -> bytes:
    return (PENGUINS / "penguins.csv").read_bytes()


@pytest.mark.parametrize("config_file", ["species.yaml", "sex.yaml"])
def test_penguins_examples_prepare(penguins: bytes, config_file: str) -> None:
    config = parse_config((PENGUINS / config_file).read_bytes(), config_file)
    prepared = prepare(penguins, config)
    profile, recipe = prepared.report.model_dump(), prepared.recipe
    json.dumps(profile), json.dumps(recipe)  # JSON-serialisable

    rows = profile["rows"]
    assert rows["read"] == 344
    assert rows["usable"] == rows["read"] - rows["missing_target"] - rows["duplicates"] - rows["empty"]
    splits = profile["splits"]
    assert sum(split["rows"] for split in splits.values()) == rows["usable"]
    train, validation = parse_matrix(prepared.train_csv), parse_matrix(prepared.validation_csv)
    assert len(train) == splits["train"]["rows"] and len(validation) == splits["validation"]["rows"]
    test_records = held_out_records(prepared)
    assert len(test_records) == len(prepared.test_labels) == splits["test"]["rows"]
    assert all(len(row) == 1 + len(recipe["features"]) for row in train + validation)
    assert all(len(record) == len(recipe["columns"]) - 1 for record in test_records)

    classes = recipe["classes"]
    assert {int(row[0]) for row in train} == {int(row[0]) for row in validation} == set(range(len(classes)))
    assert set(prepared.test_labels) == set(classes)
    for split in splits.values():
        assert all(count > 0 for count in split["classes"].values())
        assert sum(split["classes"].values()) == split["rows"]

    # no test row also appears in train (compared as encoded rows, label included)
    features_header = [name for name in recipe["columns"] if name != recipe["target"]]
    test_encoded = {
        tuple([float(classes.index(label))] + ref_encode(recipe, dict(zip(features_header, record))))
        for record, label in zip(test_records, prepared.test_labels)
    }
    assert len(test_encoded) == len(test_records)
    assert not test_encoded & {tuple(row) for row in train}
    assert_matches_reference(penguins, config, prepared)

    kinds = {feature["name"]: feature["kind"] for feature in recipe["features"]}
    assert kinds["island"] == "categorical"
    assert all(kinds[name] == "numeric" for name in ("bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g"))
    if config.target == "species":
        assert recipe["problem_type"] == "multiclass" and classes == ["Adelie", "Chinstrap", "Gentoo"]
        assert rows["missing_target"] == 0 and (splits["train"]["rows"], splits["test"]["rows"]) == (240, 52)
        assert missing_of(prepared)["sex"] == 11 and missing_of(prepared)["bill_length_mm"] == 2
        sex = next(feature for feature in recipe["features"] if feature["name"] == "sex")
        assert sex["categories"] == ["female", "male"]  # "NA" is missing, not a category
    else:
        assert recipe["problem_type"] == "binary" and classes == ["female", "male"]
        assert rows["missing_target"] == 11 and rows["usable"] == 333
        assert recipe["dropped"] == [{"name": "year", "reason": "drop_columns"}]
        assert "NA" not in prepared.test_labels


# ----------------------------------------------------------------------------------------------
# The encoding contract, row by row, on dirty data.


def test_dirty_dataset_matches_the_reference_row_by_row() -> None:
    header, rows = dirty_dataset()
    data = to_csv(header, rows)
    config = DatasetConfig(target="label", drop_columns=["id"], split={"validation": 0.2, "test": 0.2, "seed": 11})
    prepared = prepare(data, config)
    assert_matches_reference(data, config, prepared)

    recipe = prepared.recipe
    assert recipe["columns"] == [name.strip() for name in header]
    kinds = {feature["name"]: feature["kind"] for feature in recipe["features"]}
    assert kinds == {
        "num": "numeric",
        "count": "numeric",
        "city": "categorical",
        "mostly_text": "categorical",
        "flag": "categorical",
    }
    assert recipe["dropped"] == [
        {"name": "id", "reason": "drop_columns"},
        {"name": "constant", "reason": "constant"},
        {"name": "nothing", "reason": "all_missing"},
        {"name": "code", "reason": "id_like"},
    ]
    city = next(feature for feature in recipe["features"] if feature["name"] == "city")
    assert "NA" not in city["categories"] and "na" not in city["categories"] and "lima" in city["categories"]
    assert " lima" not in city["categories"] and "Lima" not in city["categories"]  # stripped, then case-folded
    assert "two\nlines" in city["categories"] and city["categories"] == sorted(city["categories"])
    flag = next(feature for feature in recipe["features"] if feature["name"] == "flag")
    assert flag["categories"] == ["yes"]  # one value plus missing still varies (0 / -1): kept
    report = prepared.report
    assert report.rows.model_dump() == {
        "read": 154,
        "empty": 1,
        "missing_target": 2,
        "non_numeric_target": 0,
        "duplicates": 3,
        "malformed": 0,
        "usable": 148,
    }
    assert report.rows.dropped == {"empty": 1, "missing_target": 2, "duplicates": 3}
    assert report.target.classes == {"ant": 49, "bee": 50, "cat": 49}  # rows 5 and 6 have no label
    assert {column.name: column.role for column in report.columns}["label"] == "target"
    assert json.loads(json.dumps(recipe)) == recipe


def test_unseen_categories_and_odd_numbers_encode_as_the_rules_say() -> None:
    header, rows = dirty_dataset()
    data = to_csv(header, rows)
    config = DatasetConfig(target="label", drop_columns=["id"])
    prepared = prepare(data, config)
    recipe = prepared.recipe
    num = next(feature for feature in recipe["features"] if feature["name"] == "num")
    city = next(feature for feature in recipe["features"] if feature["name"] == "city")
    features_header = [name for name in recipe["columns"] if name != "label"]
    test_rows = [dict(zip(features_header, record)) for record in held_out_records(prepared)]
    encoded = [ref_encode(recipe, row) for row in test_rows]
    position = [feature["name"] for feature in recipe["features"]]
    unseen = [row["city"] for row in test_rows if row["city"].casefold() not in city["categories"]]
    assert unseen, "the dataset should put some singleton cities outside train"
    for row, values in zip(test_rows, encoded):
        if row["city"].casefold() not in city["categories"]:
            assert values[position.index("city")] == -1.0
        if row["num"] in ("inf", "1e400", "1__0", "abc", "NaN", "?"):
            assert values[position.index("num")] == num["fill"]
        if row["num"] in ("1_000", "١٢"):
            assert values[position.index("num")] in (1000.0, 12.0)
    blank = {name: "" for name in features_header}
    row = blank | {"num": " -0 ", "city": " Zürich ", "count": "1__0", "flag": "NA"}
    expected = [
        -0.0,
        float(city["categories"].index("zürich")),
        next(f["fill"] for f in recipe["features"] if f["name"] == "count"),
        -1.0,
    ]
    got = encode_row(recipe, row)
    picked = [got[position.index(name)] for name in ("num", "city", "count", "flag")]
    reference = ref_encode(recipe, row)
    assert all(same_float(a, b) for a, b in zip(picked, expected))
    assert all(same_float(a, b) for a, b in zip(got, reference))


def test_test_rows_are_written_one_json_line_each_with_their_raw_values() -> None:
    values = ["a, b", 'say "hi"', "two\nlines", "", "plain", "  padded  ", "Zürich"]
    config = DatasetConfig(target="label", drop_columns=["n"], missing_values=["NA"])
    rows = [[["p", "q"][i % 2], ["plain", "other"][i % 3 == 0], str(i)] for i in range(70)]
    where = ref_split([dict(zip(["label", "text", "n"], row)) for row in rows], "label", 0.15, 0.15, 42)
    test_positions = [i for i, place in enumerate(where) if place == "test"]
    for value, i in zip(values, test_positions):
        rows[i][1] = value  # every awkward value lands in the test split
    data = to_csv(["label", "text", "n"], rows)
    prepared = prepare(data, config)
    records = held_out_records(prepared)
    assert {record[0] for record in records} >= (set(values) - {"  padded  "}) | {"padded"}
    assert all(len(record) == 2 for record in records)
    assert_matches_reference(data, config, prepared)


def test_an_empty_value_in_a_single_column_test_row_is_still_one_field() -> None:
    config = DatasetConfig(target="label")
    rows = [[["p", "q"][i % 2], str(i)] for i in range(60)]
    where = ref_split([dict(zip(["label", "x"], row)) for row in rows], "label", 0.15, 0.15, 42)
    for i in [i for i, place in enumerate(where) if place == "test"][:2]:
        rows[i][1] = ""
    data = to_csv(["label", "x"], rows)
    prepared = prepare(data, config)
    records = held_out_records(prepared)
    assert [""] in records and all(len(record) == 1 for record in records)  # written as "", not a blank line
    assert_matches_reference(data, config, prepared)


# ----------------------------------------------------------------------------------------------
# Fitting on train only; duplicates before the split; determinism.


def crafted_for_split(config: DatasetConfig, n: int = 90) -> tuple[list[str], list[list[str]], list[str]]:
    """Rows whose split is known in advance (via the reference split), to put different values in each split."""
    header = ["label", "key", "x", "shape", "mixed"]
    rows = [[["p", "q", "r"][i % 3], str(i), "0", "0", "0"] for i in range(n)]
    cleaned = [dict(zip(header, row)) for row in rows]
    where = ref_split(cleaned, "label", config.split.validation, config.split.test, config.split.seed)
    for i, (row, place) in enumerate(zip(rows, where)):
        if place == "train":
            row[2] = str(i % 10)  # train median below 10
            row[3] = ["round", "square"][i % 2]
            row[4] = str(i)  # numbers in train ...
        else:
            row[2] = str(1000 + i)  # validation / test are far larger
            row[3] = "triangle"  # a shape train never sees
            row[4] = f"text-{i}"  # ... text elsewhere
    return header, rows, where


def test_fills_categories_and_kinds_come_from_train_only() -> None:
    config = DatasetConfig(target="label", split={"validation": 0.2, "test": 0.2, "seed": 5})
    header, rows, where = crafted_for_split(config)
    data = to_csv(header, rows)
    prepared = prepare(data, config)
    features = {feature["name"]: feature for feature in prepared.recipe["features"]}
    train_x = [float(row[2]) for row, place in zip(rows, where) if place == "train"]
    assert features["x"]["fill"] == statistics.median(train_x) < 10
    assert statistics.median(float(row[2]) for row in rows) != statistics.median(train_x)
    assert features["shape"]["categories"] == ["round", "square"]
    assert features["mixed"]["kind"] == "numeric"  # text only outside train
    assert_matches_reference(data, config, prepared)
    validation = parse_matrix(prepared.validation_csv)
    names = [feature["name"] for feature in prepared.recipe["features"]]
    assert {row[1 + names.index("shape")] for row in validation} == {-1.0}
    assert {row[1 + names.index("mixed")] for row in validation} == {features["mixed"]["fill"]}


def test_duplicates_are_dropped_before_the_split() -> None:
    unique = [[["p", "q"][i % 2], str(i), ["u", "v", "w"][i % 3]] for i in range(40)]
    rows = unique + unique[::-1] + [list(row) for row in unique[:20]]  # each row 2-3 times, spread out
    rows += [[" " + row[0], row[1] + " ", row[2]] for row in unique[:5]]  # same after stripping
    data = to_csv(["label", "key", "kind"], rows)
    config = DatasetConfig(target="label")
    prepared = prepare(data, config)
    assert prepared.report.rows.duplicates == len(rows) - 40
    assert prepared.report.rows.usable == 40
    key = [feature["name"] for feature in prepared.recipe["features"]].index("key")
    train_keys = {row[1 + key] for row in parse_matrix(prepared.train_csv)}
    validation_keys = {row[1 + key] for row in parse_matrix(prepared.validation_csv)}
    test_keys = {float(record[0]) for record in held_out_records(prepared)}
    assert not train_keys & test_keys and not train_keys & validation_keys and not validation_keys & test_keys
    assert len(train_keys | validation_keys | test_keys) == 40
    assert_matches_reference(data, config, prepared)


def test_same_input_gives_the_same_bytes_and_the_seed_changes_the_split(penguins: bytes) -> None:
    config = DatasetConfig(target="species")
    first, second = prepare(penguins, config), prepare(penguins, config)
    assert first == second
    assert json.dumps(first.recipe, sort_keys=True) == json.dumps(second.recipe, sort_keys=True)
    other = prepare(penguins, DatasetConfig(target="species", split={"seed": 43}))
    assert other.test_rows_jsonl != first.test_rows_jsonl
    assert other.report.splits == first.report.splits  # same sizes per class, other rows


def test_split_sizes_are_stratified_per_class() -> None:
    counts = {"a": 100, "b": 10, "c": 3, "d": 4}
    rows = [[name, str(i), "x" if i % 2 else "y"] for name, count in counts.items() for i in range(count)]
    data = to_csv(["label", "n", "s"], rows)
    prepared = prepare(data, DatasetConfig(target="label", split={"validation": 0.4, "test": 0.38}))
    splits = prepared.report.model_dump()["splits"]
    assert splits["test"]["classes"] == {"a": 38, "b": 4, "c": 1, "d": 1}
    # "d" (4 rows) would round to 2 + 2, leaving no train row: the larger (test first) gives one back
    assert splits["validation"]["classes"] == {"a": 40, "b": 4, "c": 1, "d": 2}
    assert splits["train"]["classes"] == {"a": 22, "b": 2, "c": 1, "d": 1}


def test_split_keys_are_splitmix64() -> None:
    # published SplitMix64 test vector (seed 1234567)
    expected = [6457827717110365317, 3203168211198807973, 9817491932198370423, 4593380528125082431, 16408922859458223821]
    assert ref_splitmix64(1234567, 5) == expected
    assert splitting.split_keys(5, 1234567).to_list() == expected
    assert splitting.split_keys(1000, -3).to_list() == ref_splitmix64(-3, 1000)


# ----------------------------------------------------------------------------------------------
# Floats, numbers, whitespace: the details the serving code must agree on.


def test_floats_round_trip_through_the_csv() -> None:
    rng = random.Random(7)
    specials = [
        "5e-324",
        "1.7976931348623157e308",
        "0.1",
        "0.30000000000000004",
        "-0",
        "1e22",
        "1e16",
        "9007199254740993",
        "123456789.123456789",
        "2.2250738585072014e-308",
        "1e-7",
        "-1.5e-300",
        "0.1000000000000000055511151231257827021181583404541015625",
        "3.141592653589793238462643383279",
    ]
    values = specials + [repr(rng.uniform(-1e6, 1e6) * 10 ** rng.randint(-20, 20)) for _ in range(200)]
    rows = [[["a", "b"][i % 2], value, str(i)] for i, value in enumerate(values)]
    data = to_csv(["label", "x", "key"], rows)
    config = DatasetConfig(target="label", columns={"key": {"role": "numeric"}})  # row numbers, kept to find the rows
    prepared = prepare(data, config)
    assert_matches_reference(data, config, prepared)  # exact float64 equality, sign of zero included
    names = [feature["name"] for feature in prepared.recipe["features"]]
    by_key = {row[2]: row[1] for row in rows}
    for line in prepared.train_csv.decode().splitlines():
        fields = line.split(",")
        x_text, key_text = fields[1 + names.index("x")], fields[1 + names.index("key")]
        assert same_float(float(x_text), float(by_key[str(int(float(key_text)))]))
        assert "inf" not in x_text and "nan" not in x_text


def test_numbers_are_what_python_float_accepts() -> None:
    rng = random.Random(1)
    alphabet = "0123456789+-.eE_ infINFnaNx,d\u0661\u06f5\uff11\U0001d7d7\u00b2y"
    texts = sorted({"".join(rng.choice(alphabet) for _ in range(rng.randint(1, 7))) for _ in range(20000)})
    texts = [text for text in texts if text == text.strip()]
    frame = pl.DataFrame({"v": texts})
    slow = frame.select(number_expr("v", [], special=True)).to_series().to_list()
    fast = frame.select(number_expr("v", [], special=False)).to_series().to_list()
    for text, exact, quick in zip(texts, slow, fast):
        assert exact == ref_number(text) == parse_number(text), text
        if text.isascii() and "_" not in text:  # the fast path is exact on such text
            assert quick == exact, text
    assert ref_number("1_000") == 1000.0 and ref_number("\u0661\u0662") == 12.0 and ref_number("\u00b2") is None


def test_values_needing_the_exact_number_path_are_read_as_float_reads_them() -> None:
    # "_" and non-ASCII digits take the exact path value by value; the plain cast alone would miss both
    rows = [[["a", "b"][i % 2], ["1_0", "2", "\u0661\u0662", "3.5"][i % 4], str(i)] for i in range(40)]
    data = to_csv(["label", "x", "n"], rows)
    config = DatasetConfig(target="label")
    prepared = prepare(data, config)
    assert_matches_reference(data, config, prepared)
    assert prepared.report.model_dump()["columns"][1]["role"] == "numeric"
    assert {row[1] for row in parse_matrix(prepared.train_csv)} <= {10.0, 2.0, 12.0, 3.5}


def test_the_serving_code_encodes_raw_rows_exactly_like_the_training_data() -> None:
    inference = pytest.importorskip("datadrop.serving.inference")
    header, rows = dirty_dataset()
    data = to_csv(header, rows)
    config = DatasetConfig(target="label", drop_columns=["id"], split={"validation": 0.3, "test": 0.15, "seed": 1})
    prepared = prepare(data, config)
    _, cleaned = ref_clean(data, "label", config.missing_values)
    where = ref_split(cleaned, "label", config.split.validation, config.split.test, config.split.seed)
    served = [inference.encode_row(prepared.recipe, row) for row, place in zip(cleaned, where) if place == "train"]
    trained = [row[1:] for row in parse_matrix(prepared.train_csv)]
    assert len(served) == len(trained)
    for serving_row, training_row in zip(served, trained):
        assert all(same_float(a, b) for a, b in zip(serving_row, training_row)), (serving_row, training_row)


def test_whitespace_is_exactly_what_str_strip_removes() -> None:
    python = {chr(code) for code in range(0x110000) if chr(code).isspace()}
    assert set(reading.WHITESPACE) == python
    padded = [f"\x1c {i * 3}\u3000\u00a0" for i in range(40)]
    data = to_csv(["label", "x"], [[["a", "b"][i % 2], value] for i, value in enumerate(padded)])
    prepared = prepare(data, DatasetConfig(target="label"))
    assert prepared.recipe["features"][0]["kind"] == "numeric"
    assert all(record[0] == record[0].strip() for record in held_out_records(prepared))


def test_missing_tokens_come_from_the_config() -> None:
    rows = [[["a", "b"][i % 2], "-999" if i % 4 == 0 else str(i), "unknown" if i % 3 == 0 else "z"] for i in range(60)]
    data = to_csv(["label", "x", "s"], rows)
    config = DatasetConfig(target="label", missing_values=["-999", "unknown"])
    prepared = prepare(data, config)
    assert prepared.recipe["missing_tokens"] == ["-999", "unknown"]
    assert missing_of(prepared) == {"label": 0, "x": 15, "s": 20}
    assert next(f for f in prepared.recipe["features"] if f["name"] == "s")["categories"] == ["z"]
    assert_matches_reference(data, config, prepared)


# ----------------------------------------------------------------------------------------------
# File-format tolerance: what real exports look like.


def test_crlf_bom_blank_lines_and_quoted_values_are_read() -> None:
    header, rows = dirty_dataset(90)
    data = b"\xef\xbb\xbf" + to_csv(header, rows, newline="\r\n") + b"\r\n\r\n   \r\n"
    config = DatasetConfig(target="label", drop_columns=["id"])
    prepared = prepare(data, config)
    assert prepared.recipe["columns"][0] == "id"
    assert prepared.report.rows.empty == 4
    assert prepared.report.detected.model_dump(exclude={"bytes"}) == {
        "format": "csv",
        "compression": "none",
        "encoding": "utf-8",
        "bom": True,
        "delimiter": ",",
        "line_endings": "CRLF",
    }
    assert_matches_reference(data, config, prepared)


def test_a_target_column_may_have_any_name() -> None:
    rows = [[["a", "b"][i % 2], str(i * 3)] for i in range(40)]
    prepared = prepare(to_csv(["n", "len"], rows), DatasetConfig(target="n"))
    assert prepared.report.target.classes == {"a": 20, "b": 20}


def test_a_header_that_looks_like_zlib_is_still_csv() -> None:
    rows = [[["a", "b"][i % 2], str(i * 3)] for i in range(40)]
    prepared = prepare(to_csv(["x^2", "y"], rows), DatasetConfig(target="x^2"))
    assert prepared.recipe["classes"] == ["a", "b"]


def test_report_gives_roles_types_missing_shares_summaries_and_drops() -> None:
    header, rows = dirty_dataset()
    prepared = prepare(to_csv(header, rows), DatasetConfig(target="label", drop_columns=["id"]))
    report = prepared.report
    columns = {column.name: column for column in report.columns}
    features = {feature["name"]: feature for feature in prepared.recipe["features"]}
    num = columns["num"]
    assert (num.role, num.type) == ("numeric", "number") and num.fill == features["num"]["fill"]
    assert isinstance(num.summary, NumericSummary) and num.summary.median == num.fill
    assert num.summary.min < num.summary.median < num.summary.max
    assert num.summary.not_numbers > 0  # "inf", "abc", ... in the training rows
    code = columns["code"]
    assert (code.role, code.type, code.reason, code.missing) == ("dropped", "text", "id_like", 0)
    assert code.detail and "identifier" in code.detail
    non_empty = report.rows.read - report.rows.empty
    assert columns["nothing"].missing == non_empty and columns["nothing"].missing_share == 1.0
    assert columns["nothing"].type == "empty"
    flag_missing = sum(row[9] == "" for row in rows[:-1])  # the last row is the empty one
    assert columns["flag"].missing == flag_missing and columns["flag"].missing_share == flag_missing / non_empty
    city = columns["city"].summary
    assert isinstance(city, CategoricalSummary) and city.levels == len(features["city"]["categories"])
    _, cleaned = ref_clean(to_csv(header, rows), "label", MISSING)
    where = ref_split(cleaned, "label", 0.15, 0.15, 42)
    counts = Counter(
        row["city"].casefold() for row, place in zip(cleaned, where) if place == "train" and row["city"] not in MISSING
    )
    most = max(counts.values())
    assert (city.top, city.top_count) == (min(value for value, count in counts.items() if count == most), most)
    assert {column.reason for column in report.dropped_columns} == {"drop_columns", "constant", "all_missing", "id_like"}
    steps = {(note.step, note.column) for note in report.normalisations}
    assert {("imputed", "num"), ("missing_level", "flag"), ("column_dropped", "code"), ("duplicates_dropped", None)} <= steps
    assert next(note.count for note in report.normalisations if note.step == "duplicates_dropped") == 3
    assert json.loads(report.model_dump_json()) == report.model_dump(mode="json")
    summary = report.summary()
    assert summary.rows_dropped == report.rows.dropped and summary.features == len(prepared.recipe["features"])
    assert summary.detected == "CSV, comma-separated, utf-8, LF line endings"


# ----------------------------------------------------------------------------------------------
# Memory: work in batches of columns, and a budget that rejects what would not fit


def distinct_numbers(rows: int, columns: int, seed: int = 5) -> bytes:
    """A wide table whose feature columns are all distinct decimals (the costly case: a distinct value per cell)."""
    rng = random.Random(seed)
    header = ["target", *(f"x{index}" for index in range(columns))]
    return to_csv(header, [[["a", "b"][i % 2], *(f"{rng.random():.9f}" for _ in range(columns))] for i in range(rows)])


def test_work_done_a_batch_of_columns_at_a_time_gives_the_same_output(monkeypatch: pytest.MonkeyPatch) -> None:
    header, rows = dirty_dataset()
    data = to_csv(header, rows)
    config = DatasetConfig(target="label", drop_columns=["id"], split={"validation": 0.2, "test": 0.2, "seed": 11})
    whole = prepare(data, config)
    # the table's dictionary outgrows its rows, so encoding takes the keyed lookups, here one batch of features each
    monkeypatch.setattr(dataprep, "PROFILE_CELLS", 200)  # one or two columns per profile and lookup batch
    monkeypatch.setattr(dataprep, "MEDIAN_ROWS", 20)  # medians a column at a time
    batched = prepare(data, config)
    assert_matches_reference(data, config, batched)
    assert written_splits(batched) == written_splits(whole)
    assert batched.recipe == whole.recipe and batched.report == whole.report


def test_a_long_columns_profile_counts_alike_in_32_and_64_bit_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    header, rows = dirty_dataset()
    data = to_csv(header, rows)
    config = DatasetConfig(target="label", split={"validation": 0.2, "test": 0.2, "seed": 11})
    monkeypatch.setattr(dataprep, "PROFILE_CELLS", 200)  # a column a batch: the long column's keys
    narrow = prepare(data, config)
    monkeypatch.setattr(dataprep, "MAX_CODES_FOR_32_BIT_KEYS", 0)  # as when the dictionary holds over 2**30 texts
    wide_keys = prepare(data, config)
    assert written_splits(narrow) == written_splits(wide_keys)
    assert narrow.recipe == wide_keys.recipe and narrow.report == wide_keys.report


def test_a_wide_upload_of_distinct_numbers_is_rejected_when_it_would_not_fit(monkeypatch: pytest.MonkeyPatch) -> None:
    wider = distinct_numbers(1000, 300)  # 300,000 distinct values: about 120 MB with headroom, by the line
    with pytest.raises(DatasetRejected) as caught:
        prepare(wider, DatasetConfig(target="target"), max_memory_bytes=100 * 2**20)
    reason = caught.value.reason
    assert "distinct texts" in reason and "105 MB the prepare function has" in reason
    assert "upload fewer columns" in reason and "a sample of the rows" in reason and "MemorySize" in reason
    # while fitting: the fixed parts of the measured line set to nothing, so that only the counts decide
    data = distinct_numbers(400, 300)
    monkeypatch.setattr(dataprep, "RUNTIME_BYTES", 0)
    monkeypatch.setattr(dataprep, "CHUNK_BYTES_PER_CELL", 0)
    monkeypatch.setattr(dataprep, "PROFILE_CELLS", 400 * 30)  # columns counted 30 at a time
    cells, distinct = 400 * 301, 400 * 300 + 2  # every feature value once, and the two classes
    read_needs = dataprep.MEMORY_HEADROOM * (dataprep.READ_BYTES_PER_CELL * cells + dataprep.READ_BYTES_PER_TEXT * distinct)
    prepare_needs = dataprep.MEMORY_HEADROOM * (
        dataprep.PREPARE_BYTES_PER_CELL * cells + dataprep.PREPARE_BYTES_PER_DISTINCT * distinct
    )
    assert read_needs < prepare_needs
    with pytest.raises(DatasetRejected) as caught:
        prepare(data, DatasetConfig(target="target"), max_memory_bytes=int((read_needs + prepare_needs) / 2))
    reason = caught.value.reason
    assert reason.startswith("preparing this upload needs at least")  # said before every column was counted
    assert "its 301 columns hold at least" in reason and "distinct values between them in 400 rows" in reason
    counted = int(re.search(r"hold at least ([0-9,]+) distinct", reason).group(1).replace(",", ""))  # type: ignore[union-attr]
    assert distinct / 2 < counted < distinct  # stopped at the batch that crossed the budget, halfway
    assert "upload fewer columns" in reason and "MemorySize" in reason
    assert prepare(data, DatasetConfig(target="target"), max_memory_bytes=int(prepare_needs * 1.1)).recipe["features"]


@pytest.mark.parametrize("compressed", [False, True], ids=["plain: polars' streaming engine", "gzip: by chunks"])
def test_reading_stops_at_the_chunk_where_the_distinct_texts_outgrow_the_budget(
    monkeypatch: pytest.MonkeyPatch, compressed: bool
) -> None:
    rows, columns = 100_000, 10  # 8 MB: polars' streaming engine hands its reads on in pieces of about 2 MB
    header = ",".join(["target", *(f"x{column}" for column in range(columns))])
    data = "\n".join(
        [header, *(f"{'ab'[row % 2]}," + ",".join(f"{row}.{column}" for column in range(columns)) for row in range(rows))]
    )
    data = data.encode()
    if compressed:
        data = gzip.compress(data, mtime=0)
        monkeypatch.setattr(reading, "STREAM_CHUNK", 1 << 16)  # about 800 rows a chunk
    monkeypatch.setattr(dataprep, "RUNTIME_BYTES", 0)
    monkeypatch.setattr(dataprep, "CHUNK_BYTES_PER_CELL", 0)
    with pytest.raises(DatasetRejected) as caught:
        prepare(data, DatasetConfig(target="target"), max_memory_bytes=1_000_000)  # about 10,000 distinct texts
    reason = caught.value.reason
    assert reason.startswith("reading this upload needs at least")
    first = int(re.search(r"its first ([0-9,]+) values", reason).group(1).replace(",", ""))  # type: ignore[union-attr]
    assert first < rows * (columns + 1) / 4  # stopped early in the file, not after reading it all


def test_a_budget_that_fits_changes_nothing(penguins: bytes) -> None:
    config = DatasetConfig(target="species")
    unlimited = prepare(penguins, config)
    lambda_3008 = prepare(penguins, config, max_memory_bytes=(3008 - 200) * 2**20)
    assert (lambda_3008.train_csv, lambda_3008.validation_csv, lambda_3008.recipe, lambda_3008.report) == (
        unlimited.train_csv,
        unlimited.validation_csv,
        unlimited.recipe,
        unlimited.report,
    )
    data = distinct_numbers(400, 300)  # 120,000 distinct values: about 80 MB by the line
    assert prepare(data, DatasetConfig(target="target"), max_memory_bytes=(3008 - 200) * 2**20).recipe["features"]
    assert prepare(penguins, config, max_memory_bytes=(512 - 200) * 2**20).report == unlimited.report  # a small function
