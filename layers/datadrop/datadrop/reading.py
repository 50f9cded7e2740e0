"""Reading an uploaded dataset: detect what it is, decode it, and diagnose it when it is bad.

`read_upload(path or bytes)` turns an upload into a table of stripped text, as the encoding contract
in `datadrop.recipe` wants, and says what it detected. The table holds each value as a UInt32 code
into one dictionary of distinct texts (`Table.values`): 4 bytes a value however long the text, and
later steps work on distinct values instead of every row. Detection looks at the content, never at
the file's name:

* gzip (first bytes 1f 8b) is decompressed, and the content detected again;
* Parquet (first bytes `PAR1`) is read with polars, every value cast to text;
* JSON Lines (the first non-blank character is `{`) is read with polars, every value as text;
* anything else is CSV text: UTF-8 (with or without a BOM), else UTF-16 with a BOM, else cp1252 /
  latin-1 (every byte is a character there, so this never fails; a file that is partly UTF-8 is
  rejected instead, since reading it as cp1252 would garble its UTF-8 part). The field separator
  is the one of comma, semicolon, tab and pipe that splits the first lines most consistently.

Two paths read a file. The common case, a UTF-8 CSV file (gzip-compressed or not, no BOM), is
streamed (`_read_csv_streamed`): memory holds the codes, the dictionary and what is being parsed, never
the file or its text. An uncompressed file is parsed and cast to codes by polars' streaming engine in one
pass on every core, while a thread of ours checks and counts its bytes; a gzip-compressed one is
decompressed and parsed 64 MB at a time. Everything else (other encodings, a BOM, Parquet, JSON Lines,
rows of the wrong length, broken quoting, a file that does not parse) takes the in-memory path
(`read_table`), which holds the whole file: slower, but it is the one that decodes, drops malformed rows
and diagnoses. The streamed path hands every case it does not handle exactly like `read_table` over to
it, so both give the same table.

Anything unusable raises `DatasetRejected`, whose reason says what is wrong (which line, which
column) and what to change. The diagnosis of a file polars cannot parse runs only then, slowly
but precisely (`_diagnose`).
"""

from __future__ import annotations

import codecs
import csv
import gzip
import io
import json
import math
import os
import threading
import zlib
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextvars import ContextVar, copy_context
from dataclasses import dataclass, replace
from typing import BinaryIO

import polars as pl

from datadrop.quality import DELIMITER_NAMES, DetectedFormat, Normalisation

