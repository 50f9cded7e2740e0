"""The `datadrop` command as a user runs it: `run --json` on every path, and `retry` on a deployed stack.

`run --json` promises exactly one JSON object on stdout, whatever happens, so scripts can pipe it
into `jq`: progress and the service's own logs go to stderr. `retry` finds a deployed stack by its
CloudFormation outputs and starts a FAILED version over.
"""

from __future__ import annotations

import io
import json
import logging
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from aws_lambda_powertools import Logger
from datadrop import cli, evaluation, intake, training
from datadrop.events import DatasetPrepared, SourceObject
from datadrop.local.runtime import provision
from datadrop.services import Services
from datadrop.settings import Settings
from moto import mock_aws

from tests.integration.conftest import observe_bus

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "penguins"
DATA = EXAMPLE / "penguins.csv"

pytestmark = pytest.mark.e2e


# ---------------------------------------------------------------------------------------------
# datadrop run --json
# ---------------------------------------------------------------------------------------------
class _Stdout:
    """Whatever sys.stdout is when a record is written: pytest gives each test phase a new capture stream."""

    def write(self, text: str) -> int:
        return sys.stdout.write(text)

    def flush(self) -> None:
        sys.stdout.flush()


@pytest.fixture
def service_logs_on_stdout() -> Iterator[None]:
    """As in a fresh `datadrop` process: the service's Powertools logger, the parent of every handler's and library
    module's logger, writes to stdout (Powertools' default, which Lambda wants). Library modules imported before
    POWERTOOLS_SERVICE_NAME was set (here: by another test module) hang under "service_undefined": that one too.
    An earlier test may have made these loggers on a capture stream that is closed now: point them at this test's
    stdout, so a log line the command lets through to stdout shows up in `capsys`."""
    library_children = (name for name in logging.Logger.manager.loggerDict if ".datadrop." in name)
    services = {cli.SERVICE, *(name.split(".", 1)[0] for name in library_children)}
    moved: list[tuple[Any, Any]] = []
    for service in sorted(services):
        Logger(service=service, stream=sys.__stdout__)  # makes the service logger when nothing did yet
        handler: Any = logging.getLogger(service).powertools_handler  # type: ignore[attr-defined]
        moved.append((handler, handler.stream))
        handler.stream = _Stdout()
    try:
        yield
    finally:
        for handler, previous in moved:
            handler.stream = previous


def run_json(capsys: pytest.CaptureFixture[str], *arguments: str) -> tuple[int, dict[str, Any], str]:
    """`datadrop run ... --json`: the exit code, the one JSON object on stdout, and stderr."""
    code = cli.main(["run", *arguments, "--json"])
    captured = capsys.readouterr()
    # json.loads refuses anything besides one JSON document: a log line, a progress line, a second object.
    summary = json.loads(captured.out)
    assert isinstance(summary, dict), captured.out
    return code, summary, captured.err


def datadrop_lines(stderr: str) -> list[str]:
    """The command's own messages on stderr (progress lines start with a timer, logs are JSON)."""
    return [line for line in stderr.splitlines() if line.startswith("datadrop:")]


@pytest.mark.usefixtures("service_logs_on_stdout")
def test_json_when_deployed_is_one_object_with_the_endpoint_and_a_real_prediction(capsys: pytest.CaptureFixture[str]) -> None:
    code, summary, err = run_json(capsys, str(DATA), "--dataset", "penguins", "--config", str(EXAMPLE / "species.yaml"))
    assert code == cli.EXIT_OK
    assert summary["status"] == "deployed"
    assert summary["endpoint_name"] == "datadrop--penguins"
    assert summary["experiment"] == "datadrop--penguins"  # the experiment the SDK finds, '--' and all
    assert summary["runs"][0]["hyperparameters"]["objective"] == "multi:softprob"
    assert 0 < summary["runs"][0]["test_metrics"]["accuracy"] <= 1
    assert summary["value"] >= summary["threshold"]
    assert summary["example_prediction"]["response"] in summary["classes"]
    assert "local datadrop up" in err and "ModelDeployed" in err  # progress goes to stderr
    assert datadrop_lines(err) == []


