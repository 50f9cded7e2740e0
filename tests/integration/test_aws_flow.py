"""AWS mode under moto: the handlers issue the SageMaker calls AWS would accept, in order.

moto completes training jobs at once and writes no transform output, so the test plays
SageMaker's part where moto cannot: it delivers the documented state-change events and writes
the batch transform's output file.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from datadrop import intake
from datadrop.algorithms import xgboost_image_uri
from datadrop.events import SourceObject
from datadrop.storage import split_s3_uri

from tests.conftest import sample_event
from tests.integration.conftest import AwsHarness, envelope

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "penguins"


def _prepare(aws: AwsHarness) -> dict:
    aws.put_config("penguins", (EXAMPLE / "species.yaml").read_text())
    uploaded = aws.upload("incoming/penguins/penguins.csv", (EXAMPLE / "penguins.csv").read_bytes())
    result = aws.invoke("prepare", aws.upload_event(uploaded))
    assert result["outcome"] == "prepared", result
    (prepared,) = aws.details("DatasetPrepared")
    return prepared


def _write_transform_output(aws: AwsHarness, prepared: dict, wrong: int) -> float:
    """Play SageMaker batch transform: one JSON line per test row, `wrong` of them mistaken."""
    labels = json.loads(aws.services.objects.read_uri(prepared["artifacts"]["test_labels"]))
    classes = prepared["classes"]
    lines = []
    for index, label in enumerate(labels):
        guess = label if index >= wrong else next(other for other in classes if other != label)
        lines.append(
            json.dumps({"label": guess, "probabilities": {c: (0.9 if c == guess else 0.1 / (len(classes) - 1)) for c in classes}})
        )
    (transform,) = aws.requests("CreateTransformJob")
    bucket, prefix = split_s3_uri(transform["TransformOutput"]["S3OutputPath"])
    aws.services.objects.write(bucket, prefix + "test.jsonl.out", ("\n".join(lines) + "\n").encode())
    return (len(labels) - wrong) / len(labels)


def test_upload_to_endpoint_issues_the_right_sagemaker_calls(aws: AwsHarness) -> None:
    settings = aws.settings
    prepared = _prepare(aws)
    version = prepared["version"]
    job = f"datadrop--penguins-{version}-r01"

    # DatasetPrepared → a training job inside the experiment's run group
    aws.invoke("train", envelope("DatasetPrepared", prepared))
    (training,) = aws.requests("CreateTrainingJob")
    assert training["TrainingJobName"] == job
    assert training["AlgorithmSpecification"]["TrainingImage"] == xgboost_image_uri("us-east-1")
    assert training["AlgorithmSpecification"]["TrainingImage"].startswith(
        "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:"
    )
    assert training["ExperimentConfig"] == {
        "ExperimentName": "datadrop--penguins",
        "TrialName": f"datadrop--penguins-{version}",
        "RunName": f"datadrop--penguins-{version}-r01",
    }
    channels = {channel["ChannelName"]: channel["DataSource"]["S3DataSource"]["S3Uri"] for channel in training["InputDataConfig"]}
    assert channels == {"train": prepared["artifacts"]["train"], "validation": prepared["artifacts"]["validation"]}
    assert all(channel["ContentType"] == "text/csv" for channel in training["InputDataConfig"])
    assert training["OutputDataConfig"]["S3OutputPath"].startswith(f"s3://{settings.artifact_bucket_name}/")
    assert training["RoleArn"] == settings.sagemaker_role_arn
    assert training["HyperParameters"]["objective"] == "multi:softprob"
    assert training["HyperParameters"]["num_class"] == "3"
    assert all(isinstance(value, str) for value in training["HyperParameters"].values())
    # the run is where the SDK's load_run looks for it
    sagemaker = aws.services.sagemaker
    component = sagemaker.describe_trial_component(TrialComponentName=f"datadrop--penguins-{version}-r01")
    assert component["DisplayName"] == f"{version}-r01"
    assert component["Parameters"]["num_round"] == {"NumberValue": float(training["HyperParameters"]["num_round"])}
    assert component["Parameters"]["objective"] == {"StringValue": "multi:softprob"}  # numbers as numbers, like the SDK
    assert sagemaker.describe_trial(TrialName=f"datadrop--penguins-{version}")["ExperimentName"] == "datadrop--penguins"
    # ... and the run group records the data preparation beside the runs: the quality report in short
    preparation = sagemaker.describe_trial_component(TrialComponentName=f"datadrop--penguins-{version}-prepare")
    assert preparation["Status"]["PrimaryStatus"] == "Completed"
    assert preparation["Parameters"]["rows_read"] == {"NumberValue": float(prepared["quality"]["rows_read"])}
    assert preparation["Parameters"]["rows_test"] == {"NumberValue": float(prepared["rows"]["test"])}
    assert preparation["Parameters"]["detected"] == {"StringValue": prepared["quality"]["detected"]}
    assert preparation["OutputArtifacts"]["quality-report"] == {"Value": prepared["artifacts"]["profile"]}
    assert preparation["InputArtifacts"]["upload"]["Value"].startswith("s3://")
    in_group = sagemaker.list_trial_components(TrialName=f"datadrop--penguins-{version}")["TrialComponentSummaries"]
    assert sorted(component["TrialComponentName"] for component in in_group) == [
        f"datadrop--penguins-{version}-prepare",
        f"datadrop--penguins-{version}-r01",
    ]

    # Training Completed → model from the job's artifact, batch transform of the held-out rows
    aws.invoke("evaluate", sample_event("evaluate_training_job_completed.json", TrainingJobName=job))
    artifact = sagemaker.describe_training_job(TrainingJobName=job)["ModelArtifacts"]["S3ModelArtifacts"]
    (model,) = aws.requests("CreateModel")
    assert model["ModelName"] == job
    assert model["PrimaryContainer"]["ModelDataUrl"] == artifact
    assert model["PrimaryContainer"]["Image"] == xgboost_image_uri("us-east-1")
    assert model["PrimaryContainer"]["Environment"]["SAGEMAKER_SUBMIT_DIRECTORY"] == prepared["artifacts"]["serving_bundle"]
    assert model["ExecutionRoleArn"] == settings.sagemaker_role_arn
    (transform,) = aws.requests("CreateTransformJob")
    assert transform["ModelName"] == job
    assert transform["TransformInput"]["DataSource"]["S3DataSource"]["S3Uri"] == prepared["artifacts"]["test"]
    assert transform["TransformInput"]["SplitType"] == "Line"
    assert transform["TransformOutput"]["S3OutputPath"].startswith(f"s3://{settings.artifact_bucket_name}/")

    # Transform Completed → scored against the held-out labels → approved with both numbers
    expected_accuracy = _write_transform_output(aws, prepared, wrong=2)
    aws.invoke("evaluate", sample_event("evaluate_transform_job_completed.json", TransformJobName=job))
    (approved,) = aws.details("ModelApproved")
    assert approved["value"] == pytest.approx(expected_accuracy)
    # the evaluation (this model on this test split) has a record of its own
    (evaluated,) = aws.details("RunEvaluated")
    evaluation = aws.services.state.get_evaluation("penguins", evaluated["evaluation_id"])
    assert (
        evaluation is not None
        and evaluation["model_data_url"] == artifact
        and evaluation["test"] == prepared["artifacts"]["test"]
    )
    assert evaluation["metrics"]["accuracy"] == pytest.approx(expected_accuracy) and evaluation["report"] == evaluated["report"]
    assert approved["best_run"]["evaluation_id"] == evaluated["evaluation_id"]
    assert approved["threshold"] == prepared["threshold"]
    assert approved["best_run"]["training_job"] == job
    assert approved["model_package_arn"]
    package = sagemaker.describe_model_package(ModelPackageName=approved["model_package_arn"])
    assert package["ModelApprovalStatus"] == "Approved"

    # ModelApproved → endpoint config on that model → endpoint
    aws.invoke("deploy", envelope("ModelApproved", approved))
    (config,) = aws.requests("CreateEndpointConfig")
    assert config["ProductionVariants"][0]["ModelName"] == job
    assert config["ProductionVariants"][0]["InstanceType"] == settings.endpoint_instance_type
    (endpoint,) = aws.requests("CreateEndpoint")
    assert endpoint == {
        "EndpointName": "datadrop--penguins",
        "EndpointConfigName": config["EndpointConfigName"],
        "Tags": endpoint["Tags"],
    }

    # Endpoint InService (the docs' IN_SERVICE spelling) → ModelDeployed
    aws.invoke(
        "deploy",
        sample_event(
            "deploy_endpoint_in_service.json", EndpointName="datadrop--penguins", EndpointConfigName=config["EndpointConfigName"]
        ),
    )
    (deployed,) = aws.details("ModelDeployed")
    assert (
        deployed["invocation_url"] == "https://runtime.sagemaker.us-east-1.amazonaws.com/endpoints/datadrop--penguins/invocations"
    )


def test_every_event_delivered_twice_creates_nothing_twice(aws: AwsHarness) -> None:
    prepared = _prepare(aws)
    job = f"datadrop--penguins-{prepared['version']}-r01"
    steps = [
        ("train", envelope("DatasetPrepared", prepared)),
        ("evaluate", sample_event("evaluate_training_job_completed.json", TrainingJobName=job)),
    ]
    for function, event in steps:
        aws.invoke(function, event)
        aws.invoke(function, event)
    _write_transform_output(aws, prepared, wrong=0)
    transform_done = sample_event("evaluate_transform_job_completed.json", TransformJobName=job)
    aws.invoke("evaluate", transform_done)
    aws.invoke("evaluate", transform_done)
    (approved,) = aws.details("ModelApproved")
    aws.invoke("deploy", envelope("ModelApproved", approved))
    aws.invoke("deploy", envelope("ModelApproved", approved))
    for operation in ("CreateTrainingJob", "CreateModel", "CreateTransformJob", "CreateEndpointConfig", "CreateEndpoint"):
        assert len(aws.requests(operation)) == 1, operation


def test_same_object_uploaded_twice_trains_once(aws: AwsHarness) -> None:
    prepared = _prepare(aws)
    aws.invoke("train", envelope("DatasetPrepared", prepared))
    second = aws.upload("incoming/penguins/penguins.csv", (EXAMPLE / "penguins.csv").read_bytes())
    result = aws.invoke("prepare", aws.upload_event(second))
    assert result == {"outcome": "duplicate", "dataset": "penguins", "version": prepared["version"], "reason": None}
    assert len(aws.details("DatasetPrepared")) == 1
    assert len(aws.requests("CreateTrainingJob")) == 1


def test_failed_training_is_recorded_and_rejected_with_the_reason(aws: AwsHarness) -> None:
    prepared = _prepare(aws)
    aws.invoke("train", envelope("DatasetPrepared", prepared))
    job = f"datadrop--penguins-{prepared['version']}-r01"
    aws.invoke("evaluate", sample_event("evaluate_training_job_failed.json", TrainingJobName=job))
    assert aws.requests("CreateTransformJob") == []
    assert aws.details("ModelRejected") == []  # nothing to judge: a failure, not a rejection
    (rejected,) = aws.details("VersionFailed")
    assert rejected["stage"] == "training" and rejected["failed_runs"] == rejected["run_count"] == 1
    assert "every run failed" in rejected["reason"]
    failure = json.loads(json.dumps(sample_event("evaluate_training_job_failed.json")))["detail"]["FailureReason"]
    assert failure in rejected["reason"]


def test_events_for_jobs_that_are_not_ours_are_ignored(aws: AwsHarness) -> None:
    result = aws.invoke("evaluate", sample_event("evaluate_training_job_completed.json", TrainingJobName="someone-elses-job"))
    assert result["outcome"] == "ignored"
    assert aws.calls == []


def test_failed_batch_transform_fails_the_run_with_sagemakers_reason(aws: AwsHarness) -> None:
    prepared = _prepare(aws)
    job = f"datadrop--penguins-{prepared['version']}-r01"
    aws.invoke("train", envelope("DatasetPrepared", prepared))
    aws.invoke("evaluate", sample_event("evaluate_training_job_completed.json", TrainingJobName=job))
    failed = sample_event("evaluate_transform_job_completed.json", TransformJobName=job, TransformJobStatus="Failed")
    failed["detail"]["FailureReason"] = "ClientError: See job logs for more information"
    assert aws.invoke("evaluate", failed)["outcome"] == "failed"
    (rejected,) = aws.details("VersionFailed")
    assert "evaluation Failed: ClientError: See job logs" in rejected["reason"]
    assert aws.details("ModelApproved") == []
    assert aws.invoke("evaluate", failed) == {"job": job, "outcome": "failed"}  # idempotent: the first result again


def test_a_file_too_big_for_the_functions_memory_is_rejected_up_front(aws: AwsHarness) -> None:
    # as if Lambda gave prepare 1 MB more than the interpreter and libraries need: CSV files up to 0.4 MB
    aws.services.settings.memory_limit_mb = intake.FIXED_MEMORY_MIB + 1
    aws.put_config("penguins", "target: species\n")
    body = (EXAMPLE / "penguins.csv").read_bytes() * 40  # about 640 kB
    uploaded = aws.upload("incoming/penguins/big.csv", body)
    result = aws.invoke("prepare", aws.upload_event(uploaded))
    assert result["outcome"] == "rejected"
    assert "prepares files up to about 0.4 MB" in result["reason"] and "MemorySize" in result["reason"]
    (rejected,) = aws.details("DatasetRejected")
    assert rejected["reason"] == result["reason"]
    stored = aws.services.objects.read(aws.settings.data_bucket_name, "incoming/penguins/big.csv")
    assert stored == body


def test_a_wide_file_of_distinct_values_that_would_not_fit_is_rejected_not_killed(
    aws: AwsHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    from datadrop import dataprep

    # the measured line without its fixed parts, and 16 MiB for prepare: the counts of distinct values decide
    monkeypatch.setattr(dataprep, "RUNTIME_BYTES", 0)
    monkeypatch.setattr(dataprep, "CHUNK_BYTES_PER_CELL", 0)
    aws.services.settings.memory_limit_mb = intake.FIXED_MEMORY_MIB + 16
    aws.put_config("wide", "target: target\n")
    header = "target," + ",".join(f"x{index}" for index in range(300))
    lines = [f"{'ab'[row % 2]}," + ",".join(f"{row}.{column:03d}1" for column in range(300)) for row in range(400)]
    body = "\n".join([header, *lines]).encode() + b"\n"  # about 1 MB: the size guard lets it in (up to 6.7 MB)
    uploaded = aws.upload("incoming/wide/distinct.csv", body)
    result = aws.invoke("prepare", aws.upload_event(uploaded))
    assert result["outcome"] == "rejected"
    assert "its 301 columns hold" in result["reason"]
    assert "distinct values between them in 400 rows" in result["reason"] and "MemorySize" in result["reason"]
    (rejected,) = aws.details("DatasetRejected")
    assert rejected["reason"] == result["reason"]
    aws.put_config("penguins", "target: species\n")  # a small, narrow file under the same budget is prepared
    penguins = aws.upload("incoming/penguins/p.csv", (EXAMPLE / "penguins.csv").read_bytes())
    assert aws.invoke("prepare", aws.upload_event(penguins))["outcome"] == "prepared"


def test_a_file_that_would_not_be_prepared_in_time_is_rejected_up_front(aws: AwsHarness) -> None:
    aws.put_config("penguins", "target: species\n")
    body = (EXAMPLE / "penguins.csv").read_bytes()
    uploaded = aws.upload("incoming/penguins/late.csv", body)
    source = SourceObject(
        bucket=aws.settings.data_bucket_name, key=uploaded["key"], version_id=uploaded["version-id"], etag=uploaded["etag"]
    )
    # as if the invocation had just the reserve left: no time to download and prepare anything
    outcome = intake.handle_upload(aws.services, source, remaining_millis=lambda: int(intake.TIME_RESERVE_SECONDS * 1000))
    assert outcome.outcome == "rejected"
    assert outcome.reason is not None and "0 s left before its timeout" in outcome.reason and "smaller sample" in outcome.reason
    (rejected,) = aws.details("DatasetRejected")
    assert rejected["reason"] == outcome.reason
    assert intake.handle_upload(aws.services, source, remaining_millis=lambda: 900_000).outcome == "prepared"


@pytest.mark.parametrize("aws", [{"artifact_prefix": "team-a/ml"}], indirect=True)
def test_every_artifact_lives_under_the_stack_s_artifact_prefix(aws: AwsHarness) -> None:
    """ArtifactPrefix (template.yaml) moves the splits, the training output and the runs' inputs."""
    prepared = _prepare(aws)
    assert aws.settings.artifact_prefix == "team-a/ml"
    where = f"s3://{aws.settings.artifact_bucket_name}/team-a/ml/penguins/{prepared['version']}/"
    assert all(uri.startswith(where) for uri in prepared["artifacts"].values() if uri is not None), prepared["artifacts"]
    aws.invoke("train", envelope("DatasetPrepared", prepared))
    (training,) = aws.requests("CreateTrainingJob")
    assert training["OutputDataConfig"]["S3OutputPath"] == where + "training/"
    run = aws.services.sagemaker.describe_trial_component(TrialComponentName=training["ExperimentConfig"]["RunName"])
    assert run["InputArtifacts"]["train"]["Value"] == prepared["artifacts"]["train"]
    listed = aws.services.objects.client.list_objects_v2(Bucket=aws.settings.artifact_bucket_name)["Contents"]
    assert listed and all(item["Key"].startswith("team-a/ml/penguins/") for item in listed)
