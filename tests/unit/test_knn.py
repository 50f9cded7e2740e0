"""k-NN: what datadrop sends SageMaker, and its local twin (train, load, invoke)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from datadrop import algorithms
from datadrop.algorithms import AlgorithmError, DataFacts
from datadrop.algorithms.images import first_party_image_uri
from datadrop.local.twins import ClientError
from datadrop.local.twins import knn as twin

from tests.unit._penguins import penguins, split, write_channel

KNN = algorithms.get("knn")


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    """Penguin measurements standardized (k-NN has no normalization of its own) and species."""
    x, y = penguins()
    return (x - x.mean(axis=0)) / x.std(axis=0), y


def _channels(tmp_path: Path, y: np.ndarray, x: np.ndarray) -> dict[str, Path]:
    train_rows, test_rows = split(len(y))
    return {
        "train": write_channel(tmp_path / "train", y[train_rows], x[train_rows]),
        "test": write_channel(tmp_path / "test", y[test_rows], x[test_rows]),
    }


def _hyperparameters(facts: DataFacts) -> dict[str, str]:
    return {**KNN.default_hyperparameters(facts.problem_type), **KNN.derived_hyperparameters(facts)}


def test_registered_under_its_config_name() -> None:
    assert "knn" in algorithms.names()
    assert KNN.title == "k-NN" and KNN.serving == "pipeline" and KNN.local_twin == "knn"


@pytest.mark.parametrize(
    ("facts", "predictor_type"),
    [
        (DataFacts("binary", 2, 5, 300), "classifier"),
        (DataFacts("multiclass", 4, 5, 300), "classifier"),
        (DataFacts("regression", 0, 5, 300), "regressor"),
    ],
)
def test_the_data_decides_predictor_type_feature_dim_and_sample_size(facts: DataFacts, predictor_type: str) -> None:
    assert KNN.derived_hyperparameters(facts) == {"predictor_type": predictor_type, "feature_dim": "5", "sample_size": "300"}
    assert _hyperparameters(facts)["k"] == "10"


def test_sample_size_is_capped_and_k_never_exceeds_it() -> None:
    assert KNN.derived_hyperparameters(DataFacts("binary", 2, 3, 5_000_000))["sample_size"] == "200000"
    tiny = KNN.derived_hyperparameters(DataFacts("regression", 0, 3, 6))
    assert (tiny["sample_size"], tiny["k"]) == ("6", "6")
    with pytest.raises(AlgorithmError, match="at least one training row"):
        KNN.derived_hyperparameters(DataFacts("binary", 2, 3, 0))


def test_rejects_a_problem_type_it_does_not_know() -> None:
    with pytest.raises(AlgorithmError, match="knn does not support forecasting"):
        KNN.default_hyperparameters("forecasting")


def test_training_request_uses_the_regions_image_in_file_mode_without_metric_definitions() -> None:
    launch = KNN.training("ap-southeast-2", {"k": "5"})
    assert launch.algorithm_specification == {
        "TrainingImage": first_party_image_uri("ap-southeast-2", "knn"),
        "TrainingInputMode": "File",
    }
    assert launch.algorithm_specification["TrainingImage"].endswith(".dkr.ecr.ap-southeast-2.amazonaws.com/knn:1")
    assert KNN.inference_container("us-west-2", "s3://b/m.tar.gz", "multiclass") == {
        "Image": first_party_image_uri("us-west-2", "knn"),
        "ModelDataUrl": "s3://b/m.tar.gz",
    }


def test_refuses_to_tune_on_the_test_channel() -> None:
    with pytest.raises(AlgorithmError, match="test:accuracy and test:mse.*never tunes on the test split"):
        KNN.tuning_objective("multiclass")


def test_response_format_is_json_lines_both_ways() -> None:
    assert KNN.response is not None
    assert (KNN.response.request_content_type, KNN.response.accept) == ("application/jsonlines", "application/jsonlines")
    assert (KNN.response.records_key, KNN.response.score_key, KNN.response.label_key) == (None, None, "predicted_label")


def test_classifier_twin_learns_penguin_species_and_round_trips(tmp_path: Path, data: tuple[np.ndarray, np.ndarray]) -> None:
    x, y = data
    metrics = twin.train(_channels(tmp_path, y, x), _hyperparameters(DataFacts("multiclass", 3, 4, 250)), tmp_path / "model")
    assert [m["MetricName"] for m in metrics] == ["test:accuracy"]
    assert metrics[0]["Value"] >= 0.9

    model = twin.load(tmp_path / "model")
    assert model.k == 10 and model.points.shape == (250, 4)
    rows = x[[0, int(np.flatnonzero(y == 2)[0])]]  # an Adelie, a Gentoo
    body, content_type = twin.invoke(
        model,
        "\n".join(json.dumps({"features": r.tolist()}) for r in rows).encode(),
        "application/jsonlines",
        "application/jsonlines",
    )
    assert content_type == "application/jsonlines"
    assert [json.loads(line) for line in body.decode().splitlines()] == [{"predicted_label": 0.0}, {"predicted_label": 2.0}]

    csv_body = "\n".join(",".join(str(v) for v in r) for r in rows).encode()
    body, content_type = twin.invoke(model, csv_body, "text/csv", "application/json")
    assert content_type == "application/json"
    assert json.loads(body) == {"predictions": [{"predicted_label": 0.0}, {"predicted_label": 2.0}]}


def test_binary_classifier_answers_labels_0_or_1(tmp_path: Path, data: tuple[np.ndarray, np.ndarray]) -> None:
    x, species = data
    y = (species == 2).astype(np.float64)
    metrics = twin.train(_channels(tmp_path, y, x), _hyperparameters(DataFacts("binary", 2, 4, 250)), tmp_path / "model")
    assert metrics[0]["Value"] >= 0.95
    gentoo = x[int(np.flatnonzero(species == 2)[0])]
    request = json.dumps(
        {"instances": [{"features": x[0].tolist()}, {"data": {"features": {"values": gentoo.tolist()}}}]}
    ).encode()
    body, _ = twin.invoke(twin.load(tmp_path / "model"), request, "application/json", "application/json")
    assert json.loads(body) == {"predictions": [{"predicted_label": 0.0}, {"predicted_label": 1.0}]}


def test_regressor_answers_the_mean_label_of_the_neighbours(tmp_path: Path) -> None:
    x = np.arange(20, dtype=np.float64)[:, None]
    y = 3.0 * x[:, 0]
    hyperparameters = {"predictor_type": "regressor", "feature_dim": "1", "sample_size": "20", "k": "3"}
    train = write_channel(tmp_path / "train", y, x)
    metrics = twin.train(
        {"train": train, "test": write_channel(tmp_path / "test", y[:5], x[:5])}, hyperparameters, tmp_path / "model"
    )
    assert metrics[0]["MetricName"] == "test:mse"
    body, _ = twin.invoke(twin.load(tmp_path / "model"), b"10\n", "text/csv", "application/jsonlines")
    assert json.loads(body) == {"predicted_label": pytest.approx(30.0)}  # neighbours 9, 10, 11 -> 27, 30, 33


def test_sample_size_samples_the_index(tmp_path: Path, data: tuple[np.ndarray, np.ndarray]) -> None:
    x, y = data
    hyperparameters = {"predictor_type": "classifier", "feature_dim": "4", "sample_size": "50", "k": "5"}
    twin.train({"train": write_channel(tmp_path / "train", y, x)}, hyperparameters, tmp_path / "model")
    assert twin.load(tmp_path / "model").points.shape == (50, 4)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"k": "0"}, r"k: value 0 out of range; expected an integer in \[1, inf\]"),
        ({"k": "three"}, "k: invalid value 'three'"),
        (
            {"predictor_type": "binary_classifier"},
            "predictor_type: invalid value 'binary_classifier'; expected one of classifier, regressor",
        ),
        ({"sample_size": "10", "k": "11"}, "k=11 exceeds the 10 points sampled"),
        ({"index_metric": "L1"}, "index_metric: invalid value 'L1'"),
        ({"dimension_reduction_type": "sign"}, "dimension_reduction_target is required"),
        ({"feature_dim": "3"}, "train channel has 4 feature columns but feature_dim is 3"),
        ({"epochs": "3"}, "unknown hyperparameter 'epochs'"),
    ],
)
def test_bad_hyperparameters_fail_the_job_with_a_clear_message(
    tmp_path: Path, data: tuple[np.ndarray, np.ndarray], change: dict[str, str], message: str
) -> None:
    x, y = data
    hyperparameters = {**_hyperparameters(DataFacts("multiclass", 3, 4, 250)), **change}
    with pytest.raises(ClientError, match=message):
        twin.train(_channels(tmp_path, y, x), hyperparameters, tmp_path / "model")


def test_required_hyperparameters_and_channels(tmp_path: Path, data: tuple[np.ndarray, np.ndarray]) -> None:
    x, y = data
    channels = _channels(tmp_path, y, x)
    with pytest.raises(ClientError, match="Missing required hyperparameter.*k, predictor_type, sample_size"):
        twin.train(channels, {"feature_dim": "4"}, tmp_path / "m1")
    hyperparameters = _hyperparameters(DataFacts("multiclass", 3, 4, 250))
    with pytest.raises(ClientError, match=r"Unsupported channel\(s\) \['validation'\]"):
        twin.train({**channels, "validation": channels["test"]}, hyperparameters, tmp_path / "m2")


def test_invoke_refuses_what_the_container_does_not_take(tmp_path: Path, data: tuple[np.ndarray, np.ndarray]) -> None:
    x, y = data
    twin.train(
        {"train": write_channel(tmp_path / "train", y, x)},
        _hyperparameters(DataFacts("multiclass", 3, 4, len(y))),
        tmp_path / "model",
    )
    model = twin.load(tmp_path / "model")
    with pytest.raises(ValueError, match="accepts text/csv, application/json, application/jsonlines"):
        twin.invoke(model, b"1,2,3,4", "application/x-recordio-protobuf", "application/json")
    with pytest.raises(ValueError, match="answers application/json, application/jsonlines"):
        twin.invoke(model, b"1,2,3,4", "text/csv", "text/csv")
    with pytest.raises(ValueError, match="feature_dim=4"):
        twin.invoke(model, b'{"features": [1, 2]}', "application/jsonlines", "application/jsonlines")
