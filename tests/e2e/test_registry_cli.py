"""`datadrop models`, `approve` and `reject` against a deployed stack (on moto, found by its
CloudFormation outputs): the library's own steps drive a version to the registry, the test plays
SageMaker's batch transform."""

from __future__ import annotations

import json

import pytest
from datadrop import cli, evaluation, intake, training
from datadrop.events import DatasetPrepared, SourceObject
from datadrop.local.moto_registry import announce_model_package_changes
from datadrop.storage import split_s3_uri

from tests.e2e.test_cli import DATA, DATASET, DEPLOYED, EXAMPLE, STACK, DeployedStack

pytestmark = pytest.mark.e2e
WHERE = ["--stack", STACK, "--region", "us-east-1"]


def _pending(stack: DeployedStack) -> str:
    """Upload → prepare → train → evaluate with `approval: manual`: the version waits in the registry."""
    services, bucket = stack.services, DEPLOYED.data_bucket_name
    config = (EXAMPLE / "species.yaml").read_text() + "approval: manual\n"
    services.objects.client.put_object(Bucket=bucket, Key=f"config/{DATASET}.yaml", Body=config.encode())
    key = f"incoming/{DATASET}/penguins.csv"
    put = services.objects.client.put_object(Bucket=bucket, Key=key, Body=DATA.read_bytes())
    upload = SourceObject(bucket=bucket, key=key, version_id=put["VersionId"], etag=put["ETag"].strip('"'))
    assert intake.handle_upload(services, upload).outcome == "prepared"
    (prepared,) = [event["detail"] for event in stack.published() if event["detail-type"] == "DatasetPrepared"]
    (run,) = training.start_training(services, DatasetPrepared.model_validate(prepared))
    assert evaluation.on_training_job_state_change(services, run.training_job, "Completed", None) == "evaluating"
    labels = json.loads(services.objects.read_uri(prepared["artifacts"]["test_labels"]))
    output = services.compute.describe_transform_job(run.training_job)["TransformOutput"]["S3OutputPath"]
    lines = [json.dumps({"label": label, "probabilities": {label: 1.0}}) for label in labels]
    services.objects.write(*split_s3_uri(output + "test.jsonl.out"), "\n".join(lines).encode())
    assert evaluation.on_transform_job_state_change(services, run.training_job, "Completed", None) == "evaluated"
    assert [event["detail-type"] for event in stack.published()][-1] == "ModelPendingApproval"
    return str(prepared["version"])


def test_models_approve_and_reject_on_a_deployed_stack(deployed_stack: DeployedStack, capsys: pytest.CaptureFixture[str]) -> None:
    announce_model_package_changes()  # moto's UpdateModelPackage forgets a package's metadata; SageMaker keeps it
    version = _pending(deployed_stack)
    capsys.readouterr()
    assert cli.main(["models", DATASET, *WHERE, "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    (package,) = listed["packages"]
    assert listed["serving"] is None and package["approval"] == "PendingManualApproval"
    assert package["dataset_version"] == version and package["judged_by"] == "accuracy"
    assert set(package["metrics"]) == {"accuracy", "balanced_accuracy", "macro_precision", "macro_recall", "macro_f1",
                                       "roc_auc", "log_loss"}  # fmt: skip
    assert package["report"].endswith(f"/{version}/evaluation/r01/report.json")

    assert cli.main(["approve", DATASET, version, *WHERE, "--reason", "checked the confusion matrix"]) == 0
    assert "Approved" in capsys.readouterr().out
    sagemaker = deployed_stack.services.sagemaker
    described = sagemaker.describe_model_package(ModelPackageName=package["arn"])
    assert described["ModelApprovalStatus"] == "Approved"
    assert described["ApprovalDescription"] == "checked the confusion matrix"
    assert cli.main(["approve", DATASET, version, *WHERE]) == 0  # twice: nothing happens twice
    assert "already" in capsys.readouterr().out
    assert cli.main(["reject", DATASET, version, *WHERE]) == 2  # decided already
    assert "Approved in the model registry already" in capsys.readouterr().err
    assert cli.main(["approve", DATASET, "000000000000", *WHERE]) == 2
    assert "has no version" in capsys.readouterr().err
    assert cli.main(["models", DATASET, *WHERE]) == 0
    table = capsys.readouterr().out
    assert table.startswith("prod--penguins: 1 model package(s), newest first; serving: none")
    assert f"Approved               version {version}  run 1  *accuracy 1" in table
