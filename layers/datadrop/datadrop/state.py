"""Pipeline state in one DynamoDB table.

Each dataset version has one item (sk VERSION#<version>) and one item per run
(sk VERSION#<version>#RUN#<nn>). Every change is a conditional write naming the states it may
come from, so a duplicate or out-of-order event finds the condition false and changes nothing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal
from enum import StrEnum
from typing import Any

from boto3.dynamodb.conditions import Key
from botocore.exceptions import ClientError


class VersionStatus(StrEnum):
    PREPARED = "PREPARED"
    TRAINING = "TRAINING"
    APPROVED = "APPROVED"
    REJECTED = "REJECTED"  # evaluated, below the threshold
    FAILED = "FAILED"  # every run failed
    DEPLOYING = "DEPLOYING"
    DEPLOYED = "DEPLOYED"
    DEPLOYMENT_FAILED = "DEPLOYMENT_FAILED"


class RunStatus(StrEnum):
    TRAINING = "TRAINING"
    EVALUATING = "EVALUATING"
    EVALUATED = "EVALUATED"
    FAILED = "FAILED"


TERMINAL_RUN_STATUSES = frozenset({RunStatus.EVALUATED, RunStatus.FAILED})


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def _to_dynamo(document: dict[str, Any]) -> dict[str, Any]:
    """DynamoDB wants Decimal, not float."""
    return json.loads(json.dumps(document), parse_float=Decimal)


def _from_dynamo(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() and "." not in str(value) else float(value)
    if isinstance(value, dict):
        return {key: _from_dynamo(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_from_dynamo(item) for item in value]
    return value


def _pk(dataset: str) -> str:
    return f"DATASET#{dataset}"


def _version_sk(version: str) -> str:
    return f"VERSION#{version}"


def _run_sk(version: str, run_index: int) -> str:
    return f"VERSION#{version}#RUN#{run_index:02d}"


@dataclass
class StateStore:
    table: Any  # boto3 DynamoDB Table resource

    # -- creation -------------------------------------------------------------------------------
    def create_version(self, dataset: str, version: str, attributes: dict[str, Any]) -> bool:
        """Record a prepared dataset version; False when it already exists (same data + config)."""
        return self._put_new(
            {"pk": _pk(dataset), "sk": _version_sk(version), "kind": "version", "dataset": dataset,
             "version": version, "status": VersionStatus.PREPARED.value, **attributes}
        )

    def create_run(self, dataset: str, version: str, run_index: int, attributes: dict[str, Any]) -> bool:
        return self._put_new(
            {"pk": _pk(dataset), "sk": _run_sk(version, run_index), "kind": "run", "dataset": dataset,
             "version": version, "run_index": run_index, "status": RunStatus.TRAINING.value, **attributes}
        )

    def record_rejection(self, dataset: str, source_id: str, attributes: dict[str, Any]) -> bool:
        return self._put_new(
            {"pk": _pk(dataset), "sk": f"REJECTED#{source_id}", "kind": "rejection", "dataset": dataset, **attributes}
        )

    # -- transitions ----------------------------------------------------------------------------
    def transition_version(
        self, dataset: str, version: str, to: VersionStatus, allowed_from: set[VersionStatus], **attributes: Any
    ) -> bool:
        return self._transition(_pk(dataset), _version_sk(version), to, allowed_from, attributes)

    def transition_run(
        self, dataset: str, version: str, run_index: int, to: RunStatus, allowed_from: set[RunStatus], **attributes: Any
    ) -> bool:
        return self._transition(_pk(dataset), _run_sk(version, run_index), to, allowed_from, attributes)

    # -- reads ----------------------------------------------------------------------------------
    def get_version(self, dataset: str, version: str) -> dict[str, Any] | None:
        item = self.table.get_item(Key={"pk": _pk(dataset), "sk": _version_sk(version)}, ConsistentRead=True).get("Item")
        return _from_dynamo(item) if item else None

    def get_run(self, dataset: str, version: str, run_index: int) -> dict[str, Any] | None:
        item = self.table.get_item(Key={"pk": _pk(dataset), "sk": _run_sk(version, run_index)}, ConsistentRead=True).get("Item")
        return _from_dynamo(item) if item else None

    def list_runs(self, dataset: str, version: str) -> list[dict[str, Any]]:
        response = self.table.query(
            KeyConditionExpression=Key("pk").eq(_pk(dataset)) & Key("sk").begins_with(f"{_version_sk(version)}#RUN#"),
            ConsistentRead=True,
        )
        return [_from_dynamo(item) for item in response.get("Items", [])]

    # -- internals ------------------------------------------------------------------------------
    def _put_new(self, item: dict[str, Any]) -> bool:
        now = _now()
        try:
            self.table.put_item(
                Item=_to_dynamo({**item, "created_at": now, "updated_at": now}),
                ConditionExpression="attribute_not_exists(pk)",
            )
        except ClientError as error:
            if error.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def _transition(self, pk: str, sk: str, to: StrEnum, allowed_from: set[Any], attributes: dict[str, Any]) -> bool:
        names = {"#status": "status", "#updated_at": "updated_at"}
        values: dict[str, Any] = {":to": to.value, ":now": _now()}
        assignments = ["#status = :to", "#updated_at = :now"]
        for index, (name, value) in enumerate(attributes.items()):
            names[f"#a{index}"] = name
            values[f":a{index}"] = value
            assignments.append(f"#a{index} = :a{index}")
        allowed = sorted(status.value for status in allowed_from)
        for index, status in enumerate(allowed):
            values[f":from{index}"] = status
        condition = "attribute_exists(pk) AND #status IN (" + ", ".join(f":from{i}" for i in range(len(allowed))) + ")"
        try:
            self.table.update_item(
                Key={"pk": pk, "sk": sk},
                UpdateExpression="SET " + ", ".join(assignments),
                ConditionExpression=condition,
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=_to_dynamo(values),
            )
        except ClientError as error:
            if error.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return False
            raise
        return True
