"""S3 "Object Created" under incoming/<dataset>/ → DatasetPrepared or DatasetRejected."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext
from datadrop import intake
from datadrop.events import S3ObjectCreated, SourceObject
from datadrop.lambda_support import idempotent_on
from datadrop.observability import metrics
from datadrop.services import get_services

logger = Logger()


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
