"""The held-out test split as written for the batch transform: JSON Lines, one record per line, so
SageMaker's SplitType Line cannot cut a record whose values hold line breaks."""

from __future__ import annotations

import csv
import io
import json

from datadrop.intake import held_out_rows_as_json_lines
from datadrop.names import held_out_content_type


def _csv(rows: list[list[str]]) -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    return buffer.getvalue().encode()


def test_a_value_with_line_breaks_stays_in_its_record_on_one_line() -> None:
    rows = [["Biscoe", "a note\nover two lines", ""], ["Dream", "plain", "4,5"], ["Torgersen", "x" * 200_000, "\r\n"]]
    body = held_out_rows_as_json_lines(_csv(rows), ["island", "note", "size"])
    lines = body.decode().split("\n")
    assert lines[-1] == "" and len(lines[:-1]) == len(rows)  # what a line split sees: exactly one line per record
    records = [json.loads(line) for line in lines[:-1]]
    assert records == [dict(zip(["island", "note", "size"], row, strict=True)) for row in rows]


def test_non_ascii_values_are_kept_as_written() -> None:
    body = held_out_rows_as_json_lines(_csv([["Île", "naïve"]]), ["île", "word"])
    assert json.loads(body) == {"île": "Île", "word": "naïve"} and "Île".encode() in body


def test_the_transform_reads_each_version_in_its_own_format() -> None:
    assert held_out_content_type("s3://b/datasets/d/v/test/test.jsonl") == "application/jsonlines"
    assert held_out_content_type("s3://b/datasets/d/v/test/test.csv") == "text/csv"  # versions prepared before
