"""A corpus of bad or awkward uploads, generated (nothing big is kept in git), and what each must give.

Each case either prepares, and then `check` looks at what was detected and reported, or is
rejected, and then every one of `reason_words` must be in the reason: which line or column, and
what to change. tests/unit/test_awkward_files.py runs them through `prepare`, and
tests/integration/test_awkward_uploads.py through the prepare handler on moto.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import random
from collections.abc import Callable
from dataclasses import dataclass, field

import polars as pl
from datadrop.dataprep import PreparedDataset

from tests.held_out import held_out_records

ROWS = 60
BIG_FIELD = 5 * 1024 * 1024  # 5 MB in one value


def table(n: int = ROWS, classes: tuple[str, ...] = ("yes", "no"), seed: int = 1) -> tuple[list[str], list[list[str]]]:
    """A plain, valid table: a target, a number, a category and a free-text note with punctuation."""
    rng = random.Random(seed)
    rows = [
        [classes[i % len(classes)], f"{rng.uniform(0, 100):.3f}", rng.choice(["red", "green", "blue"]), f"note {i}"]
        for i in range(n)
    ]
    return ["label", "size", "colour", "note"], rows


def csv_bytes(
    header: list[str], rows: list[list[str]], delimiter: str = ",", newline: str = "\n", quoting: int = csv.QUOTE_MINIMAL
) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=delimiter, lineterminator=newline, quoting=quoting)
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue().encode()


def plain() -> bytes:
    return csv_bytes(*table())


@dataclass(frozen=True)
class Case:
    name: str
    make: Callable[[], bytes]
    target: str = "label"
    reason_words: list[str] = field(default_factory=list)  # empty: the file must prepare
    check: Callable[[PreparedDataset], None] | None = None

    @property
    def prepares(self) -> bool:
        return not self.reason_words


# --------------------------------------------------------------------------------------------
# Generators of the awkward files


def binary_garbage() -> bytes:
    return random.Random(7).randbytes(4096)


def binary_without_nul_bytes() -> bytes:
    return binary_garbage().replace(b"\x00", b"\x01")


def colon_separated() -> bytes:
    return csv_bytes(*table(), delimiter=":")


def ragged() -> bytes:
    header, rows = table()
    rows[16] = rows[16][:2]  # line 18 of the file: header + 16 rows before it
    return csv_bytes(header, rows)


def single_class() -> bytes:
    return csv_bytes(*table(classes=("yes",)))


def too_few_rows() -> bytes:
    return csv_bytes(*table(n=10))


def duplicate_columns() -> bytes:
    header, rows = table()
    return csv_bytes([*header[:3], "size"], rows)


def latin1() -> bytes:
    header, rows = table()
    for i, row in enumerate(rows):
        row[2] = ["Zürich", "Genève", "Köln"][i % 3]
    return csv_bytes(header, rows).decode().encode("latin-1")


def cp1252() -> bytes:
    header, rows = table()
    for i, row in enumerate(rows):
        row[3] = ["“quoted”", "5 €", "naïve"][i % 3]
    return csv_bytes(header, rows).decode().encode("cp1252")


def bom_crlf_quotes() -> bytes:
    header, rows = table()
    for i, row in enumerate(rows):
        row[3] = f'said "hi, {i}"'
    return b"\xef\xbb\xbf" + csv_bytes(header, rows, newline="\r\n", quoting=csv.QUOTE_ALL)


def big_field() -> bytes:
    header, rows = table()
    rows[5][3] = "x" * BIG_FIELD
    return csv_bytes(header, rows)


def junk_numeric_column() -> bytes:
    header, rows = table()
    junk = ["NA", "?", "null", "", "n/a"]
    return csv_bytes([*header, "reading"], [[*row, junk[i % len(junk)]] for i, row in enumerate(rows)])


def only_junk_features() -> bytes:
    rows = [[["yes", "no"][i % 2], ["NA", "?", "null"][i % 3], f"r{i}"] for i in range(ROWS)]
    return csv_bytes(["label", "reading", "row_id"], rows)


def thousands_separators() -> bytes:
    header, rows = table()
    for i, row in enumerate(rows):
        row[1] = f"{1000 + 37 * i:,}"  # "1,000", "1,037", ... (quoted by the writer)
    return csv_bytes(header, rows)


def mixed_case_labels() -> bytes:
    return csv_bytes(*table(classes=("Yes", "yes", "No", "no")))


def blank_line_after_header() -> bytes:
    data = plain()
    end = data.index(b"\n") + 1
    return data[:end] + b"\n" + data[end:]


def quoted_newlines() -> bytes:
    header, rows = table()
    for i, row in enumerate(rows):
        row[2] = f"line one\nline two {i % 3}"
    return csv_bytes(header, rows)


def gzip_csv() -> bytes:
    return gzip.compress(plain(), mtime=0)


def truncated_gzip() -> bytes:
    return gzip.compress(plain(), mtime=0)[:100]


def parquet() -> bytes:
    _, rows = table()
    frame = pl.DataFrame(
        {
            "label": [row[0] for row in rows],
            "size": [float(row[1]) for row in rows],
            "count": [i % 7 for i in range(len(rows))],
            "colour": [row[2] for row in rows],
            "flag": [i % 3 == 0 for i in range(len(rows))],
        }
    )
    buffer = io.BytesIO()
    frame.write_parquet(buffer)
    return buffer.getvalue()


def parquet_nested() -> bytes:
    buffer = io.BytesIO()
    pl.DataFrame({"label": ["a", "b"] * 20, "tags": [[1, 2], [3]] * 20}).write_parquet(buffer)
    return buffer.getvalue()


def utf16() -> bytes:
    return latin1().decode("latin-1").encode("utf-16")  # with a BOM, as Excel's "Unicode Text"


def json_lines() -> bytes:
    header, rows = table()
    records = [dict(zip(header, row)) | {"size": float(row[1])} for row in rows]
    records[3]["size"] = "n/a"  # a type that changes from line to line
    records[4]["extra"] = {"nested": True}  # a key only one line has
    return "\n".join(json.dumps(record) for record in records).encode() + b"\n"


def json_lines_bad_line() -> bytes:
    lines = json_lines().split(b"\n")
    lines[2] = b'{"label": "yes", "size": 1.0'
    return b"\n".join(lines)


def semicolon_decimal_comma() -> bytes:
    header, rows = table()
    for row in rows:
        row[1] = row[1].replace(".", ",")
    return csv_bytes(header, rows, delimiter=";")


def tab_separated() -> bytes:
    return csv_bytes(*table(), delimiter="\t")


def pipe_separated() -> bytes:
    return csv_bytes(*table(), delimiter="|")


def unclosed_quote() -> bytes:
    return plain() + b'yes,1.5,"red,never closed\n'


def excel_workbook() -> bytes:
    return b"PK\x03\x04" + bytes(100)


# --------------------------------------------------------------------------------------------
# Checks of prepared files


def detected(**expected: object) -> Callable[[PreparedDataset], None]:
    def check(prepared: PreparedDataset) -> None:
        found = prepared.report.detected.model_dump()
        assert {key: found[key] for key in expected} == expected, found

    return check


def all_of(*checks: Callable[[PreparedDataset], None]) -> Callable[[PreparedDataset], None]:
    def check(prepared: PreparedDataset) -> None:
        for one in checks:
            one(prepared)

    return check


def categories(column: str, must_include: set[str]) -> Callable[[PreparedDataset], None]:
    """The column is categorical and holds these values, case-folded as normalise_categories (the default) does."""

    def check(prepared: PreparedDataset) -> None:
        feature = next(feature for feature in prepared.recipe["features"] if feature["name"] == column)
        assert feature["normalise"] == "casefold"
        assert {value.casefold() for value in must_include} <= set(feature["categories"]), feature["categories"]

    return check


def kinds(**expected: str) -> Callable[[PreparedDataset], None]:
    def check(prepared: PreparedDataset) -> None:
        roles = {column.name: column.role for column in prepared.report.columns}
        assert {name: roles[name] for name in expected} == expected, roles

    return check


def normalised(step: str, *words: str) -> Callable[[PreparedDataset], None]:
    def check(prepared: PreparedDataset) -> None:
        notes = [note.detail for note in prepared.report.normalisations if note.step == step]
        assert any(all(word in detail for word in words) for detail in notes), prepared.report.normalisations

    return check


def rows(**expected: int) -> Callable[[PreparedDataset], None]:
    def check(prepared: PreparedDataset) -> None:
        found = prepared.report.rows.model_dump()
        assert {key: found[key] for key in expected} == expected, found

    return check


def kept_value_holds(predicate: Callable[[str], bool]) -> Callable[[PreparedDataset], None]:
    """Some raw value kept for the test split (or a learned category) satisfies `predicate`."""

    def check(prepared: PreparedDataset) -> None:
        records = held_out_records(prepared)
        kept = {value for record in records for value in record}
        kept |= {value for feature in prepared.recipe["features"] for value in feature.get("categories", [])}
        assert any(predicate(value) for value in kept)

    return check


CSV_UTF8 = {"format": "csv", "compression": "none", "encoding": "utf-8", "bom": False}

CORPUS = [
    Case("empty", lambda: b"", reason_words=["empty (0 bytes)", "upload a CSV file"]),
    Case("header only", lambda: b"label,size,colour\n", reason_words=["header (3 columns) but no data rows"]),
    Case("binary garbage", binary_garbage, reason_words=["NUL bytes", "binary", "UTF-8"]),
    Case("binary without NUL bytes", binary_without_nul_bytes, reason_words=["control characters", "binary", "UTF-8"]),
    Case("excel workbook", excel_workbook, reason_words=["Excel", "export the sheet as CSV"]),
    Case(
        "wrong delimiter (colons)",
        colon_separated,
        reason_words=["'label' is not in the file", "separated by colons", "comma, semicolon, tab and pipe"],
    ),
    Case("ragged rows", ragged, reason_words=["line 18 has 2 fields", "header (line 1) has 4", "fix or remove that line"]),
    Case(
        "missing target column",
        plain,
        target="species",
        reason_words=["target column 'species' is not in the file", "set `target`", "'label', 'size', 'colour', 'note'"],
    ),
    Case("single-class target", single_class, reason_words=["only one class ('yes')", "at least 2"]),
    Case("too few rows", too_few_rows, reason_words=["only 10 usable rows", "at least 30", "upload more rows"]),
    Case("duplicate column names", duplicate_columns, reason_words=["'size' twice", "columns 2 and 4", "unique name"]),
    Case(
        "only junk features",
        only_junk_features,
        reason_words=[
            "no usable feature",
            "reading: every value in the training rows is missing",
            "row_id: looks like an identifier",
        ],
    ),
    Case("truncated gzip", truncated_gzip, reason_words=["gzip", "does not decompress", "cut off"]),
    Case("unclosed quote", unclosed_quote, reason_words=[f"line {ROWS + 2} opens a double-quoted value", "never closed"]),
    Case(
        "JSON Lines with a bad line", json_lines_bad_line, reason_words=["line 3", "not valid JSON", "one JSON object per line"]
    ),
    Case("Parquet with a list column", parquet_nested, reason_words=["'tags'", "lists or structs", "flatten"]),
    Case(
        "latin-1",
        latin1,
        check=all_of(detected(format="csv", encoding="latin-1"), categories("colour", {"Zürich", "Genève", "Köln"})),
    ),
    Case("cp1252", cp1252, check=all_of(detected(encoding="cp1252"), kept_value_holds(lambda value: value == "5 €"))),
    Case(
        "BOM, CRLF and quotes",
        bom_crlf_quotes,
        check=all_of(
            detected(encoding="utf-8", bom=True, line_endings="CRLF", delimiter=","),
            kept_value_holds(lambda value: value.startswith('said "hi, ')),
        ),
    ),
    Case("5 MB field", big_field, check=rows(read=ROWS, usable=ROWS)),
    Case(
        "numeric column of only junk",
        junk_numeric_column,
        check=all_of(kinds(size="numeric", reading="dropped"), lambda prepared: _dropped_as(prepared, "reading", "all_missing")),
    ),
    Case(
        "thousands separators",
        thousands_separators,
        check=all_of(
            kinds(size="numeric"),
            normalised("numbers_with_separators", "'1,234.5'", "thousands separator"),
            lambda prepared: _numbers_read(prepared, "size", low=1000.0, high=1000.0 + 37 * (ROWS - 1)),
        ),
    ),
    Case(
        "mixed-case labels",
        mixed_case_labels,
        check=all_of(
            # equally frequent spellings: the class keeps the first in sorted order
            lambda prepared: _classes(prepared, ["No", "Yes"]),
            lambda prepared: _merged(prepared, {"No": ["no"], "Yes": ["yes"]}),
            normalised("labels_merged", "'no'", "merged into the class 'No'"),
            normalised("labels_merged", "'yes'", "merged into the class 'Yes'"),
        ),
    ),
    Case("blank line after the header", blank_line_after_header, check=rows(read=ROWS + 1, empty=1, usable=ROWS)),
    Case(
        "quoted newlines",
        quoted_newlines,
        check=all_of(detected(**CSV_UTF8), categories("colour", {"line one\nline two 0", "line one\nline two 2"})),
    ),
    Case("gzip-compressed CSV", gzip_csv, check=detected(format="csv", compression="gzip", encoding="utf-8")),
    Case(
        "Parquet",
        parquet,
        check=all_of(
            detected(format="parquet", encoding=None, delimiter=None),
            kinds(size="numeric", count="numeric", colour="categorical", flag="boolean"),
        ),
    ),
    Case("UTF-16 with BOM", utf16, check=all_of(detected(encoding="utf-16-le", bom=True), categories("colour", {"Zürich"}))),
    Case(
        "JSON Lines",
        json_lines,
        check=all_of(
            detected(format="jsonl", encoding="utf-8", delimiter=None),
            kinds(size="numeric", colour="categorical", extra="dropped"),
            lambda prepared: _column_order(prepared, ["label", "size", "colour", "note", "extra"]),
        ),
    ),
    Case(
        "semicolons with decimal commas",
        semicolon_decimal_comma,
        # "12,345" fits a thousands comma too: in a semicolon-separated file, the comma is the decimal mark
        check=all_of(
            detected(delimiter=";"),
            kinds(size="numeric"),
            normalised("numbers_with_separators", "'1.234,5'", "',' as the decimal mark"),
            lambda prepared: _numbers_read(prepared, "size", low=0.0, high=100.0),
        ),
    ),
    Case("tab-separated", tab_separated, check=all_of(detected(delimiter="\t"), kinds(size="numeric"))),
    Case("pipe-separated", pipe_separated, check=all_of(detected(delimiter="|"), kinds(size="numeric"))),
]


def _dropped_as(prepared: PreparedDataset, column: str, reason: str) -> None:
    assert {"name": column, "reason": reason} in prepared.recipe["dropped"], prepared.recipe["dropped"]


def _classes(prepared: PreparedDataset, expected: list[str]) -> None:
    assert prepared.recipe["classes"] == expected


def _numbers_read(prepared: PreparedDataset, column: str, low: float, high: float) -> None:
    """The column's training numbers lie in [low, high] and the training rows hold no fill-in for a not-number."""
    (report,) = [report for report in prepared.report.columns if report.name == column]
    assert report.summary is not None and report.summary.kind == "numeric", report
    assert low <= report.summary.min < report.summary.max <= high and report.summary.not_numbers == 0


def _merged(prepared: PreparedDataset, expected: dict[str, list[str]]) -> None:
    assert prepared.report.target.merged == expected
    assert not prepared.report.warnings, prepared.report.warnings
    assert set(prepared.test_labels) <= set(expected)


def _column_order(prepared: PreparedDataset, expected: list[str]) -> None:
    assert prepared.recipe["columns"] == expected
