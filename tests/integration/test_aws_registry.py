"""AWS mode under moto, the model registry and the gate, call by call (every request validated
against the service model): the package each decision registers (its report as ModelMetrics, its
approval status, the container spec the model has), the manual path (UpdateModelPackage → the
documented "SageMaker Model Package State Change" → ModelApproved, once), and the champion's
re-scoring by a batch transform of the serving model on the new version's test split. The test
plays SageMaker's part where moto cannot, as test_aws_flow does.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from datadrop import cli, names
from datadrop.recovery import Sweeper
from datadrop.storage import split_s3_uri

from tests.conftest import sample_event
from tests.integration.conftest import AwsHarness, envelope

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "penguins"
FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "aws-events" / "sagemaker_model_package_state_change.docs.json"


def _prepare(aws: AwsHarness, config: str) -> dict[str, Any]:
    aws.put_config("penguins", config)
    uploaded = aws.upload("incoming/penguins/penguins.csv", (EXAMPLE / "penguins.csv").read_bytes())
    event = aws.upload_event(uploaded)
    assert aws.invoke("prepare", event)["outcome"] == "prepared"
    return next(detail for detail in reversed(aws.details("DatasetPrepared")))


def _predict(aws: AwsHarness, output_uri: str, prepared: dict[str, Any], wrong: int) -> None:
    """Play a batch transform: one JSON line per test row, `wrong` of them mistaken."""
    labels = json.loads(aws.services.objects.read_uri(prepared["artifacts"]["test_labels"]))
    classes = prepared["classes"]
    lines = []
    for index, label in enumerate(labels):
        guess = label if index >= wrong else next(other for other in classes if other != label)
        probabilities = {c: (0.9 if c == guess else 0.1 / (len(classes) - 1)) for c in classes}
        lines.append(json.dumps({"label": guess, "probabilities": probabilities}))
    bucket, prefix = split_s3_uri(output_uri)
    aws.services.objects.write(bucket, prefix + "test.jsonl.out", ("\n".join(lines) + "\n").encode())


def _sagemaker_event(sample: str, **detail: str) -> dict[str, Any]:
    """A documented SageMaker event about one job: each its own EventBridge id."""
    event = sample_event(sample, **detail)
    event["id"] = f"{sample}/{sorted(detail.items())}"
    return event


def _train_and_evaluate(aws: AwsHarness, prepared: dict[str, Any], wrong: int) -> str:
    job = f"datadrop--penguins-{prepared['version']}-r01"
    aws.invoke("train", envelope("DatasetPrepared", prepared))
    aws.invoke("evaluate", _sagemaker_event("evaluate_training_job_completed.json", TrainingJobName=job))
    transform = next(r for r in aws.requests("CreateTransformJob") if r["TransformJobName"] == job)
    _predict(aws, transform["TransformOutput"]["S3OutputPath"], prepared, wrong)
    aws.invoke("evaluate", _sagemaker_event("evaluate_transform_job_completed.json", TransformJobName=job))
    return job


def _state_change(aws: AwsHarness, arn: str, event_id: str) -> dict[str, Any]:
    """The documented event, with the package as DescribeModelPackage shows it now (as SageMaker sends it)."""
    event = json.loads(FIXTURE.read_text())
    package = aws.services.sagemaker.describe_model_package(ModelPackageName=arn)
    # The sample repeats `source`, and its last value is a list; EventBridge delivers the string.
    event.update(id=event_id, source="aws.sagemaker", account="123456789012", region="us-east-1", resources=[arn])
    event["detail"].update(
        ModelPackageGroupName=package["ModelPackageGroupName"],
        ModelPackageVersion=package["ModelPackageVersion"],
        ModelPackageArn=arn,
        ModelApprovalStatus=package["ModelApprovalStatus"],
        ModelMetrics=package["ModelMetrics"],
    )
    return event


def test_manual_approval_registers_pending_and_an_approval_deploys_once(aws: AwsHarness) -> None:
    prepared = _prepare(aws, (EXAMPLE / "species.yaml").read_text() + "approval: manual\n")
    job = _train_and_evaluate(aws, prepared, wrong=1)
    (evaluated,) = aws.details("RunEvaluated")
    (pending,) = aws.details("ModelPendingApproval")
    assert aws.details("ModelApproved") == []

    # The package: the run's report as its model quality statistics, waiting for a person, and the
    # very container the run's SageMaker model has (one spec for model, package and endpoint).
    (group,) = aws.requests("CreateModelPackageGroup")
    assert group["ModelPackageGroupName"] == "datadrop--penguins"
    (request,) = aws.requests("CreateModelPackage")
    assert request["ModelPackageGroupName"] == "datadrop--penguins"
    assert request["ModelApprovalStatus"] == "PendingManualApproval"
    assert request["ModelMetrics"] == {
        "ModelQuality": {"Statistics": {"ContentType": "application/json", "S3Uri": evaluated["report"]}}
    }
    (model,) = aws.requests("CreateModel")
    assert model["ModelName"] == job
    assert request["InferenceSpecification"]["Containers"] == [model["PrimaryContainer"]]
    assert request["CustomerMetadataProperties"]["version"] == prepared["version"]
    assert request["CustomerMetadataProperties"]["metric"] == "accuracy"
    assert float(request["CustomerMetadataProperties"]["accuracy"]) == pytest.approx(pending["value"])
    report = json.loads(aws.services.objects.read_uri(evaluated["report"]))
    assert report["multiclass_classification_metrics"]["accuracy"]["value"] == pytest.approx(pending["value"])
    arn = pending["model_package_arn"]

    # A person approves: `datadrop approve` calls UpdateModelPackage, as Studio does ...
    said = cli.request_registry_decision(aws.services, "penguins", prepared["version"], "Approved", "looks right")
    assert "Approved" in said
    (update,) = aws.requests("UpdateModelPackage")
    assert update == {"ModelPackageArn": arn, "ModelApprovalStatus": "Approved", "ApprovalDescription": "looks right"}
    # ... and asking again does nothing twice.
    assert "already" in cli.request_registry_decision(aws.services, "penguins", prepared["version"], "Approved")
    assert len(aws.requests("UpdateModelPackage")) == 1

    # SageMaker's state-change event (sent twice, as the docs allow) becomes one ModelApproved.
    first = aws.invoke("evaluate", _state_change(aws, arn, "11111111-1111-1111-1111-111111111111"))
    again = aws.invoke("evaluate", _state_change(aws, arn, "22222222-2222-2222-2222-222222222222"))
    assert first == {"model_package": arn, "outcome": "approved"}
    assert again["outcome"] == "ignored"
    (approved,) = aws.details("ModelApproved")
    assert approved["approval"] == "manual" and approved["model_package_arn"] == arn
    assert approved["best_run"]["training_job"] == job and approved["value"] == pending["value"]
    assert aws.invoke("deploy", envelope("ModelApproved", approved))["outcome"] == "creating"
    (endpoint,) = aws.requests("CreateEndpoint")
    assert endpoint["EndpointName"] == "datadrop--penguins"


def test_a_rejection_in_the_registry_is_a_model_rejected(aws: AwsHarness) -> None:
    prepared = _prepare(aws, (EXAMPLE / "species.yaml").read_text() + "approval: manual\n")
    _train_and_evaluate(aws, prepared, wrong=0)
    (pending,) = aws.details("ModelPendingApproval")
    cli.request_registry_decision(aws.services, "penguins", prepared["version"], "Rejected")
    outcome = aws.invoke("evaluate", _state_change(aws, pending["model_package_arn"], "33333333-3333-3333-3333-333333333333"))
    assert outcome["outcome"] == "rejected"
    (rejected,) = aws.details("ModelRejected")
    assert rejected["reason"].startswith("rejected in the model registry")
    with pytest.raises(cli.RegistryRefused, match="was Rejected in the model registry already"):
        cli.request_registry_decision(aws.services, "penguins", prepared["version"], "Approved")


def test_the_champion_is_re_scored_on_the_new_split_and_a_worse_version_is_rejected(aws: AwsHarness) -> None:
    first = _prepare(aws, (EXAMPLE / "species.yaml").read_text())
    _train_and_evaluate(aws, first, wrong=0)
    (approved,) = aws.details("ModelApproved")
    assert approved["champion"] is None
    assert aws.invoke("deploy", envelope("ModelApproved", approved))["outcome"] == "creating"
    v1 = first["version"]
    v1_model = names.RunNames("datadrop", "penguins", v1, 1).model

    # v2: the same rows, a new config; its run is worse than the model the endpoint serves.
    second = _prepare(aws, (EXAMPLE / "species.yaml").read_text().replace("num_round: 50", "num_round: 40"))
    v2 = second["version"]
    _train_and_evaluate(aws, second, wrong=3)
    assert aws.details("ModelRejected") == []  # it waits for the champion's numbers
    champion_job = names.champion_transform_job("datadrop", "penguins", v2, v1)
    (transform,) = [r for r in aws.requests("CreateTransformJob") if r["TransformJobName"] == champion_job]
    assert transform["ModelName"] == v1_model  # the serving model ...
    assert transform["TransformInput"]["DataSource"]["S3DataSource"]["S3Uri"] == second["artifacts"]["test"]  # ... on v2's rows
    assert "ExperimentConfig" not in transform  # not a run of v2
    assert transform["TransformOutput"]["S3OutputPath"].endswith(f"/{v2}/evaluation/champion-{v1}/")
    _predict(aws, transform["TransformOutput"]["S3OutputPath"], second, wrong=1)
    aws.invoke("evaluate", _sagemaker_event("evaluate_transform_job_completed.json", TransformJobName=champion_job))

    (rejected,) = aws.details("ModelRejected")
    rows = second["rows"]["test"]
    assert rejected["value"] == pytest.approx((rows - 3) / rows) and rejected["value"] >= rejected["threshold"]
    assert rejected["champion"]["version"] == v1 and rejected["champion"]["value"] == pytest.approx((rows - 1) / rows)
    assert "does not beat the champion" in rejected["reason"]
    packages = [r["ModelApprovalStatus"] for r in aws.requests("CreateModelPackage")]
    assert packages == ["Approved", "Rejected"]
    rejected_request = aws.requests("CreateModelPackage")[1]
    assert rejected_request["CustomerMetadataProperties"]["champion"] == v1
    # The champion's evaluation of v2's split is recorded like a run's, under its own identity.
    record = aws.services.state.get_champion("penguins", v2, v1)
    assert record is not None and record.status == "EVALUATED" and record.report == rejected["champion"]["report"]


def test_the_sweeper_catches_up_an_approval_whose_event_was_lost(aws: AwsHarness) -> None:
    prepared = _prepare(aws, (EXAMPLE / "species.yaml").read_text() + "approval: manual\n")
    _train_and_evaluate(aws, prepared, wrong=0)
    (pending,) = aws.details("ModelPendingApproval")
    sweeper = Sweeper(aws.services, stuck_after=timedelta(0), give_up_after=timedelta(hours=24))
    far_later = datetime.now(UTC) + timedelta(days=30)
    report = sweeper.sweep(far_later)  # a person may take weeks: the version is never given up on
    assert report.ended == [] and any("PENDING_APPROVAL" in line for line in report.waiting)
    cli.request_registry_decision(aws.services, "penguins", prepared["version"], "Approved")
    report = sweeper.sweep()  # the state-change event never came
    assert any("package Approved: approved" in line for line in report.continued), report
    (approved,) = aws.details("ModelApproved")
    assert approved["model_package_arn"] == pending["model_package_arn"]
