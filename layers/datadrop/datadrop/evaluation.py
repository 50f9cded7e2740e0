"""The evaluate step: score each finished run on the held-out test rows, then decide.

A Completed training job gets a SageMaker model (the built-in XGBoost image running datadrop's
inference script: the exact artefact an endpoint would serve) and a batch transform of the raw
test rows. When the transform completes, its predictions are scored against labels training
never saw (datadrop.scoring: streamed, a report in SageMaker Model Quality's layout). When every
run of the version is done, the best run goes through the gate: it must pass the threshold and,
when the dataset's endpoint already serves a model (the champion), beat that model re-scored on
this version's test split by the configured margin. The best run is registered in the dataset's
model package group either way, with its report: Approved (ModelApproved), Rejected
(ModelRejected), or, with `approval: manual`, PendingManualApproval (ModelPendingApproval) until a
person approves or rejects it; the registry's "SageMaker Model Package State Change" then becomes
ModelApproved or ModelRejected here.
"""

from __future__ import annotations

import hashlib
from typing import Any

from aws_lambda_powertools import Logger
from botocore.exceptions import ClientError

from datadrop import algorithms, names, observability, scoring, training
from datadrop.algorithms.images import sklearn_image_uri
from datadrop.compute import CapacityError, raise_capacity_or
from datadrop.events import (
    ChampionScore,
    DatadropEvent,
    ModelApproved,
    ModelDecision,
    ModelPendingApproval,
    ModelRejected,
    RunEvaluated,
    RunSummary,
    VersionFailed,
)
from datadrop.metrics import beats, better_first_key, champion_comparison, comparison, passes, spec
from datadrop.services import Services
from datadrop.serving import (
    DEFAULT_ACCEPT,
    DEFAULT_ACCEPT_VARIABLE,
    POSTPROCESS,
    PREPROCESS,
    container_environment,
    stage_environment,
)
from datadrop.state import (
    TERMINAL_RUN_STATUSES,
    ChampionRecord,
    ChampionStatus,
    ResourceOwner,
    RunRecord,
    RunStatus,
    VersionRecord,
    VersionStatus,
)
from datadrop.storage import split_s3_uri

logger = Logger(child=True)

PREDICTIONS_ACCEPT = "application/jsonlines"


# ---------------------------------------------------------------------------------------------
# Pure logic
# ---------------------------------------------------------------------------------------------
def score(labels: list[str], predictions: list[dict[str, Any]], classes: list[str]) -> dict[str, Any]:
    """Classification metrics of predictions ({label, probabilities}) against the true labels
    (datadrop.scoring.ClassificationScorer, on lists)."""
    return scoring.score_stream("multiclass", classes, labels, predictions)


def headline_metrics(report: dict[str, Any], problem_type: str | None) -> dict[str, float]:
    """The metrics a run is compared, judged and logged (`test:<name>`) by; an undefined one is left out."""
    return scoring.scalars(report, problem_type)


def serving_containers(
    services: Services, algorithm_name: str, problem_type: str, model_data_url: str, serving_bundle: str
) -> list[dict[str, Any]]:
    """The containers of a model: the SageMaker model (batch transform, endpoint) and the model
    package in the registry are built from them. Either way, clients send raw rows and get answers
    in the dataset's own labels.

    XGBoost: one container, script mode: datadrop's inference script turns raw rows into features
    with the recipe and answers. Every other algorithm: an inference pipeline: datadrop's script in
    the scikit-learn container (preprocess: raw rows to features in the algorithm's request format),
    the algorithm's own container, datadrop's script again (postprocess: the algorithm's answer to
    labels and probabilities). SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT sets what each container answers
    the next one; the client's Accept reaches the last."""
    region = services.settings.region
    algorithm = algorithms.get(algorithm_name)
    own = algorithm.inference_container(region, model_data_url, problem_type)
    formats = algorithm.response
    if algorithm.serving == "script" or formats is None:
        return [{**own, "Environment": {**container_environment(serving_bundle), "SAGEMAKER_REGION": region}}]

    def stage(name: str, default_accept: str) -> dict[str, Any]:
        environment = stage_environment(serving_bundle, name, algorithm.name, algorithm.stage_settings(), default_accept)
        return {
            "Image": sklearn_image_uri(region),
            "ModelDataUrl": serving_bundle,
            "Environment": {**environment, "SAGEMAKER_REGION": region},
        }

    own_environment = {**own.get("Environment", {}), DEFAULT_ACCEPT_VARIABLE: formats.accept}
    return [
        stage(PREPROCESS, formats.request_content_type),
        {**own, "Environment": own_environment},
        stage(POSTPROCESS, DEFAULT_ACCEPT),
    ]


def model_request(
    services: Services, run: names.RunNames, algorithm_name: str, problem_type: str, model_data_url: str, serving_bundle: str
) -> dict[str, Any]:
    containers = serving_containers(services, algorithm_name, problem_type, model_data_url, serving_bundle)
    placement: dict[str, Any] = (
        {"PrimaryContainer": containers[0]}
        if len(containers) == 1
        else {"Containers": containers, "InferenceExecutionConfig": {"Mode": "Serial"}}
    )
    return {
        "ModelName": run.model,
        **placement,
        "ExecutionRoleArn": services.settings.sagemaker_role_arn,
        "Tags": [{"Key": "datadrop:dataset", "Value": run.dataset}, {"Key": "datadrop:version", "Value": run.version}],
    }