# Exactly the characters Python's str.strip() removes (polars' default strip set lacks \x1c-\x1f).
WHITESPACE = (
    "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006"
    "\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)

DELIMITERS = (",", ";", "\t", "|")  # in order of preference when two split the file equally well
SNIFF_BYTES = 1 << 16  # the head of the file the separator is chosen on
SNIFF_RECORDS = 50

# First bytes of formats people upload by mistake (gzip, Parquet and UTF-16 are read instead).
_MAGIC = (
    (b"PK\x03\x04", "a ZIP archive or an Excel workbook (.xlsx); export the sheet as CSV (UTF-8) and upload that"),
    (b"\xd0\xcf\x11\xe0", "an old Excel workbook (.xls); export the sheet as CSV (UTF-8) and upload that"),
    (b"(\xb5/\xfd", "zstd-compressed data; upload the uncompressed file, or compress it with gzip"),
    (b"BZh", "bzip2-compressed data; upload the uncompressed file, or compress it with gzip"),
    (b"%PDF", "a PDF document, not a CSV file"),
    (b"\xff\xfe\x00\x00", "UTF-32 text; save it as UTF-8 CSV (in Excel: 'CSV UTF-8') and upload again"),
)
_GZIP = b"\x1f\x8b"
_PARQUET = b"PAR1"
_UTF16_BOMS = ((codecs.BOM_UTF16_LE, "utf-16-le"), (codecs.BOM_UTF16_BE, "utf-16-be"))
_CP1252_ONLY = bytes(range(0x80, 0xA0))  # bytes that are printable in cp1252 but control codes in latin-1


class DatasetRejected(Exception):
    """Input we cannot use. `reason` is one sentence a person can act on: what is wrong and what to fix."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Table:
    """The uploaded rows as text, coded: what `datadrop.dataprep` cleans and splits."""

    columns: list[str]  # header names, stripped
    frame: pl.DataFrame  # the data rows, one UInt32 column per name: codes into `values`; blank rows removed
    values: pl.Series  # String: the stripped text of each code (values[code]); "" is code 0
    rows_read: int  # data rows in the file, blank ones included
    empty_rows: int
    detected: DetectedFormat
    normalisations: list[Normalisation]
    malformed_rows: int = 0  # CSV rows with the wrong number of fields, dropped (counted in rows_read)


@dataclass(frozen=True)
class _TextTable:
    """A table of stripped text (String columns), before it is coded."""

    columns: list[str]
    frame: pl.DataFrame
    rows_read: int
    empty_rows: int
    detected: DetectedFormat
    normalisations: list[Normalisation]
    malformed_rows: int = 0


class _Dictionary:
    """A private dictionary of texts (polars Categories) for one table, with "" as code 0.

    polars keeps a Categories mapping only while a Series of its type exists, so one is kept here.
    """

    def __init__(self) -> None:
        self.dtype = pl.Categorical(pl.Categories.random())
        self._kept = pl.Series([""]).cast(self.dtype)

    def codes(self, texts: pl.Expr) -> pl.Expr:
        return texts.cast(self.dtype).to_physical()

    def coded(self, texts: pl.Series) -> pl.Series:
        return texts.cast(self.dtype).to_physical().fill_null(0)

    def values(self, frame: pl.DataFrame) -> pl.Series:
        """The texts of codes 0 .. the largest in `frame` (Categories.to_series() would loop in Python)."""
        size = 1 + max((code for code in frame.max().row(0) if code is not None), default=0)
        return pl.select(pl.int_range(0, size, dtype=pl.UInt32).cat.to(self.dtype).cast(pl.String)).to_series()


def _coded(table: _TextTable) -> Table:
    dictionary = _Dictionary()
    frame = table.frame.select(dictionary.codes(pl.all()))
    return Table(
        columns=table.columns,
        frame=frame,
        values=dictionary.values(frame),
        rows_read=table.rows_read,
        empty_rows=table.empty_rows,
        detected=table.detected,
        normalisations=table.normalisations,
        malformed_rows=table.malformed_rows,
    )


def read_upload(
    source: bytes | str | os.PathLike[str],
    max_bytes: int | None = None,
    max_malformed_share: float = 0.0,
    max_in_memory_bytes: int | None = None,
) -> Table:
    """Read an upload (its bytes, or the path of a file holding them): streamed when it is a plain UTF-8 CSV
    file, gzip-compressed or not; anything else is read into memory by `read_table`, and rejected when it is
    larger than `max_in_memory_bytes`. Raises DatasetRejected."""
    streamed = _read_csv_streamed(source, max_bytes)
    if streamed is not None:
        return streamed
    size = len(source) if isinstance(source, bytes) else os.path.getsize(source)
    if max_in_memory_bytes is not None and size > max_in_memory_bytes:
        raise DatasetRejected(
            f"the uploaded file is {size / 1e6:.1f} MB and has to be read whole into memory (it is not a plain UTF-8 "
            "CSV file, or has rows of the wrong length or broken quoting), which the prepare function's memory does "
            f"for files up to {max_in_memory_bytes / 1e6:.1f} MB: save it as a UTF-8 CSV file (gzip is fine) with "
            "one record per line, upload a smaller sample, or raise PrepareFunction's MemorySize in template.yaml"
        )
    if isinstance(source, bytes):
        data = source
    else:
        with open(source, "rb") as file:
            data = file.read()
    if max_in_memory_bytes is not None:
        max_bytes = max_in_memory_bytes if max_bytes is None else min(max_bytes, max_in_memory_bytes)
    return read_table(data, max_bytes, max_malformed_share)


def read_table(data: bytes, max_bytes: int | None = None, max_malformed_share: float = 0.0) -> Table:
    """Detect the format of `data`, read it into memory and check its header. Raises DatasetRejected.

    `max_bytes` bounds what a compressed file may decompress to (the caller's memory budget; the
    size of the upload itself is checked before it is read). `max_malformed_share`: the share of a
    CSV file's rows that may have the wrong number of fields; they are dropped and counted. More
    than that rejects the file, naming the first bad lines.
    """
    return _coded(_read_text_table(data, max_bytes, max_malformed_share))


def _read_text_table(data: bytes, max_bytes: int | None, max_malformed_share: float) -> _TextTable:
    size = len(data)
    if not data:
        raise DatasetRejected("the uploaded file is empty (0 bytes): upload a CSV file with a header row and data rows")
    compression = "none"
    if data.startswith(_GZIP):
        data = _gunzip(data, max_bytes)
        compression = "gzip"
        if not data:
            raise DatasetRejected(
                "the uploaded file is gzip-compressed but holds nothing (0 bytes uncompressed): "
                "compress the CSV file itself and upload again"
            )
    if data.startswith(_PARQUET):
        return _read_parquet(data, DetectedFormat(format="parquet", compression=compression, bytes=size))
    for magic, what in _MAGIC:
        if data.startswith(magic):
            raise DatasetRejected(f"the uploaded file is not a CSV text file: it looks like {what}")
    if data.startswith(_GZIP):
        raise DatasetRejected("the uploaded file is gzip-compressed twice: compress the CSV file once and upload again")
    data, encoding, bom = _decode(data)
    detected = DetectedFormat(format="csv", compression=compression, encoding=encoding, bom=bom, bytes=size)
    if data.isspace():
        raise DatasetRejected("the uploaded file contains only whitespace: upload a CSV file with a header row and data rows")
    shape = _json_shape(data)
    if shape == "array":
        raise DatasetRejected(
            "the uploaded file looks like a JSON array, which datadrop does not read: write one JSON object per line "
            "(JSON Lines), or upload a CSV file"
        )
    if shape == "lines":
        detected = detected.model_copy(update={"format": "jsonl", "line_endings": _line_endings(data)})
        return _read_json_lines(data, detected)
    return _read_csv(data, detected, max_malformed_share)


def _json_shape(data: bytes) -> str | None:
    """ "lines" when the first line is a JSON object, "array" when the text opens a JSON array, else None
    (a CSV header may start with "{" or "[" too)."""
    head = data[:SNIFF_BYTES].lstrip()
    if head[:1] not in (b"{", b"["):
        return None
    first_line = head.split(b"\n", 1)[0].strip()
    if head.startswith(b"["):
        return "array" if first_line == b"[" or first_line.startswith((b"[{", b"[ {")) else None
    try:
        return "lines" if isinstance(json.loads(first_line), dict) else None
    except ValueError:
        return None


# --------------------------------------------------------------------------------------------
# Bytes to UTF-8 text


def _gunzip(data: bytes, max_bytes: int | None) -> bytes:
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(data)) as stream:
            content = stream.read(-1 if max_bytes is None else max_bytes + 1)
    except (OSError, EOFError, zlib.error) as error:
        raise DatasetRejected(
            f"the uploaded file starts like gzip-compressed data but does not decompress ({error}): it may be cut off; "
            "compress it again (or upload the uncompressed file)"
        ) from None
    if max_bytes is not None and len(content) > max_bytes:
        raise _too_large_uncompressed("gzip", max_bytes)
    return content


def _decode(data: bytes) -> tuple[bytes, str, bool]:
    """(the text as UTF-8 without a BOM, the encoding detected, whether it had a BOM)."""
    for mark, encoding in _UTF16_BOMS:
        if data.startswith(mark):
            try:
                return data[len(mark) :].decode(encoding).encode(), encoding, True
            except UnicodeDecodeError as error:
                raise DatasetRejected(
                    f"the uploaded file starts with a UTF-16 byte order mark but is not valid UTF-16 (at byte {error.start}): "
                    "save it as UTF-8 CSV (in Excel: 'CSV UTF-8') and upload again"
                ) from None
    bom = data.startswith(codecs.BOM_UTF8)
    if bom:
        data = data[len(codecs.BOM_UTF8) :]
    if b"\x00" in data:
        raise DatasetRejected(
            "the uploaded file contains NUL bytes, so it is a binary file (or UTF-16 text without a byte order mark), "
            "not CSV text: upload a comma-separated text file encoded as UTF-8"
        )
    if _looks_binary(data[:SNIFF_BYTES]):
        raise DatasetRejected(
            "the uploaded file is full of control characters, so it is a binary file, not CSV text: "
            "upload a comma-separated text file encoded as UTF-8"
        )
    bad = None if data.isascii() else _find_invalid_utf8(data)
    if bad is None:
        encoding = "utf-8"
    else:
        if not data.decode("utf-8", errors="replace").replace("\ufffd", "").isascii():
            line, byte = bad
            raise DatasetRejected(
                f"the uploaded file is not UTF-8 text (byte 0x{byte:02x} on line {line} is not valid UTF-8, while other "
                "lines are UTF-8): it mixes two encodings; save it as UTF-8 CSV (in Excel: 'CSV UTF-8') and upload again"
            )
        try:
            text = data.decode("cp1252")
            encoding = "cp1252" if len(data.translate(None, _CP1252_ONLY)) < len(data) else "latin-1"
        except UnicodeDecodeError:  # 0x81, 0x8d, 0x8f, 0x90 or 0x9d: not cp1252, so latin-1
            text, encoding = data.decode("latin-1"), "latin-1"
        data = text.encode()
    return data, encoding, bom


# Control codes that text does not use (tab, line breaks and the \x1c-\x1f separators Python strips are text).
_BINARY_CONTROLS = [bytes([code]) for code in (*range(1, 9), *range(0x0E, 0x1C), 0x7F)]


def _looks_binary(head: bytes) -> bool:
    """More than 3% of the bytes are control codes: random bytes hold about 8%, text none."""
    controls = sum(head.count(code) for code in _BINARY_CONTROLS)
    return controls > max(8, 3 * len(head) // 100)


def _find_invalid_utf8(data: bytes, chunk: int = 1 << 22) -> tuple[int, int] | None:
    """(line number, byte value) of the first byte that is not valid UTF-8, or None."""
    start, line = 0, 1
    while start < len(data):
        end = data.find(b"\n", min(start + chunk, len(data)))  # "\n" never splits a UTF-8 sequence
        end = len(data) if end < 0 else end + 1
        piece = data[start:end]
        try:
            piece.decode("utf-8")
        except UnicodeDecodeError as error:
            return line + piece.count(b"\n", 0, error.start), piece[error.start]
        line += piece.count(b"\n")
        start = end
    return None


def _line_endings(data: bytes) -> str | None:
    lf, crlf = data.count(b"\n"), data.count(b"\r\n")
    if lf == 0:
        return None
    if crlf == 0:
        return "LF"
    # Quoted values may hold bare line feeds, so a file mostly ending its lines with CRLF is CRLF.
    return "CRLF" if 2 * crlf > lf else "mixed"


# --------------------------------------------------------------------------------------------
# CSV


def _read_csv(data: bytes, detected: DetectedFormat, max_malformed_share: float = 0.0) -> _TextTable:
    if b"\n" not in data and b"\r" in data:
        raise DatasetRejected(
            "the uploaded file ends its lines with CR only (old Mac format), so it reads as one long line: "
            "save it with LF or CRLF line endings (e.g. as 'CSV UTF-8') and upload again"
        )
    first_line_end = data.find(b"\n")
    if first_line_end >= 0 and data[:first_line_end].strip(b" \t\r") == b"":
        raise DatasetRejected(
            "the uploaded file starts with a blank line, but the first line must be the header: "
            "remove the blank line(s) before the column names"
        )
    separator = sniff_delimiter(data)
    detected = detected.model_copy(update={"delimiter": separator, "line_endings": _line_endings(data)})
    try:
        return _parse_csv(data, detected, separator)
    except DatasetRejected as rejection:
        kept = _without_malformed_rows(data, separator, max_malformed_share, rejection)
        if kept is None:
            raise
    data, bad_lines = kept
    table = _parse_csv(data, detected, separator)
    shown = ", ".join(str(line) for line in bad_lines[:MALFORMED_LINES_SHOWN])
    more = f" and {len(bad_lines) - MALFORMED_LINES_SHOWN} more" if len(bad_lines) > MALFORMED_LINES_SHOWN else ""
    note = Normalisation(
        step="malformed_rows_dropped",
        detail=f"rows with the wrong number of fields dropped (lines {shown}{more})",
        count=len(bad_lines),
    )
    return replace(
        table,
        rows_read=table.rows_read + len(bad_lines),
        malformed_rows=len(bad_lines),
        normalisations=[*table.normalisations, note],
    )


MALFORMED_LINES_SHOWN = 10  # first bad line numbers named in a rejection or a note


def _without_malformed_rows(
    data: bytes, separator: str, max_share: float, rejection: DatasetRejected
) -> tuple[bytes, list[int]] | None:
    """The CSV rewritten without its rows of the wrong field count, and their line numbers.

    None when no row has the wrong field count (the rejection had another cause). Raises DatasetRejected,
    naming the first bad lines, when more than `max_share` of the data rows are bad, or the quoting is broken.
    Only runs for a file that failed to read, so plain Python speed is fine.
    """
    if _find_quote_problem(data, separator) is not None:
        return None  # the caller's rejection already says where the quoting breaks
    text = io.TextIOWrapper(io.BytesIO(data), encoding="utf-8", newline="")
    reader = csv.reader(text, delimiter=separator)
    out = io.StringIO()
    writer = csv.writer(out, delimiter=separator, lineterminator="\n")
    width: int | None = None
    rows = 0
    bad_lines: list[int] = []
    try:
        for record in reader:
            if not record or (len(record) == 1 and not record[0].strip()):
                writer.writerow(record)  # a blank line stays, to be counted as one
                continue
            if width is None:
                width = len(record)
            else:
                rows += 1
                if len(record) != width:
                    bad_lines.append(reader.line_num)
                    continue
            writer.writerow(record)
    except csv.Error:
        return None  # not a field-count problem; the caller's rejection says what it is
    if not bad_lines:
        return None
    allowed = math.floor(max_share * rows)
    if len(bad_lines) > allowed:
        shown = ", ".join(str(line) for line in bad_lines[:MALFORMED_LINES_SHOWN])
        raise DatasetRejected(
            f"{rejection.reason.rstrip('.')}; {len(bad_lines)} of {rows} rows have the wrong number of fields (lines "
            f"{shown}{' ...' if len(bad_lines) > MALFORMED_LINES_SHOWN else ''}), more than max_malformed_share "
            f"({max_share:g}, {allowed} rows) allows to drop: fix those lines, or raise max_malformed_share in the "
            "dataset config"
        )
    return out.getvalue().encode("utf-8"), bad_lines


def _parse_csv(data: bytes, detected: DetectedFormat, separator: str) -> _TextTable:

    # polars sniffs zlib streams by their first two bytes; "x^", "x\x01", "x\x9c" and "x\xda" can start
    # a real CSV, so hide them behind a blank line that is skipped again.
    sniffed = data[:1] == b"x" and data[1:2] in (b"\x01", b"^", b"\x9c", b"\xda")
    try:
        # Lazy, so that the unstripped strings never exist for the whole file at once.
        raw = (
            pl.scan_csv(
                b"\n" + data if sniffed else data,
                has_header=False,
                separator=separator,
                infer_schema=False,
                skip_lines=1 if sniffed else 0,
                truncate_ragged_lines=False,
                raise_if_empty=False,
            )
            # empty fields (and fields missing at the end of a short line) are null: make them ""
            .select(pl.all().str.strip_chars(WHITESPACE).fill_null(""))
            .collect()
        )
    except (pl.exceptions.PolarsError, OSError) as error:  # malformed input (OSError: polars' zlib sniffing)
        raise _diagnose(data, None, error, separator) from None
    if raw.width == 0 or raw.height == 0:
        raise DatasetRejected("the uploaded file has no header row: upload a CSV file with a header row and data rows")

    header = [value or "" for value in raw.row(0)]
    columns, normalisations = _check_header(header, trailing_separator=DELIMITER_NAMES[separator])

    # Count separators in the values (stripping never removes one, unless it is a tab), for _check_field_counts.
    value_separators = (
        int(raw.select(pl.sum_horizontal(pl.all().str.count_matches(separator, literal=True).sum())).item())
        if raw.width > 1 and b'"' in data  # without quotes no value can hold a separator
        else 0
    )
    records = raw.height  # header included
    body = raw.slice(1)
    body.columns = columns
    del raw
    rows_read = body.height
    empty = pl.all_horizontal(pl.col(name) == "" for name in columns)
    empty_rows = int(body.select(empty.sum()).item())
    _check_field_counts(data, separator, len(columns), records - empty_rows, empty_rows, value_separators)
    if empty_rows:
        body = body.filter(~empty)
    if body.height == 0:
        raise DatasetRejected(
            f"the uploaded file has a header ({len(columns)} columns) but no data rows: upload the data rows too"
        )
    return _TextTable(
        columns=columns,
        frame=body,
        rows_read=rows_read,
        empty_rows=empty_rows,
        detected=detected,
        normalisations=_decoding_notes(detected) + normalisations,
    )


def sniff_delimiter(data: bytes) -> str:
    """The candidate that splits the header into the most fields consistently with the next records.

    Each candidate splits the head of the file (quotes respected); one whose header has a single
    field does not count. Among the rest, the one whose records most often have the header's field
    count wins, then the one with more fields, then the earlier in DELIMITERS. None: a comma.
    """
    head = data[:SNIFF_BYTES]
    if len(data) > SNIFF_BYTES and b"\n" in head:
        head = head[: head.rfind(b"\n") + 1]  # whole lines only (a UTF-8 character never spans "\n")
    text = head.decode("utf-8", errors="replace")
    best: tuple[float, int, int] | None = None
    chosen = ","
    for rank, candidate in enumerate(DELIMITERS):
        records = _head_records(text, candidate)
        if not records or len(records[0]) < 2:
            continue
        width = len(records[0])
        body = records[1:]
        consistent = sum(len(record) == width for record in body) / len(body) if body else 1.0
        score = (consistent, width, -rank)
        if best is None or score > best:
            best, chosen = score, candidate
    return chosen


def _head_records(text: str, delimiter: str) -> list[list[str]]:
    records: list[list[str]] = []
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=False)
    try:
        for record in reader:
            if not record or all(not field.strip() for field in record):
                continue
            records.append(record)
            if len(records) >= SNIFF_RECORDS:
                break
    except csv.Error:
        pass  # a quoting problem further down: judge on what was read; _diagnose reports it
    return records


def _check_header(header: list[str], trailing_separator: str = "comma") -> tuple[list[str], list[Normalisation]]:
    """The stripped column names; rejects empty and duplicate names."""
    columns = [name.strip() for name in header]  # Python strip == WHITESPACE
    for position, name in enumerate(columns, start=1):
        if "\x00" in name:  # datadrop's own working columns are named with one
            raise DatasetRejected(
                f"column {position} of {len(columns)} has a NUL character in its name ({name!r}): rename the column"
            )
        if not name:
            hint = (
                f" (every line seems to end with a {trailing_separator}: remove the trailing {trailing_separator}s)"
                if position == len(columns) and position > 1
                else ""
            )
            raise DatasetRejected(
                f"column {position} of {len(columns)} in the header has an empty name{hint}: give every column a name"
            )
    seen: dict[str, int] = {}
    for position, name in enumerate(columns, start=1):
        if name in seen:
            raise DatasetRejected(
                f"the header names column {name!r} twice (columns {seen[name]} and {position}): give every column a unique name"
            )
        seen[name] = position
    renamed = [(before, after) for before, after in zip(header, columns) if before != after]
    notes = [
        Normalisation(step="header_stripped", column=after, detail=f"column name {before!r} read as {after!r}")
        for before, after in renamed
    ]
    return columns, notes


def _decoding_notes(detected: DetectedFormat) -> list[Normalisation]:
    notes = []
    if detected.compression != "none":
        notes.append(Normalisation(step="decompressed", detail=f"{detected.compression}-compressed file decompressed"))
    if detected.encoding not in (None, "utf-8"):
        notes.append(Normalisation(step="decoded", detail=f"text decoded from {detected.encoding} to UTF-8"))
    if detected.bom:
        notes.append(Normalisation(step="bom_removed", detail="byte order mark at the start of the file removed"))
    return notes


def _check_field_counts(
    data: bytes, separator: str, width: int, full_records: int, empty_records: int, value_separators: int
) -> None:
    """Reject rows with fewer fields than the header, which polars silently pads.

    polars already raises for rows with *more* fields. Every separator in the file either separates
    two fields or sits inside a (quoted) value, so with `width` fields per record the file must hold
    exactly (width - 1) separators per non-empty record, plus those inside values, plus up to
    (width - 1) for each empty record (a blank line has none, ",,," has all of them).
    """
    if not _field_counts_fit(data.count(separator.encode()), width, full_records, empty_records, value_separators):
        raise _diagnose(data, width, None, separator)


def _field_counts_fit(separators: int, width: int, full_records: int, empty_records: int, value_separators: int) -> bool:
    """Whether the separators in a file add up to `width` fields in every record (see `_check_field_counts`)."""
    if width < 2:
        return True
    surplus = separators - (width - 1) * full_records - value_separators
    return surplus >= 0 and surplus % (width - 1) == 0 and surplus // (width - 1) <= empty_records


def _diagnose(data: bytes, width: int | None, error: Exception | None, separator: str) -> DatasetRejected:
    """Find out, slowly but precisely, why a file does not parse; only runs for bad input."""
    name = DELIMITER_NAMES[separator]
    quote_problem = _find_quote_problem(data, separator)
    if quote_problem is not None:
        return DatasetRejected(quote_problem)
    text = io.TextIOWrapper(io.BytesIO(data), encoding="utf-8", newline="")
    reader = csv.reader(text, delimiter=separator)
    header_line = 1
    try:
        for record in reader:
            if not record or (len(record) == 1 and not record[0].strip()):
                continue  # blank line
            if width is None:
                width = len(record)
                header_line = reader.line_num
                continue
            if len(record) != width:
                relation = "more" if len(record) > width else "fewer"
                return DatasetRejected(
                    f"line {reader.line_num} has {len(record)} fields but the header (line {header_line}) has "
                    f"{width}; {relation} fields than columns usually means "
                    + (
                        f"an unquoted {name} inside a value: put such values in double quotes"
                        if relation == "more"
                        else "a cut-off or unfinished line: fix or remove that line"
                    )
                )
    except csv.Error as csv_error:
        return DatasetRejected(
            f"the uploaded file is not valid CSV near line {reader.line_num} ({csv_error}): "
            "check the quoting on that line (a double quote inside a quoted value must be written twice)"
        )
    detail = str(error).strip().splitlines()[0] if error is not None and str(error).strip() else "unknown problem"
    if width is not None and error is None:
        return DatasetRejected(
            f"some rows have fewer fields than the header's {width} columns: make every line have {width} "
            f"{name}-separated fields (quote values that contain {name}s, line breaks or double quotes)"
        )
    return DatasetRejected(
        f"the uploaded file could not be read as {name}-separated CSV ({detail}): check that it is a UTF-8 CSV "
        f"file with a header row and one record per line, with values containing {name}s, line breaks or "
        "double quotes in double quotes"
    )


def _find_quote_problem(data: bytes, separator: str) -> str | None:
    """Where the quoting breaks RFC 4180 (which polars' parser requires), as a reason, or None.

    A value either starts with a double quote and ends at the matching one (a quote inside is
    written twice), or contains no double quote at all.
    """
    boundaries = separator + "\r\n"
    in_quotes = False
    opened_on = 0
    for number, line in enumerate(_lines(data), start=1):
        if not in_quotes and '"' not in line:
            continue
        field_start = True
        after_quote = False
        for char in line:
            if in_quotes:
                if char == '"':
                    in_quotes, after_quote = False, True
                continue
            if after_quote:
                after_quote = False
                if char == '"':  # a doubled quote inside a quoted value
                    in_quotes = True
                    continue
                if char not in boundaries:
                    return (
                        f"line {number} has text after the closing double quote of a value: a double quote inside "
                        'a quoted value must be written twice ("5\'6"" tall"), and the value must end at its closing quote'
                    )
            if char == '"':
                if not field_start:
                    return (
                        f"line {number} has a double quote inside a value that does not start with one: put the "
                        'whole value in double quotes and write the quote inside twice (5\'6" becomes "5\'6"""), '
                        "with no space before the opening quote"
                    )
                in_quotes, opened_on = True, number
                continue
            field_start = char in boundaries
    if in_quotes:
        return (
            f"line {opened_on} opens a double-quoted value that is never closed: add the closing double quote "
            "(and write any double quote inside the value twice)"
        )
    return None


