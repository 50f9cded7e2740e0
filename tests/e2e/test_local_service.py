"""The local stack as a service, used as a newcomer uses it: `datadrop up` in the background, the
AWS CLI and boto3 against it, `datadrop events`, curl of the endpoint, `down` and `up` again.

Every process here is a real one (the CLI, moto's server, the worker and its training processes,
the AWS CLI, curl), started and stopped by the tests. The request validator is on in all of them
(tests/service_hooks/sitecustomize.py), and every event the stack publishes is checked against
schemas/ at the end of each test."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml
from datadrop.local import service as local_service

from tests import published_schemas
from tests.conftest import EXAMPLES, REPO

pytestmark = pytest.mark.e2e

DATADROP = Path(sys.executable).parent / "datadrop"
PENGUINS = EXAMPLES / "penguins" / "penguins.csv"
SPECIES = EXAMPLES / "penguins" / "species.yaml"
FLOW_TIMEOUT = 180


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _aws_cli() -> str:
    found = shutil.which("aws") or str(REPO / ".venv" / "awscli" / "bin" / "aws")
    assert Path(found).exists(), "the AWS CLI is missing: tests/run installs it (.ci/ensure-venv dev)"
    return found


def _service_environment() -> dict[str, str]:
    """The test's environment for the CLI and the processes it starts: no endpoint of the test's own,
    and the request validator on (sitecustomize)."""
    environment = {key: value for key, value in os.environ.items() if key != "AWS_ENDPOINT_URL"}
    # The library of this checkout, whatever checkout the environment's editable install points at.
    layer = str(REPO / "layers" / "datadrop")
    environment["PYTHONPATH"] = os.pathsep.join([str(REPO / "tests" / "service_hooks"), layer, str(REPO)])
    environment["DATADROP_STRICT_REQUESTS"] = "1"
    return environment


@dataclass
class Service:
    """A local stack in its own home, driven through the `datadrop` command."""

    home: Path
    port: int

    def datadrop(self, *args: str, timeout: float = FLOW_TIMEOUT, check: bool = True) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [str(DATADROP), *args, "--home", str(self.home)],
            check=False,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=_service_environment(),
        )
        if check:
            assert done.returncode == 0, f"datadrop {' '.join(args)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
        return done

    def up(self) -> str:
        return self.datadrop("up", "--port", str(self.port), "--workers", "2").stdout

    def down(self) -> None:
        self.datadrop("down", check=False)

    def logs(self) -> str:
        """The ends of the stack's logs, for a failure's message."""
        found = []
        for process in ("aws", "worker"):
            path = self.home / "logs" / f"{process}.log"
            found.append(f"--- {path}:\n" + (path.read_text()[-2500:] if path.exists() else "(none)"))
        return "\n".join(found)

    def client(self, service: str) -> Any:
        return boto3.client(service, endpoint_url=f"http://127.0.0.1:{self.port}", region_name="us-east-1")

    def stack(self) -> dict[str, Any]:
        return json.loads((self.home / "stack.json").read_text())

    def events(self) -> list[dict[str, Any]]:
        """The events as `datadrop events` gives them: the worker's log holds each at least once (a
        worker killed between logging one and acknowledging it logs it again), the reader once."""
        return list(local_service.read_events(local_service.StackHome(self.home), follow=False))

    def wait_for_event(self, detail_type: str, count: int = 1, timeout: float = FLOW_TIMEOUT) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = [event for event in self.events() if event["detail-type"] == detail_type]
            if len(found) >= count:
                return found
            time.sleep(0.2)
        log = (self.home / "logs" / "worker.log").read_text()[-3000:]
        raise AssertionError(f"no {count} x {detail_type} within {timeout:.0f} s; worker log ends:\n{log}")

    def check_published(self) -> None:
        """Every event is valid against schemas/, no announcement was published twice (each
        publication has an EventBridge id of its own; a re-publication would repeat the detail's
        stable event_id under a new one), and no handler gave up on one."""
        events = self.events()
        for event in events:
            published_schemas.check(event)
        announced = Counter(event["detail"]["event_id"] for event in events if event.get("source") == "datadrop")
        assert all(count == 1 for count in announced.values()), f"published twice: {[i for i, n in announced.items() if n > 1]}"
        dead = self.home / "dead-letters.jsonl"
        assert not dead.exists(), f"dead letters:\n{dead.read_text()[:3000]}"


@pytest.fixture
def service(tmp_path: Path) -> Iterator[Service]:
    running = Service(tmp_path / "home", _free_port())
    try:
        yield running
    finally:
        running.down()


def _rows(count: int) -> bytes:
    """The example's header and first `count` rows, raw: what a client sends."""
    with PENGUINS.open(newline="") as handle:
        lines = list(csv.reader(handle))[: count + 1]
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(lines)
    return buffer.getvalue().encode()