def transform_request(
    services: Services, run: names.RunNames, test_uri: str, experiment_config: dict[str, str]
) -> dict[str, Any]:
    locations = services.settings.locations(run.dataset, run.version)
    return batch_transform_request(
        services, run.dataset, run.version, run.transform_job, run.model, test_uri,
        locations.evaluation_output_uri(run.label), experiment_config,
    )  # fmt: skip


def batch_transform_request(
    services: Services,
    dataset: str,
    version: str,
    job_name: str,
    model_name: str,
    test_uri: str,
    output_uri: str,
    experiment_config: dict[str, str] | None = None,
) -> dict[str, Any]:
    """A batch transform of the raw test rows by a model, predictions as JSON Lines (a run's, or the champion's)."""
    settings = services.settings
    request: dict[str, Any] = {
        "TransformJobName": job_name,
        "ModelName": model_name,
        "BatchStrategy": "MultiRecord",
        "MaxPayloadInMB": 6,
        "TransformInput": {
            "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": test_uri}},
            "ContentType": names.held_out_content_type(test_uri),
            "SplitType": "Line",
        },
        "TransformOutput": {"S3OutputPath": output_uri, "Accept": PREDICTIONS_ACCEPT, "AssembleWith": "Line"},
        "TransformResources": {"InstanceType": settings.transform_instance_type, "InstanceCount": 1},
        "Tags": [{"Key": "datadrop:dataset", "Value": dataset}, {"Key": "datadrop:version", "Value": version}],
    }
    if experiment_config:
        request["ExperimentConfig"] = experiment_config
    return request


def _output_uri(services: Services, dataset: str, version: str, label: str, test_uri: str) -> str:
    """Where a batch transform of the test split wrote its predictions: <output path>/<input file>.out."""
    test_file = split_s3_uri(test_uri)[1].rsplit("/", 1)[-1]
    return services.settings.locations(dataset, version).evaluation_output_uri(label) + f"{test_file}.out"


def score_output(services: Services, version: VersionRecord, output_uri: str) -> dict[str, Any]:
    """Stream the predictions and the test labels from S3 and score them (datadrop.scoring)."""
    truths = scoring.iter_json_array(services.objects.stream_uri(version.artifacts["test_labels"]))
    predictions = scoring.iter_json_lines(services.objects.stream_uri(output_uri))
    return scoring.score_stream(version.problem_type, [str(label) for label in version.classes], truths, predictions)


# ---------------------------------------------------------------------------------------------
# Event handling
# ---------------------------------------------------------------------------------------------
# Statuses that say nothing final about a job: they are not evaluate's business.
TRAINING_FAILED = frozenset({"Failed", "Stopped"})
TRANSFORM_FAILED = frozenset({"Failed", "Stopped"})


class NotOurs(Exception):
    """The event is about something datadrop does not own or no longer waits for: ignore it."""


def _owned_run(services: Services, kind: str, job_name: str) -> tuple[names.RunNames, RunRecord]:
    """The run a job belongs to, by lookup (never by parsing the name), and only its current attempt."""
    owner = services.state.find_resource(kind, job_name)
    if owner is None:
        raise NotOurs(f"{kind} {job_name} is not one of ours")
    record = services.state.get_run(owner.dataset, owner.version, owner.run_index)
    if record is None or record.attempt != owner.attempt:
        raise NotOurs(f"{kind} {job_name} belongs to an earlier attempt of its run")
    run = names.RunNames(services.settings.name_prefix, owner.dataset, owner.version, owner.run_index, owner.attempt)
    observability.correlate(owner.dataset, owner.version)
    return run, record


def on_training_job_state_change(
    services: Services, job_name: str, status: str, failure_reason: str | None, tuning_job: str | None = None
) -> str:
    final = status == "Completed" or status in TRAINING_FAILED
    if tuning_job:
        # A training job of one of our tuning jobs: it becomes a run of the version on first sight.
        try:
            adopted = adopt_tuning_training_job(services, job_name, tuning_job)
        except CapacityError as error:
            # Adopted, or not yet: either way its next event, or the sweeper, finishes the adoption.
            logger.warning("SageMaker is throttling the run's creation; it waits", job=job_name, reason=str(error))
            return "waiting"
        if adopted is None:
            logger.info(f"training-job {job_name} belongs to no tuning job of ours that is still searching; ignored")
            return "ignored"
        if not final:
            return "adopted"
    if not final:
        return "ignored"  # InProgress, Stopping: not final
    try:
        run, record = _owned_run(services, "training-job", job_name)
    except NotOurs as not_ours:
        logger.info(f"{not_ours}; ignored")
        return "ignored"
    try:
        if status != "Completed":
            reason = failure_reason or services.compute.describe_training_job(job_name).get("FailureReason") or status
            return _fail_run(services, run, record, "training", status, reason)
        return _evaluate_trained_model(services, run, record, job_name)
    finally:
        services.state.flush_version(run.dataset, run.version, run.run_index)


