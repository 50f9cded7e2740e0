"""A test double for SageMaker endpoints at the compute port, where moto falls short.

moto 5.2 has no UpdateEndpoint and puts every endpoint InService at once. The double keeps the
real adapter (datadrop.compute.SageMakerCompute) and moto for everything moto does (CreateEndpoint,
DeleteEndpoint, DescribeEndpoint's other fields: every request validated by botocore and
tests/strict_requests.py), and plays SageMaker's part for the rest:
- UpdateEndpoint is answered at botocore's before-call hook, after the request was built and
  validated as AWS would validate it; SageMaker's rule applies: only an InService (or
  UpdateRollbackFailed) endpoint takes it, anything else gets a ValidationException;
- DescribeEndpoint reports the status, config and FailureReason the test moved the endpoint to;
- `change` moves the endpoint and returns the "SageMaker Endpoint State Change" event SageMaker
  would send, built on the documented samples (tests/fixtures/aws-events), in either spelling of
  the status, with or without EndpointConfigName.
"""

from __future__ import annotations

import copy
import json
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from botocore.awsrequest import AWSResponse, HTTPHeaders
from botocore.exceptions import ClientError
from datadrop.compute import SageMakerCompute
from moto.core.botocore_stubber import MockRawResponse

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "aws-events"
DOCS_SAMPLE = FIXTURES / "sagemaker_endpoint_state_change.docs.json"  # IN_SERVICE, with EndpointConfigName
MLSPACE_SAMPLE = FIXTURES / "sagemaker_endpoint_state_change.mlspace_derived.json"  # IN_SERVICE, no config, null reason

# DescribeEndpoint's spelling → the documented event's.
DOCS_SPELLING = {
    "InService": "IN_SERVICE",
    "Creating": "CREATING",
    "Updating": "UPDATING",
    "SystemUpdating": "SYSTEM_UPDATING",
    "RollingBack": "ROLLING_BACK",
    "OutOfService": "OUT_OF_SERVICE",
    "Deleting": "DELETING",
    "Failed": "FAILED",
    "UpdateRollbackFailed": "UPDATE_ROLLBACK_FAILED",
}
UPDATABLE = {"InService", "UpdateRollbackFailed"}


@dataclass
class _Endpoint:
    status: str
    config: str
    failure_reason: str | None = None
    pending_config: str | None = None


@dataclass
class SageMakerEndpointsDouble(SageMakerCompute):
    endpoints: dict[str, _Endpoint] = field(default_factory=dict)
    updates: list[dict[str, Any]] = field(default_factory=list)  # the UpdateEndpoint requests, as sent
    refuse_updates: str | None = None  # a ValidationException message SageMaker answers UpdateEndpoint with

    def __post_init__(self) -> None:
        self.client.meta.events.register_first("before-call.sagemaker.UpdateEndpoint", self._answer_update_endpoint)

    # -- what the adapter calls ------------------------------------------------------------------
    def create_endpoint(self, request: dict[str, Any]) -> bool:
        created = super().create_endpoint(request)
        if created:
            self.endpoints[request["EndpointName"]] = _Endpoint("Creating", request["EndpointConfigName"])
        return created

    def delete_endpoint(self, name: str) -> bool:
        endpoint = self.endpoints.get(name)
        if endpoint is not None and endpoint.status in {"Creating", "Updating", "SystemUpdating", "RollingBack"}:
            raise ClientError({"Error": {"Code": "ValidationException", "Message": f"Cannot delete {name}"}}, "DeleteEndpoint")
        self.endpoints.pop(name, None)
        return super().delete_endpoint(name)

    def describe_endpoint(self, name: str) -> dict[str, Any] | None:
        description = super().describe_endpoint(name)
        endpoint = self.endpoints.get(name)
        if description is None or endpoint is None:
            return description
        description = {**description, "EndpointStatus": endpoint.status, "EndpointConfigName": endpoint.config}
        description.pop("FailureReason", None)
        if endpoint.failure_reason:
            description["FailureReason"] = endpoint.failure_reason
        return description

    def _answer_update_endpoint(self, params: dict[str, Any], **_: Any) -> tuple[AWSResponse, dict[str, Any]]:
        request = json.loads(params["body"])  # as serialized: built and validated
        name = request["EndpointName"]
        endpoint = self.endpoints.get(name)
        metadata = {"RequestId": "double", "HTTPStatusCode": 200, "HTTPHeaders": {}, "RetryAttempts": 0}
        if endpoint is None or endpoint.status not in UPDATABLE or self.refuse_updates:
            status = endpoint.status if endpoint else "missing"
            message = f"Cannot update in-progress endpoint {name}" if endpoint else f"Could not find endpoint {name}"
            error = {"Error": {"Code": "ValidationException", "Message": self.refuse_updates or f"{message} (it is {status})"}}
            return AWSResponse("double", 400, HTTPHeaders(), MockRawResponse(b"")), {
                **error,
                "ResponseMetadata": {**metadata, "HTTPStatusCode": 400},
            }
        self.updates.append(request)
        endpoint.status, endpoint.pending_config, endpoint.failure_reason = "Updating", request["EndpointConfigName"], None
        arn = f"arn:aws:sagemaker:{self.region}:123456789012:endpoint/{name}"
        return AWSResponse("double", 200, HTTPHeaders(), MockRawResponse(b"")), {"EndpointArn": arn, "ResponseMetadata": metadata}

    # -- what the test does ----------------------------------------------------------------------
    def change(
        self,
        name: str,
        status: str,
        *,
        config: str | None = None,
        failure_reason: str | None = None,
        spelling: Literal["docs", "api"] = "api",
        event_config: bool = True,
    ) -> dict[str, Any]:
        """Move the endpoint to `status` (on `config`, by default the one it runs, or the one being
        rolled out when it goes InService after an update) and return SageMaker's event of it."""
        endpoint = self.endpoints[name]
        if config is None:
            config = endpoint.pending_config if status == "InService" and endpoint.pending_config else endpoint.config
        endpoint.status, endpoint.config, endpoint.failure_reason = status, config, failure_reason
        if status in {"InService", "Failed", "UpdateRollbackFailed"}:
            endpoint.pending_config = None
        return self.event(name, status, config=config if event_config else None, failure_reason=failure_reason, spelling=spelling)

    def event(
        self,
        name: str,
        status: str,
        *,
        config: str | None,
        failure_reason: str | None = None,
        spelling: Literal["docs", "api"] = "api",
    ) -> dict[str, Any]:
        """A "SageMaker Endpoint State Change" event (a fresh EventBridge id: a new delivery)."""
        sample = DOCS_SAMPLE if config is not None else MLSPACE_SAMPLE
        event = copy.deepcopy(json.loads(sample.read_text()))
        event["id"] = str(uuid.uuid4())
        event["region"] = self.region
        arn = f"arn:aws:sagemaker:{self.region}:123456789012:endpoint/{name}"
        event["resources"] = [arn]
        detail = event["detail"]
        detail.update(EndpointName=name, EndpointArn=arn, EndpointStatus=DOCS_SPELLING[status] if spelling == "docs" else status)
        detail.pop("EndpointConfigName", None)
        if config is not None:
            detail["EndpointConfigName"] = config
        detail["FailureReason"] = failure_reason  # the mlspace sample carries a null one
        if failure_reason is None and sample is DOCS_SAMPLE:
            detail.pop("FailureReason")
        return event