def _lines(data: bytes) -> Iterator[str]:
    return iter(io.TextIOWrapper(io.BytesIO(data), encoding="utf-8", newline=""))


# --------------------------------------------------------------------------------------------
# CSV, streamed: the common case, a chunk at a time


STREAM_CHUNK = 1 << 26  # bytes of a gzip-compressed file parsed at a time (64 MB), and the head detection looks at
ENGINE_MAX_COLUMNS = 1000  # wider uncompressed files are read by chunks too
SHORT_CHUNK_ROWS = 1 << 13  # polars' streamed batches shorter than this on average are joined into one chunk
COUNT_PIECE = 1 << 24  # bytes of a file checked and counted at a time (16 MB: the allocator reuses pieces this size)


def _read_csv_streamed(source: bytes | str | os.PathLike[str], max_bytes: int | None) -> Table | None:
    """A plain UTF-8 CSV upload (gzip-compressed or not) read into codes without holding its text, or None.

    None means "read it with `read_table`": the upload is something else, or something about it needs the
    whole file (decoding, malformed rows, a diagnosis). The checks are `read_table`'s.
    """
    if isinstance(source, bytes):
        return _stream(io.BytesIO(source), len(source), max_bytes, source)
    with open(source, "rb") as file:
        return _stream(file, os.fstat(file.fileno()).st_size, max_bytes, source)


