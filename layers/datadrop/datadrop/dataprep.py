"""Turn an uploaded table into train / validation / test data for SageMaker's built-in XGBoost.

`prepare(data, config)` is pure logic (no AWS): it reads (`datadrop.reading`: CSV, Parquet or
JSON Lines, gzip or not, detected), validates, cleans, splits, fits the feature encoding on the
training rows only, and encodes; its `QualityReport` (`datadrop.quality`) says what it found and
did. Anything it cannot use raises `DatasetRejected` whose `reason` says what is wrong and what to fix.

Steps: read every value as text (all columns Utf8) and strip it; drop empty lines, rows
whose target is missing, then exact duplicate rows (before splitting, so no test row also sits in
train); split per class (SplitMix64 keys seeded with `split.seed`, first `test`, then `validation`
share of each class, at least one row each); decide column kinds and fit fills / categories on the
train rows only (the boolean, datetime and ID-like integer rules are in `datadrop.roles`; row numbers
are recognised in file order, before cleaning); encode train and validation; keep the test rows raw
for batch transform.

The encoding contract. The serving code (`datadrop.serving.inference`) implements it in plain
Python, and so does `encode_row` below; tests check both against the CSVs written here:

* Every value is read as text and stripped with Python's `str.strip()` (no arguments).
* A value is *missing* when the stripped text is one of `recipe["missing_tokens"]`.
* numeric feature: missing, not a number, or not finite -> `fill`; else `float(text)`. When the
  feature has a `number_format` (a column written with thousands separators or a decimal comma),
  a value matching its `pattern` in full first loses every character of `remove` and has its
  `decimal` character replaced by "." (see `NUMBER_FORMATS`).
  "A number" is whatever Python's `float()` accepts, including "1_000" and non-ASCII decimal
  digits such as "١٢" (see `parse_number`; the polars code emulates those two cases).
* categorical feature: index of the text in `categories`, as a float; missing or unseen -> -1.0.
  When the feature has `"normalise": "casefold"`, the text (already known not to be missing) is
  looked up as `str.casefold()` gives it (see `CATEGORY_NORMALISATIONS`), so "Dream" and "dream"
  are one level.
* boolean feature: 1.0 when the text, case-folded, is one of the feature's `true` spellings, 0.0 when
  one of its `false` spellings; missing or anything else -> -1.0 (see `datadrop.roles`).
* datetime feature (one per part of a date column, read from the feature's `column`): the feature's
  `part` of the date the text stands for (`roles.parse_datetime`, `roles.datetime_part`); missing or
  not a date -> `fill`.
* label: index of the target text in `recipe["classes"]`; labels equal but for case, spacing or
  number format were merged into one class before splitting (`merge_labels`), and the test labels
  are written merged.
* regression (`recipe["problem_type"] == "regression"`, `classes` empty): the label is the target's
  float (as `parse_number` reads it; rows whose target is not a number are dropped and counted), and
  the test labels are those floats. With problem_type auto, a target is regression when NUMERIC_SHARE
  of its present values are numbers with more than MAX_CLASSES distinct values; the split is then
  stratified by the target's quantile bins (`_quantile_bins`) instead of by class.

Rows are written as headerless CSV, label first, then the features in `recipe["features"]` order,
with floats written so that `float(field)` gives back the same float64.
"""

from __future__ import annotations

import difflib
import functools
import io
import math
import re
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import polars as pl

import datadrop.roles as column_roles
from datadrop.config import DatasetConfig
from datadrop.quality import (
    CategoricalSummary,
    ColumnReport,
    Normalisation,
    NumericSummary,
    QualityReport,
    RowCounts,
    SplitReport,
    TargetReport,
    TargetSummary,
)
from datadrop.reading import DatasetRejected, Table, read_table

RECIPE_FORMAT = "datadrop-recipe/1"

MIN_USABLE_ROWS = 30
MAX_CLASSES = 50
MIN_ROWS_PER_CLASS = 3  # one each for train, validation and test
MAX_TARGET_BINS = 10  # regression: the target's quantile bins the split is stratified by ...
ROWS_PER_BIN_SPLIT = 3  # ... each expecting this many test and validation rows (fewer bins for small files)
NUMERIC_SHARE = 0.95  # share of non-missing training values that must be finite numbers
ID_LIKE_MIN_DISTINCT = 20  # a categorical column with more distinct values than this ...
ID_LIKE_DISTINCT_SHARE = 0.9  # ... and distinct / non-missing above this is an identifier
FREE_TEXT_MIN_CHARS = 30  # a text column whose values average this many characters ...
FREE_TEXT_DISTINCT_SHARE = 0.5  # ... and are mostly distinct is free text (its levels would not generalise)
MAX_REPORTED_VALUE = 200  # characters of a value quoted in the quality report

# How a categorical feature's (stripped, present) value is normalised, by the name the recipe
# carries; the inference script has the same table (it cannot import this module) and a test
# checks they agree.
CATEGORY_NORMALISATIONS: dict[str, Callable[[str], str]] = {"casefold": str.casefold}

# polars' string-to-float cast accepts exactly what Python's float() accepts for ASCII text, except
# PEP 515 underscores ("1_000"); float() also reads any Unicode decimal digit ("١٢" is 12.0).
# Columns holding "_" or non-ASCII text take a slower path that emulates both (`_number_expr`).
_DIGITS = r"[0-9](?:_?[0-9])*"
_UNDERSCORE_NUMBER = rf"^[+-]?(?:{_DIGITS}(?:\.(?:{_DIGITS})?)?|\.{_DIGITS})(?:[eE][+-]?{_DIGITS})?$"

