"""datadrop "ModelApproved" → endpoint; SageMaker endpoint state change → ModelDeployed/DeploymentFailed."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext
from datadrop import deployment
from datadrop.events import (
    SOURCE,
    DatasetPrepared,
    DeploymentFailed,
    DeploymentStarted,
    DeploymentSuperseded,
    ModelApproved,
    ModelDeployed,
    VersionFailed,
)
from datadrop.incoming import ModelApprovedEvent
from datadrop.incoming.sagemaker import EndpointStateChange
from datadrop.lambda_support import EVENT_KEY, idempotent_on, ignored, prebuilt
from datadrop.observability import metrics
from datadrop.records import EndpointRecord, EndpointSlot, VersionRecord
from datadrop.services import get_services

logger = Logger()
# Every model an invocation validates, constructs or dumps, built now (Init) rather than in the first
# request; the integration harness fails an invocation that builds one not listed here.
PREBUILT = prebuilt(
    ModelApprovedEvent,
    EndpointStateChange,
    DatasetPrepared,
    ModelApproved,
    DeploymentStarted,
    ModelDeployed,
    DeploymentFailed,
    DeploymentSuperseded,
    VersionFailed,
    VersionRecord,
    EndpointRecord,
    EndpointSlot,
)

ENDPOINT = "SageMaker Endpoint State Change"


@logger.inject_lambda_context(clear_state=True)  # no keys leak from the previous invocation
@metrics.log_metrics
@idempotent_on(EVENT_KEY, {SOURCE: {ModelApproved.DETAIL_TYPE}, "aws.sagemaker": {ENDPOINT}})
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    kind, source = event.get("detail-type"), event.get("source")
    if source == SOURCE and kind == ModelApproved.DETAIL_TYPE:
        approved = ModelApprovedEvent.model_validate(event).detail
        return {"dataset": approved.dataset, "version": approved.version, "outcome": deployment.deploy(get_services(), approved)}
    if source == "aws.sagemaker" and kind == ENDPOINT:
        detail = EndpointStateChange.model_validate(event).detail
        outcome = deployment.on_endpoint_state_change(
            get_services(), detail.EndpointName, detail.EndpointStatus, detail.EndpointConfigName, detail.FailureReason
        )
        return {"endpoint": detail.EndpointName, "outcome": outcome}
    return ignored(f"{kind!r} from {source!r} is not deploy's business")
