"""AWS mode on moto: the real handlers and the real SageMaker adapter, every SageMaker call recorded.

Each request is captured after the caller built it and before botocore validates it, so a test
sees exactly what datadrop asked SageMaker for; an invalid request still fails the test.
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest
from datadrop.local.runtime import LambdaContext, load_handler_module, local_settings, provision
from datadrop.services import Services, use_services
from moto import mock_aws
from pydantic import BaseModel

try:  # pydantic's own helper for the state defer_build leaves a model in; private, so the check is skipped without it
    from pydantic._internal._mock_val_ser import set_model_mocks
except ImportError:  # pragma: no cover - another pydantic version
    set_model_mocks = None  # type: ignore[assignment]

from tests import published_schemas
from tests.conftest import sample_event

REPO = Path(__file__).resolve().parents[2]


def _deferred_datadrop_models() -> list[type[BaseModel]]:
    found, todo = [], [BaseModel]
    while todo:
        for sub in todo.pop().__subclasses__():
            todo.append(sub)
            if sub.__module__.startswith("datadrop.") and sub.model_config.get("defer_build"):
                found.append(sub)
    return found


@contextmanager
def only_prebuilt_models(function: str, prebuilt: tuple[type[BaseModel], ...]) -> Iterator[None]:
    """As in a Lambda container, where one handler runs: every deferred datadrop model starts unbuilt
    but those the handler built at import (its PREBUILT); an invocation that builds another one would
    pay for it in its first request, outside the import the bench measures, and fails the test."""
    if set_model_mocks is None:
        yield
        return
    models = set(_deferred_datadrop_models())
    for model in models:
        model.__pydantic_complete__ = False
        set_model_mocks(model)  # the state defer_build leaves a model in (pydantic's own helper)
    for model in prebuilt:
        model.model_rebuild()
    yield
    built = sorted(f"{m.__module__}.{m.__qualname__}" for m in models - set(prebuilt) if m.__pydantic_complete__)
    assert not built, f"{function}'s invocation built {', '.join(built)}: list them in functions/{function}/app.py's PREBUILT"


@dataclass
class AwsHarness:
    services: Services
    session: boto3.session.Session
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    published: list[dict[str, Any]] = field(default_factory=list)

    @property
    def settings(self) -> Any:
        return self.services.settings

    def invoke(self, function: str, event: dict[str, Any]) -> Any:
        """Run functions/<function>/app.py's handler as Lambda would: named, with a context."""
        module = load_handler_module(REPO / "functions" / function / "app.py")
        logical_id = f"{function.capitalize()}Function"
        previous = os.environ.get("AWS_LAMBDA_FUNCTION_NAME")
        os.environ["AWS_LAMBDA_FUNCTION_NAME"] = logical_id
        try:
            with only_prebuilt_models(function, module.PREBUILT):
                return module.handler(copy.deepcopy(event), LambdaContext(logical_id))
        finally:
            if previous is None:
                os.environ.pop("AWS_LAMBDA_FUNCTION_NAME", None)
            else:
                os.environ["AWS_LAMBDA_FUNCTION_NAME"] = previous

    def requests(self, operation: str) -> list[dict[str, Any]]:
        return [params for name, params in self.calls if name == operation]

    def put_config(self, dataset: str, text: str) -> None:
        self.services.objects.client.put_object(
            Bucket=self.settings.data_bucket_name, Key=f"config/{dataset}.yaml", Body=text.encode()
        )

    def upload(self, key: str, body: bytes) -> dict[str, Any]:
        response = self.services.objects.client.put_object(Bucket=self.settings.data_bucket_name, Key=key, Body=body)
        return {"key": key, "version-id": response.get("VersionId"), "etag": response["ETag"].strip('"'), "size": len(body)}

    def upload_event(self, uploaded: dict[str, Any]) -> dict[str, Any]:
        """S3's "Object Created" for an upload (`upload`'s answer): the documented sample, with the real bucket and object."""
        event = sample_event("prepare_s3_object_created.json")
        event["detail"]["bucket"]["name"] = self.settings.data_bucket_name
        event["detail"]["object"].update(uploaded)
        return event

    def collect(self) -> list[dict[str, Any]]:
        """Everything published on the service bus so far (drains the observer queue)."""
        while True:
            messages = self._sqs.receive_message(QueueUrl=self._observer, MaxNumberOfMessages=10).get("Messages", [])
            if not messages:
                return self.published
            for message in messages:
                event = json.loads(message["Body"])
                published_schemas.check(event)  # as subscribers will read it: schemas/
                self.published.append(event)
                self._sqs.delete_message(QueueUrl=self._observer, ReceiptHandle=message["ReceiptHandle"])

    def details(self, detail_type: str) -> list[dict[str, Any]]:
        return [event["detail"] for event in self.collect() if event["detail-type"] == detail_type]


def envelope(detail_type: str, detail: dict[str, Any]) -> dict[str, Any]:
    """A datadrop event as EventBridge delivers it to a Lambda target."""
    return {
        "version": "0",
        "id": "7bf73129-1428-4cd3-a780-95db273d1602",
        "detail-type": detail_type,
        "source": "datadrop",
        "account": "123456789012",
        "time": "2026-11-27T12:00:00Z",
        "region": "us-east-1",
        "resources": [],
        "detail": detail,
    }


def observe_bus(session: boto3.session.Session, bus: str) -> tuple[Any, str]:
    """An SQS queue that receives every datadrop event on `bus` (an EventBridge rule): (sqs client, queue URL)."""
    sqs = session.client("sqs")
    queue = sqs.create_queue(QueueName="observer")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events = session.client("events")
    events.put_rule(Name="observer", EventBusName=bus, EventPattern=json.dumps({"source": ["datadrop"]}))
    events.put_targets(Rule="observer", EventBusName=bus, Targets=[{"Id": "q", "Arn": arn}])
    return sqs, queue


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> Iterator[AwsHarness]:
    """The stack's settings; a test may change some with `@pytest.mark.parametrize("aws", [{...}], indirect=True)`."""
    settings = local_settings(compute="sagemaker").model_copy(update=getattr(request, "param", {}))
    for name, value in settings.as_environment().items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        session = boto3.session.Session(region_name="us-east-1")
        provision(settings, session)
        services = Services.from_settings(settings, session)
        harness = AwsHarness(services=services, session=session)

        def record(params: dict[str, Any], model: Any, **_: Any) -> None:
            harness.calls.append((model.name, copy.deepcopy(params)))

        services.sagemaker.meta.events.register("before-parameter-build.sagemaker.*", record)
        harness._sqs, harness._observer = observe_bus(session, settings.event_bus_name)  # type: ignore[attr-defined]
        use_services(services)
        try:
            yield harness
        finally:
            use_services(None)
