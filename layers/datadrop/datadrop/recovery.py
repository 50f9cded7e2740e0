"""Recovery: the sweeper finishes (or ends) work that sat too long; a retry starts a failed version over.

Events can be lost to datadrop in ways no retry policy covers: a state change whose Lambda ran out
of retries, a SageMaker quota that was full, an event that went to a dead-letter queue. The
sweeper runs on a schedule (template.yaml; the local runtime runs it whenever it is idle). It finds
what has waited longer than `stuck_after` (the state table's by-attention index), publishes what
is still in an outbox, asks SageMaker what really happened (Describe*), and continues the flow
from there with the same code the events would have run. Work that is still stuck after
`give_up_after` ends with a failure event that says where and why.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from aws_lambda_powertools import Logger

from datadrop import deployment, evaluation, names, observability, training
from datadrop.events import DatasetPrepared, DeploymentFailed, VersionFailed
from datadrop.services import Services
from datadrop.state import OUTBOX, TERMINAL_RUN_STATUSES, ItemKey, ResourceOwner, RunStatus, VersionRecord, VersionStatus

logger = Logger(child=True)

SWEPT_STATUSES = (
    VersionStatus.PREPARED,
    VersionStatus.TRAINING,
    VersionStatus.PENDING_APPROVAL,
    VersionStatus.APPROVED,
    VersionStatus.DEPLOYING,
)
FINAL_JOB_STATUSES = frozenset({"Completed", "Failed", "Stopped"})


class RetryRefused(Exception):
    """The version cannot be retried (it does not exist, or it did not fail)."""


def retry_version(services: Services, dataset: str, version: str) -> int:
    """Start a FAILED version over: a new attempt of every run, announced as DatasetPrepared again.
    Returns the new attempt number."""
    state = services.state
    item = state.get_version(dataset, version)
    if item is None:
        raise RetryRefused(
            f"dataset {dataset!r} has no version {version!r}: the version is in the DatasetPrepared and VersionFailed events"
        )
    if item.status != VersionStatus.FAILED:
        raise RetryRefused(
            f"version {version} of {dataset!r} is {item.status.value}; only a FAILED version can be retried "
            "(to train again on the same data, change the config: a new config makes a new version)"
        )
    attempt = item.attempt + 1
    prepared = item.prepared_event().model_copy(update={"event_id": None})
    if not state.transition_version(
        dataset,
        version,
        VersionStatus.PREPARED,
        {VersionStatus.FAILED},
        publish=[prepared],
        milestone=f"retry#{attempt}",
        remove=(
            "decision_reason",
            "best_run",
            "best_value",
            "model_package_arn",
            "decision",
            "failure_reason",
            "waiting_reason",
            "tuning_ended",
            "tuning_failure_reason",
        ),
        attempt=attempt,
        running=0,  # every run of the failed attempt has ended
        started=0,
    ):
        raise RetryRefused(f"version {version} of {dataset!r} changed while retrying it; look at it again")
    state.flush_version(dataset, version)
    logger.info("version retried", dataset=dataset, version=version, attempt=attempt)
    return attempt


@dataclass
class SweepReport:
    examined: int = 0
    published: int = 0
    continued: list[str] = field(default_factory=list)  # moved on, or tried again
    ended: list[str] = field(default_factory=list)
    waiting: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def progressed(self) -> bool:
        """Something changed, or something failed and deserves another sweep."""
        return bool(self.published or self.continued or self.ended or self.errors)

    def as_dict(self) -> dict[str, Any]:
        return {
            "examined": self.examined,
            "published": self.published,
            "continued": self.continued,
            "ended": self.ended,
            "waiting": self.waiting,
            "errors": self.errors,
        }


@dataclass
class Sweeper:
    services: Services
    stuck_after: timedelta
    give_up_after: timedelta

    def __post_init__(self) -> None:
        self._no_capacity = False

    @classmethod
    def from_settings(cls, services: Services) -> Sweeper:
        settings = services.settings
        return cls(services, timedelta(minutes=settings.stuck_after_minutes), timedelta(hours=settings.give_up_after_hours))

    def sweep(self, now: datetime | None = None) -> SweepReport:
        now = now or datetime.now(UTC)
        # Once SageMaker refuses one start for lack of capacity, the others would be refused too:
        # the rest of this sweep only looks, and does not hammer a full quota.
        self._no_capacity = False
        cutoff = (now - self.stuck_after).isoformat(timespec="milliseconds")
        report = SweepReport()
        state = self.services.state
        for attention in (OUTBOX, *SWEPT_STATUSES):
            for item in state.needing_attention(attention, cutoff):
                report.examined += 1
                label = f"{item.get('dataset')}/{item.get('version', item['sk'])}"
                try:
                    if item.get("kind") == "version" and attention != OUTBOX:
                        self._sweep_version(VersionRecord.model_validate(item), now, label, report)
                    else:
                        report.published += state.flush(ItemKey(item["pk"], item["sk"]))
                except Exception as error:
                    logger.exception("sweeping failed", item=label)
                    report.errors.append(f"{label}: {type(error).__name__}: {error}")
        observability.count("SweptContinued", len(report.continued))
        observability.count("SweptEnded", len(report.ended))
        observability.count("SweepErrors", len(report.errors))
        observability.count("OutboxPublishedBySweeper", report.published)
        return report

    # -- one version ----------------------------------------------------------------------------
    # Each branch returns what it did, or None when it only looked (SageMaker is still working).
    def _sweep_version(self, item: VersionRecord, now: datetime, label: str, report: SweepReport) -> None:
        services = self.services
        dataset, version = item.dataset, item.version
        observability.correlate(dataset, version)
        status = item.status
        # Measured from the version's last change, not from when it entered its status: a long
        # search keeps changing it (each run takes and gives back a training slot), a stuck one does not.
        since = datetime.fromisoformat(item.updated_at)
        overdue = now - since > self.give_up_after
        stage = "deployment" if status in (VersionStatus.APPROVED, VersionStatus.DEPLOYING) else "training"
        # What an interrupted invocation left in the version's own outbox goes out first (its runs'
        # leftovers are OUTBOX items of their own, which this sweep flushes too).
        if item.outbox:
            report.published += services.state.flush(services.state.version_item(dataset, version))
        if status is VersionStatus.PENDING_APPROVAL:
            # A person's decision may take any time: never given up on; a lost registry event is caught up.
            acted_on = self._sweep_pending_approval(item)
            (report.continued if acted_on else report.waiting).append(
                f"{label}: {status.value}" + (f": {acted_on}" if acted_on else "")
            )
            report.published += services.state.flush_version(dataset, version, discover=False)
            return
        try:
            if status is VersionStatus.PREPARED:
                acted: str | None = self._restart_training(item)
            elif status is VersionStatus.TRAINING:
                acted = self._sweep_runs(item)
            elif status is VersionStatus.APPROVED:
                acted = "deploy: " + deployment.deploy(services, item.approval())
            else:
                acted = self._sweep_deployment(item)
            still_stuck = acted is None or "waiting" in acted or acted.endswith(RunStatus.PENDING.value)
            if overdue and still_stuck:
                report.ended.append(f"{label}: {self._give_up(item, stage, now - since)}")
            elif acted is None:
                report.waiting.append(f"{label}: {status.value}")
            else:
                report.continued.append(f"{label}: {status.value}: {acted}")
        finally:
            report.published += services.state.flush_version(dataset, version, discover=False)  # what giving up announced

    def _sweep_pending_approval(self, item: VersionRecord) -> str | None:
        """Ask the registry whether a person decided on the package (its state-change event may be lost)."""
        if not item.model_package_arn:
            return None
        package = self.services.sagemaker.describe_model_package(ModelPackageName=item.model_package_arn)
        status = str(package.get("ModelApprovalStatus", ""))
        if status not in evaluation.REGISTRY_DECISIONS:
            return None
        return f"package {status}: " + evaluation.on_model_package_state_change(self.services, item.model_package_arn, status)

    def _restart_training(self, item: VersionRecord) -> str:
        runs = training.start_training(self.services, item.prepared_event())
        return "start training: " + ", ".join(f"{run.training_job} {run.status}" for run in runs)

    def _sweep_runs(self, item: VersionRecord) -> str | None:
        """Ask SageMaker about each unfinished run of the current attempt and act on the answer."""
        services = self.services
        dataset, version, attempt = item.dataset, item.version, item.attempt
        prepared = item.prepared_event()
        acted: list[str] = []
        if item.tuning_job and not item.tuning_ended:
            acted.extend(self._sweep_tuning(item, prepared))
        records = services.state.list_runs(dataset, version, attempt)
        for record in records:
            run = names.RunNames(services.settings.name_prefix, dataset, version, record.run_index, attempt)
            owner = ResourceOwner(dataset, version, run.run_index, attempt)
            status = record.status
            if status == RunStatus.TRAINING:
                # A tuning job's runs carry SageMaker's name for their job; planned runs carry ours.
                training_job = record.training_job
                job = services.compute.find_training_job(training_job)
                if job is None and not self._no_capacity and not record.tuning_job:
                    # It holds a slot, but the invocation that claimed it died before creating its job.
                    started = training.start_training_job(services, prepared, owner)
                    self._no_capacity = started == RunStatus.PENDING
                    acted.append(f"start {run.training_job}: {started}")
                elif job is not None and job["TrainingJobStatus"] in FINAL_JOB_STATUSES:
                    outcome = evaluation.on_training_job_state_change(
                        services, training_job, job["TrainingJobStatus"], job.get("FailureReason"), record.tuning_job
                    )
                    acted.append(f"{training_job} {job['TrainingJobStatus']}: {outcome}")
            elif status == RunStatus.EVALUATING:
                job = services.compute.find_transform_job(run.transform_job)
                if job is None and not self._no_capacity:
                    started = evaluation.start_transform(services, run, record.model_data_url or "", record.algorithm)
                    self._no_capacity = started == "waiting"
                    acted.append(f"evaluate {run.training_job}: {started}")
                elif job is not None and job["TransformJobStatus"] in FINAL_JOB_STATUSES:
                    outcome = evaluation.on_transform_job_state_change(
                        services, run.transform_job, job["TransformJobStatus"], job.get("FailureReason")
                    )
                    acted.append(f"{run.transform_job} {job['TransformJobStatus']}: {outcome}")
        if not self._no_capacity and any(record.status == RunStatus.PENDING for record in records):
            filled = training.fill_slots(services, prepared)
            acted.extend(f"start {job}: TRAINING" for job in filled.started)
            if filled.no_capacity:
                self._no_capacity = True
                acted.append(f"retried: still {RunStatus.PENDING.value}")
        # A decision needs every run finished: only then (or after this sweep moved a run) is it worth asking.
        if all(record.status in TERMINAL_RUN_STATUSES for record in records) and not self._no_capacity:
            champion = evaluation.sweep_champion(services, item)  # the gate also waits for the champion's numbers
            if champion:
                acted.append(champion)
        if acted or all(record.status in TERMINAL_RUN_STATUSES for record in records):
            decided = evaluation.decide(services, dataset, version)
            if decided:
                acted.append(f"decided {decided}")
        return "; ".join(acted) or None

    def _sweep_tuning(self, item: VersionRecord, prepared: DatasetPrepared) -> list[str]:
        """A Bayesian search whose tuning job has not been seen to end: start it if it never was
        (no capacity, or a crash), close it if SageMaker says it ended."""
        services, name = self.services, str(item.tuning_job)
        job = services.compute.find_tuning_job(name)
        if job is None:
            if self._no_capacity:
                return []
            started = training.start_tuning(services, prepared, item.attempt)
            self._no_capacity = started == "waiting"
            return [f"start tuning job {name}: {started}"]
        status = str(job.get("HyperParameterTuningJobStatus", ""))
        if status in evaluation.FINAL_TUNING_STATUSES:
            outcome = evaluation.on_tuning_job_state_change(services, name, status, job.get("FailureReason"))
            return [f"tuning job {name} {status}: {outcome}"]
        return []

    def _sweep_deployment(self, item: VersionRecord) -> str | None:
        """A deployment whose endpoint event was lost: what DescribeEndpoint says now finishes it
        (and starts the approval waiting behind it), as the event would have."""
        services = self.services
        endpoint_name = item.endpoint_name or names.endpoint_name(services.settings.name_prefix, item.dataset)
        endpoint = services.compute.describe_endpoint(endpoint_name)
        if item.endpoint_config_name is None or endpoint is None:
            # The endpoint was never asked for (no capacity, or the invocation died): ask again.
            return "deploy: " + deployment.deploy(services, item.approval())
        status = str(endpoint.get("EndpointStatus", ""))
        outcome = deployment.on_endpoint_state_change(
            services, endpoint_name, status, endpoint.get("EndpointConfigName"), endpoint.get("FailureReason")
        )
        return None if outcome.startswith(("in progress", "waiting", "ignored")) else f"endpoint {status}: {outcome}"

    def _give_up(self, item: VersionRecord, stage: str, waited: timedelta) -> str:
        state = self.services.state
        dataset, version = item.dataset, item.version
        hours = waited.total_seconds() / 3600
        waiting_reason = f" (last answer from SageMaker: {item.waiting_reason})" if item.waiting_reason else ""
        reason = (
            f"stuck in {item.status.value}: no progress for {hours:.1f} h, longer than the {self.give_up_after.total_seconds() / 3600:g} h "
            f"allowed{waiting_reason}; `datadrop retry {dataset} {version}` starts it again"
        )
        if stage == "deployment":
            endpoint_name = item.endpoint_name or names.endpoint_name(self.services.settings.name_prefix, dataset)
            ended = state.transition_version(
                dataset,
                version,
                VersionStatus.DEPLOYMENT_FAILED,
                {VersionStatus.DEPLOYING},
                publish=[DeploymentFailed(dataset=dataset, version=version, endpoint_name=endpoint_name, reason=reason)],
                failure_reason=reason,
            )
            # The endpoint is free for the next deployment (and the newest waiting approval goes out).
            deployment.release(self.services, dataset, version)
        else:
            ended = state.transition_version(
                dataset,
                version,
                VersionStatus.FAILED,
                {item.status},
                publish=[VersionFailed(dataset=dataset, version=version, stage="training", reason=reason)],
                milestone=f"gave_up#{item.attempt}",
                failure_reason=reason,
            )
        return reason if ended else "changed meanwhile; left alone"
