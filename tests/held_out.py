"""Reading the splits prepare writes (the held-out test split: JSON Lines of raw texts), for the tests."""

from __future__ import annotations

import json

from datadrop.dataprep import PreparedDataset


def held_out_records(prepared: PreparedDataset) -> list[list[str]]:
    """The test split's rows, each its values in column order (every line one JSON array of texts)."""
    lines = prepared.test_rows_jsonl.decode().split("\n")
    assert lines[-1] == "", "the test split ends with a line feed"
    records = [json.loads(line) for line in lines[:-1]]
    assert all(isinstance(record, list) and all(isinstance(value, str) for value in record) for record in records)
    return records


def written_splits(prepared: PreparedDataset) -> tuple[bytes, bytes, bytes]:
    """The three files prepare writes, as they are written: train, validation, test (to compare two prepares)."""
    return prepared.train_csv, prepared.validation_csv, prepared.test_rows_jsonl
