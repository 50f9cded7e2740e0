"""Turn an uploaded table into train / validation / test data for SageMaker's built-in XGBoost.

`prepare(source, config)` is pure logic (no AWS): it reads the upload (`datadrop.reading`: CSV,
Parquet or JSON Lines, gzip or not, detected; from a file path or bytes), checks and cleans it
(`datadrop.cleaning`), splits it (`datadrop.splitting`), fits the feature encoding on the training
rows only and encodes the splits as the encoding contract says (`datadrop.recipe`, shared with the
serving code). Its `QualityReport` (`datadrop.quality`) says what it found and did. Anything it
cannot use raises `DatasetRejected` whose `reason` says what is wrong and what to fix.

Steps: read every value as text and strip it; drop empty lines, rows whose target is missing (and,
for regression, rows whose target is not a number), then exact duplicate rows (before splitting, so
no test row also sits in train); split per class (SplitMix64 keys seeded with `split.seed`, first
`test`, then `validation` share of each class, at least one row each; a regression target's rows per
quantile bin of the target instead); decide column kinds and fit fills / categories on the train
rows only (the boolean, datetime and ID-like integer rules are in `datadrop.roles`; row numbers are
recognised in file order, before cleaning); encode train and validation; keep the test rows raw
(stripped) for batch transform.

Problem type: as configured, or with problem_type auto, regression when NUMERIC_SHARE of the target's
present values are numbers with more than MAX_CLASSES distinct values; binary or multiclass otherwise.

How it stays linear and small: the table holds each value as a 4-byte code of its stripped text
(`reading.Table`), never the text of the whole file. Everything that looks at text (missing tokens,
numbers, number formats, categories, summaries, and the boolean and datetime roles) looks at each
column's distinct values once, with their counts per split (`_profile`: one table for all columns, so
a file of 20,000 columns costs no more Python than it has columns), and encoding is a lookup from
code to float (per feature: a date column's parts are features of their own), written out a block
of rows at a time. A plain or gzip UTF-8 CSV file is read a chunk at a time; other formats and
awkward files are read whole first (see `datadrop.reading`).

What it needs of memory grows with the cells and with the distinct values of each column (the profile's
rows), so a wide file of mostly distinct numbers needs many times its size: the work on the profile is
done a batch of columns at a time where it copies, and with `max_memory_bytes` prepare estimates its need
from a measured line while it reads and counts (`_MemoryBudget`) and rejects an upload that would not fit
before it runs out, saying what to change.
"""

from __future__ import annotations

import os
import time
from collections import deque
from collections.abc import Collection, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import polars as pl

import datadrop.roles as column_roles
from datadrop.cleaning import (
    MAX_CLASSES,
    MIN_USABLE_ROWS,
    NUMERIC_SHARE,
    check_class_sizes,
    check_columns,
    check_regression_target,
    check_target,
    cleaning_notes,
    is_regression,
    label_warnings,
    later_copies,
    list_names,
    merge_labels,
    shortened,
)
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
from datadrop.reading import DatasetRejected, chunk_watch, read_upload
from datadrop.recipe import (
    CATEGORY_NORMALISATIONS,
    NUMBER_FORMATS,
    RECIPE_FORMAT,
    number_expr,
    parse_number,
    recipe_number_format,
)
from datadrop.splitting import TEST, TRAIN, VALIDATION, assign_splits, quantile_bins, split_counts
from datadrop.writing import LABEL, write_splits

__all__ = ["MAX_CLASSES", "NUMERIC_SHARE", "DatasetRejected", "PreparedDataset", "prepare"]

ID_LIKE_MIN_DISTINCT = 20  # a categorical column with more distinct values than this ...
ID_LIKE_DISTINCT_SHARE = 0.9  # ... and distinct / non-missing above this is an identifier
FREE_TEXT_MIN_CHARS = 30  # a text column whose values average this many characters ...
FREE_TEXT_DISTINCT_SHARE = 0.5  # ... and are mostly distinct is free text (its levels would not generalise)

DROPPED = 3  # the "split" of a row dropped while cleaning (missing target, duplicate)
PARTS = ("train", "validation", "test", "dropped")  # the profile's count columns, by split number
PROFILE_CELLS = 1 << 22  # cells counted together in the profile (so narrow and wide files batch alike)
PROFILE_SAMPLE = 1 << 16  # cells looked at to choose how to count a batch
MAX_CODES_FOR_32_BIT_KEYS = 1 << 30  # code * 4 + split fits in a UInt32
MEDIAN_ROWS = 1 << 20  # distinct numbers sorted together for the medians
# What prepare needs of memory beyond the imported runtime, measured with bench/dataprep.py and the wide-file
# measurements of bench/README.md ("Memory of wide files", 2026-12-02). A fixed part: RUNTIME_BYTES (polars'
# threads and buffers) + CHUNK_BYTES_PER_CELL per cell until the reader's text in flight is full (a 64 MB chunk,
# or polars' streamed batches: at about 2 million cells, PREPARE_CHUNK_BYTES, READ_CHUNK_BYTES). Then, from
# reading on, PREPARE_BYTES_PER_CELL per cell (rows x columns) + PREPARE_BYTES_PER_DISTINCT per distinct value
# of a column (summed over the columns: the profile's rows, which are counted, numbered, normalised and looked
# up while fitting and encoding); reading itself needs at least READ_BYTES_PER_CELL per cell +
# READ_BYTES_PER_TEXT per distinct text of the file (polars' dictionary of them). MEMORY_HEADROOM covers what
# the line does not (the allocator's spare pages, the spread between runs).
RUNTIME_BYTES = 40 * 10**6
CHUNK_BYTES_PER_CELL = 100
PREPARE_CHUNK_BYTES = 210 * 10**6
READ_CHUNK_BYTES = 160 * 10**6
PREPARE_BYTES_PER_CELL = 10
PREPARE_BYTES_PER_DISTINCT = 110
READ_BYTES_PER_CELL = 10
READ_BYTES_PER_TEXT = 100
MEMORY_HEADROOM = 1.25

_COLUMN_UNIT = 1 << 34  # a profile key is column * _COLUMN_UNIT + code * 4 + split (codes are UInt32)

# Internal column names; no header can produce them because names with a NUL are rejected (datadrop.reading).
_COLUMN, _CODE, _PART, _TEXT = "\x00column", "\x00code", "\x00part", "\x00text"
_MISSING, _NUMBER, _NORMALISED = "\x00missing", "\x00number", "\x00normalised"
_FORMAT, _EXACT, _FEATURE = "\x00format", "\x00exact", "\x00feature"


@dataclass(frozen=True)
class PreparedDataset:
    train_csv: bytes  # headerless, "<label>,<features...>" (SageMaker XGBoost contract): class index, or the number
    validation_csv: bytes  # same shape
    # the test rows' raw (stripped) values, all columns but the target, as JSON Lines: one array of texts per line,
    # in the recipe's column order (JSON escapes line breaks, so SageMaker's line-split batch transform never cuts
    # a record in two; an array rather than {column: text} keeps the file near the size of the CSV)
    test_rows_jsonl: bytes
    test_labels: list[str] | list[float]  # each test row's (merged) class, or its number for regression; same order
    recipe: dict  # how to encode a raw row (JSON-serialisable), see datadrop.recipe
    report: QualityReport  # what was read and what happened to it, for people


