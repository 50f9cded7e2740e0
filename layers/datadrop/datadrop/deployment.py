"""The deploy step: an approved model becomes (or replaces the model behind) the dataset's endpoint.

model (created at evaluation) → endpoint config → CreateEndpoint for the dataset's first
deployment, UpdateEndpoint with a blue/green DeploymentConfig (traffic shifting as the dataset's
`deployment:` config says, auto-rollback on its CloudWatch alarms) for every later one. The
endpoint's state-change event (or the sweeper) finishes it: ModelDeployed, or DeploymentFailed
naming where the endpoint ended and which version still serves.

One deployment per endpoint at a time. The endpoint's record in the state table
(datadrop.state.EndpointRecord) holds what serves, the deployment in flight and the newest approval
waiting; every change of it is conditional on what the writer read. An approval that arrives while
a deployment is in flight, or while SageMaker is changing the endpoint (Creating, Updating,
SystemUpdating, RollingBack, Deleting), waits in APPROVED; when the endpoint settles, its
state-change event starts the newest waiting approval (or the sweeper does, if events were lost).
A waiting approval that a newer one overtakes, and an approval older than what already serves or
goes out, ends SUPERSEDED (DeploymentSuperseded): an older model never replaces a newer one.
A Failed endpoint takes only DeleteEndpoint: the next deployment deletes it and creates it again.

SageMaker spells the status two ways (IN_SERVICE, InService); events may lack EndpointConfigName,
come more than once or late. A settled status counts for the deployment in flight only when it is
about that deployment's endpoint config; otherwise DescribeEndpoint says what is true now. InService
on the deployment's config is success; InService on another config (SageMaker rolled the update
back, with a FailureReason) is a failed update, and so are Failed and UpdateRollbackFailed.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from aws_lambda_powertools import Logger
from botocore.exceptions import ClientError

from datadrop import names, observability
from datadrop.compute import CapacityError
from datadrop.config import DeploymentSettings
from datadrop.events import (
    DeploymentFailed,
    DeploymentStarted,
    DeploymentSuperseded,
    ModelApproved,
    ModelDeployed,
    endpoint_status,
)
from datadrop.services import Services
from datadrop.state import EndpointRecord, EndpointSlot, ResourceOwner, VersionRecord, VersionStatus

logger = Logger(child=True)

IN_SERVICE = "InService"
FAILED = "Failed"
UPDATE_ROLLBACK_FAILED = "UpdateRollbackFailed"
# SageMaker is changing the endpoint: it takes no UpdateEndpoint (nor DeleteEndpoint) now.
BUSY_ENDPOINT_STATUSES = frozenset({"Creating", "Updating", "SystemUpdating", "RollingBack", "Deleting"})
# Where a deployment ends (OutOfService is not one: SageMaker moves on from it by itself).
FINAL_ENDPOINT_STATUSES = frozenset({IN_SERVICE, FAILED, UPDATE_ROLLBACK_FAILED})
# UpdateEndpoint is SageMaker's remedy for an endpoint whose update and rollback both failed.
UPDATABLE_ENDPOINT_STATUSES = frozenset({IN_SERVICE, UPDATE_ROLLBACK_FAILED})
MAX_RECORD_RACES = 8


# ---------------------------------------------------------------------------------------------
# Requests
# ---------------------------------------------------------------------------------------------
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


def deployment_config(settings: DeploymentSettings) -> dict[str, Any]:
    """UpdateEndpoint's DeploymentConfig: a blue/green update, auto-rollback on the alarms given."""
    routing: dict[str, Any] = {
        "Type": settings.traffic.upper(),
        # ALL_AT_ONCE has no steps to wait between; the old fleet's bake is TerminationWaitInSeconds.
        "WaitIntervalInSeconds": 0 if settings.traffic == "all_at_once" else settings.wait_seconds,
    }
    step = {"Type": "CAPACITY_PERCENT", "Value": settings.step_percent}
    if settings.traffic == "canary":
        routing["CanarySize"] = step
    elif settings.traffic == "linear":
        routing["LinearStepSize"] = step
    policy: dict[str, Any] = {
        "TrafficRoutingConfiguration": routing,
        "TerminationWaitInSeconds": settings.termination_wait_seconds,
    }
    if settings.max_execution_seconds is not None:
        policy["MaximumExecutionTimeoutInSeconds"] = settings.max_execution_seconds
    config: dict[str, Any] = {"BlueGreenUpdatePolicy": policy}
    if settings.rollback_alarms:
        config["AutoRollbackConfiguration"] = {"Alarms": [{"AlarmName": name} for name in settings.rollback_alarms]}
    return config