def _stream(raw: BinaryIO, size: int, max_bytes: int | None, source: bytes | str | os.PathLike[str]) -> Table | None:
    # columns: a chunk's columns are cast, or the table's re-coded, in parallel; overlap: one chunk is cast while the
    # next is parsed, or the file's bytes are checked while polars parses it
    with ThreadPoolExecutor(pl.thread_pool_size()) as columns, ThreadPoolExecutor(1) as overlap:
        threads = _Threads(columns, overlap)
        compression = "none"
        stream: BinaryIO = raw
        if raw.read(2) == _GZIP:
            compression = "gzip"
            stream = gzip.GzipFile(fileobj=raw)  # type: ignore[assignment]
        raw.seek(0)
        try:
            return _stream_csv(threads, stream, size, compression, max_bytes, source)
        except (OSError, EOFError, zlib.error):
            return None  # not gzip after all, or cut off: read_table says which
        finally:
            if stream is not raw:
                stream.close()


@dataclass(frozen=True)
class _Threads:
    columns: ThreadPoolExecutor
    overlap: ThreadPoolExecutor


class _ByteCounts:
    """What the bytes of a CSV file say that its parsed values do not: separators (against the field count, when
    `count_separators`), line endings, quoting; and whether it is text the streamed read handles (UTF-8, no NUL,
    no quoted tab-separated values), fed one piece at a time in file order."""

    def __init__(self, separator: str, count_separators: bool = True) -> None:
        self.separator = separator.encode()
        self.separators: int | None = 0 if count_separators else None  # None: not counted (yet)
        self.line_feeds = self.crlfs = 0
        self.any_quoted = False  # only a quoted value can hold a separator
        self._utf8 = codecs.getincrementaldecoder("utf-8")()
        self._after_cr = False  # the previous piece ended with "\r" (a CRLF may straddle two pieces)

    def add(self, piece: bytes) -> bool:
        """Counts `piece`; False when the file is not one the streamed read handles."""
        # an ASCII piece needs no decoding, unless a character the previous piece ended in is still open
        if b"\x00" in piece or not ((piece.isascii() and not self._utf8.getstate()[0]) or _decodes(self._utf8, piece)):
            return False
        quoted = b'"' in piece
        if quoted and self.separator == b"\t":
            return False  # a quoted value may hold a tab that stripping removes: read_table counts those
        self.any_quoted = self.any_quoted or quoted
        if self.separators is not None:
            self.separators += piece.count(self.separator)
        if b"\r" in piece or self._after_cr:  # counting line feeds only matters then (a piece without "\r" is all LF)
            self.line_feeds += piece.count(b"\n")
            self.crlfs += piece.count(b"\r\n") + (self._after_cr and piece.startswith(b"\n"))
        else:
            self.line_feeds += b"\n" in piece
        self._after_cr = piece.endswith(b"\r")
        return True

    def finished(self) -> bool:
        return _decodes(self._utf8, b"", final=True)

    @property
    def line_endings(self) -> str | None:
        if self.line_feeds == 0:
            return None
        return "LF" if self.crlfs == 0 else "CRLF" if 2 * self.crlfs > self.line_feeds else "mixed"


