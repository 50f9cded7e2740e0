"""The train step: one SageMaker Experiment run per training job, for a prepared dataset version."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aws_lambda_powertools import Logger

from datadrop import algorithms, names, observability
from datadrop.algorithms import ALGORITHM_TAG, Algorithm
from datadrop.algorithms.base import RECORDIO_PROTOBUF
from datadrop.compute import CapacityError
from datadrop.events import DatasetPrepared, RunSummary, TrainingStarted
from datadrop.experiments import PreparationRecord, RunHandle
from datadrop.search import plan_runs, plan_size, static_hyperparameters, tuning_ranges
from datadrop.services import Services
from datadrop.settings import Settings
from datadrop.state import ResourceOwner, RunStatus, VersionStatus

logger = Logger(child=True)

MAX_TRAINING_SECONDS = 3600


@dataclass(frozen=True)
class PlannedRun:
    """One run of a version: an algorithm and its hyperparameters, as a person reads them."""

    algorithm: str
    hyperparameters: dict[str, str]


def _channels(prepared: DatasetPrepared, algorithm: Algorithm) -> list[dict[str, Any]]:
    """The train and validation channels in the algorithm's format: datadrop's CSV (label first),
    standardised for the algorithms that need it, as RecordIO-protobuf for those that read only that
    (datadrop.channels)."""
    artifacts = prepared.artifacts
    if algorithm.training_content_type == RECORDIO_PROTOBUF:
        uris = {"train": artifacts.train_recordio, "validation": artifacts.validation_recordio}
    elif algorithm.standardise_features:
        uris = {"train": artifacts.train_standardised, "validation": artifacts.validation_standardised}
    else:
        uris = {"train": artifacts.train, "validation": artifacts.validation}
    if not uris["train"]:
        raise algorithms.AlgorithmError(f"{algorithm.name}'s training channels were not written by this version's prepare")
    return [
        {
            "ChannelName": name,
            "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": uri, "S3DataDistributionType": "FullyReplicated"}},
            "ContentType": algorithm.training_content_type,
            "CompressionType": "None",
        }
        for name, uri in uris.items()
        if name in algorithm.training_channels
    ]


def _job_definition(
    settings: Settings, prepared: DatasetPrepared, algorithm: Algorithm, hyperparameters: dict[str, str]
) -> dict[str, Any]:
    """What every training job of a version and algorithm shares, in a training job's or a tuning
    job's request: the algorithm's image and hyperparameters (as its container reads them), the
    train and validation channels, output under the version's prefix."""
    locations = settings.locations(prepared.dataset, prepared.version)
    launch = algorithm.training(settings.region, hyperparameters)
    return {
        "AlgorithmSpecification": launch.algorithm_specification,
        "HyperParameters": launch.hyperparameters,
        "RoleArn": settings.sagemaker_role_arn,
        "InputDataConfig": _channels(prepared, algorithm) + launch.extra_channels,
        "OutputDataConfig": {"S3OutputPath": locations.training_output_uri()},
        "ResourceConfig": {"InstanceType": settings.training_instance_type, "InstanceCount": 1, "VolumeSizeInGB": 10},
        "StoppingCondition": {"MaxRuntimeInSeconds": MAX_TRAINING_SECONDS},
    }


def _tags(prepared: DatasetPrepared, **more: str) -> list[dict[str, str]]:
    tags = {"datadrop:dataset": prepared.dataset, "datadrop:version": prepared.version, **more}
    return [{"Key": key, "Value": value} for key, value in tags.items()]


def training_job_request(
    settings: Settings, prepared: DatasetPrepared, run: names.RunNames, handle: RunHandle, planned: PlannedRun
) -> dict[str, Any]:
    """The CreateTrainingJob request for one planned run, inside its Experiments run."""
    definition = _job_definition(settings, prepared, algorithms.get(planned.algorithm), planned.hyperparameters)
    return {
        "TrainingJobName": run.training_job,
        **definition,
        "ExperimentConfig": handle.experiment_config(),
        "Tags": _tags(prepared, **{"datadrop:run": str(run.run_index), ALGORITHM_TAG: planned.algorithm}),
    }