def adopt_tuning_training_job(services: Services, job_name: str, tuning_job: str) -> ResourceOwner | None:
    """Make a training job that our tuning job launched a run of its version: the next run index,
    the job's hyperparameters (as SageMaker chose them), and its Experiments run in the version's
    run group. Idempotent, and it finishes an adoption that was interrupted (by a crash, or by
    SageMaker throttling the run's creation). None when the tuning job is not ours or its version
    stopped searching."""
    state = services.state
    known = state.find_resource("training-job", job_name)
    if known is not None:
        known_record = state.get_run(known.dataset, known.version, known.run_index)
        if known_record is not None and "experiment_run" in known_record.milestones:
            return known  # adopted before, completely
    tuning_owner = state.find_resource("tuning-job", tuning_job)
    if tuning_owner is None:
        return None
    dataset, version, attempt = tuning_owner.dataset, tuning_owner.version, tuning_owner.attempt
    version_item = state.get_version(dataset, version)
    if version_item is None or version_item.status != VersionStatus.TRAINING or version_item.attempt != attempt:
        return None
    observability.correlate(dataset, version)
    job = services.compute.describe_training_job(job_name)
    described_tuning_job = str(job.get("TuningJobArn") or "").rsplit("/", 1)[-1]
    if described_tuning_job and described_tuning_job != tuning_job:
        return None  # SageMaker says the job belongs to another tuning job: trust the description
    (choice,) = version_item.prepared_event().algorithm_choices()  # a tuning job searches one algorithm
    algorithm = algorithms.get(choice.name)
    hyperparameters = algorithm.plain_hyperparameters(
        {key: str(value) for key, value in (job.get("HyperParameters") or {}).items()}
    )
    prefix = services.settings.name_prefix
    owner = state.adopt_run(
        dataset,
        version,
        attempt,
        "training-job",
        job_name,
        lambda run_index: {
            "training_job": job_name,
            "run_name": names.RunNames(prefix, dataset, version, run_index, attempt).run_name,
            "algorithm": algorithm.name,
            "hyperparameters": hyperparameters,
            "tuning_job": tuning_job,
        },
    )
    if owner is None:
        return None
    record = state.get_run(dataset, version, owner.run_index)
    if record is not None and "experiment_run" not in record.milestones:
        prepared = version_item.prepared_event()
        services.experiments.start_run(
            services.experiments.handle(dataset, version, owner.run_index, attempt),
            dataset,
            version,
            parameters={"algorithm": algorithm.name, **hyperparameters},
            inputs={
                "train": prepared.artifacts.train,
                "validation": prepared.artifacts.validation,
                "test": prepared.artifacts.test,
            },
            settings=prepared.experiment,
            group_exists=True,  # train made the experiment and run group before the tuning job
        )
        state.record(state.run_item(dataset, version, owner.run_index), "experiment_run")
        observability.count("RunsAdopted")
        logger.info("tuning job's training job adopted as a run", job=job_name, run_index=owner.run_index)
    return owner


FINAL_TUNING_STATUSES = frozenset({"Completed", "Failed", "Stopped"})


def on_tuning_job_state_change(services: Services, tuning_job: str, status: str, failure_reason: str | None) -> str:
    """The tuning job of a Bayesian search ended: every training job it launched is a run (any
    whose events were lost is adopted and caught up now), their number is what the decision
    waits for, and the decision is made once they are all evaluated."""
    if status not in FINAL_TUNING_STATUSES:
        return "ignored"
    state = services.state
    owner = state.find_resource("tuning-job", tuning_job)
    version_item = state.get_version(owner.dataset, owner.version) if owner else None
    if owner is None or version_item is None:
        logger.info(f"tuning job {tuning_job} is not one of ours; ignored")
        return "ignored"
    if version_item.status != VersionStatus.TRAINING or version_item.attempt != owner.attempt:
        logger.info(f"tuning job {tuning_job} belongs to a version that is no longer searching with it; ignored")
        return "ignored"
    observability.correlate(owner.dataset, owner.version)
    try:
        return close_tuning(services, owner, tuning_job, status, failure_reason)
    finally:
        state.flush_version(owner.dataset, owner.version)


def close_tuning(services: Services, owner: ResourceOwner, tuning_job: str, status: str, failure_reason: str | None) -> str:
    state = services.state
    jobs = services.compute.list_tuning_training_jobs(tuning_job)
    for summary in jobs:
        job_name, job_status = summary["TrainingJobName"], summary["TrainingJobStatus"]
        run_owner = state.find_resource("training-job", job_name)
        record = state.get_run(owner.dataset, owner.version, run_owner.run_index) if run_owner else None
        if run_owner is None or (record is not None and record.status == RunStatus.TRAINING):
            # Never seen, or its final event was lost: do now what those events would have done.
            on_training_job_state_change(services, job_name, job_status, summary.get("FailureReason"), tuning_job)
    ended: dict[str, Any] = {"tuning_ended": status, "run_count": len(jobs)}
    if failure_reason and status != "Completed":
        ended["tuning_failure_reason"] = failure_reason
    state.record(state.version_item(owner.dataset, owner.version), f"tuning_ended#{owner.attempt}", **ended)
    logger.info("tuning job ended", job=tuning_job, status=status, runs=len(jobs))
    return decide(services, owner.dataset, owner.version) or f"tuning {status}"


def _evaluate_trained_model(services: Services, run: names.RunNames, record: RunRecord, job_name: str) -> str:
    """A Completed training job: log its metrics, make its model, and score the test split with it."""
    state = services.state
    handle = services.experiments.handle(run.dataset, run.version, run.run_index, run.attempt)
    job = services.compute.describe_training_job(job_name)
    model_data_url = job["ModelArtifacts"]["S3ModelArtifacts"]
    training_metrics = {metric["MetricName"]: float(metric["Value"]) for metric in job.get("FinalMetricDataList", [])}
    if record.status == RunStatus.TRAINING:
        # The run gives its training slot back in the same write, and the next run takes it.
        if not state.leave_training(
            run.dataset,
            run.version,
            run.run_index,
            run.attempt,
            RunStatus.EVALUATING,
            model_data_url=model_data_url,
            training_metrics=training_metrics,
        ):
            return "duplicate"
        services.experiments.log_metrics(handle, training_metrics)
        training.fill_slots_of(services, run.dataset, run.version)
        _champion_early(services, run.dataset, run.version)
    elif record.status != RunStatus.EVALUATING:
        return "duplicate"
    # Re-entrant from EVALUATING: a retry after a failure half-way redoes the (idempotent) creates.
    return start_transform(services, run, model_data_url, record.algorithm)


