"""The local stack's parts that need no processes: snapshots of moto's state, the request lock, the
long-poll test, the events log reader and the in-flight receipts."""

from __future__ import annotations

import json
import pickle
import threading
import time
from pathlib import Path
from typing import Any

import boto3
import pytest
from datadrop.local import aws_server, service
from datadrop.local.runtime import InFlightReceipts
from moto import mock_aws


def test_a_snapshot_brings_back_objects_items_and_queued_messages(tmp_path: Path) -> None:
    snapshot = tmp_path / aws_server.SNAPSHOT_NAME
    with mock_aws():
        s3, sqs = boto3.client("s3"), boto3.client("sqs")
        s3.create_bucket(Bucket="data")
        s3.put_object(Bucket="data", Key="incoming/a.csv", Body=b"x,y\n1,2\n")
        queue = sqs.create_queue(QueueName="work")["QueueUrl"]
        sqs.send_message(QueueUrl=queue, MessageBody="pending")
        aws_server.write_snapshot(snapshot, aws_server.snapshot_bytes())
    with mock_aws():  # a fresh, empty AWS
        assert boto3.client("s3").list_buckets()["Buckets"] == []
        assert aws_server.restore_snapshot(snapshot)
        assert boto3.client("s3").get_object(Bucket="data", Key="incoming/a.csv")["Body"].read() == b"x,y\n1,2\n"
        sqs = boto3.client("sqs")
        messages = sqs.receive_message(QueueUrl=sqs.get_queue_url(QueueName="work")["QueueUrl"])["Messages"]
        assert [message["Body"] for message in messages] == ["pending"]
    assert not snapshot.with_suffix(".partial").exists()  # written aside, then renamed


def test_no_snapshot_is_a_new_stack_and_an_unreadable_one_is_an_error(tmp_path: Path) -> None:
    assert aws_server.restore_snapshot(tmp_path / "none.pickle") is False
    garbage = tmp_path / "garbage.pickle"
    garbage.write_bytes(b"\x80\x05not really")
    with pytest.raises(aws_server.SnapshotError):
        aws_server.restore_snapshot(garbage)
    foreign = tmp_path / "foreign.pickle"
    foreign.write_bytes(pickle.dumps({"format": 99}))
    with pytest.raises(aws_server.SnapshotError, match="not a datadrop snapshot of format 1"):
        aws_server.restore_snapshot(foreign)


def test_the_server_refuses_to_start_on_a_broken_snapshot_and_leaves_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / aws_server.SNAPSHOT_NAME).write_bytes(b"broken")
    assert aws_server.serve(tmp_path, 0) == aws_server.EXIT_BAD_SNAPSHOT
    error = capsys.readouterr().err
    assert "cannot be read" in error and "Nothing was started" in error and ".broken" in error
    assert (tmp_path / aws_server.SNAPSHOT_NAME).read_bytes() == b"broken"


def test_a_snapshot_waits_for_requests_in_flight_and_holds_new_ones() -> None:
    lock = aws_server.SharedExclusiveLock()
    order: list[str] = []
    request_started = threading.Event()

    def request() -> None:
        with lock.shared():
            request_started.set()
            time.sleep(0.1)
            order.append("request done")

    worker = threading.Thread(target=request)
    worker.start()
    request_started.wait()
    with lock.exclusive():
        order.append("snapshot")
    worker.join()
    assert order == ["request done", "snapshot"]


@pytest.mark.parametrize(
    ("environ", "body", "long_poll"),
    [
        ({"HTTP_X_AMZ_TARGET": "AmazonSQS.ReceiveMessage"}, b'{"QueueUrl": "q", "WaitTimeSeconds": 20}', True),
        ({"HTTP_X_AMZ_TARGET": "AmazonSQS.ReceiveMessage"}, b'{"QueueUrl": "q"}', False),
        ({"HTTP_X_AMZ_TARGET": "AmazonSQS.SendMessage"}, b'{"QueueUrl": "q", "WaitTimeSeconds": 20}', False),
        ({}, b"Action=ReceiveMessage&QueueUrl=q&WaitTimeSeconds=5", True),
        ({}, b"Action=ReceiveMessage&WaitTimeSeconds=0&QueueUrl=q", False),
        ({}, b"Action=PutObject", False),
    ],
)
def test_only_sqs_long_polls_skip_the_snapshot_lock(environ: dict[str, Any], body: bytes, long_poll: bool) -> None:
    assert aws_server._is_long_poll(environ, body) is long_poll


