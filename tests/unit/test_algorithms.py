"""The vendored XGBoost image table must agree with the SageMaker SDK it was copied from."""

from __future__ import annotations

import warnings

import pytest
from datadrop.algorithms.images import (
    FIRST_PARTY_REGISTRIES,
    SKLEARN_REGISTRIES,
    SKLEARN_VERSION,
    XGBOOST_REGISTRIES,
    XGBOOST_VERSION,
    UnsupportedRegion,
    first_party_image_uri,
    sklearn_image_uri,
    xgboost_image_uri,
)
from datadrop.algorithms.xgboost import objective as xgboost_objective


def test_matches_the_sagemaker_sdk_in_every_region() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        image_uris = pytest.importorskip("sagemaker.core.image_uris")
    for region in XGBOOST_REGISTRIES:
        assert xgboost_image_uri(region) == image_uris.retrieve("xgboost", region, XGBOOST_VERSION), region


def test_known_region() -> None:
    assert xgboost_image_uri("us-east-1") == "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:3.0-5"


def test_unknown_region_says_which_exist() -> None:
    with pytest.raises(UnsupportedRegion, match="us-east-1"):
        xgboost_image_uri("xx-nowhere-1")


def test_objectives() -> None:
    assert xgboost_objective("binary", 2) == {"objective": "binary:logistic", "eval_metric": "logloss"}
    assert xgboost_objective("multiclass", 3)["num_class"] == "3"
    assert xgboost_objective("regression", 0) == {"objective": "reg:squarederror", "eval_metric": "rmse"}


@pytest.mark.parametrize("repository", ["linear-learner", "knn", "factorization-machines"])
def test_first_party_images_match_the_sdk_in_every_region(repository: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        image_uris = pytest.importorskip("sagemaker.core.image_uris")
    for region in FIRST_PARTY_REGISTRIES:
        assert first_party_image_uri(region, repository) == image_uris.retrieve(repository, region), region


def test_the_sklearn_image_of_the_pipeline_stages_matches_the_sdk_in_every_region() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        image_uris = pytest.importorskip("sagemaker.core.image_uris")
    for region in SKLEARN_REGISTRIES:
        expected = image_uris.retrieve(
            "sklearn", region, version=SKLEARN_VERSION, py_version="py3", instance_type="ml.m5.large", image_scope="inference"
        )
        assert sklearn_image_uri(region) == expected, region
