"""The local twin of SageMaker batch transform: SplitType Line, AssembleWith Line, MultiRecord."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

from datadrop.local.model import ModelFiles, load_model

__all__ = ["run_batch_transform"]


def _csv_records(lines: Iterator[str]) -> Iterator[str]:
    """Group physical lines into CSV records: a quoted field may span lines, a record never splits."""
    pending: list[str] = []
    quotes = 0
    for line in lines:
        pending.append(line)
        quotes += line.count('"')
        if quotes % 2 == 0:
            record = "".join(pending).rstrip("\r\n")
            pending, quotes = [], 0
            if record.strip():
                yield record
    if pending:
        record = "".join(pending).rstrip("\r\n")
        if record.strip():
            yield record  # unbalanced quote at EOF: let input_fn report it


def _line_records(lines: Iterator[str]) -> Iterator[str]:
    for line in lines:
        record = line.rstrip("\r\n")
        if record.strip():
            yield record


def _batched(records: Iterator[str], size: int) -> Iterator[list[str]]:
    while chunk := list(itertools.islice(records, size)):
        yield chunk


def run_batch_transform(
    files: ModelFiles,
    input_file: Path,
    output_file: Path,
    content_type: str = "text/csv",
    accept: str = "application/jsonlines",
    batch_size: int = 1000,
) -> int:
    """SageMaker batch transform with SplitType=Line, AssembleWith=Line, BatchStrategy=MultiRecord.

    Each mini-batch is an independent request through input_fn/predict_fn/output_fn (so, as on
    SageMaker, a header line only describes the mini-batch it lands in). Writes one output line
    per data record and returns the number of records predicted.
    """
    if batch_size < 1:
        raise ValueError("batch_size must be >= 1")
    media = content_type.split(";", 1)[0].strip().lower()
    if media == "text/csv":
        splitter = _csv_records
    elif media in ("application/jsonlines", "application/x-jsonlines", "application/jsonl"):
        splitter = _line_records
    else:
        raise ValueError(f"batch transform supports text/csv and application/jsonlines input, not {content_type!r}")
    model = load_model(files)
    output_file = Path(output_file)
    output_file.parent.mkdir(parents=True, exist_ok=True)
    written = 0
    start = 1
    with open(input_file, encoding="utf-8-sig", newline="") as src, open(output_file, "w", encoding="utf-8", newline="\n") as dst:
        for batch in _batched(splitter(iter(src)), batch_size):
            body = "\n".join(batch)
            try:
                payload, _ = model.answer(body, content_type, accept)
            except ValueError as exc:
                raise ValueError(f"records {start}-{start + len(batch) - 1} of {Path(input_file).name}: {exc}") from exc
            text = payload.decode("utf-8")
            out_lines = text.split("\n") if text else []
            expected = len(batch)
            if len(out_lines) != expected:
                raise RuntimeError(
                    f"output_fn returned {len(out_lines)} lines for {expected} records; Accept {accept} cannot be assembled by line"
                )
            dst.writelines(line + "\n" for line in out_lines)
            written += expected
            start += len(batch)
    return written