# Internal column names; no header can produce them because names with a NUL are rejected (datadrop.reading).
_LABEL = "\x00label"
_VALUE = "\x00value"  # a regression target's float, while _LABEL holds its stratum
_KEY = "\x00key"
_TRAIN, _VALIDATION, _TEST = 0, 1, 2
_SPLIT_BATCH = 4  # columns split into train/validation/test together (memory vs parallelism)

# SplitMix64 constants (Steele, Lea & Flood 2014); the split key of row i is the i-th output of
# SplitMix64 seeded with config.split.seed, so the split is the same on every platform and version.
_GOLDEN = 0x9E3779B97F4A7C15
_MIX1 = 0xBF58476D1CE4E5B9
_MIX2 = 0x94D049BB133111EB
_U64 = (1 << 64) - 1


@dataclass(frozen=True)
class PreparedDataset:
    train_csv: bytes  # headerless, "<class index>,<features...>" (SageMaker XGBoost contract)
    validation_csv: bytes  # same shape
    test_features_csv: bytes  # test rows' raw (stripped) values, all columns but the target, headerless
    test_labels: list[str] | list[float]  # each test row's (merged) class, or its number for regression; same order
    recipe: dict  # how to encode a raw row (JSON-serialisable), see module docstring
    report: QualityReport  # what was read and what happened to it, for people


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
        text = (row.get(column_roles.source_column(feature)) or "").strip()
        if feature["kind"] in column_roles.KINDS:
            encoded.append(column_roles.encode_value(feature, text, missing))
        elif feature["kind"] == "numeric":
            number = None if text in missing else parse_number(_unformatted(text, feature.get("number_format")))
            encoded.append(feature["fill"] if number is None else number)
        elif text in missing:
            encoded.append(-1.0)
        else:
            normalise = feature.get("normalise")
            index = _bisect_index(feature["categories"], CATEGORY_NORMALISATIONS[normalise](text) if normalise else text)
            encoded.append(-1.0 if index is None else float(index))
    return encoded


def _unformatted(text: str, number_format: Mapping[str, str] | None) -> str:
    """A number written with separators (matching the format's pattern in full) as float() reads it."""
    if number_format is None or not re.fullmatch(number_format["pattern"], text):
        return text
    for char in number_format["remove"]:
        text = text.replace(char, "")
    return text.replace(number_format["decimal"], ".")


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


