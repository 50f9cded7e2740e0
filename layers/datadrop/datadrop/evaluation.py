"""The evaluate step: score each finished run on the held-out test rows, then decide.

A Completed training job gets a SageMaker model (the built-in XGBoost image running datadrop's
inference script: the exact artefact an endpoint would serve) and a batch transform of the raw
test rows. When the transform completes, its predictions are scored against labels training
never saw. When every run of the version is done, the best run is compared with the threshold:
ModelApproved or ModelRejected, with the model package registered either way.
"""

from __future__ import annotations

import hashlib
import json
import math
from typing import Any, NoReturn

from aws_lambda_powertools import Logger
from botocore.exceptions import ClientError

from datadrop import names, observability, training
from datadrop.algorithms import xgboost_image_uri
from datadrop.compute import CapacityError, capacity_error
from datadrop.events import DatadropEvent, ModelApproved, ModelRejected, RunEvaluated, RunSummary, VersionFailed
from datadrop.metrics import better_first_key, comparison, passes, spec
from datadrop.services import Services
from datadrop.serving import container_environment
from datadrop.state import TERMINAL_RUN_STATUSES, ResourceOwner, RunRecord, RunStatus, VersionStatus
from datadrop.storage import split_s3_uri

logger = Logger(child=True)

PREDICTIONS_ACCEPT = "application/jsonlines"


# ---------------------------------------------------------------------------------------------
# Pure logic
# ---------------------------------------------------------------------------------------------
def score(labels: list[str], predictions: list[dict[str, Any]], classes: list[str]) -> dict[str, Any]:
    """Classification metrics of predictions ({label, probabilities}) against the true labels."""
    if len(labels) != len(predictions):
        raise ValueError(f"{len(predictions)} predictions for {len(labels)} test rows: the transform output is incomplete")
    if not labels:
        raise ValueError("no test rows to score")
    predicted = [str(prediction["label"]) for prediction in predictions]
    correct = sum(truth == guess for truth, guess in zip(labels, predicted))
    confusion = {truth: {guess: 0 for guess in classes} for truth in classes}
    for truth, guess in zip(labels, predicted):
        confusion.setdefault(truth, {}).setdefault(guess, 0)
        confusion[truth][guess] += 1
    per_class: dict[str, dict[str, float]] = {}
    for label in classes:
        true_positive = confusion.get(label, {}).get(label, 0)
        predicted_as = sum(row.get(label, 0) for row in confusion.values())
        actual = sum(confusion.get(label, {}).values())
        precision = true_positive / predicted_as if predicted_as else 0.0
        recall = true_positive / actual if actual else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_class[label] = {"precision": precision, "recall": recall, "f1": f1, "support": actual}
    log_loss = -sum(
        math.log(min(max(float(prediction.get("probabilities", {}).get(truth, 0.0)), 1e-15), 1.0))
        for truth, prediction in zip(labels, predictions)
    ) / len(labels)
    return {
        "rows": len(labels),
        "accuracy": correct / len(labels),
        "macro_f1": sum(stats["f1"] for stats in per_class.values()) / len(per_class),
        "log_loss": log_loss,
        "per_class": per_class,
        "confusion_matrix": confusion,
    }


def score_regression(truths: list[float], predictions: list[dict[str, Any]]) -> dict[str, Any]:
    """Regression metrics of predictions ({value}) against the true values.

    rmse, mae and r2 are scikit-learn's mean_squared_error (square-rooted), mean_absolute_error and
    r2_score (a constant test split scores 1.0 when predicted exactly, else 0.0, as scikit-learn's
    force_finite does). mape is the mean of |error| / |true value| over the rows whose true value is
    not 0 (a percentage of 0 is undefined; scikit-learn would divide by machine epsilon instead), as a
    fraction: 0.1 is 10%. `mape_skipped_rows` says how many rows it left out; with every true value
    0 there is no mape (None, and no headline mape).
    """
    if len(truths) != len(predictions):
        raise ValueError(f"{len(predictions)} predictions for {len(truths)} test rows: the transform output is incomplete")
    if not truths:
        raise ValueError("no test rows to score")
    try:
        predicted = [float(prediction["value"]) for prediction in predictions]
    except (KeyError, TypeError, ValueError) as error:
        raise ValueError(f"a regression prediction must be {{'value': <number>}}: {error}") from error
    count = len(truths)
    errors = [guess - truth for truth, guess in zip(truths, predicted)]
    squared = math.fsum(error * error for error in errors)
    mean_truth = math.fsum(truths) / count
    total = math.fsum((truth - mean_truth) ** 2 for truth in truths)
    if total:
        r2 = 1.0 - squared / total
    else:
        r2 = 1.0 if squared == 0 else 0.0
    relative = [abs(error) / abs(truth) for truth, error in zip(truths, errors) if truth != 0]
    return {
        "rows": count,
        "rmse": math.sqrt(squared / count),
        "mae": math.fsum(abs(error) for error in errors) / count,
        "r2": r2,
        "mape": math.fsum(relative) / len(relative) if relative else None,
        "mape_skipped_rows": count - len(relative),
        "mean_error": math.fsum(errors) / count,  # > 0: the model predicts too high on average
    }


