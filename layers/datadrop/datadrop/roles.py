"""Column roles beyond numeric and categorical: boolean, datetime, and ID-like integer columns.

`datadrop.dataprep` decides every column's role and calls in here for these three. Each rule has a
polars form and a plain-Python form (`encode_value`, for `recipe.encode_row`);
`datadrop.serving.inference` repeats the plain-Python form (it cannot import this module) and tests
check all three give the same floats. Prepare never holds the table as text: the polars forms look
at each column's distinct training values with their row counts (the training profile, see
`VALUES`), and encode a column's distinct values once (`boolean_values`, `datetime_frame`), which
prepare turns into a lookup from code to float. Row numbers are found on the coded column, in file order.

boolean: every present training value, stripped and case-folded (`str.casefold`), is one of
  TRUE_SPELLINGS or FALSE_SPELLINGS, both truth values occur, and at least one value is not a number
  (a column of only 0 and 1 stays numeric, encoded as before). Encoded true -> 1.0, false -> 0.0;
  missing, or any other text -> -1.0, as categorical features encode missing and unseen values: a
  tree splits -1 off on its own or together with false, so missingness stays visible to XGBoost,
  which a fill with the majority value would hide. Nothing is fitted; the recipe carries the
  spellings ("true", "false"), so a recipe encodes the same whatever later versions accept.

datetime: at least DATETIME_SHARE of the present training values match DATETIME_PATTERN in full: a
  date YYYY-MM-DD (or YYYY/MM/DD), optionally followed by "T" or a space and HH:MM, HH:MM:SS or
  HH:MM:SS.fraction, optionally followed by "Z" or an offset (+HH, +HHMM, +HH:MM), and the date and
  time exist (month 1-12, a day the month has, hour 0-23, minute and second 0-59; year 1 or later).
  Fractions of seconds and offsets are read but ignored: the parts are the clock time as written
  (local time of day is what predicts behaviour). Day-first or month-first dates (01/02/2024) are
  ambiguous and not read as dates. Expanded into numeric features, one per part (DATETIME_PARTS):
  year, month, day, day_of_week (Monday 0 .. Sunday 6), hour (only when some training value has a
  time of day; 0 for a value without one) and epoch_days (days since 1970-01-01, with the time of
  day as a fraction). Each part's missing or unparseable value -> its training median (the numeric
  convention). Or dropped, when the dataset config says `datetime: drop`.

ID-like integer columns (dropped unless the config pins the role), two tight rules so that a count
  or a year is never taken for an identifier:
  * row numbers: every row of the file, in file order, holds an integer one more (or one less) than
    the row before (1, 2, 3, ... n), with at least ID_MIN_ROWS rows; or
  * a name that says so (`looks_like_id_name`: "id", "user_id", "CustomerID", "uuid", "row_number",
    ...) and at least ID_MIN_ROWS present training values, all of them distinct integers.
"""

from __future__ import annotations

import math
import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field

import polars as pl

from datadrop.quality import BooleanSummary, ColumnReport, DatetimeSummary, Normalisation
from datadrop.reading import DatasetRejected

# --------------------------------------------------------------------------------------------
# boolean

TRUE_SPELLINGS = ("1", "t", "true", "y", "yes")
FALSE_SPELLINGS = ("0", "f", "false", "n", "no")
# A boolean column has few distinct raw values ("Yes", "YES", "y", ...); more than this is not one
# (and keeps the Python look at distinct values cheap on wide, high-cardinality files).
MAX_BOOLEAN_SPELLINGS = 64
BOOLEAN_MISSING = -1.0
MAX_SPELLINGS_REPORTED = 10


def truth_value(text: str, true: Sequence[str] = TRUE_SPELLINGS, false: Sequence[str] = FALSE_SPELLINGS) -> float | None:
    """1.0 / 0.0 for a (stripped, present) spelling of true / false, else None."""
    folded = text.casefold()
    if folded in true:
        return 1.0
    if folded in false:
        return 0.0
    return None