def prepare(data: bytes, config: DatasetConfig, max_bytes: int | None = None) -> PreparedDataset:
    """Read, validate, clean, split (stratified, deterministic), fit on train, encode. Raises DatasetRejected.

    `max_bytes`: the most a compressed upload may decompress to (see `reading.read_table`).
    """
    missing_tokens = list(dict.fromkeys(config.missing_values))

    table = read_table(data, max_bytes, config.max_malformed_share)
    columns, frame, rows_read, empty_rows = table.columns, table.frame, table.rows_read, table.empty_rows
    target = _check_columns(columns, config)
    candidates = [name for name in columns if name != target and name not in set(config.drop_columns)]
    row_numbers = column_roles.consecutive_integer_columns(frame, candidates)  # in file order, so before cleaning

    missing_per_column = frame.select(pl.col(name).is_in(missing_tokens).sum() for name in columns).row(0)

    # Clean: drop rows without a target (and, for regression, rows whose target is not a number),
    # then exact duplicates (before splitting, so no test row also sits in train or validation).
    missing_target_rows = missing_per_column[columns.index(target)]
    if missing_target_rows:
        frame = frame.filter(~pl.col(target).is_in(missing_tokens))
    # Decided before labels are merged: merging "3750" and "3750.0" means nothing for a number.
    target_numbers = _number_expr(target, missing_tokens, target in _special_columns(table, frame, [target]))
    regression = _is_regression(frame, target, target_numbers, config, missing_tokens)
    merged_labels: dict[str, list[str]] = {}
    relabelled: dict[str, int] = {}
    non_numeric_rows, non_numeric_examples = 0, list[str]()
    if regression:
        frame, non_numeric_rows, non_numeric_examples = _numeric_target(frame, target, target_numbers)
    elif config.merge_labels:
        frame, merged_labels, relabelled = _merge_labels(frame, target)
    before = frame.height
    frame = _drop_duplicates(frame)
    duplicate_rows = before - frame.height

    if regression:
        classes, class_counts = list[str](), list[int]()
        _check_regression_target(frame, target)
    else:
        classes, class_counts = _check_target(frame, target, config, missing_target_rows, missing_tokens)
    usable = frame.height
    if usable < MIN_USABLE_ROWS:
        not_numbers = f", {non_numeric_rows} whose target is not a number" if non_numeric_rows else ""
        raise DatasetRejected(
            f"only {usable} usable rows are left (read {rows_read}; dropped {missing_target_rows} with a missing "
            f"target {target!r}{not_numbers}, {duplicate_rows} exact duplicates and {empty_rows} empty rows), but datadrop "
            f"needs at least {MIN_USABLE_ROWS}: upload more rows"
        )
    small = [(name, count) for name, count in zip(classes, class_counts) if count < MIN_ROWS_PER_CLASS]
    if small:
        listed = ", ".join(f"{name!r} has {count} row{'s' if count != 1 else ''}" for name, count in small[:10])
        numeric = all(parse_number(name) is not None for name in classes)
        hint = " (or, if the target is a number to predict, set problem_type: regression)" if numeric else ""
        raise DatasetRejected(
            f"class {listed} of target {target!r}, but every class needs at least {MIN_ROWS_PER_CLASS} rows to "
            f"appear in the train, validation and test splits: add rows for that class or remove its rows{hint}"
        )

    special = _special_columns(table, frame, candidates)
    if regression:
        # Strata: quantile bins of the target, so every split sees small, middling and large values.
        frame = frame.with_columns(target_numbers.alias(_VALUE))
        target_summary = _target_summary(frame.get_column(_VALUE))
        frame = frame.with_columns(_quantile_bins(frame.get_column(_VALUE), config.split.validation, config.split.test))
        class_counts = frame.get_column(_LABEL).value_counts(sort=False).sort(_LABEL).get_column("count").to_list()
    else:
        frame = frame.with_columns(pl.col(target).cast(pl.Enum(classes)).to_physical().alias(_LABEL))
    split_counts = _split_counts(class_counts, config.split.validation, config.split.test)
    train, validation, test = _assign_splits(frame, config.split.seed, split_counts)
    del frame
    target_summaries = {}
    if regression:  # the label written is the target itself, not its stratum
        train, validation, test = (part.drop(_LABEL).rename({_VALUE: _LABEL}) for part in (train, validation, test))
        target_summaries = {
            name: _target_summary(part.get_column(_LABEL))
            for name, part in (("train", train), ("validation", validation), ("test", test))
        }

    normalise = "casefold" if config.normalise_categories else None
    formats = _number_formats(train, candidates, missing_tokens, table.detected.delimiter)
    features, dropped, column_notes, train_numbers = _fit_features(
        train,
        columns,
        candidates,
        config.drop_columns,
        missing_tokens,
        special,
        normalise,
        formats,
        {name: setting.role for name, setting in config.columns.items()},
        row_numbers,
        expand_datetimes=config.datetime == "expand",
    )
    if regression:  # the target's column is numbers: summarised as such, over the training rows like the rest
        train_target = target_summaries["train"]
        column_notes[target] = {
            "role": "target",
            "type": "number",
            "summary": NumericSummary(
                min=train_target.min, median=train_target.median, max=train_target.max, not_numbers=0
            ),  # rows whose target is not a number were dropped (RowCounts.non_numeric_target), not imputed
        }
    if not features:
        why = "; ".join(f"{item['name']}: {item['detail']}" for item in dropped) or "there are no other columns"
        raise DatasetRejected(
            f"no usable feature column is left besides the target {target!r} ({why}): upload columns that "
            "carry information about the target, or remove them from drop_columns"
        )

    problem_type = config.problem_type
    if regression:
        problem_type = "regression"
    elif problem_type == "auto":
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
    warnings = _label_warnings(classes, target)
    merge_notes = [
        Normalisation(
            step="labels_merged",
            column=target,
            detail=f"target labels {_list(spellings)} merged into the class {label!r} (they differ only in case, "
            "spacing or number format; set merge_labels: false to keep them apart)",
            count=relabelled[label],
        )
        for label, spellings in merged_labels.items()
    ]

    format_notes = _number_format_notes(
        {name: key for name, key in formats.items() if column_notes[name]["role"] == "numeric"}, (train, validation, test)
    )
    train_csv = _write_csv(_encode(train, features, missing_tokens, special, train_numbers))
    del train, train_numbers
    validation_csv = _write_csv(_encode(validation, features, missing_tokens, special))
    test_features_csv = _write_csv(test.select(name for name in columns if name != target))
    # Regression: the numbers the test rows are scored against; classification: the (merged) class names.
    test_labels = test.get_column(_LABEL if regression else target).to_list()
    del test

    splits = {}
    for name, per_class in (
        ("train", [count - t - v for count, (t, v) in zip(class_counts, split_counts)]),
        ("validation", [v for _, v in split_counts]),
        ("test", [t for t, _ in split_counts]),
    ):
        if regression:
            splits[name] = SplitReport(rows=sum(per_class), classes={}, target=target_summaries.get(name))
        else:
            splits[name] = SplitReport(rows=sum(per_class), classes=dict(zip(classes, per_class)))

    rows = RowCounts(
        read=rows_read,
        empty=empty_rows,
        missing_target=missing_target_rows,
        non_numeric_target=non_numeric_rows,
        duplicates=duplicate_rows,
        malformed=table.malformed_rows,
        usable=usable,
    )
    non_empty = rows_read - empty_rows - table.malformed_rows  # the rows whose values were counted
    column_reports = [
        ColumnReport(name=name, missing=missing, missing_share=missing / non_empty, **column_notes[name])
        for name, missing in zip(columns, missing_per_column)
    ]
    report = QualityReport(
        detected=table.detected,
        rows=rows,
        target=TargetReport(
            name=target,
            problem_type=problem_type,
            classes=dict(zip(classes, class_counts)),
            merged=merged_labels,
            summary=target_summary if regression else None,
        ),
        splits=splits,
        columns=column_reports,
        normalisations=table.normalisations
        + merge_notes
        + format_notes
        + _cleaning_notes(rows, column_reports, normalise, non_numeric_examples),
        warnings=warnings,
    )
    return PreparedDataset(
        train_csv=train_csv,
        validation_csv=validation_csv,
        test_features_csv=test_features_csv,
        test_labels=test_labels,
        recipe=recipe,
        report=report,
    )


