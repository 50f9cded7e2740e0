"""The deploy step: an approved model becomes (or replaces the model behind) the dataset's endpoint.

model (created at evaluation) → endpoint config → create the endpoint, or update it when the
dataset already has one. The endpoint's state-change event finishes the job: ModelDeployed or
DeploymentFailed.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger

from datadrop import names, observability
from datadrop.compute import CapacityError
from datadrop.events import DeploymentFailed, DeploymentStarted, ModelApproved, ModelDeployed
from datadrop.services import Services
from datadrop.state import ResourceOwner, VersionStatus

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
    state = services.state
    observability.correlate(approved.dataset, approved.version)
    try:
        return _deploy(services, approved)
    finally:
        state.flush_version(approved.dataset, approved.version)


def _deploy(services: Services, approved: ModelApproved) -> str:
    if approved.best_run is None:
        raise ValueError("ModelApproved without a best run")
    state, settings = services.state, services.settings
    version_item = state.get_version(approved.dataset, approved.version)
    if version_item is None:
        return "ignored"
    attempt = version_item.attempt
    # Re-entrant from DEPLOYING: a retry after a throttled or failed call redoes the idempotent creates.
    if not state.transition_version(
        approved.dataset, approved.version, VersionStatus.DEPLOYING, {VersionStatus.APPROVED, VersionStatus.DEPLOYING}
    ):
        logger.info("version is not waiting for deployment; nothing to do", dataset=approved.dataset, version=approved.version)
        return "duplicate"
    run = names.RunNames(settings.name_prefix, approved.dataset, approved.version, approved.best_run.run_index, attempt)
    endpoint = names.endpoint_name(settings.name_prefix, approved.dataset)
    owner = ResourceOwner(approved.dataset, approved.version, approved.best_run.run_index, attempt)
    state.map_resource("endpoint-config", run.endpoint_config, owner)
    try:
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
    except CapacityError as error:
        logger.warning("SageMaker has no capacity for the endpoint now; it waits", endpoint=endpoint, reason=str(error))
        state.set_attributes(state.version_item(approved.dataset, approved.version), waiting_reason=str(error))
        return "waiting"
    state.record(
        state.version_item(approved.dataset, approved.version),
        f"deployment_started#{attempt}",
        publish=[
            DeploymentStarted(
                dataset=approved.dataset,
                version=approved.version,
                endpoint_name=endpoint,
                endpoint_config_name=run.endpoint_config,
                model_name=run.model,
                update=update,
            )
        ],
        endpoint_name=endpoint,
        endpoint_config_name=run.endpoint_config,
    )
    observability.count("DeploymentsStarted")
    return "updating" if update else "creating"


FINAL_ENDPOINT_STATUSES = frozenset({"InService", "Failed"})


def on_endpoint_state_change(
    services: Services, endpoint_name: str, status: str, endpoint_config_name: str | None, failure_reason: str | None
) -> str:
    if status not in FINAL_ENDPOINT_STATUSES:
        return "ignored"
    config_name = endpoint_config_name
    if config_name is None:
        # A documented shape carries no EndpointConfigName: ask SageMaker which config the endpoint runs.
        described = services.compute.describe_endpoint(endpoint_name) or {}
        config_name = described.get("EndpointConfigName")
    owner = services.state.find_resource("endpoint-config", config_name or "")
    if owner is None:
        logger.info("endpoint is not one of ours; ignored", endpoint=endpoint_name)
        return "ignored"
    observability.correlate(owner.dataset, owner.version)
    try:
        return _finish_deployment(services, owner, endpoint_name, config_name or "", status, failure_reason)
    finally:
        services.state.flush_version(owner.dataset, owner.version)


def _finish_deployment(
    services: Services, owner: ResourceOwner, endpoint_name: str, config_name: str, status: str, failure_reason: str | None
) -> str:
    state = services.state
    dataset, version = owner.dataset, owner.version
    if status == "InService":
        deployed = ModelDeployed(
            dataset=dataset,
            version=version,
            endpoint_name=endpoint_name,
            endpoint_config_name=config_name,
            invocation_url=services.compute.invocation_url(endpoint_name),
        )
        if not state.transition_version(
            dataset, version, VersionStatus.DEPLOYED, {VersionStatus.DEPLOYING}, publish=[deployed], endpoint_name=endpoint_name
        ):
            return "duplicate"
        observability.count("ModelsDeployed")
        return "deployed"
    reason = failure_reason or (services.compute.describe_endpoint(endpoint_name) or {}).get("FailureReason") or "endpoint failed"
    failed = DeploymentFailed(dataset=dataset, version=version, endpoint_name=endpoint_name, reason=reason)
    if not state.transition_version(
        dataset, version, VersionStatus.DEPLOYMENT_FAILED, {VersionStatus.DEPLOYING}, publish=[failed], failure_reason=reason
    ):
        return "duplicate"
    observability.count("DeploymentsFailed")
    return "failed"
