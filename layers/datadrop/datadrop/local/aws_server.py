"""The local stack's AWS: moto's server on 127.0.0.1, whose state outlives the process.

State survives a restart as a snapshot of moto's in-memory backends (pickle), written atomically
to `<home>/aws-state.pickle` about once a second while requests change it (less often when a
snapshot takes longer than a tenth of that), and once more on SIGTERM. Why a snapshot and not moto's request recorder: replaying recorded requests would replay
their side effects too (every S3 upload would notify EventBridge again, every PutEvents would reach
the rule targets again), so a restart would run flows a second time. A snapshot restores the
state, queued messages included, and nothing happens twice.

A snapshot is taken between requests: every request holds a shared lock, the snapshot the exclusive
one, so it never sees half a DynamoDB transaction. SQS long polls (a subscriber waiting up to 20 s)
do not hold the lock, or they would hold snapshots and every other request back; a snapshot that
races one is retried (a receive only moves a message between visible and in flight).

A snapshot that cannot be read stops the server with a message naming the file and what to do
(move it aside to start empty): never a silent empty stack.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import pickle
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from io import BytesIO
from pathlib import Path
from typing import Any

from datadrop.local.moto_registry import announce_model_package_changes
from datadrop.local.moto_speedups import speed_up_moto
from datadrop.local.pickling import allow_locks

# The services the local stack uses (template.yaml's resources, the SageMaker control plane, and
# what boto3 callers touch on the way).
SERVICES = ("s3", "dynamodb", "events", "sqs", "sagemaker", "iam", "sts", "sagemaker-runtime")
SNAPSHOT_NAME = "aws-state.pickle"
SNAPSHOT_FORMAT = 1
EXIT_BAD_SNAPSHOT = 3


class SnapshotError(Exception):
    """The snapshot exists and cannot be restored."""


class SharedExclusiveLock:
    """Many requests at once, or one snapshot alone. Readers are preferred: a snapshot waits for a
    moment with no request in flight (there are many; requests are short)."""

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._readers = 0
        self._writing = False

    @contextmanager
    def shared(self) -> Iterator[None]:
        with self._condition:
            while self._writing:
                self._condition.wait()
            self._readers += 1
        try:
            yield
        finally:
            with self._condition:
                self._readers -= 1
                self._condition.notify_all()

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        with self._condition:
            while self._writing or self._readers:
                self._condition.wait()
            self._writing = True
        try:
            yield
        finally:
            with self._condition:
                self._writing = False
                self._condition.notify_all()


def _is_long_poll(environ: dict[str, Any], body: bytes) -> bool:
    target = environ.get("HTTP_X_AMZ_TARGET", "")
    if target == "AmazonSQS.ReceiveMessage":
        try:
            return int(json.loads(body or b"{}").get("WaitTimeSeconds", 0)) > 0
        except (ValueError, AttributeError):
            return False
    text = body.decode("utf-8", "replace") + "&" + environ.get("QUERY_STRING", "")
    return "Action=ReceiveMessage" in text and "WaitTimeSeconds=" in text and "WaitTimeSeconds=0&" not in text + "&"


class SnapshottingApp:
    """WSGI middleware around moto's app: counts changes and keeps snapshots out of requests."""

    def __init__(self, app: Callable[..., Iterable[bytes]]) -> None:
        self.app = app
        self.lock = SharedExclusiveLock()
        self.requests = 0

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        # The whole body, also of a chunked upload (it has no Content-Length).
        length = int(environ.get("CONTENT_LENGTH") or 0)
        if length:
            body = environ["wsgi.input"].read(length)
        else:
            body = environ["wsgi.input"].read() if environ.get("wsgi.input_terminated") else b""
        environ["wsgi.input"] = BytesIO(body)
        if _is_long_poll(environ, body):
            return list(self.app(environ, start_response))
        with self.lock.shared():
            self.requests += 1
            return list(self.app(environ, start_response))  # the whole answer, inside the lock


def snapshot_bytes() -> bytes:
    from moto.backends import get_backend

    allow_locks()
    state = {name: dict(get_backend(name)) for name in SERVICES}  # type: ignore[call-overload]
    return pickle.dumps({"format": SNAPSHOT_FORMAT, "services": state}, protocol=pickle.HIGHEST_PROTOCOL)