def _event(event_id: str, kind: str = "ModelDeployed") -> str:
    return json.dumps({"id": event_id, "detail-type": kind, "detail": {"dataset": "d"}}) + "\n"


def test_the_events_log_gives_each_event_once_and_never_half_a_line(tmp_path: Path) -> None:
    home = service.StackHome(tmp_path)
    # A worker killed between writing an event and acknowledging it writes it again after restart;
    # the last line is still being written.
    home.events.write_text(_event("a") + _event("b") + _event("a") + '{"id": "c", "detail-ty')
    assert [event["id"] for event in service.read_events(home, follow=False)] == ["a", "b"]
    with home.events.open("a") as handle:
        handle.write('pe": "X", "detail": {}}\n')
    assert [event["id"] for event in service.read_events(home, follow=False)] == ["a", "b", "c"]
    start = len((_event("a") + _event("b")).encode())
    assert [event["id"] for event in service.read_events(home, follow=False, start=start)] == ["a", "c"]


def test_following_the_log_yields_heartbeats_while_quiet(tmp_path: Path) -> None:
    home = service.StackHome(tmp_path)
    home.events.write_text(_event("a"))
    follower = service.read_events(home, follow=True, poll=0.01)
    assert next(follower)["id"] == "a"
    assert next(follower) == {"_heartbeat": True}
    with home.events.open("a") as handle:
        handle.write(_event("b"))
    assert next(follower)["id"] == "b"


def test_receipts_in_flight_survive_a_crash_and_are_released_at_the_next_start(tmp_path: Path) -> None:
    path = tmp_path / "inflight.json"
    with mock_aws():
        sqs = boto3.client("sqs")
        queue = sqs.create_queue(QueueName="work")["QueueUrl"]
        sqs.send_message(QueueUrl=queue, MessageBody="job")
        received = sqs.receive_message(QueueUrl=queue, VisibilityTimeout=900)["Messages"][0]
        InFlightReceipts(path).add(received["ReceiptHandle"], queue)  # ... and the worker dies here
        assert "Messages" not in sqs.receive_message(QueueUrl=queue)  # invisible for 15 minutes
        InFlightReceipts(path).release(sqs)  # the next worker, at its start
        again = sqs.receive_message(QueueUrl=queue)["Messages"]
        assert [message["Body"] for message in again] == ["job"]
    assert json.loads(path.read_text()) == {}


def test_a_snapshot_taken_while_a_long_poll_waits_restores_a_queue_nobody_waits_on(tmp_path: Path) -> None:
    snapshot = tmp_path / aws_server.SNAPSHOT_NAME
    with mock_aws():
        sqs = boto3.client("sqs")
        queue = sqs.create_queue(QueueName="work")["QueueUrl"]
        waiting = threading.Thread(target=lambda: sqs.receive_message(QueueUrl=queue, WaitTimeSeconds=2))
        waiting.start()
        time.sleep(0.3)  # the receive now waits on the queue's condition
        aws_server.write_snapshot(snapshot, aws_server.snapshot_bytes())
        waiting.join()
    with mock_aws():
        assert aws_server.restore_snapshot(snapshot)
        from moto.sqs.models import sqs_backends

        restored = sqs_backends["123456789012"]["us-east-1"].queues["work"]
        assert not restored._messages_lock._waiters  # a fresh condition, not the dead poller's
        sqs = boto3.client("sqs")
        sqs.send_message(QueueUrl=queue, MessageBody="after")
        assert [m["Body"] for m in sqs.receive_message(QueueUrl=queue, WaitTimeSeconds=1)["Messages"]] == ["after"]