# ---------------------------------------------------------------------------------------------
# Starting a deployment
# ---------------------------------------------------------------------------------------------
@dataclass
class _Work:
    """One invocation's deployment work: the versions it wrote events for are flushed at its end."""

    services: Services
    touched: set[tuple[str, str]] = field(default_factory=set)

    def touch(self, dataset: str, version: str) -> None:
        self.touched.add((dataset, version))


@contextmanager
def _work(services: Services) -> Iterator[_Work]:
    work = _Work(services)
    try:
        yield work
    finally:
        for dataset, version in sorted(work.touched):
            services.state.flush_version(dataset, version)


def deploy(services: Services, approved: ModelApproved) -> str:
    observability.correlate(approved.dataset, approved.version)
    with _work(services) as work:
        work.touch(approved.dataset, approved.version)
        return _deploy(work, approved)


def _slot(services: Services, item: VersionRecord, run_index: int) -> EndpointSlot:
    run = names.RunNames(services.settings.name_prefix, item.dataset, item.version, run_index, item.attempt)
    return EndpointSlot(
        dataset=item.dataset,
        version=item.version,
        order=f"{item.created_at}#{item.version}",
        config=run.endpoint_config,
        model=run.model,
    )


def _newer_than(record: EndpointRecord, mine: EndpointSlot) -> EndpointSlot | None:
    """The newest version that serves, goes out or waits on the endpoint, if it is newer than `mine`."""
    others = [slot for slot in (record.serving, record.in_flight, record.waiting) if slot and slot.version != mine.version]
    newest = max(others, key=lambda slot: slot.order, default=None)
    return newest if newest is not None and newest.order > mine.order else None


def _deploy(work: _Work, approved: ModelApproved) -> str:
    if approved.best_run is None:
        raise ValueError("ModelApproved without a best run")
    services = work.services
    state = services.state
    item = state.get_version(approved.dataset, approved.version)
    if item is None:
        return "ignored"
    if item.status not in (VersionStatus.APPROVED, VersionStatus.DEPLOYING):
        logger.info("version is not waiting for deployment; nothing to do", dataset=item.dataset, version=item.version)
        return "duplicate"
    endpoint = names.endpoint_name(services.settings.name_prefix, item.dataset)
    mine = _slot(services, item, approved.best_run.run_index)
    state.map_resource(
        "endpoint-config", mine.config, ResourceOwner(item.dataset, item.version, approved.best_run.run_index, item.attempt)
    )
    state.ensure_endpoint(endpoint, item.dataset)
    for _ in range(MAX_RECORD_RACES):
        record = state.get_endpoint(endpoint)
        if record is None:
            raise RuntimeError(f"endpoint record {endpoint} vanished")
        if record.in_flight is not None and record.in_flight.version == mine.version:
            return _start(work, item, record, mine, endpoint, approved.best_run.run_index)
        if item.status == VersionStatus.DEPLOYING:
            return "duplicate"  # started, and settled meanwhile: its endpoint event finished it
        newer = _newer_than(record, mine)
        if newer is not None:
            where = "serves" if newer == record.serving else "is being deployed" if newer == record.in_flight else "waits"
            if _supersede(work, endpoint, mine, newer, f"version {newer.version}, newer, {where} on {endpoint}"):
                return "superseded"
            return "duplicate"
        if record.in_flight is None:
            described = services.compute.describe_endpoint(endpoint)
            status = endpoint_status(str(described.get("EndpointStatus", ""))) if described else None
            if status not in BUSY_ENDPOINT_STATUSES:
                # Conditional on all three as read: nothing newer may have started or finished meanwhile.
                when = {
                    "in_flight": None,
                    "waiting": record.waiting.version if record.waiting else None,
                    "serving": record.serving.version if record.serving else None,
                }
                sets: dict[str, EndpointSlot | None] = {"in_flight": mine}
                if record.waiting is not None and record.waiting.version == mine.version:
                    sets["waiting"] = None
                if state.change_endpoint(endpoint, sets, when):
                    continue  # claimed: the next look starts it
                continue  # the record changed under us: look again
            busy = f"the endpoint is {status}"
        else:
            busy = f"version {record.in_flight.version} is being deployed"
        waited = _wait(work, endpoint, record, mine, busy)
        if waited is not None:
            return waited
    raise RuntimeError(f"the record of endpoint {endpoint} kept changing; try again")