@pytest.mark.usefixtures("service_logs_on_stdout")
def test_json_when_rejected_by_the_threshold_exits_0_with_both_numbers(capsys: pytest.CaptureFixture[str]) -> None:
    code, summary, err = run_json(
        capsys, str(DATA), "--dataset", "penguins-sex", "--config", str(EXAMPLE / "sex.yaml"), "--threshold", "0.99"
    )
    assert code == cli.EXIT_OK  # the flow ran; the model was not good enough
    assert summary["status"] == "rejected"
    assert summary["threshold"] == pytest.approx(0.99)
    assert summary["value"] < 0.99
    assert f"< threshold {0.99:.4f}: not deployed" in summary["reason"]
    assert "endpoint_name" not in summary
    assert datadrop_lines(err) == []


@pytest.mark.usefixtures("service_logs_on_stdout")
def test_json_when_the_input_is_rejected_exits_2_and_the_log_goes_to_stderr(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    no_target = tmp_path / "no_target.csv"
    no_target.write_text("a,b\n1,2\n")
    code, summary, err = run_json(capsys, str(no_target), "--dataset", "penguins", "--target", "species")
    assert code == cli.EXIT_INPUT_REJECTED
    assert summary["status"] == "input_rejected"
    assert "target column 'species'" in summary["reason"]
    # prepare logs the rejection (a WARNING): before the fix, that line came first on stdout.
    assert '"message":"dataset rejected"' in err
    assert datadrop_lines(err) == [f"datadrop: input rejected: {summary['reason']}"]


@pytest.mark.usefixtures("service_logs_on_stdout")
def test_json_when_training_fails_exits_1_with_the_jobs_reason(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text("target: species\nhyperparameters: {max_depth: -3}\n")  # the XGBoost container refuses it
    code, summary, err = run_json(capsys, str(DATA), "--dataset", "penguins", "--config", str(config))
    assert code == cli.EXIT_FAILED
    # A version whose every run failed ends with VersionFailed and is FAILED: the CLI says "failed".
    assert summary["status"] == "failed"
    assert summary["value"] is None
    assert summary["reason"].startswith("every run failed: training Failed:") and "max_depth" in summary["reason"]
    (run,) = summary["runs"]
    assert run["status"] == "FAILED" and "max_depth" in run["failure_reason"]
    assert datadrop_lines(err) == [f"datadrop: failed: {summary['reason']}"]


@pytest.mark.usefixtures("service_logs_on_stdout")
def test_without_json_a_rejected_input_ends_with_one_reason_line_on_stderr(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    no_target = tmp_path / "no_target.csv"
    no_target.write_text("a,b\n1,2\n")
    code = cli.main(["run", str(no_target), "--dataset", "penguins", "--target", "species"])
    captured = capsys.readouterr()
    assert code == cli.EXIT_INPUT_REJECTED
    assert "status INPUT_REJECTED" in captured.out  # the human summary is on stdout
    assert '"message"' not in captured.out  # and no log line is
    (reason,) = datadrop_lines(captured.err)
    assert reason.startswith("datadrop: input rejected: the target column 'species'")
    assert captured.err.strip().splitlines()[-1] == reason


# ---------------------------------------------------------------------------------------------
# datadrop retry
# ---------------------------------------------------------------------------------------------
STACK = "datadrop-prod"
DATASET = "penguins"
# Names as CloudFormation makes them (nothing like the local defaults), and a prefix other than the
# default: the command can only get them right by reading the stack.
DEPLOYED = Settings(
    state_table_name="datadrop-prod-StateTable-1X2Y3Z",
    idempotency_table_name="datadrop-prod-IdempotencyTable-4A5B6C",
    event_bus_name="datadrop-prod-events",
    data_bucket_name="datadrop-prod-databucket-7d8e9f",
    artifact_bucket_name="datadrop-prod-artifactbucket-0a1b2c",
    sagemaker_role_arn="arn:aws:iam::123456789012:role/datadrop-prod-SageMakerExecutionRole-3D4E5F",
    name_prefix="prod",
    region="us-east-1",
)


def stack_template(outputs: dict[str, Any]) -> str:
    """A stack with one cheap resource, the NamePrefix parameter and the outputs given."""
    return json.dumps(
        {
            "AWSTemplateFormatVersion": "2010-09-09",
            "Parameters": {"NamePrefix": {"Type": "String", "Default": "datadrop"}},
            "Resources": {"DeadLetters": {"Type": "AWS::SQS::Queue"}},
            "Outputs": {name: {"Value": value} for name, value in outputs.items()},
        }
    )


@dataclass
class DeployedStack:
    services: Services
    sqs: Any
    observer: str  # an SQS queue subscribed to every datadrop event on the stack's bus

    def published(self) -> list[dict[str, Any]]:
        events = []
        while messages := self.sqs.receive_message(QueueUrl=self.observer, MaxNumberOfMessages=10).get("Messages", []):
            for message in messages:
                events.append(json.loads(message["Body"]))
                self.sqs.delete_message(QueueUrl=self.observer, ReceiptHandle=message["ReceiptHandle"])
        return events


@pytest.fixture
def deployed_stack() -> Iterator[DeployedStack]:
    """What `sam deploy --stack-name datadrop-prod --parameter-overrides NamePrefix=prod` leaves, on moto."""
    with mock_aws():
        session = boto3.session.Session(region_name=DEPLOYED.region)
        provision(DEPLOYED, session)
        outputs = {output: getattr(DEPLOYED, field) for output, field in cli.STACK_OUTPUTS.items()}
        session.client("cloudformation").create_stack(
            StackName=STACK,
            TemplateBody=stack_template({**outputs, "DeadLetterQueueUrl": {"Ref": "DeadLetters"}}),
            Parameters=[{"ParameterKey": "NamePrefix", "ParameterValue": DEPLOYED.name_prefix}],
        )
        sqs, queue = observe_bus(session, DEPLOYED.event_bus_name)
        yield DeployedStack(Services.from_settings(DEPLOYED, session), sqs, queue)


def drive_to_a_failure(stack: DeployedStack) -> str:
    """Upload → prepare → train on the stack, then SageMaker says the training job Failed: the version is FAILED.

    The library's own steps (as the functions run them) on moto; the test plays SageMaker's part."""
    services, bucket = stack.services, DEPLOYED.data_bucket_name
    services.objects.client.put_object(Bucket=bucket, Key=f"config/{DATASET}.yaml", Body=(EXAMPLE / "species.yaml").read_bytes())
    key = f"incoming/{DATASET}/penguins.csv"
    put = services.objects.client.put_object(Bucket=bucket, Key=key, Body=DATA.read_bytes())
    upload = SourceObject(bucket=bucket, key=key, version_id=put["VersionId"], etag=put["ETag"].strip('"'))
    assert intake.handle_upload(services, upload).outcome == "prepared"
    (prepared,) = [event["detail"] for event in stack.published() if event["detail-type"] == "DatasetPrepared"]
    (run,) = training.start_training(services, DatasetPrepared.model_validate(prepared))
    outcome = evaluation.on_training_job_state_change(services, run.training_job, "Failed", "AlgorithmError: out of memory")
    assert outcome == "failed"
    version = str(prepared["version"])
    assert services.state.get_version(DATASET, version).status == "FAILED"  # type: ignore[union-attr]
    assert [event["detail-type"] for event in stack.published()] == ["TrainingStarted", "VersionFailed"]
    return version


def test_retry_starts_a_failed_version_over_with_a_new_attempt(
    deployed_stack: DeployedStack, capsys: pytest.CaptureFixture[str]
) -> None:
    version = drive_to_a_failure(deployed_stack)

    code = cli.main(["retry", DATASET, version, "--stack", STACK, "--region", "us-east-1"])

    captured = capsys.readouterr()
    assert code == cli.EXIT_OK, captured.err
    item = deployed_stack.services.state.get_version(DATASET, version)
    assert item is not None
    assert (item.status, item.attempt) == ("PREPARED", 2)
    assert item.decision_reason is None  # the failed attempt's decision is gone with it
    (republished,) = deployed_stack.published()  # exactly once, on the stack's own bus
    assert republished["detail-type"] == "DatasetPrepared"
    assert (republished["detail"]["dataset"], republished["detail"]["version"]) == (DATASET, version)
    # What happened and what happens next, with the names the stack uses (NamePrefix=prod).
    assert "attempt 2" in captured.out
    assert f"prod--{DATASET}-{version}-r01-a2" in captured.out
    assert DEPLOYED.event_bus_name in captured.out


def test_retry_refuses_a_version_that_did_not_fail_or_does_not_exist(
    deployed_stack: DeployedStack, capsys: pytest.CaptureFixture[str]
) -> None:
    version = drive_to_a_failure(deployed_stack)
    assert cli.main(["retry", DATASET, version, "--stack", STACK]) == cli.EXIT_OK  # the region from AWS_DEFAULT_REGION
    deployed_stack.published()
    capsys.readouterr()

    code = cli.main(["retry", DATASET, version, "--stack", STACK])  # now PREPARED, attempt 2: nothing to retry
    captured = capsys.readouterr()
    assert code == cli.EXIT_INPUT_REJECTED
    assert captured.out == ""
    assert captured.err.startswith("datadrop: cannot retry: ")
    assert f"version {version} of 'penguins' is PREPARED; only a FAILED version can be retried" in captured.err
    assert deployed_stack.published() == []
    assert deployed_stack.services.state.get_version(DATASET, version).attempt == 2  # type: ignore[union-attr]

    code = cli.main(["retry", DATASET, "0123456789ab", "--stack", STACK])
    captured = capsys.readouterr()
    assert code == cli.EXIT_INPUT_REJECTED
    assert "dataset 'penguins' has no version '0123456789ab'" in captured.err


def test_retry_says_when_the_stack_is_missing_or_is_not_a_datadrop_stack(
    deployed_stack: DeployedStack, capsys: pytest.CaptureFixture[str]
) -> None:
    code = cli.main(["retry", DATASET, "0123456789ab", "--stack", "datadorp", "--region", "us-east-1"])
    captured = capsys.readouterr()
    assert code == cli.EXIT_USAGE
    assert captured.out == ""
    assert "no stack 'datadorp' in us-east-1" in captured.err

    half = {"DataBucketName": DEPLOYED.data_bucket_name, "EventBusName": DEPLOYED.event_bus_name}
    boto3.client("cloudformation", region_name="us-east-1").create_stack(StackName="half", TemplateBody=stack_template(half))
    code = cli.main(["retry", DATASET, "0123456789ab", "--stack", "half"])
    captured = capsys.readouterr()
    assert code == cli.EXIT_USAGE
    missing = "ArtifactBucketName, StateTableName, IdempotencyTableName, SageMakerExecutionRoleArn"
    assert f"stack 'half' (CREATE_COMPLETE) has no output {missing}:" in captured.err
    assert "is it a datadrop stack" in captured.err


def test_retry_help_says_what_it_does_and_what_it_needs(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.main(["retry", "--help"])
    assert exited.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "usage: datadrop retry [-h] [--stack NAME] [--region REGION] [--home DIR] DATASET VERSION" in text
    assert "on the local stack (`datadrop up`) or, with --stack, on a deployed datadrop stack" in text
    assert "FAILED" in text and "DatasetPrepared" in text
    assert all(output in text for output in cli.STACK_OUTPUTS)
    assert "exit status: 0 when the retry started; 2 when the version cannot be retried" in text


@pytest.mark.parametrize(
    "command",
    [
        ["runs", "penguins"],
        ["plot", "penguins"],
        ["experiments"],
        ["retry", "penguins", "0123456789ab"],
        ["predict", "penguins", "-"],
    ],
)
def test_without_stack_commands_use_the_local_stack_and_say_when_none_runs(
    command: list[str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(b"a,b\n1,2\n")))
    assert cli.main(command) == cli.EXIT_USAGE
    error = capsys.readouterr().err
    assert "no local stack is running in" in error and "start it with `datadrop up`" in error and "--stack NAME" in error
