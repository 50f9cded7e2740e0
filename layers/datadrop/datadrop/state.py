"""Pipeline state in one DynamoDB table, with an outbox for the events each change announces.

Items (pk DATASET#<dataset>):
- a dataset version: sk VERSION#<version>;
- each of its runs: sk VERSION#<version>#RUN#<nnnn>;
- an evaluation (a model scored on a test split): sk EVALUATION#<evaluation id>;
- a rejected upload: sk REJECTED#<key>#<version id or etag>.
Resource names map to their run (pk RESOURCE#<kind>#<name>), so an event about a job, model or
endpoint config is traced by lookup, never by parsing its name.

Every change is one conditional UpdateItem: the transition table below says which status may
follow which, so a duplicate or out-of-order event finds the condition false and changes nothing.
The events a change must announce are written into the same item, in the same request (the
outbox); `flush` publishes them and removes each once EventBridge accepted it. A crash anywhere
between the decision and the publication leaves the events in the outbox, and the next attempt
(the retried invocation, or the sweeper) publishes them: no event is lost, and none is published
for a change that did not happen.

Items that need watching carry `attention` (a sparse index, by-attention): a version in a
non-terminal status carries its status, and any item with unpublished events carries OUTBOX.
The sweeper queries it for what has been waiting too long.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from boto3.dynamodb.conditions import Attr, Key
from botocore.exceptions import ClientError

from datadrop.events import DatadropEvent, EventPublisher
from datadrop.records import (
    RUN_TRANSITIONS,
    TERMINAL_RUN_STATUSES,
    TERMINAL_VERSION_STATUSES,
    VERSION_TRANSITIONS,
    ChampionRecord,
    ChampionStatus,
    EndpointRecord,
    EndpointSlot,
    RunRecord,
    RunStatus,
    VersionRecord,
    VersionStatus,
)

__all__ = [  # the state's schema, re-exported: callers import statuses and records from here
    "RUN_TRANSITIONS",
    "TERMINAL_RUN_STATUSES",
    "TERMINAL_VERSION_STATUSES",
    "VERSION_TRANSITIONS",
    "ChampionRecord",
    "ChampionStatus",
    "EndpointRecord",
    "EndpointSlot",
    "RunRecord",
    "RunStatus",
    "VersionRecord",
    "VersionStatus",
]

ATTENTION_INDEX = "by-attention"
MAX_ADOPTION_TRIES = 50
OUTBOX = "OUTBOX"


def predecessors(to: StrEnum, table: dict[Any, frozenset[Any]]) -> set[Any]:
    return {status for status, successors in table.items() if to in successors}


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def _to_dynamo(document: Any) -> Any:
    """DynamoDB wants Decimal, not float (and lists, not tuples)."""
    if isinstance(document, float):
        return Decimal(repr(document))
    if isinstance(document, dict):
        return {key: _to_dynamo(value) for key, value in document.items()}
    if isinstance(document, (list, tuple)):
        return [_to_dynamo(value) for value in document]
    return document


def _from_dynamo(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() and "." not in str(value) else float(value)
    if isinstance(value, dict):
        return {key: _from_dynamo(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_from_dynamo(item) for item in value]
    return value


def dataset_key(dataset: str) -> str:
    return f"DATASET#{dataset}"


def version_key(version: str) -> str:
    return f"VERSION#{version}"


def run_key(version: str, run_index: int) -> str:
    return f"VERSION#{version}#RUN#{run_index:04d}"


@dataclass(frozen=True)
class ItemKey:
    pk: str
    sk: str

    def as_dict(self) -> dict[str, str]:
        return {"pk": self.pk, "sk": self.sk}


@dataclass(frozen=True)
class ResourceOwner:
    """The run a SageMaker resource belongs to."""

    dataset: str
    version: str
    run_index: int
    attempt: int


@dataclass(frozen=True)
class RunState:
    """Where one run stands: what fan-out (free slots) and fan-in (all done?) need, read without
    the rest of the run's record, so a version of many runs stays cheap to look at."""

    run_index: int
    attempt: int
    status: RunStatus


@dataclass(frozen=True)
class OutboxEntry:
    event_id: str
    detail_type: str
    detail: str  # the detail as published, JSON