def tuning_job_request(settings: Settings, prepared: DatasetPrepared, name: str) -> dict[str, Any]:
    """The CreateHyperParameterTuningJob request of a Bayesian search (of one algorithm: the config
    allows no more): the varied hyperparameters as ranges, the rest static, the algorithm's
    validation objective, `max_runs` jobs at most `max_parallel` at a time. Early stopping is off:
    every run trains fully, so the leaderboard compares like with like."""
    search = prepared.search
    (choice,) = prepared.algorithm_choices()
    algorithm = algorithms.get(choice.name)
    facts = prepared.data_facts()
    max_runs = plan_size(choice.hyperparameters, search)
    static = static_hyperparameters(
        choice.hyperparameters, algorithm.default_hyperparameters(facts.problem_type), algorithm.derived_hyperparameters(facts)
    )
    definition = _job_definition(settings, prepared, algorithm, static)
    return {
        "HyperParameterTuningJobName": name,
        "HyperParameterTuningJobConfig": {
            "Strategy": "Bayesian",
            "HyperParameterTuningJobObjective": algorithm.tuning_objective(prepared.problem_type),
            "ResourceLimits": {
                "MaxNumberOfTrainingJobs": max_runs,
                "MaxParallelTrainingJobs": min(search.max_parallel, max_runs),
            },
            "ParameterRanges": tuning_ranges(choice.hyperparameters),
            "TrainingJobEarlyStoppingType": "Off",
            "RandomSeed": search.seed,
        },
        "TrainingJobDefinition": {
            "StaticHyperParameters": definition.pop("HyperParameters"),
            **definition,
        },
        "Tags": _tags(prepared, **{ALGORITHM_TAG: choice.name}),
    }


def run_plan(prepared: DatasetPrepared) -> list[PlannedRun]:
    """Every run of the version: for each algorithm in turn, the runs its search space plans
    (datadrop.search) over its defaults; what the data decides (objective, class count,
    feature_dim, ...) is the same for every run of an algorithm and always wins."""
    facts = prepared.data_facts()
    plan: list[PlannedRun] = []
    for choice in prepared.algorithm_choices():
        algorithm = algorithms.get(choice.name)
        defaults = algorithm.default_hyperparameters(facts.problem_type)
        derived = algorithm.derived_hyperparameters(facts)
        plan += [
            PlannedRun(choice.name, hyperparameters)
            for hyperparameters in plan_runs(choice.hyperparameters, prepared.search, defaults, derived)
        ]
    return plan


def _enter_training(services: Services, prepared: DatasetPrepared, run_count: int, **more: Any) -> bool:
    """PREPARED (or TRAINING again, on a retry) → TRAINING, with what fan-out and fan-in read from
    the version; False, logged, when the version is past training."""
    entered = services.state.transition_version(
        prepared.dataset,
        prepared.version,
        VersionStatus.TRAINING,
        {VersionStatus.PREPARED, VersionStatus.TRAINING},
        run_count=run_count,
        max_parallel=prepared.search.max_parallel,
        threshold=prepared.threshold,
        metric=prepared.metric,
        problem_type=prepared.problem_type,
        classes=prepared.classes,
        artifacts=prepared.artifacts.model_dump(exclude_none=True),
        **more,
    )
    if not entered:
        logger.info("version is past training; nothing to do", dataset=prepared.dataset, version=prepared.version)
    return entered


def start_training(services: Services, prepared: DatasetPrepared) -> list[RunSummary]:
    """Plan the version's runs, start as many as `search.max_parallel` allows, and announce
    TrainingStarted once. The others wait (PENDING): each run that finishes training starts the
    next (`fill_slots`), and so does the sweeper.

    Re-entrant: a retried invocation finds the runs planned and the jobs created (ResourceInUse)
    and carries on. A run SageMaker has no capacity for goes back to PENDING.
    """
    state = services.state
    observability.correlate(prepared.dataset, prepared.version)
    try:
        version_item = state.get_version(prepared.dataset, prepared.version)
        if version_item is None:
            logger.info("no such dataset version; ignored", dataset=prepared.dataset, version=prepared.version)
            return []
        attempt = version_item.attempt
        if prepared.search.strategy == "bayesian":
            if not version_item.tuning_ended:  # a late duplicate must not reopen an ended search
                start_tuning(services, prepared, attempt)
            return []
        plan = run_plan(prepared)
        if not _enter_training(services, prepared, run_count=len(plan)):
            return []
        settings = services.settings
        for run_index, planned in enumerate(plan, start=1):
            run = names.RunNames(settings.name_prefix, prepared.dataset, prepared.version, run_index, attempt)
            # The name → run mapping exists before the job does, so every event about the job finds its run.
            state.map_resource(
                "training-job", run.training_job, ResourceOwner(prepared.dataset, prepared.version, run_index, attempt)
            )
            state.plan_run(
                prepared.dataset,
                prepared.version,
                run_index,
                attempt,
                {
                    "training_job": run.training_job,
                    "run_name": run.run_name,
                    "algorithm": planned.algorithm,
                    "hyperparameters": planned.hyperparameters,
                },
            )
        fill_slots(services, prepared)
        summaries = [
            RunSummary(
                run_index=record.run_index,
                run_name=record.run_name,
                training_job=record.training_job,
                status=record.status,
                hyperparameters=record.hyperparameters,
                algorithm=record.algorithm,
            )
            for record in state.list_runs(prepared.dataset, prepared.version, attempt)
        ]
        state.record(
            state.version_item(prepared.dataset, prepared.version),
            f"training_started#{attempt}",
            publish=[
                TrainingStarted(
                    dataset=prepared.dataset,
                    version=prepared.version,
                    experiment_name=names.experiment_name(settings.name_prefix, prepared.dataset),
                    run_group=names.run_group_name(settings.name_prefix, prepared.dataset, prepared.version),
                    runs=summaries,
                )
            ],
        )
        return summaries
    finally:
        state.flush_version(prepared.dataset, prepared.version)


