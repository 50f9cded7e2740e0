"""S3's "Object Created" as EventBridge delivers it (the prepare step's trigger)."""

from urllib.parse import unquote_plus

from pydantic import BaseModel, ConfigDict, Field

from datadrop.incoming import EventBridgeModel

_LAZY = ConfigDict(defer_build=True)


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
