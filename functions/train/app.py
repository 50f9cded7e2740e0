"""datadrop "DatasetPrepared" → training jobs inside a SageMaker Experiment run group."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from datadrop import training
from datadrop.events import SOURCE, DatasetPrepared, DatasetPreparedEvent
from datadrop.lambda_support import EVENT_KEY, idempotent_on, ignored
from datadrop.services import get_services

logger = Logger()


@logger.inject_lambda_context
@idempotent_on(EVENT_KEY)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    if event.get("source") != SOURCE or event.get("detail-type") != DatasetPrepared.DETAIL_TYPE:
        return ignored(f"{event.get('detail-type')!r} from {event.get('source')!r} is not a prepared dataset")
    prepared = DatasetPreparedEvent.model_validate(event).detail
    logger.append_keys(dataset=prepared.dataset, version=prepared.version)
    runs = training.start_training(get_services(), prepared)
    return {"dataset": prepared.dataset, "version": prepared.version, "training_jobs": [run.training_job for run in runs]}
