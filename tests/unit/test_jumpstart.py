"""The JumpStart script-mode declarations: images against the SageMaker SDK, channels, hyperparameter
encoding, metric regexes against the lines the containers (and the twins) log."""

from __future__ import annotations

import json
import re
import warnings

import pytest
from datadrop import algorithms
from datadrop.algorithms import UnsupportedRegion
from datadrop.algorithms.jumpstart import (
    IMAGES,
    JUMPSTART_REGIONS,
    FrameworkImage,
    JumpStartAlgorithm,
    decode_hyperparameters,
    encode_hyperparameters,
)

JUMPSTART_ALGORITHMS = ["lightgbm", "catboost", "autogluon", "tabtransformer"]


def jumpstart(name: str) -> JumpStartAlgorithm:
    algorithm = algorithms.get(name)
    assert isinstance(algorithm, JumpStartAlgorithm)
    return algorithm


@pytest.mark.parametrize("image", IMAGES, ids=lambda i: f"{i.framework}-{i.scope}-{i.version}")
def test_images_match_the_sdk_in_every_region(image: FrameworkImage) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        image_uris = pytest.importorskip("sagemaker.core.image_uris")
    for region in sorted(image.regions):
        expected = image_uris.retrieve(
            image.framework,
            region,
            version=image.version,
            py_version=image.py_version,
            instance_type="ml.m5.xlarge",
            image_scope=image.scope,
        )
        assert image.uri(region) == expected, region


def test_an_image_outside_its_regions_says_which_exist() -> None:
    autogluon = jumpstart("autogluon").model("classification").training_image
    with pytest.raises(UnsupportedRegion, match="us-east-1"):
        autogluon.uri("cn-north-1")  # AutoGluon 0.4.3 has no training image in China


@pytest.mark.parametrize("name", JUMPSTART_ALGORITHMS)
@pytest.mark.parametrize("problem_type", ["binary", "multiclass", "regression"])
def test_training_launch(name: str, problem_type: str) -> None:
    algorithm = jumpstart(name)
    plain = {**algorithm.default_hyperparameters(problem_type), **algorithm.derived_for(problem_type)}
    launch = algorithm.training("eu-west-1", plain)
    model = algorithm.model_for_problem(problem_type)

    assert launch.algorithm_specification["TrainingImage"] == model.training_image.uri("eu-west-1")
    assert launch.algorithm_specification["TrainingInputMode"] == "File"
    assert launch.algorithm_specification["MetricDefinitions"]
    # script mode: every value JSON-encoded (the SDK's _json_encode_hyperparameters), plus the toolkit's keys
    assert all(json.loads(v) == plain[k] for k, v in launch.hyperparameters.items() if k in plain)
    assert json.loads(launch.hyperparameters["sagemaker_program"]) == "transfer_learning.py"
    assert json.loads(launch.hyperparameters["sagemaker_submit_directory"]) == "/opt/ml/input/data/code/sourcedir.tar.gz"
    assert json.loads(launch.hyperparameters["sagemaker_region"]) == "eu-west-1"
    assert algorithm.plain_hyperparameters(launch.hyperparameters) == plain

    channels = {c["ChannelName"]: c for c in launch.extra_channels}
    assert set(channels) == {"model", "code"}
    model_source = channels["model"]["DataSource"]["S3DataSource"]
    assert model_source == {
        "S3DataType": "S3Prefix",
        "S3Uri": f"s3://jumpstart-cache-prod-eu-west-1/{model.training_artifact_key}",
        "S3DataDistributionType": "FullyReplicated",
    }
    assert channels["model"]["ContentType"] == "application/x-sagemaker-model"
    assert channels["model"]["InputMode"] == "File"
    code_uri = channels["code"]["DataSource"]["S3DataSource"]["S3Uri"]
    assert code_uri == f"s3://jumpstart-cache-prod-eu-west-1/{model.training_script_key}"
    assert code_uri.endswith("/sourcedir.tar.gz")
    expected_kind = "regression" if problem_type == "regression" else "classification"
    assert model.model_id == algorithm.model(expected_kind).model_id


def test_lightgbm_classification_uris_are_the_sdk_specs() -> None:
    launch = jumpstart("lightgbm").training("us-west-2", {"metric": "multi_logloss"})
    channels = {c["ChannelName"]: c["DataSource"]["S3DataSource"]["S3Uri"] for c in launch.extra_channels}
    assert channels == {
        "model": "s3://jumpstart-cache-prod-us-west-2/lightgbm-training/train-lightgbm-classification-model.tar.gz",
        "code": "s3://jumpstart-cache-prod-us-west-2/source-directory-tarballs/lightgbm/transfer_learning/classification/prepack/v1.1.1/sourcedir.tar.gz",
    }
    assert (
        launch.algorithm_specification["TrainingImage"]
        == "763104351884.dkr.ecr.us-west-2.amazonaws.com/pytorch-training:1.9.0-cpu-py38"
    )


def test_json_encoding_round_trip() -> None:
    plain = {"num_boost_round": "500", "metric": "auc", "is_unbalance": "True", "note": 'a "quoted" value'}
    request = encode_hyperparameters(plain)
    assert request["num_boost_round"] == '"500"'
    assert decode_hyperparameters({**request, "sagemaker_program": '"transfer_learning.py"'}) == plain
    # a request written by hand with bare numbers still reads back as the strings datadrop uses
    assert decode_hyperparameters({"num_boost_round": "500", "learning_rate": "0.1"}) == {
        "num_boost_round": "500",
        "learning_rate": "0.1",
    }


