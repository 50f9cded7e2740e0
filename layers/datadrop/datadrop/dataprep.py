"""Turn an uploaded CSV into train / validation / test data for SageMaker's built-in XGBoost.

`prepare(data, config)` is pure logic (no AWS): it validates, cleans, splits, fits the feature
encoding on the training rows only, and encodes. Anything it cannot use raises `DatasetRejected`
whose `reason` says what is wrong and what to fix.

The encoding contract (the serving code re-implements it in plain Python; `encode_row` below is
the reference implementation and must stay in step with the polars expressions in this module):

* Every value is read as text and stripped with Python's `str.strip()` (no arguments).
* A value is *missing* when the stripped text is one of `recipe["missing_tokens"]`.
* numeric feature: missing, not a number, or not finite -> `fill`; else `float(text)`.
  "a number" means exactly what Python's `float()` accepts for ASCII text (so "1_000" is 1000.0);
  text with non-ASCII characters is never a number (see `parse_number`).
* categorical feature: index of the text in `categories`, as a float; missing or unseen -> -1.0.
* label: index of the target text in `recipe["classes"]`.

Rows are written as headerless CSV, label first, then the features in `recipe["features"]` order,
with floats written so that `float(field)` gives back the same float64.
"""

from __future__ import annotations

import codecs
import csv
import difflib
import io
import math
import re
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

# Python's float() grammar for finite decimal numbers, with PEP 515 underscores between digits.
# polars' cast accepts the same text except underscores, so text with "_" is checked against this
# pattern and the underscores removed before casting.
_DIGITS = r"[0-9](?:_?[0-9])*"
_UNDERSCORE_NUMBER = rf"^[+-]?(?:{_DIGITS}(?:\.(?:{_DIGITS})?)?|\.{_DIGITS})(?:[eE][+-]?{_DIGITS})?$"

