"""S3 "Object Created" under incoming/<dataset>/ → DatasetPrepared or DatasetRejected."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext
from datadrop import intake
from datadrop.config import (
    AlgorithmChoice,
    DatasetConfig,
    DeploymentSettings,
    ExperimentSettings,
    GateConfig,
    SearchConfig,
    SplitConfig,
)
from datadrop.events import DatasetPrepared, DatasetRejected, PreparedArtifacts, SourceObject
from datadrop.incoming.s3 import S3ObjectCreated
from datadrop.lambda_support import idempotent_on, prebuilt
from datadrop.observability import metrics
from datadrop.quality import REPORT_MODELS
from datadrop.quality_summary import QualitySummary
from datadrop.records import VersionRecord
from datadrop.services import get_services

logger = Logger()
# Every model an invocation validates, constructs or dumps, built now (Init) rather than in the first
# request; the integration harness fails an invocation that builds one not listed here.
PREBUILT = prebuilt(
    S3ObjectCreated, SourceObject, DatasetPrepared, DatasetRejected, PreparedArtifacts, VersionRecord,
    # the config it parses, and what DatasetPrepared carries of it
    DatasetConfig, SplitConfig, AlgorithmChoice, SearchConfig, ExperimentSettings, GateConfig, DeploymentSettings,
    # the quality report it writes, built part by part, and its summary in DatasetPrepared
    *REPORT_MODELS, QualitySummary,
)  # fmt: skip


@logger.inject_lambda_context(clear_state=True)  # no keys leak from the previous invocation
@metrics.log_metrics
# Only "Object Created" is an upload ("Object Tags Added", "Object Deleted", ... are not).
@idempotent_on(
    '[detail.bucket.name, detail.object.key, detail.object."version-id", detail.object.etag]', {"aws.s3": {"Object Created"}}
)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    parsed = S3ObjectCreated.model_validate(event)
    uploaded = parsed.detail.object
    source = SourceObject(
        bucket=parsed.detail.bucket.name, key=uploaded.decoded_key, version_id=uploaded.version_id, etag=uploaded.etag
    )
    return asdict(intake.handle_upload(get_services(), source, context.get_remaining_time_in_millis))
