"""SageMaker's state changes as EventBridge delivers them, parsed leniently because AWS documents
several spellings (see tests/fixtures/aws-events/README.md): `Tags` as {} / {k: v} / [{Key, Value}],
times as ISO strings or epoch milliseconds, EndpointStatus as IN_SERVICE or InService.
"""

from pydantic import BaseModel, ConfigDict, field_validator

from datadrop.events import endpoint_status
from datadrop.incoming import EventBridgeModel


class _SageMakerDetail(BaseModel):
    model_config = ConfigDict(extra="allow", defer_build=True)
    FailureReason: str | None = None


class TrainingJobStateChangeDetail(_SageMakerDetail):
    TrainingJobName: str
    TrainingJobStatus: str
    TuningJobArn: str | None = None  # set when a hyperparameter tuning job launched it

    @property
    def tuning_job(self) -> str | None:
        """The name of the tuning job that launched it (the ARN's last part), if one did."""
        return self.TuningJobArn.rsplit("/", 1)[-1] if self.TuningJobArn else None


class TuningJobStateChangeDetail(_SageMakerDetail):
    HyperParameterTuningJobName: str
    HyperParameterTuningJobStatus: str


class TransformJobStateChangeDetail(_SageMakerDetail):
    TransformJobName: str
    TransformJobStatus: str


class EndpointStateChangeDetail(_SageMakerDetail):
    EndpointName: str
    EndpointStatus: str
    EndpointConfigName: str | None = None

    @field_validator("EndpointStatus")
    @classmethod
    def _one_spelling(cls, value: str) -> str:
        """The docs' sample says IN_SERVICE, DescribeEndpoint says InService: keep the API's."""
        return endpoint_status(value)


class ModelPackageStateChangeDetail(_SageMakerDetail):
    ModelPackageGroupName: str
    ModelPackageArn: str
    ModelPackageVersion: int | None = None
    ModelApprovalStatus: str | None = None


class ModelPackageStateChange(EventBridgeModel):
    detail: ModelPackageStateChangeDetail


class TrainingJobStateChange(EventBridgeModel):
    detail: TrainingJobStateChangeDetail


class TuningJobStateChange(EventBridgeModel):
    detail: TuningJobStateChangeDetail


class TransformJobStateChange(EventBridgeModel):
    detail: TransformJobStateChangeDetail


class EndpointStateChange(EventBridgeModel):
    detail: EndpointStateChangeDetail
