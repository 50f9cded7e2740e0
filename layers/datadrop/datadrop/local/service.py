"""The local stack as a service: `datadrop up`, `status`, `down`, and the worker they start.

Two background processes, on 127.0.0.1 only, with everything they keep in one home directory
(`~/.datadrop`, or `--home` / DATADROP_HOME):

  aws      moto's server (`datadrop.local.aws_server`): S3, DynamoDB, EventBridge, SQS and the
           SageMaker control plane, saved to `aws-state.pickle` as it changes;
  worker   this module's `work`: the local runtime (`LocalStack`) against that server. It
           provisions the stack from template.yaml once, delivers rule targets to the real
           handlers, runs training and transform jobs in up to `--workers` processes, serves the endpoints, runs
           the sweeper, and appends every event datadrop publishes to `events.jsonl`. The local
           SageMaker's jobs, models and endpoints are saved to `compute-journal.pickle`.

They are separate so that the worker can die (a crash, `kill -9`) the way a Lambda function or a
training instance does, while AWS's state lives on: `datadrop up` then starts a new worker, whose
sweeper finishes what the old one left.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from datadrop.local import ports
from datadrop.local.aws_server import EXIT_BAD_SNAPSHOT, SNAPSHOT_NAME

DEFAULT_PORT = 4599
REGION = "us-east-1"
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
STARTUP_TIMEOUT = 90.0


def default_home() -> Path:
    return Path(os.environ.get("DATADROP_HOME") or Path.home() / ".datadrop")


@dataclass(frozen=True)
class StackHome:
    """Where a local stack keeps its state, logs and process ids."""

    root: Path

    @property
    def stack_file(self) -> Path:
        return self.root / "stack.json"

    @property
    def snapshot(self) -> Path:
        return self.root / SNAPSHOT_NAME

    @property
    def journal(self) -> Path:
        return self.root / "compute-journal.pickle"

    @property
    def events(self) -> Path:
        return self.root / "events.jsonl"

    @property
    def endpoints(self) -> Path:
        return self.root / "endpoints.json"

    @property
    def dead_letters(self) -> Path:
        return self.root / "dead-letters.jsonl"

    @property
    def ready(self) -> Path:
        return self.root / "worker.ready"

    @property
    def work(self) -> Path:
        return self.root / "work"

    def log(self, process: str) -> Path:
        return self.root / "logs" / f"{process}.log"

    def read_stack(self) -> dict[str, Any] | None:
        try:
            return json.loads(self.stack_file.read_text())
        except (OSError, ValueError):
            return None


@dataclass(frozen=True)
class Stack:
    """A running (or half-running) local stack, as `stack.json` describes it."""

    home: StackHome
    port: int
    aws_pid: int | None
    worker_pid: int | None
    started: str

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def aws_alive(self) -> bool:
        return _alive(self.aws_pid, "datadrop.local.aws_server") and _answers(self.endpoint_url)

    @property
    def worker_alive(self) -> bool:
        return _alive(self.worker_pid, "datadrop.local.service")

    def environment(self) -> dict[str, str]:
        """What boto3 and the AWS CLI need to talk to this stack."""
        return {"AWS_ENDPOINT_URL": self.endpoint_url, "AWS_DEFAULT_REGION": REGION, **CREDENTIALS}


def find_stack(home: StackHome) -> Stack | None:
    """The stack recorded in `home`, if its AWS answers (the worker may still be down)."""
    recorded = home.read_stack()
    if recorded is None:
        return None
    stack = Stack(home, int(recorded["port"]), recorded.get("aws_pid"), recorded.get("worker_pid"), recorded.get("started", ""))
    return stack if stack.aws_alive else None


def names() -> dict[str, str]:
    from datadrop.local.runtime import local_settings

    settings = local_settings()
    return {
        "data bucket": settings.data_bucket_name,
        "artifact bucket": settings.artifact_bucket_name,
        "event bus": settings.event_bus_name,
        "state table": settings.state_table_name,
    }


# ---------------------------------------------------------------------------------------------
# up / down / status
# ---------------------------------------------------------------------------------------------
class StartFailed(Exception):
    pass


def up(home: StackHome, port: int, workers: int, template: Path, out: TextIO) -> Stack:
    """Start what is not running (AWS, then the worker) and wait until the worker serves."""
    home.root.mkdir(parents=True, exist_ok=True)
    (home.root / "logs").mkdir(exist_ok=True)
    stack = find_stack(home)
    if stack is not None and stack.worker_alive:
        print(f"datadrop is already up in {home.root}", file=out)
        return stack
    if stack is None:
        recorded = home.read_stack()
        orphan = recorded.get("worker_pid") if recorded else None
        if orphan and _alive(orphan, "datadrop.local.service"):
            _terminate(orphan)  # a worker without its AWS is of no use
        if not ports.is_free(port):
            raise StartFailed(f"port {port} on 127.0.0.1 is taken; give another with --port")
        if not home.snapshot.exists() and (home.journal.exists() or home.events.exists()):
            # Never a silent empty stack: jobs and endpoints without their AWS state would be nonsense.
            raise StartFailed(
                f"{home.snapshot} (the saved AWS state) is missing, but {home.root} holds a stack's jobs and events: "
                f"restore the file, or start an empty stack in another --home (or after removing {home.root})"
            )
        state = f"restoring {home.snapshot}" if home.snapshot.exists() else "new, empty"
        print(f"starting AWS (moto) on 127.0.0.1:{port} ({state}) ...", file=out, flush=True)
        aws = _spawn(
            [sys.executable, "-m", "datadrop.local.aws_server", "--home", str(home.root), "--port", str(port)], home.log("aws")
        )
        stack = Stack(home, port, aws.pid, None, datetime.now(UTC).isoformat(timespec="seconds"))
        _wait_for(lambda: _answers(stack.endpoint_url), aws, home.log("aws"), "AWS (moto)")
    else:
        print(f"AWS (moto) is up on {stack.endpoint_url}; the worker is not: starting it", file=out, flush=True)
    home.ready.unlink(missing_ok=True)
    print(f"starting the worker ({workers} job process(es)) ...", file=out, flush=True)
    worker = _spawn(
        [sys.executable, "-m", "datadrop.local.service", "--home", str(home.root), "--port", str(stack.port),
         "--workers", str(workers), "--template", str(template)],
        home.log("worker"),
        environment=stack.environment(),
    )  # fmt: skip
    stack = Stack(home, stack.port, stack.aws_pid, worker.pid, stack.started)
    _write_stack(stack)
    _wait_for(home.ready.exists, worker, home.log("worker"), "the worker")
    for line in home.ready.read_text().splitlines():
        print(f"  {line}", file=out)
    return stack


def describe(stack: Stack, out: TextIO) -> None:
    """What a user needs to use the stack: the endpoint, the names, the environment lines."""
    found = names()
    print(f"datadrop is up (home {stack.home.root}, since {stack.started})", file=out)
    print(f"  AWS endpoint     {stack.endpoint_url}  (S3, DynamoDB, EventBridge, SQS, SageMaker; 127.0.0.1 only)", file=out)
    for label, value in found.items():
        print(f"  {label:<16} {value}", file=out)
    print(f"  worker           pid {stack.worker_pid}; log {stack.home.log('worker')}", file=out)
    data = found["data bucket"]
    print("Use it with the AWS CLI or boto3 as you would AWS:", file=out)
    print(f"  export AWS_ENDPOINT_URL={stack.endpoint_url} AWS_DEFAULT_REGION={REGION}", file=out)
    print(" ".join(["  export", *(f"{key}={value}" for key, value in CREDENTIALS.items())]), file=out)
    print(f"  aws s3 cp examples/penguins/species.yaml s3://{data}/config/penguins.yaml", file=out)
    print(f"  aws s3 cp examples/penguins/penguins.csv s3://{data}/incoming/penguins/", file=out)
    print("  datadrop events --follow        # the flow, as it happens", file=out)
    print("  datadrop runs penguins          # every version's runs", file=out)


def down(home: StackHome, out: TextIO) -> bool:
    """Stop the worker (it saves its jobs and endpoints), then AWS (it saves its state)."""
    recorded = home.read_stack()
    if recorded is None:
        print(f"datadrop: no local stack in {home.root}", file=out)
        return False
    stopped = []
    for process, pid, marker in (
        ("worker", recorded.get("worker_pid"), "datadrop.local.service"),
        ("AWS (moto)", recorded.get("aws_pid"), "datadrop.local.aws_server"),
    ):
        if pid and _alive(pid, marker):
            _terminate(pid)
            stopped.append(f"{process} (pid {pid})")
    home.stack_file.unlink(missing_ok=True)
    home.ready.unlink(missing_ok=True)
    print(f"stopped {', '.join(stopped) or 'nothing (it was not running)'}; the state stays in {home.root}", file=out)
    return True


def status(home: StackHome, out: TextIO) -> bool:
    """What runs, and what the stack holds. False when nothing runs."""
    recorded = home.read_stack()
    if recorded is None:
        saved = " (a saved stack is there: `datadrop up` brings it back)" if home.snapshot.exists() else ""
        print(f"datadrop is down (home {home.root}){saved}", file=out)
        return False
    stack = Stack(home, int(recorded["port"]), recorded.get("aws_pid"), recorded.get("worker_pid"), recorded.get("started", ""))
    aws, worker = stack.aws_alive, stack.worker_alive
    print(f"AWS (moto)  {'up' if aws else 'DOWN'}  {stack.endpoint_url}  pid {stack.aws_pid}", file=out)
    print(f"worker      {'up' if worker else 'DOWN'}  pid {stack.worker_pid}  log {home.log('worker')}", file=out)
    for name, url in read_endpoints(home).items():
        print(f"endpoint    {name}  {url}/invocations", file=out)
    if aws:
        for line in _versions(stack):
            print(line, file=out)
    if home.dead_letters.exists():
        count = len(home.dead_letters.read_text().splitlines())
        print(f"dead letters {count}: events a handler failed on 3 times, kept in {home.dead_letters}", file=out)
    if aws and not worker:
        print("the worker is not running: `datadrop up` starts it again (and finishes what it left)", file=out)
    return aws and worker


def _versions(stack: Stack) -> list[str]:
    """One line per dataset version in the state table."""
    import boto3

    from datadrop.local.runtime import local_settings

    table = boto3.client(
        "dynamodb",
        region_name=REGION,
        endpoint_url=stack.endpoint_url,
        aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
    )
    lines = []
    for page in table.get_paginator("scan").paginate(TableName=local_settings().state_table_name):
        for item in page["Items"]:
            pk, sk = item["pk"]["S"], item["sk"]["S"]
            if pk.startswith("DATASET#") and sk.startswith("VERSION#") and "#RUN#" not in sk:
                status = item.get("status", {}).get("S", "?")
                lines.append(f"version     {pk.removeprefix('DATASET#')} {sk.removeprefix('VERSION#')}  {status}")
    return sorted(lines)


def read_endpoints(home: StackHome) -> dict[str, str]:
    try:
        return json.loads(home.endpoints.read_text())
    except (OSError, ValueError):
        return {}


# ---------------------------------------------------------------------------------------------
# the worker process
# ---------------------------------------------------------------------------------------------
def work(home: StackHome, workers: int, template: Path) -> int:
    """The worker: run the local runtime against the stack's AWS until SIGTERM."""
    os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")
    from datadrop.local.compute import JournalError
    from datadrop.local.runtime import LocalStack

    def log(message: str) -> None:
        print(f"{datetime.now(UTC):%H:%M:%S.%f}"[:-3] + f" {message}", flush=True)

    events = home.events.open("a", encoding="utf-8")

    def record(event: dict[str, Any]) -> None:
        events.write(json.dumps(event, separators=(",", ":")) + "\n")
        events.flush()
        log(f"event {event['detail-type']} {event['detail'].get('dataset', '')} {event['detail'].get('version', '')}")

    def on_compute(message: str) -> None:
        log(f"local SageMaker: {message}")
        _save_endpoints(home, stack)

    stack = LocalStack(
        template_path=template,
        workdir=home.work,
        on_event=record,
        on_compute=on_compute,
        compute_workers=workers,
        journal=home.journal,
        keep_history=False,
        inflight_path=home.root / "inflight.json",
    )

    def dead_letter(delivery: Any) -> None:
        with home.dead_letters.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps({"function": delivery.function, "error": delivery.error, "event": delivery.event}) + "\n")
        log(f"DEAD LETTER {delivery.function}: {delivery.error} (kept in {home.dead_letters})")

    stack.on_dead_letter = dead_letter
    stack.on_delivery = lambda delivery: log(
        f"{delivery.function} <- {delivery.event.get('detail-type')}: " + (f"FAILED {delivery.error}" if delivery.error else "ok")
    )
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    signal.signal(signal.SIGINT, lambda *_: stopping.set())
    try:
        stack.start()
    except JournalError as error:
        log(f"datadrop: {error}")
        return EXIT_BAD_SNAPSHOT
    try:
        _save_endpoints(home, stack)
        stack.compute.warm_up()
        stack.warm()
        for line in stack.restored:
            log(line)
        ready = [("provisioned from " + template.name) if stack.provisioned else "found the stack provisioned (restart)"]
        ready += stack.restored
        home.ready.write_text("\n".join(ready) + "\n")
        log("worker ready: " + "; ".join(ready))
        stack.serve(stopping)
    finally:
        stack.stop()
        events.close()
        log("worker stopped; jobs and endpoints saved")
    return 0


