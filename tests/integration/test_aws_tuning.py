"""AWS mode under moto, Bayesian search: one CreateHyperParameterTuningJob, asserted field by field
under strict validation; the training jobs SageMaker launches for it become runs; its end closes
the run group and the decision follows.

The test plays SageMaker where moto cannot: it creates the tuning job's training jobs (SageMaker
does that itself), delivers the documented state-change events (the docs' samples, with the
`TuningJobArn` the MLSpace sample shows), writes the batch transforms' output, and answers
ListTrainingJobsForHyperParameterTuningJob, which moto 5.2.5 does not implement.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from botocore.awsrequest import AWSResponse, HTTPHeaders
from datadrop.algorithms import xgboost_image_uri
from datadrop.storage import split_s3_uri

from tests.conftest import sample_event
from tests.integration.conftest import AwsHarness, envelope

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "penguins"

CONFIG = """target: species
threshold: 0.5
hyperparameters:
  num_round: 30
  max_depth: {min: 2, max: 9, type: int}
  eta: {min: 0.01, max: 0.5, scale: log}
  subsample: [0.7, 1.0]
search: {strategy: bayesian, max_runs: 3, max_parallel: 2, seed: 11}
experiment: {tags: {team: growth}}
"""
# What SageMaker's Bayesian strategy would have picked for the three jobs (any values in the ranges).
CHOSEN = [
    {"max_depth": "3", "eta": "0.2", "subsample": "1.0"},
    {"max_depth": "7", "eta": "0.05", "subsample": "0.7"},
    {"max_depth": "5", "eta": "0.3", "subsample": "1.0"},
]


def _prepare(aws: AwsHarness) -> dict[str, Any]:
    aws.put_config("penguins", CONFIG)
    uploaded = aws.upload("incoming/penguins/penguins.csv", (EXAMPLE / "penguins.csv").read_bytes())
    event = aws.upload_event(uploaded)
    assert aws.invoke("prepare", event)["outcome"] == "prepared"
    (prepared,) = aws.details("DatasetPrepared")
    return prepared


def _launch_as_sagemaker(aws: AwsHarness, tuning: dict[str, Any], sequence: int) -> str:
    """SageMaker starts a training job of the tuning job: its name, static + chosen values."""
    name = f"{tuning['HyperParameterTuningJobName']}-{sequence:03d}-{sequence:08x}"
    definition = tuning["TrainingJobDefinition"]
    aws.services.sagemaker.create_training_job(
        TrainingJobName=name,
        AlgorithmSpecification=definition["AlgorithmSpecification"],
        RoleArn=definition["RoleArn"],
        HyperParameters={
            **definition["StaticHyperParameters"],
            **CHOSEN[sequence - 1],
            "_tuning_objective_metric": tuning["HyperParameterTuningJobConfig"]["HyperParameterTuningJobObjective"]["MetricName"],
        },
        InputDataConfig=definition["InputDataConfig"],
        OutputDataConfig=definition["OutputDataConfig"],
        ResourceConfig=definition["ResourceConfig"],
        StoppingCondition=definition["StoppingCondition"],
    )
    return name


def _training_event(name: str, tuning_name: str, status: str, event_id: str) -> dict[str, Any]:
    event = sample_event(
        "evaluate_tuning_training_job_completed.json",
        TrainingJobName=name,
        TrainingJobArn=f"arn:aws:sagemaker:us-east-1:123456789012:training-job/{name}",
        TuningJobArn=f"arn:aws:sagemaker:us-east-1:123456789012:hyper-parameter-tuning-job/{tuning_name}",
        TrainingJobStatus=status,
    )
    event["id"] = event_id
    return event


def _answer_list_training_jobs(aws: AwsHarness, tuning_name: str, jobs: list[str]) -> None:
    """ListTrainingJobsForHyperParameterTuningJob as SageMaker documents its answer."""

    def answer(params: dict[str, Any], **_: Any) -> tuple[AWSResponse, dict[str, Any]]:
        assert json.loads(params["body"]) == {"HyperParameterTuningJobName": tuning_name}
        summaries = [
            {
                "TrainingJobName": job,
                "TrainingJobArn": f"arn:aws:sagemaker:us-east-1:123456789012:training-job/{job}",
                "TuningJobName": tuning_name,
                "CreationTime": datetime.now(UTC),
                "TrainingJobStatus": "Completed",
                "TunedHyperParameters": CHOSEN[index],
            }
            for index, job in enumerate(jobs)
        ]
        return AWSResponse("moto", 200, HTTPHeaders(), None), {"TrainingJobSummaries": summaries, "ResponseMetadata": {}}

    aws.services.sagemaker.meta.events.register_first("before-call.sagemaker.ListTrainingJobsForHyperParameterTuningJob", answer)


def _transform_completed(name: str) -> dict[str, Any]:
    event = sample_event("evaluate_transform_job_completed.json", TransformJobName=name)
    event["id"] = f"transform-{name}"  # one event per job (idempotency is keyed on the event id)
    return event


def _write_transform_output(aws: AwsHarness, prepared: dict[str, Any], transform: dict[str, Any], wrong: int) -> None:
    labels = json.loads(aws.services.objects.read_uri(prepared["artifacts"]["test_labels"]))
    classes = prepared["classes"]
    lines = []
    for index, label in enumerate(labels):
        guess = label if index >= wrong else next(other for other in classes if other != label)
        lines.append(json.dumps({"label": guess, "probabilities": {c: (0.8 if c == guess else 0.1) for c in classes}}))
    bucket, prefix = split_s3_uri(transform["TransformOutput"]["S3OutputPath"])
    aws.services.objects.write(bucket, prefix + "test.jsonl.out", ("\n".join(lines) + "\n").encode())


def test_moto_cannot_list_a_tuning_job_s_training_jobs(aws: AwsHarness) -> None:
    """Why the test answers ListTrainingJobsForHyperParameterTuningJob itself."""
    with pytest.raises(
        NotImplementedError, match="list_training_jobs_for_hyper_parameter_tuning_job action has not been implemented"
    ):
        aws.services.sagemaker.list_training_jobs_for_hyper_parameter_tuning_job(HyperParameterTuningJobName="x")


def test_a_bayesian_search_is_one_tuning_job_whose_training_jobs_become_runs(aws: AwsHarness) -> None:
    settings = aws.settings
    prepared = _prepare(aws)
    version = prepared["version"]

    # DatasetPrepared → one tuning job, no training job of datadrop's own
    aws.invoke("train", envelope("DatasetPrepared", prepared))
    assert aws.requests("CreateTrainingJob") == []
    (tuning,) = aws.requests("CreateHyperParameterTuningJob")
    name = f"datadrop--penguins-{version}"
    assert tuning["HyperParameterTuningJobName"] == name and len(name) <= 32
    assert tuning["HyperParameterTuningJobConfig"] == {
        "Strategy": "Bayesian",
        # the validation channel's log loss, never the held-out test split
        "HyperParameterTuningJobObjective": {"Type": "Minimize", "MetricName": "validation:mlogloss"},
        "ResourceLimits": {"MaxNumberOfTrainingJobs": 3, "MaxParallelTrainingJobs": 2},
        "ParameterRanges": {
            "IntegerParameterRanges": [{"Name": "max_depth", "MinValue": "2", "MaxValue": "9", "ScalingType": "Linear"}],
            "ContinuousParameterRanges": [{"Name": "eta", "MinValue": "0.01", "MaxValue": "0.5", "ScalingType": "Logarithmic"}],
            "CategoricalParameterRanges": [{"Name": "subsample", "Values": ["0.7", "1.0"]}],
        },
        "TrainingJobEarlyStoppingType": "Off",
        "RandomSeed": 11,
    }
    definition = tuning["TrainingJobDefinition"]
    assert definition["StaticHyperParameters"] == {
        "num_round": "30",
        "min_child_weight": "1",
        "objective": "multi:softprob",
        "num_class": "3",
        "eval_metric": "mlogloss",
    }
    assert definition["AlgorithmSpecification"] == {"TrainingImage": xgboost_image_uri("us-east-1"), "TrainingInputMode": "File"}
    assert definition["RoleArn"] == settings.sagemaker_role_arn
    channels = {
        channel["ChannelName"]: channel["DataSource"]["S3DataSource"]["S3Uri"] for channel in definition["InputDataConfig"]
    }
    assert channels == {"train": prepared["artifacts"]["train"], "validation": prepared["artifacts"]["validation"]}
    assert all(channel["ContentType"] == "text/csv" for channel in definition["InputDataConfig"])
    assert definition["OutputDataConfig"] == {
        "S3OutputPath": f"s3://{settings.artifact_bucket_name}/datasets/penguins/{version}/training/"
    }
    assert definition["ResourceConfig"] == {
        "InstanceType": settings.training_instance_type,
        "InstanceCount": 1,
        "VolumeSizeInGB": 10,
    }
    assert definition["StoppingCondition"] == {"MaxRuntimeInSeconds": 3600}
    assert tuning["Tags"] == [
        {"Key": "datadrop:dataset", "Value": "penguins"},
        {"Key": "datadrop:version", "Value": version},
        {"Key": "datadrop:algorithm", "Value": "xgboost"},
    ]
    described = aws.services.sagemaker.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName=name)
    assert described["HyperParameterTuningJobConfig"]["Strategy"] == "Bayesian"
    (started,) = aws.details("TrainingStarted")
    assert started["tuning_job"] == name and started["max_runs"] == 3 and started["runs"] == []
    # the run group exists before the first run, tagged from the config
    sagemaker = aws.services.sagemaker
    group = sagemaker.describe_trial(TrialName=f"datadrop--penguins-{version}")
    assert group["ExperimentName"] == "datadrop--penguins"

    # SageMaker launches the jobs; their events (twice, out of order) make them runs
    jobs = [_launch_as_sagemaker(aws, tuning, sequence) for sequence in (1, 2, 3)]
    assert aws.invoke("evaluate", _training_event(jobs[1], name, "InProgress", "e-2a"))["outcome"] == "adopted"
    for event_id, job in [("e-2b", jobs[1]), ("e-1", jobs[0]), ("e-2c", jobs[1]), ("e-3", jobs[2]), ("e-1b", jobs[0])]:
        aws.invoke("evaluate", _training_event(job, name, "Completed", event_id))
    runs = {record.training_job: record for record in aws.services.state.list_runs("penguins", version)}
    assert sorted(runs) == sorted(jobs) and sorted(record.run_index for record in runs.values()) == [1, 2, 3]
    assert runs[jobs[1]].run_index == 1  # first seen, first numbered
    for job, record in runs.items():
        assert record.status == "EVALUATING" and record.tuning_job == name
        assert record.hyperparameters == sagemaker.describe_training_job(TrainingJobName=job)["HyperParameters"]
        component = sagemaker.describe_trial_component(TrialComponentName=f"datadrop--penguins-{record.run_name}")
        assert component["Parameters"]["max_depth"] == {"NumberValue": float(record.hyperparameters["max_depth"])}
    components = sagemaker.list_trial_components(TrialName=f"datadrop--penguins-{version}")["TrialComponentSummaries"]
    assert sorted(component["TrialComponentName"] for component in components) == sorted(
        [f"datadrop--penguins-{record.run_name}" for record in runs.values()] + [f"datadrop--penguins-{version}-prepare"]
    )  # the three runs and the record of the data preparation
    assert aws.services.state.get_version("penguins", version).running == 0  # type: ignore[union-attr]  # every adopted run gave its slot back

    # Each run is evaluated on the held-out rows; run 3 (the third job seen) is best
    transforms = {request["ModelName"]: request for request in aws.requests("CreateTransformJob")}
    assert len(transforms) == 3
    for record in runs.values():
        transform = transforms[f"datadrop--penguins-{record.run_name}"]
        _write_transform_output(aws, prepared, transform, wrong={1: 6, 2: 4, 3: 1}[record.run_index])
    # the tuning job's end arrives before the last evaluation: the decision waits for it
    _answer_list_training_jobs(aws, name, jobs)
    for index, transform_name in enumerate(sorted(transforms)[:2]):
        aws.invoke("evaluate", _transform_completed(transform_name))
        if index == 0:
            tuning_event = sample_event("evaluate_tuning_job_completed.json", HyperParameterTuningJobName=name)
            assert aws.invoke("evaluate", tuning_event)["outcome"] == "tuning Completed"
    assert aws.details("ModelApproved") == []
    aws.invoke("evaluate", _transform_completed(sorted(transforms)[2]))
    (approved,) = aws.details("ModelApproved")
    assert approved["run_count"] == 3 and approved["failed_runs"] == 0
    assert approved["best_run"]["training_job"] == next(job for job, record in runs.items() if record.run_index == 3)
    assert aws.services.state.get_version("penguins", version).tuning_ended == "Completed"  # type: ignore[union-attr]


def test_a_tuning_job_that_launched_nothing_fails_the_version_with_its_reason(aws: AwsHarness) -> None:
    prepared = _prepare(aws)
    aws.invoke("train", envelope("DatasetPrepared", prepared))
    (tuning,) = aws.requests("CreateHyperParameterTuningJob")
    name = tuning["HyperParameterTuningJobName"]
    _answer_list_training_jobs(aws, name, [])
    event = sample_event(
        "evaluate_tuning_job_completed.json",
        HyperParameterTuningJobName=name,
        HyperParameterTuningJobStatus="Failed",
        FailureReason="ResourceLimitExceeded: ml.m5.large training instances",
    )
    assert aws.invoke("evaluate", event)["outcome"] == "FAILED"
    (failed,) = aws.details("VersionFailed")
    assert failed["reason"] == (
        f"the tuning job {name} ended Failed without a training job: ResourceLimitExceeded: ml.m5.large training instances"
    )


def test_training_jobs_of_tuning_jobs_that_are_not_ours_are_ignored(aws: AwsHarness) -> None:
    before = aws.services.state.table.scan()["Items"]
    outcome = aws.invoke("evaluate", _training_event("datadrop--other-001-00000001", "datadrop--other", "Completed", "x-1"))
    assert outcome["outcome"] == "ignored"
    tuning_event = sample_event("evaluate_tuning_job_completed.json", HyperParameterTuningJobName="datadrop--other")
    assert aws.invoke("evaluate", tuning_event)["outcome"] == "ignored"
    assert aws.services.state.table.scan()["Items"] == before
