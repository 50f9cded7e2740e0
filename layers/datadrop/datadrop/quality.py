"""The data-quality report of a dataset version: what was read, what was done to it, what is left.

`datadrop.dataprep.prepare` builds it; the prepare step stores it as JSON next to the splits (the
`profile` artefact) before it announces DatasetPrepared, which carries `QualitySummary`, its
short form. `datadrop prepare` prints it. Pydantic only (no polars), so events and the CLI can
import it cheaply.
"""

# No `from __future__ import annotations` in the modules that define models: see datadrop.events.
from typing import Final, Literal

from pydantic import BaseModel, ConfigDict, Field

# The short form lives apart, so the steps that only read DatasetPrepared skip the report's models.
from datadrop.quality_summary import MAX_SUMMARY_NAME, MAX_SUMMARY_NAMES, QualitySummary
from datadrop.quality_summary import shortened as _shortened

REPORT_FORMAT: Final = "datadrop-report/1"

FileFormat = Literal["csv", "parquet", "jsonl"]


class _Report(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)


class DetectedFormat(_Report):
    """How the uploaded bytes were read: detected from the content, never from the file's name."""

    format: FileFormat
    compression: Literal["none", "gzip"] = "none"
    encoding: str | None = Field(None, description="text encoding (utf-8, cp1252, latin-1, utf-16-le, ...); None for Parquet")
    bom: bool = Field(False, description="the text started with a byte order mark (removed)")
    delimiter: str | None = Field(None, description="CSV field separator: ',', ';', '\\t' or '|'")
    line_endings: Literal["LF", "CRLF", "mixed"] | None = None
    bytes: int = Field(description="size of the uploaded object")

    def describe(self) -> str:
        """One line for people, e.g. "CSV, ';'-separated, cp1252, CRLF, gzip-compressed"."""
        parts = [{"csv": "CSV", "parquet": "Parquet", "jsonl": "JSON Lines"}[self.format]]
        if self.delimiter is not None:
            parts.append(f"{DELIMITER_NAMES.get(self.delimiter, repr(self.delimiter))}-separated")
        if self.encoding is not None:
            parts.append(self.encoding + (" with BOM" if self.bom else ""))
        if self.line_endings is not None:
            parts.append(f"{self.line_endings} line endings")
        if self.compression != "none":
            parts.append(f"{self.compression}-compressed")
        return ", ".join(parts)


DELIMITER_NAMES = {",": "comma", ";": "semicolon", "\t": "tab", "|": "pipe"}


class RowCounts(_Report):
    read: int = Field(description="data rows in the file (header not counted)")
    empty: int = Field(description="blank rows, dropped")
    missing_target: int = Field(description="rows whose target is missing, dropped")
    non_numeric_target: int = Field(0, description="regression: rows whose target is present but not a number, dropped")
    duplicates: int = Field(description="exact copies of an earlier row (after stripping), dropped")
    malformed: int = Field(0, description="rows with the wrong number of fields, dropped")
    usable: int = Field(description="rows left for the splits")

    @property
    def dropped(self) -> dict[str, int]:
        """Rows dropped per reason (only reasons that dropped any)."""
        counts = {
            "empty": self.empty,
            "missing_target": self.missing_target,
            "non_numeric_target": self.non_numeric_target,
            "duplicates": self.duplicates,
            "malformed": self.malformed,
        }
        return {reason: count for reason, count in counts.items() if count}


class NumericSummary(_Report):
    kind: Literal["numeric"] = "numeric"
    min: float
    median: float
    max: float
    not_numbers: int = Field(description="training values present but not a number (encoded as the median)")


class CategoricalSummary(_Report):
    kind: Literal["categorical"] = "categorical"
    levels: int = Field(description="distinct values")
    top: str | None = Field(description="most frequent value")
    top_count: int


