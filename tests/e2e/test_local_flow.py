"""The whole flow in local mode on the real example data: upload → endpoint, as a user meets it."""

from __future__ import annotations

import csv
import io
import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from datadrop.local.runtime import LocalStack
from moto import mock_aws

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "penguins"
DATA = EXAMPLE / "penguins.csv"

pytestmark = pytest.mark.e2e


@pytest.fixture
def stack() -> Iterator[LocalStack]:
    with mock_aws(), LocalStack(template_path=REPO / "template.yaml") as local:
        yield local


def _post(url: str, body: str, accept: str = "text/csv", content_type: str = "text/csv") -> tuple[int, str]:
    request = urllib.request.Request(url, data=body.encode(), headers={"Content-Type": content_type, "Accept": accept})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def _run(stack: LocalStack, config: str, data: bytes | Path = DATA, dataset: str = "penguins") -> None:
    stack.put_config(dataset, config)
    if isinstance(data, Path):
        stack.upload(data, dataset)
    else:
        stack.s3.put_object(Bucket=stack.settings.data_bucket_name, Key=f"incoming/{dataset}/data.csv", Body=data)
    stack.drain()
    assert stack.dead_letters == [], [d.error for d in stack.dead_letters]


def test_example_goes_from_upload_to_a_serving_endpoint(stack: LocalStack) -> None:
    _run(stack, (EXAMPLE / "species.yaml").read_text())
    (deployed,) = stack.events_of("ModelDeployed")
    (approved,) = stack.events_of("ModelApproved")
    prepared = stack.events_of("DatasetPrepared")[0]
    url = deployed["invocation_url"]

    # The endpoint answers like a SageMaker inference container.
    with urllib.request.urlopen(url.replace("/invocations", "/ping"), timeout=10) as ping:
        assert ping.status == 200

    # Raw example rows, header and all (the target column is ignored), come back as labels.
    rows = list(csv.reader(DATA.open(newline="")))
    body = io.StringIO()
    csv.writer(body, lineterminator="\n").writerows([rows[0], *rows[1:6]])
    status, answer = _post(url, body.getvalue())
    assert status == 200, answer
    labels = answer.strip().splitlines()
    assert len(labels) == 5
    assert set(labels) <= set(prepared["classes"]) == {"Adelie", "Chinstrap", "Gentoo"}

    # The reported accuracy is the endpoint's own accuracy on the held-out rows, and those rows
    # were never among the rows training saw.
    artifacts = prepared["artifacts"]
    test_rows = stack.services.objects.read_uri(artifacts["test"]).decode()
    truth = json.loads(stack.services.objects.read_uri(artifacts["test_labels"]))
    status, answer = _post(url, test_rows, content_type="application/jsonlines")  # the test split's own format
    predicted = answer.strip().splitlines()
    assert len(predicted) == len(truth) == prepared["rows"]["test"]
    accuracy = sum(p == t for p, t in zip(predicted, truth)) / len(truth)
    assert approved["value"] == pytest.approx(accuracy)
    assert approved["value"] >= approved["threshold"]
    profile = json.loads(stack.services.objects.read_uri(artifacts["profile"]))
    assert sum(prepared["rows"].values()) == profile["rows"]["usable"]
    train_rows = stack.services.objects.read_uri(artifacts["train"] + "train.csv").decode().splitlines()
    assert len(train_rows) == prepared["rows"]["train"]

    # A malformed request gets what the SageMaker XGBoost container answers (its Flask worker turns
    # whatever input_fn raises into a 500 page), and the endpoint keeps serving.
    status, answer = _post(url, "1,2\n")
    assert status == 500 and "Internal Server Error" in answer
    assert _post(url, body.getvalue())[0] == 200

    # The run is in the experiment, as the SageMaker SDK would look for it.
    version = prepared["version"]
    component = stack.sagemaker.describe_trial_component(TrialComponentName=f"datadrop--penguins-{version}-r01")
    assert component["Status"]["PrimaryStatus"] == "Completed"


