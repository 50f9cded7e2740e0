"""The corpus of bad and awkward files (tests/awkward_files.py) through `prepare`: each one prepares,
and says what it detected, or is rejected with a reason naming the problem and the fix. Nothing
else may escape: any other exception is a crash."""

from __future__ import annotations

import csv
import io
import json

import pytest
from datadrop import reading
from datadrop.config import DatasetConfig
from datadrop.dataprep import DatasetRejected, prepare

from tests.awkward_files import CORPUS, Case, plain
from tests.held_out import held_out_records, written_splits


def test_the_corpus_is_big_enough_and_mixed() -> None:
    assert len(CORPUS) >= 20
    assert sum(case.prepares for case in CORPUS) >= 10 and sum(not case.prepares for case in CORPUS) >= 10
    assert len({case.name for case in CORPUS}) == len(CORPUS)


@pytest.mark.parametrize("case", CORPUS, ids=lambda case: case.name)
def test_each_awkward_file_prepares_or_is_rejected_with_a_specific_reason(case: Case) -> None:
    data = case.make()
    original = bytes(data)
    config = DatasetConfig(target=case.target)
    try:
        prepared = prepare(data, config)
    except DatasetRejected as rejection:
        assert not case.prepares, f"rejected: {rejection.reason}"
        reason = rejection.reason
        assert reason == str(rejection) and "\n" not in reason and "Traceback" not in reason
        for word in case.reason_words:
            assert word in reason, f"{word!r} not in {reason!r}"
    else:
        assert case.prepares, f"prepared, but should be rejected with {case.reason_words}"
        report = prepared.report
        assert report.detected.bytes == len(data)
        assert sum(split.rows for split in report.splits.values()) == report.rows.usable
        train_rows = prepared.train_csv.decode().splitlines()
        assert len(train_rows) == report.splits["train"].rows
        test_records = held_out_records(prepared)
        assert len(test_records) == len(prepared.test_labels) == report.splits["test"].rows
        assert [column.name for column in report.columns] == prepared.recipe["columns"]
        assert case.check is not None
        case.check(prepared)
    assert data == original


def test_the_same_table_reads_the_same_whatever_its_format() -> None:
    """CSV, gzip, semicolons, tabs, UTF-16: one table, so the same splits, byte for byte."""
    by_name = {case.name: case for case in CORPUS}
    config = DatasetConfig(target="label")
    reference = prepare(by_name["gzip-compressed CSV"].make(), config)
    for name in ("tab-separated", "pipe-separated"):
        other = prepare(by_name[name].make(), config)
        assert written_splits(other) == written_splits(reference), name
    assert reference.report.normalisations[0].step == "decompressed"


def test_a_gzip_file_that_unpacks_beyond_the_memory_budget_is_rejected_up_front() -> None:
    by_name = {case.name: case for case in CORPUS}
    data = by_name["gzip-compressed CSV"].make()
    unpacked = len(plain())
    assert prepare(data, DatasetConfig(target="label"), max_bytes=unpacked).report.detected.compression == "gzip"
    with pytest.raises(DatasetRejected) as rejected:
        prepare(data, DatasetConfig(target="label"), max_bytes=unpacked - 1)
    assert "more than" in rejected.value.reason and "MemorySize" in rejected.value.reason


def test_a_very_wide_file_keeps_the_event_summary_small() -> None:
    long = "a column name that goes on " * 20
    header = ["label", "x"] + [f"{long}{j}" for j in range(300)]
    rows = [[["p", "q"][i % 2], str(i * 3)] + ["same"] * 300 for i in range(60)]
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows([header, *rows])
    summary = prepare(buffer.getvalue().encode(), DatasetConfig(target="label")).report.summary()
    assert len(summary.dropped_columns) == 20 and all(len(name) <= 100 for name in summary.dropped_columns)
    assert len(summary.model_dump_json()) < 4000


def test_a_column_name_with_a_nul_character_is_rejected_by_name() -> None:
    lines = [json.dumps({"label": ["p", "q"][i % 2], "x\u0000y": i}) for i in range(40)]
    with pytest.raises(DatasetRejected) as rejected:
        prepare("\n".join(lines).encode(), DatasetConfig(target="label"))
    assert "column 2 of 2 has a NUL character in its name" in rejected.value.reason


@pytest.mark.parametrize(
    ("first_line", "expected"),
    [
        ('{"label": "p", "x": 1}', "lines"),
        ("[", "array"),
        ('[{"label": "p"},', "array"),
        ("{id},label,x", None),  # a CSV header may start like JSON
        ("[id],label,x", None),
        ("label,x", None),
    ],
)
def test_json_is_told_apart_from_csv_by_its_first_line(first_line: str, expected: str | None) -> None:
    assert reading._json_shape(f"  {first_line}\n...\n".encode()) == expected


def test_a_csv_whose_header_starts_with_a_brace_is_csv() -> None:
    rows = [[["p", "q"][i % 2], str(i * 3)] for i in range(60)]
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows([["{label}", "[x]"], *rows])
    prepared = prepare(buffer.getvalue().encode(), DatasetConfig(target="{label}"))
    assert prepared.report.detected.format == "csv" and prepared.recipe["columns"] == ["{label}", "[x]"]


@pytest.mark.parametrize(
    ("bad_line", "words"),
    [
        ("[1, 2]", ["line 4 of the JSON Lines file is a JSON list, not an object"]),
        ("5", ["line 4 of the JSON Lines file is a JSON int, not an object"]),
        ('{"label": "p"} {"label": "q"}', ["line 4 of the JSON Lines file is not valid JSON (Extra data"]),
    ],
)
def test_a_json_lines_file_says_which_line_is_not_an_object(bad_line: str, words: list[str]) -> None:
    lines = [json.dumps({"label": ["p", "q"][i % 2], "x": i}) for i in range(40)]
    lines[3] = bad_line
    with pytest.raises(DatasetRejected) as rejected:
        prepare("\n".join(lines).encode(), DatasetConfig(target="label"))
    for word in words:
        assert word in rejected.value.reason
