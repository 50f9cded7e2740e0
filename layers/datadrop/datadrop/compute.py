"""The SageMaker compute port: training jobs, transform jobs and endpoints.

`SageMakerCompute` issues the real SageMaker API calls (boto3). The local adapter
(`datadrop.local.compute.LocalCompute`) subclasses it: it keeps the same control-plane calls
(so botocore validates every request and moto records it) and really runs the work on this machine.
Requests are the SageMaker API's own request shapes, so both adapters see exactly what AWS would.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NoReturn

from botocore.exceptions import ClientError

_ALREADY_EXISTS_CODES = {"ResourceInUse", "ResourceInUseException"}
# SageMaker's answers that mean "not now": a quota is full, or the API is throttling us (after
# botocore's own retries). The work is not dropped: it waits, and the sweeper starts it later.
_CAPACITY_CODES = {"ResourceLimitExceeded", "ThrottlingException", "Throttling", "LimitExceededException"}


class CapacityError(Exception):
    """SageMaker cannot take this request now; try again later."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


def capacity_error(error: ClientError) -> CapacityError | None:
    code = error.response["Error"]["Code"]
    if code in _CAPACITY_CODES:
        return CapacityError(code, error.response["Error"].get("Message", ""))
    return None


def raise_capacity_or(error: ClientError) -> NoReturn:
    """Throttling and quotas become CapacityError (the work waits for the sweeper); anything else is raised as is."""
    capacity = capacity_error(error)
    if capacity is not None:
        raise capacity from error
    raise error


def _already_exists(error: ClientError) -> bool:
    """SageMaker says 'ResourceInUse' for jobs and a ValidationException 'already existing' for models/configs."""
    code = error.response["Error"]["Code"]
    message = error.response["Error"].get("Message", "")
    return code in _ALREADY_EXISTS_CODES or (code == "ValidationException" and "already exist" in message)


def _not_found(error: ClientError) -> bool:
    code = error.response["Error"]["Code"]
    message = error.response["Error"].get("Message", "")
    return code in ("ResourceNotFound", "ValidationException") and (
        "not found" in message.lower() or "could not find" in message.lower() or code == "ResourceNotFound"
    )


def _or_none_if_missing(describe: Any, name: str) -> dict[str, Any] | None:
    try:
        return describe(name)
    except ClientError as error:
        if _not_found(error):
            return None
        raise


@dataclass
class SageMakerCompute:
    client: Any  # boto3 SageMaker client
    region: str

    # -- training ---------------------------------------------------------------------------------
    def start_training_job(self, request: dict[str, Any]) -> bool:
        """Create the job; False when a job of that name already exists (a re-delivered event)."""
        return self._create(self.client.create_training_job, request)

    def describe_training_job(self, name: str) -> dict[str, Any]:
        return self.client.describe_training_job(TrainingJobName=name)

    def find_training_job(self, name: str) -> dict[str, Any] | None:
        """DescribeTrainingJob, or None when SageMaker has no such job (it was never created)."""
        return _or_none_if_missing(self.describe_training_job, name)

    # -- hyperparameter tuning (a Bayesian search) --------------------------------------------------
    def start_tuning_job(self, request: dict[str, Any]) -> bool:
        """CreateHyperParameterTuningJob; False when it exists already (a retried invocation)."""
        return self._create(self.client.create_hyper_parameter_tuning_job, request)

    def find_tuning_job(self, name: str) -> dict[str, Any] | None:
        return _or_none_if_missing(
            lambda job: self.client.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName=job), name
        )

    def list_tuning_training_jobs(self, name: str) -> list[dict[str, Any]]:
        """Every training job the tuning job launched (TrainingJobName, TrainingJobStatus, ...)."""
        paginator = self.client.get_paginator("list_training_jobs_for_hyper_parameter_tuning_job")
        return [
            summary
            for page in paginator.paginate(HyperParameterTuningJobName=name)
            for summary in page.get("TrainingJobSummaries", [])
        ]

    # -- models and batch transform ---------------------------------------------------------------
    def create_model(self, request: dict[str, Any]) -> bool:
        return self._create(self.client.create_model, request)

    def start_transform_job(self, request: dict[str, Any]) -> bool:
        return self._create(self.client.create_transform_job, request)

    def describe_transform_job(self, name: str) -> dict[str, Any]:
        return self.client.describe_transform_job(TransformJobName=name)

    def find_transform_job(self, name: str) -> dict[str, Any] | None:
        return _or_none_if_missing(self.describe_transform_job, name)

    # -- endpoints --------------------------------------------------------------------------------
    def create_endpoint_config(self, request: dict[str, Any]) -> bool:
        return self._create(self.client.create_endpoint_config, request)

    def describe_endpoint(self, name: str) -> dict[str, Any] | None:
        try:
            return self.client.describe_endpoint(EndpointName=name)
        except ClientError as error:
            if _not_found(error):
                return None
            raise

    def create_endpoint(self, request: dict[str, Any]) -> bool:
        return self._create(self.client.create_endpoint, request)

    def update_endpoint(self, request: dict[str, Any]) -> None:
        """UpdateEndpoint (with its DeploymentConfig): SageMaker refuses it unless the endpoint is
        InService (or UpdateRollbackFailed); the caller checks first."""
        try:
            self.client.update_endpoint(**request)
        except ClientError as error:
            raise_capacity_or(error)

    def delete_endpoint(self, name: str) -> bool:
        """DeleteEndpoint (the only call a Failed endpoint takes); False when there is none."""
        try:
            self.client.delete_endpoint(EndpointName=name)
        except ClientError as error:
            if _not_found(error):
                return False
            raise_capacity_or(error)
        return True

    def invocation_url(self, endpoint_name: str) -> str:
        return f"https://runtime.sagemaker.{self.region}.amazonaws.com/endpoints/{endpoint_name}/invocations"

    # -- internals --------------------------------------------------------------------------------
    @staticmethod
    def _create(call: Any, request: dict[str, Any]) -> bool:
        try:
            call(**request)
        except ClientError as error:
            if _already_exists(error):
                return False
            raise_capacity_or(error)
        return True