def _wait(work: _Work, endpoint: str, record: EndpointRecord, mine: EndpointSlot, busy: str) -> str | None:
    """Make `mine` the approval that waits for the endpoint (an older waiting one is superseded);
    None when the record changed meanwhile."""
    state = work.services.state
    previous = record.waiting
    reason = f"waiting for endpoint {endpoint}: {busy}"
    if previous is None or previous.version != mine.version:
        when = {"waiting": previous.version if previous else None}
        if not state.change_endpoint(endpoint, {"waiting": mine}, when):
            return None
        if previous is not None:
            _supersede(work, endpoint, previous, mine, f"version {mine.version}, newer, was approved while it waited")
    state.set_attributes(state.version_item(mine.dataset, mine.version), waiting_reason=reason)
    logger.info("approval waits for the endpoint", endpoint=endpoint, version=mine.version, reason=busy)
    observability.count("DeploymentsWaiting")
    return "waiting"


def _supersede(work: _Work, endpoint: str, old: EndpointSlot, newer: EndpointSlot, why: str) -> bool:
    state = work.services.state
    work.touch(old.dataset, old.version)
    reason = f"not deployed: {why}"
    superseded = state.transition_version(
        old.dataset,
        old.version,
        VersionStatus.SUPERSEDED,
        {VersionStatus.APPROVED},
        publish=[
            DeploymentSuperseded(
                dataset=old.dataset, version=old.version, endpoint_name=endpoint, superseded_by=newer.version, reason=reason
            )
        ],
        remove=("waiting_reason",),
        superseded_by=newer.version,
        failure_reason=reason,
    )
    if superseded:
        observability.count("DeploymentsSuperseded")
        logger.info("approval superseded", endpoint=endpoint, version=old.version, by=newer.version)
    return superseded