# Internal column names; a CSV header cannot produce them because NUL bytes are rejected.
_LABEL = "\x00label"
_SPLIT = "\x00split"
_KEY = "\x00key"
_TRAIN, _VALIDATION, _TEST = 0, 1, 2
_SPLIT_NAMES = {_TRAIN: "train", _VALIDATION: "validation", _TEST: "test"}

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
    """The finite float a stripped value stands for, or None. Same result as this module's polars code."""
    if not text.isascii():
        return None
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
    missing_series = pl.Series(missing_tokens, dtype=pl.String)

    columns, frame, rows_read, empty_rows = _read_csv(data)
    target = _check_columns(columns, config)
    candidates = [name for name in columns if name != target and name not in set(config.drop_columns)]

    missing_per_column = frame.select(pl.col(name).is_in(missing_series).sum() for name in columns).row(0)

    # Clean: drop rows without a target, then exact duplicates (before splitting, so no test row
    # also sits in train or validation).
    before = frame.height
    frame = frame.filter(~pl.col(target).is_in(missing_series))
    missing_target_rows = before - frame.height
    before = frame.height
    frame = frame.unique(maintain_order=True)
    duplicate_rows = before - frame.height

    classes, class_counts = _check_target(frame, target, config, missing_target_rows, missing_tokens)
    usable = frame.height
    if usable < MIN_USABLE_ROWS:
        raise DatasetRejected(
            f"only {usable} usable rows are left (read {rows_read}; dropped {missing_target_rows} with a missing "
            f"target {target!r}, {duplicate_rows} exact duplicates and {empty_rows} empty lines), but datadrop "
            f"needs at least {MIN_USABLE_ROWS}: upload more rows"
        )
    small = [(name, count) for name, count in zip(classes, class_counts) if count < MIN_ROWS_PER_CLASS]
    if small:
        listed = ", ".join(f"{name!r} has {count} row{'s' if count != 1 else ''}" for name, count in small[:10])
        raise DatasetRejected(
            f"class {listed} of target {target!r}, but every class needs at least {MIN_ROWS_PER_CLASS} rows to "
            "appear in the train, validation and test splits: add rows for that class or remove its rows"
        )

    split_counts = _split_counts(class_counts, config.split.validation, config.split.test)
    frame = frame.with_columns(pl.col(target).cast(pl.Enum(classes)).to_physical().alias(_LABEL))
    frame = _assign_splits(frame, config.split.seed, split_counts)

    train = frame.filter(pl.col(_SPLIT) == _TRAIN)
    features, dropped, column_notes = _fit_features(
        frame, train, columns, candidates, config.drop_columns, missing_series
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
        "features": [
            {key: value for key, value in feature.items() if not key.startswith("_")} for feature in features
        ],
        "missing_tokens": missing_tokens,
        "dropped": [{"name": item["name"], "reason": item["reason"]} for item in dropped],
    }

    encoders = [_encode_expr(feature, missing_series) for feature in features]
    label = pl.col(_LABEL).cast(pl.Int64)
    train_csv = _write_csv(train.select(label, *encoders))
    del train
    validation_csv = _write_csv(frame.filter(pl.col(_SPLIT) == _VALIDATION).select(label, *encoders))
    test = frame.filter(pl.col(_SPLIT) == _TEST)
    test_features_csv = _write_csv(test.select(name for name in columns if name != target))
    test_labels = test.get_column(target).to_list()

    split_class_counts = (
        frame.group_by(_SPLIT, _LABEL).len().sort(_SPLIT, _LABEL).rows()
    )
    splits: dict[str, dict] = {
        name: {"rows": 0, "classes": dict.fromkeys(classes, 0)} for name in _SPLIT_NAMES.values()
    }
    for split, label_index, count in split_class_counts:
        entry = splits[_SPLIT_NAMES[split]]
        entry["rows"] += count
        entry["classes"][classes[label_index]] = count

    profile = {
        "format": PROFILE_FORMAT,
        "rows": {
            "read": rows_read,
            "empty_lines": empty_rows,
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
    """Column names, the data rows as stripped strings (empty lines removed), rows read, empty lines."""
    if not data:
        raise DatasetRejected("the uploaded file is empty (0 bytes): upload a CSV file with a header row and data rows")
    if data.isspace():
        raise DatasetRejected(
            "the uploaded file contains only whitespace: upload a CSV file with a header row and data rows"
        )
    for magic, what in _MAGIC:
        if data.startswith(magic):
            raise DatasetRejected(f"the uploaded file is not a CSV text file: it looks like {what}")
    if b"\x00" in data:
        raise DatasetRejected(
            "the uploaded file contains NUL bytes, so it is a binary file (or UTF-16 text), not CSV text: "
            "upload a comma-separated text file encoded as UTF-8"
        )

    # polars sniffs zlib streams by their first two bytes; "x^", "x\x01", "x\x9c" and "x\xda" can start
    # a real CSV, so hide them behind a blank line that is skipped again.
    sniffed = data[:1] == b"x" and data[1:2] in (b"\x01", b"^", b"\x9c", b"\xda")
    try:
        raw = pl.read_csv(
            b"\n" + data if sniffed else data,
            has_header=False,
            infer_schema=False,
            empty_string_is_null=False,
            skip_lines=1 if sniffed else 0,
            truncate_ragged_lines=False,
            raise_if_empty=False,
        )
    except Exception as error:  # polars raises ComputeError, OSError, ... for malformed input
        raise _diagnose(data, None, error) from None
    if raw.width == 0 or raw.height == 0:
        raise DatasetRejected("the uploaded file has no header row: upload a CSV file with a header row and data rows")

    header = raw.row(0)
    columns = [("" if value is None else value).lstrip("\ufeff").strip() for value in header]
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
                f"the header names column {name!r} twice (columns {seen[name]} and {position}): "
                "give every column a unique name"
            )
        seen[name] = position

    source_names = raw.columns
    # Count commas in the parsed values before the raw frame goes away (see _check_field_counts).
    value_commas = (
        int(raw.select(pl.sum_horizontal(pl.all().str.count_matches(",", literal=True).sum())).item())
        if raw.width > 1
        else 0
    )
    records = raw.height  # header included
    body = raw.slice(1).select(
        pl.col(source).str.strip_chars(WHITESPACE).alias(name) for source, name in zip(source_names, columns)
    )
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


def _check_columns(columns: list[str], config: DatasetConfig) -> str:
    target = config.target.strip()
    if target not in columns:
        suggestion = _closest(target, columns)
        hint = f" Did you mean {suggestion!r}?" if suggestion else ""
        separator = _separator_hint(columns)
        raise DatasetRejected(
            f"the target column {target!r} is not in the file.{hint} The columns are: {_list(columns)}. "
            f"Set `target` in the dataset config to one of them{separator}."
        )
    unknown = [name for name in config.drop_columns if name not in columns]
    if unknown:
        hints = [f"{name!r} (did you mean {_closest(name, columns)!r}?)" if _closest(name, columns) else repr(name)
                 for name in unknown]
        raise DatasetRejected(
            f"drop_columns names column{'s' if len(unknown) > 1 else ''} not in the file: {', '.join(hints)}. "
            f"The columns are: {_list(columns)}. Fix or remove {'them' if len(unknown) > 1 else 'it'} in drop_columns."
        )
    if target in config.drop_columns:
        raise DatasetRejected(
            f"drop_columns lists the target column {target!r}: remove it from drop_columns (the target is never a feature)"
        )
    return target


def _check_target(
    frame: pl.DataFrame, target: str, config: DatasetConfig, missing_target_rows: int, missing_tokens: list[str]
) -> tuple[list[str], list[int]]:
    counts = frame.get_column(target).value_counts(sort=False, name="n").sort(target)
    classes = counts.get_column(target).to_list()
    class_counts = counts.get_column("n").to_list()
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
        numeric = frame.select(_parse_expr(pl.col(target), True).is_not_null().mean()).item() or 0.0
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
                return f" (the header looks separated by {label}; datadrop reads comma-separated files)"
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


def _assign_splits(frame: pl.DataFrame, seed: int, split_counts: list[tuple[int, int]]) -> pl.DataFrame:
    """Stratified split: within each class, rows ordered by their SplitMix64 key; first test, then validation."""
    rank = pl.col(_KEY).rank("ordinal").over(_LABEL)  # 1-based; keys are distinct (SplitMix64 is a bijection)
    indices = list(range(len(split_counts)))
    test_end = pl.col(_LABEL).replace_strict(indices, [t for t, _ in split_counts], return_dtype=pl.UInt32)
    validation_end = pl.col(_LABEL).replace_strict(indices, [t + v for t, v in split_counts], return_dtype=pl.UInt32)
    split = (
        pl.when(rank <= test_end)
        .then(pl.lit(_TEST, dtype=pl.UInt8))
        .when(rank <= validation_end)
        .then(pl.lit(_VALIDATION, dtype=pl.UInt8))
        .otherwise(pl.lit(_TRAIN, dtype=pl.UInt8))
    )
    keyed = pl.DataFrame({_LABEL: frame.get_column(_LABEL), _KEY: _split_keys(frame.height, seed)})
    return frame.with_columns(keyed.select(split.alias(_SPLIT)).to_series())


# --------------------------------------------------------------------------------------------
# Fitting and encoding


def _parse_expr(column: pl.Expr, has_underscore: bool) -> pl.Expr:
    """Float64 of a stripped value when Python's float() gives a finite number for it, else null."""
    if has_underscore:
        column = (
            pl.when(column.str.contains(_UNDERSCORE_NUMBER))
            .then(column.str.replace_all("_", "", literal=True))
            .otherwise(column)
        )
    parsed = column.cast(pl.Float64, strict=False)
    return pl.when(parsed.is_finite()).then(parsed)


def _fit_features(
    frame: pl.DataFrame,
    train: pl.DataFrame,
    columns: list[str],
    candidates: list[str],
    drop_columns: list[str],
    missing: pl.Series,
) -> tuple[list[dict], list[dict], dict[str, dict]]:
    """Decide kinds and fit fills / categories on the training rows only."""
    dropped: list[dict] = []
    notes: dict[str, dict] = {}
    underscores = (
        frame.select(pl.col(name).str.contains("_", literal=True).any() for name in candidates).row(0)
        if candidates
        else ()
    )
    has_underscore = dict(zip(candidates, underscores))
    stats: dict[str, dict] = {}
    if candidates:
        expressions = []
        for index, name in enumerate(candidates):
            value = pl.col(name)
            present = ~value.is_in(missing)
            parsed = _parse_expr(value, has_underscore[name])
            number = parsed.filter(present & parsed.is_not_null())
            expressions += [
                present.sum().alias(f"{index}:present"),
                number.len().alias(f"{index}:numbers"),
                number.n_unique().alias(f"{index}:distinct_numbers"),
                number.median().alias(f"{index}:median"),
                value.filter(present).n_unique().alias(f"{index}:distinct"),
            ]
        row = train.lazy().select(expressions).collect().row(0, named=True)
        for index, name in enumerate(candidates):
            stats[name] = {key: row[f"{index}:{key}"] for key in ("present", "numbers", "distinct_numbers", "median", "distinct")}

    features: list[dict] = []
    rows = train.height
    for name in columns:
        if name in drop_columns:
            dropped.append({"name": name, "reason": "drop_columns", "detail": "listed in drop_columns"})
            notes[name] = {"kind": "dropped", "reason": "drop_columns"}
            continue
        if name not in stats:
            continue  # the target
        s = stats[name]
        reason = detail = None
        if s["present"] == 0:
            reason, detail = "all_missing", "every value in the training rows is missing"
        elif s["numbers"] >= NUMERIC_SHARE * s["present"]:
            if s["distinct_numbers"] <= 1:
                reason, detail = "constant", "has a single value in the training rows"
            else:
                fill = float(s["median"])
                features.append({"name": name, "kind": "numeric", "fill": fill, "_underscore": has_underscore[name]})
                notes[name] = {
                    "kind": "numeric",
                    "fill": fill,
                    "not_numbers_in_train": s["present"] - s["numbers"],
                }
                continue
        elif s["distinct"] == 1 and s["present"] == rows:
            reason, detail = "constant", "has a single value in the training rows"
        elif s["distinct"] > ID_LIKE_MIN_DISTINCT and s["distinct"] / s["present"] > ID_LIKE_DISTINCT_SHARE:
            reason = "id_like"
            detail = (
                f"looks like an identifier: {s['distinct']} distinct values in {s['present']} training rows; "
                "it cannot generalise to new rows"
            )
        else:
            categories = (
                train.get_column(name).filter(~train.get_column(name).is_in(missing)).unique().sort().to_list()
            )
            features.append({"name": name, "kind": "categorical", "categories": categories})
            notes[name] = {"kind": "categorical", "categories": len(categories)}
            continue
        dropped.append({"name": name, "reason": reason, "detail": detail})
        notes[name] = {"kind": "dropped", "reason": reason}
    return features, dropped, notes


def _encode_expr(feature: dict, missing: pl.Series) -> pl.Expr:
    value = pl.col(feature["name"])
    if feature["kind"] == "numeric":
        parsed = _parse_expr(value, feature["_underscore"])
        return (
            pl.when(value.is_in(missing) | parsed.is_null())
            .then(pl.lit(feature["fill"], dtype=pl.Float64))
            .otherwise(parsed)
            .alias(feature["name"])
        )
    categories = feature["categories"]  # never contains a missing token, so missing maps to -1 too
    return value.replace_strict(
        categories, [float(index) for index in range(len(categories))], default=-1.0, return_dtype=pl.Float64
    ).alias(feature["name"])


def _write_csv(frame: pl.DataFrame) -> bytes:
    buffer = io.BytesIO()
    frame.write_csv(buffer, include_header=False)
    return buffer.getvalue()