def preparation_record(prefix: str, prepared: DatasetPrepared) -> PreparationRecord:
    """The data preparation of a version, for its run group (see ExperimentTracker.ensure_run_group)."""
    parameters = {
        "problem_type": prepared.problem_type,
        "classes": str(len(prepared.classes)),
        **{f"rows_{split}": str(count) for split, count in prepared.rows.items()},
    }
    quality = prepared.quality
    if quality is not None:
        parameters |= {
            "detected": quality.detected,
            "rows_read": str(quality.rows_read),
            "rows_usable": str(quality.rows_usable),
            **{f"rows_dropped_{reason}": str(count) for reason, count in quality.rows_dropped.items()},
            "features": str(quality.features),
            "columns_dropped": str(len(quality.dropped_columns)),
            "warnings": str(quality.warnings),
        }
    source = prepared.source
    artifacts = prepared.artifacts
    return PreparationRecord(
        component_name=names.preparation_component_name(prefix, prepared.dataset, prepared.version),
        display_name=f"{prepared.version}-prepare",
        parameters=parameters,
        inputs={"upload": f"s3://{source.bucket}/{source.key}"},
        outputs={
            "quality-report": artifacts.profile,
            "recipe": artifacts.recipe,
            "train": artifacts.train,
            "validation": artifacts.validation,
            "test": artifacts.test,
        },
    )


def start_tuning(services: Services, prepared: DatasetPrepared, attempt: int) -> str:
    """A Bayesian search: one SageMaker hyperparameter tuning job. Its training jobs become the
    version's runs as they appear (evaluation.adopt_tuning_training_job), and its end fixes how
    many runs the decision waits for. Re-entrant like start_training; the caller flushes.
    Returns the tuning job's state as far as datadrop knows: "started" or "waiting"."""
    state, settings = services.state, services.settings
    name = names.tuning_job_name(settings.name_prefix, prepared.dataset, prepared.version, attempt)
    request = tuning_job_request(settings, prepared, name)
    max_runs = request["HyperParameterTuningJobConfig"]["ResourceLimits"]["MaxNumberOfTrainingJobs"]
    if not _enter_training(services, prepared, run_count=max_runs, tuning_job=name):  # max_runs: a bound until it ends
        return "past"
    state.map_resource("tuning-job", name, ResourceOwner(prepared.dataset, prepared.version, 0, attempt))
    handle = services.experiments.handle(prepared.dataset, prepared.version, 1, attempt)
    try:
        services.experiments.ensure_run_group(
            handle,
            prepared.dataset,
            prepared.version,
            prepared.experiment,
            preparation_record(settings.name_prefix, prepared),
        )
        created = services.compute.start_tuning_job(request)
    except CapacityError as error:
        logger.warning("SageMaker has no capacity for the tuning job now; it waits", job=name, reason=str(error))
        state.set_attributes(state.version_item(prepared.dataset, prepared.version), waiting_reason=str(error))
        observability.count("RunsWaitingForCapacity")
        return "waiting"
    logger.info("tuning job", job=name, newly_created=created, max_runs=max_runs)
    state.record(
        state.version_item(prepared.dataset, prepared.version),
        f"training_started#{attempt}",
        publish=[
            TrainingStarted(
                dataset=prepared.dataset,
                version=prepared.version,
                experiment_name=handle.experiment_name,
                run_group=handle.run_group,
                runs=[],
                tuning_job=name,
                max_runs=max_runs,
            )
        ],
    )
    return "started"


