"""datadrop "DatasetPrepared" → training jobs inside a SageMaker Experiment run group."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext
from datadrop import training
from datadrop.events import SOURCE, DatasetPrepared, PreparedArtifacts, RunSummary, TrainingStarted
from datadrop.incoming import DatasetPreparedEvent
from datadrop.lambda_support import EVENT_KEY, idempotent_on, prebuilt
from datadrop.observability import metrics
from datadrop.records import RunRecord, VersionRecord
from datadrop.services import get_services

logger = Logger()
# Every model an invocation validates, constructs or dumps, built now (Init) rather than in the first
# request; the integration harness fails an invocation that builds one not listed here.
PREBUILT = prebuilt(DatasetPreparedEvent, PreparedArtifacts, RunSummary, TrainingStarted, VersionRecord, RunRecord)


@logger.inject_lambda_context(clear_state=True)  # no keys leak from the previous invocation
@metrics.log_metrics
@idempotent_on(EVENT_KEY, {SOURCE: {DatasetPrepared.DETAIL_TYPE}})
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    prepared = DatasetPreparedEvent.model_validate(event).detail
    runs = training.start_training(get_services(), prepared)
    return {"dataset": prepared.dataset, "version": prepared.version, "training_jobs": [run.training_job for run in runs]}