REGRESSION_HEADLINE = ("rmse", "mae", "r2", "mape")
CLASSIFICATION_HEADLINE = ("accuracy", "macro_f1", "log_loss")


def headline_metrics(report: dict[str, Any], problem_type: str | None) -> dict[str, float]:
    """The metrics a run is compared, judged and logged (`test:<name>`) by; an undefined one is left out."""
    names = REGRESSION_HEADLINE if problem_type == "regression" else CLASSIFICATION_HEADLINE
    return {name: float(report[name]) for name in names if report.get(name) is not None}


def parse_predictions(body: bytes) -> list[dict[str, Any]]:
    return [json.loads(line) for line in body.decode("utf-8").splitlines() if line.strip()]


def model_request(services: Services, run: names.RunNames, model_data_url: str, serving_bundle: str) -> dict[str, Any]:
    settings = services.settings
    return {
        "ModelName": run.model,
        "PrimaryContainer": {
            "Image": xgboost_image_uri(settings.region),
            "ModelDataUrl": model_data_url,
            # Script mode of the XGBoost container: our inference script turns raw rows into
            # features with the recipe and answers in the dataset's own labels.
            "Environment": {**container_environment(serving_bundle), "SAGEMAKER_REGION": settings.region},
        },
        "ExecutionRoleArn": settings.sagemaker_role_arn,
        "Tags": [{"Key": "datadrop:dataset", "Value": run.dataset}, {"Key": "datadrop:version", "Value": run.version}],
    }


def transform_request(
    services: Services, run: names.RunNames, test_uri: str, experiment_config: dict[str, str]
) -> dict[str, Any]:
    settings = services.settings
    locations = settings.locations(run.dataset, run.version)
    return {
        "TransformJobName": run.transform_job,
        "ModelName": run.model,
        "BatchStrategy": "MultiRecord",
        "MaxPayloadInMB": 6,
        "TransformInput": {
            "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": test_uri}},
            "ContentType": "text/csv",
            "SplitType": "Line",
        },
        "TransformOutput": {
            "S3OutputPath": locations.evaluation_output_uri(run.label),
            "Accept": PREDICTIONS_ACCEPT,
            "AssembleWith": "Line",
        },
        "TransformResources": {"InstanceType": settings.transform_instance_type, "InstanceCount": 1},
        "ExperimentConfig": experiment_config,
        "Tags": [{"Key": "datadrop:dataset", "Value": run.dataset}, {"Key": "datadrop:version", "Value": run.version}],
    }


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
    hyperparameters = {key: str(value) for key, value in (job.get("HyperParameters") or {}).items()}
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
            parameters=hyperparameters,
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
    elif record.status != RunStatus.EVALUATING:
        return "duplicate"
    # Re-entrant from EVALUATING: a retry after a failure half-way redoes the (idempotent) creates.
    return start_transform(services, run, model_data_url)


