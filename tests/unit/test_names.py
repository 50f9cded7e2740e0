from __future__ import annotations

import pytest

from datadrop import names


def test_version_depends_on_data_and_config() -> None:
    base = names.dataset_version("a" * 64, '{"target":"y"}')
    assert len(base) == names.VERSION_LENGTH
    assert base == names.dataset_version("a" * 64, '{"target":"y"}')
    assert base != names.dataset_version("b" * 64, '{"target":"y"}')
    assert base != names.dataset_version("a" * 64, '{"target":"z"}')


@pytest.mark.parametrize(
    ("key", "dataset"),
    [
        ("incoming/penguins/penguins.csv", "penguins"),
        ("incoming/penguins/2024/01/part.csv", "penguins"),
        ("incoming/penguins.csv", None),
        ("incoming/penguins/", None),
        ("other/penguins/x.csv", None),
    ],
)
def test_dataset_from_key(key: str, dataset: str | None) -> None:
    assert names.dataset_from_key(key) == dataset


def test_run_names_round_trip_and_fit_sagemaker_limits() -> None:
    run = names.RunNames("datadrop", "a" * 30, "0123456789ab", 7)
    assert len(run.training_job) <= 63
    assert names.SAGEMAKER_NAME.fullmatch(run.training_job)
    assert names.parse_job_name("datadrop", run.training_job) == ("a" * 30, "0123456789ab", 7)


def test_jobs_of_others_are_not_ours() -> None:
    assert names.parse_job_name("datadrop", "89c96cc8-dded-4739-afcc-6f1dc936701d") is None
    assert names.parse_job_name("datadrop", "other-penguins-0123456789ab-r01") is None


def test_trial_component_name_follows_the_sdk() -> None:
    assert names.trial_component_name("datadrop", "penguins", "0123456789AB-r01") == "datadrop-penguins-0123456789ab-r01"


def test_locations() -> None:
    where = names.DatasetLocations("art", "penguins", "v1")
    assert where.channel_uri(where.TRAIN) == "s3://art/datasets/penguins/v1/train/"
    assert where.uri(where.TEST_FEATURES) == "s3://art/datasets/penguins/v1/test/test.csv"
    assert where.evaluation_output_uri(1) == "s3://art/datasets/penguins/v1/evaluation/r01/"