def start_transform(services: Services, run: names.RunNames, model_data_url: str, algorithm: str) -> str:
    """CreateModel and CreateTransformJob for an EVALUATING run; waits (sweeper) when SageMaker has no capacity."""
    state = services.state
    owner = ResourceOwner(run.dataset, run.version, run.run_index, run.attempt)
    handle = services.experiments.handle(run.dataset, run.version, run.run_index, run.attempt)
    version = state.get_version(run.dataset, run.version)
    if version is None:
        raise NotOurs(f"version {run.version} of {run.dataset} is gone")
    artifacts = version.artifacts
    state.map_resource("transform-job", run.transform_job, owner)
    state.map_resource("model", run.model, owner)
    try:
        services.compute.create_model(
            model_request(services, run, algorithm, version.problem_type or "binary", model_data_url, artifacts["serving_bundle"])
        )
        services.compute.start_transform_job(transform_request(services, run, artifacts["test"], handle.experiment_config()))
    except CapacityError as error:
        logger.warning("SageMaker has no capacity for the evaluation now; it waits", job=run.transform_job, reason=str(error))
        state.set_attributes(state.run_item(run.dataset, run.version, run.run_index), waiting_reason=str(error))
        return "waiting"
    return "evaluating"


def on_transform_job_state_change(services: Services, job_name: str, status: str, failure_reason: str | None) -> str:
    if status != "Completed" and status not in TRANSFORM_FAILED:
        return "ignored"
    try:
        run, record = _owned_run(services, "transform-job", job_name)
    except NotOurs as not_ours:
        champion = services.state.find_champion_transform(job_name)
        if champion is not None:
            return on_champion_transform(services, *champion, job_name, status, failure_reason)
        logger.info(f"{not_ours}; ignored")
        return "ignored"
    try:
        if status != "Completed":
            reason = failure_reason or services.compute.describe_transform_job(job_name).get("FailureReason") or status
            return _fail_run(services, run, record, "evaluation", status, reason)
        return _score_run(services, run, record)
    finally:
        services.state.flush_version(run.dataset, run.version, run.run_index)


def _score_run(services: Services, run: names.RunNames, record: RunRecord) -> str:
    state, settings = services.state, services.settings
    if record.status != RunStatus.EVALUATING:
        decide(services, run.dataset, run.version)  # a retry: make sure the decision was made
        return "duplicate"
    handle = services.experiments.handle(run.dataset, run.version, run.run_index, run.attempt)
    version = state.get_version(run.dataset, run.version)
    if version is None:
        raise NotOurs(f"version {run.version} of {run.dataset} is gone")
    artifacts = version.artifacts
    locations = settings.locations(run.dataset, run.version)
    try:
        result = score_output(services, version, _output_uri(services, run.dataset, run.version, run.label, artifacts["test"]))
    except scoring.ScoringError as error:
        return _fail_run(services, run, record, "evaluation", "unscorable", str(error))
    model_data_url = record.model_data_url or ""
    about = {"model": model_data_url, "test": artifacts["test"], "run": run.run_name}
    report = scoring.model_quality_report(result, version.problem_type, about)
    report_uri = services.objects.write_json(settings.artifact_bucket_name, locations.report_key(run.label), report)
    headline = headline_metrics(result, version.problem_type)
    # The evaluation has an identity of its own (model x test split), for comparisons across versions.
    evaluation_id = names.evaluation_id(model_data_url, artifacts["test"])
    state.record_evaluation(
        run.dataset,
        evaluation_id,
        {
            "model_data_url": model_data_url,
            "test": artifacts["test"],
            "version": run.version,
            "run_index": run.run_index,
            "attempt": run.attempt,
            "metric": version.metric,
            "metrics": headline,
            "report": report_uri,
            "rows": result["rows"],
        },
    )
    services.experiments.log_metrics(handle, {f"test:{name}": value for name, value in headline.items()})
    services.experiments.finish_run(handle, succeeded=True, outputs={"model": model_data_url, "evaluation": report_uri})
    summary = _summary(
        record.model_copy(update={"status": RunStatus.EVALUATED, "metrics": headline, "evaluation_id": evaluation_id})
    )
    evaluated = state.transition_run(
        run.dataset,
        run.version,
        run.run_index,
        RunStatus.EVALUATED,
        {RunStatus.EVALUATING},
        attempt=run.attempt,
        publish=[
            RunEvaluated(dataset=run.dataset, version=run.version, run=summary, report=report_uri, evaluation_id=evaluation_id)
        ],
        metrics=headline,
        report=report_uri,
        evaluation_id=evaluation_id,
    )
    if evaluated:
        observability.count("RunsEvaluated")
    decide(services, run.dataset, run.version)
    return "evaluated" if evaluated else "duplicate"


