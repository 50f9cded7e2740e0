"""The held-out test split as prepare writes it for the batch transform: JSON Lines, one record per
line, so SageMaker's SplitType Line cannot cut a record whose values hold line breaks."""

from __future__ import annotations

import csv
import io
import json

import pytest
from datadrop.config import DatasetConfig
from datadrop.dataprep import prepare
from datadrop.names import held_out_content_type


def _csv(header: list[str], rows: list[list[str]]) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue().encode()


def _test_lines(data: bytes, target: str) -> list[str]:
    prepared = prepare(data, DatasetConfig(target=target, split={"validation": 0.1, "test": 0.4}))
    lines = prepared.test_rows_jsonl.decode().split("\n")  # what a line split sees
    assert lines[-1] == ""
    assert len(lines) - 1 == len(prepared.test_labels) == prepared.report.splits["test"].rows
    return lines[:-1]


def test_a_value_with_line_breaks_stays_in_its_record_on_one_line() -> None:
    notes = ["a note\nover two lines", "plain", "x" * 200_000, "ends with\r\n", "4,5"]
    rows = [[["yes", "no"][i % 2], notes[i % len(notes)] + f" {i}", str(i % 7)] for i in range(60)]
    lines = _test_lines(_csv(["label", "note", "size"], rows), "label")
    records = [json.loads(line) for line in lines]  # [note, size]: the columns but the target, in order
    by_note = {row[1].strip(): row for row in rows}
    assert all(by_note[note][2] == size for note, size in records)  # each record is one whole row
    assert any("\n" in note for note, _ in records) and any(len(note) > 131_072 for note, _ in records)


def test_non_ascii_values_are_kept_as_written() -> None:
    rows = [[["oui", "non"][i % 2], ["Île", "naïve", "Zü\u2028rich"][i % 3], str(i)] for i in range(60)]
    lines = _test_lines(_csv(["étiquette", "île", "n°"], rows), "étiquette")
    assert {json.loads(line)[0] for line in lines} == {"Île", "naïve", "Zü\u2028rich"}
    assert all("\\u" not in line for line in lines)  # UTF-8 as written, not escaped


@pytest.mark.parametrize("rows", [60, 3000], ids=["few rows: each cell encoded", "many rows: each distinct text encoded once"])
def test_every_line_is_the_json_array_of_the_rows_texts(rows: int) -> None:
    awkward = ['say "hi"', "back\\slash", "tab\there", "bell\x07", "Zü\u2028rich", "two\nlines", "", "plain"]
    table = [[["a", "b"][i % 2], awkward[i % len(awkward)], awkward[(i // 3) % len(awkward)], str(i % 50)] for i in range(rows)]
    data = _csv(["label", "x", "y", "n"], table)
    prepared = prepare(data, DatasetConfig(target="label", split={"validation": 0.1, "test": 0.4}))
    lines = prepared.test_rows_jsonl.decode().split("\n")[:-1]
    written = {tuple(row[1:]) for row in table}
    for line in lines:
        record = json.loads(line)
        assert tuple(record) in written  # a row's own texts, in column order
        assert line == json.dumps(record, ensure_ascii=False, separators=(",", ":"))  # plain JSON, UTF-8 as written
    assert len(lines) == prepared.report.splits["test"].rows


def test_the_transform_reads_each_version_in_its_own_format() -> None:
    assert held_out_content_type("s3://b/datasets/d/v/test/test.jsonl") == "application/jsonlines"
    assert held_out_content_type("s3://b/datasets/d/v/test/test.csv") == "text/csv"  # versions prepared before
