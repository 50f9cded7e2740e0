"""The stratified, deterministic train / validation / test split.

Rows are split per class: within a class, rows are ordered by a SplitMix64 key (row i of the
cleaned rows gets the i-th output of SplitMix64 seeded with `split.seed`), the first ones go to
test, the next ones to validation, the rest to train. So the split is the same on every platform
and version, and the same file always splits the same way.

A regression target has no classes: its rows are split per quantile bin of the target instead
(`quantile_bins`), so every split sees small, middling and large values.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import polars as pl

TRAIN, VALIDATION, TEST = 0, 1, 2
MAX_TARGET_BINS = 10  # regression: the target's quantile bins the split is stratified by ...
ROWS_PER_BIN_SPLIT = 3  # ... each expecting this many test and validation rows (fewer bins for small files)

# SplitMix64 constants (Steele, Lea & Flood 2014).
_GOLDEN = 0x9E3779B97F4A7C15
_MIX1 = 0xBF58476D1CE4E5B9
_MIX2 = 0x94D049BB133111EB
_U64 = (1 << 64) - 1

_LABEL = "\x00label"
_KEY = "\x00key"


def split_counts(class_counts: list[int], validation: float, test: float) -> list[tuple[int, int]]:
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


def quantile_bins(values: pl.Series, validation: float, test: float) -> pl.Series:
    """Each row's quantile bin of `values` (UInt32, 0..bins-1), ties ordered by file position; as many bins
    (at most MAX_TARGET_BINS) as leave ROWS_PER_BIN_SPLIT test and validation rows in each."""
    count = len(values)
    bins = max(1, min(MAX_TARGET_BINS, math.floor(count * min(validation, test) / ROWS_PER_BIN_SPLIT)))
    ranks = values.rank("ordinal").cast(pl.UInt64) - 1
    return (ranks * bins // count).cast(pl.UInt32).alias(_LABEL)


def _u64(value: int) -> pl.Expr:
    return pl.lit(value & _U64, dtype=pl.UInt64)


def split_keys(height: int, seed: int) -> pl.Series:
    """SplitMix64(seed) outputs 0..height-1, with wrapping UInt64 maths (a test checks them against a plain-Python
    SplitMix64 and its published test vector)."""
    z = pl.col(_KEY)
    return _in_parallel(
        pl.LazyFrame({_KEY: pl.int_range(start, stop, dtype=pl.UInt64, eager=True)})
        .select(((z + _u64(1)) * _u64(_GOLDEN) + _u64(seed)).alias(_KEY))
        .select(((z ^ (z // _u64(1 << 30))) * _u64(_MIX1)).alias(_KEY))
        .select(((z ^ (z // _u64(1 << 27))) * _u64(_MIX2)).alias(_KEY))
        .select((z ^ (z // _u64(1 << 31))).alias(_KEY))
        for start, stop in _ranges(height)
    ).to_series()


def _ranges(height: int) -> list[tuple[int, int]]:
    """0..height cut into a range per thread (polars runs an expression over a column on one thread)."""
    size = max(1, -(-height // pl.thread_pool_size()))
    return [(start, min(start + size, height)) for start in range(0, height, size)] or [(0, 0)]


def _in_parallel(parts: Iterable[pl.LazyFrame]) -> pl.DataFrame:
    """The parts' rows one after the other, the parts computed in parallel."""
    return pl.concat(list(parts), parallel=True).collect()


def assign_splits(labels: pl.Series, seed: int, counts: list[tuple[int, int]]) -> pl.Series:
    """The split of each cleaned row (UInt8: TRAIN, VALIDATION or TEST), given its class index.

    `counts`: per class, (test rows, validation rows), from `split_counts`.
    """
    keyed = pl.DataFrame({_LABEL: labels, _KEY: split_keys(len(labels), seed)})
    # Per class, the keys of the (test + validation) smallest; keys are distinct (SplitMix64 is a
    # bijection), so "key <= the n-th smallest" picks exactly n rows of the class.
    largest = max(t + v for t, v in counts)
    ends = (
        keyed.group_by(_LABEL)
        .agg(pl.col(_KEY).bottom_k(largest).sort())
        .sort(_LABEL)
        .with_columns(
            test=pl.Series([t - 1 for t, _ in counts]),
            validation=pl.Series([t + v - 1 for t, v in counts]),
        )
        .select(
            pl.col(_KEY).list.get(pl.col("test")).alias("test"),
            pl.col(_KEY).list.get(pl.col("validation")).alias("validation"),
        )
    )
    key, label = pl.col(_KEY), pl.col(_LABEL)
    test_end, validation_end = pl.lit(ends.get_column("test")), pl.lit(ends.get_column("validation"))
    return _in_parallel(
        keyed.slice(start, stop - start)
        .lazy()
        .select(
            pl.when(key <= test_end.gather(label))
            .then(pl.lit(TEST, dtype=pl.UInt8))
            .when(key <= validation_end.gather(label))
            .then(pl.lit(VALIDATION, dtype=pl.UInt8))
            .otherwise(pl.lit(TRAIN, dtype=pl.UInt8))
        )
        for start, stop in _ranges(keyed.height)
    ).to_series()
