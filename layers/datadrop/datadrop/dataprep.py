"""Turn an uploaded CSV into train / validation / test data for SageMaker's built-in XGBoost.

`prepare(data, config)` is pure logic (no AWS): it validates, cleans, splits, fits the feature
encoding on the training rows only, and encodes. Anything it cannot use raises `DatasetRejected`
whose `reason` says what is wrong and what to fix.

Steps: read every value as text (polars, all columns Utf8) and strip it; drop empty lines, rows
whose target is missing, then exact duplicate rows (before splitting, so no test row also sits in
train); split per class (SplitMix64 keys seeded with `split.seed`, first `test`, then `validation`
share of each class, at least one row each); decide column kinds and fit fills / categories on the
train rows only; encode train and validation; keep the test rows raw for batch transform.

The encoding contract. The serving code (`datadrop.serving.inference`) implements it in plain
Python, and so does `encode_row` below; tests check both against the CSVs written here:

* Every value is read as text and stripped with Python's `str.strip()` (no arguments).
* A value is *missing* when the stripped text is one of `recipe["missing_tokens"]`.
* numeric feature: missing, not a number, or not finite -> `fill`; else `float(text)`.
  "A number" is whatever Python's `float()` accepts, including "1_000" and non-ASCII decimal
  digits such as "١٢" (see `parse_number`; the polars code emulates those two cases).
* categorical feature: index of the text in `categories`, as a float; missing or unseen -> -1.0.
* label: index of the target text in `recipe["classes"]`.

Rows are written as headerless CSV, label first, then the features in `recipe["features"]` order,
with floats written so that `float(field)` gives back the same float64.
"""

from __future__ import annotations

import codecs
import csv
import difflib
import functools
import io
import math
import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import polars as pl

from datadrop.config import DatasetConfig

RECIPE_FORMAT = "datadrop-recipe/1"
PROFILE_FORMAT = "datadrop-profile/1"

MIN_USABLE_ROWS = 30
MAX_CLASSES = 50
MIN_ROWS_PER_CLASS = 3  # one each for train, validation and test
NUMERIC_SHARE = 0.95  # share of non-missing training values that must be finite numbers
ID_LIKE_MIN_DISTINCT = 20  # a categorical column with more distinct values than this ...
ID_LIKE_DISTINCT_SHARE = 0.9  # ... and distinct / non-missing above this is an identifier