def test_the_same_run_with_a_higher_threshold_deploys_nothing(stack: LocalStack) -> None:
    config = (EXAMPLE / "sex.yaml").read_text()  # binary; its held-out accuracy is below 1
    _run(stack, config, dataset="penguins-sex")
    (approved,) = stack.events_of("ModelApproved")
    achieved = approved["value"]
    assert achieved < 1.0

    # Same data, same split and hyperparameters, only a threshold above what was achieved.
    stricter = {**yaml.safe_load(config), "threshold": min(1.0, achieved + 0.05)}
    stack.put_config("penguins-sex", yaml.safe_dump(stricter))
    stack.upload(DATA, "penguins-sex")
    stack.drain()
    (rejected,) = stack.events_of("ModelRejected")
    assert rejected["version"] != approved["version"]  # a new config is a new dataset version
    assert rejected["value"] == pytest.approx(achieved)  # deterministic: the same model, the same score
    assert rejected["threshold"] == pytest.approx(min(1.0, achieved + 0.05))
    assert f"{achieved:.4f}" in rejected["reason"] and f"{rejected['threshold']:.4f}" in rejected["reason"]
    assert len(stack.events_of("DeploymentStarted")) == 1  # only the first version was deployed
    assert len(stack.compute.jobs("training")) == 2
    endpoint = stack.sagemaker.describe_endpoint(EndpointName="datadrop--penguins-sex")
    assert approved["version"] in endpoint["EndpointConfigName"]


def test_same_object_twice_and_every_event_again_create_nothing_twice(stack: LocalStack) -> None:
    _run(stack, (EXAMPLE / "species.yaml").read_text())
    stack.upload(DATA, "penguins")  # the same bytes again: a new S3 object version, same dataset version
    stack.drain()
    for delivery in list(stack.deliveries):  # and every event any function received, re-delivered
        stack.events_client.put_events(
            Entries=[
                {
                    "Source": delivery.event["source"],
                    "DetailType": delivery.event["detail-type"],
                    "Detail": json.dumps(delivery.event["detail"]),
                    "EventBusName": stack.settings.event_bus_name if delivery.event["source"] == "datadrop" else "default",
                }
            ]
        )
    stack.drain()
    assert stack.dead_letters == []
    assert len(stack.compute.jobs("training")) == 1
    assert len(stack.compute.jobs("transform")) == 1
    assert len(stack.sagemaker.list_training_jobs()["TrainingJobSummaries"]) == 1
    assert len(stack.sagemaker.list_transform_jobs()["TransformJobSummaries"]) == 1
    assert len(stack.sagemaker.list_endpoints()["Endpoints"]) == 1
    assert len(stack.events_of("ModelDeployed")) == 1


@pytest.mark.parametrize(
    ("config", "data", "fragment"),
    [
        ("target: species\n", b"", "empty"),
        ("target: kind\n", DATA.read_bytes(), "target column 'kind'"),
        (None, DATA.read_bytes(), "upload s3://datadrop-local-data/config/penguins.yaml"),
        ("target: species\nthreshold: 2\n", DATA.read_bytes(), "threshold"),
    ],
    ids=["empty-file", "no-target-column", "missing-config", "bad-config"],
)
def test_bad_input_is_rejected_with_a_reason_and_nothing_is_lost(
    stack: LocalStack, config: str | None, data: bytes, fragment: str
) -> None:
    if config is not None:
        stack.put_config("penguins", config)
    key = "incoming/penguins/data.csv"
    version_id = stack.s3.put_object(Bucket=stack.settings.data_bucket_name, Key=key, Body=data)["VersionId"]
    stack.drain()
    assert stack.dead_letters == []
    (rejected,) = stack.events_of("DatasetRejected")
    assert fragment in rejected["reason"], rejected["reason"]
    assert rejected["source"]["key"] == key
    assert stack.events_of("DatasetPrepared") == []
    versions = stack.s3.list_object_versions(Bucket=stack.settings.data_bucket_name, Prefix=key)["Versions"]
    assert [version["VersionId"] for version in versions] == [version_id]
    assert stack.s3.get_object(Bucket=stack.settings.data_bucket_name, Key=key)["Body"].read() == data


def test_a_training_job_that_fails_ends_the_flow_with_its_reason(stack: LocalStack) -> None:
    _run(stack, "target: species\nhyperparameters: {max_depth: -3}\n")
    (rejected,) = stack.events_of("VersionFailed")
    assert "every run failed: training Failed:" in rejected["reason"]
    assert "max_depth" in rejected["reason"]
    assert stack.events_of("ModelDeployed") == []