@dataclass(frozen=True)
class BooleanFit:
    """What the training rows of a column say about it as a boolean."""

    true_values: list[str]  # the raw spellings of true seen, most frequent first
    false_values: list[str]
    true_count: int
    false_count: int
    other_values: list[str] = field(default_factory=list)  # present values that are no truth value (most frequent first)
    other_count: int = 0

    @property
    def fits(self) -> bool:
        return self.other_count == 0 and self.true_count + self.false_count > 0


# The training profile, as `datadrop.dataprep` hands it in: one row per column and distinct (stripped)
# text, with how many training rows hold it (0: only other splits do) and whether it is a missing token.
COLUMN, TEXT, ROWS, MISSING = "\x00column", "\x00text", "\x00rows", "\x00missing"
VALUES = {COLUMN: "UInt32 position in `columns`", TEXT: "String", ROWS: "training rows", MISSING: "Boolean"}
_PRESENT = (pl.col(ROWS) > 0) & ~pl.col(MISSING)  # the present training values


def _present_values(values: pl.DataFrame, indices: Collection[int]) -> pl.DataFrame:
    """The present training values of these columns (COLUMN, TEXT, ROWS)."""
    return values.filter(pl.col(COLUMN).is_in(list(indices)) & _PRESENT).select(COLUMN, TEXT, ROWS)


def fit_boolean(
    values: pl.DataFrame, columns: Sequence[str], names: Sequence[str], pinned: Collection[str] = ()
) -> dict[str, BooleanFit]:
    """For the columns of `names` with at most MAX_BOOLEAN_SPELLINGS distinct present training values,
    and for those of `pinned` (pinned as boolean), how those values read as truth values.

    `values`: the training profile of (at least) those columns, see VALUES."""
    if not names and not pinned:
        return {}
    position = {name: index for index, name in enumerate(columns)}
    # a quick look first: case folding never shortens a text, so a longer value than every spelling rules a column out
    # (the lengths first, so that no text is copied)
    longest = max(map(len, TRUE_SPELLINGS + FALSE_SPELLINGS))
    lengths = values.select(COLUMN, ROWS, MISSING, pl.col(TEXT).str.len_chars().alias(TEXT))
    short = (
        lengths.filter(pl.col(COLUMN).is_in([position[name] for name in names]) & _PRESENT)
        .group_by(COLUMN)
        .agg((pl.col(TEXT).max() <= longest).alias("short"), pl.len().alias("distinct"))
    )
    del lengths
    kept = {columns[index] for index, ok, distinct in short.iter_rows() if ok and 0 < distinct <= MAX_BOOLEAN_SPELLINGS}
    chosen = [name for name in names if name in kept] + [name for name in pinned if name not in kept]
    if not chosen:
        return {}
    indices = [position[name] for name in chosen]
    # most frequent first (ties: in sorted order, so the report is the same on every run)
    spellings = _present_values(values, indices).sort(COLUMN, ROWS, TEXT, descending=[False, True, False])
    found: dict[str, dict[float | None, list[tuple[str, int]]]] = {name: {1.0: [], 0.0: [], None: []} for name in chosen}
    for index, value, count in spellings.select(COLUMN, TEXT, ROWS).iter_rows():
        found[columns[index]][truth_value(value)].append((value, count))
    return {
        name: BooleanFit(
            true_values=[value for value, _ in spelt[1.0]],
            false_values=[value for value, _ in spelt[0.0]],
            true_count=sum(count for _, count in spelt[1.0]),
            false_count=sum(count for _, count in spelt[0.0]),
            other_values=[value for value, _ in spelt[None]],
            other_count=sum(count for _, count in spelt[None]),
        )
        for name, spelt in found.items()
    }


def is_boolean(fit: BooleanFit) -> bool:
    """The detection rule: only truth values, both of them, and not all numbers (0/1 columns stay numeric)."""
    return (
        fit.fits
        and fit.true_count > 0
        and fit.false_count > 0
        and any(value.casefold() not in ("0", "1") for value in fit.true_values + fit.false_values)
    )


def boolean_feature(name: str) -> dict:
    return {"name": name, "kind": "boolean", "true": list(TRUE_SPELLINGS), "false": list(FALSE_SPELLINGS)}