def _event_id(key: ItemKey, milestone: str, detail_type: str) -> str:
    """Stable for one announcement of one change: a retry re-publishes the same id, never a new one."""
    return hashlib.sha256(f"{key.pk}|{key.sk}|{milestone}|{detail_type}".encode()).hexdigest()[:32]


def _outbox_entries(key: ItemKey, milestone: str, events: Sequence[DatadropEvent]) -> dict[str, dict[str, Any]]:
    entries: dict[str, dict[str, Any]] = {}
    created = datetime.now(UTC).isoformat(timespec="microseconds")  # orders announcements across items
    for sequence, event in enumerate(events):
        event_id = _event_id(key, milestone, event.DETAIL_TYPE)
        stamped = event.model_copy(update={"event_id": event_id})
        entries[event_id] = {
            "detail_type": event.DETAIL_TYPE,
            "detail": stamped.model_dump_json(),
            "created_at": created,
            "sequence": sequence,
        }
    return entries


class _Update:
    """An UpdateItem being composed: SET/REMOVE clauses, conditions, names and values."""

    def __init__(self) -> None:
        self.sets: list[str] = []
        self.removes: list[str] = []
        self.conditions: list[str] = ["attribute_exists(pk)"]
        self.names: dict[str, str] = {}
        self.values: dict[str, Any] = {}

    def name(self, attribute: str) -> str:
        placeholder = f"#n{len(self.names)}"
        self.names[placeholder] = attribute
        return placeholder

    def value(self, value: Any) -> str:
        placeholder = f":v{len(self.values)}"
        self.values[placeholder] = value
        return placeholder

    def set(self, attribute: str, value: Any) -> None:
        self.sets.append(f"{self.name(attribute)} = {self.value(value)}")

    def request(self, key: ItemKey) -> dict[str, Any]:
        expression = []
        if self.sets:
            expression.append("SET " + ", ".join(self.sets))
        if self.removes:
            expression.append("REMOVE " + ", ".join(self.removes))
        request: dict[str, Any] = {
            "Key": key.as_dict(),
            "UpdateExpression": " ".join(expression),
            "ConditionExpression": " AND ".join(f"({condition})" for condition in self.conditions),
            "ExpressionAttributeNames": self.names,
        }
        if self.values:
            request["ExpressionAttributeValues"] = _to_dynamo(self.values)
        return request