@dataclass(frozen=True)
class Filled:
    started: list[str]  # the training jobs started
    no_capacity: bool  # SageMaker refused a start: the rest wait for the sweeper


def fill_slots_of(services: Services, dataset: str, version: str) -> Filled:
    """fill_slots for a version known by name (a run just gave its slot back)."""
    item = services.state.get_version(dataset, version)
    if item is None or item.status != VersionStatus.TRAINING or item.prepared is None:
        return Filled([], no_capacity=False)
    return fill_slots(services, item.prepared_event())


def fill_slots(services: Services, prepared: DatasetPrepared) -> Filled:
    """Start PENDING runs, lowest index first, while the version has free training slots and
    SageMaker has capacity. Safe to call from anywhere, any number of times, concurrently: each
    start claims its slot in one transaction."""
    state = services.state
    version_item = state.get_version(prepared.dataset, prepared.version)
    if version_item is None or version_item.status != VersionStatus.TRAINING:
        return Filled([], no_capacity=False)
    attempt = version_item.attempt
    max_parallel = version_item.max_parallel or prepared.search.max_parallel
    if version_item.tuning_job or version_item.running >= max_parallel:
        return Filled([], no_capacity=False)  # SageMaker's tuning job starts its runs; or no free slot
    if version_item.started >= (version_item.run_count or 0):
        return Filled([], no_capacity=False)  # every run has started: none is PENDING
    started: list[str] = []
    for run in state.run_states(prepared.dataset, prepared.version, attempt):
        if run.status != RunStatus.PENDING:
            continue
        owner = ResourceOwner(prepared.dataset, prepared.version, run.run_index, attempt)
        claim = state.claim_training_slot(owner.dataset, owner.version, owner.run_index, attempt, max_parallel)
        if claim == "full":
            break
        if claim == "taken":
            continue  # another invocation started it
        if start_training_job(services, prepared, owner) != RunStatus.TRAINING:
            return Filled(started, no_capacity=True)  # the sweeper goes on later
        started.append(
            names.RunNames(services.settings.name_prefix, owner.dataset, owner.version, owner.run_index, attempt).training_job
        )
    return Filled(started, no_capacity=False)


def start_training_job(services: Services, prepared: DatasetPrepared, owner: ResourceOwner) -> str:
    """Start a run that holds a training slot (TRAINING): its Experiments run, then CreateTrainingJob.
    Returns the run's status afterwards: PENDING, with its slot given back, when SageMaker has no
    capacity now."""
    settings, state = services.settings, services.state
    run = names.RunNames(settings.name_prefix, owner.dataset, owner.version, owner.run_index, owner.attempt)
    handle = services.experiments.handle(owner.dataset, owner.version, owner.run_index, owner.attempt)
    record = state.get_run(owner.dataset, owner.version, owner.run_index)
    planned = PlannedRun(record.algorithm, record.hyperparameters) if record else PlannedRun(algorithms.DEFAULT_ALGORITHM, {})
    try:
        # Experiment, run group and run first (each only if absent): the job runs inside the run.
        services.experiments.start_run(
            handle,
            prepared.dataset,
            prepared.version,
            parameters={"algorithm": planned.algorithm, **planned.hyperparameters},
            inputs={
                "train": prepared.artifacts.train,
                "validation": prepared.artifacts.validation,
                "test": prepared.artifacts.test,
            },
            settings=prepared.experiment,
            preparation=preparation_record(settings.name_prefix, prepared),
        )
        created = services.compute.start_training_job(training_job_request(settings, prepared, run, handle, planned))
    except CapacityError as error:
        logger.warning("SageMaker has no capacity for the training job now; it waits", job=run.training_job, reason=str(error))
        state.leave_training(
            owner.dataset, owner.version, owner.run_index, owner.attempt, RunStatus.PENDING, waiting_reason=str(error)
        )
        observability.count("RunsWaitingForCapacity")
        return RunStatus.PENDING.value
    logger.info("training job", job=run.training_job, newly_created=created)
    if created:
        observability.count("RunsStarted")
    return RunStatus.TRAINING.value