def boolean_values(texts: pl.Series, feature: Mapping, missing: Sequence[str]) -> pl.Series:
    """1.0 / 0.0 / -1.0 per text (a column's distinct stripped values; see `encode_value`), one Python call each."""
    return pl.Series(
        [
            BOOLEAN_MISSING if text in missing else truth_value(text, feature["true"], feature["false"])
            for text in texts.to_list()
        ],
        dtype=pl.Float64,
    ).fill_null(BOOLEAN_MISSING)


# --------------------------------------------------------------------------------------------
# datetime

# Matched in full (no anchors, so Python's re.fullmatch and polars' anchored regex agree); ASCII digits only.
DATETIME_PATTERN = (
    r"([0-9]{4})[-/]([0-9]{2})[-/]([0-9]{2})"
    r"(?:[T ]([0-9]{2}):([0-9]{2})(?::([0-9]{2})(?:[.,][0-9]{1,9})?)?(?:Z|[+-][0-9]{2}(?::?[0-9]{2})?)?)?"
)
_DATETIME = re.compile(DATETIME_PATTERN)
DATETIME_SHARE = 0.95  # share of present training values that must be dates (as numbers need NUMERIC_SHARE)
DATETIME_PARTS = ("year", "month", "day", "day_of_week", "hour", "epoch_days")
DATE_PARTS = ("year", "month", "day", "day_of_week", "epoch_days")  # when no training value has a time of day
_EPOCH_SHIFT = 719468  # days from 0000-03-01 (the start of the civil-from-days era) to 1970-01-01

DateTime = tuple[int, int, int, int, int, int, bool]  # year, month, day, hour, minute, second, time written


def parse_datetime(text: str) -> DateTime | None:
    """The date and time a stripped value stands for (see DATETIME_PATTERN), or None."""
    match = _DATETIME.fullmatch(text)
    if match is None:
        return None
    year, month, day, hour, minute, second = (int(group) if group else 0 for group in match.groups())
    if year < 1 or not 1 <= month <= 12 or not 1 <= day <= _days_in_month(year, month):
        return None
    if hour > 23 or minute > 59 or second > 59:
        return None
    return year, month, day, hour, minute, second, match.group(4) is not None


def _days_in_month(year: int, month: int) -> int:
    if month == 2:
        return 29 if (year % 4 == 0 and year % 100 != 0) or year % 400 == 0 else 28
    return 30 if month in (4, 6, 9, 11) else 31


def days_from_civil(year: int, month: int, day: int) -> int:
    """Days since 1970-01-01 (H. Hinnant's days_from_civil; every division is of a non-negative number
    for year >= 1, so integer division means the same in Python and polars)."""
    year -= month <= 2
    era = year // 400
    year_of_era = year - era * 400
    day_of_year = (153 * (month + (-3 if month > 2 else 9)) + 2) // 5 + day - 1
    day_of_era = year_of_era * 365 + year_of_era // 4 - year_of_era // 100 + day_of_year
    return era * 146097 + day_of_era - _EPOCH_SHIFT


def datetime_part(parsed: DateTime, part: str) -> float:
    """One part of a parsed value, as a float (see the module docstring)."""
    year, month, day, hour, minute, second, _ = parsed
    if part == "year":
        return float(year)
    if part == "month":
        return float(month)
    if part == "day":
        return float(day)
    if part == "hour":
        return float(hour)
    days = days_from_civil(year, month, day)
    if part == "day_of_week":  # 1970-01-01 was a Thursday (3); days + _EPOCH_SHIFT >= 0, and _EPOCH_SHIFT % 7 == 1
        return float((days + _EPOCH_SHIFT + 2) % 7)
    if part == "epoch_days":
        return (days * 86400 + hour * 3600 + minute * 60 + second) / 86400  # one correctly rounded division
    raise ValueError(f"unknown datetime part {part!r}")


def datetime_feature_name(column: str, part: str) -> str:
    return f"{column}.{part}"


