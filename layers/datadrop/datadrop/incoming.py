"""The events as EventBridge delivers them to a Lambda target: the envelope, S3's "Object Created",
SageMaker's state changes, and datadrop's own events the steps consume. SageMaker's are parsed
leniently because AWS documents several spellings (see tests/fixtures/aws-events/README.md):
`Tags` as {} / {k: v} / [{Key, Value}], times as ISO strings or epoch milliseconds, EndpointStatus
as IN_SERVICE or InService.

Apart from datadrop.events (the details datadrop publishes, imported by every step) because each
handler takes one to four of these shapes and a pydantic class costs its creation even when its
validator is deferred: a step imports this module, and so defines these classes, only if it
takes AWS events (bench/layers.py: the handlers' import time).

The envelope and the S3 model follow Powertools' parser models field for field (a unit test
parses the same samples with both), but are declared here: importing
`aws_lambda_powertools.utilities.parser` builds its whole model zoo, 0.2-0.3 s of every cold
start (bench/import_time.py), for the three shapes datadrop reads.
"""

from datetime import datetime
from typing import Any
from urllib.parse import unquote_plus

from pydantic import BaseModel, ConfigDict, Field, field_validator

from datadrop.events import DatasetPrepared, ModelApproved, endpoint_status

_LAZY = ConfigDict(defer_build=True)


class EventBridgeModel(BaseModel):
    """An EventBridge event as delivered to a Lambda target; subclasses type `detail`."""

    model_config = ConfigDict(populate_by_name=True, defer_build=True)
    version: str = "0"
    id: str
    source: str
    account: str
    time: datetime
    region: str
    resources: list[str]
    detail_type: str = Field(alias="detail-type")
    detail: Any


class S3Bucket(BaseModel):
    model_config = _LAZY

    name: str


class S3Object(BaseModel):
    model_config = _LAZY

    key: str
    size: float | None = None
    etag: str
    version_id: str | None = Field(None, alias="version-id")
    sequencer: str | None = None

    @property
    def decoded_key(self) -> str:
        """The object's key: S3 writes it URL-encoded into its events ("my data+1.csv" as "my+data%2B1.csv"),
        as Powertools' S3EventBridgeNotificationObject.key decodes it."""
        return unquote_plus(self.key)


class S3ObjectCreatedDetail(BaseModel):
    model_config = _LAZY

    bucket: S3Bucket
    object: S3Object
    reason: str | None = None


class S3ObjectCreated(EventBridgeModel):
    detail: S3ObjectCreatedDetail


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


class DatasetPreparedEvent(EventBridgeModel):
    detail: DatasetPrepared


class ModelApprovedEvent(EventBridgeModel):
    detail: ModelApproved