def _decodes(decoder: codecs.IncrementalDecoder, piece: bytes, final: bool = False) -> bool:
    try:
        decoder.decode(piece, final)
    except UnicodeDecodeError:
        return False
    return True


def _stream_csv(
    threads: _Threads,
    stream: BinaryIO,
    size: int,
    compression: str,
    max_bytes: int | None,
    source: bytes | str | os.PathLike[str],
) -> Table | None:
    block = stream.read(STREAM_CHUNK)
    head = block[:SNIFF_BYTES]
    if (
        not block.strip()
        or block.startswith(
            (_PARQUET, _GZIP, codecs.BOM_UTF8, *(mark for mark, _ in _UTF16_BOMS), *(magic for magic, _ in _MAGIC))
        )
        or _json_shape(block) is not None
        or b"\n" not in block  # one line, or CR line endings
        or block[: block.find(b"\n")].strip(b" \t\r") == b""  # a blank first line
        or _looks_binary(head)
    ):
        return None
    separator = sniff_delimiter(block)
    dictionary = _Dictionary()
    # polars sniffs zlib streams by their first two bytes even in a plain file (see _parse_csv): those go by chunks;
    # so do wide files, whose columns the chunks cast a batch at a time (the engine casts each on its own: 20,001
    # columns x 1,000 rows read in 3.8 s against 2.7 s)
    width = 1 + block[: block.find(b"\n")].count(separator.encode())
    engine = compression == "none" and not _zlib_like(block) and width <= ENGINE_MAX_COLUMNS
    counts = _ByteCounts(separator, count_separators=not engine)
    if engine:
        coded = _coded_by_engine(threads, source, stream, block, counts, dictionary)
    else:
        coded = _coded_by_chunks(threads, stream, block, counts, dictionary, compression, max_bytes)
    if coded is None:
        return None
    # polars fills the fields a short line lacks as empty; only a count of the separators tells such a line from
    # empty fields, and only a line whose last field is empty can be one: the file is counted again if it has any
    if counts.separators is None and len(coded) > 1 and (coded[-1] == 0).any():
        counts.separators = _separators_in(source, counts.separator)
    raw = dictionary.values(pl.DataFrame(coded))
    value_separators = (
        _separators_in_values(coded, raw, separator) if counts.separators and counts.any_quoted and len(coded) > 1 else 0
    )
    frame = pl.DataFrame(_stripped_codes(coded, raw, dictionary, threads.columns))
    del coded
    values = dictionary.values(frame)
    if frame.height < 2:
        return None  # no data rows: read_table says so
    header = values.gather(list(frame.row(0))).to_list()
    columns, normalisations = _check_header(header, trailing_separator=DELIMITER_NAMES[separator])
    body = frame.slice(1)
    body.columns = columns
    rows_read = body.height
    empty = pl.all_horizontal(pl.col(name) == 0 for name in columns)
    empty_rows = int(body.select(empty.sum()).item())
    if counts.separators is not None and not _field_counts_fit(
        counts.separators, len(columns), frame.height - empty_rows, empty_rows, value_separators
    ):
        return None
    if empty_rows:
        body = body.filter(~empty)
    if body.height == 0:
        return None
    detected = DetectedFormat(
        format="csv",
        compression=compression,  # type: ignore[arg-type]
        encoding="utf-8",
        bom=False,
        bytes=size,
        delimiter=separator,
        line_endings=counts.line_endings,  # type: ignore[arg-type]
    )
    return Table(
        columns=columns,
        frame=body,
        values=values,
        rows_read=rows_read,
        empty_rows=empty_rows,
        detected=detected,
        normalisations=_decoding_notes(detected) + normalisations,
    )