def datetime_features(column: str, with_time: bool) -> list[dict]:
    """The recipe features of an expanded datetime column, fills not yet set."""
    return [
        {"name": datetime_feature_name(column, part), "column": column, "kind": "datetime", "part": part, "fill": None}
        for part in (DATETIME_PARTS if with_time else DATE_PARTS)
    ]


def datetime_frame(values: pl.Series, missing: Sequence[str]) -> pl.DataFrame:
    """Per value, every part of DATETIME_PARTS (Float64; null when missing or not a date, see
    `parse_datetime`) and "\x00time" (a time of day is written)."""
    groups = values.str.extract_groups(f"^(?:{DATETIME_PATTERN})$").struct.rename_fields(
        ["year", "month", "day", "hour", "minute", "second"]
    )
    frame = pl.DataFrame({"\x00value": values, "\x00groups": groups}).unnest("\x00groups")
    year, month, day = (pl.col(name).cast(pl.Int64) for name in ("year", "month", "day"))
    hour, minute, second = (pl.col(name).cast(pl.Int64).fill_null(0) for name in ("hour", "minute", "second"))
    leap = ((year % 4 == 0) & (year % 100 != 0)) | (year % 400 == 0)
    month_days = (
        pl.when(month == 2).then(pl.when(leap).then(29).otherwise(28)).when(month.is_in([4, 6, 9, 11])).then(30).otherwise(31)
    )
    valid = (
        ~pl.col("\x00value").is_in(missing)
        & (year >= 1)
        & month.is_between(1, 12)
        & day.is_between(1, month_days)
        & (hour <= 23)
        & (minute <= 59)
        & (second <= 59)
    ).fill_null(False)
    # days_from_civil, as in Python (all operands non-negative when valid)
    shifted = year - (month <= 2).cast(pl.Int64)
    era = shifted // 400
    year_of_era = shifted - era * 400
    day_of_year = (153 * (month + pl.when(month > 2).then(-3).otherwise(9)) + 2) // 5 + day - 1
    day_of_era = year_of_era * 365 + year_of_era // 4 - year_of_era // 100 + day_of_year
    days = era * 146097 + day_of_era - _EPOCH_SHIFT
    seconds = days * 86400 + hour * 3600 + minute * 60 + second
    parts = {
        "year": year.cast(pl.Float64),
        "month": month.cast(pl.Float64),
        "day": day.cast(pl.Float64),
        "day_of_week": ((days + _EPOCH_SHIFT + 2) % 7).cast(pl.Float64),
        "hour": hour.cast(pl.Float64),
        # Python's int / int is correctly rounded; polars divides by a literal as a multiplication by its
        # reciprocal (1 ulp off at times), so divide by a column of 86400s instead (exact Int64 -> f64, one division)
        "epoch_days": seconds / (seconds * 0 + 86400),
    }
    return frame.select(
        *(pl.when(valid).then(expression).alias(part) for part, expression in parts.items()),
        (valid & pl.col("hour").is_not_null()).alias("\x00time"),
    )


@dataclass(frozen=True)
class DatetimeFit:
    """What the training rows of a column say about it as dates."""

    present: int
    dates: int  # present values that are dates
    with_time: bool  # some date has a time of day
    bad_value: str | None  # a present value that is not a date (the most frequent one), if any
    first: float | None = None  # the earliest and latest date, as epoch_days
    last: float | None = None
    medians: dict[str, float] = field(default_factory=dict)  # per part of DATETIME_PARTS, the training median

    @property
    def share(self) -> float:
        return self.dates / self.present if self.present else 0.0