def _fail_run(services: Services, run: names.RunNames, record: RunRecord, stage: str, status: str, reason: str) -> str:
    """A training or transform job ended without success: the run fails, with SageMaker's reason."""
    handle = services.experiments.handle(run.dataset, run.version, run.run_index, run.attempt)
    failure_reason = f"{stage} {status}: {reason}"
    state = services.state
    if record.status == RunStatus.TRAINING:
        failed = state.leave_training(
            run.dataset, run.version, run.run_index, run.attempt, RunStatus.FAILED, failure_reason=failure_reason
        )
        if failed:
            training.fill_slots_of(services, run.dataset, run.version)
    else:
        failed = state.transition_run(
            run.dataset,
            run.version,
            run.run_index,
            RunStatus.FAILED,
            {RunStatus.EVALUATING},
            attempt=run.attempt,
            failure_reason=failure_reason,
        )
    if failed:
        observability.count("RunsFailed")
        services.experiments.finish_run(handle, succeeded=False, outputs={}, message=reason)
    decide(services, run.dataset, run.version)  # also on a retry: make sure the decision was made
    return "failed" if failed else "duplicate"


def _summary(record: RunRecord) -> RunSummary:
    return RunSummary(
        run_index=record.run_index,
        run_name=record.run_name,
        training_job=record.training_job,
        status=record.status,
        hyperparameters=record.hyperparameters,
        algorithm=record.algorithm,
        metrics=record.metrics,
        model_data_url=record.model_data_url,
        failure_reason=record.failure_reason,
        evaluation_id=record.evaluation_id,
    )


def choose_best(runs: list[RunSummary], metric: str) -> RunSummary | None:
    """The best metric wins (the highest accuracy, the lowest rmse); ties go to the earlier run."""
    scored = [run for run in runs if run.status == RunStatus.EVALUATED and metric in run.metrics]
    return min(scored, key=lambda run: (better_first_key(metric, run.metrics[metric]), run.run_index), default=None)


def write_leaderboard(
    services: Services, dataset: str, version: str, runs: list[RunSummary], metric: str, threshold: float, best: RunSummary | None
) -> str:
    """Every run of the version, best first, as JSON next to the version's artefacts."""

    def rank(run: RunSummary) -> tuple[bool, float, int]:
        value = run.metric_or(metric)
        return (value is None, better_first_key(metric, value) if value is not None else 0.0, run.run_index)

    ranked = sorted(runs, key=rank)
    document = {
        "dataset": dataset,
        "version": version,
        "metric": metric,
        "higher_is_better": spec(metric).higher_is_better,
        "threshold": threshold,
        "best_run": best.run_index if best else None,
        "runs": [run.model_dump(mode="json") for run in ranked],
    }
    locations = services.settings.locations(dataset, version)
    return services.objects.write_json(services.settings.artifact_bucket_name, locations.key(locations.LEADERBOARD), document)


# ---------------------------------------------------------------------------------------------
# The champion: the model the dataset's endpoint serves, re-scored on the new test split
# ---------------------------------------------------------------------------------------------
def current_champion(services: Services, dataset: str, version: str) -> ResourceOwner | None:
    """The run whose model the dataset's endpoint serves now (its endpoint config, by lookup);
    None when the dataset has no endpoint yet, or it serves this very version."""
    endpoint = services.compute.describe_endpoint(names.endpoint_name(services.settings.name_prefix, dataset))
    config = (endpoint or {}).get("EndpointConfigName")
    owner = services.state.find_resource("endpoint-config", str(config)) if config else None
    if owner is None or owner.dataset != dataset or owner.version == version:
        return None
    return owner


def champion_evaluation(services: Services, item: VersionRecord) -> tuple[ResourceOwner | None, ChampionRecord | None]:
    """The current champion and its evaluation on `item`'s test split, started when there is none yet."""
    owner = current_champion(services, item.dataset, item.version)
    if owner is None:
        return None, None
    record = services.state.get_champion(item.dataset, item.version, owner.version)
    if record is None:
        record = start_champion(services, item, owner)
    return owner, record


def start_champion(services: Services, item: VersionRecord, owner: ResourceOwner, restart: bool = False) -> ChampionRecord:
    """A batch transform of the champion's model on `item`'s test split, scored like a run when it
    ends (on_champion_transform) and never a candidate itself. Idempotent."""
    state, settings = services.state, services.settings
    champion_run = state.get_run(owner.dataset, owner.version, owner.run_index)
    champion_item = state.get_version(owner.dataset, owner.version)
    names_of = names.RunNames(settings.name_prefix, owner.dataset, owner.version, owner.run_index, owner.attempt)
    job = names.champion_transform_job(settings.name_prefix, item.dataset, item.version, owner.version)
    record = ChampionRecord(
        dataset=item.dataset,
        version=item.version,
        champion_version=owner.version,
        champion_run_index=owner.run_index,
        champion_attempt=owner.attempt,
        status=ChampionStatus.EVALUATING,
        model_name=names_of.model,
        model_data_url=(champion_run.model_data_url if champion_run else None) or "",
        transform_job=job,
    )
    if not state.start_champion(record) and not restart:
        return state.get_champion(item.dataset, item.version, owner.version) or record
    bundle = (champion_item.artifacts if champion_item else {}).get("serving_bundle")
    if not record.model_data_url or not bundle:
        why = f"version {owner.version}'s run {owner.run_index} has no model or serving bundle on record"
        state.finish_champion(item.dataset, item.version, owner.version, ChampionStatus.FAILED, failure_reason=why)
        return record.model_copy(update={"status": ChampionStatus.FAILED, "failure_reason": why})
    output = settings.locations(item.dataset, item.version).evaluation_output_uri(names.champion_label(owner.version))
    try:
        # The champion's model exists since its own evaluation; made again if someone deleted it.
        algorithm = champion_run.algorithm if champion_run else algorithms.DEFAULT_ALGORITHM
        problem_type = (champion_item.problem_type if champion_item else None) or item.problem_type or "binary"
        services.compute.create_model(model_request(services, names_of, algorithm, problem_type, record.model_data_url, bundle))
        services.compute.start_transform_job(
            batch_transform_request(services, item.dataset, item.version, job, names_of.model, item.artifacts["test"], output)
        )
    except CapacityError as error:
        logger.warning("SageMaker has no capacity to re-score the champion now; it waits", job=job, reason=str(error))
        state.set_attributes(state.champion_item(item.dataset, item.version, owner.version), waiting_reason=str(error))
    logger.info("champion re-scored on the new test split", champion=owner.version, job=job)
    return record