def prepare(
    source: bytes | str | os.PathLike[str],
    config: DatasetConfig,
    max_bytes: int | None = None,
    max_in_memory_bytes: int | None = None,
    max_memory_bytes: int | None = None,
) -> PreparedDataset:
    """Read, validate, clean, split (stratified, deterministic), fit on train, encode. Raises DatasetRejected.

    `source`: the upload's bytes, or the path of a file holding them (which is read a chunk at a time when it
    is a plain or gzip CSV file). `max_bytes`: the most a compressed upload may decompress to;
    `max_in_memory_bytes`: the largest upload that may be read whole (see `reading.read_upload`);
    `max_memory_bytes`: the memory prepare may use beyond the runtime's own: an upload estimated to need more
    (see `_MemoryBudget`) is rejected as soon as that is known, before the allocation that would not fit.
    """
    missing_tokens = list(dict.fromkeys(config.missing_values))
    clock = _Clock()
    budget = _MemoryBudget(max_memory_bytes)

    watching = chunk_watch.set(budget.reading if max_memory_bytes is not None else None)
    try:
        table = read_upload(source, max_bytes, config.max_malformed_share, max_in_memory_bytes)
    finally:
        chunk_watch.reset(watching)
    budget.read(table.frame.height, table.frame.width)
    clock.lap("read")
    columns, frame, values = table.columns, table.frame, table.values
    target = check_columns(columns, config)
    candidates = [name for name in columns if name != target and name not in set(config.drop_columns)]
    row_numbers = column_roles.consecutive_integer_columns(frame, values, candidates)  # in file order, so before cleaning

    # The target: each row's class (null when missing), labels that differ only in spelling merged; or, for
    # regression, each row's number (null when missing or not a number).
    target_codes = frame.get_column(target)
    has_target = ~target_codes.is_in(_codes_of(values, missing_tokens).implode())
    missing_target_rows = len(has_target) - int(has_target.sum())
    label_counts = target_codes.filter(has_target).value_counts(sort=False, name=_CODE)
    label_codes = label_counts.get_column(target)
    # Decided before labels are merged: merging "3750" and "3750.0" means nothing for a number.
    label_numbers = _numbers_of(values.gather(label_codes), missing_tokens)

    not_number_codes = label_codes.filter(label_numbers.is_null())

    def first_not_numbers() -> list[str]:  # the first few present targets that are not numbers, in file order
        rows = target_codes.filter(target_codes.is_in(not_number_codes.implode()))
        return values.gather(rows.unique(maintain_order=True).head(5)).to_list()

    regression = is_regression(label_numbers, label_counts.get_column(_CODE), target, config, missing_tokens, first_not_numbers)
    merged_labels: dict[str, list[str]] = {}
    relabelled: dict[str, int] = {}
    non_numeric_rows, non_numeric_examples = 0, list[str]()
    target_summary: TargetSummary | None = None
    clock.lap("target")
    if regression:
        labels = target_codes.replace_strict(label_codes, label_numbers, default=None, return_dtype=pl.Float64)
        considered = labels.is_not_null()
        non_numeric_rows = len(considered) - int(considered.sum()) - missing_target_rows
        if non_numeric_rows:
            non_numeric_examples = [shortened(value) for value in first_not_numbers()]
        classes: list[str] = []
        # Exact duplicates, before splitting, so no test row also sits in train or validation.
        copies = later_copies(frame, considered)
        clock.lap("duplicates")
        usable_rows = considered & ~copies
        duplicate_rows = int(copies.sum())
        usable_values = labels.filter(usable_rows)
        usable = len(usable_values)
        usable_codes = target_codes.filter(usable_rows)
        check_regression_target(
            2 if usable and not (usable_codes == usable_codes[0]).all() else 1,
            values[usable_codes[0]] if usable else None,
            target,
        )
        del usable_codes
        target_summary = _target_summary(usable_values)
        # Strata: quantile bins of the target, so every split sees small, middling and large values.
        strata = quantile_bins(usable_values, config.split.validation, config.split.test)
        class_counts = strata.value_counts(sort=False, name=_CODE).sort(strata.name).get_column(_CODE).to_list()
    else:
        label_texts = values.gather(label_codes).to_list()
        rewriting: dict[str, str] = {}
        if config.merge_labels:
            rewriting, merged_labels, relabelled = merge_labels(
                sorted(zip(label_texts, label_counts.get_column(_CODE).to_list()))
            )
        classes = sorted({rewriting.get(label, label) for label in label_texts})
        class_of = {label: index for index, label in enumerate(classes)}
        label_of_code = pl.repeat(None, len(values), dtype=pl.UInt32, eager=True).scatter(
            label_codes, pl.Series([class_of[rewriting.get(label, label)] for label in label_texts], dtype=pl.UInt32)
        )
        labels = label_of_code.gather(target_codes)  # null: a missing target
        del label_of_code

        # Exact duplicates (after merging labels), before splitting, so no test row also sits in train or validation.
        copies = later_copies(frame.with_columns(labels.alias(target)), has_target)
        clock.lap("duplicates")
        usable_rows = has_target & ~copies
        duplicate_rows = int(copies.sum())
        strata = labels.filter(usable_rows)
        usable = len(strata)
        class_counts = [0] * len(classes)
        for index, count in pl.DataFrame({LABEL: strata}).group_by(LABEL).len().iter_rows():
            class_counts[index] = count
        check_target(
            classes,
            class_counts,
            target,
            config,
            missing_target_rows,
            missing_tokens,
            lambda: sum(count for label, count in zip(classes, class_counts) if parse_number(label) is not None) / usable,
        )
    del label_counts, label_codes, label_numbers
    if usable < MIN_USABLE_ROWS:
        not_numbers = f", {non_numeric_rows} whose target is not a number" if non_numeric_rows else ""
        raise DatasetRejected(
            f"only {usable} usable rows are left (read {table.rows_read}; dropped {missing_target_rows} with a missing "
            f"target {target!r}{not_numbers}, {duplicate_rows} exact duplicates and {table.empty_rows} empty rows), "
            f"but datadrop needs at least {MIN_USABLE_ROWS}: upload more rows"
        )
    check_class_sizes(classes, class_counts, target)

    counts = split_counts(class_counts, config.split.validation, config.split.test)
    positions = pl.int_range(0, frame.height, dtype=pl.UInt32, eager=True).filter(usable_rows)
    assigned = assign_splits(strata, config.split.seed, counts)
    part = pl.repeat(DROPPED, frame.height, dtype=pl.UInt8, eager=True).scatter(positions, assigned)
    del positions, strata, copies
    target_summaries: dict[str, TargetSummary] = {}
    if regression:  # the label written is the target itself, not its stratum
        target_summaries = {
            name: _target_summary(usable_values.filter(assigned == split))
            for name, split in (("train", TRAIN), ("validation", VALIDATION), ("test", TEST))
        }
        del usable_values
    del assigned

    clock.lap("split")
    profile = _profile(frame, part, values, missing_tokens, budget)
    clock.lap("profile")
    last_counts.update(
        cells=frame.height * frame.width, distinct_values=profile.height, planned_bytes=int(budget.needed(profile.height))
    )
    missing_per_column = _missing_per_column(profile, columns)
    normalise = "casefold" if config.normalise_categories else None
    formats = _number_formats(profile, columns, candidates, missing_tokens, table.detected.delimiter)
    train_counts = [count - t - v for count, (t, v) in zip(class_counts, counts)]
    pinned_categorical = {name for name, setting in config.columns.items() if setting.role == "categorical"}
    training = _TrainingProfile(
        profile, columns, candidates, missing_tokens, formats, normalise, sum(train_counts), pinned_categorical
    )
    del profile  # what is left to do looks at the candidate columns only (training.distinct)
    features, dropped, column_notes = _fit_features(
        training,
        columns,
        candidates,
        config.drop_columns,
        normalise,
        formats,
        {name: setting.role for name, setting in config.columns.items()},
        row_numbers,
        expand_datetimes=config.datetime == "expand",
    )
    if not features:
        why = "; ".join(f"{item['name']}: {item['detail']}" for item in dropped) or "there are no other columns"
        raise DatasetRejected(
            f"no usable feature column is left besides the target {target!r} ({why}): upload columns that "
            "carry information about the target, or remove them from drop_columns"
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
    else:
        column_notes[target]["summary"] = _class_summary(classes, train_counts)

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
    warnings = label_warnings(classes, target)
    merge_notes = [
        Normalisation(
            step="labels_merged",
            column=target,
            detail=f"target labels {list_names(spellings)} merged into the class {label!r} (they differ only in case, "
            "spacing or number format; set merge_labels: false to keep them apart)",
            count=relabelled[label],
        )
        for label, spellings in merged_labels.items()
    ]
    format_notes = _number_format_notes(
        training.distinct, columns, {name: key for name, key in formats.items() if column_notes[name]["role"] == "numeric"}
    )

    clock.lap("fit")
    lookups = _encodings(training, features, len(values), frame.height)
    del training
    train_csv, validation_csv, test_rows_jsonl, test_labels = write_splits(
        frame, labels, part, lookups, [name for name in columns if name != target], values, classes
    )

    clock.lap("encode and write")
    splits = {}
    for name, per_class in (
        ("train", train_counts),
        ("validation", [v for _, v in counts]),
        ("test", [t for t, _ in counts]),
    ):
        if regression:
            splits[name] = SplitReport(rows=sum(per_class), classes={}, target=target_summaries[name])
        else:
            splits[name] = SplitReport(rows=sum(per_class), classes=dict(zip(classes, per_class)))

    rows = RowCounts(
        read=table.rows_read,
        empty=table.empty_rows,
        missing_target=missing_target_rows,
        non_numeric_target=non_numeric_rows,
        duplicates=duplicate_rows,
        malformed=table.malformed_rows,
        usable=usable,
    )
    non_empty = table.rows_read - table.empty_rows - table.malformed_rows  # the rows whose values were counted
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
            summary=target_summary,
        ),
        splits=splits,
        columns=column_reports,
        normalisations=table.normalisations
        + merge_notes
        + format_notes
        + cleaning_notes(rows, column_reports, normalise, non_numeric_examples),
        warnings=warnings,
    )
    clock.lap("report")
    return PreparedDataset(
        train_csv=train_csv,
        validation_csv=validation_csv,
        test_rows_jsonl=test_rows_jsonl,
        test_labels=test_labels,
        recipe=recipe,
        report=report,
    )