def fit_datetime(
    values: pl.DataFrame, columns: Sequence[str], names: Sequence[str], pinned: Collection[str] = ()
) -> dict[str, DatetimeFit]:
    """The columns of `names` some of whose present training values start like a date, and those of
    `pinned` (pinned as datetime), parsed: each distinct value once, weighted by its training rows.

    `values`: the training profile of (at least) those columns, see VALUES."""
    if not names and not pinned:
        return {}
    position = {name: index for index, name in enumerate(columns)}
    starts = values.select(COLUMN, ROWS, MISSING, pl.col(TEXT).str.contains(r"^[0-9]{4}[-/][0-9]{2}[-/]").alias(TEXT))
    looks = starts.filter(pl.col(COLUMN).is_in([position[name] for name in names]) & _PRESENT & pl.col(TEXT))
    chosen = sorted({*looks.get_column(COLUMN).unique().to_list(), *(position[name] for name in pinned)})
    del starts, looks
    if not chosen:
        return {}
    distinct = _present_values(values, chosen)
    parts = pl.concat([distinct, datetime_frame(distinct.get_column(TEXT), [])], how="horizontal")
    rows = pl.col(ROWS).cast(pl.UInt64)
    is_date = pl.col("year").is_not_null()
    stats = parts.group_by(COLUMN).agg(
        rows.sum().alias("present"),
        rows.filter(is_date).sum().alias("dates"),
        pl.col("\x00time").any().alias("with_time"),
        pl.col("epoch_days").min().alias("first"),
        pl.col("epoch_days").max().alias("last"),
    )
    # the most frequent value that is not a date (ties: the first in sorted order), quoted when a pinned column is rejected
    bad = (
        parts.filter(~is_date)
        .sort(COLUMN, ROWS, TEXT, descending=[False, True, False])
        .group_by(COLUMN, maintain_order=True)
        .agg(pl.col(TEXT).first())
    )
    bad_values = dict(bad.iter_rows())
    medians = {part: weighted_medians(parts, COLUMN, part, ROWS) for part in DATETIME_PARTS}
    fits = {}
    for row in stats.iter_rows(named=True):
        index = row[COLUMN]
        fits[columns[index]] = DatetimeFit(
            present=row["present"],
            dates=row["dates"] or 0,
            with_time=bool(row["with_time"]),
            bad_value=bad_values.get(index),
            first=row["first"],
            last=row["last"],
            medians={part: medians[part][index] for part in DATETIME_PARTS if index in medians[part]},
        )
    return fits