@pytest.mark.parametrize("name", ["lightgbm", "catboost", "tabtransformer"])
def test_prepacked_models_serve_their_own_inference_code(name: str) -> None:
    container = jumpstart(name).inference_container("us-east-1", "s3://bucket/job/output/model.tar.gz", "binary")
    assert container["Image"] == "763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-inference:2.0.1-cpu-py310"
    assert container["ModelDataUrl"] == "s3://bucket/job/output/model.tar.gz"
    assert container["Environment"]["SAGEMAKER_PROGRAM"] == "inference.py"
    assert container["Environment"]["SAGEMAKER_SUBMIT_DIRECTORY"] == "/opt/ml/model/code"


def test_autogluon_inference_script_follows_the_problem_type() -> None:
    autogluon = jumpstart("autogluon")
    regression = autogluon.inference_container("us-east-1", "s3://b/m.tar.gz", problem_type="regression")
    assert "/inference/regression/" in regression["Environment"]["SAGEMAKER_SUBMIT_DIRECTORY"]
    container = autogluon.inference_container("us-east-1", "s3://b/m.tar.gz", problem_type="binary")
    assert container["Image"] == "763104351884.dkr.ecr.us-east-1.amazonaws.com/autogluon-inference:0.4.3-cpu-py38"
    assert container["Environment"]["SAGEMAKER_SUBMIT_DIRECTORY"] == (
        "s3://jumpstart-cache-prod-us-east-1/source-directory-tarballs/autogluon/inference/classification/v1.0.0/sourcedir.tar.gz"
    )


def test_regions_outside_jumpstart_are_refused() -> None:
    assert "us-iso-east-1" not in JUMPSTART_REGIONS
    with pytest.raises(UnsupportedRegion, match="us-east-1"):
        jumpstart("lightgbm").training("us-iso-east-1", {"metric": "rmse"})


def _values(definitions: list[dict[str, str]], log: str) -> dict[str, float]:
    """What SageMaker records: for each definition, the last value its regex finds in the log."""
    found: dict[str, float] = {}
    for definition in definitions:
        for line in log.splitlines():
            match = re.search(definition["Regex"], line)
            if match:
                found[definition["Name"]] = float(match.group(1))
    return found


def test_lightgbm_regexes_read_the_validation_value_of_lightgbm_log_lines() -> None:
    lightgbm = jumpstart("lightgbm")
    log = "[1]\tval's multi_logloss: 2.1\ttrain's multi_logloss: 2.0\nEarly stopping, best iteration is:\n[7]\tval's multi_logloss: 0.4512\ttrain's multi_logloss: 1.5e-05\n"
    values = _values(lightgbm.metric_definitions({"metric": "multi_logloss"}), log)
    assert values == {"validation:multi_logloss": 0.4512, "train:multi_logloss": 1.5e-05}
    assert lightgbm.tuning_objective("multiclass") == {"Type": "Minimize", "MetricName": "validation:multi_logloss"}


def test_catboost_regex_reads_best_test() -> None:
    catboost = jumpstart("catboost")
    definitions = catboost.metric_definitions({"eval_metric": "AUC"})
    assert _values(definitions, "0:\ttest: 0.9\tbest: 0.9 (0)\nbestTest = 0.9723\nbestIteration = 41\n") == {
        "validation:AUC": 0.9723
    }
    assert catboost.tuning_objective("binary") == {"Type": "Maximize", "MetricName": "validation:AUC"}
    assert catboost.tuning_objective("regression")["MetricName"] == "validation:RMSE"


def test_tabtransformer_and_autogluon_regexes_read_their_documented_lines() -> None:
    tabtransformer = jumpstart("tabtransformer")
    log = "Epoch 5: ... metrics={'f1': 0.8125}\n"  # docs tabtransformer-tuning.md
    assert _values(tabtransformer.metric_definitions({}), log) == {"validation:f1": 0.8125}
    autogluon = jumpstart("autogluon")
    log = "\t-0.4213\t = Validation score   (root_mean_squared_error)\n"
    assert _values(autogluon.metric_definitions({"eval_metric": "root_mean_squared_error"}), log) == {
        "validation:root_mean_squared_error": -0.4213
    }


@pytest.mark.parametrize("name", JUMPSTART_ALGORITHMS)
def test_every_objective_is_a_defined_metric(name: str) -> None:
    algorithm = jumpstart(name)
    for problem_type in ("binary", "multiclass", "regression"):
        plain = {**algorithm.default_hyperparameters(problem_type), **algorithm.derived_for(problem_type)}
        names = {d["Name"] for d in algorithm.training("us-east-1", plain).algorithm_specification["MetricDefinitions"]}
        assert algorithm.tuning_objective(problem_type)["MetricName"] in names, problem_type


def test_local_twins_and_extras() -> None:
    assert {n: (jumpstart(n).local_twin, jumpstart(n).local_extra) for n in JUMPSTART_ALGORITHMS} == {
        "lightgbm": ("lightgbm", None),
        "catboost": ("catboost", None),
        "autogluon": ("autogluon", "autogluon"),
        "tabtransformer": ("tabtransformer", "torch"),
    }
