"""The train step: one SageMaker Experiment run per training job, for a prepared dataset version."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger

from datadrop import names
from datadrop.algorithms import xgboost_image_uri
from datadrop.events import DatasetPrepared, RunSummary, TrainingStarted
from datadrop.experiments import RunHandle
from datadrop.services import Services
from datadrop.settings import Settings
from datadrop.state import RunStatus, VersionStatus

logger = Logger(child=True)

MAX_TRAINING_SECONDS = 3600


def training_job_request(
    settings: Settings, prepared: DatasetPrepared, run: names.RunNames, handle: RunHandle, hyperparameters: dict[str, str]
) -> dict[str, Any]:
    """The CreateTrainingJob request for one run: built-in XGBoost, CSV channels, inside the run."""
    locations = names.DatasetLocations(settings.artifact_bucket_name, prepared.dataset, prepared.version)

    def channel(name: str, uri: str) -> dict[str, Any]:
        return {
            "ChannelName": name,
            "DataSource": {
                "S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": uri, "S3DataDistributionType": "FullyReplicated"}
            },
            "ContentType": "text/csv",
            "CompressionType": "None",
        }

    return {
        "TrainingJobName": run.training_job,
        "AlgorithmSpecification": {"TrainingImage": xgboost_image_uri(settings.region), "TrainingInputMode": "File"},
        "RoleArn": settings.sagemaker_role_arn,
        "HyperParameters": hyperparameters,
        "InputDataConfig": [channel("train", prepared.artifacts.train), channel("validation", prepared.artifacts.validation)],
        "OutputDataConfig": {"S3OutputPath": locations.training_output_uri()},
        "ResourceConfig": {"InstanceType": settings.training_instance_type, "InstanceCount": 1, "VolumeSizeInGB": 10},
        "StoppingCondition": {"MaxRuntimeInSeconds": MAX_TRAINING_SECONDS},
        "ExperimentConfig": handle.experiment_config(),
        "Tags": [
            {"Key": "datadrop:dataset", "Value": prepared.dataset},
            {"Key": "datadrop:version", "Value": prepared.version},
            {"Key": "datadrop:run", "Value": str(run.run_index)},
        ],
    }


def run_plan(prepared: DatasetPrepared) -> list[dict[str, str]]:
    """Hyperparameters of each run. One run for now; grids and random search come later."""
    return [dict(prepared.hyperparameters)]


def start_training(services: Services, prepared: DatasetPrepared) -> list[RunSummary]:
    settings = services.settings
    plan = run_plan(prepared)
    if not services.state.transition_version(
        prepared.dataset, prepared.version, VersionStatus.TRAINING, {VersionStatus.PREPARED, VersionStatus.TRAINING},
        run_count=len(plan), threshold=prepared.threshold, metric=prepared.metric,
        problem_type=prepared.problem_type, classes=prepared.classes, artifacts=prepared.artifacts.model_dump(),
    ):
        logger.info("version is past training; nothing to do", dataset=prepared.dataset, version=prepared.version)
        return []
    summaries: list[RunSummary] = []
    for run_index, hyperparameters in enumerate(plan, start=1):
        run = names.RunNames(settings.name_prefix, prepared.dataset, prepared.version, run_index)
        handle = services.experiments.handle(prepared.dataset, prepared.version, run_index)
        services.experiments.start_run(
            handle,
            prepared.dataset,
            prepared.version,
            parameters=hyperparameters,
            inputs={"train": prepared.artifacts.train, "validation": prepared.artifacts.validation, "test": prepared.artifacts.test},
        )
        services.state.create_run(
            prepared.dataset,
            prepared.version,
            run_index,
            {"training_job": run.training_job, "run_name": handle.run_name, "hyperparameters": hyperparameters},
        )
        created = services.compute.start_training_job(training_job_request(settings, prepared, run, handle, hyperparameters))
        logger.info("training job", job=run.training_job, created=created)
        summaries.append(
            RunSummary(
                run_index=run_index,
                run_name=handle.run_name,
                training_job=run.training_job,
                status=RunStatus.TRAINING.value,
                hyperparameters=hyperparameters,
            )
        )
    services.events.publish(
        TrainingStarted(
            dataset=prepared.dataset,
            version=prepared.version,
            experiment_name=names.experiment_name(settings.name_prefix, prepared.dataset),
            run_group=names.run_group_name(settings.name_prefix, prepared.dataset, prepared.version),
            runs=summaries,
        )
    )
    return summaries