def weighted_medians(frame: pl.DataFrame, by: str, value: str, weight: str) -> dict:
    """Per group `by`, the median of `value` (nulls left out) with each row counted `weight` times: what
    polars' median of the rows gives (the mean of the two middle values, computed as polars computes it)."""
    rows = pl.col(weight).cast(pl.UInt64)
    through, total = "\x00through", "\x00total"
    numbers = (
        frame.filter(pl.col(value).is_not_null() & (pl.col(weight) > 0))
        .select(by, value, weight)
        .sort(by, value)
        .with_columns(rows.cum_sum().over(by).alias(through), rows.sum().over(by).alias(total))
    )
    middle = numbers.group_by(by).agg(
        pl.col(value).filter(pl.col(through) > (pl.col(total) - 1) // 2).first().alias("low"),
        pl.col(value).filter(pl.col(through) > pl.col(total) // 2).first().alias("high"),
    )
    medians = middle.select(by, pl.concat_list("low", "high").list.median().alias("median"))
    return dict(medians.iter_rows())


def format_epoch_days(days: float, with_time: bool) -> str:
    """An epoch_days value back as "YYYY-MM-DD" (or "YYYY-MM-DD HH:MM:SS"), for the report."""
    import datetime as dt

    whole = math.floor(days)
    moment = dt.datetime(1970, 1, 1) + dt.timedelta(days=whole, seconds=round((days - whole) * 86400))
    shown = f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d}"
    return shown + f" {moment.hour:02d}:{moment.minute:02d}:{moment.second:02d}" if with_time else shown


# --------------------------------------------------------------------------------------------
# ID-like integer columns

ID_MIN_ROWS = 20  # fewer values than this say too little to call a column an identifier
_INTEGER = r"[+-]?[0-9]+"
_ID_WORDS = frozenset({"id", "ids", "uuid", "guid"})  # the last word of the name
_ID_NAMES = frozenset({"index", "idx", "row", "rownum", "row number", "row no", "row index", "record number"})


def looks_like_id_name(name: str) -> bool:
    """True for "id", "user_id", "user-id", "CustomerID", "customerId", "uuid", "row_number", "index";
    false for "paid", "price_index", "idea"."""
    spaced = re.sub(r"([a-z0-9])([A-Z])|([A-Z])([A-Z][a-z])", r"\1\3 \2\4", name)
    words = [word for word in re.split(r"[^0-9a-z]+", spaced.casefold()) if word]
    return bool(words) and (words[-1] in _ID_WORDS or " ".join(words) in _ID_NAMES)


ROW_NUMBER_BLOCK = 1 << 20  # rows of a column checked at a time for row numbers


def consecutive_integer_columns(frame: pl.DataFrame, values: pl.Series, names: Sequence[str]) -> dict[str, tuple[int, int]]:
    """The columns of `names` whose rows, in file order, are integers each one more (or one less) than
    the row before: row numbers. Name -> (first, last).

    `frame`: the table as read (`reading.Table`), a UInt32 code per value into `values`, the stripped texts.
    """
    if frame.height < ID_MIN_ROWS or not names:
        return {}
    # a quick look at the ends first: only a column whose last value is first +- (rows - 1) can qualify
    ends = values.gather([frame.get_column(name)[0] for name in names] + [frame.get_column(name)[-1] for name in names]).to_list()
    found = {}
    for name, first, last in zip(names, ends[: len(names)], ends[len(names) :]):
        if not (re.fullmatch(_INTEGER, first) and re.fullmatch(_INTEGER, last)):
            continue
        step = 1 if int(last) > int(first) else -1
        if int(last) - int(first) != step * (frame.height - 1) or not _counts_by(frame.get_column(name), values, step):
            continue
        found[name] = (int(first), int(last))
    return found


def _counts_by(codes: pl.Series, values: pl.Series, step: int) -> bool:
    """Whether the texts of `codes` are integers, each `step` more than the one before (a block of rows at a time,
    so that no more than a block's texts exist at once)."""
    previous = None
    for start in range(0, len(codes), ROW_NUMBER_BLOCK):
        texts = values.gather(codes.slice(start, ROW_NUMBER_BLOCK))
        numbers = texts.cast(pl.Int64, strict=False)
        if numbers.null_count() or not texts.str.contains(f"^{_INTEGER}$").all():
            return False
        if previous is not None and numbers[0] - previous != step:
            return False
        if not (numbers.diff().drop_nulls() == step).all():
            return False
        previous = numbers[-1]
    return True


def distinct_integers(numbers: pl.Series, rows: pl.Series) -> bool:
    """At least ID_MIN_ROWS present values, all distinct integers. `numbers`: a column's distinct training values
    as numbers (null = missing or not a number); `rows`: how many training rows hold each."""
    counted = pl.DataFrame({"number": numbers, "rows": rows}).filter(pl.col("number").is_not_null() & (pl.col("rows") > 0))
    present = int(counted.get_column("rows").cast(pl.UInt64).sum())
    column = counted.get_column("number")
    return present >= ID_MIN_ROWS and bool((column == column.round()).all()) and column.n_unique() == present


# --------------------------------------------------------------------------------------------
# encoding (polars, for the splits; plain Python, for one row)

KINDS = ("boolean", "datetime")


def source_column(feature: Mapping) -> str:
    """The column of the raw row a feature is computed from."""
    return feature.get("column", feature["name"])


def encode_value(feature: Mapping, text: str, missing: Sequence[str] | set[str]) -> float:
    """A boolean or datetime feature of one stripped raw value (see the module docstring)."""
    if feature["kind"] == "boolean":
        if text in missing:
            return BOOLEAN_MISSING
        value = truth_value(text, feature["true"], feature["false"])
        return BOOLEAN_MISSING if value is None else value
    parsed = None if text in missing else parse_datetime(text)
    return feature["fill"] if parsed is None else datetime_part(parsed, feature["part"])


# --------------------------------------------------------------------------------------------
# the report's summaries (and the rejection of a pinned role that does not fit)

MAX_QUOTED = 200  # characters of a value quoted in the report or a rejection (as dataprep.MAX_REPORTED_VALUE)


def boolean_summary(name: str, fit: BooleanFit | None) -> BooleanSummary:
    """The report on a boolean column; a column pinned as boolean must hold only truth values."""
    if fit is None or not fit.fits:
        example = f", such as {fit.other_values[0][:MAX_QUOTED]!r}," if fit is not None and fit.other_values else ""
        raise DatasetRejected(
            f"column {name!r} is pinned as boolean in the dataset config, but training values{example} are not "
            f"true/false (any case of {', '.join(TRUE_SPELLINGS)} / "
            f"{', '.join(FALSE_SPELLINGS)}): fix those values, add them to missing_values, or pin it "
            "as categorical"
        )
    shown = MAX_SPELLINGS_REPORTED
    return BooleanSummary(
        true=fit.true_count,
        false=fit.false_count,
        true_share=fit.true_count / (fit.true_count + fit.false_count),
        true_values=[value[:MAX_QUOTED] for value in fit.true_values[:shown]],
        false_values=[value[:MAX_QUOTED] for value in fit.false_values[:shown]],
    )


def checked_datetime(name: str, fit: DatetimeFit | None, role: str | None) -> DatetimeFit:
    """The column's dates; a column pinned as datetime needs DATETIME_SHARE of its values to be dates, like any."""
    if fit is None or fit.share < DATETIME_SHARE:
        dates = fit.dates if fit is not None else 0
        example = f" (such as {fit.bad_value[:MAX_QUOTED]!r})" if fit is not None and fit.bad_value else ""
        raise DatasetRejected(
            f"column {name!r} is pinned as {role} in the dataset config, but only {dates} of its present training "
            f"values are dates{example} and datadrop needs {DATETIME_SHARE:.0%}: write dates as "
            "YYYY-MM-DD, optionally with a time (YYYY-MM-DD HH:MM:SS or 2024-03-01T12:30:00Z), add the other "
            "values to missing_values, or pin it as categorical"
        )
    return fit


def datetime_summary(fit: DatetimeFit) -> DatetimeSummary:
    parts = DATETIME_PARTS if fit.with_time else DATE_PARTS
    assert fit.first is not None and fit.last is not None  # checked_datetime: some value is a date
    return DatetimeSummary(
        min=format_epoch_days(fit.first, fit.with_time),
        max=format_epoch_days(fit.last, fit.with_time),
        with_time=fit.with_time,
        parts=list(parts),
        fills={part: float(fit.medians[part]) for part in parts},
        not_dates=fit.present - fit.dates,
    )


# --------------------------------------------------------------------------------------------
# the report's normalisations


def role_notes(column: ColumnReport) -> list[Normalisation]:
    """What was done to a boolean or datetime column, for the report's normalisations."""
    summary = column.summary
    if isinstance(summary, BooleanSummary):
        spelt = ", ".join(repr(value) for value in summary.true_values) + " / " + ", ".join(repr(v) for v in summary.false_values)
        notes = [
            Normalisation(
                step="booleans_read",
                column=column.name,
                detail=f"true/false values ({spelt}) encoded as 1 / 0; missing values and any other text as -1",
                count=summary.true + summary.false,
            )
        ]
        if column.missing:
            notes.append(
                Normalisation(
                    step="missing_level",
                    column=column.name,
                    detail="missing values encoded as -1 (as are values that are not true/false)",
                    count=column.missing,
                )
            )
        return notes
    if isinstance(summary, DatetimeSummary):
        also = f", and so are {summary.not_dates} training values that are not dates" if summary.not_dates else ""
        notes = [
            Normalisation(
                step="datetime_expanded",
                column=column.name,
                detail=f"dates ({summary.min} to {summary.max}) expanded into the numeric features "
                f"{', '.join(summary.parts)} (time-zone offsets and fractions of seconds ignored; "
                "set datetime: drop to drop date columns instead)",
            )
        ]
        if column.missing or summary.not_dates:
            notes.append(
                Normalisation(
                    step="imputed",
                    column=column.name,
                    detail=f"missing values encoded as each part's training median{also}",
                    count=column.missing,
                )
            )
        return notes
    return []
