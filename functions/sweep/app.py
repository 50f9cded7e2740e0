"""Scheduled: finish or end work that has waited too long (see datadrop.recovery)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext
from datadrop.events import (
    ChampionScore,
    DatasetPrepared,
    DeploymentFailed,
    DeploymentStarted,
    DeploymentSuperseded,
    ModelApproved,
    ModelDeployed,
    ModelPendingApproval,
    ModelRejected,
    PreparedArtifacts,
    RunEvaluated,
    RunSummary,
    TrainingStarted,
    VersionFailed,
)
from datadrop.lambda_support import prebuilt
from datadrop.observability import metrics
from datadrop.records import ChampionRecord, EndpointRecord, EndpointSlot, RunRecord, VersionRecord
from datadrop.recovery import Sweeper
from datadrop.services import get_services

logger = Logger()
# Every model an invocation validates, constructs or dumps, built now (Init) rather than in the first
# request: a sweep may continue any step's work, so it builds what train, evaluate and deploy build.
PREBUILT = prebuilt(
    DatasetPrepared,
    PreparedArtifacts,
    RunSummary,
    TrainingStarted,
    RunEvaluated,
    ChampionScore,
    ModelApproved,
    ModelRejected,
    ModelPendingApproval,
    DeploymentStarted,
    ModelDeployed,
    DeploymentFailed,
    DeploymentSuperseded,
    VersionFailed,
    VersionRecord,
    RunRecord,
    ChampionRecord,
    EndpointRecord,
    EndpointSlot,
)


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
