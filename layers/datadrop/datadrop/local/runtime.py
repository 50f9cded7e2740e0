"""The local runtime: datadrop's deployed topology, rebuilt on one machine from template.yaml.

moto serves S3, DynamoDB, EventBridge, SQS and the SageMaker control plane in-process. Every
EventBridgeRule event of every function in template.yaml becomes a moto rule with the same
pattern and an SQS target; `drain()` delivers what lands in those queues to the real handler
modules (functions/<name>/app.py), and runs the local compute adapter's jobs in between, until
nothing is left to do. The routing is read from the template, so it cannot drift from AWS.
"""

from __future__ import annotations

import importlib.util
import json
import os
import queue
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any, Self
from urllib.parse import quote_plus

import boto3
import yaml

from datadrop.local.compute import ACCOUNT, LocalCompute
from datadrop.local.compute import as_function as _as_function
from datadrop.local.moto_registry import announce_model_package_changes
from datadrop.local.moto_speedups import speed_up_moto
from datadrop.recovery import Sweeper, SweepReport
from datadrop.services import Services, use_services
from datadrop.settings import Settings
from datadrop.state import ATTENTION_INDEX

REGION = "us-east-1"
MAX_DELIVERIES = 3  # like a rule's retry policy: then the event goes to the dead letters
SERVICE_VISIBILITY_SECONDS = 900  # a message being handled is not received again (the Lambda timeout)
# A long poll waits this long for a message (moto wakes it when one arrives): longer costs less
# when idle (a request per queue per wait), shorter stops sooner on `datadrop down`.
POLL_SECONDS = 3
SERVICE_RETRY_SECONDS = 2  # a failed delivery comes back after this (Lambda waits about a minute)
MAX_IDLE_SWEEPS = 20  # a drain gives up on work that is still waiting (e.g. for capacity) after this many sweeps


# ---------------------------------------------------------------------------------------------
# template.yaml
# ---------------------------------------------------------------------------------------------
class _TemplateLoader(yaml.SafeLoader):
    """Reads CloudFormation short-form tags (!Ref, !Sub, !GetAtt, ...) into their long form."""


def _cfn_tag(loader: _TemplateLoader, tag_suffix: str, node: yaml.Node) -> dict[str, Any]:
    name = "Ref" if tag_suffix == "Ref" else f"Fn::{tag_suffix}"
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
        if tag_suffix == "GetAtt":
            value = str(value).split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        assert isinstance(node, yaml.MappingNode)
        value = loader.construct_mapping(node, deep=True)
    return {name: value}


_TemplateLoader.add_multi_constructor("!", _cfn_tag)


def load_template(path: Path) -> dict[str, Any]:
    return yaml.load(path.read_text(), Loader=_TemplateLoader)


@dataclass(frozen=True)
class Route:
    """One EventBridgeRule event of one function."""

    function: str
    event_name: str
    on_service_bus: bool
    pattern: dict[str, Any]
    handler_path: Path
    handler_name: str


def routes_from_template(template_path: Path, resolve: Callable[[Any], Any]) -> list[Route]:
    template = load_template(template_path)
    globals_function = template.get("Globals", {}).get("Function", {})
    routes: list[Route] = []
    for logical_id, resource in template["Resources"].items():
        if resource.get("Type") != "AWS::Serverless::Function":
            continue
        properties = resource["Properties"]
        handler = properties.get("Handler", globals_function.get("Handler", "app.handler"))
        module_file, handler_name = handler.rsplit(".", 1)
        code_dir = template_path.parent / properties["CodeUri"]
        for event_name, event in (properties.get("Events") or {}).items():
            if event.get("Type") != "EventBridgeRule":
                continue
            event_properties = event["Properties"]
            bus = event_properties.get("EventBusName")
            routes.append(
                Route(
                    function=logical_id,
                    event_name=event_name,
                    on_service_bus=bus is not None,
                    pattern=resolve(event_properties["Pattern"]),
                    handler_path=code_dir / f"{module_file.replace('.', '/')}.py",
                    handler_name=handler_name,
                )
            )
    return routes


def _resolver(values: dict[str, str]) -> Callable[[Any], Any]:
    """Resolve !Ref and !Sub against the local stack's names."""

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            if set(node) == {"Ref"}:
                return values[node["Ref"]]
            if set(node) == {"Fn::Sub"}:
                text = node["Fn::Sub"]
                for name, value in values.items():
                    text = text.replace("${" + name + "}", value)
                return text
            return {key: resolve(value) for key, value in node.items()}
        if isinstance(node, list):
            return [resolve(item) for item in node]
        return node

    return resolve


