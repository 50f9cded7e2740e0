"""datadrop "ModelApproved" → endpoint; SageMaker endpoint state change → ModelDeployed/DeploymentFailed."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from datadrop import deployment
from datadrop.events import EndpointStateChange, ModelApprovedEvent
from datadrop.lambda_support import idempotent_on
from datadrop.services import get_services

logger = Logger()

ENDPOINT = "SageMaker Endpoint State Change"


@logger.inject_lambda_context
@idempotent_on('["detail-type", detail.dataset || detail.EndpointName, detail.version || detail.EndpointConfigName, detail.EndpointStatus]')
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    if event.get("detail-type") == "ModelApproved":
        approved = ModelApprovedEvent.model_validate(event).detail
        return {"dataset": approved.dataset, "version": approved.version, "outcome": deployment.deploy(get_services(), approved)}
    if event.get("detail-type") == ENDPOINT:
        detail = EndpointStateChange.model_validate(event).detail
        outcome = deployment.on_endpoint_state_change(
            get_services(), detail.EndpointName, detail.EndpointStatus, detail.EndpointConfigName, detail.FailureReason
        )
        return {"endpoint": detail.EndpointName, "outcome": outcome}
    raise ValueError(f"deploy does not handle {event.get('detail-type')!r} events (check the rules in template.yaml)")