# Exactly the characters Python's str.strip() removes (polars' default strip set lacks \x1c-\x1f).
WHITESPACE = (
    "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006"
    "\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)

# polars' string-to-float cast accepts exactly what Python's float() accepts for ASCII text, except
# PEP 515 underscores ("1_000"); float() also reads any Unicode decimal digit ("١٢" is 12.0).
# Columns holding "_" or non-ASCII text take a slower path that emulates both (`_number_expr`).
_DIGITS = r"[0-9](?:_?[0-9])*"
_UNDERSCORE_NUMBER = rf"^[+-]?(?:{_DIGITS}(?:\.(?:{_DIGITS})?)?|\.{_DIGITS})(?:[eE][+-]?{_DIGITS})?$"

# Internal column names; a CSV header cannot produce them because NUL bytes are rejected.
_LABEL = "\x00label"
_KEY = "\x00key"
_TRAIN, _VALIDATION, _TEST = 0, 1, 2
_SPLIT_BATCH = 4  # columns split into train/validation/test together (memory vs parallelism)

# SplitMix64 constants (Steele, Lea & Flood 2014); the split key of row i is the i-th output of
# SplitMix64 seeded with config.split.seed, so the split is the same on every platform and version.
_GOLDEN = 0x9E3779B97F4A7C15
_MIX1 = 0xBF58476D1CE4E5B9
_MIX2 = 0x94D049BB133111EB
_U64 = (1 << 64) - 1

# First bytes of formats people upload by mistake.
_MAGIC = (
    (b"\x1f\x8b", "gzip-compressed data; upload the uncompressed .csv file"),
    (b"PK\x03\x04", "a ZIP archive or an Excel workbook (.xlsx); export the sheet as CSV (UTF-8) and upload that"),
    (b"\xd0\xcf\x11\xe0", "an old Excel workbook (.xls); export the sheet as CSV (UTF-8) and upload that"),
    (b"PAR1", "a Parquet file; datadrop reads CSV, so write the table as CSV and upload that"),
    (b"(\xb5/\xfd", "zstd-compressed data; upload the uncompressed .csv file"),
    (b"BZh", "bzip2-compressed data; upload the uncompressed .csv file"),
    (b"%PDF", "a PDF document, not a CSV file"),
    (b"\xff\xfe", "UTF-16 text; save it as UTF-8 CSV (in Excel: 'CSV UTF-8') and upload again"),
    (b"\xfe\xff", "UTF-16 text; save it as UTF-8 CSV (in Excel: 'CSV UTF-8') and upload again"),
)


class DatasetRejected(Exception):
    """Input we cannot use. `reason` is one sentence a person can act on: what is wrong and what to fix."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class PreparedDataset:
    train_csv: bytes  # headerless, "<class index>,<features...>" (SageMaker XGBoost contract)
    validation_csv: bytes  # same shape
    test_features_csv: bytes  # test rows' raw (stripped) values, all columns but the target, headerless
    test_labels: list[str]  # raw target value of each test row, same order
    recipe: dict  # how to encode a raw row (JSON-serialisable), see module docstring
    profile: dict  # what happened, for people (JSON-serialisable)


# --------------------------------------------------------------------------------------------
# Reference encoder in plain Python (what the serving code must do, row by row).


def parse_number(text: str) -> float | None:
    """The finite float a stripped value stands for (Python's float()), or None."""
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def encode_row(recipe: Mapping, row: Mapping[str, str]) -> list[float]:
    """Encode one raw row (column name -> text as uploaded) with a recipe: the features, in order."""
    missing = set(recipe["missing_tokens"])
    encoded: list[float] = []
    for feature in recipe["features"]:
        text = (row.get(feature["name"]) or "").strip()
        if feature["kind"] == "numeric":
            number = None if text in missing else parse_number(text)
            encoded.append(feature["fill"] if number is None else number)
        else:
            categories = feature["categories"]
            index = _bisect_index(categories, text)
            encoded.append(-1.0 if index is None or text in missing else float(index))
    return encoded


def _bisect_index(sorted_values: Sequence[str], value: str) -> int | None:
    lo, hi = 0, len(sorted_values)
    while lo < hi:
        mid = (lo + hi) // 2
        if sorted_values[mid] < value:
            lo = mid + 1
        else:
            hi = mid
    return lo if lo < len(sorted_values) and sorted_values[lo] == value else None


# --------------------------------------------------------------------------------------------
# prepare


def prepare(data: bytes, config: DatasetConfig) -> PreparedDataset:
    """Validate, clean, split (stratified, deterministic), fit on train, encode. Raises DatasetRejected."""
    missing_tokens = list(dict.fromkeys(config.missing_values))

    columns, frame, rows_read, empty_rows = _read_csv(data)
    target = _check_columns(columns, config)
    candidates = [name for name in columns if name != target and name not in set(config.drop_columns)]

    missing_per_column = frame.select(pl.col(name).is_in(missing_tokens).sum() for name in columns).row(0)

    # Clean: drop rows without a target, then exact duplicates (before splitting, so no test row
    # also sits in train or validation).
    missing_target_rows = missing_per_column[columns.index(target)]
    if missing_target_rows:
        frame = frame.filter(~pl.col(target).is_in(missing_tokens))
    before = frame.height
    frame = _drop_duplicates(frame)
    duplicate_rows = before - frame.height

    classes, class_counts = _check_target(frame, target, config, missing_target_rows, missing_tokens)
    usable = frame.height
    if usable < MIN_USABLE_ROWS:
        raise DatasetRejected(
            f"only {usable} usable rows are left (read {rows_read}; dropped {missing_target_rows} with a missing "
            f"target {target!r}, {duplicate_rows} exact duplicates and {empty_rows} empty rows), but datadrop "
            f"needs at least {MIN_USABLE_ROWS}: upload more rows"
        )
    small = [(name, count) for name, count in zip(classes, class_counts) if count < MIN_ROWS_PER_CLASS]
    if small:
        listed = ", ".join(f"{name!r} has {count} row{'s' if count != 1 else ''}" for name, count in small[:10])
        raise DatasetRejected(
            f"class {listed} of target {target!r}, but every class needs at least {MIN_ROWS_PER_CLASS} rows to "
            "appear in the train, validation and test splits: add rows for that class or remove its rows"
        )

    special = _special_columns(data, frame, candidates)
    split_counts = _split_counts(class_counts, config.split.validation, config.split.test)
    frame = frame.with_columns(pl.col(target).cast(pl.Enum(classes)).to_physical().alias(_LABEL))
    train, validation, test = _assign_splits(frame, config.split.seed, split_counts)
    del frame

    features, dropped, column_notes, train_numbers = _fit_features(
        train, columns, candidates, config.drop_columns, missing_tokens, special
    )
    if not features:
        why = "; ".join(f"{item['name']}: {item['detail']}" for item in dropped) or "there are no other columns"
        raise DatasetRejected(
            f"no usable feature column is left besides the target {target!r} ({why}): upload columns that "
            "carry information about the target, or remove them from drop_columns"
        )

    problem_type = config.problem_type
    if problem_type == "auto":
        problem_type = "binary" if len(classes) == 2 else "multiclass"

    recipe = {
        "format": RECIPE_FORMAT,
        "target": target,
        "problem_type": problem_type,
        "classes": classes,
        "columns": columns,
        "features": features,
        "missing_tokens": missing_tokens,
        "dropped": [{"name": item["name"], "reason": item["reason"]} for item in dropped],
    }

    train_csv = _write_csv(_encode(train, features, missing_tokens, special, train_numbers))
    del train, train_numbers
    validation_csv = _write_csv(_encode(validation, features, missing_tokens, special))
    test_features_csv = _write_csv(test.select(name for name in columns if name != target))
    test_labels = test.get_column(target).to_list()
    del test

    splits = {}
    for name, per_class in (
        ("train", [count - t - v for count, (t, v) in zip(class_counts, split_counts)]),
        ("validation", [v for _, v in split_counts]),
        ("test", [t for t, _ in split_counts]),
    ):
        splits[name] = {"rows": sum(per_class), "classes": dict(zip(classes, per_class))}

    profile = {
        "format": PROFILE_FORMAT,
        "rows": {
            "read": rows_read,
            "empty": empty_rows,
            "missing_target": missing_target_rows,
            "duplicates": duplicate_rows,
            "usable": usable,
        },
        "target": {
            "name": target,
            "problem_type": problem_type,
            "classes": dict(zip(classes, class_counts)),
        },
        "splits": splits,
        "columns": [
            {"name": name, **column_notes.get(name, {"kind": "target"}), "missing": missing}
            for name, missing in zip(columns, missing_per_column)
        ],
        "dropped_columns": dropped,
        "missing_values": dict(zip(columns, missing_per_column)),
    }
    return PreparedDataset(
        train_csv=train_csv,
        validation_csv=validation_csv,
        test_features_csv=test_features_csv,
        test_labels=test_labels,
        recipe=recipe,
        profile=profile,
    )


# --------------------------------------------------------------------------------------------
# Reading and validating the file


def _read_csv(data: bytes) -> tuple[list[str], pl.DataFrame, int, int]:
    """Column names, the data rows as stripped strings (empty rows removed), rows read, empty rows."""
    if not data:
        raise DatasetRejected("the uploaded file is empty (0 bytes): upload a CSV file with a header row and data rows")
    if data.isspace():
        raise DatasetRejected("the uploaded file contains only whitespace: upload a CSV file with a header row and data rows")
    for magic, what in _MAGIC:
        if data.startswith(magic):
            raise DatasetRejected(f"the uploaded file is not a CSV text file: it looks like {what}")
    if b"\n" not in data and b"\r" in data:
        raise DatasetRejected(
            "the uploaded file ends its lines with CR only (old Mac format), so it reads as one long line: "
            "save it with LF or CRLF line endings (e.g. as 'CSV UTF-8') and upload again"
        )
    first_line_end = data.find(b"\n")
    if first_line_end >= 0 and data[:first_line_end].strip(b" \t\r\xef\xbb\xbf") == b"":
        raise DatasetRejected(
            "the uploaded file starts with a blank line, but the first line must be the header: "
            "remove the blank line(s) before the column names"
        )
    if b"\x00" in data:
        raise DatasetRejected(
            "the uploaded file contains NUL bytes, so it is a binary file (or UTF-16 text), not CSV text: "
            "upload a comma-separated text file encoded as UTF-8"
        )

    # polars sniffs zlib streams by their first two bytes; "x^", "x\x01", "x\x9c" and "x\xda" can start
    # a real CSV, so hide them behind a blank line that is skipped again.
    sniffed = data[:1] == b"x" and data[1:2] in (b"\x01", b"^", b"\x9c", b"\xda")
    try:
        # Lazy, so that the unstripped strings never exist for the whole file at once.
        raw = (
            pl.scan_csv(
                b"\n" + data if sniffed else data,
                has_header=False,
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
        raise _diagnose(data, None, error) from None
    if raw.width == 0 or raw.height == 0:
        raise DatasetRejected("the uploaded file has no header row: upload a CSV file with a header row and data rows")

    header = raw.row(0)
    columns = [("" if value is None else value).lstrip("\ufeff").strip() for value in header]  # Python strip == WHITESPACE
    for position, name in enumerate(columns, start=1):
        if not name:
            hint = (
                " (every line seems to end with a comma: remove the trailing commas)"
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

    # Count commas in the values (stripping never removes one), for _check_field_counts.
    value_commas = (
        int(raw.select(pl.sum_horizontal(pl.all().str.count_matches(",", literal=True).sum())).item())
        if raw.width > 1 and b'"' in data  # without quotes no value can hold a comma
        else 0
    )
    records = raw.height  # header included
    body = raw.slice(1)
    body.columns = columns
    del raw
    rows_read = body.height
    empty = pl.all_horizontal(pl.col(name) == "" for name in columns)
    empty_rows = int(body.select(empty.sum()).item())
    _check_field_counts(data, len(columns), records - empty_rows, empty_rows, value_commas)
    if empty_rows:
        body = body.filter(~empty)
    if body.height == 0:
        raise DatasetRejected(
            f"the uploaded file has a header ({len(columns)} columns) but no data rows: upload the data rows too"
        )
    return columns, body, rows_read, empty_rows


def _check_field_counts(data: bytes, width: int, full_records: int, empty_records: int, value_commas: int) -> None:
    """Reject rows with fewer fields than the header, which polars silently pads.

    polars already raises for rows with *more* fields. Every comma in the file either separates two
    fields or sits inside a (quoted) value, so with `width` fields per record the file must hold
    exactly (width - 1) commas per non-empty record, plus the commas inside values, plus up to
    (width - 1) for each empty record (a blank line has none, ",,," has all of them).
    """
    if width < 2:
        return
    surplus = data.count(b",") - (width - 1) * full_records - value_commas
    if surplus >= 0 and surplus % (width - 1) == 0 and surplus // (width - 1) <= empty_records:
        return
    raise _diagnose(data, width, None)


def _diagnose(data: bytes, width: int | None, error: Exception | None) -> DatasetRejected:
    """Find out, slowly but precisely, why a file does not parse; only runs for bad input."""
    bad_utf8 = _find_invalid_utf8(data)
    if bad_utf8 is not None:
        line, byte = bad_utf8
        return DatasetRejected(
            f"the uploaded file is not UTF-8 text (byte 0x{byte:02x} on line {line} is not valid UTF-8): "
            "save it as UTF-8 CSV (in Excel: 'CSV UTF-8') and upload again"
        )
    quote_problem = _find_quote_problem(data)
    if quote_problem is not None:
        return DatasetRejected(quote_problem)
    text = io.TextIOWrapper(io.BytesIO(data), encoding="utf-8-sig", newline="")
    reader = csv.reader(text)
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
                        "an unquoted comma inside a value: put such values in double quotes"
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
            "comma-separated fields (quote values that contain commas, line breaks or double quotes)"
        )
    return DatasetRejected(
        f"the uploaded file could not be read as comma-separated CSV ({detail}): check that it is a UTF-8 CSV "
        "file with a header row and one record per line, with values containing commas, line breaks or "
        "double quotes in double quotes"
    )


def _find_quote_problem(data: bytes) -> str | None:
    """Where the quoting breaks RFC 4180 (which polars' parser requires), as a reason, or None.

    A value either starts with a double quote and ends at the matching one (a quote inside is
    written twice), or contains no double quote at all.
    """
    text = io.TextIOWrapper(io.BytesIO(data), encoding="utf-8-sig", newline="")
    in_quotes = False
    opened_on = 0
    for number, line in enumerate(text, start=1):
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
                if char not in ",\r\n":
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
            field_start = char in ",\r\n"
    if in_quotes:
        return (
            f"line {opened_on} opens a double-quoted value that is never closed: add the closing double quote "
            "(and write any double quote inside the value twice)"
        )
    return None


def _find_invalid_utf8(data: bytes, chunk: int = 1 << 22) -> tuple[int, int] | None:
    """(line number, byte value) of the first byte that is not valid UTF-8, or None."""
    start, line = 0, 1
    if data.startswith(codecs.BOM_UTF8):
        start = len(codecs.BOM_UTF8)
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


def _drop_duplicates(frame: pl.DataFrame) -> pl.DataFrame:
    """Exact duplicate rows removed, first occurrence kept, order kept.

    Rows are bucketed by a 64-bit row hash first (cheap); only rows sharing a hash are compared
    exactly, so a hash collision can never drop a row that merely looks the same.
    """
    shared = frame.hash_rows(seed=0).is_duplicated()
    if not shared.any():
        return frame
    positions = pl.int_range(0, frame.height, dtype=pl.UInt32, eager=True).filter(shared)
    later = frame.filter(shared).select(~pl.struct(pl.all()).is_first_distinct()).to_series()
    keep = pl.repeat(True, frame.height, eager=True).scatter(positions.filter(later), False)
    return frame.filter(keep)


def _check_columns(columns: list[str], config: DatasetConfig) -> str:
    target = config.target.strip()
    if target not in columns:
        suggestion = _closest(target, columns)
        hint = f" (did you mean {suggestion!r}?)" if suggestion else ""
        raise DatasetRejected(
            f"the target column {target!r} is not in the file{hint}{_separator_hint(columns)}: set `target` in the "
            f"dataset config to one of the file's columns: {_list(columns)}"
        )
    unknown = [name for name in config.drop_columns if name not in columns]
    if unknown:
        hints = []
        for name in unknown:
            suggestion = _closest(name, columns)
            hints.append(f"{name!r} (did you mean {suggestion!r}?)" if suggestion else repr(name))
        raise DatasetRejected(
            f"drop_columns names {'columns' if len(unknown) > 1 else 'a column'} that the file does not have: "
            f"{', '.join(hints)}; fix or remove {'them' if len(unknown) > 1 else 'it'} in the dataset config "
            f"(the file's columns are: {_list(columns)})"
        )
    if target in config.drop_columns:
        raise DatasetRejected(
            f"drop_columns lists the target column {target!r}: remove it from drop_columns (the target is never a feature)"
        )
    return target


def _check_target(
    frame: pl.DataFrame, target: str, config: DatasetConfig, missing_target_rows: int, missing_tokens: list[str]
) -> tuple[list[str], list[int]]:
    counts = frame.get_column(target).value_counts(sort=False, name=_KEY).sort(target)
    classes = counts.get_column(target).to_list()
    class_counts = counts.get_column(_KEY).to_list()
    after = f" after dropping {missing_target_rows} rows with a missing target" if missing_target_rows else ""
    if not classes:
        raise DatasetRejected(
            f"every row has a missing target {target!r} (values counted as missing: {_list(missing_tokens)}): "
            "fill in the target column, or fix missing_values in the dataset config"
        )
    if len(classes) < 2:
        raise DatasetRejected(
            f"the target {target!r} has only one class ({classes[0]!r}){after}, but a classifier needs at least 2: "
            "upload rows of the other classes or choose another target"
        )
    if len(classes) > MAX_CLASSES:
        numeric = frame.select(_number_expr(target, missing_tokens).is_not_null().mean()).item() or 0.0
        looks_like = "a regression target (a number to predict)" if numeric >= NUMERIC_SHARE else "an ID or free-text column"
        raise DatasetRejected(
            f"the target {target!r} has {len(classes)} distinct values but datadrop classifies into at most "
            f"{MAX_CLASSES} classes; it looks like {looks_like}: choose a column with a few categories as the target "
            "(or bin the values into categories first)"
        )
    if config.problem_type == "binary" and len(classes) > 2:
        raise DatasetRejected(
            f"problem_type is binary but the target {target!r} has {len(classes)} classes ({_list(classes)}){after}: "
            "set problem_type to multiclass (or auto), or remove the extra classes"
        )
    return classes, class_counts


def _closest(name: str, candidates: Sequence[str]) -> str | None:
    folded = name.casefold()
    for candidate in candidates:
        if candidate.casefold() == folded:
            return candidate
    squashed = re.sub(r"[\W_]+", "", folded)
    for candidate in candidates:
        if squashed and re.sub(r"[\W_]+", "", candidate.casefold()) == squashed:
            return candidate
    by_fold = {candidate.casefold(): candidate for candidate in candidates}
    close = difflib.get_close_matches(folded, list(by_fold), n=1, cutoff=0.6)
    return by_fold[close[0]] if close else None


def _separator_hint(columns: list[str]) -> str:
    if len(columns) == 1:
        for separator, label in ((";", "semicolons"), ("\t", "tabs"), ("|", "pipes")):
            if separator in columns[0]:
                return f"; the header looks separated by {label}, but datadrop reads comma-separated files"
    return ""


def _list(values: Sequence[str], limit: int = 30) -> str:
    shown = ", ".join(repr(value) for value in values[:limit])
    return shown + (f" and {len(values) - limit} more" if len(values) > limit else "")


# --------------------------------------------------------------------------------------------
# Splitting


def _split_counts(class_counts: list[int], validation: float, test: float) -> list[tuple[int, int]]:
    """Per class: (test rows, validation rows); at least one each, and at least one left for train."""
    result = []
    for count in class_counts:
        n_test = max(1, math.floor(count * test + 0.5))
        n_validation = max(1, math.floor(count * validation + 0.5))
        while n_test + n_validation > count - 1:
            if n_test >= n_validation:
                n_test -= 1
            else:
                n_validation -= 1
        result.append((n_test, n_validation))
    return result


def splitmix64(seed: int, count: int) -> list[int]:
    """The first `count` outputs of SplitMix64(seed): the split keys of rows 0..count-1 (reference)."""
    out = []
    state = seed & _U64
    for _ in range(count):
        state = (state + _GOLDEN) & _U64
        z = state
        z = ((z ^ (z >> 30)) * _MIX1) & _U64
        z = ((z ^ (z >> 27)) * _MIX2) & _U64
        out.append(z ^ (z >> 31))
    return out


def _u64(value: int) -> pl.Expr:
    return pl.lit(value & _U64, dtype=pl.UInt64)


def _split_keys(height: int, seed: int) -> pl.Series:
    """SplitMix64(seed) outputs 0..height-1 (same numbers as `splitmix64`), with wrapping UInt64 maths."""
    z = pl.col(_KEY)
    return (
        pl.DataFrame({_KEY: pl.int_range(0, height, dtype=pl.UInt64, eager=True)})
        .select(((z + _u64(1)) * _u64(_GOLDEN) + _u64(seed)).alias(_KEY))
        .select(((z ^ (z // _u64(1 << 30))) * _u64(_MIX1)).alias(_KEY))
        .select(((z ^ (z // _u64(1 << 27))) * _u64(_MIX2)).alias(_KEY))
        .select((z ^ (z // _u64(1 << 31))).alias(_KEY))
        .to_series()
    )


def _assign_splits(
    frame: pl.DataFrame, seed: int, split_counts: list[tuple[int, int]]
) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """Stratified split into (train, validation, test), file order kept within each.

    Within each class, rows are ordered by their SplitMix64 key: the first ones go to test, the
    next ones to validation, the rest to train. The frame is split a few columns at a time, so
    only those columns exist twice at any moment.
    """
    labels = frame.get_column(_LABEL)
    keyed = pl.DataFrame({_LABEL: labels, _KEY: _split_keys(frame.height, seed)})
    # Per class, the keys of the (test + validation) smallest; keys are distinct (SplitMix64 is a
    # bijection), so "key <= the n-th smallest" picks exactly n rows of the class.
    largest = max(t + v for t, v in split_counts)
    ends = (
        keyed.group_by(_LABEL)
        .agg(pl.col(_KEY).bottom_k(largest).sort())
        .sort(_LABEL)
        .with_columns(
            test=pl.Series([t - 1 for t, _ in split_counts]),
            validation=pl.Series([t + v - 1 for t, v in split_counts]),
        )
        .select(
            pl.col(_KEY).list.get(pl.col("test")).alias("test"),
            pl.col(_KEY).list.get(pl.col("validation")).alias("validation"),
        )
    )
    key = pl.col(_KEY)
    splits = keyed.select(
        pl.when(key <= ends.get_column("test").gather(labels))
        .then(pl.lit(_TEST, dtype=pl.UInt8))
        .when(key <= ends.get_column("validation").gather(labels))
        .then(pl.lit(_VALIDATION, dtype=pl.UInt8))
        .otherwise(pl.lit(_TRAIN, dtype=pl.UInt8))
    ).to_series()
    del keyed
    masks = [splits == part for part in (_TRAIN, _VALIDATION, _TEST)]
    parts: list[list[pl.DataFrame]] = [[], [], []]
    names = frame.columns
    for start in range(0, len(names), _SPLIT_BATCH):
        batch = names[start : start + _SPLIT_BATCH]
        for part, mask in zip(parts, masks):
            part.append(frame.select(batch).filter(mask))
        frame = frame.drop(batch)
    train, validation, test = (pl.concat(part, how="horizontal") for part in parts)
    return train, validation, test


# --------------------------------------------------------------------------------------------
# Fitting and encoding


def _number_expr(name: str, missing: list[str], special: bool = True) -> pl.Expr:
    """Float64 of a stripped value that is present and a finite number (see `parse_number`), else null.

    `special` must be true when the column may hold "_" or non-ASCII text (see `_special_columns`).
    """
    value = pl.col(name)
    text = value
    if special:
        decimals, digits = _unicode_decimals()
        text = text.str.replace_many(decimals, digits)  # what float() does to "١٢" before parsing
        text = pl.when(text.str.contains(_UNDERSCORE_NUMBER)).then(text.str.replace_all("_", "", literal=True)).otherwise(text)
    parsed = text.cast(pl.Float64, strict=False)
    return pl.when(parsed.is_finite() & ~value.is_in(missing)).then(parsed).alias(name)


def _special_columns(data: bytes, frame: pl.DataFrame, names: list[str]) -> set[str]:
    """The columns that may hold "_" or non-ASCII text, where the cast alone would differ from float()."""
    header_end = data.find(b"\n") + 1
    if not names or (data.isascii() and data.find(b"_", header_end) < 0):
        return set()  # the usual case, decided at memchr speed
    flags = frame.select(
        (pl.col(name).str.contains("_", literal=True) | (pl.col(name).str.len_bytes() != pl.col(name).str.len_chars()))
        .any()
        .alias(name)
        for name in names
    ).row(0)
    return {name for name, flag in zip(names, flags) if flag}


@functools.cache
def _unicode_decimals() -> tuple[list[str], list[str]]:
    """Every non-ASCII decimal digit and the ASCII digit float() reads it as."""
    decimals = [chr(code) for code in range(0x80, 0x110000) if chr(code).isdecimal()]
    return decimals, [str(unicodedata.decimal(char)) for char in decimals]


def _fit_features(
    train: pl.DataFrame,
    columns: list[str],
    candidates: list[str],
    drop_columns: list[str],
    missing: list[str],
    special: set[str],
) -> tuple[list[dict], list[dict], dict[str, dict], pl.DataFrame]:
    """Decide kinds and fit fills / categories on the training rows only.

    Returns the recipe features, the dropped columns (name, reason, detail), per-column notes for
    the profile, and the parsed numbers of the numeric features' training rows (null = use fill).
    """
    dropped: list[dict] = []
    notes: dict[str, dict] = {}
    rows = train.height
    present: dict[str, int] = {}
    stats: dict[str, float | int | None] = {}
    numbers = train.select(_number_expr(name, missing, name in special) for name in candidates)
    if candidates:
        present = dict(zip(candidates, train.select((~pl.col(name).is_in(missing)).sum() for name in candidates).row(0)))
        stats = numbers.select(
            expression
            for name in candidates
            for expression in (
                pl.col(name).count().alias(f"{name}\x00count"),
                pl.col(name).min().alias(f"{name}\x00min"),
                pl.col(name).max().alias(f"{name}\x00max"),
            )
        ).row(0, named=True)

    features: list[dict] = []
    numeric: list[str] = []
    for name in columns:
        if name in drop_columns:
            dropped.append({"name": name, "reason": "drop_columns", "detail": "listed in drop_columns"})
            notes[name] = {"kind": "dropped", "reason": "drop_columns"}
            continue
        if name not in present:
            continue  # the target
        count, low, high = (stats[f"{name}\x00{key}"] for key in ("count", "min", "max"))
        count = count or 0  # no number at all in the training rows
        reason = detail = None
        if present[name] == 0:
            reason, detail = "all_missing", "every value in the training rows is missing"
        elif count >= NUMERIC_SHARE * present[name]:
            if low == high:
                reason, detail = "constant", f"every number in the training rows is {low!r}"
            else:
                features.append({"name": name, "kind": "numeric", "fill": None})
                numeric.append(name)
                notes[name] = {"kind": "numeric", "not_numbers_in_train": present[name] - count}
                continue
        else:
            values = train.get_column(name)
            categories = values.filter(~values.is_in(missing)).unique()
            if len(categories) == 1 and present[name] == rows:
                reason, detail = "constant", f"every training row has the value {categories[0]!r}"
            elif len(categories) > ID_LIKE_MIN_DISTINCT and len(categories) / present[name] > ID_LIKE_DISTINCT_SHARE:
                reason = "id_like"
                detail = (
                    f"looks like an identifier: {len(categories)} distinct values in {present[name]} training rows, "
                    "so it cannot generalise to new rows"
                )
            else:
                levels = categories.sort().to_list()
                features.append({"name": name, "kind": "categorical", "categories": levels})
                notes[name] = {"kind": "categorical", "categories": len(levels)}
                continue
        dropped.append({"name": name, "reason": reason, "detail": detail})
        notes[name] = {"kind": "dropped", "reason": reason}

    numbers = numbers.select(numeric)
    medians = numbers.select(pl.all().median()).row(0, named=True) if numeric else {}
    for feature in features:
        if feature["kind"] == "numeric":
            feature["fill"] = notes[feature["name"]]["fill"] = float(medians[feature["name"]])
    return features, dropped, notes, numbers


def _encode(
    frame: pl.DataFrame, features: list[dict], missing: list[str], special: set[str], numbers: pl.DataFrame | None = None
) -> pl.DataFrame:
    """Label (class index) then the encoded features; `numbers` may hold the numeric columns already parsed."""
    expressions: list[pl.Expr] = [pl.col(_LABEL).cast(pl.Int64)]
    for feature in features:
        name = feature["name"]
        if feature["kind"] == "categorical":
            categories = feature["categories"]  # never holds a missing token, so missing maps to -1 too
            expressions.append(
                pl.col(name).replace_strict(
                    categories, [float(index) for index in range(len(categories))], default=-1.0, return_dtype=pl.Float64
                )
            )
        elif numbers is None:
            expressions.append(_number_expr(name, missing, name in special).fill_null(feature["fill"]))
    encoded = frame.select(expressions)
    if numbers is not None:
        fills = {feature["name"]: feature["fill"] for feature in features if feature["kind"] == "numeric"}
        encoded = encoded.hstack(numbers.select(pl.col(name).fill_null(fill) for name, fill in fills.items()))
        encoded = encoded.select(_LABEL, *(feature["name"] for feature in features))
    return encoded


def _write_csv(frame: pl.DataFrame) -> bytes:
    buffer = io.BytesIO()
    frame.write_csv(buffer, include_header=False)
    return buffer.getvalue()