def _start(work: _Work, item: VersionRecord, record: EndpointRecord, mine: EndpointSlot, endpoint: str, run_index: int) -> str:
    """The deployment holds the endpoint: make the SageMaker calls (idempotent, so a retry redoes
    them safely) and record DeploymentStarted."""
    services = work.services
    state, compute = services.state, services.compute
    settings = item.prepared_event().deployment if item.prepared else DeploymentSettings()
    run = names.RunNames(services.settings.name_prefix, item.dataset, item.version, run_index, item.attempt)
    described = compute.describe_endpoint(endpoint)
    status = endpoint_status(str(described.get("EndpointStatus", ""))) if described else None
    update = True
    try:
        compute.create_endpoint_config(endpoint_config_request(services, run))
        if described is not None and described.get("EndpointConfigName") == mine.config and status != FAILED:
            update = record.serving is not None  # asked for before this retry: SageMaker is on it
        elif described is None:
            _create_endpoint(services, endpoint, mine)
            update = False
        elif status == FAILED:
            # DeleteEndpoint is the only call a Failed endpoint takes; it is created again once gone.
            compute.delete_endpoint(endpoint)
            logger.warning(
                "endpoint is Failed: deleted, to be created again", endpoint=endpoint, reason=described.get("FailureReason")
            )
            if compute.describe_endpoint(endpoint) is not None:
                return _not_now(work, mine, f"deleting the Failed endpoint {endpoint} before creating it again")
            _create_endpoint(services, endpoint, mine)
            update = False
        elif status in UPDATABLE_ENDPOINT_STATUSES:
            compute.update_endpoint(
                {"EndpointName": endpoint, "EndpointConfigName": mine.config, "DeploymentConfig": deployment_config(settings)}
            )
        else:
            return _not_now(work, mine, f"the endpoint is {status}")
    except CapacityError as error:
        logger.warning("SageMaker has no capacity for the endpoint now; it waits", endpoint=endpoint, reason=str(error))
        return _not_now(work, mine, str(error))
    except ClientError as error:
        # The endpoint changed between DescribeEndpoint and the call (SystemUpdating, or deleted):
        # not now. Anything else SageMaker refuses (a bad DeploymentConfig) fails this deployment.
        now = compute.describe_endpoint(endpoint)
        now_status = endpoint_status(str(now.get("EndpointStatus", ""))) if now else None
        if now_status in BUSY_ENDPOINT_STATUSES or (now is None) != (described is None):
            return _not_now(work, mine, f"the endpoint is {now_status or 'gone'}")
        message = error.response["Error"].get("Message", str(error))
        refused = f"SageMaker refused {error.operation_name}: {message}"
        settled = _settle(
            work, endpoint, record, mine, now_status or "", (now or {}).get("EndpointConfigName"), None, refused=refused
        )
        return _next(work, endpoint, now_status or "", settled)
    started = state.transition_version(
        item.dataset,
        item.version,
        VersionStatus.DEPLOYING,
        {VersionStatus.APPROVED, VersionStatus.DEPLOYING},
        publish=[
            DeploymentStarted(
                dataset=item.dataset,
                version=item.version,
                endpoint_name=endpoint,
                endpoint_config_name=mine.config,
                model_name=mine.model,
                update=update,
            )
        ],
        milestone=f"deployment_started#{item.attempt}",
        remove=("waiting_reason",),
        endpoint_name=endpoint,
        endpoint_config_name=mine.config,
    )
    if started:
        observability.count("DeploymentsStarted")
    if described is not None and described.get("EndpointConfigName") == mine.config and status in FINAL_ENDPOINT_STATUSES:
        # A retry after SageMaker finished (its event came while this deployment was not recorded
        # as started): settle it now rather than wait for the sweeper.
        fresh = state.get_endpoint(endpoint) or record
        settled = _settle(work, endpoint, fresh, mine, str(status), mine.config, described.get("FailureReason"))
        return _next(work, endpoint, str(status), settled)
    return "updating" if update else "creating"


def _create_endpoint(services: Services, endpoint: str, mine: EndpointSlot) -> None:
    services.compute.create_endpoint(
        {
            "EndpointName": endpoint,
            "EndpointConfigName": mine.config,
            "Tags": [{"Key": "datadrop:dataset", "Value": mine.dataset}],
        }
    )


def _not_now(work: _Work, mine: EndpointSlot, reason: str) -> str:
    """The deployment keeps the endpoint but cannot call SageMaker yet: the endpoint's next event,
    or the sweeper, starts it."""
    state = work.services.state
    state.set_attributes(state.version_item(mine.dataset, mine.version), waiting_reason=reason)
    return "waiting"


# ---------------------------------------------------------------------------------------------
# Finishing a deployment
# ---------------------------------------------------------------------------------------------
def on_endpoint_state_change(
    services: Services, endpoint_name: str, status: str, endpoint_config_name: str | None, failure_reason: str | None
) -> str:
    status = endpoint_status(status)
    if status not in FINAL_ENDPOINT_STATUSES:
        # Creating, Updating, SystemUpdating, RollingBack, Deleting, OutOfService: SageMaker is at
        # work; its settled status (or the sweeper) decides, and approvals wait for it.
        logger.info("endpoint not settled; nothing to do yet", endpoint=endpoint_name, status=status)
        return "ignored"
    if endpoint_config_name is not None and services.state.find_resource("endpoint-config", endpoint_config_name) is None:
        logger.info("endpoint config is not one of ours; ignored", endpoint=endpoint_name, config=endpoint_config_name)
        return "ignored"
    record = services.state.get_endpoint(endpoint_name)
    if record is None:
        record = _record_of_an_older_deployment(services, endpoint_name, endpoint_config_name)
        if record is None:
            logger.info("endpoint is not one of ours; ignored", endpoint=endpoint_name)
            return "ignored"
    if record.in_flight is not None:
        observability.correlate(record.dataset, record.in_flight.version)
    with _work(services) as work:
        return _on_endpoint(work, endpoint_name, record, status, endpoint_config_name, failure_reason)