# Seconds per step of the last prepare() in this process, for bench/dataprep.py and people profiling it.
last_timings: dict[str, float] = {}
# What the memory check of the last prepare() counted: cells, distinct values (summed over the columns) and the
# bytes its line plans for them, headroom included (whether or not a budget was given), for bench/dataprep.py.
last_counts: dict[str, int] = {}


class _Clock:
    def __init__(self) -> None:
        last_timings.clear()
        last_counts.clear()
        self.started = time.perf_counter()

    def lap(self, step: str) -> None:
        now = time.perf_counter()
        last_timings[step] = now - self.started
        self.started = now


def _codes_of(values: pl.Series, texts: list[str]) -> pl.Series:
    """The codes of those of `texts` that occur in the table."""
    return pl.int_range(0, len(values), dtype=pl.UInt32, eager=True).filter(values.is_in(texts))


# --------------------------------------------------------------------------------------------
# The profile: every column's distinct values, with their counts per split


def _profile(
    frame: pl.DataFrame, part: pl.Series, values: pl.Series, missing: list[str], budget: _MemoryBudget | None = None
) -> pl.DataFrame:
    """One row per (column, distinct code): column index, code, text, whether it is a missing token, and how
    many rows of each split (train, validation, test, dropped) hold it.

    Columns are counted a batch at a time (about PROFILE_CELLS cells), so a narrow, long file and a wide,
    short one both take one group-by per batch rather than per column. `budget` is told the distinct values
    counted so far after each batch, and rejects the upload as soon as they would not fit.
    """
    names = frame.columns
    per_batch = max(1, PROFILE_CELLS // max(frame.height, 1))
    part_key = part.cast(pl.UInt64)
    # a long column's keys are code | split, in 32 bits while the codes allow: half the memory to count through
    part_key_32 = part.cast(pl.UInt32) if len(values) <= MAX_CODES_FOR_32_BIT_KEYS else None

    def count(start: int) -> pl.DataFrame:
        batch = names[start : start + per_batch]
        column_key = 0  # added to the counted keys: the column (in the keys already, unless a long column's)
        # one key per cell, column | code | split, the batch's columns one after the other, counted by
        # sorting (faster than a hash table when a column has many distinct values, as fast when it has few)
        if len(batch) == 1:  # a long column: one expression, so that no other column of its length is made
            column_key = start * _COLUMN_UNIT
            code = pl.lit(frame.get_column(batch[0]))
            keys = pl.select(
                code * 4 + pl.lit(part_key_32) if part_key_32 is not None else code.cast(pl.UInt64) * 4 + pl.lit(part_key)
            ).to_series()
        else:
            codes = pl.concat([frame.get_column(name) for name in batch]).cast(pl.UInt64)
            column = pl.int_range(0, len(codes), dtype=pl.UInt64, eager=True) // frame.height + start
            keys = column * _COLUMN_UNIT + codes * 4 + pl.concat([part_key] * len(batch))
            del codes, column
        if keys.head(PROFILE_SAMPLE).n_unique() < PROFILE_SAMPLE // 16:  # few distinct keys: a hash table is faster
            counts = keys.value_counts(name="len").sort(keys.name).rename({keys.name: "value"})
        else:
            counts = keys.sort().rle().struct.unnest()
        key = pl.col("value").cast(pl.UInt64) + _u64(column_key)
        return _per_split(counts.select(key.alias(_CODE), pl.col("len").cast(pl.UInt32)))

    counted: list[pl.DataFrame] = []
    # polars counts a batch on one thread: a batch a thread, and no more batches begun than threads (so that only
    # that many batches' intermediates exist at once, and a rejection waits for no more than those)
    threads = pl.thread_pool_size()
    with ThreadPoolExecutor(threads) as counting:
        begun: deque[Future[pl.DataFrame]] = deque()
        starts = range(0, len(names), per_batch)
        for index, start in enumerate(starts):
            begun.append(counting.submit(count, start))
            while begun and (len(begun) == threads or index == len(starts) - 1):
                counted.append(begun.popleft().result())
                if budget is not None:  # told the distinct values counted so far after each batch, in order
                    budget.profiled(sum(batch.height for batch in counted), complete=len(counted) == len(starts))
    profile = pl.concat(counted, rechunk=False)
    del counted
    text = values.gather(profile.get_column(_CODE))
    return profile.with_columns(text.alias(_TEXT), text.is_in(missing).alias(_MISSING))


def _per_split(counts: pl.DataFrame) -> pl.DataFrame:
    """A batch's (key, len) counts, sorted by key, as one row per (column, code) with its count per split.

    A (column, code)'s counts per split are adjacent, so they are summed by differences of running sums
    instead of a group-by over millions."""
    key = pl.col(_CODE)
    running = counts.select(
        (key // _u64(4)).alias(_CODE),
        *(
            pl.when(key % _u64(4) == index).then(pl.col("len")).otherwise(0).cast(pl.Int64).cum_sum().alias(name)
            for index, name in enumerate(PARTS)
        ),
    )
    ends = running.filter((pl.col(_CODE) != pl.col(_CODE).shift(-1)).fill_null(True))
    del running
    return ends.select(
        (pl.col(_CODE) // _u64(1 << 32)).cast(pl.UInt32).alias(_COLUMN),
        (pl.col(_CODE) % _u64(1 << 32)).cast(pl.UInt32).alias(_CODE),
        *(pl.col(name).diff().fill_null(pl.col(name).first()).cast(pl.UInt32).alias(name) for name in PARTS),
    )


class _MemoryBudget:
    """The memory prepare may use beyond the runtime's own (`limit`; None: no limit) against what the upload needs
    of it (the measured line of RUNTIME_BYTES and the rest), estimated as soon as each count is known:
    while reading (cells and distinct texts so far, a lower bound), then after each batch of profiled columns
    (distinct values so far, a lower bound, then the total). Raises DatasetRejected saying what to change."""

    def __init__(self, limit: int | None) -> None:
        self.limit = limit
        self.cells = self.texts = self.rows = self.columns = 0

    def reading(self, cells: int, largest_code: int) -> None:
        """After each chunk of a streamed CSV file (`reading.chunk_watch`)."""
        self.cells += cells
        self.texts = max(self.texts, largest_code + 1)
        fixed = RUNTIME_BYTES + min(CHUNK_BYTES_PER_CELL * self.cells, READ_CHUNK_BYTES)
        needed = MEMORY_HEADROOM * (fixed + READ_BYTES_PER_CELL * self.cells + READ_BYTES_PER_TEXT * self.texts)
        if self.limit is not None and needed > self.limit:
            raise DatasetRejected(
                f"reading this upload needs at least {_mb(needed)} of memory, more than the {_mb(self.limit)} the prepare "
                f"function has for it: its first {self.cells:,} values already hold {self.texts:,} distinct texts "
                f"(about {READ_BYTES_PER_TEXT} bytes each while reading, {PREPARE_BYTES_PER_DISTINCT} per distinct value "
                f"of a column while preparing). {_FEWER}"
            )

    def read(self, rows: int, columns: int) -> None:
        self.rows, self.columns, self.cells = rows, columns, rows * columns

    def needed(self, distinct: int) -> float:
        """What preparing the table read needs, with this many distinct values (summed over its columns)."""
        cells = self.rows * self.columns
        fixed = RUNTIME_BYTES + min(CHUNK_BYTES_PER_CELL * cells, PREPARE_CHUNK_BYTES)
        return MEMORY_HEADROOM * (fixed + PREPARE_BYTES_PER_CELL * cells + PREPARE_BYTES_PER_DISTINCT * distinct)

    def profiled(self, distinct: int, complete: bool) -> None:
        """After each batch of profiled columns: `distinct`, the distinct values of the columns counted so far."""
        if self.limit is None or (needed := self.needed(distinct)) <= self.limit:
            return
        raise DatasetRejected(
            f"preparing this upload needs {'about' if complete else 'at least'} {_mb(needed)} of memory, more than the "
            f"{_mb(self.limit)} the prepare function has for it: its {self.columns:,} columns hold "
            f"{'' if complete else 'at least '}{distinct:,} distinct values between them in {self.rows:,} rows, and "
            f"preparing takes about {PREPARE_BYTES_PER_DISTINCT} bytes per distinct value of each column (counted, "
            f"read as a number, fitted and looked up) plus {PREPARE_BYTES_PER_CELL} per value. {_FEWER}"
        )


_FEWER = (
    "Columns of mostly distinct values (decimals, identifiers, free text) cost the most: upload fewer columns (leave "
    "such columns out of the file), or a sample of the rows, or raise PrepareFunction's MemorySize in template.yaml "
    "(up to 10240 MB)"
)


def _mb(size: float) -> str:
    return f"{size / 1e6:,.0f} MB"


def _u64(value: int) -> pl.Expr:
    return pl.lit(value, dtype=pl.UInt64)


def _missing_per_column(profile: pl.DataFrame, columns: list[str]) -> list[int]:
    counts = [0] * len(columns)
    everywhere = pl.sum_horizontal(pl.col(name).cast(pl.UInt64) for name in PARTS)
    for index, count in profile.filter(_MISSING).group_by(_COLUMN).agg(everywhere.sum()).iter_rows():
        counts[index] = count
    return counts


def _number_formats(
    profile: pl.DataFrame, columns: list[str], names: list[str], missing: list[str], delimiter: str | None
) -> dict[str, str]:
    """The columns of `names` written as numbers in one of NUMBER_FORMATS, and which one.

    Decided per column from all its present training values. "1,234" alone fits both thousands_comma
    and decimal_comma: a semicolon-separated file takes the decimal comma, any other the thousands comma.
    ("1 234" alone fits both space formats, which read it as the same number.)
    """
    position = {name: index for index, name in enumerate(columns)}
    indices = [position[name] for name in names]
    in_train = pl.col(_COLUMN).is_in(indices) & (pl.col("train") > 0)
    # a quick look first: only a separator between digits (a dot counts when two of them group digits) can qualify
    # (the columns found, not the whole profile, are copied)
    maybe = profile.filter(in_train & pl.col(_TEXT).str.contains("[0-9][, '\u00a0\u202f][0-9]|[0-9]\\.[0-9]{3}\\.[0-9]"))
    train = profile.filter(in_train & pl.col(_COLUMN).is_in(maybe.get_column(_COLUMN).unique().implode()))
    if train.height == 0:
        return {}
    value, rows = pl.col(_TEXT), pl.col("train").cast(pl.UInt64)
    present = ~pl.col(_MISSING)
    plain = value.cast(pl.Float64, strict=False).is_finite().fill_null(False)
    counts = train.group_by(_COLUMN).agg(
        rows.filter(present).sum().alias("present"),
        rows.filter(present & plain).sum().alias("plain"),
        *(
            rows.filter(present & value.str.contains(f"^(?:{number_format['pattern']})$") & ~plain).sum().alias(key)
            for key, number_format in NUMBER_FORMATS.items()
        ),
    )
    preference = ["decimal_comma", "thousands_comma"] if delimiter == ";" else ["thousands_comma", "decimal_comma"]
    found = {}
    for row in counts.sort(_COLUMN).iter_rows(named=True):
        present_count, plain_count = row["present"], row["plain"]
        if not present_count or plain_count >= NUMERIC_SHARE * present_count:
            continue  # already numbers (or nothing there)
        fitting = [
            key
            for key in [*preference, "thousands_space", "thousands_space_decimal_comma"]
            if row[key] and plain_count + row[key] >= NUMERIC_SHARE * present_count
        ]
        if fitting:
            found[columns[row[_COLUMN]]] = fitting[0]
    return dict(sorted(found.items(), key=lambda item: position[item[0]]))


def _number_format_notes(profile: pl.DataFrame, columns: list[str], formats: dict[str, str]) -> list[Normalisation]:
    """What was read in which number format, and how many values of the file (all splits) were written that way."""
    notes = []
    for name, key in formats.items():
        number_format = NUMBER_FORMATS[key]
        pattern = f"^(?:{number_format['pattern']})$"
        written = int(
            profile.filter((pl.col(_COLUMN) == columns.index(name)) & pl.col(_TEXT).str.contains(pattern))
            .select(pl.sum_horizontal(pl.col(split).cast(pl.UInt64) for split in PARTS[:3]).sum())
            .item()
        )
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


class _TrainingProfile:
    """The candidate feature columns' distinct values with their numbers and normalised texts, and what the
    fitting needs of their training rows: counts, number ranges, medians, categories, summaries."""

    def __init__(
        self,
        profile: pl.DataFrame,
        columns: list[str],
        candidates: list[str],
        missing: list[str],
        formats: dict[str, str],
        normalise: str | None,
        rows: int,
        pinned_categorical: Collection[str] = (),
    ) -> None:
        self.columns = columns
        self.position = {name: index for index, name in enumerate(columns)}
        self.rows = rows  # training rows
        self.missing = missing
        self.normalise = normalise
        index = self.position
        distinct = profile.filter(pl.col(_COLUMN).is_in([index[name] for name in candidates]))
        distinct = _with_numbers(distinct, {index[name]: key for name, key in formats.items()}, missing)
        train_rows = pl.col("train").cast(pl.UInt64)
        present = ~pl.col(_MISSING)
        # plain sums per column (no filters inside the aggregation, which would gather every group's rows), of
        # MEDIAN_ROWS distinct values at a time (a column's parts are summed again), so that no copy is large
        sums = (
            pl.col("present").sum(),
            pl.col("count").sum(),
            pl.col("min").min(),
            pl.col("max").max(),
            pl.col("chars").sum(),
        )
        parts = [
            distinct.slice(start, MEDIAN_ROWS)
            .filter(pl.col("train") > 0)
            .select(
                _COLUMN,
                pl.col(_NUMBER).alias("min"),
                pl.col(_NUMBER).alias("max"),
                pl.when(present).then(train_rows).otherwise(0).alias("present"),
                pl.when(pl.col(_NUMBER).is_not_null()).then(train_rows).otherwise(0).alias("count"),
                pl.when(present).then(pl.col(_TEXT).str.len_chars().cast(pl.UInt64) * train_rows).otherwise(0).alias("chars"),
            )
            .group_by(_COLUMN)
            .agg(*sums)
            for start in range(0, max(distinct.height, 1), MEDIAN_ROWS)
        ]
        stats = pl.concat(parts).group_by(_COLUMN).agg(*sums)
        del parts
        self.stats: dict[str, dict] = {columns[row[_COLUMN]]: row for row in stats.iter_rows(named=True)}
        # Only a column that may become categorical needs its values normalised and its levels counted: the
        # mostly distinct numbers of a wide file would otherwise make millions of levels nobody uses.
        worded = [
            index[name]
            for name in candidates
            if name in pinned_categorical or not _looks_numeric(self.stats.get(name) or {"present": 0, "count": 0})
        ]
        self.distinct = _with_normalised(distinct, normalise, pl.col(_COLUMN).is_in(worded))
        del distinct
        # the present training values as the categories would hold them (normalised)
        self.levels = (
            self.distinct.filter((pl.col("train") > 0) & present & pl.col(_COLUMN).is_in(worded))
            .group_by(_COLUMN, _NORMALISED)
            .agg(train_rows.sum().alias("rows"))
        )
        levels = self.levels.group_by(_COLUMN).agg(pl.len().alias("categories"), pl.col(_NORMALISED).min().alias("first"))
        for row in levels.iter_rows(named=True):
            self.stats[columns[row[_COLUMN]]].update(row)

    def column(self, name: str) -> dict:
        """present, count (numbers), min, max, chars (of the present values), categories (how many), first (category)."""
        empty = {"present": 0, "count": 0, "min": None, "max": None, "chars": 0, "categories": 0, "first": None}
        return {**empty, **self.stats.get(name, {})}  # categories and first only for a column that may be categorical

    def medians(self, names: list[str]) -> dict[str, float]:
        """The median of each column's training numbers (as polars computes it: the mean of the two middle ones)."""
        if not names:
            return {}
        indices = [self.position[name] for name in names]
        wanted = pl.col(_COLUMN).is_in(indices) & (pl.col("train") > 0) & pl.col(_NUMBER).is_not_null()
        numbers = self.distinct.select(_COLUMN, _NUMBER, "train").filter(wanted)  # only these columns copied
        if not numbers.get_column(_COLUMN).is_sorted():  # the profile's order, unless a number format reordered it
            numbers = numbers.sort(_COLUMN)
        # whole columns about MEDIAN_ROWS distinct numbers at a time, so that the sort's copies stay small
        medians: dict = {}
        start = held = 0
        sizes = numbers.group_by(_COLUMN, maintain_order=True).len().get_column("len").to_list()
        for size in [*sizes, None]:
            if held and (size is None or held + size > MEDIAN_ROWS):
                medians |= column_roles.weighted_medians(numbers.slice(start, held), _COLUMN, _NUMBER, "train")
                start, held = start + held, 0
            held += size or 0
        return {self.columns[index]: median for index, median in medians.items()}

    def role_values(self) -> pl.DataFrame:
        """The candidate columns' distinct values as `datadrop.roles` looks at them (`roles.VALUES`)."""
        return self.distinct.select(
            pl.col(_COLUMN).alias(column_roles.COLUMN),
            pl.col(_TEXT).alias(column_roles.TEXT),
            pl.col("train").alias(column_roles.ROWS),
            pl.col(_MISSING).alias(column_roles.MISSING),
        )

    def distinct_integers(self, name: str) -> bool:
        """Whether the column's present training values are at least roles.ID_MIN_ROWS distinct integers."""
        numbers = self.distinct.filter((pl.col(_COLUMN) == self.position[name]) & (pl.col("train") > 0))
        return column_roles.distinct_integers(numbers.get_column(_NUMBER), numbers.get_column("train"))

    def categories(self, names: list[str]) -> dict[str, list[str]]:
        """The sorted levels (present training values, normalised) of each column."""
        indices = [self.position[name] for name in names]
        levels = self.levels.filter(pl.col(_COLUMN).is_in(indices)).group_by(_COLUMN).agg(pl.col(_NORMALISED).sort())
        return {self.columns[index]: values for index, values in levels.iter_rows()}

    def summaries(self, names: list[str]) -> dict[str, CategoricalSummary]:
        """Levels and the most frequent level (ties: the first in sorted order) of the present training values."""
        indices = [self.position[name] for name in names]
        # a value that normalises into a missing token ("NAN" -> "nan") is not counted as a level here
        levels = self.levels.filter(pl.col(_COLUMN).is_in(indices) & ~pl.col(_NORMALISED).is_in(self.missing))
        top = (
            levels.sort(_COLUMN, pl.col("rows"), _NORMALISED, descending=[False, True, False])
            .group_by(_COLUMN, maintain_order=True)
            .agg(pl.len().alias("levels"), pl.col(_NORMALISED).first().alias("top"), pl.col("rows").first().alias("count"))
        )
        found = {self.columns[row[_COLUMN]]: row for row in top.iter_rows(named=True)}
        summaries = {}
        for name in names:
            row = found.get(name, {"levels": 0, "top": None, "count": 0})
            summaries[name] = CategoricalSummary(levels=row["levels"], top=_reported(row["top"]), top_count=row["count"] or 0)
        return summaries


def _looks_numeric(column: Mapping) -> bool:
    """Whether NUMERIC_SHARE of a column's present training values are numbers (`_TrainingProfile.column`)."""
    return bool(column["present"] > 0 and (column["count"] or 0) >= NUMERIC_SHARE * column["present"])


def _reported(value: str | None) -> str | None:
    # a 5 MB value is kept for the model, not in the report
    return None if value is None else shortened(value)


def _class_summary(classes: list[str], train_counts: list[int]) -> CategoricalSummary:
    top = min(range(len(classes)), key=lambda index: (-train_counts[index], classes[index]))
    return CategoricalSummary(levels=len(classes), top=_reported(classes[top]), top_count=train_counts[top])


def _target_summary(values: pl.Series) -> TargetSummary:
    """A regression target's values (Float64, no nulls)."""
    return TargetSummary(
        min=float(values.min()),  # type: ignore[arg-type]
        max=float(values.max()),  # type: ignore[arg-type]
        mean=float(values.mean()),  # type: ignore[arg-type]
        median=float(values.median()),  # type: ignore[arg-type]
    )


def _numbers_of(texts: pl.Series, missing: list[str]) -> pl.Series:
    """The number each text stands for (null: missing or not a number), in order; see `recipe.number_expr`.
    Texts holding "_" or non-ASCII text take the exact (slower) path; the rest the plain cast."""
    exact = texts.str.contains("_", literal=True) | (texts.str.len_bytes() != texts.str.len_chars())
    numbers = pl.DataFrame({_TEXT: texts}).select(number_expr(_TEXT, missing, special=False)).to_series()
    if exact.any():
        positions = pl.int_range(0, len(texts), dtype=pl.UInt32, eager=True).filter(exact)
        special = pl.DataFrame({_TEXT: texts.filter(exact)}).select(number_expr(_TEXT, missing, special=True)).to_series()
        numbers = numbers.scatter(positions, special)
    return numbers.alias(_NUMBER)


def _with_numbers(distinct: pl.DataFrame, formats: Mapping[int, str], missing: list[str]) -> pl.DataFrame:
    """The distinct values with the number each stands for (null: missing or not a number), see `recipe.number_expr`.

    Values holding "_" or non-ASCII text take the exact (slower) path; the rest the plain cast.
    """
    exact = pl.col(_TEXT).str.contains("_", literal=True) | (pl.col(_TEXT).str.len_bytes() != pl.col(_TEXT).str.len_chars())
    if not formats and not distinct.select(exact.any()).item():  # the usual case: one plain cast, no copies
        return distinct.with_columns(number_expr(_TEXT, missing, False, None).alias(_NUMBER))
    written = pl.col(_COLUMN).replace_strict(list(formats), list(formats.values()), default=None, return_dtype=pl.String)
    groups = distinct.with_columns(exact.alias(_EXACT), written.alias(_FORMAT)).partition_by(
        _FORMAT, _EXACT, as_dict=True, include_key=False
    )
    parts = []
    for (key, special), group in groups.items():
        number_format = NUMBER_FORMATS[key] if key is not None else None
        parts.append(group.with_columns(number_expr(_TEXT, missing, bool(special), number_format).alias(_NUMBER)))
    return pl.concat(parts) if parts else distinct.with_columns(pl.lit(None, dtype=pl.Float64).alias(_NUMBER))


def _with_normalised(distinct: pl.DataFrame, normalise: str | None, wanted: pl.Expr | None = None) -> pl.DataFrame:
    """The distinct values with their text as a category compares it (casefolded when `normalise` says so); null
    in the rows that `wanted` leaves out."""
    text = pl.col(_TEXT)
    chosen = pl.lit(True) if wanted is None else wanted
    if normalise is None:
        return distinct.with_columns(pl.when(chosen).then(text).alias(_NORMALISED))
    ascii_only = text.str.len_bytes() == text.str.len_chars()
    distinct = distinct.with_columns(
        pl.when(chosen & ascii_only).then(text.str.to_lowercase()).alias(_NORMALISED)
    )  # str.casefold, for ASCII
    others = distinct.select(pl.col(_NORMALISED).is_null() & chosen).to_series()
    if others.any():
        positions = pl.int_range(0, distinct.height, dtype=pl.UInt32, eager=True).filter(others)
        folded = list(map(CATEGORY_NORMALISATIONS[normalise], distinct.get_column(_TEXT).filter(others).to_list()))
        distinct = distinct.with_columns(distinct.get_column(_NORMALISED).scatter(positions, pl.Series(folded, dtype=pl.String)))
    return distinct


# --------------------------------------------------------------------------------------------
# Fitting


def _fit_features(
    training: _TrainingProfile,
    columns: list[str],
    candidates: list[str],
    drop_columns: list[str],
    normalise: str | None,
    formats: dict[str, str],
    roles: Mapping[str, str],
    row_numbers: Mapping[str, tuple[int, int]],
    expand_datetimes: bool = True,
) -> tuple[list[dict], list[dict], dict[str, dict]]:
    """Decide kinds (unless `roles` pins them) and fit fills / categories on the training rows only.

    `row_numbers`: the columns that number the file's rows (`roles.consecutive_integer_columns`), first and last.

    Returns the recipe features, the dropped columns (name, reason, detail), and per-column fields of
    the report (`ColumnReport` less name and missing counts; the target's summary is the caller's).
    """
    dropped: list[dict] = []
    notes: dict[str, dict] = {}
    rows = training.rows
    candidate_set = set(candidates)

    stats = {name: training.column(name) for name in candidates}
    looks_numeric = {name: _looks_numeric(column) for name, column in stats.items()}
    pinned = {role: {name for name in candidates if roles.get(name) == role} for role in ("boolean", "datetime")}
    unpinned = [name for name in candidates if name not in roles]
    values = training.role_values()
    booleans = column_roles.fit_boolean(values, columns, unpinned, pinned["boolean"])
    datetimes = column_roles.fit_datetime(
        values, columns, [name for name in unpinned if not looks_numeric[name]], pinned["datetime"]
    )
    del values

    features: list[dict] = []
    numeric: list[str] = []
    categorical: list[str] = []
    for name in columns:
        if name not in candidate_set:  # the target, or listed in drop_columns
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
        column = stats[name]
        present, count, low, high = column["present"], column["count"] or 0, column["min"], column["max"]
        role = roles.get(name)
        reason = detail = None
        if role in ("text", "id", "drop"):
            value_type = "empty" if present == 0 else "number" if looks_numeric[name] else "text"
            reason, detail = "pinned", f"its role is pinned to {role!r} in the dataset config's columns"
        elif present == 0:
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
            elif role is None and column_roles.looks_like_id_name(name) and training.distinct_integers(name):
                reason = "id_like"
                detail = (
                    f"looks like an identifier: named like one, and its {count:,} training values are all distinct "
                    "integers, so it cannot generalise to new rows: pin its role to numeric in the dataset config's "
                    "columns to keep it"
                )
            else:
                numeric_feature: dict = {"name": name, "kind": "numeric", "fill": None}
                if name in formats:
                    numeric_feature["number_format"] = recipe_number_format(formats[name])
                features.append(numeric_feature)
                numeric.append(name)
                notes[name] = {"role": "numeric", "type": value_type}
                notes[name]["summary"] = {"min": low, "max": high, "not_numbers": present - count}
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
            levels = column["categories"] or 0
            distinct_share = levels / present
            if levels == 1 and present == rows:
                reason, detail = "constant", f"every training row has the value {column['first']!r}"
            elif (
                role is None
                and levels > ID_LIKE_MIN_DISTINCT
                and distinct_share > FREE_TEXT_DISTINCT_SHARE
                and column["chars"] / present >= FREE_TEXT_MIN_CHARS
            ):
                reason = "free_text"
                detail = (
                    f"looks like free text: {levels} distinct values in {present} training rows, "
                    f"{FREE_TEXT_MIN_CHARS} characters or more on average, which datadrop cannot use as categories: "
                    "pin its role to categorical in the dataset config's columns to keep it"
                )
            elif role is None and levels > ID_LIKE_MIN_DISTINCT and distinct_share > ID_LIKE_DISTINCT_SHARE:
                reason = "id_like"
                detail = (
                    f"looks like an identifier: {levels} distinct values in {present} training rows, "
                    "so it cannot generalise to new rows"
                )
            else:
                categorical_feature: dict = {"name": name, "kind": "categorical", "categories": []}
                if normalise:
                    categorical_feature["normalise"] = normalise
                features.append(categorical_feature)
                categorical.append(name)
                notes[name] = {"role": "categorical", "type": value_type}
                continue
        dropped.append({"name": name, "reason": reason, "detail": detail})
        notes[name] = {"role": "dropped", "type": value_type, "reason": reason, "detail": detail}

    medians = training.medians(numeric)
    levels_of = training.categories(categorical)
    for feature in features:
        name = feature["name"]
        if feature["kind"] == "numeric":
            fill = float(medians[name])
            feature["fill"] = notes[name]["fill"] = fill
            notes[name]["summary"] = NumericSummary(median=fill, **notes[name]["summary"])
        elif feature["kind"] == "categorical":
            feature["categories"] = levels_of[name]
    for name, summary in training.summaries(categorical).items():
        notes[name]["summary"] = summary
    return features, dropped, notes


# --------------------------------------------------------------------------------------------
# Encoding and writing


@dataclass(frozen=True)
class _Lookups:
    """What each feature's codes encode to (see the encoding contract), by the feature's position in the recipe.
    `sources`: each feature's column (a date column's parts read the same one). `dense`: per feature, `slots`
    (UInt32, indexed by code) into `texts`, the numbers' texts formatted once per distinct code (`_dense_lookup`),
    when the table's dictionary is no larger than its rows (two gathers per feature); else `batches`: per batch
    of `per_batch` features from `first` on, `keys` ((feature - first) << 32 | code) and their Float64 `values`,
    one lookup for the cells of the batch's features (so that no lookup holds the codes of every column of a
    wide file at once). A wide file keeps its numbers: its keys are nearly as many as its cells, so formatting
    them once each saves little, and measured, the texts' lookup made it slower."""

    sources: list[str]
    dense: list[tuple[pl.Series, pl.Series]] | None = None  # (slots, texts)
    batches: list[tuple[int, pl.Series, pl.Series]] | None = None  # (first, keys, values)
    per_batch: int = 1

    @property
    def per_piece(self) -> bool:
        """Dense lookups are gathers, cheap to split among threads; keyed ones build a hash table a call."""
        return self.dense is not None

    def encoded(self, rows: pl.DataFrame) -> pl.DataFrame:
        """The encoded features of these rows (the table's rows: one UInt32 column of codes per column): String
        columns of the numbers' texts (dense) or Float64 columns (batches), which `write_csv` writes alike."""
        names = [f"\x00{index}" for index in range(len(self.sources))]  # a feature's name may be a column's too
        if self.dense is not None:
            return pl.DataFrame(
                [
                    texts.gather(slots.gather(rows.get_column(source))).alias(name)
                    for (slots, texts), source, name in zip(self.dense, self.sources, names)
                ]
            )
        height = rows.height
        assert self.batches is not None
        encoded: list[pl.Series] = []
        for first, keys, values in self.batches:
            sources = self.sources[first : first + self.per_batch]
            cells = pl.concat([rows.get_column(source) for source in sources]).cast(pl.UInt64)
            position = pl.int_range(0, len(cells), dtype=pl.UInt64, eager=True) // max(height, 1)
            numbers = (position * (1 << 32) + cells).replace_strict(keys, values, return_dtype=pl.Float64)
            del cells, position
            encoded += [numbers.slice(index * height, height).alias(names[first + index]) for index in range(len(sources))]
        return pl.DataFrame(encoded)


def _number_texts(numbers: pl.Series) -> pl.Series:
    """Each Float64 number's text, exactly as `write_csv` writes it (polars formats both the same way, NaN, inf
    and -0.0 included; tests/unit/test_writing.py holds it to that), so the splits are written without
    formatting a float per cell."""
    return numbers.cast(pl.String)


def _dense_lookup(codes: pl.Series, numbers: pl.Series, size: int) -> tuple[pl.Series, pl.Series]:
    """A feature's dense lookup from its codes and their numbers: `slots`, indexed by code (`size` of them),
    into `texts`, the numbers' texts after a "NaN" in slot 0, the text of a code that is not its column's (never
    looked up: every code of a column has a number). UInt32 slots take half the memory of a Float64 lookup."""
    texts = _number_texts(pl.concat([pl.Series([float("nan")]), numbers], rechunk=True))  # one chunk: a fast gather
    slots = pl.zeros(size, dtype=pl.UInt32, eager=True).scatter(
        codes, pl.int_range(1, len(codes) + 1, dtype=pl.UInt32, eager=True)
    )
    return slots, texts


def _encodings(training: _TrainingProfile, features: list[dict], dictionary_size: int, height: int) -> _Lookups:
    """What each feature's codes encode to: the fill or the number for numeric features, the level's index or
    -1 for categorical ones, the truth value or -1 for boolean ones, the date's part or the fill for datetime ones."""
    positions = training.position
    sources = [column_roles.source_column(feature) for feature in features]
    feature_of = pl.DataFrame(
        {
            _COLUMN: pl.Series([positions[source] for source in sources], dtype=pl.UInt32),
            _FEATURE: pl.Series(range(len(features)), dtype=pl.UInt32),
        }
    )
    categorical = [index for index, feature in enumerate(features) if feature["kind"] == "categorical"]
    levels = pl.DataFrame(
        {
            _FEATURE: pl.Series(categorical, dtype=pl.UInt32),
            _NORMALISED: [features[index]["categories"] for index in categorical],
        },
        schema_overrides={_NORMALISED: pl.List(pl.String)},
    ).explode(_NORMALISED)
    levels = levels.with_columns(pl.int_range(pl.len(), dtype=pl.UInt32).over(_FEATURE).alias("level"))
    fills = {index: feature["fill"] for index, feature in enumerate(features) if feature["kind"] == "numeric"}
    fill = pl.col(_FEATURE).replace_strict(list(fills), list(fills.values()), default=None, return_dtype=pl.Float64)
    level = pl.when(pl.col(_MISSING)).then(pl.lit(-1.0)).otherwise(pl.col("level").cast(pl.Float64).fill_null(-1.0))

    def encoded_codes(chosen: pl.DataFrame) -> pl.DataFrame:
        """(feature, code, number) of the features of `chosen` (a slice of feature_of)."""
        distinct = training.distinct.select(_COLUMN, _CODE, _NUMBER, _NORMALISED, _MISSING)
        if chosen.height < feature_of.height:  # only the rows of their columns are copied
            distinct = distinct.filter(pl.col(_COLUMN).is_in(chosen.get_column(_COLUMN).unique().implode()))
        # numeric features: the number, or the fill; categorical ones (only they compare normalised texts): the level
        numbers = distinct.select(_COLUMN, _CODE, _NUMBER).join(chosen.filter(pl.col(_FEATURE).is_in(list(fills))), on=_COLUMN)
        parts = [numbers.select(_FEATURE, _CODE, pl.col(_NUMBER).fill_null(fill))]
        del numbers
        texts = (
            distinct.select(_COLUMN, _CODE, _NORMALISED, _MISSING)
            .join(chosen.filter(pl.col(_FEATURE).is_in(categorical)), on=_COLUMN)
            .join(levels, on=[_FEATURE, _NORMALISED], how="left")
        )
        parts.append(texts.select(_FEATURE, _CODE, level.alias(_NUMBER)))
        del texts, distinct
        # boolean and datetime features: each distinct value of their column encoded once (datadrop.roles)
        parts += _role_encodings(training, features, chosen)
        return pl.concat(parts)

    if dictionary_size > height:
        # a batch of features at a time: only one batch's distinct values are copied and joined at once
        per_batch = max(1, PROFILE_CELLS // max(height, 1))
        batches = []
        for first in range(0, len(features), per_batch):
            codes = encoded_codes(feature_of.slice(first, per_batch))
            key = (pl.col(_FEATURE) - first).cast(pl.UInt64) * (1 << 32) + pl.col(_CODE).cast(pl.UInt64)
            batches.append((first, codes.select(key).to_series(), codes.get_column(_NUMBER)))
            del codes
        return _Lookups(sources, batches=batches, per_batch=per_batch)
    groups = encoded_codes(feature_of).partition_by(_FEATURE, as_dict=True)
    dense = [
        _dense_lookup(groups[(index,)].get_column(_CODE), groups[(index,)].get_column(_NUMBER), dictionary_size)
        for index in range(len(features))
    ]
    return _Lookups(sources, dense=dense)


def _role_encodings(training: _TrainingProfile, features: list[dict], feature_of: pl.DataFrame) -> list[pl.DataFrame]:
    """(feature, code, number) of the boolean and datetime features: every distinct value of their columns read
    as a truth value (one Python call per distinct value, as `roles.encode_value`) or parsed as a date once."""
    kinds = {kind: [index for index, feature in enumerate(features) if feature["kind"] == kind] for kind in column_roles.KINDS}
    encoded = []
    chosen = feature_of.filter(pl.col(_FEATURE).is_in(kinds["boolean"]))
    if chosen.height:
        distinct = training.distinct.select(_COLUMN, _CODE, _TEXT).join(chosen, on=_COLUMN)
        for (index,), group in distinct.partition_by(_FEATURE, as_dict=True).items():
            numbers = column_roles.boolean_values(group.get_column(_TEXT), features[index], training.missing)
            encoded.append(group.select(_FEATURE, _CODE, numbers.alias(_NUMBER)))
    chosen = feature_of.filter(pl.col(_FEATURE).is_in(kinds["datetime"]))
    if chosen.height:
        distinct = training.distinct.filter(pl.col(_COLUMN).is_in(chosen.get_column(_COLUMN).unique().implode()))
        dates = pl.concat(
            [distinct.select(_COLUMN, _CODE), column_roles.datetime_frame(distinct.get_column(_TEXT), training.missing)],
            how="horizontal",
        ).join(chosen, on=_COLUMN)
        del distinct
        indices = kinds["datetime"]
        part = pl.col(_FEATURE).replace_strict(indices, [features[index]["part"] for index in indices], return_dtype=pl.String)
        fill = pl.col(_FEATURE).replace_strict(indices, [features[index]["fill"] for index in indices], return_dtype=pl.Float64)
        value = pl.coalesce(pl.when(part == name).then(pl.col(name)) for name in column_roles.DATETIME_PARTS)
        encoded.append(dates.select(_FEATURE, _CODE, value.fill_null(fill).alias(_NUMBER)))
    return encoded