def _separators_in(source: bytes | str | os.PathLike[str], separator: bytes) -> int:
    if isinstance(source, bytes):
        return source.count(separator)
    count = 0
    with open(source, "rb") as file:
        while piece := file.read(COUNT_PIECE):
            count += piece.count(separator)
    return count


def _zlib_like(data: bytes) -> bool:
    return data[:1] == b"x" and data[1:2] in (b"\x01", b"^", b"\x9c", b"\xda")


def _coded_by_engine(
    threads: _Threads,
    source: bytes | str | os.PathLike[str],
    stream: BinaryIO,
    block: bytes,
    counts: _ByteCounts,
    dictionary: _Dictionary,
) -> list[pl.Series] | None:
    """An uncompressed file's columns as codes (the header row first), parsed and cast by polars' streaming engine
    (both in one pass over the file, on every core), while a thread of ours checks its bytes (`_ByteCounts`).
    None: the file needs `read_table`."""
    stop = threading.Event()  # set by either side when the other need not go on

    def count_bytes() -> bool:
        piece = block
        while piece:
            if stop.is_set() or not counts.add(piece):
                stop.set()
                return False
            piece = stream.read(COUNT_PIECE)
        return counts.finished()

    counted = threads.overlap.submit(count_bytes)
    watch = chunk_watch.get()
    batches: list[pl.DataFrame] = []
    finished = False
    try:
        coded = pl.scan_csv(
            source if isinstance(source, bytes) else os.fspath(source),
            has_header=False,
            separator=counts.separator.decode(),
            infer_schema=False,
            truncate_ragged_lines=False,
            raise_if_empty=False,
        ).select(dictionary.codes(pl.all()).fill_null(0))  # empty fields (and those a short line lacks): "", code 0
        # batches as polars finishes them, in file order, here: the chunk check sees each (stopping is leaving the loop)
        for batch in coded.collect_batches(engine="streaming"):
            if stop.is_set():
                return None  # the bytes need read_table
            if watch is not None and batch.height:
                watch(batch.height * batch.width, max((code for code in batch.max().row(0) if code is not None), default=0))
            batches.append(batch)
        finished = True
    except (pl.exceptions.PolarsError, OSError):
        return None
    finally:
        if not finished:
            stop.set()  # polars' read failed or was left (the bytes' check failed, or `watch` rejected the upload)
        counted_fine = counted.result()
    if not counted_fine or not batches or batches[0].width == 0:
        return None
    frame = pl.concat(batches, rechunk=False)
    del batches
    # a wide file comes in short batches, and polars pays per chunk of each of its thousands of columns: made whole
    first = frame.get_column(frame.columns[0])
    if len(first) < SHORT_CHUNK_ROWS * first.n_chunks():
        frame = frame.rechunk()
    return frame.get_columns()