def _record_of_an_older_deployment(services: Services, endpoint_name: str, config_name: str | None) -> EndpointRecord | None:
    """A deployment started before endpoints had a record: its version, found by its config."""
    state = services.state
    config = config_name or (services.compute.describe_endpoint(endpoint_name) or {}).get("EndpointConfigName")
    owner = state.find_resource("endpoint-config", str(config or ""))
    item = state.get_version(owner.dataset, owner.version) if owner else None
    if owner is None or item is None or item.status != VersionStatus.DEPLOYING:
        return None
    state.ensure_endpoint(endpoint_name, owner.dataset)
    slot = _slot(services, item, owner.run_index)
    state.change_endpoint(endpoint_name, {"in_flight": slot}, {"in_flight": None})
    return state.get_endpoint(endpoint_name)


def _on_endpoint(
    work: _Work, endpoint: str, record: EndpointRecord, status: str, config: str | None, failure_reason: str | None
) -> str:
    services = work.services
    state = services.state
    flight = record.in_flight
    if flight is None:
        return _next(work, endpoint, status, "no deployment in flight")
    work.touch(flight.dataset, flight.version)
    item = state.get_version(flight.dataset, flight.version)
    if item is None or item.status == VersionStatus.APPROVED:
        # Claimed, but SageMaker was busy (or the Failed endpoint was being deleted): try now.
        if item is not None and status not in BUSY_ENDPOINT_STATUSES:
            return _deploy(work, item.approval())
        return f"waiting ({status})"
    if item.status != VersionStatus.DEPLOYING:
        # Settled before, and the invocation died before it freed the endpoint: free it now.
        state.change_endpoint(endpoint, {"in_flight": None}, {"in_flight": flight.version})
        return _next(work, endpoint, status, "duplicate")
    if config != flight.config or (status == IN_SERVICE and failure_reason):
        # Not plainly about this deployment (no config, another config, a stale event, or a
        # FailureReason beside InService): what SageMaker says now decides.
        described = services.compute.describe_endpoint(endpoint)
        if described is None:
            return f"waiting (endpoint {endpoint} is gone)"
        status = endpoint_status(str(described.get("EndpointStatus", "")))
        config = described.get("EndpointConfigName")
        failure_reason = described.get("FailureReason")
    if status not in FINAL_ENDPOINT_STATUSES:
        logger.info("deployment in progress", endpoint=endpoint, status=status, version=flight.version)
        return f"in progress ({status})"
    outcome = _settle(work, endpoint, record, flight, status, config, failure_reason)
    return _next(work, endpoint, status, outcome)


