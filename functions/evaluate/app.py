"""SageMaker training, transform and tuning job state changes → held-out evaluation → ModelApproved/ModelRejected;
the model registry's package state changes (a person approving or rejecting) → ModelApproved/ModelRejected."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext
from datadrop import evaluation
from datadrop.events import (
    ChampionScore,
    DatasetPrepared,
    ModelApproved,
    ModelPendingApproval,
    ModelRejected,
    RunEvaluated,
    RunSummary,
    VersionFailed,
)
from datadrop.incoming.sagemaker import (
    ModelPackageStateChange,
    TrainingJobStateChange,
    TransformJobStateChange,
    TuningJobStateChange,
)
from datadrop.lambda_support import EVENT_KEY, idempotent_on, ignored, prebuilt
from datadrop.observability import metrics
from datadrop.records import ChampionRecord, RunRecord, VersionRecord
from datadrop.services import get_services

logger = Logger()
# Every model an invocation validates, constructs or dumps, built now (Init) rather than in the first
# request; the integration harness fails an invocation that builds one not listed here.
PREBUILT = prebuilt(
    TrainingJobStateChange,
    TransformJobStateChange,
    TuningJobStateChange,
    ModelPackageStateChange,
    ChampionScore,
    DatasetPrepared,
    ModelApproved,
    ModelPendingApproval,
    ModelRejected,
    RunEvaluated,
    RunSummary,
    VersionFailed,
    VersionRecord,
    RunRecord,
    ChampionRecord,
)

TRAINING = "SageMaker Training Job State Change"
TRANSFORM = "SageMaker Transform Job State Change"
TUNING = "SageMaker HyperParameter Tuning Job State Change"
MODEL_PACKAGE = "SageMaker Model Package State Change"


@logger.inject_lambda_context(clear_state=True)  # no keys leak from the previous invocation
@metrics.log_metrics
@idempotent_on(EVENT_KEY, {"aws.sagemaker": {TRAINING, TRANSFORM, TUNING, MODEL_PACKAGE}})
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    if event.get("detail-type") == TRAINING:
        detail = TrainingJobStateChange.model_validate(event).detail
        outcome = evaluation.on_training_job_state_change(
            get_services(), detail.TrainingJobName, detail.TrainingJobStatus, detail.FailureReason, detail.tuning_job
        )
        return {"job": detail.TrainingJobName, "outcome": outcome}
    if event.get("detail-type") == TUNING:
        tuning = TuningJobStateChange.model_validate(event).detail
        outcome = evaluation.on_tuning_job_state_change(
            get_services(), tuning.HyperParameterTuningJobName, tuning.HyperParameterTuningJobStatus, tuning.FailureReason
        )
        return {"job": tuning.HyperParameterTuningJobName, "outcome": outcome}
    if event.get("detail-type") == TRANSFORM:
        transform = TransformJobStateChange.model_validate(event).detail
        outcome = evaluation.on_transform_job_state_change(
            get_services(), transform.TransformJobName, transform.TransformJobStatus, transform.FailureReason
        )
        return {"job": transform.TransformJobName, "outcome": outcome}
    if event.get("detail-type") == MODEL_PACKAGE:
        package = ModelPackageStateChange.model_validate(event).detail
        outcome = evaluation.on_model_package_state_change(get_services(), package.ModelPackageArn, package.ModelApprovalStatus)
        if outcome == "ignored":
            return ignored(f"model package {package.ModelPackageArn} is not waiting for a person's decision")
        return {"model_package": package.ModelPackageArn, "outcome": outcome}
    return ignored(f"{event.get('detail-type')!r} events are not evaluate's business")
