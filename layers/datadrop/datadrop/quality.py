"""The data-quality report of a dataset version: what was read, what was done to it, what is left.

`datadrop.dataprep.prepare` builds it; the prepare step stores it as JSON next to the splits (the
`profile` artefact) before it announces DatasetPrepared, which carries `QualitySummary`, its
short form. `datadrop prepare` prints it. Pydantic only (no polars), so events and the CLI can
import it cheaply.
"""

from __future__ import annotations

from typing import Final, Literal

from pydantic import BaseModel, ConfigDict, Field

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
    duplicates: int = Field(description="exact copies of an earlier row (after stripping), dropped")
    malformed: int = Field(0, description="rows with the wrong number of fields, dropped")
    usable: int = Field(description="rows left for the splits")

    @property
    def dropped(self) -> dict[str, int]:
        """Rows dropped per reason (only reasons that dropped any)."""
        counts = {
            "empty": self.empty,
            "missing_target": self.missing_target,
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


ColumnRole = Literal["target", "numeric", "categorical", "dropped"]


class ColumnReport(_Report):
    name: str
    role: ColumnRole
    type: Literal["number", "text", "empty"] = Field(description="what the values look like")
    missing: int = Field(description="missing values in the rows read")
    missing_share: float = Field(description="missing / rows read (blank rows not counted)")
    summary: NumericSummary | CategoricalSummary | None = Field(
        None, description="over the training rows, which the encoding was fitted on"
    )
    fill: float | None = Field(None, description="numeric features: what a missing value is encoded as (training median)")
    reason: str | None = Field(None, description="dropped columns: why (drop_columns, constant, all_missing, id_like)")
    detail: str | None = None


class SplitReport(_Report):
    rows: int
    classes: dict[str, int]


class TargetReport(_Report):
    name: str
    problem_type: Literal["binary", "multiclass"]
    classes: dict[str, int] = Field(description="class balance: rows per class, after cleaning")


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
            features=sum(column.role in ("numeric", "categorical") for column in self.columns),
            dropped_columns=[column.name for column in self.dropped_columns][:MAX_SUMMARY_NAMES],
            warnings=len(self.warnings),
        )


MAX_SUMMARY_NAMES = 20  # keeps DatasetPrepared small whatever the width of the file


class QualitySummary(_Report):
    """The report in short, as DatasetPrepared carries it (the whole report is the `profile` artefact)."""

    detected: str = Field(description='how the file was read, e.g. "CSV, semicolon-separated, cp1252, CRLF line endings"')
    rows_read: int
    rows_usable: int
    rows_dropped: dict[str, int] = Field(description="rows dropped per reason: empty, missing_target, duplicates, malformed")
    features: int = Field(description="columns used as features")
    dropped_columns: list[str] = Field(description=f"columns not used (the first {MAX_SUMMARY_NAMES})")
    warnings: int = Field(description="how many warnings the report holds")