def sweep_champion(services: Services, item: VersionRecord) -> str | None:
    """The sweeper's look at a version waiting for its champion's numbers: start the transform if it
    was never created (no capacity, or a crash), or finish it if its event was lost."""
    owner = current_champion(services, item.dataset, item.version)
    record = services.state.get_champion(item.dataset, item.version, owner.version) if owner else None
    if owner is None or record is None or record.status != ChampionStatus.EVALUATING:
        return None
    job = services.compute.find_transform_job(record.transform_job)
    if job is None:
        start_champion(services, item, owner, restart=True)
        return f"champion {owner.version}: transform started"
    status = str(job.get("TransformJobStatus", ""))
    if status in ("Completed", *TRANSFORM_FAILED):
        outcome = on_champion_transform(
            services, item.dataset, item.version, owner.version, record.transform_job, status, job.get("FailureReason")
        )
        return f"champion {owner.version}: {outcome}"
    return None


def _champion_early(services: Services, dataset: str, version: str) -> None:
    """Start the champion's evaluation with the version's first evaluation, so it runs alongside the
    runs' (the decision re-checks which model serves, and starts another if it changed)."""
    item = services.state.get_version(dataset, version)
    if item is None or item.status != VersionStatus.TRAINING or f"champion#{item.attempt}" in item.milestones:
        return
    champion_evaluation(services, item)
    services.state.record(services.state.version_item(dataset, version), f"champion#{item.attempt}")


def on_champion_transform(
    services: Services, dataset: str, version: str, champion_version: str, job_name: str, status: str, failure_reason: str | None
) -> str:
    """The champion's batch transform of a version's test split ended: score it, then decide."""
    state = services.state
    observability.correlate(dataset, version)
    try:
        record = state.get_champion(dataset, version, champion_version)
        item = state.get_version(dataset, version)
        if record is None or item is None or record.status != ChampionStatus.EVALUATING:
            decide(services, dataset, version)  # a retry: make sure the decision was made
            return "duplicate"
        if status != "Completed":
            reason = failure_reason or services.compute.describe_transform_job(job_name).get("FailureReason") or status
            state.finish_champion(
                dataset, version, champion_version, ChampionStatus.FAILED, failure_reason=f"transform {status}: {reason}"
            )
            outcome = "champion failed"
        else:
            label = names.champion_label(champion_version)
            try:
                result = score_output(services, item, _output_uri(services, dataset, version, label, item.artifacts["test"]))
            except scoring.ScoringError as error:
                state.finish_champion(dataset, version, champion_version, ChampionStatus.FAILED, failure_reason=str(error))
                result = None
            outcome = "champion failed"
            if result is not None:
                about = {"model": record.model_data_url, "test": item.artifacts["test"], "champion_version": champion_version}
                report = scoring.model_quality_report(result, item.problem_type, about)
                locations = services.settings.locations(dataset, version)
                report_uri = services.objects.write_json(
                    services.settings.artifact_bucket_name, locations.report_key(label), report
                )
                headline = headline_metrics(result, item.problem_type)
                evaluation_id = names.evaluation_id(record.model_data_url, item.artifacts["test"])
                state.record_evaluation(
                    dataset,
                    evaluation_id,
                    {
                        "model_data_url": record.model_data_url,
                        "test": item.artifacts["test"],
                        "version": champion_version,
                        "run_index": record.champion_run_index,
                        "attempt": record.champion_attempt,
                        "scored_for": version,
                        "metric": item.metric,
                        "metrics": headline,
                        "report": report_uri,
                        "rows": result["rows"],
                    },
                )
                state.finish_champion(
                    dataset, version, champion_version, ChampionStatus.EVALUATED,
                    metrics=headline, report=report_uri, evaluation_id=evaluation_id,
                )  # fmt: skip
                outcome = "champion evaluated"
        decide(services, dataset, version)
        return outcome
    finally:
        state.flush_version(dataset, version)


# ---------------------------------------------------------------------------------------------
# The decision
# ---------------------------------------------------------------------------------------------
WAITING_FOR_A_PERSON = "; waiting for a person to approve it in the model registry (approval: manual)"
REGISTRY_STATUS = {
    VersionStatus.APPROVED: "Approved",
    VersionStatus.REJECTED: "Rejected",
    VersionStatus.PENDING_APPROVAL: "PendingManualApproval",
}
DECISION_EVENT: dict[VersionStatus, type[ModelDecision]] = {
    VersionStatus.APPROVED: ModelApproved,
    VersionStatus.REJECTED: ModelRejected,
    VersionStatus.PENDING_APPROVAL: ModelPendingApproval,
}


