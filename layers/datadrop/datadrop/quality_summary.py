"""The data-quality report in short, as DatasetPrepared carries it (the whole report,
datadrop.quality.QualityReport, is the `profile` artefact, and `QualityReport.summary()` makes this).

Apart from datadrop.quality so that every step can read DatasetPrepared without defining the
report's models: only the prepare step builds reports.
"""

# No `from __future__ import annotations` in the modules that define models: see datadrop.events.
from pydantic import BaseModel, ConfigDict, Field

MAX_SUMMARY_NAMES = 20  # keep DatasetPrepared small whatever the width of the file ...
MAX_SUMMARY_NAME = 100  # ... and the length of its column names


def shortened(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


class QualitySummary(BaseModel):
    """The report in short, as DatasetPrepared carries it (the whole report is the `profile` artefact)."""

    model_config = ConfigDict(extra="forbid", defer_build=True)

    detected: str = Field(description='how the file was read, e.g. "CSV, semicolon-separated, cp1252, CRLF line endings"')
    rows_read: int
    rows_usable: int
    rows_dropped: dict[str, int] = Field(
        description="rows dropped per reason: empty, missing_target, non_numeric_target, duplicates, malformed"
    )
    features: int = Field(description="columns used as features")
    dropped_columns: list[str] = Field(description=f"columns not used (the first {MAX_SUMMARY_NAMES})")
    warnings: int = Field(description="how many warnings the report holds")