@dataclass
class StateStore:
    table: Any  # boto3 DynamoDB Table resource
    publisher: EventPublisher | None = None
    # Items this process wrote events into and has not flushed yet (flush_version's fast path).
    _written: set[ItemKey] = field(default_factory=set)

    # -- keys -----------------------------------------------------------------------------------
    @staticmethod
    def version_item(dataset: str, version: str) -> ItemKey:
        return ItemKey(dataset_key(dataset), version_key(version))

    @staticmethod
    def evaluation_item(dataset: str, evaluation_id: str) -> ItemKey:
        return ItemKey(dataset_key(dataset), f"EVALUATION#{evaluation_id}")

    @staticmethod
    def rejection_item(dataset: str, source_id: str) -> ItemKey:
        return ItemKey(dataset_key(dataset), f"REJECTED#{source_id}")

    @staticmethod
    def run_item(dataset: str, version: str, run_index: int) -> ItemKey:
        return ItemKey(dataset_key(dataset), run_key(version, run_index))

    @staticmethod
    def champion_item(dataset: str, version: str, champion_version: str) -> ItemKey:
        return ItemKey(dataset_key(dataset), f"{version_key(version)}#CHAMPION#{champion_version}")

    # -- the champion, re-scored on a version's test split ----------------------------------------
    def start_champion(self, record: ChampionRecord) -> bool:
        """Record the champion's evaluation of a version's test split, EVALUATING, and map its
        transform job to it; False when it was recorded before."""
        key = self.champion_item(record.dataset, record.version, record.champion_version)
        now = now_iso()
        item = {**key.as_dict(), "kind": "champion", **record.model_dump(mode="json", exclude_none=True)}
        item.update(created_at=now, updated_at=now)
        self.table.put_item(
            Item={
                "pk": f"RESOURCE#champion-transform-job#{record.transform_job}",
                "sk": "RESOURCE",
                "kind": "resource",
                "dataset": record.dataset,
                "version": record.version,
                "champion_version": record.champion_version,
            }
        )
        return self._put_if_absent(_to_dynamo(item))

    def get_champion(self, dataset: str, version: str, champion_version: str) -> ChampionRecord | None:
        item = self.get(self.champion_item(dataset, version, champion_version))
        return ChampionRecord.model_validate(item) if item else None

    def find_champion_transform(self, job_name: str) -> tuple[str, str, str] | None:
        """(dataset, version judged, champion version) of a champion's transform job."""
        item = self.table.get_item(
            Key={"pk": f"RESOURCE#champion-transform-job#{job_name}", "sk": "RESOURCE"}, ConsistentRead=True
        ).get("Item")
        if not item:
            return None
        return str(item["dataset"]), str(item["version"]), str(item["champion_version"])

    def finish_champion(self, dataset: str, version: str, champion_version: str, to: ChampionStatus, **attributes: Any) -> bool:
        """EVALUATING → EVALUATED or FAILED, once; False when it was not EVALUATING."""
        update = _Update()
        update.conditions.append(f"{update.name('status')} = {update.value(ChampionStatus.EVALUATING.value)}")
        for name, value in {"status": to.value, "updated_at": now_iso(), **attributes}.items():
            update.set(name, value)
        return self._update(self.champion_item(dataset, version, champion_version), update)

    # -- creation -------------------------------------------------------------------------------
    def create_version(
        self, dataset: str, version: str, attributes: dict[str, Any], publish: Sequence[DatadropEvent] = ()
    ) -> bool:
        """Record a prepared dataset version and what it announces; False when it already exists."""
        key = self.version_item(dataset, version)
        item = {
            "kind": "version",
            "dataset": dataset,
            "version": version,
            "status": VersionStatus.PREPARED.value,
            "attention": VersionStatus.PREPARED.value,
            "attempt": 1,
            "running": 0,  # runs in TRAINING: see claim_training_slot
            **attributes,
        }
        return self._put_new(key, item, _outbox_entries(key, f"{VersionStatus.PREPARED}#1", publish))

    def record_rejection(
        self, dataset: str, source_id: str, attributes: dict[str, Any], publish: Sequence[DatadropEvent] = ()
    ) -> bool:
        key = self.rejection_item(dataset, source_id)
        outbox = _outbox_entries(key, "rejected", publish)
        item = {"kind": "rejection", "dataset": dataset, **attributes}
        if outbox:
            item["attention"] = OUTBOX
        return self._put_new(key, item, outbox)

    def plan_run(self, dataset: str, version: str, run_index: int, attempt: int, attributes: dict[str, Any]) -> bool:
        """The run of this attempt, PENDING; an earlier attempt's record of the same run is replaced.
        False when this attempt's record exists already (a retried invocation)."""
        item = self._new_run(dataset, version, run_index, attempt, RunStatus.PENDING, attributes)
        try:
            self.table.put_item(
                Item=_to_dynamo(item),
                ConditionExpression="attribute_not_exists(pk) OR attempt < :attempt",
                ExpressionAttributeValues={":attempt": attempt},
            )
        except ClientError as error:
            if error.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def _new_run(
        self, dataset: str, version: str, run_index: int, attempt: int, status: RunStatus, attributes: dict[str, Any]
    ) -> dict[str, Any]:
        """A run's item as first written (planned PENDING, or adopted TRAINING)."""
        now = now_iso()
        return {
            **self.run_item(dataset, version, run_index).as_dict(),
            "kind": "run",
            "dataset": dataset,
            "version": version,
            "run_index": run_index,
            "attempt": attempt,
            "status": status.value,
            "created_at": now,
            "updated_at": now,
            "status_since": now,
            "outbox": {},
            "milestones": {},
            **attributes,
        }

    def adopt_run(
        self, dataset: str, version: str, attempt: int, kind: str, name: str, attributes: Callable[[int], dict[str, Any]]
    ) -> ResourceOwner | None:
        """Make a job that SageMaker started for the version (a tuning job's training job) a run of
        its current attempt, in TRAINING, holding a training slot: the next free run index, the
        name → run mapping and the slot, in one transaction. Idempotent: a job adopted before
        returns its run. None when the version no longer trains this attempt."""
        for _ in range(MAX_ADOPTION_TRIES):
            existing = self.find_resource(kind, name)
            if existing is not None:
                return existing
            taken = [run.run_index for run in self.run_states(dataset, version, attempt)]
            run_index = max(taken, default=0) + 1
            run = self._new_run(dataset, version, run_index, attempt, RunStatus.TRAINING, attributes(run_index))
            now = run["created_at"]
            reasons = self._transact(
                [
                    {
                        "Put": {
                            "Item": _to_dynamo(run),
                            "ConditionExpression": "attribute_not_exists(pk) OR attempt < :attempt",
                            "ExpressionAttributeValues": {":attempt": attempt},
                        }
                    },
                    {
                        "Put": {
                            "Item": self._resource_item(kind, name, ResourceOwner(dataset, version, run_index, attempt)),
                            "ConditionExpression": "attribute_not_exists(pk)",
                        }
                    },
                    {
                        "Update": {
                            "Key": self.version_item(dataset, version).as_dict(),
                            "UpdateExpression": "SET running = if_not_exists(running, :zero) + :one, updated_at = :now",
                            "ConditionExpression": "#status = :training AND attempt = :attempt",
                            "ExpressionAttributeNames": {"#status": "status"},
                            "ExpressionAttributeValues": {
                                ":zero": 0,
                                ":one": 1,
                                ":now": now,
                                ":training": VersionStatus.TRAINING.value,
                                ":attempt": attempt,
                            },
                        }
                    },
                ]
            )
            if reasons is None:
                return ResourceOwner(dataset, version, run_index, attempt)
            if reasons[2] == "ConditionalCheckFailed":
                return None  # decided, failed or retried meanwhile
            # The index was taken by another adoption, or the job was adopted meanwhile: look again.
        raise RuntimeError(f"could not adopt {kind} {name} into {dataset}/{version}: too many concurrent adoptions")

    @staticmethod
    def _resource_item(kind: str, name: str, owner: ResourceOwner) -> dict[str, Any]:
        return {
            "pk": f"RESOURCE#{kind}#{name}",
            "sk": "RESOURCE",
            "kind": "resource",
            "dataset": owner.dataset,
            "version": owner.version,
            "run_index": owner.run_index,
            "attempt": owner.attempt,
        }

    def record_evaluation(self, dataset: str, evaluation_id: str, attributes: dict[str, Any]) -> bool:
        """Remember an evaluation once (the same model on the same split scores the same); False
        when it was recorded before."""
        key = self.evaluation_item(dataset, evaluation_id)
        item = {**key.as_dict(), "kind": "evaluation", "dataset": dataset, "evaluation_id": evaluation_id, **attributes}
        return self._put_if_absent(_to_dynamo(item))

    def get_evaluation(self, dataset: str, evaluation_id: str) -> dict[str, Any] | None:
        return self.get(self.evaluation_item(dataset, evaluation_id))

    def map_resource(self, kind: str, name: str, owner: ResourceOwner) -> None:
        """Remember which run `name` belongs to, before the resource is created (so its events find it)."""
        self.table.put_item(Item=self._resource_item(kind, name, owner))

    def find_resource(self, kind: str, name: str) -> ResourceOwner | None:
        item = self.table.get_item(Key={"pk": f"RESOURCE#{kind}#{name}", "sk": "RESOURCE"}, ConsistentRead=True).get("Item")
        if not item:
            return None
        return ResourceOwner(str(item["dataset"]), str(item["version"]), int(item["run_index"]), int(item["attempt"]))

    # -- changes --------------------------------------------------------------------------------
    def transition_version(
        self,
        dataset: str,
        version: str,
        to: VersionStatus,
        allowed_from: Iterable[VersionStatus] | None = None,
        publish: Sequence[DatadropEvent] = (),
        milestone: str | None = None,
        remove: Sequence[str] = (),
        **attributes: Any,
    ) -> bool:
        """Move a version to `to` from any status the transition table allows (or `allowed_from`,
        a subset of those), recording the events to announce; False when the condition fails."""
        allowed = predecessors(to, VERSION_TRANSITIONS)
        if allowed_from is not None:
            allowed &= set(allowed_from)
        key = self.version_item(dataset, version)
        attention = to.value if to not in TERMINAL_VERSION_STATUSES else (OUTBOX if publish else None)
        return self._change(key, to, allowed, publish, milestone, attention, remove, attributes)

    def transition_run(
        self,
        dataset: str,
        version: str,
        run_index: int,
        to: RunStatus,
        allowed_from: Iterable[RunStatus] | None = None,
        publish: Sequence[DatadropEvent] = (),
        attempt: int | None = None,
        **attributes: Any,
    ) -> bool:
        if to == RunStatus.TRAINING:
            raise ValueError("a run enters TRAINING only with a slot: claim_training_slot")
        # A run leaves TRAINING only giving its slot back (leave_training), never here.
        allowed = predecessors(to, RUN_TRANSITIONS) - {RunStatus.TRAINING}
        if allowed_from is not None:
            allowed &= set(allowed_from)
        key = self.run_item(dataset, version, run_index)
        conditions = [] if attempt is None else [("attempt", attempt)]
        return self._change(key, to, allowed, publish, None, OUTBOX if publish else None, (), attributes, conditions)

    def record(self, key: ItemKey, milestone: str, publish: Sequence[DatadropEvent] = (), **attributes: Any) -> bool:
        """Record a milestone of an item once (no status change), with the events it announces;
        False when it was recorded before."""
        update = _Update()
        flag = update.name("milestones")
        mark = update.name(milestone)
        update.conditions.append(f"attribute_not_exists({flag}.{mark})")
        update.sets.append(f"{flag}.{mark} = {update.value(now_iso())}")
        for name, value in attributes.items():
            update.set(name, value)
        update.set("updated_at", now_iso())
        entries = _outbox_entries(key, milestone, publish)
        self._add_outbox(update, entries)
        if entries:
            update.sets.append(f"{update.name('attention')} = if_not_exists({update.name('attention')}, {update.value(OUTBOX)})")
        recorded = self._update(key, update)
        if recorded and entries:
            self._written.add(key)
        return recorded

    def set_attributes(self, key: ItemKey, **attributes: Any) -> None:
        """Plain bookkeeping that no status depends on (e.g. why a run is waiting)."""
        update = _Update()
        for name, value in attributes.items():
            update.set(name, value)
        self._update(key, update)

    # -- endpoints ------------------------------------------------------------------------------
    @staticmethod
    def endpoint_item(endpoint_name: str) -> ItemKey:
        return ItemKey(f"ENDPOINT#{endpoint_name}", "ENDPOINT")

    def get_endpoint(self, endpoint_name: str) -> EndpointRecord | None:
        item = self.get(self.endpoint_item(endpoint_name))
        return EndpointRecord.model_validate(item) if item else None

    def ensure_endpoint(self, endpoint_name: str, dataset: str) -> None:
        """The endpoint's record, created empty on its first deployment."""
        now = now_iso()
        item = {
            **self.endpoint_item(endpoint_name).as_dict(),
            "kind": "endpoint",
            "endpoint_name": endpoint_name,
            "dataset": dataset,
            "created_at": now,
            "updated_at": now,
        }
        self._put_if_absent(item)  # False: it exists already, which is all this asks

    def change_endpoint(
        self,
        endpoint_name: str,
        sets: dict[str, EndpointSlot | None] | None = None,
        when: dict[str, str | None] | None = None,
    ) -> bool:
        """One conditional write of the endpoint's record. `sets` gives serving, in_flight or
        waiting a slot (None removes it); `when` says which version each of them must hold now
        (None: none). False when the record is not as the caller read it."""
        update = _Update()
        for slot, value in (sets or {}).items():
            if value is None:
                update.removes.append(update.name(slot))
            else:
                update.set(slot, value.model_dump())
        update.set("updated_at", now_iso())
        for slot, version in (when or {}).items():
            if version is None:
                update.conditions.append(f"attribute_not_exists({update.name(slot)})")
            else:
                update.conditions.append(f"{update.name(slot)}.{update.name('version')} = {update.value(version)}")
        return self._update(self.endpoint_item(endpoint_name), update)

    # -- training slots -------------------------------------------------------------------------
    # `running` on the version item counts its runs in TRAINING, and `started` the runs of the
    # attempt that left PENDING. A run enters and leaves TRAINING only together with those counts,
    # in one transaction, so they never drift whatever crashes: no more than `max_parallel`
    # training jobs are ever in progress, and a version whose runs all started (started =
    # run_count) or that has a run in training (running > 0) is known not to need a look at
    # every run.
    def claim_training_slot(self, dataset: str, version: str, run_index: int, attempt: int, max_parallel: int) -> str:
        """PENDING → TRAINING for one run if the version has a free slot. Returns "claimed",
        "full" (no free slot) or "taken" (the run is no longer PENDING)."""
        now = now_iso()
        version_update = {
            "Key": self.version_item(dataset, version).as_dict(),
            "UpdateExpression": (
                "SET running = if_not_exists(running, :zero) + :one, started = if_not_exists(started, :zero) + :one, "
                "updated_at = :now"
            ),
            "ConditionExpression": "#status = :training AND (attribute_not_exists(running) OR running < :max)",
            "ExpressionAttributeNames": {"#status": "status"},
            "ExpressionAttributeValues": {":zero": 0, ":one": 1, ":now": now, ":max": max_parallel, ":training": "TRAINING"},
        }
        run_update = self._run_status_update(dataset, version, run_index, attempt, RunStatus.PENDING, RunStatus.TRAINING, now, {})
        reasons = self._transact([{"Update": version_update}, {"Update": run_update}])
        if reasons is None:
            return "claimed"
        return "taken" if reasons[1] == "ConditionalCheckFailed" else "full"

    def leave_training(self, dataset: str, version: str, run_index: int, attempt: int, to: RunStatus, **attributes: Any) -> bool:
        """TRAINING → `to` for one run, giving its slot back; False when the run was not TRAINING."""
        now = now_iso()
        # Back to PENDING (no capacity): it counts as not started again, so fill_slots looks for it.
        unstarted = ", started = started - :one" if to == RunStatus.PENDING else ""
        version_update = {
            "Key": self.version_item(dataset, version).as_dict(),
            "UpdateExpression": f"SET running = running - :one{unstarted}, updated_at = :now",
            "ConditionExpression": "running > :zero",
            "ExpressionAttributeValues": {":zero": 0, ":one": 1, ":now": now},
        }
        run_update = self._run_status_update(dataset, version, run_index, attempt, RunStatus.TRAINING, to, now, attributes)
        return self._transact([{"Update": version_update}, {"Update": run_update}]) is None

    def _run_status_update(
        self,
        dataset: str,
        version: str,
        run_index: int,
        attempt: int,
        source: RunStatus,
        to: RunStatus,
        now: str,
        attributes: dict[str, Any],
    ) -> dict[str, Any]:
        update = _Update()
        update.conditions = [
            f"{update.name('status')} = {update.value(source.value)}",
            f"{update.name('attempt')} = {update.value(attempt)}",
        ]
        for name, value in {"status": to.value, "updated_at": now, "status_since": now, **attributes}.items():
            update.set(name, value)
        return update.request(self.run_item(dataset, version, run_index))

    def _transact(self, actions: list[dict[str, Any]]) -> list[str] | None:
        """One TransactWriteItems of Put and Update actions on this table; None when it committed,
        else each item's cancellation reason ("None" for the items whose condition held). The
        table resource's client serializes the values itself, as for update_item."""
        items = []
        for action in actions:
            ((verb, request),) = action.items()
            request = dict(request)
            if "ExpressionAttributeValues" in request:
                request["ExpressionAttributeValues"] = _to_dynamo(request["ExpressionAttributeValues"])
            items.append({verb: {"TableName": self.table.name, **request}})
        try:
            self.table.meta.client.transact_write_items(TransactItems=items)
        except ClientError as error:
            if error.response["Error"]["Code"] != "TransactionCanceledException":
                raise
            reasons = error.response.get("CancellationReasons") or [{"Code": "Unknown"}] * len(items)
            return [str(reason.get("Code", "None")) for reason in reasons]
        return None

    # -- reads ----------------------------------------------------------------------------------
    def _put_if_absent(self, item: dict[str, Any]) -> bool:
        """PutItem only if no item has its key; False when one had."""
        try:
            self.table.put_item(Item=item, ConditionExpression="attribute_not_exists(pk)")
        except ClientError as error:
            if error.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def get(self, key: ItemKey) -> dict[str, Any] | None:
        item = self.table.get_item(Key=key.as_dict(), ConsistentRead=True).get("Item")
        return _from_dynamo(item) if item else None

    def get_version(self, dataset: str, version: str) -> VersionRecord | None:
        item = self.get(self.version_item(dataset, version))
        return VersionRecord.model_validate(item) if item else None

    def get_run(self, dataset: str, version: str, run_index: int) -> RunRecord | None:
        item = self.get(self.run_item(dataset, version, run_index))
        return RunRecord.model_validate(item) if item else None

    def list_runs(self, dataset: str, version: str, attempt: int | None = None) -> list[RunRecord]:
        """The version's runs by index (of `attempt` only, when given), every page of them."""
        items = self._query_all(
            KeyConditionExpression=Key("pk").eq(dataset_key(dataset)) & Key("sk").begins_with(f"{version_key(version)}#RUN#"),
            ConsistentRead=True,
        )
        runs = sorted((RunRecord.model_validate(item) for item in items), key=lambda run: run.run_index)
        return [run for run in runs if attempt is None or run.attempt == attempt]

    def run_states(self, dataset: str, version: str, attempt: int | None = None) -> list[RunState]:
        """Each run's index, attempt and status (of `attempt` only, when given), by run index."""
        items = self._query_all(
            KeyConditionExpression=Key("pk").eq(dataset_key(dataset)) & Key("sk").begins_with(f"{version_key(version)}#RUN#"),
            ProjectionExpression="run_index, attempt, #status",
            ExpressionAttributeNames={"#status": "status"},
            ConsistentRead=True,
        )
        states = [RunState(int(item["run_index"]), int(item.get("attempt", 1)), RunStatus(item["status"])) for item in items]
        return sorted((run for run in states if attempt is None or run.attempt == attempt), key=lambda run: run.run_index)

    def list_versions(self, dataset: str) -> list[VersionRecord]:
        items = self._query_all(
            KeyConditionExpression=Key("pk").eq(dataset_key(dataset)) & Key("sk").begins_with("VERSION#"),
            FilterExpression=Attr("kind").eq("version"),
            ConsistentRead=True,
        )
        return [VersionRecord.model_validate(item) for item in items]

    def needing_attention(self, attention: str, updated_before: str) -> list[dict[str, Any]]:
        """Items in `attention` (a non-terminal status, or OUTBOX) not changed since `updated_before`."""
        return self._query_all(
            IndexName=ATTENTION_INDEX,
            KeyConditionExpression=Key("attention").eq(attention) & Key("updated_at").lt(updated_before),
        )

    # -- the outbox -----------------------------------------------------------------------------
    def flush(self, *keys: ItemKey) -> int:
        """Publish what the items' outboxes hold, oldest first across the items; each entry is removed
        once EventBridge accepted it. Returns how many were published; raises PublishFailed if any
        was refused (those stay in the outbox for the next attempt)."""
        pending: list[tuple[str, int, ItemKey, OutboxEntry]] = []
        for key in keys:
            self._written.discard(key)
            item = self.table.get_item(Key=key.as_dict(), ConsistentRead=True).get("Item") or {}
            for event_id, entry in (item.get("outbox") or {}).items():
                outbox_entry = OutboxEntry(event_id, str(entry["detail_type"]), str(entry["detail"]))
                pending.append((str(entry["created_at"]), int(entry["sequence"]), key, outbox_entry))
        if not pending:
            return 0
        if self.publisher is None:
            raise RuntimeError("StateStore has no publisher to flush its outbox with")
        pending.sort(key=lambda waiting: (waiting[0], waiting[1]))
        owner = {waiting[3].event_id: waiting[2] for waiting in pending}
        published = self.publisher.publish_entries(
            [waiting[3] for waiting in pending], on_published=lambda event_id: self._forget(owner[event_id], event_id)
        )
        for key in dict.fromkeys(waiting[2] for waiting in pending):
            self._settle(key)
        return published

    def flush_version(self, dataset: str, version: str, run_index: int | None = None, discover: bool = True) -> int:
        """Publish what the version's items have waiting: those this process gave events to and,
        unless `discover` is off, the version item and the run `run_index` (the only items a step
        about that run writes events into) even when this process gave them none: it may be the
        retry of an invocation that died before publishing. Anything else is the sweeper's."""
        prefix = ItemKey(dataset_key(dataset), version_key(version))
        keys = [key for key in self._written if key.pk == prefix.pk and key.sk.startswith(prefix.sk)]
        if discover:
            keys += [prefix] + ([self.run_item(dataset, version, run_index)] if run_index is not None else [])
        return self.flush(*dict.fromkeys(keys))

    def _forget(self, key: ItemKey, event_id: str) -> None:
        self.table.update_item(
            Key=key.as_dict(), UpdateExpression="REMOVE outbox.#id", ExpressionAttributeNames={"#id": event_id}
        )

    def _settle(self, key: ItemKey) -> None:
        """An item with nothing left to publish stops needing attention, unless its status needs it."""
        try:
            self.table.update_item(
                Key=key.as_dict(),
                UpdateExpression="REMOVE attention",
                ConditionExpression="size(outbox) = :zero AND attention = :outbox",
                ExpressionAttributeValues={":zero": 0, ":outbox": OUTBOX},
            )
        except ClientError as error:
            if error.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise

    # -- internals ------------------------------------------------------------------------------
    def _put_new(self, key: ItemKey, item: dict[str, Any], outbox: dict[str, dict[str, Any]]) -> bool:
        now = now_iso()
        document = {
            **key.as_dict(),
            **item,
            "created_at": now,
            "updated_at": now,
            "status_since": now,
            "outbox": outbox,
            "milestones": {},
        }
        if not self._put_if_absent(_to_dynamo(document)):
            return False
        if outbox:
            self._written.add(key)
        return True

    def _change(
        self,
        key: ItemKey,
        to: StrEnum,
        allowed: set[Any],
        publish: Sequence[DatadropEvent],
        milestone: str | None,
        attention: str | None,
        remove: Sequence[str],
        attributes: dict[str, Any],
        equals: Sequence[tuple[str, Any]] = (),
    ) -> bool:
        if not allowed:
            raise ValueError(f"no status may move to {to}")
        if publish and to in allowed and milestone is None:
            # A re-entrant transition would announce again on every retry: name the milestone.
            raise ValueError(f"a re-entrant transition to {to} that publishes needs a milestone")
        # Two attempts when re-entrant: a real change (status_since moves) or a repeat (it stays).
        attempts: list[set[Any]] = [allowed - {to}, {to}] if to in allowed else [allowed]
        for from_statuses in attempts:
            if not from_statuses:
                continue
            update = _Update()
            status = update.name("status")
            update.conditions.append(f"{status} IN ({', '.join(update.value(s.value) for s in sorted(from_statuses))})")
            for name, value in equals:
                update.conditions.append(f"{update.name(name)} = {update.value(value)}")
            update.set("status", to.value)
            now = now_iso()
            update.set("updated_at", now)
            if to not in from_statuses:
                update.set("status_since", now)
            if attention is None:
                update.removes.append(update.name("attention"))
            else:
                update.set("attention", attention)
            for name in remove:
                update.removes.append(update.name(name))
            for name, value in attributes.items():
                update.set(name, value)
            if milestone is not None:
                flag, mark = update.name("milestones"), update.name(milestone)
                if publish:
                    update.conditions.append(f"attribute_not_exists({flag}.{mark})")
                update.sets.append(f"{flag}.{mark} = if_not_exists({flag}.{mark}, {update.value(now)})")
            self._add_outbox(update, _outbox_entries(key, milestone or to.value, publish))
            if self._update(key, update):
                if publish:
                    self._written.add(key)
                return True
        return False

    @staticmethod
    def _add_outbox(update: _Update, entries: dict[str, dict[str, Any]]) -> None:
        """Entries go into the item's `outbox` map (every item is created with one: DynamoDB cannot
        create a map and set a key inside it in one request)."""
        if not entries:
            return
        outbox = update.name("outbox")
        for event_id, entry in entries.items():
            update.sets.append(f"{outbox}.{update.name(event_id)} = {update.value(entry)}")

    def _update(self, key: ItemKey, update: _Update) -> bool:
        try:
            response = self.table.update_item(**update.request(key), ReturnValues="ALL_NEW")
        except ClientError as error:
            if error.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return False
            raise
        item = response.get("Attributes") or {}
        if item.get("outbox") and "attention" not in item:
            # Events are still waiting (an earlier change's): keep the item where the sweeper looks.
            self.table.update_item(
                Key=key.as_dict(), UpdateExpression="SET attention = :outbox", ExpressionAttributeValues={":outbox": OUTBOX}
            )
        return True

    def _query_all(self, **request: Any) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        while True:
            response = self.table.query(**request)
            items.extend(_from_dynamo(item) for item in response.get("Items", []))
            if "LastEvaluatedKey" not in response:
                return items
            request["ExclusiveStartKey"] = response["LastEvaluatedKey"]