def decide(services: Services, dataset: str, version: str) -> str | None:
    """Once every run of the version is terminal (and the champion, if any, is re-scored): put the
    best run through the gate, exactly once. Returns the outcome; None when the runs or the
    champion are not done (or another call decided); "waiting" when the registry had no capacity
    (the sweeper decides later).

    The decision and its announcement are one write (the outbox); the caller's flush publishes it.
    """
    state = services.state
    version_item = state.get_version(dataset, version)
    if version_item is None or version_item.status != VersionStatus.TRAINING:
        return None
    if version_item.tuning_job and not version_item.tuning_ended:
        return None  # a Bayesian search: more runs may come until its tuning job ends
    if version_item.running > 0:
        return None  # a run is still training
    attempt = version_item.attempt
    # Whether every run is done, from their statuses alone; the whole records only once they are.
    states = state.run_states(dataset, version, attempt)
    expected = version_item.run_count if version_item.run_count is not None else 1
    if len(states) < expected or any(run.status not in TERMINAL_RUN_STATUSES for run in states):
        return None
    runs = [_summary(record) for record in state.list_runs(dataset, version, attempt)]
    metric = version_item.metric
    threshold = float(
        version_item.threshold if version_item.threshold is not None else services.settings.default_accuracy_threshold
    )
    prepared = version_item.prepared_event() if version_item.prepared else None
    min_improvement = prepared.gate.min_improvement if prepared else 0.0
    manual = prepared is not None and prepared.approval == "manual"
    best = choose_best(runs, metric)
    failures = [run.failure_reason or run.status for run in runs if run.status == RunStatus.FAILED]
    champion: ChampionScore | None = None
    if best is None:
        outcome, value = VersionStatus.FAILED, None
        shown = "; ".join(failures[:3]) + (f"; and {len(failures) - 3} more (see the leaderboard)" if len(failures) > 3 else "")
        reason = "every run failed: " + shown
        if len(failures) < len(runs):  # evaluated, but the metric is undefined (a mape over true values all 0)
            reason = f"no run has a held-out {metric} (see each run's report)" + (f"; failed: {shown}" if failures else "")
        if not runs and version_item.tuning_job:
            reason = f"the tuning job {version_item.tuning_job} ended {version_item.tuning_ended} without a training job" + (
                f": {version_item.tuning_failure_reason}" if version_item.tuning_failure_reason else ""
            )
    else:
        value = best.metrics[metric]
        passed = passes(metric, value, threshold)
        reason = comparison(metric, value, threshold)  # "held-out rmse 312.1000 <= threshold 400.0000"
        if passed:
            owner, evaluated = champion_evaluation(services, version_item)
            if owner is not None and evaluated is not None:
                if evaluated.status == ChampionStatus.EVALUATING:
                    return None  # the champion's transform job is still scoring the test split
                champion_value = evaluated.metrics.get(metric) if evaluated.status == ChampionStatus.EVALUATED else None
                why = evaluated.failure_reason or f"its {metric} is undefined on this test split"
                champion = ChampionScore(
                    version=owner.version,
                    run_index=owner.run_index,
                    value=champion_value,
                    report=evaluated.report,
                    min_improvement=min_improvement,
                    failure_reason=None if champion_value is not None else why,
                )
                if champion_value is not None:
                    passed = beats(metric, value, champion_value, min_improvement)
                    reason += "; " + champion_comparison(metric, value, champion_value, owner.version, min_improvement)
                else:
                    reason += (
                        f"; the champion (version {owner.version}) could not be re-scored ({why}): the threshold alone decides"
                    )
        outcome = VersionStatus.APPROVED if passed else VersionStatus.REJECTED
        if passed and manual:
            outcome = VersionStatus.PENDING_APPROVAL
            reason += WAITING_FOR_A_PERSON
    try:
        package_arn = (
            _register_model_package(services, version_item, best, REGISTRY_STATUS[outcome], metric, champion) if best else None
        )
    except CapacityError as error:
        logger.warning("the model registry is throttling; the decision waits for the sweeper", reason=str(error))
        return "waiting"
    leaderboard = write_leaderboard(services, dataset, version, runs, metric, threshold, best)
    announcement: DatadropEvent
    decision: ModelDecision | None = None
    if outcome is VersionStatus.FAILED:
        # Nothing to judge: a failure, not a rejection, with every run's reason in the leaderboard.
        announcement = VersionFailed(
            dataset=dataset, version=version, stage="training", reason=reason,
            run_count=len(runs), failed_runs=len(failures), leaderboard=leaderboard,
        )  # fmt: skip
    else:
        decision = announcement = DECISION_EVENT[outcome](
            dataset=dataset,
            version=version,
            metric=metric,
            value=value,
            threshold=threshold,
            reason=reason,
            best_run=best,
            run_count=len(runs),
            failed_runs=len(failures),
            leaderboard=leaderboard,
            model_package_arn=package_arn,
            champion=champion,
            approval="manual" if manual else "auto",
        )
    if not state.transition_version(
        dataset,
        version,
        outcome,
        {VersionStatus.TRAINING},
        publish=[announcement],
        milestone=f"decided#{attempt}",
        decision_reason=reason,
        best_run=best.run_index if best else None,
        best_value=value,
        model_package_arn=package_arn,
        decision=decision.model_dump_json() if decision else None,  # kept whole, for the sweeper and retries
    ):
        return None  # another run's evaluation decided first
    counted = {"APPROVED": "VersionsApproved", "REJECTED": "VersionsRejected", "PENDING_APPROVAL": "VersionsPendingApproval"}
    observability.count(counted.get(outcome.value, "VersionsFailed"))
    logger.info("decision", dataset=dataset, version=version, outcome=outcome.value, reason=reason)
    return outcome.value


