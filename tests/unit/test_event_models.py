"""Every documented sample of the AWS events we consume parses, in each documented spelling."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from aws_lambda_powertools.utilities.parser import parse
from aws_lambda_powertools.utilities.parser.models import S3EventNotificationEventBridgeModel
from datadrop.events import DatasetPrepared, ModelApproved, PreparedArtifacts, SourceObject
from datadrop.incoming.s3 import S3ObjectCreated
from datadrop.incoming.sagemaker import (
    EndpointStateChange,
    ModelPackageStateChange,
    TrainingJobStateChange,
    TransformJobStateChange,
    TuningJobStateChange,
)

SAMPLES = Path(__file__).resolve().parents[1] / "fixtures" / "aws-events"


def _load(name: str) -> dict:
    return json.loads((SAMPLES / name).read_text())


@pytest.mark.parametrize("name", ["s3_object_created_eventbridge.docs.json", "s3_object_created_eventbridge.powertools.json"])
def test_s3_object_created_reads_what_powertools_reads(name: str) -> None:
    ours = S3ObjectCreated.model_validate(_load(name))
    theirs = parse(event=_load(name), model=S3EventNotificationEventBridgeModel)
    assert ours.detail.object.key == theirs.detail.object.key
    assert ours.detail.object.etag == theirs.detail.object.etag
    assert ours.detail.object.version_id == theirs.detail.object.version_id
    assert ours.detail.bucket.name == theirs.detail.bucket.name
    assert ours.time == theirs.time and ours.detail_type == theirs.detail_type == "Object Created"


@pytest.mark.parametrize(
    ("key", "as_s3_writes_it"),
    [
        ("incoming/penguins/penguins.csv", "incoming/penguins/penguins.csv"),
        ("incoming/penguins/my data+v2 (copy) é.csv", "incoming/penguins/my+data%2Bv2+%28copy%29+%C3%A9.csv"),
        ("incoming/a/100%+50% = x&y.csv", "incoming/a/100%25%2B50%25+%3D+x%26y.csv"),
    ],
)
def test_the_object_key_is_decoded_as_powertools_decodes_it_and_the_local_runtime_encodes_it_as_s3_does(
    key: str, as_s3_writes_it: str
) -> None:
    from aws_lambda_powertools.utilities.data_classes.s3_event import S3EventBridgeNotificationEvent
    from datadrop.local.runtime import _normalise_moto_event

    moto_event = _load("s3_object_created_eventbridge.docs.json")
    moto_event["detail"]["object"]["key"] = key  # moto puts the key in as it is
    delivered = _normalise_moto_event(moto_event)
    assert delivered["detail"]["object"]["key"] == as_s3_writes_it
    assert S3ObjectCreated.model_validate(delivered).detail.object.decoded_key == key
    assert S3EventBridgeNotificationEvent(delivered).detail.object.key == key


def test_s3_version_id_is_read() -> None:
    parsed = S3ObjectCreated.model_validate(_load("s3_object_created_eventbridge.docs.json"))
    assert parsed.detail.object.version_id == "IYV3p45BT0ac8hjHg1houSdS1a.Mro8e"


@pytest.mark.parametrize(
    ("name", "status"),
    [
        ("sagemaker_training_job_state_change.docs.json", "Completed"),
        ("sagemaker_training_job_state_change_inprogress.mlspace_derived.json", "InProgress"),
    ],
)
def test_training_job_state_change(name: str, status: str) -> None:
    parsed = parse(event=_load(name), model=TrainingJobStateChange)
    assert parsed.detail.TrainingJobStatus == status
    assert parsed.detail.TrainingJobName


def test_a_tuning_job_s_training_job_names_its_tuning_job() -> None:
    parsed = parse(
        event=_load("sagemaker_training_job_state_change_inprogress.mlspace_derived.json"), model=TrainingJobStateChange
    )
    assert parsed.detail.TuningJobArn == (
        "arn:aws:sagemaker:us-east-1:123456789000:hyper-parameter-tuning-job/LatestFun-hpoxgb-20231004"
    )
    assert (
        parse(event=_load("sagemaker_training_job_state_change.docs.json"), model=TrainingJobStateChange).detail.TuningJobArn
        is None
    )


@pytest.mark.parametrize(
    ("name", "status"),
    [
        ("sagemaker_hyperparameter_tuning_job_state_change.docs.json", "status"),
        ("sagemaker_hyperparameter_tuning_job_state_change.mlspace_derived.json", "Running"),
    ],
)
def test_tuning_job_state_change(name: str, status: str) -> None:
    """The docs' sample has placeholder values and epoch-ms strings; MLSpace's has nulls and integers."""
    parsed = parse(event=_load(name), model=TuningJobStateChange)
    assert parsed.detail.HyperParameterTuningJobStatus == status
    assert parsed.detail.HyperParameterTuningJobName
    assert parsed.detail.FailureReason is None


def test_transform_job_state_change_keeps_failure_reason() -> None:
    parsed = parse(event=_load("sagemaker_transform_job_state_change.docs.json"), model=TransformJobStateChange)
    assert parsed.detail.FailureReason == "failed why 1"


@pytest.mark.parametrize(
    "name", ["sagemaker_endpoint_state_change.docs.json", "sagemaker_endpoint_state_change.mlspace_derived.json"]
)
def test_endpoint_status_spellings_are_unified(name: str) -> None:
    parsed = parse(event=_load(name), model=EndpointStateChange)
    assert parsed.detail.EndpointStatus == "InService"  # the samples say IN_SERVICE


def test_epoch_millisecond_event_time_parses() -> None:
    parsed = parse(event=_load("sagemaker_endpoint_state_change.docs.json"), model=EndpointStateChange)
    assert parsed.time.year == 2020


def test_published_details_reject_unknown_fields() -> None:
    detail = DatasetPrepared(
        dataset="d",
        version="v",
        source=SourceObject(bucket="b", key="k"),
        artifacts=PreparedArtifacts(
            train="t", validation="v", test="t", test_labels="l", recipe="r", serving_bundle="s", profile="p"
        ),
        problem_type="binary",
        classes=["a", "b"],
        rows={"train": 1},
        metric="accuracy",
        threshold=0.5,
        hyperparameters={},
    )
    document = json.loads(detail.model_dump_json())
    document["surprise"] = 1
    with pytest.raises(ValueError):
        DatasetPrepared.model_validate(document)
    assert ModelApproved.DETAIL_TYPE == "ModelApproved"


EVENTS = Path(__file__).resolve().parents[2] / "events"


def test_every_sample_event_parses_with_its_handlers_model() -> None:
    """events/ holds one sample per function, for `sam local invoke -e`; each must parse."""
    from datadrop.incoming import DatasetPreparedEvent, ModelApprovedEvent

    models = {
        "prepare_s3_object_created.json": S3ObjectCreated,
        "train_dataset_prepared.json": DatasetPreparedEvent,
        "evaluate_training_job_completed.json": TrainingJobStateChange,
        "evaluate_training_job_failed.json": TrainingJobStateChange,
        "evaluate_transform_job_completed.json": TransformJobStateChange,
        "evaluate_tuning_job_completed.json": TuningJobStateChange,
        "evaluate_tuning_training_job_completed.json": TrainingJobStateChange,
        "evaluate_model_package_approved.json": ModelPackageStateChange,
        "deploy_model_approved.json": ModelApprovedEvent,
        "deploy_endpoint_in_service.json": EndpointStateChange,
    }
    assert sorted(path.name for path in EVENTS.glob("*.json")) == sorted(models)
    for name, model in models.items():
        model.model_validate(json.loads((EVENTS / name).read_text()))


def test_events_stay_under_the_put_events_limit_at_the_largest_run_count() -> None:
    """PutEvents takes at most 256 KB per entry: the largest plan, with long hyperparameters and
    failure reasons, still fits (the full leaderboard lives in S3, not in the decision event)."""
    from datadrop.config import MAX_RUNS
    from datadrop.events import ModelRejected, RunSummary, TrainingStarted

    hyperparameters = {f"hyperparameter_{index:02d}": "x" * 40 for index in range(12)}
    runs = [
        RunSummary(
            run_index=index,
            run_name=f"0123456789ab-r{index:02d}",
            training_job=f"datadrop--{'d' * 30}-0123456789ab-r{index:02d}-a9",
            status="TRAINING",
            hyperparameters=hyperparameters,
        )
        for index in range(1, MAX_RUNS + 1)
    ]
    started = TrainingStarted(dataset="d" * 30, version="0123456789ab", experiment_name="e" * 50, run_group="g" * 60, runs=runs)
    best = runs[0].model_copy(update={"status": "EVALUATED", "metrics": {"accuracy": 0.9}, "failure_reason": "r" * 1024})
    decided = ModelRejected(
        dataset="d" * 30, version="0123456789ab", metric="accuracy", value=0.9, threshold=0.95, reason="r" * 4000,
        best_run=best, run_count=MAX_RUNS, failed_runs=MAX_RUNS - 1, leaderboard="s3://b/" + "k" * 900,
    )  # fmt: skip
    envelope_allowance = 2_000  # source, detail-type, resources, bus name
    for event in (started, decided):
        assert len(event.model_dump_json().encode()) + envelope_allowance < 256 * 1024, event.DETAIL_TYPE