def start_transform(services: Services, run: names.RunNames, model_data_url: str) -> str:
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
        services.compute.create_model(model_request(services, run, model_data_url, artifacts["serving_bundle"]))
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
    test_file = split_s3_uri(artifacts["test"])[1].rsplit("/", 1)[-1]
    output_bucket, output_key = split_s3_uri(locations.evaluation_output_uri(run.label) + f"{test_file}.out")
    predictions = parse_predictions(services.objects.read(output_bucket, output_key))
    truths = json.loads(services.objects.read_uri(artifacts["test_labels"]))
    if version.problem_type == "regression":
        report = score_regression([float(value) for value in truths], predictions)
    else:
        report = score([str(label) for label in truths], predictions, [str(label) for label in version.classes])
    report_uri = services.objects.write_json(settings.artifact_bucket_name, locations.report_key(run.label), report)
    headline = headline_metrics(report, version.problem_type)
    # The evaluation has an identity of its own (model x test split), for comparisons across versions.
    model_data_url = record.model_data_url or ""
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
            "rows": report["rows"],
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


def decide(services: Services, dataset: str, version: str) -> str | None:
    """Once every run of the version is terminal: approve the best run or reject, exactly once.
    Returns the outcome; None when the runs are not all done (or another call decided); "waiting"
    when the registry had no capacity (the sweeper decides later).

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
    best = choose_best(runs, metric)
    failures = [run.failure_reason or run.status for run in runs if run.status == RunStatus.FAILED]
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
        outcome = VersionStatus.APPROVED if passes(metric, value, threshold) else VersionStatus.REJECTED
        reason = comparison(metric, value, threshold)  # "held-out rmse 312.1000 <= threshold 400.0000"
    try:
        package_arn = (
            _register_model_package(services, dataset, version, attempt, best, outcome is VersionStatus.APPROVED, metric, value)
            if best
            else None
        )
    except CapacityError as error:
        logger.warning("the model registry is throttling; the decision waits for the sweeper", reason=str(error))
        return "waiting"
    leaderboard = write_leaderboard(services, dataset, version, runs, metric, threshold, best)
    announcement: DatadropEvent
    decision: ModelApproved | ModelRejected | None = None
    if outcome is VersionStatus.FAILED:
        # Nothing to judge: a failure, not a rejection, with every run's reason in the leaderboard.
        announcement = VersionFailed(
            dataset=dataset, version=version, stage="training", reason=reason,
            run_count=len(runs), failed_runs=len(failures), leaderboard=leaderboard,
        )  # fmt: skip
    else:
        decision_class = ModelApproved if outcome is VersionStatus.APPROVED else ModelRejected
        decision = announcement = decision_class(
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
    observability.count({"APPROVED": "VersionsApproved", "REJECTED": "VersionsRejected"}.get(outcome.value, "VersionsFailed"))
    logger.info("decision", dataset=dataset, version=version, outcome=outcome.value, reason=reason)
    return outcome.value


def _register_model_package(
    services: Services,
    dataset: str,
    version: str,
    attempt: int,
    best: RunSummary,
    approved: bool,
    metric: str,
    value: float | None,
) -> str | None:
    """Every evaluated model goes to the registry, Approved or Rejected, so the history is complete."""
    settings = services.settings
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
            _raise_capacity_or(error)
    version_item = services.state.get_version(dataset, version)
    artifacts = version_item.artifacts if version_item else {}
    try:
        response = services.sagemaker.create_model_package(
            ModelPackageGroupName=group,
            ModelPackageDescription=f"{dataset} {version} run {best.run_index}: {metric} {value}",
            InferenceSpecification={
                "Containers": [
                    {
                        "Image": xgboost_image_uri(settings.region),
                        "ModelDataUrl": best.model_data_url or "",
                        "Environment": container_environment(artifacts.get("serving_bundle", "")),
                    }
                ],
                "SupportedContentTypes": ["text/csv", "application/json"],
                "SupportedResponseMIMETypes": ["text/csv", "application/json", "application/jsonlines"],
            },
            ModelApprovalStatus="Approved" if approved else "Rejected",
            CustomerMetadataProperties={"dataset": dataset, "version": version, "run": str(best.run_index), metric: f"{value}"},
            # Idempotent: a retried decision gets the same package back instead of a second one.
            ClientToken=hashlib.sha256(f"{dataset}/{version}/{attempt}".encode()).hexdigest()[:36],
        )
    except ClientError as error:
        _raise_capacity_or(error)
    return response["ModelPackageArn"]


def _raise_capacity_or(error: ClientError) -> NoReturn:
    """Throttling and quotas become CapacityError (the work waits for the sweeper); anything else is raised as is."""
    capacity = capacity_error(error)
    if capacity is not None:
        raise capacity from error
    raise error