def load_handler_module(path: Path) -> ModuleType:
    """Import functions/<name>/app.py as Lambda would (its folder is the code root)."""
    module_name = f"datadrop_function_{path.parent.name}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load handler {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module


# ---------------------------------------------------------------------------------------------
# The stack
# ---------------------------------------------------------------------------------------------
class LambdaContext:
    """Just enough of the Lambda context object for Powertools (logger, idempotency)."""

    def __init__(self, function_name: str) -> None:
        self.function_name = function_name
        self.function_version = "$LATEST"
        self.invoked_function_arn = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{function_name}"
        self.memory_limit_in_mb = 512
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{function_name}"
        self.log_stream_name = "local"

    @staticmethod
    def get_remaining_time_in_millis() -> int:
        return 900_000


def provision(settings: Settings, session: boto3.session.Session) -> bool:
    """Create what template.yaml creates, in moto: buckets, bus, tables. False when a restarted
    service finds them there already (the state table is made last)."""
    s3 = session.client("s3")
    dynamodb = session.client("dynamodb")
    if settings.state_table_name in dynamodb.list_tables()["TableNames"]:
        return False
    for bucket in (settings.data_bucket_name, settings.artifact_bucket_name):
        s3.create_bucket(Bucket=bucket)
        s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    s3.put_bucket_notification_configuration(
        Bucket=settings.data_bucket_name, NotificationConfiguration={"EventBridgeConfiguration": {}}
    )
    session.client("events").create_event_bus(Name=settings.event_bus_name)
    dynamodb.create_table(
        TableName=settings.idempotency_table_name,
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    dynamodb.create_table(
        TableName=settings.state_table_name,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[{"AttributeName": name, "AttributeType": "S"} for name in ("pk", "sk", "attention", "updated_at")],
        GlobalSecondaryIndexes=[
            {
                "IndexName": ATTENTION_INDEX,
                "KeySchema": [
                    {"AttributeName": "attention", "KeyType": "HASH"},
                    {"AttributeName": "updated_at", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "ALL"},
            }
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    return True


def local_settings(name_prefix: str = "datadrop", default_threshold: float = 0.8, compute: str = "local") -> Settings:
    stack = "datadrop-local"
    return Settings(
        state_table_name=f"{stack}-state",
        idempotency_table_name=f"{stack}-idempotency",
        event_bus_name=f"{stack}-events",
        data_bucket_name=f"{stack}-data",
        artifact_bucket_name=f"{stack}-artifacts",
        sagemaker_role_arn=f"arn:aws:iam::{ACCOUNT}:role/{stack}-sagemaker",
        name_prefix=name_prefix,
        default_accuracy_threshold=default_threshold,
        compute=compute,  # type: ignore[arg-type]
        region=REGION,
    )


@dataclass
class Delivery:
    function: str
    event: dict[str, Any]
    result: Any = None
    error: str | None = None


@dataclass
class LocalStack:
    """The whole service on one machine. Use as a context manager inside `moto.mock_aws()`."""

    template_path: Path
    name_prefix: str = "datadrop"
    default_threshold: float = 0.8
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="datadrop-local-")))
    on_delivery: Callable[[Delivery], None] | None = None
    on_event: Callable[[dict[str, Any]], None] | None = None
    on_compute: Callable[[str], None] | None = None
    on_dead_letter: Callable[[Delivery], None] | None = None
    deliveries: list[Delivery] = field(default_factory=list)
    dead_letters: list[Delivery] = field(default_factory=list)
    published: list[dict[str, Any]] = field(default_factory=list)
    sweeps: list[SweepReport] = field(default_factory=list)
    compute_workers: int = 1  # training and transform jobs at once in `serve` (each in a worker process)
    journal: Path | None = None  # the local SageMaker's saved state (`datadrop up`)
    keep_history: bool = True  # keep every delivery and event in memory (a long-running service does not)
    inflight_path: Path | None = None  # `serve`: the receipt handles of messages received and not yet handled

    def __post_init__(self) -> None:
        self.settings = local_settings(self.name_prefix, self.default_threshold)
        self._queues: dict[str, tuple[Route, str]] = {}
        self._modules: dict[Path, ModuleType] = {}

    # -- lifecycle ------------------------------------------------------------------------------
    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def start(self) -> None:
        speed_up_moto()
        announce_model_package_changes()
        os.environ.update(self.settings.as_environment())
        os.environ.setdefault("POWERTOOLS_SERVICE_NAME", "datadrop")
        os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")
        # CloudWatch's metric lines (EMF) mean nothing on one machine and would mix into stdout.
        os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")
        session = boto3.session.Session(region_name=REGION)
        self.s3 = session.client("s3")
        self.sqs = session.client("sqs")
        self.events_client = session.client("events")
        self.sagemaker = session.client("sagemaker")
        settings = self.settings
        self.provisioned = provision(settings, session)

        values = {
            "DataBucket": settings.data_bucket_name,
            "ArtifactBucket": settings.artifact_bucket_name,
            "EventBus": settings.event_bus_name,
            "NamePrefix": settings.name_prefix,
            "AWS::Region": REGION,
            "AWS::AccountId": ACCOUNT,
            "AWS::StackName": "datadrop-local",
        }
        self.routes = routes_from_template(self.template_path, _resolver(values))
        for route in self.routes:
            self._subscribe(f"{route.function}-{route.event_name}", route.pattern, route.on_service_bus, route)
        # An observer of everything datadrop publishes, for progress output and summaries.
        self._observer_url = self._subscribe("observer", {"source": ["datadrop"]}, True, None)

        self.compute = LocalCompute(
            client=self.sagemaker,
            region=REGION,
            s3=self.s3,
            events=self.events_client,
            workdir=self.workdir / "compute",
            on_log=lambda message: self.on_compute(message) if self.on_compute else None,
            workers=self.compute_workers,
            journal=self.journal,
        )
        self.restored = self.compute.restore()
        services = Services.from_settings(settings, session)
        services.compute = self.compute
        self.services = services
        use_services(services)

    def stop(self) -> None:
        if hasattr(self, "compute"):
            self.compute.stop()
        use_services(None)

    def _subscribe(self, name: str, pattern: dict[str, Any], on_service_bus: bool, route: Route | None) -> str:
        queue_url = self.sqs.create_queue(QueueName=f"datadrop-local-{name}")["QueueUrl"]
        queue_arn = self.sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        bus = self.settings.event_bus_name if on_service_bus else "default"
        self.events_client.put_rule(Name=f"datadrop-local-{name}", EventBusName=bus, EventPattern=json.dumps(pattern))
        self.events_client.put_targets(
            Rule=f"datadrop-local-{name}", EventBusName=bus, Targets=[{"Id": "queue", "Arn": queue_arn}]
        )
        if route is not None:
            self._queues[queue_url] = (route, name)
        return queue_url

    # -- what a user does -------------------------------------------------------------------------
    def put_config(self, dataset: str, config_text: str) -> None:
        self.s3.put_object(Bucket=self.settings.data_bucket_name, Key=f"config/{dataset}.yaml", Body=config_text.encode())

    def upload(self, path: Path, dataset: str) -> str:
        key = f"incoming/{dataset}/{path.name}"
        self.s3.put_object(Bucket=self.settings.data_bucket_name, Key=key, Body=path.read_bytes())
        return key

    # -- the pump ---------------------------------------------------------------------------------
    def drain(self, max_steps: int = 1000, max_idle_sweeps: int = MAX_IDLE_SWEEPS) -> None:
        """Deliver events and run local jobs until nothing is left to do; when idle, run the
        sweeper (as its schedule would) and go on while it finds work to continue.

        The work runs on a thread of its own, one at a time, and the caller waits for it: a fresh
        thread's call stack is shallow. Called from deep in another program's stack (a test
        runner, a notebook), CPython 3.12 can sit at the edge of a frame-stack chunk where moto's
        recursive (de)serialisation maps and unmaps a chunk on every call: measured under pytest
        as 700,000 mmap/munmap pairs and 163 s instead of 73 s for a 120-run search."""
        failure: list[BaseException] = []

        def work() -> None:
            try:
                self._drain(max_steps, max_idle_sweeps)
            except BaseException as error:  # noqa: BLE001 - re-raised in the caller's thread
                failure.append(error)

        worker = threading.Thread(target=work, name="datadrop-local-drain")
        worker.start()
        worker.join()
        if failure:
            raise failure[0]

    def _drain(self, max_steps: int, max_idle_sweeps: int) -> None:
        sweeps = 0
        for _ in range(max_steps):
            self._observe()
            if self._deliver_one_batch():
                continue
            if self.compute.run_next() is not None:
                continue
            if sweeps < max_idle_sweeps and self.sweep().progressed:
                sweeps += 1
                continue
            self._observe()
            return
        raise RuntimeError(f"the local flow did not settle after {max_steps} steps")

    def warm(self) -> None:
        """Import every handler, and what prepare imports at its first upload (polars), before the
        first event: a service's functions are warm (like provisioned concurrency), so a user's first
        upload does not wait seconds for imports."""
        for route in self.routes:
            self._handler_module(route.handler_path)
        importlib.import_module("datadrop.dataprep")

    def serve(self, stopping: threading.Event, sweep_every: float = 10.0) -> None:
        """The service's loop (`datadrop up`), until `stopping` is set.

        A thread per queue long-polls it (moto's server wakes a waiting receive when a message
        arrives, so a hop costs no polling delay and an idle stack costs no CPU) and hands what it
        gets to this thread, which runs the handlers one at a time, as the in-process stack does.
        Training and transform jobs run in up to `compute_workers` processes (`LocalCompute.step`). The sweeper
        runs once at start, to finish what a crash left, then every `sweep_every` seconds of idle
        time (its schedule). Unlike `drain`, it never decides the work is done.

        A received message is invisible to other receives until it is handled (as Lambda's poller
        keeps it). Its receipt handle is kept in `inflight_path` until then, so that after a crash
        the next `serve` makes those messages visible again at once, instead of after the
        visibility timeout; a clean stop does the same before it returns."""
        inbox: queue.Queue[tuple[str, Any] | None] = queue.Queue()
        inflight = InFlightReceipts(self.inflight_path)
        inflight.release(self.sqs)  # what a crashed worker had received and not finished

        def poll(queue_url: str) -> None:
            while not stopping.is_set():
                try:
                    messages = self.sqs.receive_message(
                        QueueUrl=queue_url,
                        MaxNumberOfMessages=10,
                        MessageSystemAttributeNames=["ApproximateReceiveCount"],
                        VisibilityTimeout=SERVICE_VISIBILITY_SECONDS,
                        WaitTimeSeconds=POLL_SECONDS,
                    ).get("Messages", [])
                except Exception:  # noqa: BLE001 - the server restarting, or going down with us: try again
                    stopping.wait(0.5)
                    continue
                for message in messages:
                    inflight.add(message["ReceiptHandle"], queue_url)
                    inbox.put((queue_url, message))

        pollers = [
            threading.Thread(target=poll, args=(url,), name=f"datadrop-poll-{name}", daemon=True)
            for url, name in [*((url, name) for url, (_, name) in self._queues.items()), (self._observer_url, "observer")]
        ]
        for poller in pollers:
            poller.start()
        self.compute.on_finished = lambda: inbox.put(None)  # a job's worker process is done: wake up
        self.sweep()
        last_sweep = time.monotonic()
        while not stopping.is_set():
            try:
                item = inbox.get(timeout=0.5)
            except queue.Empty:
                item = None
            if item is not None:
                queue_url, message = item
                if queue_url == self._observer_url:
                    self._record(message)
                else:
                    self._handle(queue_url, message, retry_after=SERVICE_RETRY_SECONDS)
                inflight.discard(message["ReceiptHandle"])
            busy = self.compute.step()
            if not busy and inbox.empty() and not self.compute.busy() and time.monotonic() - last_sweep >= sweep_every:
                self.sweep()
                last_sweep = time.monotonic()
        for poller in pollers:
            poller.join(timeout=POLL_SECONDS + 1)
        inflight.release(self.sqs)  # received but not handled: for the next start, at once

    def sweep(self, stuck_after: timedelta = timedelta(0), now: datetime | None = None) -> SweepReport:
        """One run of the scheduled sweeper (SweepFunction in template.yaml), as that function."""
        sweeper = Sweeper(self.services, stuck_after, timedelta(hours=self.settings.give_up_after_hours))
        with _as_function("SweepFunction"):
            report = sweeper.sweep(now)
        self.sweeps.append(report)
        self._observe()
        return report

    def _deliver_one_batch(self) -> bool:
        delivered = False
        for queue_url in self._queues:
            messages = self.sqs.receive_message(
                QueueUrl=queue_url,
                MaxNumberOfMessages=10,
                MessageSystemAttributeNames=["ApproximateReceiveCount"],
                VisibilityTimeout=0,
            ).get("Messages", [])
            for message in messages:
                delivered = True
                self._handle(queue_url, message)
        return delivered

    def _handle(self, queue_url: str, message: Any, retry_after: int | None = None) -> None:
        """Invoke the route's handler with the message's event. Done, or failed for the last time
        (then it is a dead letter): the message goes. Failed before that: it stays, and comes back
        (at once in `drain`; after `retry_after` seconds in `serve`, as Lambda's retries wait)."""
        route, _ = self._queues[queue_url]
        event = _normalise_moto_event(json.loads(message["Body"]))
        delivery = self._invoke(route, event)
        attempts = int(message.get("Attributes", {}).get("ApproximateReceiveCount", "1"))
        if delivery.error is None or attempts >= MAX_DELIVERIES:
            self.sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
            if delivery.error is not None:
                self.dead_letters.append(delivery)
                if self.on_dead_letter:
                    self.on_dead_letter(delivery)
        elif retry_after is not None:
            self.sqs.change_message_visibility(
                QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=retry_after
            )

    def _invoke(self, route: Route, event: dict[str, Any]) -> Delivery:
        module = self._handler_module(route.handler_path)
        delivery = Delivery(function=route.function, event=event)
        try:
            with _as_function(route.function):
                delivery.result = getattr(module, route.handler_name)(event, LambdaContext(route.function))
        except Exception as error:  # noqa: BLE001 - a failed invocation is retried, as Lambda would
            delivery.error = f"{type(error).__name__}: {error}"
        if self.keep_history:
            self.deliveries.append(delivery)
        if self.on_delivery:
            self.on_delivery(delivery)
        self._observe()  # what the handler published, printed right after it
        return delivery

    def _handler_module(self, path: Path) -> ModuleType:
        module = self._modules.get(path)
        if module is None:
            module = self._modules[path] = load_handler_module(path)
        return module

    def _observe(self) -> None:
        while True:
            messages = self.sqs.receive_message(QueueUrl=self._observer_url, MaxNumberOfMessages=10).get("Messages", [])
            if not messages:
                return
            for message in messages:
                self._record(message)

    def _record(self, message: Any) -> None:
        event = json.loads(message["Body"])
        if self.keep_history:
            self.published.append(event)
        if self.on_event:
            self.on_event(event)
        self.sqs.delete_message(QueueUrl=self._observer_url, ReceiptHandle=message["ReceiptHandle"])

    def events_of(self, detail_type: str) -> list[dict[str, Any]]:
        return [event["detail"] for event in self.published if event["detail-type"] == detail_type]


class InFlightReceipts:
    """Receipt handles of received, unfinished messages (with their queues), mirrored to a file."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._handles: dict[str, str] = {}
        if path is not None and path.exists():
            try:
                self._handles = dict(json.loads(path.read_text()))
            except (OSError, ValueError):
                self._handles = {}  # at worst those messages come back after their visibility timeout

    def add(self, handle: str, queue_url: str) -> None:
        with self._lock:
            self._handles[handle] = queue_url
            self._write()

    def discard(self, handle: str) -> None:
        with self._lock:
            self._handles.pop(handle, None)
            self._write()

    def release(self, sqs: Any) -> None:
        """Make every message still in flight visible again."""
        with self._lock:
            for handle, queue_url in self._handles.items():
                try:
                    sqs.change_message_visibility(QueueUrl=queue_url, ReceiptHandle=handle, VisibilityTimeout=0)
                except Exception:  # noqa: BLE001, S110 - handled and deleted meanwhile, or expired: nothing to release
                    pass
            self._handles.clear()
            self._write()

    def _write(self) -> None:
        if self.path is not None:
            partial = self.path.with_suffix(".partial")
            partial.write_text(json.dumps(self._handles))
            os.replace(partial, self.path)


def _normalise_moto_event(event: dict[str, Any]) -> dict[str, Any]:
    """Repair what moto delivers differently from EventBridge, and nothing else: events put by
    PutEvents arrive without `account` (EventBridge always sets it), and moto's S3 events say
    `eTag` where S3 says `etag` and carry the object's key as it is, where S3 URL-encodes it."""
    event.setdefault("version", "0")
    event.setdefault("account", ACCOUNT)
    event.setdefault("region", REGION)
    event.setdefault("resources", [])
    if event.get("source") == "aws.s3":
        uploaded = event.get("detail", {}).get("object", {})
        if "eTag" in uploaded and "etag" not in uploaded:
            uploaded["etag"] = uploaded.pop("eTag")
        if "key" in uploaded:
            uploaded["key"] = quote_plus(uploaded["key"], safe="/")
    return event