def _cleaning_notes(
    rows: RowCounts, columns: list[ColumnReport], normalise: str | None, non_numeric_examples: Sequence[str] = ()
) -> list[Normalisation]:
    """Every change made on the way from the rows read to the encoded splits, with how much it touched."""
    notes = [Normalisation(step="stripped", detail="surrounding whitespace removed from every value and column name")]
    examples = f" (such as {_list(non_numeric_examples)})" if non_numeric_examples else ""
    for step, count, detail in (
        ("empty_rows_dropped", rows.empty, "blank rows dropped"),
        ("missing_target_dropped", rows.missing_target, "rows with a missing target dropped"),
        (
            "non_numeric_target_dropped",
            rows.non_numeric_target,
            f"rows whose target is not a number dropped: a regression target must be numbers{examples}",
        ),
        ("duplicates_dropped", rows.duplicates, "exact duplicate rows dropped (the first copy kept)"),
    ):
        if count:
            notes.append(Normalisation(step=step, detail=detail, count=count))
    for column in columns:
        if column.role == "numeric":
            not_numbers = column.summary.not_numbers if isinstance(column.summary, NumericSummary) else 0
            if column.missing or not_numbers:
                also = f", and so are {not_numbers} training values that are not numbers" if not_numbers else ""
                notes.append(
                    Normalisation(
                        step="imputed",
                        column=column.name,
                        detail=f"missing values encoded as the training median {column.fill!r}{also}",
                        count=column.missing,
                    )
                )
        elif column.role == "categorical" and normalise:
            notes.append(
                Normalisation(
                    step="categories_normalised",
                    column=column.name,
                    detail=f"values compared after {normalise} ('Dream' and 'dream' are one level; set "
                    "normalise_categories: false to keep case)",
                )
            )
        if column.role == "categorical" and column.missing:
            notes.append(
                Normalisation(
                    step="missing_level",
                    column=column.name,
                    detail="missing values encoded as the 'missing' level -1 (as are values the training rows lack)",
                    count=column.missing,
                )
            )
        elif column.role == "dropped":
            notes.append(Normalisation(step="column_dropped", column=column.name, detail=column.detail or ""))
        notes += column_roles.role_notes(column)
    return notes


def label_key(label: str) -> str:
    """What target labels that mean the same class share: the same number, or the same words whatever their case."""
    number = parse_number(label)
    return repr(number) if number is not None else " ".join(label.casefold().split())


def _merge_labels(frame: pl.DataFrame, target: str) -> tuple[pl.DataFrame, dict[str, list[str]], dict[str, int]]:
    """Labels with the same `label_key` rewritten as their most frequent spelling (ties: the first in sorted order).

    Returns the frame and, per merged class, the other spellings merged into it and how many rows were rewritten.
    """
    counts = frame.get_column(target).value_counts(sort=False, name=_KEY).sort(target)
    groups: dict[str, list[tuple[str, int]]] = {}
    for label, count in counts.iter_rows():
        groups.setdefault(label_key(label), []).append((label, count))
    merged: dict[str, list[str]] = {}
    rewritten: dict[str, int] = {}
    for spellings in groups.values():
        if len(spellings) > 1:
            kept = min(spellings, key=lambda spelling: (-spelling[1], spelling[0]))[0]
            merged[kept] = [label for label, _ in spellings if label != kept]
            rewritten[kept] = sum(count for label, count in spellings if label != kept)
    if not merged:
        return frame, merged, rewritten
    old = [label for others in merged.values() for label in others]
    new = [kept for kept, others in merged.items() for _ in others]
    return frame.with_columns(pl.col(target).replace(old, new)), dict(sorted(merged.items())), rewritten


def _label_warnings(classes: list[str], target: str) -> list[str]:
    """Target labels that probably mean the same class (when merge_labels is off): see `label_key`."""
    groups: dict[str, list[str]] = {}
    for label in classes:
        groups.setdefault(label_key(label), []).append(label)
    return [
        f"target {target!r} has labels {_list(labels)} that differ only in case, spacing or number format; they are "
        "separate classes: write them the same way in the file if they mean the same class"
        for labels in groups.values()
        if len(labels) > 1
    ]


# Numbers written for people, which float() does not read: thousands separators ("1,234,567.5",
# "1.234.567,5", "1 234") or a decimal comma ("3,5"). A text column whose present training values
# are (NUMERIC_SHARE of them) plain numbers or numbers written in one of these ways, with at least
# one written that way, is read as numbers in that format. `pattern` is matched in full (no
# anchors, so Python's re.fullmatch and polars' anchored regex agree); ASCII digits only.
NUMBER_FORMATS: dict[str, dict[str, str]] = {
    "thousands_comma": {
        "pattern": r"[+-]?[0-9]{1,3}(?:,[0-9]{3})+(?:\.[0-9]+)?",
        "remove": ",",
        "decimal": ".",
        "example": "1,234.5",
    },
    "decimal_comma": {
        "pattern": r"[+-]?(?:[0-9]{1,3}(?:\.[0-9]{3})+(?:,[0-9]+)?|[0-9]+,[0-9]+)",
        "remove": ".",
        "decimal": ",",
        "example": "1.234,5",
    },
    "thousands_space": {
        "pattern": "[+-]?[0-9]{1,3}(?:[ '\u00a0\u202f][0-9]{3})+(?:\\.[0-9]+)?",
        "remove": " '\u00a0\u202f",
        "decimal": ".",
        "example": "1 234.5",
    },
    "thousands_space_decimal_comma": {
        "pattern": "[+-]?(?:[0-9]{1,3}(?:[ '\u00a0\u202f][0-9]{3})+(?:,[0-9]+)?|[0-9]+,[0-9]+)",
        "remove": " '\u00a0\u202f",
        "decimal": ",",
        "example": "1 234,5",
    },
}


def _recipe_number_format(name: str) -> dict[str, str]:
    """What a numeric feature of this format carries in the recipe (what the inference script needs)."""
    number_format = NUMBER_FORMATS[name]
    return {
        "name": name,
        "pattern": number_format["pattern"],
        "remove": number_format["remove"],
        "decimal": number_format["decimal"],
    }


