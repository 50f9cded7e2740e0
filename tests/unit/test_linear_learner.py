"""Linear Learner: what datadrop sends SageMaker, and its local twin (train, load, invoke)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from datadrop import algorithms
from datadrop.algorithms import AlgorithmError, DataFacts
from datadrop.algorithms.images import first_party_image_uri
from datadrop.local.twins import ClientError
from datadrop.local.twins import linear_learner as twin

from tests.unit._penguins import penguins, split, write_channel

LL = algorithms.get("linear-learner")


def _channels(tmp_path: Path, y: np.ndarray, x: np.ndarray) -> dict[str, Path]:
    train_rows, validation_rows = split(len(y))
    return {
        "train": write_channel(tmp_path / "train", y[train_rows], x[train_rows]),
        "validation": write_channel(tmp_path / "validation", y[validation_rows], x[validation_rows]),
    }


def _hyperparameters(facts: DataFacts) -> dict[str, str]:
    return {**LL.default_hyperparameters(facts.problem_type), **LL.derived_hyperparameters(facts)}


def _metrics(metrics: list[dict]) -> dict[str, float]:
    return {entry["MetricName"]: entry["Value"] for entry in metrics}


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    return penguins()


def test_registered_under_its_config_name() -> None:
    assert "linear-learner" in algorithms.names()
    assert LL.title == "Linear Learner" and LL.serving == "pipeline" and LL.local_twin == "linear_learner"


@pytest.mark.parametrize(
    ("facts", "expected"),
    [
        (DataFacts("binary", 2, 7, 300), {"predictor_type": "binary_classifier", "feature_dim": "7"}),
        (DataFacts("multiclass", 3, 4, 300), {"predictor_type": "multiclass_classifier", "feature_dim": "4", "num_classes": "3"}),
        (DataFacts("regression", 0, 12, 300), {"predictor_type": "regressor", "feature_dim": "12"}),
    ],
)
def test_the_data_decides_predictor_type_feature_dim_and_num_classes(facts: DataFacts, expected: dict[str, str]) -> None:
    assert LL.derived_hyperparameters(facts) == expected


def test_rejects_a_problem_type_it_does_not_know() -> None:
    with pytest.raises(AlgorithmError, match="linear-learner does not support ranking"):
        LL.default_hyperparameters("ranking")
    with pytest.raises(AlgorithmError, match="does not support"):
        LL.tuning_objective("clustering")


def test_training_request_uses_the_regions_image_in_file_mode_without_metric_definitions() -> None:
    launch = LL.training("eu-west-1", {"predictor_type": "regressor", "feature_dim": "3"})
    assert launch.algorithm_specification == {
        "TrainingImage": first_party_image_uri("eu-west-1", "linear-learner"),
        "TrainingInputMode": "File",
    }
    assert launch.algorithm_specification["TrainingImage"].endswith(".dkr.ecr.eu-west-1.amazonaws.com/linear-learner:1")
    assert launch.hyperparameters == {"predictor_type": "regressor", "feature_dim": "3"}
    assert LL.inference_container("us-east-1", "s3://b/model.tar.gz", "binary") == {
        "Image": first_party_image_uri("us-east-1", "linear-learner"),
        "ModelDataUrl": "s3://b/model.tar.gz",
    }


def test_tunes_on_the_validation_objective_loss() -> None:
    for problem_type in ("binary", "multiclass", "regression"):
        assert LL.tuning_objective(problem_type) == {"Type": "Minimize", "MetricName": "validation:objective_loss"}


def test_response_format_is_csv_in_json_records_out() -> None:
    assert LL.response is not None
    assert (LL.response.request_content_type, LL.response.accept) == ("text/csv", "application/json")
    assert (LL.response.records_key, LL.response.score_key, LL.response.label_key) == ("predictions", "score", "predicted_label")


def test_multiclass_twin_learns_penguin_species_and_round_trips(tmp_path: Path, data: tuple[np.ndarray, np.ndarray]) -> None:
    x, y = data
    hyperparameters = _hyperparameters(DataFacts("multiclass", 3, 4, len(y)))
    metrics = _metrics(twin.train(_channels(tmp_path, y, x), hyperparameters, tmp_path / "model"))
    assert metrics["validation:multiclass_accuracy"] >= 0.9
    assert metrics["validation:objective_loss"] < 0.3
    assert {"validation:macro_f_beta", "validation:dcg", "validation:multiclass_top_k_accuracy", "train:objective_loss"} <= set(
        metrics
    )

    model = twin.load(tmp_path / "model")
    body, content_type = twin.invoke(model, b"39.1,18.7,181,3750\n46.5,14.5,213,4400\n", "text/csv", "application/json")
    assert content_type == "application/json"
    predictions = json.loads(body)["predictions"]
    assert [p["predicted_label"] for p in predictions] == [0, 2]  # an Adelie, a Gentoo
    for prediction in predictions:
        assert set(prediction) == {"score", "predicted_label"}
        assert len(prediction["score"]) == 3 and sum(prediction["score"]) == pytest.approx(1.0)
        assert prediction["predicted_label"] == int(np.argmax(prediction["score"]))


def test_binary_twin_answers_a_probability_and_a_label(tmp_path: Path, data: tuple[np.ndarray, np.ndarray]) -> None:
    x, species = data
    y = (species == 0).astype(np.float64)  # Adelie or not
    hyperparameters = _hyperparameters(DataFacts("binary", 2, 4, len(y)))
    metrics = _metrics(twin.train(_channels(tmp_path, y, x), hyperparameters, tmp_path / "model"))
    assert metrics["validation:binary_classification_accuracy"] >= 0.9
    assert metrics["validation:roc_auc_score"] >= 0.95
    model = twin.load(tmp_path / "model")
    request = (
        b'{"instances": [{"features": [39.1, 18.7, 181, 3750]}, {"data": {"features": {"values": [46.5, 14.5, 213, 4400]}}}]}'
    )
    body, content_type = twin.invoke(model, request, "application/json", "application/jsonlines")
    assert content_type == "application/jsonlines"
    records = [json.loads(line) for line in body.decode().splitlines()]
    assert [set(record) for record in records] == [{"score", "predicted_label"}] * 2
    assert records[0]["predicted_label"] == 1 and records[0]["score"] > 0.5
    assert records[1]["predicted_label"] == 0 and records[1]["score"] < 0.5


def test_regression_twin_answers_a_score_only(tmp_path: Path, data: tuple[np.ndarray, np.ndarray]) -> None:
    x, _ = data
    y, features = x[:, 3], x[:, :3]  # body mass from the other measurements
    hyperparameters = _hyperparameters(DataFacts("regression", 0, 3, len(y)))
    metrics = _metrics(twin.train(_channels(tmp_path, y, features), hyperparameters, tmp_path / "model"))
    assert metrics["validation:mse"] < 0.35 * float(np.var(y))  # explains most of the variance
    assert metrics["validation:objective_loss"] == pytest.approx(metrics["validation:mse"])
    body, _ = twin.invoke(twin.load(tmp_path / "model"), b"46.5,14.5,213\n", "text/csv", "application/json")
    (prediction,) = json.loads(body)["predictions"]
    assert set(prediction) == {"score"}
    assert 3500 < prediction["score"] < 6000


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"predictor_type": "classifier"}, "predictor_type: invalid value 'classifier'"),
        ({"epochs": "0"}, r"epochs: value 0 out of range; expected an integer in \[1, inf\]"),
        ({"learning_rate": "fast"}, "learning_rate: invalid value 'fast'; expected 'auto' or a number"),
        ({"loss": "hinge_loss"}, "loss: hinge_loss is not valid for multiclass_classifier"),
        ({"num_classes": "2"}, "num_classes: value 2 out of range"),
        ({"max_depth": "3"}, "unknown hyperparameter 'max_depth'"),
        ({"feature_dim": "5"}, "train channel has 4 feature columns but feature_dim is 5"),
    ],
)
def test_bad_hyperparameters_fail_the_job_with_a_clear_message(
    tmp_path: Path, data: tuple[np.ndarray, np.ndarray], change: dict[str, str], message: str
) -> None:
    x, y = data
    hyperparameters = {**_hyperparameters(DataFacts("multiclass", 3, 4, len(y))), **change}
    with pytest.raises(ClientError, match=message):
        twin.train(_channels(tmp_path, y, x), hyperparameters, tmp_path / "model")


def test_missing_requirements_and_bad_data_are_client_errors(tmp_path: Path, data: tuple[np.ndarray, np.ndarray]) -> None:
    x, y = data
    channels = _channels(tmp_path, y, x)
    with pytest.raises(ClientError, match="Missing required hyperparameter"):
        twin.train(channels, {"feature_dim": "4"}, tmp_path / "m1")
    with pytest.raises(ClientError, match="num_classes is required"):
        twin.train(channels, {"predictor_type": "multiclass_classifier"}, tmp_path / "m2")
    with pytest.raises(ClientError, match=r"labels must be 0 or 1"):
        twin.train(channels, {"predictor_type": "binary_classifier"}, tmp_path / "m3")
    holes = x.copy()
    holes[3, 1] = np.nan
    with pytest.raises(ClientError, match="does not accept missing values"):
        twin.train({"train": write_channel(tmp_path / "holes", y, holes)}, {"predictor_type": "regressor"}, tmp_path / "m4")


def test_invoke_refuses_what_the_container_does_not_take(tmp_path: Path, data: tuple[np.ndarray, np.ndarray]) -> None:
    x, y = data
    twin.train(_channels(tmp_path, y, x), _hyperparameters(DataFacts("multiclass", 3, 4, len(y))), tmp_path / "model")
    model = twin.load(tmp_path / "model")
    with pytest.raises(ValueError, match="accepts text/csv, application/json, application/jsonlines"):
        twin.invoke(model, b"1,2,3,4", "text/libsvm", "application/json")
    with pytest.raises(ValueError, match="answers application/json, application/jsonlines"):
        twin.invoke(model, b"1,2,3,4", "text/csv", "text/csv")
    with pytest.raises(ValueError, match="feature_dim=4"):
        twin.invoke(model, b"1,2,3", "text/csv", "application/json")