def _coded_by_chunks(
    threads: _Threads,
    stream: BinaryIO,
    block: bytes,
    counts: _ByteCounts,
    dictionary: _Dictionary,
    compression: str,
    max_bytes: int | None,
) -> list[pl.Series] | None:
    """A gzip-compressed (or wide) file's columns as codes, decompressed and parsed STREAM_CHUNK bytes at a time,
    each chunk cast to codes while the next is parsed. None: the file needs `read_table`."""
    parts: list[Future[pl.DataFrame]] = []
    schema: dict[str, pl.DataType] | None = None
    pending, total = block, len(block)  # pending: read, not parsed yet, starts at a record boundary
    while pending:
        more = stream.read(STREAM_CHUNK)
        total += len(more)
        if max_bytes is not None and compression != "none" and total > max_bytes:
            raise _too_large_uncompressed(compression, max_bytes)
        end = _record_end(pending) if more else len(pending)
        if end is None:  # no record ends in what is pending (a huge quoted value): read on
            pending += more
            continue
        chunk, pending = pending[:end], pending[end:] + more
        if not counts.add(chunk):
            return None
        zlib_like = _zlib_like(chunk)  # polars sniffs zlib streams by their first two bytes (see _parse_csv)
        newline = chunk.find(b"\n")
        # polars takes a chunk's number of fields from its first line: a blank one (a blank row) would make it one
        # (a line of empty fields put before such a chunk, then dropped, gives it its number of fields and hides both)
        padding = b"" if schema is None else counts.separator * (len(schema) - 1) + b"\n"
        padded = bool(padding) and (zlib_like or not (chunk if newline < 0 else chunk[:newline]).strip())
        try:
            text = pl.read_csv(
                padding + chunk if padded else b"\n" + chunk if zlib_like else chunk,
                has_header=False,
                separator=counts.separator.decode(),
                infer_schema=False,
                schema=schema,
                skip_lines=1 if zlib_like and not padded else 0,
                truncate_ragged_lines=False,
                raise_if_empty=False,
            )
        except (pl.exceptions.PolarsError, OSError):
            return None
        if padded:
            text = text.slice(1)  # the line of empty fields put before the chunk
        if text.width == 0:
            return None
        if schema is None:
            schema = dict.fromkeys(text.columns, pl.String())
        # raw text to codes; empty fields (and fields missing at the end of a short line) are null: code 0, "".
        if parts:
            parts[-1].result()  # at most one chunk waits to be cast: memory holds two chunks' text at most
        # polars releases the GIL while it casts and while it parses, so this chunk is cast while the next is parsed
        # (in this context: `chunk_watch` is a context variable, and a pool thread has a context of its own)
        parts.append(threads.overlap.submit(copy_context().run, _coded_columns, threads.columns, dictionary, text))
        del text, chunk
    if not parts or not counts.finished():
        return None
    return pl.concat([part.result() for part in parts], rechunk=False).get_columns()


CAST_CELLS = 1 << 20  # a wide file's columns are cast to codes in batches of about this many values

# When set, called after each chunk of a streamed CSV file is coded, with the chunk's cells and its largest code
# (the dictionary of distinct texts holds at least that many): lets the caller stop a read whose dictionary would
# outgrow the memory it has (`datadrop.dataprep` raises DatasetRejected from it) before it runs out.
chunk_watch: ContextVar[Callable[[int, int], None] | None] = ContextVar("chunk_watch", default=None)


def _coded_columns(casting: ThreadPoolExecutor, dictionary: _Dictionary, text: pl.DataFrame) -> pl.DataFrame:
    """The chunk's columns as codes. polars casts a column on one thread, so columns are cast in parallel; the
    columns of a wide, short chunk are cast a batch at a time as one long column (a cast has a fixed cost)."""
    coded = _coded_chunk(casting, dictionary, text)
    watch = chunk_watch.get()
    if watch is not None:
        watch(coded.height * coded.width, max((code for code in coded.max().row(0) if code is not None), default=0))
    return coded