def _number_formats(train: pl.DataFrame, names: list[str], missing: list[str], delimiter: str | None) -> dict[str, str]:
    """The columns of `names` written as numbers in one of NUMBER_FORMATS, and which one.

    Decided per column from all its present training values. "1,234" alone fits both thousands_comma
    and decimal_comma: a semicolon-separated file takes the decimal comma, any other the thousands comma.
    ("1 234" alone fits both space formats, which read it as the same number.)
    """
    if not names:
        return {}
    # a quick look first: only a separator between digits (a dot counts when two of them group digits) can qualify
    maybe = train.select(
        pl.col(name).str.contains("[0-9][, '\u00a0\u202f][0-9]|[0-9]\\.[0-9]{3}\\.[0-9]").any().alias(name) for name in names
    ).row(0)
    names = [name for name, flag in zip(names, maybe) if flag]
    if not names:
        return {}
    expressions = []
    for name in names:
        value = pl.col(name)
        present = ~value.is_in(missing)
        plain = value.cast(pl.Float64, strict=False).is_finite().fill_null(False)
        expressions.append(present.sum().alias(f"{name}\x00present"))
        expressions.append((present & plain).sum().alias(f"{name}\x00plain"))
        for key, number_format in NUMBER_FORMATS.items():
            written = value.str.contains(f"^(?:{number_format['pattern']})$")
            expressions.append((present & written & ~plain).sum().alias(f"{name}\x00{key}"))
    counts = train.select(expressions).row(0, named=True)
    preference = ["decimal_comma", "thousands_comma"] if delimiter == ";" else ["thousands_comma", "decimal_comma"]
    found = {}
    for name in names:
        present, plain = counts[f"{name}\x00present"], counts[f"{name}\x00plain"]
        if not present or plain >= NUMERIC_SHARE * present:
            continue  # already numbers (or nothing there)
        fitting = [
            key
            for key in [*preference, "thousands_space", "thousands_space_decimal_comma"]
            if counts[f"{name}\x00{key}"] and plain + counts[f"{name}\x00{key}"] >= NUMERIC_SHARE * present
        ]
        if fitting:
            found[name] = fitting[0]
    return found


def _number_format_notes(formats: dict[str, str], splits: Sequence[pl.DataFrame]) -> list[Normalisation]:
    """What was read in which number format, and how many values of the file (all splits) were written that way."""
    notes = []
    for name, key in formats.items():
        number_format = NUMBER_FORMATS[key]
        pattern = f"^(?:{number_format['pattern']})$"
        written = sum(split.select(pl.col(name).str.contains(pattern).sum()).item() for split in splits)
        separators = ", ".join(repr(char) for char in number_format["remove"])
        notes.append(
            Normalisation(
                step="numbers_with_separators",
                column=name,
                detail=f"numbers written like {number_format['example']!r} read as numbers ({separators} removed as "
                f"thousands separator, {number_format['decimal']!r} as the decimal mark)",
                count=written,
            )
        )
    return notes


