"""`datadrop` command line: run the whole service locally on a CSV file, or retry on a deployed stack.

    datadrop run examples/penguins/penguins.csv --dataset penguins --config examples/penguins/species.yaml

uploads the file to the local data bucket as a user would, drives the event flow until nothing is
left to do, and prints each step, the held-out metrics, the decision and, when deployed, the local
endpoint's URL with one real prediction made through it.

    datadrop retry penguins 6b3077daca81 --stack datadrop

starts a FAILED dataset version over on a deployed stack (the names come from the stack's outputs).

stdout carries only what the command prints (with `--json`, exactly one JSON object); the service's
own logs (Powertools, which writes to stdout as Lambda wants) go to stderr for the whole command.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import logging
import os
import sys
import time
import traceback
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http import HTTPStatus
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TextIO

import yaml

if TYPE_CHECKING:  # the CLI imports the library lazily, so `--help` stays fast
    from datadrop.state import StateStore

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_INPUT_REJECTED = 2
EXIT_USAGE = 64

DEFAULT_TEMPLATE = Path(__file__).resolve().parents[3] / "template.yaml"
SERVICE = "datadrop"  # POWERTOOLS_SERVICE_NAME in template.yaml: the parent of every handler's and the library's logger

# The stack outputs (template.yaml `Outputs`) a deployed datadrop is found by, and the Settings field each fills.
STACK_OUTPUTS = {
    "DataBucketName": "data_bucket_name",
    "ArtifactBucketName": "artifact_bucket_name",
    "EventBusName": "event_bus_name",
    "StateTableName": "state_table_name",
    "IdempotencyTableName": "idempotency_table_name",
    "SageMakerExecutionRoleArn": "sagemaker_role_arn",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="datadrop",
        description="Drop a dataset in, get a trained, evaluated and deployed model out. "
        "`datadrop run` does it on this machine: no AWS account needed. "
        "`datadrop retry` starts a failed dataset version over on a deployed stack.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser(
        "run",
        help="run the whole flow locally on one CSV file",
        description="Upload PATH to a local datadrop (moto-backed S3, EventBridge, DynamoDB, SageMaker control plane), "
        "then prepare, train (XGBoost, or the algorithms the config names, each run inside a SageMaker Experiment run), evaluate on held-out rows and, "
        "if the held-out metric (accuracy, or r2 for a regression target) passes the threshold, deploy to a local "
        "HTTP endpoint.",
        epilog="exit status: 0 when the flow ran (deployed, or rejected by the threshold); "
        "2 when the input was rejected (the reason is printed); 1 when a job or deployment failed. "
        "With --json, stdout holds exactly one JSON object on every path; progress and logs go to stderr.",
    )
    run.add_argument("path", type=Path, help="CSV file with a header row")
    run.add_argument("--dataset", required=True, help="dataset name: lowercase letters, digits and '-' (e.g. penguins)")
    run.add_argument("--target", help="column to predict (overrides the config's `target`)")
    run.add_argument("--config", type=Path, help="dataset config (YAML/JSON), uploaded as config/<dataset>.yaml")
    run.add_argument(
        "--threshold",
        type=float,
        help="deploy when the held-out metric is at least this (accuracy, macro_f1, r2) or at most this "
        "(log_loss, rmse, mae, mape); overrides the config",
    )
    run.add_argument("--serve", action="store_true", help="keep the endpoint up until Ctrl-C")
    run.add_argument(
        "--json", action="store_true", help="print exactly one JSON summary on stdout (progress and logs go to stderr)"
    )
    run.add_argument(
        "--isolated",
        action="store_true",
        help="run in a fresh in-process stack, gone when the command ends, even when `datadrop up` runs one",
    )
    run.add_argument("--template", type=Path, default=DEFAULT_TEMPLATE, help=argparse.SUPPRESS)
    _add_prepare_command(commands)
    retry = commands.add_parser(
        "retry",
        help="start a FAILED dataset version over (on the local stack, or a deployed one)",
        description="Start a FAILED dataset version over, on the local stack (`datadrop up`) or, with --stack, on a "
        "deployed datadrop stack: the version goes back to PREPARED "
        "with a new attempt, and its DatasetPrepared event is published again, so training, evaluation and deployment "
        "run as they did after the upload (new SageMaker names end in -a<attempt>). The uploaded data and the prepared "
        "splits are reused. A deployed stack's resources are found by its CloudFormation outputs "
        f"({', '.join(STACK_OUTPUTS)}); AWS credentials come from the usual places (AWS_PROFILE, environment, SSO).",
        epilog="exit status: 0 when the retry started; 2 when the version cannot be retried (the reason is printed: "
        "it does not exist, or it is not FAILED); 64 when the stack is not found or is not a datadrop stack (or no "
        "local stack runs); "
        "1 when AWS refused a call. Find FAILED versions in the VersionFailed/ModelRejected events or the state table.",
    )
    retry.add_argument("dataset", metavar="DATASET", help="the dataset name, as in incoming/<dataset>/ (e.g. penguins)")
    retry.add_argument(
        "version", metavar="VERSION", help="the dataset version that failed (12 hex digits, from its events, e.g. 6b3077daca81)"
    )
    retry.add_argument(
        "--stack", metavar="NAME", help="the CloudFormation stack name given to `sam deploy` (default: the local stack)"
    )
    retry.add_argument(
        "--region", metavar="REGION", help="the stack's region (default: AWS_REGION / AWS_DEFAULT_REGION / your AWS config)"
    )
    for name, summary in (
        ("runs", "a dataset's leaderboards, newest version first (or one --version): one row per run, the best marked"),
        ("plot", "a PNG of the held-out metric against each varied hyperparameter, for one version (default: the newest)"),
    ):
        command = commands.add_parser(
            name,
            help=summary,
            description=f"Show {summary}. Only the hyperparameters that differ between runs are shown. Without --stack, "
            "from the local stack (`datadrop up`); with --stack, from a deployed stack, found by its CloudFormation "
            "outputs (AWS credentials from the usual places).",
            epilog="exit status: 0 when shown; 2 when the dataset or version does not exist; 64 when the stack is not "
            "found or is not a datadrop stack; 1 when AWS refused a call. Locally, `datadrop run --plot FILE` draws the same.",
        )
        command.add_argument("dataset", metavar="DATASET", help="the dataset name, as in incoming/<dataset>/")
        command.add_argument(
            "--version", metavar="VERSION", help="one dataset version (runs: default every version; plot: the newest)"
        )
        command.add_argument("--stack", metavar="NAME", help="the stack `sam deploy` made (default: the local stack)")
        command.add_argument("--region", metavar="REGION", help="the stack's region (default: your AWS configuration)")
        if name == "runs":
            shape = command.add_mutually_exclusive_group()
            shape.add_argument("--json", action="store_true", help="one JSON object: the version, its metric and every run")
            shape.add_argument("--csv", action="store_true", help="CSV, one row per run (spreadsheet-friendly)")
        else:
            command.add_argument(
                "-o", "--output", type=Path, default=Path("datadrop-runs.png"), help="the PNG to write (default: %(default)s)"
            )
    run.add_argument(
        "--plot", type=Path, metavar="PNG", help="also draw the held-out metric against each varied hyperparameter into PNG"
    )
    experiments = commands.add_parser(
        "experiments",
        help="list, show or delete the SageMaker Experiments of the local stack or a deployed one",
        description="The SageMaker SDK's Experiment methods as commands, for the experiments datadrop made on a deployed "
        "stack (one per dataset, one run group per dataset version, one run per training job).",
    )
    actions = experiments.add_subparsers(dest="action", metavar="{list,show,delete}")
    for action, summary in (
        ("list", "every datadrop experiment of the stack (the default)"),
        ("show", "a dataset's run groups, newest first, with their run counts"),
        ("delete", "delete a dataset's experiment: its runs, then its run groups, then the experiment (asks first)"),
    ):
        command = actions.add_parser(action, help=summary, description=summary)
        if action != "list":
            command.add_argument("dataset", metavar="DATASET")
        if action == "show":
            command.add_argument("--created-after", type=_iso_time, metavar="TIME", help="ISO 8601, e.g. 2026-12-01T00:00Z")
            command.add_argument("--created-before", type=_iso_time, metavar="TIME", help="ISO 8601")
            command.add_argument("--sort-by", choices=("Name", "CreationTime"), default="CreationTime")
            command.add_argument("--sort-order", choices=("Ascending", "Descending"), default="Descending")
        if action == "delete":
            command.add_argument("--yes", action="store_true", help="do not ask (for scripts)")
    for command in (experiments, *actions.choices.values()):
        command.add_argument("--stack", metavar="NAME", help="the stack `sam deploy` made (default: the local stack)")
        command.add_argument("--region", metavar="REGION", help="the stack's region (default: your AWS configuration)")
    _add_service_commands(commands)
    for command in (run, retry, experiments, *actions.choices.values(), *(commands.choices[name] for name in ("runs", "plot"))):
        _add_home(command)
    return parser


def _add_prepare_command(commands: Any) -> None:
    prepare = commands.add_parser(
        "prepare",
        help="prepare one file locally and print its data-quality report (nothing uploaded, nothing trained)",
        description="Run datadrop's prepare step alone, on this machine, with no AWS and no local stack: read PATH "
        "(CSV with a comma, semicolon, tab or pipe separator, in UTF-8, UTF-16 or cp1252/latin-1; gzip-compressed or "
        "not; Parquet; JSON Lines: detected from the content, not the name), check it against the dataset config, "
        "clean it and split it exactly as an upload to incoming/<NAME>/ would be, and print the data-quality report: "
        "what was detected, rows in and out and why rows were dropped, each column's role, type, missing share and "
        "summary, the class balance, every normalisation applied, and warnings. Look at your data before anything "
        "trains.",
        epilog="exit status: 0 when the file would be prepared (the report is printed); 2 when it would be rejected (the "
        "reason, which says what to change, is printed on stderr); 64 on a usage error (no such file, no --target or "
        "--config, a bad dataset name). With --json, stdout holds exactly one JSON object on both 0 and 2.",
    )
    prepare.add_argument("path", type=Path, metavar="PATH", help="the data file, as you would upload it")
    prepare.add_argument("--dataset", required=True, help="dataset name: lowercase letters, digits and '-' (e.g. penguins)")
    prepare.add_argument("--target", help="column to predict (overrides the config's `target`)")
    prepare.add_argument("--config", type=Path, help="dataset config (YAML/JSON), as uploaded to config/<dataset>.yaml")
    prepare.add_argument(
        "--json",
        action="store_true",
        help="print one JSON object: {dataset, version, status: prepared, report} or {dataset, status: rejected, stage, reason}",
    )
    prepare.error = _usage_error(prepare)  # type: ignore[method-assign]


def _usage_error(parser: argparse.ArgumentParser) -> Callable[[str], NoReturn]:
    """argparse exits with 2 on a usage error, which `prepare` means for a rejected file: 64 instead."""

    def error(message: str) -> NoReturn:
        parser.print_usage(sys.stderr)
        parser.exit(EXIT_USAGE, f"{parser.prog}: error: {message}\n")

    return error


def _add_home(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--home",
        type=Path,
        default=None,
        metavar="DIR",
        help="the local stack's directory (default: $DATADROP_HOME or ~/.datadrop)",
    )


def _add_service_commands(commands: Any) -> None:
    """up, down, status, events, predict: the local stack as a service, and what it serves."""
    up = commands.add_parser(
        "up",
        help="start the local stack in the background (AWS on 127.0.0.1, the handlers, local SageMaker)",
        description="Start datadrop on this machine as a service: moto's server (S3, DynamoDB, EventBridge, SQS, SageMaker) "
        "on 127.0.0.1, provisioned from template.yaml, and a worker that delivers events to the real handlers, trains "
        "in up to --workers processes and serves endpoints. Upload with the AWS CLI or boto3 as in AWS; every "
        "datadrop command without --stack uses it. State (objects, tables, experiments, jobs, endpoints) is kept in "
        "--home across `datadrop down` and `up`; endpoints come back on their ports.",
        epilog="exit status: 0 when the stack is up (or was already); 1 when a process did not start (its log is printed); "
        "64 when the port is taken.",
    )
    up.add_argument("--port", type=int, default=None, metavar="N", help="the AWS endpoint's port (default: 4599)")
    up.add_argument(
        "--workers",
        type=int,
        default=None,
        metavar="N",
        help="training and transform jobs at once, each in its own process (default: cores)",
    )
    up.add_argument("--template", type=Path, default=DEFAULT_TEMPLATE, help=argparse.SUPPRESS)
    down = commands.add_parser(
        "down",
        help="stop the local stack (its state stays for the next `datadrop up`)",
        description="Stop the worker (it saves its jobs and endpoints), then AWS (it saves its state). Nothing is deleted: "
        "`datadrop up` brings it all back. To start empty, remove the --home directory.",
    )
    status = commands.add_parser(
        "status",
        help="what the local stack runs: its processes, endpoints and dataset versions",
        description="Say whether the local stack's AWS and worker run, list its endpoints and every dataset version "
        "with its status. Exit status 0 when both run, 1 otherwise.",
    )
    events = commands.add_parser(
        "events",
        help="print the local stack's events (with --follow, as they are published)",
        description="Print every event datadrop published on the local stack, oldest first, one line each (or the "
        "EventBridge JSON with --json); with --follow, keep printing new ones until Ctrl-C. Subscribers in code "
        "use an EventBridge rule on the bus, as in AWS; this command reads the worker's log of them.",
    )
    events.add_argument("--follow", "-f", action="store_true", help="keep printing new events until Ctrl-C")
    events.add_argument("--dataset", metavar="D", help="only this dataset's events")
    events.add_argument("--json", action="store_true", help="one EventBridge event (JSON) per line")
    predict = commands.add_parser(
        "predict",
        help="send a CSV file to a dataset's endpoint and print the predictions",
        description="POST the rows of FILE (CSV with the header row the dataset was uploaded with; the target column "
        "may be there or not) to the dataset's endpoint: the local stack's, or with --stack a deployed stack's "
        "(SageMaker InvokeEndpoint). Prints one prediction per row.",
        epilog="exit status: 0 answered; 2 no endpoint for the dataset, or the endpoint refused the rows (its reason "
        "is printed); 64 no stack.",
    )
    predict.add_argument("dataset", metavar="DATASET")
    predict.add_argument("file", type=Path, metavar="FILE", help="CSV rows to predict, with a header row ('-' for stdin)")
    predict.add_argument("--stack", metavar="NAME", help="a deployed stack (default: the local stack)")
    predict.add_argument("--region", metavar="REGION", help="the deployed stack's region")
    models = commands.add_parser(
        "models",
        help="a dataset's model registry: every evaluated model, Approved or Rejected, newest first",
        description="List the SageMaker model packages of a dataset's package group (every evaluated best run is "
        "registered, Approved when it passed the threshold, Rejected when not), with the dataset version, run and "
        "held-out metric each was registered with. From the local stack, or with --stack from a deployed one.",
        epilog="exit status: 0 listed (also when there are none yet); 64 no stack; 1 when AWS refused a call.",
    )
    models.add_argument("dataset", metavar="DATASET")
    models.add_argument("--json", action="store_true", help="one JSON object: the group and its packages")
    models.add_argument("--stack", metavar="NAME", help="a deployed stack (default: the local stack)")
    models.add_argument("--region", metavar="REGION", help="the deployed stack's region")
    registry_commands = []
    for verb, decided, effect in (
        ("approve", "Approved", "it deploys (ModelApproved)"),
        ("reject", "Rejected", "it is not deployed (ModelRejected)"),
    ):
        command = commands.add_parser(
            verb,
            help=f"{verb} a dataset version waiting in the model registry (approval: manual): {effect}",
            description=f"Set the model package of a dataset VERSION that passed the gate and waits for a person "
            f"(dataset config `approval: manual`) to {decided} in the dataset's model package group, as Studio does "
            f"(UpdateModelPackage). SageMaker announces the change and the evaluate function turns it into the "
            f"decision: {effect}. On the local stack, or with --stack on a deployed one.",
            epilog="exit status: 0 done (also when the package already had that status: nothing happens twice); "
            "2 the version is not waiting for a decision (its status and reason are printed); 64 no stack; 1 when AWS "
            "refused a call.",
        )
        command.add_argument("dataset", metavar="DATASET")
        command.add_argument(
            "version", metavar="VERSION", help="the dataset version (in ModelPendingApproval, `datadrop models`)"
        )
        command.add_argument("--reason", help="why, kept as the package's ApprovalDescription")
        command.add_argument("--stack", metavar="NAME", help="a deployed stack (default: the local stack)")
        command.add_argument("--region", metavar="REGION", help="the deployed stack's region")
        command.set_defaults(registry_status=decided)
        registry_commands.append(command)
    for command in (up, down, status, events, predict, models, *registry_commands):
        _add_home(command)


def _iso_time(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO 8601 time such as 2026-12-01T00:00Z") from error
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # Before the library is imported: its child loggers are named after the service they log for.
    os.environ.setdefault("POWERTOOLS_SERVICE_NAME", SERVICE)
    os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")
    with logs_on_stderr():
        if args.command in ("up", "down", "status", "events"):
            return service_command(args)
        if args.command == "predict":
            return predict_command(args)
        if args.command == "models":
            return models_command(args)
        if args.command in ("approve", "reject"):
            return registry_command(args)
        if args.command == "prepare":
            return prepare_command(args)
        if args.command == "retry":
            return retry_on_stack(args.dataset, args.version, args.stack, args.region, args.home)
        if args.command in ("runs", "plot"):
            return leaderboard_on_stack(args)
        if args.command == "experiments":
            return experiments_on_stack(args)
        return run_command(args)


def prepare_command(args: argparse.Namespace) -> int:
    """`datadrop prepare`: the prepare step on one local file, its report on stdout."""
    from datadrop.config import ConfigError, validate_dataset_name

    try:
        validate_dataset_name(args.dataset)
        config_text = compose_config(args.config, args.target, None)
    except (UsageError, ConfigError) as error:
        print(f"datadrop: {error}", file=sys.stderr)
        return EXIT_USAGE
    try:
        data = args.path.read_bytes()
    except OSError as error:
        print(f"datadrop: cannot read {args.path}: {error.strerror}", file=sys.stderr)
        return EXIT_USAGE

    import hashlib

    from datadrop import dataprep, names, quality
    from datadrop.config import parse_config
    from datadrop.metrics import MetricError

    def rejected(stage: str, reason: str) -> int:
        if args.json:
            print(json.dumps({"dataset": args.dataset, "status": "rejected", "stage": stage, "reason": reason}, indent=2))
        print(f"datadrop: {args.path} would be rejected: {reason}", file=sys.stderr)
        return EXIT_INPUT_REJECTED

    try:
        config = parse_config(config_text, str(args.config) if args.config else "--target")
    except ConfigError as error:
        return rejected("config", str(error))
    try:
        prepared = dataprep.prepare(data, config)
    except dataprep.DatasetRejected as error:
        return rejected("data", error.reason)
    try:  # as the prepare step does: with problem_type auto, the metric is checked once the target is known
        config.judged_by(prepared.recipe["problem_type"], stack_default=0.8)
    except MetricError as error:
        return rejected("config", str(error))
    version = names.dataset_version(hashlib.sha256(data).hexdigest(), config.fingerprint())  # as the service names it
    report = prepared.report.model_copy(update={"dataset": args.dataset, "version": version})
    if args.json:
        document = {"dataset": args.dataset, "version": version, "status": "prepared", "report": report.model_dump(mode="json")}
        print(json.dumps(document, indent=2))
    else:
        print(quality.render_table(report))
    return EXIT_OK


def run_command(args: argparse.Namespace) -> int:
    try:
        config_text = compose_config(args.config, args.target, args.threshold)
    except UsageError as error:
        print(f"datadrop: {error}", file=sys.stderr)
        return EXIT_USAGE
    if not args.path.is_file():
        print(f"datadrop: {args.path} is not a file", file=sys.stderr)
        return EXIT_USAGE
    progress = sys.stderr if args.json else sys.stdout
    if not args.isolated:
        from datadrop.local import service

        running = service.find_stack(service.StackHome(args.home or service.default_home()))
        if running is not None and running.worker_alive:
            return run_on_service(running, args.path, args.dataset, config_text, as_json=args.json, out=progress, plot=args.plot)
    try:
        return run_locally(
            args.path, args.dataset, config_text, args.template, serve=args.serve, as_json=args.json, out=progress, plot=args.plot
        )
    except Exception as error:
        if not args.json:
            raise
        traceback.print_exc(file=sys.stderr)
        summary = {
            "dataset": args.dataset,
            "version": None,
            "status": "failed",
            "runs": [],
            "best_run": None,
            "reason": f"datadrop itself failed: {type(error).__name__}: {one_line(str(error))}",
        }
        print(json.dumps(summary, indent=2), file=sys.stdout, flush=True)
        print(f"datadrop: failed: {summary['reason']}", file=sys.stderr)
        return EXIT_FAILED


class _CurrentStream:
    """Writes to whatever sys.stdout or sys.stderr is when a record is written (a redirect, a test's capture),
    never to a stream that was replaced (or closed) since the handler was made."""

    def __init__(self, name: str) -> None:
        self.name = name

    def write(self, text: str) -> int:
        return getattr(sys, self.name).write(text)

    def flush(self) -> None:
        getattr(sys, self.name).flush()


def _writes_to_stdout(handler: logging.Handler, owner: logging.Logger) -> bool:
    if not isinstance(handler, logging.StreamHandler) or isinstance(handler, logging.FileHandler):
        return False
    stream = handler.stream
    if stream is sys.stdout or stream is sys.__stdout__ or (isinstance(stream, _CurrentStream) and stream.name == "stdout"):
        return True
    # A Powertools service logger made its handler on the sys.stdout of that moment, which may have been
    # replaced since (pytest's capture, a redirect): its handler is a stdout handler whatever it now holds.
    return getattr(owner, "powertools_handler", None) is handler


@contextmanager
def logs_on_stderr() -> Iterator[None]:
    """Every log handler that writes to stdout writes to stderr until the block ends, then gets its stream back.

    Powertools' Logger writes to stdout (CloudWatch reads it in Lambda). Handler modules may have been
    imported before in this process, each `Logger()` sharing the service logger's one handler, and the
    library's child loggers propagate to it: moving the handlers, rather than making new loggers,
    catches all of them. The service logger is made here when nothing made it yet (on a stream that
    follows sys.stdout, as Powertools would), so the handlers imported later reuse the moved handler.
    """
    from aws_lambda_powertools import Logger

    Logger(service=os.environ.get("POWERTOOLS_SERVICE_NAME", SERVICE), stream=_CurrentStream("stdout"))  # type: ignore[arg-type]
    known = list(logging.Logger.manager.loggerDict.values())  # a copy: another thread may make a logger meanwhile
    loggers = [logging.getLogger(), *(item for item in known if isinstance(item, logging.Logger))]
    moved: list[tuple[logging.StreamHandler[Any], Any]] = []
    for owner in loggers:
        for handler in owner.handlers:
            if _writes_to_stdout(handler, owner) and all(handler is not done for done, _ in moved):
                # Swapped without setStream, which would flush the old stream, and it may be closed.
                with _locked(handler):
                    moved.append((handler, handler.stream))  # type: ignore[arg-type,attr-defined]
                    handler.stream = _CurrentStream("stderr")  # type: ignore[attr-defined]
    try:
        yield
    finally:
        for handler, previous in reversed(moved):
            with _locked(handler):
                handler.stream = previous


@contextmanager
def _locked(handler: logging.Handler) -> Iterator[None]:
    handler.acquire()
    try:
        yield
    finally:
        handler.release()


class UsageError(Exception):
    pass


def compose_config(config_path: Path | None, target: str | None, threshold: float | None) -> str:
    """The config text to upload: the user's file with the command-line flags applied on top."""
    if config_path is None:
        if target is None:
            raise UsageError("give --target COLUMN or --config FILE (a config needs at least `target: <column>`)")
        document: Any = {}
    else:
        try:
            text = config_path.read_text()
        except OSError as error:
            raise UsageError(f"cannot read --config {config_path}: {error.strerror}") from error
        if target is None and threshold is None:
            return text  # uploaded untouched, so the service judges exactly what the user wrote
        try:
            document = yaml.safe_load(text) or {}
        except yaml.YAMLError:
            return text  # let the service reject it with its own message
        if not isinstance(document, dict):
            return text
    if target is not None:
        document["target"] = target
    if threshold is not None:
        document["threshold"] = threshold
    return yaml.safe_dump(document, sort_keys=False)


def run_locally(
    path: Path,
    dataset: str,
    config_text: str,
    template: Path,
    *,
    serve: bool,
    as_json: bool,
    out: TextIO,
    plot: Path | None = None,
) -> int:
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    os.environ.setdefault("AWS_SESSION_TOKEN", "testing")
    os.environ["AWS_DEFAULT_REGION"] = "us-east-1"
    from moto import mock_aws

    from datadrop.local.runtime import LocalStack

    started = time.monotonic()

    def say(message: str) -> None:
        print(f"[{time.monotonic() - started:6.1f}s] {message}", file=out, flush=True)

    with mock_aws(), LocalStack(template_path=template, on_event=lambda event: say(describe_event(event))) as stack:
        stack.on_delivery = lambda delivery: say(describe_delivery(delivery))
        stack.on_compute = lambda message: say(f"  local SageMaker: {message}")
        say(f"local datadrop up (buckets, bus, tables, {len(stack.routes)} rules from {template.name})")
        stack.put_config(dataset, config_text)
        key = stack.upload(path, dataset)
        say(f"uploaded {path} to s3://{stack.settings.data_bucket_name}/{key}")
        stack.drain()
        summary = report_run(stack, dataset, path, started, plot=plot, as_json=as_json, out=out, say=say)
        if serve and summary["status"] == "deployed":
            serve_forever(summary, out)
    return run_exit(summary)


def report_run(
    stack: Any,
    dataset: str,
    path: Path,
    started: float,
    *,
    plot: Path | None,
    as_json: bool,
    out: TextIO,
    say: Callable[[str], None],
) -> dict[str, Any]:
    """The end of `datadrop run`, wherever the flow ran: the summary (with one real prediction when
    deployed, and the plot when asked), printed as a table or as exactly one JSON object."""
    summary = summarise(stack, dataset)
    if summary["status"] == "deployed":
        summary["example_prediction"] = example_prediction(path, summary["invocation_url"])
    summary["seconds"] = round(time.monotonic() - started, 1)
    if plot is not None and summary.get("version"):
        from datadrop import leaderboard

        board = leaderboard.load(stack.services.state, dataset, summary["version"])
        summary["plot"] = str(plot)
        say(f"plot of held-out {board.metric} against {', '.join(leaderboard.plot(board, plot))} written to {plot}")
    if as_json:
        print(json.dumps(summary, indent=2, default=str), file=sys.stdout, flush=True)
    else:
        print_summary(summary, out)
    return summary


def run_exit(summary: dict[str, Any]) -> int:
    """The exit status of `datadrop run`, with the reason on stderr when it is not 0."""
    if summary["status"] == "input_rejected":
        print(f"datadrop: input rejected: {summary['reason']}", file=sys.stderr)
    elif summary["status"] == "failed":
        print(f"datadrop: failed: {summary.get('reason')}", file=sys.stderr)
    return exit_code(summary)


TERMINAL_EVENTS = (
    "ModelDeployed", "ModelRejected", "ModelPendingApproval", "VersionFailed", "DeploymentFailed", "DeploymentSuperseded",
)  # fmt: skip


@dataclass
class _ServiceView:
    """What `summarise` reads from a stack, for the running local stack: its state table, the events
    of this upload (from the worker's log) and its endpoints."""

    services: Any
    settings: Any
    endpoints: dict[str, str]
    published: list[dict[str, Any]] = field(default_factory=list)
    dead_letters: list[Any] = field(default_factory=list)

    @property
    def compute(self) -> _ServiceView:
        return self

    def events_of(self, detail_type: str) -> list[dict[str, Any]]:
        return [event["detail"] for event in self.published if event["detail-type"] == detail_type]

    def endpoint_url(self, endpoint: str) -> str | None:
        return self.endpoints.get(endpoint)

    def invocation_url(self, endpoint: str) -> str:
        return f"{self.endpoints[endpoint]}/invocations"


def run_on_service(
    running: Any, path: Path, dataset: str, config_text: str, *, as_json: bool, out: TextIO, plot: Path | None
) -> int:
    """`datadrop run` when `datadrop up` runs a stack: upload there, as a user would with the AWS CLI,
    and follow this upload's events in the worker's log to the end of its version."""
    import hashlib

    import boto3

    from datadrop import names
    from datadrop.config import ConfigError, parse_config
    from datadrop.local import service
    from datadrop.local.runtime import local_settings
    from datadrop.records import TERMINAL_VERSION_STATUSES, VersionStatus
    from datadrop.services import Services

    started = time.monotonic()

    def say(message: str) -> None:
        print(f"[{time.monotonic() - started:6.1f}s] {message}", file=out, flush=True)

    os.environ.update(running.environment())
    settings = local_settings()
    session = boto3.session.Session(region_name=service.REGION)
    view = _ServiceView(Services.from_settings(settings, session), settings, {})
    data = path.read_bytes()
    try:
        version: str | None = names.dataset_version(
            hashlib.sha256(data).hexdigest(), parse_config(config_text, "--config").fingerprint()
        )
    except ConfigError:
        version = None  # the service rejects the config, with its reason, as a DatasetRejected event
    s3 = session.client("s3")
    s3.put_object(Bucket=settings.data_bucket_name, Key=names.config_keys(dataset)[0], Body=config_text.encode())
    existing = view.services.state.get_version(dataset, version) if version else None
    home = running.home
    position = home.events.stat().st_size if home.events.exists() else 0
    if existing is not None and existing.status != VersionStatus.FAILED and existing.prepared:
        # The same bytes and config again: the service would ignore the upload (a FAILED version
        # would start over). Nothing to upload: the version's result, or its end when it is running.
        view.published.append({"detail-type": "DatasetPrepared", "detail": existing.prepared_event().model_dump(mode="json")})
        status = existing.status.value
        if existing.status in TERMINAL_VERSION_STATUSES:
            say(f"{path} with this config is version {version} of {dataset} already ({status}): nothing new to run")
        else:
            say(f"{path} with this config is version {version} of {dataset}, already {status}: following it to its end")
            if not _follow_version(running, view, dataset, version, None, position, say):
                return EXIT_FAILED
    else:
        key = f"{names.INCOMING_PREFIX}{dataset}/{path.name}"
        uploaded = s3.put_object(Bucket=settings.data_bucket_name, Key=key, Body=data)
        say(f"uploaded {path} to s3://{settings.data_bucket_name}/{key} on the local stack ({running.endpoint_url})")
        if not _follow_version(running, view, dataset, version, (key, uploaded.get("VersionId")), position, say):
            return EXIT_FAILED
    view.endpoints = service.read_endpoints(home)
    summary = report_run(view, dataset, path, started, plot=plot, as_json=as_json, out=out, say=say)
    if not as_json and summary["status"] == "deployed":
        print(f"the endpoint keeps serving until `datadrop down`; `datadrop predict {dataset} FILE` uses it", file=out)
    return run_exit(summary)


def _follow_version(
    running: Any,
    view: _ServiceView,
    dataset: str,
    version: str | None,
    upload: tuple[str, str | None] | None,
    position: int,
    say: Callable[[str], None],
) -> bool:
    """Collect into `view` the events of this upload (`upload`: its key and S3 version id) or of this
    dataset version, from the worker's log at `position`, until the version's end. False when the
    worker stopped meanwhile (said on stderr)."""
    from urllib.parse import quote_plus

    from datadrop.local import service

    home = running.home
    last_check = time.monotonic()
    for event in service.read_events(home, follow=True, start=position):
        detail, kind = event.get("detail", {}), event.get("detail-type")
        source = detail.get("source") or {}
        # The key as uploaded, or URL-encoded as S3 puts it in some events.
        ours_by_upload = upload is not None and (
            source.get("key") in (upload[0], quote_plus(upload[0], safe="/")) and source.get("version_id") in (None, upload[1])
        )
        if kind in ("DatasetPrepared", "DatasetRejected") and ours_by_upload:
            version = detail.get("version") or version
        elif event.get("_heartbeat") or detail.get("dataset") != dataset or detail.get("version") != version:
            if time.monotonic() - last_check > 5:
                last_check = time.monotonic()
                if not running.worker_alive:
                    print(
                        f"datadrop: the local stack's worker stopped; see {home.log('worker')} and `datadrop up`", file=sys.stderr
                    )
                    return False
            continue
        view.published.append(event)
        say(describe_event(event))
        if kind == "DatasetRejected" or kind in TERMINAL_EVENTS:
            return True
    return True


class StackProblem(Exception):
    """The stack named on the command line is not a (complete) datadrop stack."""


def stack_settings(cloudformation: Any, stack: str, region: str) -> Any:
    """The deployed stack's Settings, from its CloudFormation outputs (and its NamePrefix parameter)."""
    from botocore.exceptions import ClientError

    from datadrop.settings import Settings

    try:
        described = cloudformation.describe_stacks(StackName=stack)["Stacks"]
    except ClientError as error:
        problem = error.response["Error"]
        if problem["Code"] == "ValidationError" and "does not exist" in problem.get("Message", ""):
            raise StackProblem(
                f"no stack {stack!r} in {region}: give the stack name `sam deploy` used (samconfig.toml's stack_name) "
                "and its --region"
            ) from error
        raise
    found = described[0]
    outputs = {output["OutputKey"]: output["OutputValue"] for output in found.get("Outputs", [])}
    missing = [name for name in STACK_OUTPUTS if not outputs.get(name)]
    if missing:
        raise StackProblem(
            f"stack {stack!r} ({found.get('StackStatus', 'status unknown')}) has no output {', '.join(missing)}: "
            "is it a datadrop stack, and did its deployment finish?"
        )
    parameters = {parameter["ParameterKey"]: parameter.get("ParameterValue") for parameter in found.get("Parameters", [])}
    return Settings(
        **{field: outputs[output] for output, field in STACK_OUTPUTS.items()},
        name_prefix=parameters.get("NamePrefix") or "datadrop",
        artifact_prefix=parameters.get("ArtifactPrefix") or "datasets",
        compute="sagemaker",
        region=region,
    )


def on_stack(
    stack: str | None,
    region: str | None,
    command: Callable[[Any, Any], int],
    refusals: tuple[type[Exception], ...] = (),
    refused_as: str = "",
    home: Path | None = None,
) -> int:
    """Run `command(settings, session)` against a deployed stack, found by its CloudFormation outputs,
    or, without --stack, against the local stack (`datadrop up`), with the exit codes every stack
    command shares: 64 when the stack is missing or not datadrop's, 2 when the command refuses (one of
    `refusals`, printed after `refused_as`), 1 when AWS says no."""
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        if stack:
            session = boto3.session.Session(region_name=region)
            if session.region_name is None:
                print("datadrop: which region is the stack in? give --region (or set AWS_REGION)", file=sys.stderr)
                return EXIT_USAGE
            settings = stack_settings(session.client("cloudformation"), stack, session.region_name)
        else:
            settings, session = local_stack_settings(home)
        return command(settings, session)
    except StackProblem as problem:
        print(f"datadrop: {problem}", file=sys.stderr)
        return EXIT_USAGE
    except refusals as refused:
        print(f"datadrop: {refused_as}{refused}", file=sys.stderr)
        return EXIT_INPUT_REJECTED
    except (ClientError, BotoCoreError) as error:
        print(f"datadrop: AWS said no: {one_line(str(error))}", file=sys.stderr)
        return EXIT_FAILED


def local_stack_settings(home: Path | None) -> tuple[Any, Any]:
    """The running local stack's Settings and a boto3 session that talks to it (and only to it)."""
    import boto3

    from datadrop.local import service
    from datadrop.local.runtime import local_settings

    stack_home = service.StackHome(home or service.default_home())
    running = service.find_stack(stack_home)
    if running is None:
        raise StackProblem(
            f"no local stack is running in {stack_home.root}: start it with `datadrop up`, or name a deployed stack "
            "with --stack NAME --region REGION"
        )
    os.environ.update(running.environment())  # every client this command makes goes to the local stack
    return local_settings(), boto3.session.Session(region_name=service.REGION)


def retry_on_stack(dataset: str, version: str, stack: str | None, region: str | None, home: Path | None = None) -> int:
    """`datadrop retry`: a FAILED version starts over (datadrop.recovery.retry_version)."""
    from datadrop import names
    from datadrop.recovery import RetryRefused, retry_version
    from datadrop.services import Services

    def retry(settings: Any, session: Any) -> int:
        services = Services.from_settings(settings, session)
        attempt = retry_version(services, dataset, version)
        item = services.state.get_version(dataset, version)
        if item is not None and item.tuning_job:
            work = f"tuning job {names.tuning_job_name(settings.name_prefix, dataset, version, attempt)}"
        else:
            work = "training job " + ", ".join(
                names.RunNames(settings.name_prefix, dataset, version, run_index, attempt).training_job
                for run_index in range(1, (item.run_count if item and item.run_count else 1) + 1)
            )
        status = item.status.value if item else "PREPARED"
        print(f"{dataset} version {version}: attempt {attempt} started (the version is {status} again).")
        print(
            f"DatasetPrepared was published again on event bus {settings.event_bus_name}: the train function now starts "
            f"{work}; evaluation and, if the model is good enough, deployment follow as after an "
            "upload.\nFollow it on the bus (ModelApproved/ModelRejected, ModelDeployed, VersionFailed) or in the state table "
            f"{settings.state_table_name}."
        )
        return EXIT_OK

    return on_stack(stack, region, retry, (RetryRefused,), "cannot retry: ", home)


def leaderboard_on_stack(args: argparse.Namespace) -> int:
    """`datadrop runs` and `datadrop plot`: runs read from the stack's state table."""
    from datadrop import leaderboard
    from datadrop.services import Services

    def show(settings: Any, session: Any) -> int:
        state = Services.from_settings(settings, session).state
        if args.command == "plot":
            board = leaderboard.load(state, args.dataset, args.version)
            plotted = leaderboard.plot(board, args.output)
            print(f"wrote {args.output}: held-out {board.metric} against {', '.join(plotted)} ({len(board.runs)} runs)")
            return EXIT_OK
        # One version when asked for; otherwise every version, newest first.
        boards = (
            [leaderboard.load(state, args.dataset, args.version)] if args.version else leaderboard.load_all(state, args.dataset)
        )
        if args.json:
            document = (
                boards[0].as_dict() if args.version else {"dataset": args.dataset, "versions": [b.as_dict() for b in boards]}
            )
            print(json.dumps(document, indent=2, default=str))
        elif args.csv:
            print(leaderboard.as_csv(*boards), end="")
        else:
            print("\n".join(leaderboard.as_table(board) for board in boards), end="")
        return EXIT_OK

    return on_stack(args.stack, args.region, show, (leaderboard.NoSuchVersion,), home=args.home)


def experiments_on_stack(args: argparse.Namespace) -> int:
    """`datadrop experiments [list|show|delete]` against the stack's SageMaker."""
    from datadrop import experiment_admin, names

    def act(settings: Any, session: Any) -> int:
        sagemaker = session.client("sagemaker")
        action = args.action or "list"
        if action == "list":
            found = experiment_admin.list_experiments(sagemaker, settings.name_prefix)
            for summary in found:
                created = summary.get("CreationTime")
                when = f"  created {created:%Y-%m-%d %H:%M}" if created else ""
                print(f"{summary['ExperimentName']}  {summary.get('DisplayName', '')}{when}")
            print(f"({len(found)} experiment(s) of {f'stack {args.stack}' if args.stack else 'the local stack'})")
            return EXIT_OK
        experiment = names.experiment_name(settings.name_prefix, args.dataset)
        if action == "show":
            groups = experiment_admin.run_groups(
                sagemaker, experiment, args.created_after, args.created_before, args.sort_by, args.sort_order
            )
            print(f"{experiment}: {len(groups)} run group(s)")
            for group in groups:
                when = f"{group.created:%Y-%m-%d %H:%M}" if group.created else "?"
                print(f"  {group.name}  created {when}  {group.runs} run(s)")
            return EXIT_OK
        if not args.yes:
            if not sys.stdin.isatty():
                print("datadrop: deleting needs a yes: run it in a terminal, or add --yes", file=sys.stderr)
                return EXIT_USAGE
            answer = input(f"Delete experiment {experiment} with all its run groups and runs? [y/N] ")
            if answer.strip().lower() not in ("y", "yes"):
                print("nothing deleted")
                return EXIT_OK
        deleted = experiment_admin.delete_experiment(sagemaker, experiment)
        print(
            f"deleted {deleted.runs} run(s), {deleted.run_groups} run group(s) and experiment {experiment}. "
            "The model registry, the endpoint and the data are left alone."
        )
        return EXIT_OK

    return on_stack(args.stack, args.region, act, home=args.home)


def service_command(args: argparse.Namespace) -> int:
    """`datadrop up | down | status | events`: the local stack as a service (datadrop.local.service)."""
    from datadrop.local import service

    home = service.StackHome(args.home or service.default_home())
    if args.command == "up":
        try:
            stack = service.up(
                home, args.port or service.DEFAULT_PORT, args.workers or os.cpu_count() or 1, args.template, sys.stdout
            )
        except service.StartFailed as error:
            print(f"datadrop: {error}", file=sys.stderr)
            return EXIT_USAGE if "is taken" in str(error) else EXIT_FAILED
        service.describe(stack, sys.stdout)
        return EXIT_OK
    if args.command == "down":
        return EXIT_OK if service.down(home, sys.stdout) else EXIT_FAILED
    if args.command == "status":
        return EXIT_OK if service.status(home, sys.stdout) else EXIT_FAILED
    if not home.events.exists() and service.find_stack(home) is None:
        print(f"datadrop: no local stack in {home.root}: start one with `datadrop up`", file=sys.stderr)
        return EXIT_USAGE
    try:
        for event in service.read_events(home, follow=args.follow):
            if event.get("_heartbeat"):
                continue
            if args.dataset and event.get("detail", {}).get("dataset") != args.dataset:
                continue
            if args.json:
                print(json.dumps(event), flush=True)
            else:
                print(f"{event.get('time', '')}  {describe_event(event)}", flush=True)
    except KeyboardInterrupt:
        pass
    return EXIT_OK


def predict_command(args: argparse.Namespace) -> int:
    """`datadrop predict DATASET FILE`: the rows through the dataset's endpoint, one answer per row."""
    body = sys.stdin.buffer.read() if str(args.file) == "-" else _read_bytes(args.file)
    if body is None:
        print(f"datadrop: cannot read {args.file}", file=sys.stderr)
        return EXIT_USAGE

    def predict(settings: Any, session: Any) -> int:
        from datadrop import names

        endpoint = names.endpoint_name(settings.name_prefix, args.dataset)
        if args.stack:
            runtime = session.client("sagemaker-runtime")
            try:
                answer = runtime.invoke_endpoint(EndpointName=endpoint, ContentType="text/csv", Accept="text/csv", Body=body)
            except runtime.exceptions.ValidationError as error:
                raise PredictionRefused(one_line(str(error))) from error
            except runtime.exceptions.ModelError as error:
                raise PredictionRefused(one_line(str(error))) from error
            print(answer["Body"].read().decode().rstrip("\n"))
            return EXIT_OK
        from datadrop.local import service

        url = service.read_endpoints(service.StackHome(args.home or service.default_home())).get(endpoint)
        if url is None:
            raise PredictionRefused(f"dataset {args.dataset!r} has no endpoint on the local stack (nothing deployed yet?)")
        request = urllib.request.Request(
            f"{url}/invocations", data=body, headers={"Content-Type": "text/csv", "Accept": "text/csv"}
        )
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                print(response.read().decode().rstrip("\n"))
        except urllib.error.HTTPError as error:
            if error.code == HTTPStatus.INTERNAL_SERVER_ERROR:
                # As the SageMaker XGBoost container: whatever the inference script raised is a 500
                # with a generic page; the reason is in the endpoint's log (the worker's, locally).
                raise PredictionRefused(
                    "the endpoint answered 500: the model could not use these rows (wrong columns or values?); "
                    "the reason is in the local stack's worker log (`datadrop status` shows where)"
                ) from error
            raise PredictionRefused(f"the endpoint said {error.code}: {error.read().decode(errors='replace').strip()}") from error
        return EXIT_OK

    return on_stack(args.stack, args.region, predict, (PredictionRefused,), "", args.home)


def models_command(args: argparse.Namespace) -> int:
    """`datadrop models DATASET`: the dataset's model package group, newest package first, and which one serves."""

    def show(settings: Any, session: Any) -> int:
        from datadrop import names

        sagemaker = session.client("sagemaker")
        group = names.model_package_group_name(settings.name_prefix, args.dataset)
        serving = serving_version(settings, session, args.dataset)
        packages = []
        for page in sagemaker.get_paginator("list_model_packages").paginate(ModelPackageGroupName=group):
            for summary in page["ModelPackageSummaryList"]:
                described = sagemaker.describe_model_package(ModelPackageName=summary["ModelPackageArn"])
                metadata = described.get("CustomerMetadataProperties", {})
                packages.append(
                    {
                        "package_version": summary.get("ModelPackageVersion"),
                        "approval": summary.get("ModelApprovalStatus"),
                        "dataset_version": metadata.get("version"),
                        "run": metadata.get("run"),
                        "judged_by": metadata.get("metric"),
                        "metrics": {key: value for key, value in metadata.items() if key in METRIC_NAMES},
                        "champion": metadata.get("champion"),
                        "champion_value": next((value for key, value in metadata.items() if key.startswith("champion_")), None),
                        "serving": serving is not None and metadata.get("version") == serving,
                        "report": (described.get("ModelMetrics", {}).get("ModelQuality", {}).get("Statistics", {}) or {}).get(
                            "S3Uri"
                        ),
                        "created": summary.get("CreationTime"),
                        "arn": summary["ModelPackageArn"],
                    }
                )
        packages.sort(key=lambda package: package["package_version"] or 0, reverse=True)
        if args.json:
            print(json.dumps({"group": group, "serving": serving, "packages": packages}, indent=2, default=str))
            return EXIT_OK
        print(
            f"{group}: {len(packages)} model package(s), newest first; serving: " + (f"version {serving}" if serving else "none")
        )
        for package in packages:
            judged = package["judged_by"]
            metrics = ", ".join(f"{'*' if key == judged else ''}{key} {value}" for key, value in package["metrics"].items())
            champion = f"  (champion {package['champion']}: {package['champion_value']})" if package["champion"] else ""
            marker = "  <- serving" if package["serving"] else ""
            print(
                f"  v{package['package_version']}  {package['approval']:<21}  version {package['dataset_version']}  "
                f"run {package['run']}  {metrics}{champion}{marker}"
            )
        return EXIT_OK

    return on_stack(args.stack, args.region, show, home=args.home)


METRIC_NAMES = frozenset(
    {"accuracy", "balanced_accuracy", "macro_precision", "macro_recall", "macro_f1", "roc_auc", "log_loss",
     "r2", "rmse", "mae", "mape"}
)  # fmt: skip


def serving_version(settings: Any, session: Any, dataset: str) -> str | None:
    """The dataset version whose model the dataset's endpoint serves (its endpoint config, by lookup)."""
    from datadrop import names
    from datadrop.compute import SageMakerCompute
    from datadrop.state import StateStore

    endpoint = SageMakerCompute(session.client("sagemaker"), settings.region).describe_endpoint(
        names.endpoint_name(settings.name_prefix, dataset)
    )
    config = (endpoint or {}).get("EndpointConfigName")
    if not config:
        return None
    state = StateStore(session.resource("dynamodb").Table(settings.state_table_name))
    owner = state.find_resource("endpoint-config", str(config))
    return owner.version if owner else None


class RegistryRefused(Exception):
    pass


def request_registry_decision(services: Any, dataset: str, version: str, status: str, reason: str | None = None) -> str:
    """Set the model package of a version waiting for a person to `status` (Approved or Rejected), as
    Studio does; SageMaker's state-change event does the rest. Returns what happened, in words;
    RegistryRefused when the version is not waiting for a decision."""
    from datadrop.state import VersionStatus

    item = services.state.get_version(dataset, version)
    if item is None:
        raise RegistryRefused(f"dataset {dataset!r} has no version {version!r} (`datadrop models {dataset}` lists them)")
    arn = item.model_package_arn
    if arn is None:
        raise RegistryRefused(f"version {version} of {dataset!r} is {item.status.value} and has no model package")
    current = services.sagemaker.describe_model_package(ModelPackageName=arn).get("ModelApprovalStatus")
    if current == status:
        return f"the package of version {version} is {status} already: nothing to do"
    if current != "PendingManualApproval":
        raise RegistryRefused(f"the package of version {version} was {current} in the model registry already: {arn}")
    if item.status != VersionStatus.PENDING_APPROVAL:
        raise RegistryRefused(
            f"version {version} of {dataset!r} is not waiting for a person's decision: it is {item.status.value}"
            + (f" ({item.decision_reason})" if item.decision_reason else "")
        )
    who = os.environ.get("USER") or "someone"
    services.sagemaker.update_model_package(
        ModelPackageArn=arn,
        ModelApprovalStatus=status,
        ApprovalDescription=(reason or f"{status.lower()} with datadrop by {who}")[:1000],
    )
    then = "it deploys" if status == "Approved" else "it stays undeployed"
    return f"package {arn} of version {version}: {status}; SageMaker announces it and {then}"


def registry_command(args: argparse.Namespace) -> int:
    """`datadrop approve|reject DATASET VERSION`."""

    def decide(settings: Any, session: Any) -> int:
        from datadrop.services import Services

        print(request_registry_decision(Services.from_settings(settings, session), args.dataset, args.version,
                                        args.registry_status, args.reason))  # fmt: skip
        return EXIT_OK

    return on_stack(args.stack, args.region, decide, (RegistryRefused,), "", args.home)


class PredictionRefused(Exception):
    pass


def _read_bytes(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except OSError:
        return None


def one_line(text: str, limit: int = 300) -> str:
    first = text.strip().splitlines()[0] if text.strip() else ""
    return first if len(first) <= limit else first[: limit - 1] + "…"


def describe_delivery(delivery: Any) -> str:
    if delivery.error:
        return f"  {delivery.function} FAILED: {one_line(delivery.error)}"
    return f"  {delivery.function} ← {delivery.event.get('detail-type')} → {json.dumps(delivery.result, default=str)}"


def describe_event(event: dict[str, Any]) -> str:
    detail, kind = event["detail"], event["detail-type"]
    if kind == "DatasetPrepared":
        rows = detail["rows"]
        kind = detail["problem_type"]
        if kind != "regression":
            kind += f" over {len(detail['classes'])} classes"
        if detail["metric"] != "accuracy":  # the default of classification goes without saying
            kind += f", judged by {detail['metric']}"
        return (
            f"DatasetPrepared {detail['dataset']} version {detail['version']}: {kind}; "
            f"rows train {rows['train']} / validation {rows['validation']} / test {rows['test']}"
        )
    if kind == "DatasetRejected":
        return f"DatasetRejected ({detail['stage']}): {detail['reason']}"
    if kind == "TrainingStarted":
        where = f"TrainingStarted: experiment {detail['experiment_name']}, run group {detail['run_group']}, "
        if detail.get("tuning_job"):
            return where + f"Bayesian search: tuning job {detail['tuning_job']}, up to {detail['max_runs']} runs"
        return where + ", ".join(run["training_job"] for run in detail["runs"])
    if kind == "RunEvaluated":
        from datadrop.metrics import format_value

        metrics = detail["run"]["metrics"]
        shown = ("r2", "rmse", "mae") if "r2" in metrics else ("accuracy",)  # regression, or classification
        values = ", ".join(f"{name} {format_value(metrics.get(name, float('nan')))}" for name in shown)
        return f"RunEvaluated {detail['run']['training_job']}: held-out {values}"
    if kind in ("ModelApproved", "ModelRejected", "ModelPendingApproval"):
        return f"{kind}: {detail['reason']}"
    if kind == "VersionFailed":
        return f"VersionFailed ({detail['stage']}): {detail['reason']}"
    if kind == "DeploymentStarted":
        return f"DeploymentStarted: {'updating' if detail['update'] else 'creating'} endpoint {detail['endpoint_name']}"
    if kind == "ModelDeployed":
        return f"ModelDeployed: {detail['endpoint_name']} at {detail['invocation_url']}"
    if kind == "DeploymentFailed":
        return f"DeploymentFailed: {detail['reason']}"
    if kind == "DeploymentSuperseded":
        return f"DeploymentSuperseded by {detail['superseded_by']}: {detail['reason']}"
    return f"{kind}"


def summarise(stack: Any, dataset: str) -> dict[str, Any]:
    from datadrop import names

    rejected = stack.events_of("DatasetRejected")
    prepared = stack.events_of("DatasetPrepared")
    summary: dict[str, Any] = {"dataset": dataset, "version": None, "status": "failed", "runs": [], "best_run": None}
    if rejected and not prepared:
        summary.update(status="input_rejected", reason=rejected[-1]["reason"])
        return summary
    if not prepared:
        summary["reason"] = "; ".join(one_line(d.error or "") for d in stack.dead_letters) or "the dataset was not prepared"
        return summary
    version = prepared[-1]["version"]
    state: StateStore = stack.services.state
    item = state.get_version(dataset, version)
    if item is None:
        summary["reason"] = f"version {version} of {dataset} is not in the state table"
        return summary
    runs = state.list_runs(dataset, version, item.attempt)
    summary.update(
        version=version,
        metric=item.metric,
        threshold=item.threshold,
        problem_type=prepared[-1]["problem_type"],
        classes=prepared[-1]["classes"],
        rows=prepared[-1]["rows"],
        runs=[
            {
                "run_index": run.run_index,
                "run_name": run.run_name,
                "training_job": run.training_job,
                "algorithm": run.algorithm,
                "status": run.status.value,
                "hyperparameters": run.hyperparameters,
                "training_metrics": run.training_metrics,
                "test_metrics": run.metrics,
                "failure_reason": run.failure_reason,
            }
            for run in runs
        ],
        best_run=item.best_run,
        value=item.best_value,
        reason=item.decision_reason or item.failure_reason,
        experiment=names.experiment_name(stack.settings.name_prefix, dataset),
    )
    status = item.status
    if status == "DEPLOYED" and item.endpoint_name:
        endpoint = item.endpoint_name
        summary.update(
            status="deployed",
            endpoint_name=endpoint,
            endpoint_url=stack.compute.endpoint_url(endpoint),
            invocation_url=stack.compute.invocation_url(endpoint),
        )
    elif status == "REJECTED":
        summary["status"] = "rejected"
    elif status == "PENDING_APPROVAL":
        summary["status"] = "pending_approval"
        summary["approve_with"] = f"datadrop approve {dataset} {item.version}"
    else:
        summary["status"] = "failed"
        if stack.dead_letters:
            summary["reason"] = "; ".join(f"{d.function}: {one_line(d.error or '')}" for d in stack.dead_letters)
    return summary


def example_prediction(path: Path, invocation_url: str) -> dict[str, Any]:
    """POST the file's header and first data row, raw, to the endpoint: what a client would send."""
    with path.open(newline="") as handle:
        reader = csv.reader(handle)
        header, first = next(reader), next(reader)
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows([header, first])
    request = urllib.request.Request(
        invocation_url, data=buffer.getvalue().encode(), headers={"Content-Type": "text/csv", "Accept": "text/csv"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        answer = response.read().decode().strip()
    return {"request": buffer.getvalue(), "response": answer}


def print_summary(summary: dict[str, Any], out: TextIO) -> None:
    line = "─" * 72
    print(line, file=out)
    print(f"dataset {summary['dataset']}  version {summary.get('version')}  status {summary['status'].upper()}", file=out)
    if summary["status"] == "input_rejected":
        print(f"rejected: {summary['reason']}", file=out)
        print(line, file=out)
        return
    if summary.get("rows"):
        rows = summary["rows"]
        print(
            f"rows: train {rows['train']}, validation {rows['validation']}, test {rows['test']} "
            "(test rows never seen in training)",
            file=out,
        )
    for run in summary["runs"]:
        print(f"run {run['run_index']} {run.get('algorithm', 'xgboost')} ({run['training_job']}): {run['status']}", file=out)
        print("  hyperparameters: " + ", ".join(f"{k}={v}" for k, v in sorted(run["hyperparameters"].items())), file=out)
        if run["training_metrics"]:
            print("  training: " + ", ".join(f"{k} {v:.4f}" for k, v in sorted(run["training_metrics"].items())), file=out)
        if run["test_metrics"]:
            print("  held-out test: " + ", ".join(f"{k} {v:.4f}" for k, v in sorted(run["test_metrics"].items())), file=out)
        if run.get("failure_reason"):
            print(f"  failed: {run['failure_reason']}", file=out)
    if summary.get("threshold") is not None:
        print(f"decision: {summary.get('reason')}", file=out)
    if summary["status"] == "deployed":
        print(f"endpoint {summary['endpoint_name']}: {summary['invocation_url']}", file=out)
        example = summary["example_prediction"]
        print("one real prediction through it:", file=out)
        for request_line in example["request"].strip().splitlines():
            print(f"  > {request_line}", file=out)
        print(f"  < {example['response']}", file=out)
    elif summary["status"] == "pending_approval":
        print(f"waiting for a person in the model registry: {summary['approve_with']} (or reject)", file=out)
    elif summary["status"] == "failed":
        print(f"failed: {summary.get('reason')}", file=out)
    print(f"({summary['seconds']} s)", file=out)
    print(line, file=out)


def serve_forever(summary: dict[str, Any], out: TextIO) -> None:
    print(
        f"serving; try:\n  curl -s -H 'Content-Type: text/csv' --data-binary @rows.csv {summary['invocation_url']}\n"
        "Ctrl-C to stop.",
        file=out,
        flush=True,
    )
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        print("stopped.", file=out)


def exit_code(summary: dict[str, Any]) -> int:
    if summary["status"] in ("deployed", "rejected", "pending_approval"):
        return EXIT_OK
    if summary["status"] == "input_rejected":
        return EXIT_INPUT_REJECTED
    return EXIT_FAILED


def console() -> None:
    """The `datadrop` command: main(), then exit at once. Tearing the interpreter down (moto's
    in-memory AWS, xgboost, the imported modules) costs about a second and does nothing a user
    needs: the output is flushed and the local endpoints' threads are daemons."""
    code = main()
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    console()
