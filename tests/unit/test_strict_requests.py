"""The test harness checks every AWS request as AWS would: it must catch what botocore and moto let through."""

from __future__ import annotations

import boto3
import pytest
from moto import mock_aws

from tests import strict_requests


def test_the_validator_is_on_for_every_test() -> None:
    assert strict_requests.installed()


@mock_aws
def test_a_display_name_with_a_space_fails_as_it_would_on_aws() -> None:
    """The defect it exists for: SageMaker rejects this CreateTrial; botocore and moto accept it."""
    sagemaker = boto3.client("sagemaker", region_name="us-east-1")
    sagemaker.create_experiment(ExperimentName="datadrop--penguins")
    with pytest.raises(strict_requests.RequestViolatesServiceModel, match=r"DisplayName='penguins 0123' does not match"):
        sagemaker.create_trial(
            TrialName="datadrop--penguins-0123", ExperimentName="datadrop--penguins", DisplayName="penguins 0123"
        )
    sagemaker.create_trial(TrialName="datadrop--penguins-0123", ExperimentName="datadrop--penguins", DisplayName="penguins-0123")


@mock_aws
@pytest.mark.parametrize(
    ("request_kwargs", "complaint"),
    [
        ({"TrainingJobName": "x" * 64}, "64 characters; at most 63 are allowed"),
        ({"TrainingJobName": "-starts-with-a-hyphen"}, "does not match the pattern"),
        ({"StatusEquals": "Finished"}, "is not one of"),
        ({"MaxResults": 0}, "below the minimum 1"),
    ],
)
def test_lengths_enums_and_ranges_are_checked(request_kwargs: dict[str, object], complaint: str) -> None:
    sagemaker = boto3.client("sagemaker", region_name="us-east-1")
    operation = sagemaker.describe_training_job if "TrainingJobName" in request_kwargs else sagemaker.list_training_jobs
    with pytest.raises(strict_requests.RequestViolatesServiceModel, match=complaint):
        operation(**request_kwargs)


@mock_aws
def test_list_and_map_sizes_are_checked() -> None:
    events = boto3.client("events", region_name="us-east-1")
    entries = [{"Source": "datadrop", "DetailType": "x", "Detail": "{}"}] * 11
    with pytest.raises(strict_requests.RequestViolatesServiceModel, match="at most 10 are allowed"):
        events.put_events(Entries=entries)


def test_java_patterns_of_the_service_models_compile() -> None:
    """The models use Java regex syntax (\\p{L}, surrogate-pair ranges); each one must be usable."""
    import botocore.session

    session = botocore.session.get_session()
    for service in ("sagemaker", "sagemaker-metrics", "s3", "dynamodb", "events", "sqs", "cloudformation"):
        model = session.get_service_model(service)
        for name in model.shape_names:
            pattern = model.shape_for(name).metadata.get("pattern")
            if pattern:
                strict_requests._compiled(pattern)