def _save_endpoints(home: StackHome, stack: Any) -> None:
    """endpoints.json: each endpoint's URL, for `datadrop predict`, `status` and curl users."""
    compute = getattr(stack, "compute", None)
    if compute is None:
        return
    found = {name: url for name in compute.endpoint_names() if (url := compute.endpoint_url(name))}
    partial = home.endpoints.with_suffix(".partial")
    partial.write_text(json.dumps(found, indent=2))
    os.replace(partial, home.endpoints)


# ---------------------------------------------------------------------------------------------
# events.jsonl
# ---------------------------------------------------------------------------------------------
def read_events(home: StackHome, follow: bool, start: int = 0, poll: float = 0.1) -> Iterator[dict[str, Any]]:
    """Every event in the log from byte `start`, each once (a worker killed between writing and
    acknowledging one writes it again after its restart); with `follow`, then the new ones as they
    come, forever, and `{"_heartbeat": true}` after each quiet `poll` so a follower can look around."""
    seen: set[str] = set()
    position = start
    while True:
        try:
            with home.events.open("rb") as handle:
                handle.seek(position)
                for raw in handle:
                    if not raw.endswith(b"\n"):
                        break  # a line still being written: read it whole next time
                    position += len(raw)
                    event = json.loads(raw)
                    if event.get("id") not in seen:
                        seen.add(event.get("id"))
                        yield event
        except FileNotFoundError:
            pass
        if not follow:
            return
        time.sleep(poll)
        yield {"_heartbeat": True}