def write_snapshot(path: Path, data: bytes) -> None:
    partial = path.with_suffix(".partial")
    with partial.open("wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(partial, path)  # atomic: a crash leaves the old snapshot or the new one, never half


def restore_snapshot(path: Path) -> bool:
    """Load the snapshot into moto's backends; False when there is none (a new stack)."""
    from moto.backends import get_backend

    if not path.exists():
        return False
    allow_locks()
    try:
        document = pickle.loads(path.read_bytes())
        if not isinstance(document, dict) or document.get("format") != SNAPSHOT_FORMAT:
            raise SnapshotError(f"it is not a datadrop snapshot of format {SNAPSHOT_FORMAT}")
        services = document["services"]
    except SnapshotError:
        raise
    except Exception as error:  # whatever unpickling raises, the file is unreadable
        raise SnapshotError(f"{type(error).__name__}: {error}") from error
    for name, content in services.items():
        backend = get_backend(name)  # type: ignore[call-overload]
        backend.clear()
        backend.update(content)
    return True


def serve(home: Path, port: int, snapshot_every: float = 1.0) -> int:
    """Run until SIGTERM/SIGINT; the state is in `<home>/aws-state.pickle` when this returns."""
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
    from werkzeug.serving import make_server

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # not a line per request
    speed_up_moto()
    announce_model_package_changes()
    snapshot_path = home / SNAPSHOT_NAME
    try:
        restored = restore_snapshot(snapshot_path)
    except SnapshotError as error:
        print(
            f"datadrop: the saved AWS state {snapshot_path} cannot be read ({error}). Nothing was started and the "
            f"file is left as it is. To start with an empty stack, move it aside (mv {snapshot_path} "
            f"{snapshot_path}.broken); to keep the data, restore a copy of it.",
            file=sys.stderr,
            flush=True,
        )
        return EXIT_BAD_SNAPSHOT
    app = SnapshottingApp(DomainDispatcherApplication(create_backend_app))
    server = make_server("127.0.0.1", port, app, threaded=True, request_handler=MotoRequestHandler)
    stopping = threading.Event()
    saved = {"requests": app.requests}

    def save() -> float:
        """Snapshot if anything changed; returns the seconds it took. Says so when it cannot."""
        started = time.monotonic()
        problem: Exception | None = None
        for _ in range(5):
            with app.lock.exclusive():
                if app.requests == saved["requests"] and snapshot_path.exists():
                    return 0.0
                try:
                    data = snapshot_bytes()
                except RuntimeError as error:  # a long poll changed a queue while it was pickled: once more
                    problem = error
                    continue
                saved["requests"] = app.requests
            write_snapshot(snapshot_path, data)
            return time.monotonic() - started
        print(f"datadrop: could not snapshot the AWS state (will try again): {problem}", file=sys.stderr, flush=True)
        return time.monotonic() - started

    def snapshots() -> None:
        # At most a tenth of the time goes to snapshots: a stack holding big uploads saves less often.
        wait = snapshot_every
        while not stopping.wait(wait):
            try:
                wait = max(snapshot_every, 10 * save())
            except Exception as error:  # noqa: BLE001 - a snapshot that failed is tried again, never silently dropped
                print(f"datadrop: could not snapshot the AWS state (will try again): {error!r}", file=sys.stderr, flush=True)

    def stop(_signum: int, _frame: Any) -> None:
        stopping.set()
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    saver = threading.Thread(target=snapshots, name="datadrop-aws-snapshots", daemon=True)
    saver.start()
    print(
        f"datadrop AWS (moto) on http://127.0.0.1:{server.server_port}, state "
        + (f"restored from {snapshot_path}" if restored else "new"),
        file=sys.stderr,
        flush=True,
    )
    started = time.monotonic()
    server.serve_forever(poll_interval=0.2)
    server.server_close()
    save()  # the final one, whatever changed since the last
    print(f"datadrop AWS stopped after {time.monotonic() - started:.0f} s; state saved to {snapshot_path}", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m datadrop.local.aws_server", description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path, required=True)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    return serve(args.home, args.port)


if __name__ == "__main__":
    sys.exit(main())