# --------------------------------------------------------------------------------------------
# Cleaning and validating


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
    for key, names in (("drop_columns", config.drop_columns), ("columns", list(config.columns))):
        unknown = [name for name in names if name not in columns]
        if unknown:
            hints = []
            for name in unknown:
                suggestion = _closest(name, columns)
                hints.append(f"{name!r} (did you mean {suggestion!r}?)" if suggestion else repr(name))
            raise DatasetRejected(
                f"{key} names {'columns' if len(unknown) > 1 else 'a column'} that the file does not have: "
                f"{', '.join(hints)}; fix or remove {'them' if len(unknown) > 1 else 'it'} in the dataset config "
                f"(the file's columns are: {_list(columns)})"
            )
        if target in names:
            raise DatasetRejected(
                f"{key} lists the target column {target!r}: remove it from {key} (the target is never a feature)"
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
        if numeric >= NUMERIC_SHARE:  # only with problem_type binary or multiclass: auto would have chosen regression
            raise DatasetRejected(
                f"the target {target!r} has {len(classes)} distinct values but datadrop classifies into at most "
                f"{MAX_CLASSES} classes; it looks like a regression target (a number to predict): set problem_type "
                "to regression (or auto), or bin the values into categories first"
            )
        raise DatasetRejected(
            f"the target {target!r} has {len(classes)} distinct values but datadrop classifies into at most "
            f"{MAX_CLASSES} classes; it looks like an ID or free-text column: choose a column with a few categories "
            "as the target (or bin the values into categories first)"
        )
    if config.problem_type == "binary" and len(classes) > 2:
        raise DatasetRejected(
            f"problem_type is binary but the target {target!r} has {len(classes)} classes ({_list(classes)}){after}: "
            "set problem_type to multiclass (or auto), or remove the extra classes"
        )
    return classes, class_counts


def _is_regression(
    frame: pl.DataFrame,
    target: str,
    numbers: pl.Expr,
    config: DatasetConfig,
    missing_tokens: list[str],
) -> bool:
    """Whether the target is a number to predict: as configured, or (auto) when NUMERIC_SHARE of its present
    values are finite numbers with more than MAX_CLASSES distinct values. A numeric target with few distinct
    values (a rating, a count of 0-5) stays a classification target. Raises DatasetRejected for a
    regression target that is not numbers."""
    if config.problem_type in ("binary", "multiclass"):
        return False
    present = frame.height
    numeric, distinct = (
        frame.select(numbers.count().alias("numeric"), numbers.drop_nulls().n_unique().alias("distinct")).row(0)
        if present
        else (0, 0)
    )
    looks_numeric = present > 0 and numeric >= NUMERIC_SHARE * present
    if config.problem_type == "auto":
        return looks_numeric and distinct > MAX_CLASSES
    if not present:
        raise DatasetRejected(
            f"every row has a missing target {target!r} (values counted as missing: {_list(missing_tokens)}): "
            "fill in the target column, or fix missing_values in the dataset config"
        )
    if not looks_numeric:
        examples = frame.filter(numbers.is_null()).get_column(target).unique(maintain_order=True).head(5).to_list()
        raise DatasetRejected(
            f"problem_type is regression but only {numeric} of the {present} present values of the target {target!r} "
            f"are numbers (others: {_list(examples)}); datadrop drops a few non-numbers, not "
            f"{1 - NUMERIC_SHARE:.0%} or more: fix the target's values, or set problem_type to auto for classification"
        )
    return True


def _numeric_target(frame: pl.DataFrame, target: str, numbers: pl.Expr) -> tuple[pl.DataFrame, int, list[str]]:
    """The rows whose target is a finite number; how many were dropped, and a few of their values."""
    not_number = numbers.is_null()
    dropped = frame.select(not_number.sum()).item()
    if not dropped:
        return frame, 0, []
    examples = frame.filter(not_number).get_column(target).unique(maintain_order=True).head(5).to_list()
    return frame.filter(~not_number), dropped, [_shortened(value) for value in examples]


def _shortened(value: str) -> str:
    return value if len(value) <= MAX_REPORTED_VALUE else value[: MAX_REPORTED_VALUE - 1] + "…"


def _check_regression_target(frame: pl.DataFrame, target: str) -> None:
    if frame.height and frame.select(pl.col(target).n_unique()).item() < 2:
        value = frame.get_column(target)[0]
        raise DatasetRejected(
            f"the target {target!r} has only one value ({_shortened(value)!r}) after cleaning: there is nothing to "
            "predict; choose another target or upload rows with other values"
        )


def _quantile_bins(values: pl.Series, validation: float, test: float) -> pl.Series:
    """Each row's quantile bin of `values` (0..bins-1), ties ordered by file position; as many bins
    (at most MAX_TARGET_BINS) as leave ROWS_PER_BIN_SPLIT test and validation rows in each."""
    count = len(values)
    bins = max(1, min(MAX_TARGET_BINS, math.floor(count * min(validation, test) / ROWS_PER_BIN_SPLIT)))
    ranks = values.rank("ordinal").cast(pl.UInt64) - 1
    return (ranks * bins // count).cast(pl.UInt32).alias(_LABEL)


def _target_summary(values: pl.Series) -> TargetSummary:
    return TargetSummary(
        min=float(values.min()),  # type: ignore[arg-type]
        max=float(values.max()),  # type: ignore[arg-type]
        mean=float(values.mean()),  # type: ignore[arg-type]
        median=float(values.median()),  # type: ignore[arg-type]
    )


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
    """Why a one-column header may be one: a separator datadrop does not detect."""
    if len(columns) == 1:
        for separator, label in ((":", "colons"), (" ", "spaces"), ("^", "carets"), ("~", "tildes")):
            if separator in columns[0]:
                return (
                    f"; the header looks separated by {label}, but datadrop detects only comma, semicolon, tab and "
                    "pipe separators"
                )
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


def _number_expr(name: str, missing: list[str], special: bool = True, number_format: dict[str, str] | None = None) -> pl.Expr:
    """Float64 of a stripped value that is present and a finite number (see `parse_number`), else null.

    `special` must be true when the column may hold "_" or non-ASCII text (see `_special_columns`);
    `number_format`: one of NUMBER_FORMATS, when the column is written that way.
    """
    value = pl.col(name)
    text = value
    if number_format is not None:
        rewritten = text.str.replace_all(f"[{re.escape(number_format['remove'])}]", "").str.replace_all(
            number_format["decimal"], ".", literal=True
        )
        text = pl.when(text.str.contains(f"^(?:{number_format['pattern']})$")).then(rewritten).otherwise(text)
    if special:
        decimals, digits = _unicode_decimals()
        text = text.str.replace_many(decimals, digits)  # what float() does to "١٢" before parsing
        text = pl.when(text.str.contains(_UNDERSCORE_NUMBER)).then(text.str.replace_all("_", "", literal=True)).otherwise(text)
    parsed = text.cast(pl.Float64, strict=False)
    return pl.when(parsed.is_finite() & ~value.is_in(missing)).then(parsed).alias(name)


def _special_columns(table: Table, frame: pl.DataFrame, names: list[str]) -> set[str]:
    """The columns that may hold "_" or non-ASCII text, where the cast alone would differ from float()."""
    if not names or not table.may_hold_special_numbers:
        return set()  # the usual case, decided at memchr speed while reading
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
    normalise: str | None,
    formats: dict[str, str],
    roles: Mapping[str, str],
    row_numbers: Mapping[str, tuple[int, int]],
    expand_datetimes: bool = True,
) -> tuple[list[dict], list[dict], dict[str, dict], pl.DataFrame]:
    """Decide kinds (unless `roles` pins them) and fit fills / categories on the training rows only.

    `row_numbers`: the columns that number the file's rows (`roles.consecutive_integer_columns`), first and last.

    Returns the recipe features, the dropped columns (name, reason, detail), per-column fields of
    the report (`ColumnReport` less name and missing counts), and the parsed numbers of the numeric
    features' training rows (null = use fill).
    """
    dropped: list[dict] = []
    notes: dict[str, dict] = {}
    rows = train.height
    present: dict[str, int] = {}
    stats: dict[str, float | int | None] = {}
    numbers = train.select(
        _number_expr(name, missing, name in special, NUMBER_FORMATS[formats[name]] if name in formats else None)
        for name in candidates
    )
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

    looks_numeric = {
        name: present[name] > 0 and (stats[f"{name}\x00count"] or 0) >= NUMERIC_SHARE * present[name] for name in candidates
    }
    pinned = {role: {name for name in candidates if roles.get(name) == role} for role in ("boolean", "datetime")}
    unpinned = [name for name in candidates if name not in roles]
    booleans = column_roles.fit_boolean(train, unpinned, missing, pinned["boolean"])
    datetimes = column_roles.fit_datetime(
        train, [name for name in unpinned if not looks_numeric[name]], missing, pinned["datetime"]
    )
    features: list[dict] = []
    numeric: list[str] = []
    for name in columns:
        if name not in present:  # the target, or listed in drop_columns
            if name in drop_columns:
                dropped.append({"name": name, "reason": "drop_columns", "detail": "listed in drop_columns"})
                notes[name] = {
                    "role": "dropped",
                    "type": "text",
                    "reason": "drop_columns",
                    "detail": "listed in drop_columns",
                }
            else:
                notes[name] = {"role": "target", "type": "text"}
            continue
        count, low, high = (stats[f"{name}\x00{key}"] for key in ("count", "min", "max"))
        count = count or 0  # no number at all in the training rows
        role = roles.get(name)
        reason = detail = None
        if role in ("text", "id", "drop"):
            value_type = "empty" if present[name] == 0 else "number" if looks_numeric[name] else "text"
            reason, detail = "pinned", f"its role is pinned to {role!r} in the dataset config's columns"
        elif present[name] == 0:
            value_type = "empty"
            reason, detail = "all_missing", "every value in the training rows is missing"
        elif role == "boolean" or (role is None and name in booleans and column_roles.is_boolean(booleans[name])):
            value_type = "number" if looks_numeric[name] else "text"
            features.append(column_roles.boolean_feature(name))
            notes[name] = {
                "role": "boolean",
                "type": value_type,
                "summary": column_roles.boolean_summary(name, booleans.get(name)),
            }
            continue
        elif role == "numeric" or (role is None and looks_numeric[name]):
            value_type = "number"
            if count == 0:
                raise DatasetRejected(
                    f"column {name!r} is pinned as numeric in the dataset config, but none of its training values is a "
                    "number: fix its values, or pin it as categorical"
                )
            if low == high and role is None:
                reason, detail = "constant", f"every number in the training rows is {low!r}"
            elif role is None and name in row_numbers:
                first, last = row_numbers[name]
                reason = "id_like"
                detail = (
                    f"looks like an identifier: all {abs(last - first) + 1:,} values distinct and consecutive in file "
                    f"order ({first:,} to {last:,}, row numbers), so it cannot generalise to new rows: pin its role to "
                    "numeric in the dataset config's columns to keep it"
                )
            elif role is None and column_roles.looks_like_id_name(name) and column_roles.distinct_integers(numbers[name]):
                reason = "id_like"
                detail = (
                    f"looks like an identifier: named like one, and its {count:,} training values are all distinct "
                    "integers, so it cannot generalise to new rows: pin its role to numeric in the dataset config's "
                    "columns to keep it"
                )
            else:
                numeric_feature: dict = {"name": name, "kind": "numeric", "fill": None}
                if name in formats:
                    numeric_feature["number_format"] = _recipe_number_format(formats[name])
                features.append(numeric_feature)
                numeric.append(name)
                notes[name] = {"role": "numeric", "type": value_type, "not_numbers": present[name] - count}
                notes[name]["summary"] = {"min": low, "max": high, "not_numbers": present[name] - count}
                continue
        elif role == "datetime" or (role is None and name in datetimes and datetimes[name].share >= column_roles.DATETIME_SHARE):
            value_type = "text"
            fit = column_roles.checked_datetime(name, datetimes.get(name), role)
            dated = column_roles.datetime_summary(fit)
            if role is None and dated.min == dated.max:
                reason, detail = "constant", f"every date in the training rows is {dated.min}"
            elif role is None and not expand_datetimes:
                reason = "datetime"
                detail = f"dates ({dated.min} to {dated.max}), dropped because the dataset config says datetime: drop"
            else:
                features.extend(
                    dict(feature, fill=dated.fills[feature["part"]])
                    for feature in column_roles.datetime_features(name, fit.with_time)
                )
                notes[name] = {"role": "datetime", "type": value_type, "summary": dated}
                continue
        else:
            value_type = "text"
            values = train.get_column(name)
            categories = values.filter(~values.is_in(missing)).unique()
            if normalise:
                categories = pl.Series(name, sorted(set(map(CATEGORY_NORMALISATIONS[normalise], categories.to_list()))))
            distinct_share = len(categories) / present[name]
            if len(categories) == 1 and present[name] == rows:
                reason, detail = "constant", f"every training row has the value {categories[0]!r}"
            elif (
                role is None
                and len(categories) > ID_LIKE_MIN_DISTINCT
                and distinct_share > FREE_TEXT_DISTINCT_SHARE
                and _mean_chars(values.filter(~values.is_in(missing))) >= FREE_TEXT_MIN_CHARS
            ):
                reason = "free_text"
                detail = (
                    f"looks like free text: {len(categories)} distinct values in {present[name]} training rows, "
                    f"{FREE_TEXT_MIN_CHARS} characters or more on average, which datadrop cannot use as categories: "
                    "pin its role to categorical in the dataset config's columns to keep it"
                )
            elif role is None and len(categories) > ID_LIKE_MIN_DISTINCT and distinct_share > ID_LIKE_DISTINCT_SHARE:
                reason = "id_like"
                detail = (
                    f"looks like an identifier: {len(categories)} distinct values in {present[name]} training rows, "
                    "so it cannot generalise to new rows"
                )
            else:
                levels = categories.sort().to_list()
                categorical_feature: dict = {"name": name, "kind": "categorical", "categories": levels}
                if normalise:
                    categorical_feature["normalise"] = normalise
                features.append(categorical_feature)
                notes[name] = {"role": "categorical", "type": value_type}
                continue
        dropped.append({"name": name, "reason": reason, "detail": detail})
        notes[name] = {"role": "dropped", "type": value_type, "reason": reason, "detail": detail}

    numbers = numbers.select(numeric)
    medians = numbers.select(pl.all().median()).row(0, named=True) if numeric else {}
    for feature in features:
        if feature["kind"] == "numeric":
            name = feature["name"]
            fill = float(medians[name])
            feature["fill"] = notes[name]["fill"] = fill
            summary = notes[name].pop("summary")
            notes[name].pop("not_numbers")
            notes[name]["summary"] = NumericSummary(median=fill, **summary)
    categorical = [name for name, note in notes.items() if note["role"] in ("target", "categorical")]
    normalised = train.select(pl.col(categorical))
    if normalise:
        normalised = normalised.with_columns(
            _normalised(normalised.get_column(feature["name"]), missing, normalise)
            for feature in features
            if feature["kind"] == "categorical"
        )
    for name, summary in _categorical_summaries(normalised, categorical, missing).items():
        notes[name]["summary"] = summary
    return features, dropped, notes, numbers


def _mean_chars(values: pl.Series) -> float:
    return float(values.str.len_chars().sum()) / max(len(values), 1)


def _categorical_summaries(train: pl.DataFrame, names: list[str], missing: list[str]) -> dict[str, CategoricalSummary]:
    """Levels and the most frequent level (ties: the first in sorted order) of the present training values,
    for all the columns in one pass."""
    if not names:
        return {}
    present = [pl.col(name).filter(~pl.col(name).is_in(missing)) for name in names]
    stats = train.select(
        expression
        for name, values in zip(names, present)
        for expression in (
            values.n_unique().alias(f"{name}\x00levels"),
            values.mode().sort().first().alias(f"{name}\x00top"),
            values.value_counts().struct.field("count").max().alias(f"{name}\x00count"),
        )
    ).row(0, named=True)
    summaries = {}
    for name in names:
        top = stats[f"{name}\x00top"]
        if top is not None and len(top) > MAX_REPORTED_VALUE:  # a 5 MB value is kept for the model, not in the report
            top = top[: MAX_REPORTED_VALUE - 1] + "…"
        summaries[name] = CategoricalSummary(levels=stats[f"{name}\x00levels"], top=top, top_count=stats[f"{name}\x00count"] or 0)
    return summaries


def _normalised(values: pl.Series, missing: list[str], normalise: str) -> pl.Series:
    """Present values normalised (missing tokens kept as they are), one Python call per distinct value."""
    distinct = values.filter(~values.is_in(missing)).unique().to_list()
    normalised = list(map(CATEGORY_NORMALISATIONS[normalise], distinct))
    return values.replace(distinct, normalised)


def _encode(
    frame: pl.DataFrame, features: list[dict], missing: list[str], special: set[str], numbers: pl.DataFrame | None = None
) -> pl.DataFrame:
    """Label (class index) then the encoded features; `numbers` may hold the numeric columns already parsed."""
    # A class index (classification) or the target's float (regression), written as polars writes them.
    label = pl.col(_LABEL) if frame.schema[_LABEL] == pl.Float64 else pl.col(_LABEL).cast(pl.Int64)
    expressions: list[pl.Expr | pl.Series] = [label]
    other_kinds = column_roles.encode_columns(frame, features, missing)
    for feature in features:
        name = feature["name"]
        if feature["kind"] in column_roles.KINDS:
            expressions.append(other_kinds[column_roles.frame_name(feature)])
        elif feature["kind"] == "categorical":
            expressions.append(_category_index(frame.get_column(name), feature, missing))
        elif numbers is None:
            expressions.append(
                _number_expr(name, missing, name in special, feature.get("number_format")).fill_null(feature["fill"])
            )
    encoded = frame.select(expressions)
    if numbers is not None:
        fills = {feature["name"]: feature["fill"] for feature in features if feature["kind"] == "numeric"}
        encoded = encoded.hstack(numbers.select(pl.col(name).fill_null(fill) for name, fill in fills.items()))
        encoded = encoded.select(_LABEL, *(column_roles.frame_name(feature) for feature in features))
    return encoded


def _category_index(values: pl.Series, feature: dict, missing: list[str]) -> pl.Series:
    """Each value's index in the feature's categories, as a float; missing or unseen -> -1.0 (see `encode_row`)."""
    categories = feature["categories"]
    normalise = feature.get("normalise")
    if normalise is None:  # categories never hold a missing token, so missing maps to -1 too
        raw, indices = categories, [float(index) for index in range(len(categories))]
    else:  # a missing token may normalise into a category ("NAN" -> "nan"), so map the present values only
        position = {category: float(index) for index, category in enumerate(categories)}
        normalised = CATEGORY_NORMALISATIONS[normalise]
        raw = values.filter(~values.is_in(missing)).unique().to_list()
        indices = [position.get(normalised(value), -1.0) for value in raw]
    return values.replace_strict(raw, indices, default=-1.0, return_dtype=pl.Float64)


def _write_csv(frame: pl.DataFrame) -> bytes:
    buffer = io.BytesIO()
    frame.write_csv(buffer, include_header=False)
    return buffer.getvalue()
