"""Schema checks and row cleaning: the target and the columns the config names, target labels
(merged when they differ only in spelling), exact duplicate rows, and the notes that tell people
what was cleaned. Works on the coded table of `datadrop.reading` (UInt32 codes of stripped texts).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Sequence

import polars as pl

import datadrop.roles as column_roles
from datadrop.config import DatasetConfig
from datadrop.quality import ColumnReport, Normalisation, NumericSummary, RowCounts
from datadrop.reading import DatasetRejected
from datadrop.recipe import label_key, parse_number

MIN_USABLE_ROWS = 30
MAX_CLASSES = 50
MIN_ROWS_PER_CLASS = 3  # one each for train, validation and test
NUMERIC_SHARE = 0.95  # share of non-missing training values that must be finite numbers


def check_columns(columns: list[str], config: DatasetConfig) -> str:
    target = config.target.strip()
    if target not in columns:
        suggestion = _closest(target, columns)
        hint = f" (did you mean {suggestion!r}?)" if suggestion else ""
        raise DatasetRejected(
            f"the target column {target!r} is not in the file{hint}{_separator_hint(columns)}: set `target` in the "
            f"dataset config to one of the file's columns: {list_names(columns)}"
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
                f"(the file's columns are: {list_names(columns)})"
            )
        if target in names:
            raise DatasetRejected(
                f"{key} lists the target column {target!r}: remove it from {key} (the target is never a feature)"
            )
    return target


def check_target(
    classes: list[str],
    class_counts: list[int],
    target: str,
    config: DatasetConfig,
    missing_target_rows: int,
    missing_tokens: list[str],
    numeric_share: Callable[[], float],
) -> None:
    """Rejects a target that a classifier cannot learn. `numeric_share`: the share of the rows whose target is a number."""
    after = f" after dropping {missing_target_rows} rows with a missing target" if missing_target_rows else ""
    if not classes:
        raise DatasetRejected(
            f"every row has a missing target {target!r} (values counted as missing: {list_names(missing_tokens)}): "
            "fill in the target column, or fix missing_values in the dataset config"
        )
    if len(classes) < 2:
        raise DatasetRejected(
            f"the target {target!r} has only one class ({classes[0]!r}){after}, but a classifier needs at least 2: "
            "upload rows of the other classes or choose another target"
        )
    if len(classes) > MAX_CLASSES:
        if numeric_share() >= NUMERIC_SHARE:  # only with problem_type binary or multiclass: auto would have chosen regression
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
            f"problem_type is binary but the target {target!r} has {len(classes)} classes ({list_names(classes)}){after}: "
            "set problem_type to multiclass (or auto), or remove the extra classes"
        )


def check_class_sizes(classes: list[str], class_counts: list[int], target: str) -> None:
    """Rejects a class too small to appear in every split."""
    small = [(name, count) for name, count in zip(classes, class_counts) if count < MIN_ROWS_PER_CLASS]
    if small:
        listed = ", ".join(f"{name!r} has {count} row{'s' if count != 1 else ''}" for name, count in small[:10])
        numeric = all(parse_number(name) is not None for name in classes)
        hint = " (or, if the target is a number to predict, set problem_type: regression)" if numeric else ""
        raise DatasetRejected(
            f"class {listed} of target {target!r}, but every class needs at least {MIN_ROWS_PER_CLASS} rows to "
            f"appear in the train, validation and test splits: add rows for that class or remove its rows{hint}"
        )


def is_regression(
    numbers: pl.Series,
    rows: pl.Series,
    target: str,
    config: DatasetConfig,
    missing_tokens: list[str],
    not_numbers: Callable[[], list[str]],
) -> bool:
    """Whether the target is a number to predict: as configured, or (auto) when NUMERIC_SHARE of its present
    values are finite numbers with more than MAX_CLASSES distinct values. A numeric target with few distinct
    values (a rating, a count of 0-5) stays a classification target. Raises DatasetRejected for a
    regression target that is not numbers.

    `numbers`: the target's distinct present values as numbers (null: not a number); `rows`: the rows holding
    each; `not_numbers`: the first few present values that are not numbers, in file order.
    """
    if config.problem_type in ("binary", "multiclass"):
        return False
    counted = pl.DataFrame({"number": numbers, "rows": rows.cast(pl.UInt64)})
    present = int(counted.get_column("rows").sum())
    numeric = int(counted.filter(pl.col("number").is_not_null()).get_column("rows").sum())
    distinct = counted.get_column("number").drop_nulls().n_unique()
    looks_numeric = present > 0 and numeric >= NUMERIC_SHARE * present
    if config.problem_type == "auto":
        return looks_numeric and distinct > MAX_CLASSES
    if not present:
        raise DatasetRejected(
            f"every row has a missing target {target!r} (values counted as missing: {list_names(missing_tokens)}): "
            "fill in the target column, or fix missing_values in the dataset config"
        )
    if not looks_numeric:
        raise DatasetRejected(
            f"problem_type is regression but only {numeric} of the {present} present values of the target {target!r} "
            f"are numbers (others: {list_names(not_numbers())}); datadrop drops a few non-numbers, not "
            f"{1 - NUMERIC_SHARE:.0%} or more: fix the target's values, or set problem_type to auto for classification"
        )
    return True


def check_regression_target(distinct: int, first: str | None, target: str) -> None:
    """Rejects a regression target of one value. `distinct`: how many different texts the usable rows' target
    holds; `first`: the first one."""
    if first is not None and distinct < 2:
        raise DatasetRejected(
            f"the target {target!r} has only one value ({shortened(first)!r}) after cleaning: there is nothing to "
            "predict; choose another target or upload rows with other values"
        )


MAX_REPORTED_VALUE = 200  # characters of a value quoted in the quality report


def shortened(value: str) -> str:
    return value if len(value) <= MAX_REPORTED_VALUE else value[: MAX_REPORTED_VALUE - 1] + "…"


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


def list_names(values: Sequence[str], limit: int = 30) -> str:
    shown = ", ".join(repr(value) for value in values[:limit])
    return shown + (f" and {len(values) - limit} more" if len(values) > limit else "")


# --------------------------------------------------------------------------------------------
# Labels


def merge_labels(counts: list[tuple[str, int]]) -> tuple[dict[str, str], dict[str, list[str]], dict[str, int]]:
    """Labels with the same `label_key` rewritten as their most frequent spelling (ties: the first in sorted order).

    `counts`: (label, rows) of every label, sorted by label. Returns the rewriting (label -> class, only the
    labels that change) and, per merged class, the other spellings merged into it and how many rows were rewritten.
    """
    groups: dict[str, list[tuple[str, int]]] = {}
    for label, count in counts:
        groups.setdefault(label_key(label), []).append((label, count))
    merged: dict[str, list[str]] = {}
    rewritten: dict[str, int] = {}
    for spellings in groups.values():
        if len(spellings) > 1:
            kept = min(spellings, key=lambda spelling: (-spelling[1], spelling[0]))[0]
            merged[kept] = [label for label, _ in spellings if label != kept]
            rewritten[kept] = sum(count for label, count in spellings if label != kept)
    rewriting = {label: kept for kept, others in merged.items() for label in others}
    return rewriting, dict(sorted(merged.items())), rewritten


def label_warnings(classes: list[str], target: str) -> list[str]:
    """Target labels that probably mean the same class (when merge_labels is off): see `label_key`."""
    groups: dict[str, list[str]] = {}
    for label in classes:
        groups.setdefault(label_key(label), []).append(label)
    return [
        f"target {target!r} has labels {list_names(labels)} that differ only in case, spacing or number format; they are "
        "separate classes: write them the same way in the file if they mean the same class"
        for labels in groups.values()
        if len(labels) > 1
    ]


# --------------------------------------------------------------------------------------------
# Rows


def later_copies(frame: pl.DataFrame, considered: pl.Series) -> pl.Series:
    """True for each row (of those `considered`) that is an exact copy of an earlier considered row.

    Rows are bucketed by a 64-bit row hash first (cheap); only rows sharing a hash are compared
    exactly, so a hash collision can never drop a row that merely looks the same.
    """
    hashes = frame.hash_rows(seed=0)
    # the hashes that occur twice: found by sorting, several times faster than a hash table over millions of rows
    ordered = hashes.filter(considered).sort()
    repeated = ordered.filter(ordered == ordered.shift(1)).unique()
    if repeated.is_empty():
        return pl.repeat(False, frame.height, eager=True)
    shared = hashes.is_in(repeated.implode()) & considered
    if not shared.any():
        return pl.repeat(False, frame.height, eager=True)
    positions = pl.int_range(0, frame.height, dtype=pl.UInt32, eager=True).filter(shared)
    later = frame.filter(shared).select(~pl.struct(pl.all()).is_first_distinct()).to_series()
    return pl.repeat(False, frame.height, eager=True).scatter(positions.filter(later), True)


def cleaning_notes(
    rows: RowCounts, columns: list[ColumnReport], normalise: str | None, non_numeric_examples: Sequence[str] = ()
) -> list[Normalisation]:
    """Every change made on the way from the rows read to the encoded splits, with how much it touched."""
    notes = [Normalisation(step="stripped", detail="surrounding whitespace removed from every value and column name")]
    examples = f" (such as {list_names(non_numeric_examples)})" if non_numeric_examples else ""
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
