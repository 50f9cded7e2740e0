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


def test_run_names_fit_sagemaker_limits_even_at_the_longest() -> None:
    run = names.RunNames("abcdefghijkl", "a" * 30, "0123456789ab", 1234, attempt=12)
    assert len(run.training_job) <= 63
    assert names.SAGEMAKER_NAME.fullmatch(run.training_job)
    # shortened names stay distinct
    other = names.RunNames("abcdefghijkl", "a" * 30, "0123456789ab", 1234, attempt=13)
    assert other.training_job != run.training_job


def test_run_index_above_99_and_attempts_make_distinct_names() -> None:
    first = names.RunNames("datadrop", "penguins", "0123456789ab", 7)
    assert first.training_job == "datadrop--penguins-0123456789ab-r07"
    assert first.label == "r07"
    retried = names.RunNames("datadrop", "penguins", "0123456789ab", 7, attempt=2)
    assert retried.training_job == "datadrop--penguins-0123456789ab-r07-a2"
    assert retried.label == "r07-a2"
    assert names.RunNames("datadrop", "penguins", "0123456789ab", 100).training_job.endswith("-r100")


def test_one_stacks_prefix_never_matches_anothers_names() -> None:
    """Stack "datadrop" filters on "datadrop--": stack "datadrop-x"'s names never start with it."""
    ours = names.owned_prefix("datadrop")
    theirs = names.RunNames("datadrop-x", "penguins", "0123456789ab", 1).training_job
    assert not theirs.startswith(ours)
    assert names.endpoint_name("datadrop", "x-penguins").startswith(ours)
    for bad_prefix in ("datadrop-", "data--drop", "Datadrop", ""):
        with pytest.raises(ValueError):
            names.owned_prefix(bad_prefix)


def test_trial_component_name_follows_the_sdk() -> None:
    assert names.trial_component_name("datadrop", "penguins", "0123456789AB-r01") == "datadrop--penguins-0123456789ab-r01"


def test_locations() -> None:
    where = names.DatasetLocations("art", "penguins", "v1")
    assert where.channel_uri(where.TRAIN) == "s3://art/datasets/penguins/v1/train/"
    assert where.uri(where.TEST_FEATURES) == "s3://art/datasets/penguins/v1/test/test.jsonl"
    assert where.evaluation_output_uri("r01") == "s3://art/datasets/penguins/v1/evaluation/r01/"
    elsewhere = names.DatasetLocations("art", "penguins", "v1", "team-a/ml")  # the stack's ArtifactPrefix
    assert elsewhere.channel_uri(elsewhere.TRAIN) == "s3://art/team-a/ml/penguins/v1/train/"


def test_a_tuning_job_name_fits_sagemaker_s_32_characters_and_keeps_the_stack_prefix() -> None:
    name = names.tuning_job_name("datadrop", "penguins-species-long-name", "0123456789ab", attempt=2)
    assert len(name) <= names.TUNING_JOB_NAME_MAX and name.startswith("datadrop--")
    assert name != names.tuning_job_name("datadrop", "penguins-species-long-name", "0123456789ab", attempt=1)
    assert names.tuning_job_name("dd", "iris", "abc", attempt=1) == "dd--iris-abc"


def test_an_evaluation_is_a_model_on_a_test_split() -> None:
    model, split = "s3://a/m/model.tar.gz", "s3://a/d/v1/test/"
    assert names.evaluation_id(model, split) == names.evaluation_id(model, split)
    assert names.evaluation_id(model, split) != names.evaluation_id(model, "s3://a/d/v2/test/")  # the champion on a new split
    assert names.evaluation_id(model, split) != names.evaluation_id("s3://a/m2/model.tar.gz", split)