# ---------------------------------------------------------------------------------------------
# processes
# ---------------------------------------------------------------------------------------------
def _spawn(command: list[str], log: Path, environment: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as handle:
        return subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # not in the terminal's process group: Ctrl-C there leaves it running
            env={**os.environ, **(environment or {})},
        )


def _wait_for(ready: Any, process: subprocess.Popen[bytes], log: Path, what: str) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while not ready():
        code = process.poll()
        if code is not None:
            raise StartFailed(f"{what} stopped (exit status {code}):\n{_tail(log)}")
        if time.monotonic() > deadline:
            process.terminate()
            raise StartFailed(f"{what} did not start within {STARTUP_TIMEOUT:.0f} s:\n{_tail(log)}")
        time.sleep(0.1)


def _tail(log: Path, lines: int = 15) -> str:
    try:
        return "\n".join("  " + line for line in log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return f"  (no log at {log})"


def _write_stack(stack: Stack) -> None:
    document = {"port": stack.port, "aws_pid": stack.aws_pid, "worker_pid": stack.worker_pid, "started": stack.started}
    stack.home.stack_file.write_text(json.dumps(document, indent=2))


def _alive(pid: int | None, marker: str) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    cmdline = Path(f"/proc/{pid}/cmdline")
    if cmdline.exists():  # Linux: make sure the pid was not reused by another program
        try:
            text = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            return False
        return marker in text
    return True


def _terminate(pid: int, timeout: float = 20.0) -> None:
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
            if Path(f"/proc/{pid}/stat").exists() and Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z":
                return  # a zombie of ours: it has exited
        except ProcessLookupError:
            return
        time.sleep(0.05)
    os.killpg(pid, signal.SIGKILL)


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/moto-api/", timeout=2):
            return True
    except (urllib.error.URLError, OSError):
        return False


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m datadrop.local.service", description="the local stack's worker")
    parser.add_argument("--home", type=Path, required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--template", type=Path, required=True)
    args = parser.parse_args(argv)
    return work(StackHome(args.home), args.workers, args.template)


if __name__ == "__main__":
    sys.exit(main())
