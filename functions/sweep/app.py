"""Scheduled: finish or end work that has waited too long (see datadrop.recovery)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext
from datadrop.observability import metrics
from datadrop.recovery import Sweeper
from datadrop.services import get_services

logger = Logger()


@logger.inject_lambda_context(clear_state=True)  # no keys leak from the previous invocation
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    # No idempotency: a sweep only continues what the state table says is unfinished, and every
    # step it runs is itself guarded by conditional writes.
    report = Sweeper.from_settings(get_services()).sweep()
    if report.errors:
        logger.error("sweep finished with errors", **report.as_dict())
    else:
        logger.info("sweep finished", **report.as_dict())
    return report.as_dict()