class BooleanSummary(_Report):
    kind: Literal["boolean"] = "boolean"
    true: int = Field(description="training values read as true")
    false: int = Field(description="training values read as false")
    true_share: float = Field(description="true / (true + false)")
    true_values: list[str] = Field(description="how true is written in the training rows, most frequent first")
    false_values: list[str] = Field(description="how false is written in the training rows, most frequent first")


class DatetimeSummary(_Report):
    kind: Literal["datetime"] = "datetime"
    min: str = Field(description="earliest training value, as YYYY-MM-DD[ HH:MM:SS]")
    max: str = Field(description="latest training value")
    with_time: bool = Field(description="some training value has a time of day (then the hour is a part)")
    parts: list[str] = Field(description="the numeric features the column is expanded into, in order")
    fills: dict[str, float] = Field(description="per part, what a missing or unreadable value is encoded as (training median)")
    not_dates: int = Field(description="training values present but not a date (encoded as the fills)")


ColumnRole = Literal["target", "numeric", "categorical", "boolean", "datetime", "dropped"]
FEATURE_ROLES: Final = ("numeric", "categorical", "boolean", "datetime")


class ColumnReport(_Report):
    name: str
    role: ColumnRole
    type: Literal["number", "text", "empty"] | None = Field(
        description="what the training values look like; None for columns listed in drop_columns (not looked at)"
    )
    missing: int = Field(description="missing values in the rows read")
    missing_share: float = Field(description="missing / rows read (blank rows not counted)")
    summary: NumericSummary | CategoricalSummary | BooleanSummary | DatetimeSummary | None = Field(
        None, description="over the training rows, which the encoding was fitted on"
    )
    fill: float | None = Field(None, description="numeric features: what a missing value is encoded as (training median)")
    reason: str | None = Field(
        None, description="dropped columns: why (drop_columns, pinned, constant, all_missing, id_like, free_text, datetime)"
    )
    detail: str | None = None


class TargetSummary(_Report):
    """A regression target's values (what a classification target's class balance is to it)."""

    min: float
    max: float
    mean: float
    median: float


class SplitReport(_Report):
    rows: int
    classes: dict[str, int] = Field(description="rows per class; empty for regression")
    target: TargetSummary | None = Field(None, description="regression: the split's target values")


class TargetReport(_Report):
    name: str
    problem_type: Literal["binary", "multiclass", "regression"]
    classes: dict[str, int] = Field(description="class balance: rows per class, after cleaning; empty for regression")
    merged: dict[str, list[str]] = Field(
        default_factory=dict, description="class -> the other spellings of it in the file, merged into it (merge_labels)"
    )
    summary: TargetSummary | None = Field(None, description="regression: the target's values, after cleaning")


class Normalisation(_Report):
    """One change datadrop made to the data on its way in; `rows` counts the values or rows it touched."""

    step: str
    column: str | None = None
    detail: str
    count: int | None = None


class QualityReport(_Report):
    format: Literal["datadrop-report/1"] = REPORT_FORMAT
    dataset: str | None = None
    version: str | None = None
    detected: DetectedFormat
    rows: RowCounts
    target: TargetReport
    splits: dict[str, SplitReport]
    columns: list[ColumnReport]
    normalisations: list[Normalisation] = Field(default_factory=list)
    warnings: list[str] = Field(default_factory=list, description="what looks wrong but was not rejected")

    @property
    def dropped_columns(self) -> list[ColumnReport]:
        return [column for column in self.columns if column.role == "dropped"]

    def summary(self) -> QualitySummary:
        return QualitySummary(
            detected=self.detected.describe(),
            rows_read=self.rows.read,
            rows_usable=self.rows.usable,
            rows_dropped=self.rows.dropped,
            features=sum(column.role in FEATURE_ROLES for column in self.columns),
            dropped_columns=[_shortened(column.name, MAX_SUMMARY_NAME) for column in self.dropped_columns][:MAX_SUMMARY_NAMES],
            warnings=len(self.warnings),
        )


