"""The state store's outbox on moto: a change and its announcements are one write, published once."""

from __future__ import annotations

import json
from typing import Any

import pytest
from datadrop.events import PublishFailed, VersionFailed
from datadrop.state import ATTENTION_INDEX, OUTBOX, VERSION_TRANSITIONS, RunStatus, StateStore, VersionStatus, predecessors

from tests.integration.conftest import AwsHarness


def _version(aws: AwsHarness, status: VersionStatus = VersionStatus.TRAINING) -> StateStore:
    state = aws.services.state
    assert state.create_version("penguins", "0123456789ab", {"threshold": 0.9})
    if status is not VersionStatus.PREPARED:
        assert state.transition_version("penguins", "0123456789ab", VersionStatus.TRAINING)
    return state


def _failed(reason: str = "stuck") -> VersionFailed:
    return VersionFailed(dataset="penguins", version="0123456789ab", stage="training", reason=reason)


def _attention(aws: AwsHarness) -> list[str]:
    items = aws.services.state.table.scan(IndexName=ATTENTION_INDEX)["Items"]
    return sorted(str(item["attention"]) for item in items)


def test_a_change_and_its_event_are_written_together_and_published_once(aws: AwsHarness) -> None:
    state = _version(aws)
    assert state.transition_version("penguins", "0123456789ab", VersionStatus.FAILED, publish=[_failed()])
    item = state.get_version("penguins", "0123456789ab")
    assert item is not None and item.status == "FAILED" and len(item.outbox) == 1
    assert _attention(aws) == [OUTBOX]  # terminal, but an announcement is pending: the sweeper watches it
    assert aws.details("VersionFailed") == []

    assert state.flush_version("penguins", "0123456789ab") == 1
    assert state.flush_version("penguins", "0123456789ab") == 0  # nothing twice
    (published,) = aws.details("VersionFailed")
    assert published["reason"] == "stuck" and published["event_id"] == next(iter(item.outbox))
    assert state.get_version("penguins", "0123456789ab").outbox == {}  # type: ignore[union-attr]
    assert _attention(aws) == []  # settled


def test_a_refused_event_stays_in_the_outbox_and_goes_out_on_the_next_flush(
    aws: AwsHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = _version(aws)
    assert state.transition_version("penguins", "0123456789ab", VersionStatus.FAILED, publish=[_failed()])
    real_put_events = aws.services.events.client.put_events

    def refuse(**request: Any) -> dict[str, Any]:
        return {"FailedEntryCount": 1, "Entries": [{"ErrorCode": "InternalException", "ErrorMessage": "try again"}]}

    monkeypatch.setattr(aws.services.events.client, "put_events", refuse)
    with pytest.raises(PublishFailed, match="InternalException"):
        state.flush_version("penguins", "0123456789ab")
    assert len(state.get_version("penguins", "0123456789ab").outbox) == 1  # type: ignore[union-attr]

    monkeypatch.setattr(aws.services.events.client, "put_events", real_put_events)
    assert state.flush_version("penguins", "0123456789ab") == 1
    assert len(aws.details("VersionFailed")) == 1


def test_a_change_that_did_not_happen_announces_nothing(aws: AwsHarness) -> None:
    state = _version(aws, VersionStatus.PREPARED)
    # PREPARED may not become DEPLOYED: the condition fails, and neither status nor outbox change.
    assert not state.transition_version("penguins", "0123456789ab", VersionStatus.DEPLOYED, publish=[_failed()])
    item = state.get_version("penguins", "0123456789ab")
    assert item is not None and item.status == "PREPARED" and item.outbox == {}


def test_the_same_milestone_announces_once_whatever_the_retries(aws: AwsHarness) -> None:
    state = _version(aws)
    key = state.version_item("penguins", "0123456789ab")
    assert state.record(key, "training_started#1", publish=[_failed("first")])
    assert not state.record(key, "training_started#1", publish=[_failed("again")])  # a retried invocation
    state.flush_version("penguins", "0123456789ab")
    assert [detail["reason"] for detail in aws.details("VersionFailed")] == ["first"]


def test_a_re_entrant_transition_that_publishes_must_name_its_milestone(aws: AwsHarness) -> None:
    state = _version(aws)
    with pytest.raises(ValueError, match="milestone"):
        state.transition_version("penguins", "0123456789ab", VersionStatus.TRAINING, publish=[_failed()])


def test_events_of_several_items_go_out_oldest_first_in_one_request(aws: AwsHarness) -> None:
    state = _version(aws)
    assert state.plan_run("penguins", "0123456789ab", 1, 1, {"training_job": "j", "run_name": "r"})
    assert state.transition_run("penguins", "0123456789ab", 1, RunStatus.FAILED, publish=[_failed("run")])
    assert state.transition_version("penguins", "0123456789ab", VersionStatus.FAILED, publish=[_failed("version")])
    puts: list[dict[str, Any]] = []
    real = aws.services.events.client.put_events

    def spy(**request: Any) -> Any:
        puts.append(request)
        return real(**request)

    aws.services.events.client.put_events = spy  # type: ignore[method-assign]
    assert state.flush_version("penguins", "0123456789ab") == 2
    (request,) = puts
    assert [json.loads(entry["Detail"])["reason"] for entry in request["Entries"]] == ["run", "version"]


def test_the_transition_table_only_lets_a_failed_version_start_over() -> None:
    assert predecessors(VersionStatus.PREPARED, VERSION_TRANSITIONS) == {VersionStatus.FAILED}
    assert not VERSION_TRANSITIONS[VersionStatus.DEPLOYED] and not VERSION_TRANSITIONS[VersionStatus.REJECTED]