def _coded_chunk(casting: ThreadPoolExecutor, dictionary: _Dictionary, text: pl.DataFrame) -> pl.DataFrame:
    per_batch = max(1, CAST_CELLS // max(text.height, 1))
    if per_batch == 1:
        return pl.DataFrame(list(casting.map(dictionary.coded, text.get_columns())))
    batches = [text.get_columns()[start : start + per_batch] for start in range(0, text.width, per_batch)]

    def coded_batch(columns: list[pl.Series]) -> list[pl.Series]:
        codes = dictionary.coded(pl.concat(columns))
        return [codes.slice(index * text.height, text.height).alias(column.name) for index, column in enumerate(columns)]

    return pl.DataFrame([column for batch in casting.map(coded_batch, batches) for column in batch])


def _record_end(data: bytes) -> int | None:
    """The end of the last whole record in `data` (just after a line feed outside quotes), or None.

    `data` starts at a record boundary; a line feed ends a record when an even number of double quotes
    precede it (RFC 4180 quoting: every quote opens, closes or doubles).
    """
    end = data.rfind(b"\n")
    quotes = data.count(b'"', 0, end + 1)  # those before the line feed: the text after it may hold quotes too
    while end >= 0:
        if quotes % 2 == 0:
            return end + 1
        previous = data.rfind(b"\n", 0, end)
        quotes -= data.count(b'"', previous + 1, end + 1)
        end = previous
    return None


def _separators_in_values(columns: list[pl.Series], raw: pl.Series, separator: str) -> int:
    """How many separators the values hold (quoted, so not field boundaries): counted once per distinct text,
    then only in the columns' codes whose text holds one."""
    per_code = raw.str.count_matches(separator, literal=True)
    if not per_code.max():
        return 0
    return sum(int(per_code.gather(column).sum()) for column in columns)


def _stripped_codes(
    columns: list[pl.Series], raw: pl.Series, dictionary: _Dictionary, threads: ThreadPoolExecutor
) -> list[pl.Series]:
    """Codes of the raw texts (`raw[code]`) turned into codes of the stripped texts: stripping is done once per
    distinct text.

    Replaces the columns in the list a few at a time (one per thread), so that only those exist twice at once.
    """
    stripped = raw.str.strip_chars(WHITESPACE)
    if stripped.equals(raw):
        return columns
    canonical = pl.select(dictionary.codes(pl.lit(stripped))).to_series()  # adds the stripped texts not there yet

    def restripped(column: pl.Series) -> pl.Series:
        return canonical.gather(column).alias(column.name)

    at_once = max(1, pl.thread_pool_size())
    for start in range(0, len(columns), at_once):
        columns[start : start + at_once] = threads.map(restripped, columns[start : start + at_once])
    return columns


def _too_large_uncompressed(compression: str, max_bytes: int) -> DatasetRejected:
    return DatasetRejected(
        f"the uploaded file is {compression}-compressed and holds more than {max_bytes / 1e6:.1f} MB uncompressed, the "
        "most the prepare function's memory can prepare: upload a smaller sample, or raise PrepareFunction's MemorySize "
        "in template.yaml"
    )


# --------------------------------------------------------------------------------------------
# Parquet and JSON Lines: typed values, cast to text


def _read_parquet(data: bytes, detected: DetectedFormat) -> _TextTable:
    try:
        frame = pl.read_parquet(io.BytesIO(data))
    except (pl.exceptions.PolarsError, OSError) as error:
        detail = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise DatasetRejected(
            f"the uploaded file starts like a Parquet file (PAR1) but could not be read ({detail}): it may be cut off or "
            "written by an unsupported writer; write it again, or upload the table as a UTF-8 CSV file"
        ) from None
    return _table_from_frame(frame, detected, "the Parquet file")


def _read_json_lines(data: bytes, detected: DetectedFormat) -> _TextTable:
    try:  # the keys, in the order first seen; polars widens a key whose type changes from line to line
        names = list(pl.scan_ndjson(io.BytesIO(data), infer_schema_length=None).collect_schema())
    except pl.exceptions.PolarsError:  # a bad line: find which, slowly
        names = _json_keys(data)
    try:
        # Every value as text (numbers, booleans, nested values as their JSON), whatever its type per line.
        frame = pl.read_ndjson(io.BytesIO(data), schema=dict.fromkeys(names, pl.String), ignore_errors=False)
    except pl.exceptions.PolarsError as error:
        _json_keys(data)  # names the bad line, when one is
        raise DatasetRejected(
            f"the uploaded JSON Lines file could not be read ({str(error).strip().splitlines()[0]}): write one JSON object "
            "per line"
        ) from None
    return _table_from_frame(frame, detected, "the JSON Lines file")


def _json_keys(data: bytes) -> list[str]:
    """Every key of every line's object, in the order first seen; rejects a line that is not a JSON object."""
    keys: dict[str, None] = {}
    for number, line in enumerate(_lines(data), start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as error:
            raise DatasetRejected(
                f"line {number} of the JSON Lines file is not valid JSON ({error.msg} at column {error.colno}): "
                "write one JSON object per line (a value may not span lines)"
            ) from None
        if not isinstance(value, dict):
            raise DatasetRejected(
                f"line {number} of the JSON Lines file is a JSON {type(value).__name__}, not an object: "
                'write one object per line, e.g. {"column": value, ...}'
            )
        keys.update(dict.fromkeys(value))
    return list(keys)


def _table_from_frame(frame: pl.DataFrame, detected: DetectedFormat, what: str) -> _TextTable:
    if frame.width == 0:
        raise DatasetRejected(f"{what} has no columns: upload a table with a header and data rows")
    columns, normalisations = _check_header(frame.columns)
    nested = [name for name, dtype in zip(columns, frame.dtypes) if dtype.is_nested()]
    if nested:
        raise DatasetRejected(
            f"{what} has columns holding lists or structs ({', '.join(repr(name) for name in nested[:10])}): flatten "
            "them into one column per value, or drop them, and upload again"
        )
    frame = frame.select(
        pl.col(original).cast(pl.String).str.strip_chars(WHITESPACE).fill_null("").alias(name)
        for original, name in zip(frame.columns, columns)
    )
    rows_read = frame.height
    empty = pl.all_horizontal(pl.col(name) == "" for name in columns)
    empty_rows = int(frame.select(empty.sum()).item()) if rows_read else 0
    if empty_rows:
        frame = frame.filter(~empty)
    if frame.height == 0:
        raise DatasetRejected(f"{what} has {len(columns)} columns but no data rows: upload the data rows too")
    return _TextTable(
        columns=columns,
        frame=frame,
        rows_read=rows_read,
        empty_rows=empty_rows,
        detected=detected,
        normalisations=[*_decoding_notes(detected), *normalisations],
    )