def _curl(url: str, body_file: Path) -> str:
    command = ["curl", "-sS", "--fail-with-body", "-H", "Content-Type: text/csv", "--data-binary", f"@{body_file}", url]
    if shutil.which("curl") is None:  # not on every machine; the same request through urllib then
        request = urllib.request.Request(url, data=body_file.read_bytes(), headers={"Content-Type": "text/csv"})
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.read().decode()
        except OSError as error:  # refused, or an error status: as curl's failure would be
            raise subprocess.CalledProcessError(7, command, stderr=str(error)) from error
    return subprocess.run(command, capture_output=True, text=True, check=True, timeout=30).stdout


def test_a_newcomers_session_from_up_to_curl_survives_down_and_up(service: Service, tmp_path: Path) -> None:
    printed = service.up()
    # What `up` prints is what the newcomer copies: the endpoint, the credentials, the bucket.
    exports = dict(re.findall(r"(AWS_[A-Z_]+)=(\S+)", printed))
    assert exports["AWS_ENDPOINT_URL"] == f"http://127.0.0.1:{service.port}"
    assert {"AWS_DEFAULT_REGION", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"} <= set(exports)
    bucket = re.search(r"data bucket\s+(\S+)", printed)
    assert bucket is not None, printed
    aws_environment = {key: value for key, value in os.environ.items() if not key.startswith("AWS_")} | exports
    for source, target in ((SPECIES, "config/penguins.yaml"), (PENGUINS, "incoming/penguins/")):
        copied = subprocess.run(
            [_aws_cli(), "s3", "cp", str(source), f"s3://{bucket.group(1)}/{target}"],
            check=False,
            capture_output=True,
            text=True,
            env=aws_environment,
            timeout=60,
        )
        assert copied.returncode == 0, copied.stderr

    follower = subprocess.Popen(
        [str(DATADROP), "events", "--follow", "--home", str(service.home)],
        stdout=subprocess.PIPE,
        text=True,
        env=_service_environment(),
    )
    watchdog = threading.Timer(FLOW_TIMEOUT, follower.kill)
    watchdog.start()
    seen: list[str] = []
    try:
        assert follower.stdout is not None
        for line in follower.stdout:
            seen.append(line.strip())
            if "ModelDeployed" in line:
                break
    finally:
        watchdog.cancel()
        follower.send_signal(signal.SIGINT)
        follower.wait(timeout=10)
    kinds = [line.split()[1].rstrip(":") for line in seen]
    assert kinds == ["DatasetPrepared", "TrainingStarted", "RunEvaluated", "ModelApproved", "DeploymentStarted", "ModelDeployed"]
    url = seen[-1].split(" at ")[-1]
    assert url.startswith("http://127.0.0.1:") and url.endswith("/invocations")

    rows = tmp_path / "rows.csv"
    rows.write_bytes(_rows(3))
    labels = _curl(url, rows).split()
    assert len(labels) == 3 and set(labels) <= {"Adelie", "Chinstrap", "Gentoo"}

    service.datadrop("down")
    with pytest.raises(subprocess.CalledProcessError):
        _curl(url, rows)  # really down
    restarted = service.up()
    assert "found the stack provisioned (restart)" in restarted and "serving again at" in restarted, restarted + service.logs()
    assert _curl(url, rows).split() == labels  # the same model, on the same port
    status = service.datadrop("status").stdout
    assert re.search(r"version\s+penguins \w{12}\s+DEPLOYED", status), status
    service.check_published()


def test_two_uploads_are_two_versions_of_one_experiment_and_a_subscriber_gets_both_deployments(
    service: Service, tmp_path: Path
) -> None:
    service.up()
    # A subscriber's own rule and queue, made with boto3 as they would be in AWS.
    sqs, events = service.client("sqs"), service.client("events")
    queue_url = sqs.create_queue(QueueName="my-deployments")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    bus = "datadrop-local-events"
    events.put_rule(
        Name="my-deployments",
        EventBusName=bus,
        EventPattern=json.dumps({"source": ["datadrop"], "detail-type": ["ModelDeployed"]}),
    )
    events.put_targets(Rule="my-deployments", EventBusName=bus, Targets=[{"Id": "mine", "Arn": queue_arn}])

    first = json.loads(service.datadrop("run", str(PENGUINS), "--dataset", "penguins", "--config", str(SPECIES), "--json").stdout)
    assert first["status"] == "deployed"
    again = service.datadrop("run", str(PENGUINS), "--dataset", "penguins", "--config", str(SPECIES), "--json")
    assert "nothing new to run" in again.stderr  # the same bytes and config: no upload, the version's result
    assert {key: json.loads(again.stdout)[key] for key in ("status", "version")} == {
        "status": "deployed",
        "version": first["version"],
    }
    # Later, new data for the same dataset: the first 250 rows only.
    smaller = tmp_path / "penguins.csv"
    smaller.write_bytes(_rows(250))
    second = json.loads(service.datadrop("run", str(smaller), "--dataset", "penguins", "--config", str(SPECIES), "--json").stdout)
    assert second["status"] in ("deployed", "rejected") and second["version"] != first["version"]
    assert second["experiment"] == first["experiment"] == "datadrop--penguins"

    board = json.loads(service.datadrop("runs", "penguins", "--json").stdout)
    assert [version["version"] for version in board["versions"]] == [second["version"], first["version"]]  # newest first
    table = service.datadrop("runs", "penguins").stdout
    assert f"penguins version {first['version']}" in table and f"penguins version {second['version']}" in table
    groups = service.datadrop("experiments", "show", "penguins").stdout
    assert groups.startswith("datadrop--penguins: 2 run group(s)")
    registry = json.loads(service.datadrop("models", "penguins", "--json").stdout)
    assert [package["dataset_version"] for package in registry["packages"]] == [second["version"], first["version"]]
    assert registry["packages"][1]["approval"] == "Approved" and registry["packages"][1]["metrics"]["accuracy"]

    received: list[dict[str, Any]] = []
    deadline = time.monotonic() + 30
    deployed = 1 + (second["status"] == "deployed")
    while len(received) < deployed and time.monotonic() < deadline:
        for message in sqs.receive_message(QueueUrl=queue_url, WaitTimeSeconds=2, MaxNumberOfMessages=10).get("Messages", []):
            received.append(json.loads(message["Body"]))
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
    assert [event["detail-type"] for event in received] == ["ModelDeployed"] * deployed
    assert received[0]["detail"]["version"] == first["version"] and received[0]["detail"]["endpoint_name"] == "datadrop--penguins"
    predicted = service.datadrop("predict", "penguins", str(tmp_path / "penguins.csv")).stdout.split()
    assert len(predicted) == 250
    service.check_published()


def test_killing_the_worker_mid_training_then_up_finishes_the_version_once(service: Service, tmp_path: Path) -> None:
    config = tmp_path / "search.yaml"
    document = yaml.safe_load(SPECIES.read_text())
    document["search"] = {"strategy": "random", "max_runs": 4, "max_parallel": 2, "seed": 3}
    document["hyperparameters"] = {"num_round": 400, "max_depth": [2, 3, 4, 5], "eta": {"min": 0.05, "max": 0.3}}
    config.write_text(yaml.safe_dump(document))
    service.up()
    s3 = service.client("s3")
    s3.put_object(Bucket="datadrop-local-data", Key="config/penguins.yaml", Body=config.read_bytes())
    s3.put_object(Bucket="datadrop-local-data", Key="incoming/penguins/penguins.csv", Body=PENGUINS.read_bytes())

    log = service.home / "logs" / "worker.log"
    deadline = time.monotonic() + FLOW_TIMEOUT
    while "xgboost on this machine" not in log.read_text():
        assert time.monotonic() < deadline, log.read_text()[-2000:]
        time.sleep(0.02)
    worker = service.stack()["worker_pid"]
    os.kill(worker, signal.SIGKILL)  # mid-training: no goodbye, no saved state beyond what was saved
    finished_before_the_kill = re.findall(r"training job \S+: Completed", log.read_text())
    assert len(finished_before_the_kill) < 4

    status = service.datadrop("status", check=False)
    assert status.returncode == 1 and "worker      DOWN" in status.stdout
    restarted = service.up()
    assert "the worker is not" in restarted or "AWS (moto) is up" in restarted
    service.wait_for_event("ModelDeployed")

    # Exactly the four runs' training jobs, each once; every announcement once, none lost.
    jobs = sorted(
        summary["TrainingJobName"] for summary in service.client("sagemaker").list_training_jobs()["TrainingJobSummaries"]
    )
    assert len(jobs) == 4 and len(set(jobs)) == 4 and all(re.search(r"-r0[1-4]$", job) for job in jobs), jobs
    kinds = Counter(event["detail-type"] for event in service.events())
    assert kinds == Counter(
        {
            "DatasetPrepared": 1,
            "TrainingStarted": 1,
            "RunEvaluated": 4,
            "ModelApproved": 1,
            "DeploymentStarted": 1,
            "ModelDeployed": 1,
        }
    ), kinds
    evaluated = [event["detail"]["run"]["training_job"] for event in service.events() if event["detail-type"] == "RunEvaluated"]
    assert sorted(evaluated) == jobs
    assert "was in progress: it runs again" in log.read_text()  # under its own name: the same job
    service.check_published()


def test_a_broken_or_missing_snapshot_stops_up_with_what_to_do(service: Service) -> None:
    service.home.mkdir(parents=True)
    snapshot = service.home / "aws-state.pickle"
    snapshot.write_bytes(b"not a pickle")
    broken = service.datadrop("up", "--port", str(service.port), check=False)
    assert broken.returncode == 1
    assert f"the saved AWS state {snapshot} cannot be read" in broken.stderr and "move it aside" in broken.stderr
    assert snapshot.read_bytes() == b"not a pickle"  # left as it was

    snapshot.unlink()
    (service.home / "events.jsonl").write_text("")
    missing = service.datadrop("up", "--port", str(service.port), check=False)
    assert missing.returncode == 1 and "(the saved AWS state) is missing" in missing.stderr