def _register_model_package(
    services: Services,
    item: VersionRecord,
    best: RunSummary,
    approval: str,
    metric: str,
    champion: ChampionScore | None,
) -> str:
    """Every decided version's best run goes to the dataset's model package group, with its
    evaluation report as the package's model quality statistics, so the history is complete."""
    settings = services.settings
    dataset, version, attempt = item.dataset, item.version, item.attempt
    group = names.model_package_group_name(settings.name_prefix, dataset)
    try:
        services.sagemaker.create_model_package_group(
            ModelPackageGroupName=group, ModelPackageGroupDescription=f"datadrop models for {dataset}"
        )
    except ClientError as error:
        if (
            "already exist" not in error.response["Error"].get("Message", "")
            and error.response["Error"]["Code"] != "ResourceInUse"
        ):
            raise_capacity_or(error)
    run = names.RunNames(settings.name_prefix, dataset, version, best.run_index, attempt)
    locations = settings.locations(dataset, version)
    report = f"s3://{locations.bucket}/{locations.report_key(run.label)}"
    metadata = {"dataset": dataset, "version": version, "run": str(best.run_index), "metric": metric}
    metadata.update({name: f"{value:.6g}" for name, value in best.metrics.items()})
    if champion is not None:
        metadata["champion"] = champion.version
        if champion.value is not None:
            metadata[f"champion_{metric}"] = f"{champion.value:.6g}"
    try:
        response = services.sagemaker.create_model_package(
            ModelPackageGroupName=group,
            ModelPackageDescription=f"{dataset} {version} run {best.run_index}: {metric} {best.metrics.get(metric)}",
            InferenceSpecification={
                "Containers": serving_containers(
                    services,
                    best.algorithm,
                    item.problem_type or "binary",
                    best.model_data_url or "",
                    item.artifacts.get("serving_bundle", ""),
                ),
                "SupportedContentTypes": ["text/csv", "application/json"],
                "SupportedResponseMIMETypes": ["text/csv", "application/json", "application/jsonlines"],
            },
            ModelMetrics={"ModelQuality": {"Statistics": {"ContentType": "application/json", "S3Uri": report}}},
            ModelApprovalStatus=approval,
            CustomerMetadataProperties=metadata,
            # Idempotent: a retried decision gets the same package back instead of a second one.
            ClientToken=hashlib.sha256(f"{dataset}/{version}/{attempt}".encode()).hexdigest()[:36],
        )
    except ClientError as error:
        raise_capacity_or(error)
    arn = str(response["ModelPackageArn"])
    # The registry's state-change events name the package: they find their version by lookup.
    services.state.map_resource("model-package", arn, ResourceOwner(dataset, version, best.run_index, attempt))
    return arn


# ---------------------------------------------------------------------------------------------
# The registry: a person approves or rejects a package (approval: manual)
# ---------------------------------------------------------------------------------------------
REGISTRY_DECISIONS = frozenset({"Approved", "Rejected"})


def on_model_package_state_change(services: Services, package_arn: str, approval_status: str | None) -> str:
    """ "SageMaker Model Package State Change": a package of ours waiting for a person was Approved
    (→ ModelApproved, which deploys) or Rejected (→ ModelRejected). Anything else, including a
    second approval of the same package, changes nothing."""
    if approval_status not in REGISTRY_DECISIONS:
        return "ignored"
    state = services.state
    owner = state.find_resource("model-package", package_arn)
    item = state.get_version(owner.dataset, owner.version) if owner else None
    if owner is None or item is None or item.attempt != owner.attempt:
        logger.info(f"model package {package_arn} is not one of ours; ignored")
        return "ignored"
    observability.correlate(owner.dataset, owner.version)
    if item.status != VersionStatus.PENDING_APPROVAL or item.decision is None:
        logger.info("version is not waiting for approval; nothing to do", version=item.version, status=item.status.value)
        return "ignored"
    try:
        pending = ModelPendingApproval.model_validate_json(item.decision)
        fields = pending.model_dump(exclude={"event_id"})
        approved = approval_status == "Approved"
        if approved:
            fields["reason"] = f"approved in the model registry; {pending.reason.split('; waiting for a person')[0]}"
            decision: ModelDecision = ModelApproved(**fields)
        else:
            fields["reason"] = (
                f"rejected in the model registry; the gate had passed it: {pending.reason.split('; waiting for a person')[0]}"
            )
            decision = ModelRejected(**fields)
        to = VersionStatus.APPROVED if approved else VersionStatus.REJECTED
        if not state.transition_version(
            item.dataset,
            item.version,
            to,
            {VersionStatus.PENDING_APPROVAL},
            publish=[decision],
            milestone=f"registry#{item.attempt}",
            decision_reason=decision.reason,
            decision=decision.model_dump_json(),
        ):
            return "duplicate"
        observability.count("VersionsApprovedByHand" if approved else "VersionsRejectedByHand")
        logger.info("registry decision", version=item.version, approval=approval_status)
        return to.value.lower()
    finally:
        state.flush_version(item.dataset, item.version)