def _settle(
    work: _Work,
    endpoint: str,
    record: EndpointRecord,
    flight: EndpointSlot,
    status: str,
    config: str | None,
    failure_reason: str | None,
    refused: str | None = None,
) -> str:
    """The deployment in flight ended (or SageMaker refused to start it: `refused`): record and
    announce how (one write on its version), then free the endpoint."""
    services = work.services
    state = services.state
    dataset, version = flight.dataset, flight.version
    work.touch(dataset, version)
    if status == IN_SERVICE and config == flight.config and refused is None:
        deployed = ModelDeployed(
            dataset=dataset,
            version=version,
            endpoint_name=endpoint,
            endpoint_config_name=flight.config,
            invocation_url=services.compute.invocation_url(endpoint),
        )
        done = state.transition_version(
            dataset, version, VersionStatus.DEPLOYED, {VersionStatus.DEPLOYING}, publish=[deployed], endpoint_name=endpoint,
            endpoint_status=status, remove=("waiting_reason",),
        )  # fmt: skip
        state.change_endpoint(endpoint, {"serving": flight, "in_flight": None}, {"in_flight": version})
        if done:
            observability.count("ModelsDeployed")
        return "deployed" if done else "duplicate"
    serving = _serving_after(services, record, flight, status, config)
    serving_version = serving.version if serving else None
    served = f"version {serving_version} still serves" if serving_version else "no model of this dataset serves"
    said = f": {failure_reason}" if failure_reason else ""
    if refused is not None:
        reason = f"{refused}; {endpoint} is {status or 'gone'}; {served}"
    elif status == IN_SERVICE:
        reason = f"the update to {flight.config} failed and SageMaker rolled it back: {endpoint} is InService on {config}; {served}{said}"
    elif status == UPDATE_ROLLBACK_FAILED:
        reason = (
            f"the update to {flight.config} failed and so did its rollback: {endpoint} is UpdateRollbackFailed, serving "
            f"a mix of the old and new fleets ({served}); the next deployment updates it again{said}"
        )
    elif status == FAILED:
        reason = f"{endpoint} is Failed; nothing serves; the next deployment deletes and re-creates it{said}"
    else:
        reason = f"{failure_reason or 'the deployment ended'}; {endpoint} is {status or 'gone'}; {served}"
    failed = DeploymentFailed(
        dataset=dataset,
        version=version,
        endpoint_name=endpoint,
        reason=reason,
        endpoint_config_name=flight.config,
        endpoint_status=status or None,
        serving_version=serving_version,
        serving_endpoint_config=config if status in (IN_SERVICE, UPDATE_ROLLBACK_FAILED) else None,
    )
    done = state.transition_version(
        dataset, version, VersionStatus.DEPLOYMENT_FAILED, {VersionStatus.APPROVED, VersionStatus.DEPLOYING}, publish=[failed],
        failure_reason=reason, endpoint_name=endpoint, endpoint_status=status or None, serving_version=serving_version,
        remove=("waiting_reason",),
    )  # fmt: skip
    state.change_endpoint(endpoint, {"serving": serving, "in_flight": None}, {"in_flight": version})
    if done:
        observability.count("DeploymentsFailed")
        logger.warning("deployment failed", endpoint=endpoint, version=version, status=status, serving=serving_version)
    return "failed" if done else "duplicate"


def _serving_after(
    services: Services, record: EndpointRecord, flight: EndpointSlot, status: str, config: str | None
) -> EndpointSlot | None:
    """What the endpoint serves once the deployment failed: nothing when it is Failed, else the
    version whose config it runs (the one that served before, after a rollback)."""
    if status == FAILED or (status not in FINAL_ENDPOINT_STATUSES and record.serving is None):
        return None
    if record.serving is not None and (config is None or config == record.serving.config or config == flight.config):
        return record.serving
    owner = services.state.find_resource("endpoint-config", config or "")
    item = services.state.get_version(owner.dataset, owner.version) if owner else None
    if owner is None or item is None:
        return record.serving
    return _slot(services, item, owner.run_index)


def _next(work: _Work, endpoint: str, status: str, outcome: str) -> str:
    """Once the endpoint is free and settled, the newest waiting approval goes out."""
    services = work.services
    if status not in FINAL_ENDPOINT_STATUSES:
        return outcome
    record = services.state.get_endpoint(endpoint)
    if record is None or record.in_flight is not None or record.waiting is None:
        return outcome
    waiting = services.state.get_version(record.waiting.dataset, record.waiting.version)
    if waiting is None or waiting.status != VersionStatus.APPROVED:
        services.state.change_endpoint(endpoint, {"waiting": None}, {"waiting": record.waiting.version})
        return outcome
    work.touch(waiting.dataset, waiting.version)
    observability.correlate(waiting.dataset, waiting.version)
    started = _deploy(work, waiting.approval())
    return f"{outcome}; next: {waiting.version} {started}"


def release(services: Services, dataset: str, version: str) -> str | None:
    """A deployment given up on (the sweeper): free its endpoint and start the next waiting one."""
    endpoint = names.endpoint_name(services.settings.name_prefix, dataset)
    record = services.state.get_endpoint(endpoint)
    if record is None or record.in_flight is None or record.in_flight.version != version:
        return None
    services.state.change_endpoint(endpoint, {"in_flight": None}, {"in_flight": version})
    with _work(services) as work:
        described = services.compute.describe_endpoint(endpoint)
        status = endpoint_status(str(described.get("EndpointStatus", ""))) if described else IN_SERVICE
        return _next(work, endpoint, status, "released")