# Every part of the report: prepare builds it part by part, so its handler builds them all at import.
REPORT_MODELS: tuple[type[BaseModel], ...] = tuple(_Report.__subclasses__())


# --------------------------------------------------------------------------------------------
# The report as text, for people (`datadrop prepare`)

SHOWN_VALUE = 40  # characters of a value shown in the table


def _shown(value: str) -> str:
    return repr(_shortened(value, SHOWN_VALUE))


def _column_summary(column: ColumnReport) -> str:
    summary = column.summary
    if isinstance(summary, NumericSummary):
        shown = f"min {summary.min:.6g}, median {summary.median:.6g}, max {summary.max:.6g}"
        return shown + (f"; {summary.not_numbers} not numbers" if summary.not_numbers else "")
    if isinstance(summary, CategoricalSummary):
        if summary.top is None:
            return "no values"
        return f"{summary.levels} levels, top {_shown(summary.top)} ({summary.top_count})"
    if isinstance(summary, BooleanSummary):
        spelt = "/".join(_shown(value) for value in (summary.true_values[:1] + summary.false_values[:1]))
        return f"{summary.true_share:.1%} true ({summary.true} of {summary.true + summary.false}), written {spelt}"
    if isinstance(summary, DatetimeSummary):
        shown = f"{summary.min} to {summary.max}, parts {', '.join(summary.parts)}"
        return shown + (f"; {summary.not_dates} not dates" if summary.not_dates else "")
    return f"{column.reason}: {column.detail}" if column.reason else ""


def render_table(report: QualityReport) -> str:
    """The report as a few lines and a table of columns, for a terminal."""
    name = " ".join(part for part in (report.dataset, report.version) if part)
    kb = report.detected.bytes / 1000
    lines = [f"{name}: {report.detected.describe()}, {kb:,.1f} kB" if name else report.detected.describe()]
    dropped = ", ".join(f"{count} {reason.replace('_', ' ')}" for reason, count in report.rows.dropped.items()) or "none"
    lines.append(f"rows: {report.rows.read} read, {report.rows.usable} usable (dropped: {dropped})")
    summary = report.target.summary
    if summary is not None:  # regression: the values, not a class balance
        shown = f"min {summary.min:.6g}, median {summary.median:.6g}, mean {summary.mean:.6g}, max {summary.max:.6g}"
        lines.append(f"target {report.target.name!r} ({report.target.problem_type}): {shown}")
        lines.append(
            "splits (target mean): "
            + ", ".join(
                f"{split} {part.rows}" + (f" ({part.target.mean:.6g})" if part.target is not None else "")
                for split, part in report.splits.items()
            )
        )
    else:
        total = sum(report.target.classes.values()) or 1
        balance = ", ".join(f"{_shown(label)} {count} ({count / total:.1%})" for label, count in report.target.classes.items())
        lines.append(f"target {report.target.name!r} ({report.target.problem_type}): {balance}")
        lines.append("splits: " + ", ".join(f"{split} {part.rows}" for split, part in report.splits.items()))
    lines.append("")
    width = min(30, max(len("column"), *(len(column.name) for column in report.columns)))
    lines.append(f"{'column':<{width}}  {'role':<11}  {'type':<6}  {'missing':>7}  summary")
    for column in report.columns:
        shown = _shortened(column.name, width)
        lines.append(
            f"{shown:<{width}}  {column.role:<11}  {column.type or '-':<6}  {column.missing_share:>7.1%}  {_column_summary(column)}"
        )
    if report.normalisations:
        lines += ["", "normalisations:"]
        for note in report.normalisations:
            where = f"{note.column}: " if note.column else ""
            count = f" ({note.count})" if note.count is not None else ""
            lines.append(f"  - {where}{note.detail}{count}")
    if report.warnings:
        lines += ["", "warnings:"]
        lines += [f"  ! {warning}" for warning in report.warnings]
    return "\n".join(lines)
