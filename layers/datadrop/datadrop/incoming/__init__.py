"""The events as EventBridge delivers them to a Lambda target: the envelope, and datadrop's own
events the steps consume; S3's in datadrop.incoming.s3, SageMaker's in datadrop.incoming.sagemaker.

Apart from datadrop.events (the details datadrop publishes, imported by every step), and split by
source, because a pydantic class costs its creation even when its validator is deferred and each
handler takes one to four of these shapes: a step defines only the classes of the events it takes
(bench/layers.py: the handlers' import time).

The envelope and the S3 model follow Powertools' parser models field for field (a unit test
parses the same samples with both), but are declared here: importing
`aws_lambda_powertools.utilities.parser` builds its whole model zoo, 0.2-0.3 s of every cold
start (bench/import_time.py), for the three shapes datadrop reads.
"""

# No `from __future__ import annotations` in the modules that define models: see datadrop.events.
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from datadrop.events import DatasetPrepared, ModelApproved


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


class DatasetPreparedEvent(EventBridgeModel):
    detail: DatasetPrepared


class ModelApprovedEvent(EventBridgeModel):
    detail: ModelApproved
