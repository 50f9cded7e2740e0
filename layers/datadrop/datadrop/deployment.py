"""The deploy step: an approved model becomes (or replaces the model behind) the dataset's endpoint.

model (created at evaluation) → endpoint config → create the endpoint, or update it when the
dataset already has one. The endpoint's state-change event finishes the job: ModelDeployed or
DeploymentFailed.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger

from datadrop import names
from datadrop.events import DeploymentFailed, DeploymentStarted, ModelApproved, ModelDeployed
from datadrop.services import Services
from datadrop.state import VersionStatus

logger = Logger(child=True)


def endpoint_config_request(services: Services, run: names.RunNames) -> dict[str, Any]:
    return {
        "EndpointConfigName": run.endpoint_config,
        "ProductionVariants": [
            {
                "VariantName": "AllTraffic",
                "ModelName": run.model,
                "InitialInstanceCount": 1,
                "InstanceType": services.settings.endpoint_instance_type,
                "InitialVariantWeight": 1.0,
            }
        ],
        "Tags": [{"Key": "datadrop:dataset", "Value": run.dataset}, {"Key": "datadrop:version", "Value": run.version}],
    }


def deploy(services: Services, approved: ModelApproved) -> str:
    if approved.best_run is None:
        raise ValueError("ModelApproved without a best run")
    # Re-entrant from DEPLOYING: a retry after a throttled or failed call redoes the idempotent creates.
    if not services.state.transition_version(
        approved.dataset, approved.version, VersionStatus.DEPLOYING, {VersionStatus.APPROVED, VersionStatus.DEPLOYING}
    ):
        logger.info("version is not waiting for deployment; nothing to do", dataset=approved.dataset, version=approved.version)
        return "duplicate"
    settings = services.settings
    run = names.RunNames(settings.name_prefix, approved.dataset, approved.version, approved.best_run.run_index)
    endpoint = names.endpoint_name(settings.name_prefix, approved.dataset)
    services.compute.create_endpoint_config(endpoint_config_request(services, run))
    existing = services.compute.describe_endpoint(endpoint)
    update = existing is not None
    if existing is None:
        services.compute.create_endpoint(
            {
                "EndpointName": endpoint,
                "EndpointConfigName": run.endpoint_config,
                "Tags": [{"Key": "datadrop:dataset", "Value": approved.dataset}],
            }
        )
    elif existing.get("EndpointConfigName") != run.endpoint_config:
        services.compute.update_endpoint({"EndpointName": endpoint, "EndpointConfigName": run.endpoint_config})
    services.state.transition_version(
        approved.dataset, approved.version, VersionStatus.DEPLOYING, {VersionStatus.DEPLOYING},
        endpoint_name=endpoint, endpoint_config_name=run.endpoint_config,
    )
    services.events.publish(
        DeploymentStarted(
            dataset=approved.dataset, version=approved.version, endpoint_name=endpoint,
            endpoint_config_name=run.endpoint_config, model_name=run.model, update=update,
        )
    )
    return "updating" if update else "creating"


def on_endpoint_state_change(
    services: Services, endpoint_name: str, status: str, endpoint_config_name: str | None, failure_reason: str | None
) -> str:
    if status not in ("InService", "Failed"):
        return "ignored"
    config_name = endpoint_config_name
    if config_name is None:
        described = services.compute.describe_endpoint(endpoint_name) or {}
        config_name = described.get("EndpointConfigName")
    parsed = names.parse_job_name(services.settings.name_prefix, config_name or "")
    if parsed is None:
        logger.info("endpoint is not one of ours; ignored", endpoint=endpoint_name)
        return "ignored"
    dataset, version, _ = parsed
    if status == "InService":
        if not services.state.transition_version(
            dataset, version, VersionStatus.DEPLOYED, {VersionStatus.DEPLOYING}, endpoint_name=endpoint_name
        ):
            return "duplicate"
        services.events.publish(
            ModelDeployed(
                dataset=dataset, version=version, endpoint_name=endpoint_name, endpoint_config_name=config_name,
                invocation_url=services.compute.invocation_url(endpoint_name),
            )
        )
        return "deployed"
    reason = failure_reason or (services.compute.describe_endpoint(endpoint_name) or {}).get("FailureReason") or "endpoint failed"
    if not services.state.transition_version(
        dataset, version, VersionStatus.DEPLOYMENT_FAILED, {VersionStatus.DEPLOYING}, failure_reason=reason
    ):
        return "duplicate"
    services.events.publish(DeploymentFailed(dataset=dataset, version=version, endpoint_name=endpoint_name, reason=reason))
    return "failed"
