"""The encoded splits are written from the numbers' texts (dense lookups: formatted once per distinct code, not
once per cell) or from the numbers (wide batches), unquoted: the bytes must be exactly those of `write_csv` on
the Float64 numbers, for every number."""

from __future__ import annotations

import random
import struct

import polars as pl
import pytest
from datadrop.dataprep import _dense_lookup, _Lookups
from datadrop.splitting import TRAIN, VALIDATION
from datadrop.writing import write_splits

AWKWARD = [
    1.0, -1.0, 0.0, -0.0, 100.0, 2.0**53, 2.0**53 + 2, 2.0**63, 2.0**64, 1e15, 1e16, 1e17, 1e20, 1e21, 1e22, 1e23, 1e100,
    1.7976931348623157e308, -1.7976931348623157e308, 2.2250738585072014e-308, 5e-324, -5e-324, 1e-4, 1e-5, 1e-7, -1e-7,
    1.23e-18, 0.1, 0.30000000000000004, 0.12345678901234568, 123456789.12345678, 1234567890123456.8, 4.35, -2.5,
    float("nan"), float("inf"), float("-inf"), None,
]  # fmt: skip


def _numbers() -> pl.Series:
    """The awkward numbers, then random bit patterns (any double, NaN payloads included) and random decimals."""
    chance = random.Random(42)
    bits = [struct.unpack("<d", chance.getrandbits(64).to_bytes(8, "little"))[0] for _ in range(5000)]
    decimals = [round(chance.uniform(-1e4, 1e4), chance.randint(0, 8)) for _ in range(5000)]
    return pl.Series(AWKWARD + bits + decimals, dtype=pl.Float64)


def _expected(labels: pl.Series, columns: list[pl.Series], mask: pl.Series) -> bytes:
    """What write_csv writes for these rows' Float64 numbers, label first (headerless, default quoting)."""
    written = labels.filter(mask)
    written = written if written.dtype == pl.Float64 else written.cast(pl.Int64)
    frame = pl.DataFrame([written.alias("label")] + [column.filter(mask).alias(f"f{i}") for i, column in enumerate(columns)])
    return frame.write_csv(include_header=False).encode()


@pytest.mark.parametrize("layout", ["dense", "batches"])
@pytest.mark.parametrize("regression", [False, True])
def test_encoded_splits_are_write_csv_of_the_float64_numbers(layout: str, regression: bool) -> None:
    numbers = _numbers()
    size = len(numbers) + 5  # a few codes no column holds
    codes = pl.int_range(0, len(numbers), dtype=pl.UInt32, eager=True)
    # two columns, each code twice, in different orders; each feature's number of a code differs
    x = pl.concat([codes, codes.reverse()])
    y = pl.concat([codes.reverse(), codes])
    frame = pl.DataFrame({"x": x, "y": y})
    second = numbers.reverse()  # feature 1's numbers, by code
    if layout == "dense":
        lookups = _Lookups(["x", "y"], dense=[_dense_lookup(codes, numbers, size), _dense_lookup(codes, second, size)])
    else:
        keys = pl.concat([codes.cast(pl.UInt64), codes.cast(pl.UInt64) + (1 << 32)])
        lookups = _Lookups(["x", "y"], batches=[(0, keys, pl.concat([numbers, second]))], per_batch=2)
    rows = frame.height
    part = pl.Series([TRAIN if index % 3 else VALIDATION for index in range(rows)], dtype=pl.UInt8)
    if regression:
        labels = pl.concat([numbers, numbers.reverse()])  # the target's numbers are written as they are
    else:
        labels = pl.Series([index % 4 for index in range(rows)], dtype=pl.UInt32)

    train, validation, test, test_labels = write_splits(
        frame, labels, part, lookups, [], pl.Series([], dtype=pl.String), ["a", "b", "c", "d"]
    )

    columns = [numbers.gather(x), second.gather(y)]
    assert train == _expected(labels, columns, part == TRAIN)
    assert validation == _expected(labels, columns, part == VALIDATION)
    assert (test, test_labels) == (b"", [])
    assert b"NaN" in train and b"inf" in train and b"-0.0" in train and b"e-7" in train  # the awkward numbers are there
