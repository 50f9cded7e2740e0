"""Factorization Machines: the algorithm's declarations and its local twin (training on RecordIO-protobuf
written by datadrop.recordio, test-channel metrics, /invocations answers, clear errors)."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import numpy as np
import pytest
from datadrop import algorithms, recordio
from datadrop.algorithms import AlgorithmError, DataFacts
from datadrop.algorithms.base import RECORDIO_PROTOBUF
from datadrop.local import twins
from datadrop.local.twins import ClientError
from datadrop.local.twins import factorization_machines as twin

FM = algorithms.get("factorization-machines")


def _write_channel(directory: Path, x: np.ndarray, y: np.ndarray | None) -> Path:
    directory.mkdir(parents=True)
    out = io.BytesIO()
    labels = [None] * len(x) if y is None else [float(v) for v in y]
    recordio.write_records(zip(labels, x.tolist(), strict=True), out)
    (directory / "part-0.rec").write_bytes(out.getvalue())
    return directory


def _interaction_problem(rows: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Features in [-1, 1]; the target has a linear part and a pairwise interaction (x0 * x1)."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, size=(rows, 4))
    return x, 0.5 + 1.5 * x[:, 0] - x[:, 2] + 2.0 * x[:, 0] * x[:, 1]


TRAINING = {"num_factors": "4", "epochs": "60", "mini_batch_size": "32", "linear_lr": "0.05", "factors_lr": "0.05"}


def test_declarations() -> None:
    assert FM.title == "Factorization Machines" and "factorization-machines" in algorithms.names()
    assert FM.problem_types == {"binary", "regression"}
    assert FM.training_content_type == RECORDIO_PROTOBUF == "application/x-recordio-protobuf"
    assert FM.serving == "pipeline" and FM.response is not None
    assert (FM.response.request_content_type, FM.response.accept) == ("application/json", "application/json")
    assert (FM.response.records_key, FM.response.score_key, FM.response.label_key) == ("predictions", "score", "predicted_label")
    launch = FM.training("us-east-1", {"num_factors": "16"})
    assert launch.algorithm_specification == {
        "TrainingImage": "382416733822.dkr.ecr.us-east-1.amazonaws.com/factorization-machines:1",
        "TrainingInputMode": "File",
    }
    assert FM.inference_container("eu-west-1", "s3://b/m.tar.gz", "binary")["Image"].endswith(
        ".amazonaws.com/factorization-machines:1"
    )
    assert set(FM.default_hyperparameters("binary")) >= {"num_factors", "epochs", "mini_batch_size"}
    assert FM.derived_hyperparameters(DataFacts("binary", 2, 7, 100)) == {
        "feature_dim": "7",
        "predictor_type": "binary_classifier",
    }
    assert FM.derived_hyperparameters(DataFacts("regression", 0, 3, 100)) == {"feature_dim": "3", "predictor_type": "regressor"}


def test_the_twin_takes_the_declared_defaults_and_derived_values() -> None:
    merged = FM.default_hyperparameters("binary") | FM.derived_hyperparameters(DataFacts("binary", 2, 4, 50))
    assert twin.parse_hyperparameters(merged)["num_factors"] == 16


def test_multiclass_and_tuning_are_refused_with_reasons() -> None:
    with pytest.raises(AlgorithmError, match="does not support multiclass"):
        FM.derived_hyperparameters(DataFacts("multiclass", 3, 4, 100))
    with pytest.raises(AlgorithmError, match="test channel only"):
        FM.tuning_objective("binary")
    with pytest.raises(AlgorithmError, match="test:rmse"):
        FM.tuning_objective("regression")


def test_the_twin_module_is_found_by_the_registry() -> None:
    assert twins.module("factorization-machines") is twin


def test_regression_learns_the_interaction(tmp_path: Path) -> None:
    x, y = _interaction_problem(800, seed=1)
    x_test, y_test = _interaction_problem(300, seed=2)
    channels = {"train": _write_channel(tmp_path / "train", x, y), "test": _write_channel(tmp_path / "test", x_test, y_test)}
    metrics = twin.train(channels, TRAINING | {"feature_dim": "4", "predictor_type": "regressor"}, tmp_path / "model")
    assert [m["MetricName"] for m in metrics] == ["test:rmse"]
    assert metrics[0]["Value"] < 0.35 * float(np.std(y_test))  # a linear model alone leaves ~0.53 std (the x0*x1 term)
    assert (tmp_path / "model" / "model_algo-1").is_file()

    model = twin.load(tmp_path / "model")
    body = json.dumps({"instances": [{"features": row} for row in x_test[:3].tolist()]}).encode()
    answer, content_type = twin.invoke(model, body, "application/json", "application/json")
    predictions = json.loads(answer)["predictions"]
    assert content_type == "application/json" and len(predictions) == 3
    assert all(set(p) == {"score"} for p in predictions)  # regression: the score only (fm-in-formats.md)
    np.testing.assert_allclose([p["score"] for p in predictions], y_test[:3], atol=0.5)


def test_binary_classification_scores_and_labels(tmp_path: Path) -> None:
    x, target = _interaction_problem(800, seed=3)
    x_test, target_test = _interaction_problem(300, seed=4)
    y, y_test = (target > 0.5).astype(float), (target_test > 0.5).astype(float)
    channels = {"train": _write_channel(tmp_path / "train", x, y), "test": _write_channel(tmp_path / "test", x_test, y_test)}
    metrics = {
        m["MetricName"]: m["Value"]
        for m in twin.train(channels, TRAINING | {"feature_dim": "4", "predictor_type": "binary_classifier"}, tmp_path / "m")
    }
    assert set(metrics) == {
        "test:binary_classification_accuracy",
        "test:binary_classification_cross_entropy",
        "test:binary_f_beta",
    }
    assert metrics["test:binary_classification_accuracy"] > 0.85
    assert metrics["test:binary_classification_cross_entropy"] < 0.4
    assert metrics["test:binary_f_beta"] > 0.85

    model = twin.load(tmp_path / "m")
    body = json.dumps({"instances": [{"data": {"features": {"values": row}}} for row in x_test[:5].tolist()]}).encode()
    predictions = json.loads(twin.invoke(model, body, "application/json; charset=utf-8", "application/json")[0])["predictions"]
    assert all(set(p) == {"score", "predicted_label"} for p in predictions)
    assert all(p["predicted_label"] == int(p["score"] >= 0.5) and 0 < p["score"] < 1 for p in predictions)

    framed = io.BytesIO()
    recordio.write_records(((None, row) for row in x_test[:5].tolist()), framed)
    answer, content_type = twin.invoke(
        model, framed.getvalue(), "application/x-recordio-protobuf", "application/x-recordio-protobuf"
    )
    assert content_type == "application/x-recordio-protobuf"
    decoded = [recordio.decode_record(p) for p in recordio.iter_payloads(answer)]
    assert [features for features, _label in decoded] == [{}] * 5
    assert [label["predicted_label"][0] for _f, label in decoded] == [float(p["predicted_label"]) for p in predictions]
    np.testing.assert_allclose([label["score"][0] for _f, label in decoded], [p["score"] for p in predictions], rtol=1e-6)

    lines, content_type = twin.invoke(model, body, "application/json", "application/jsonlines")
    assert content_type == "application/jsonlines" and [json.loads(line) for line in lines.decode().splitlines()] == predictions


def test_without_a_test_channel_there_are_no_metrics(tmp_path: Path) -> None:
    x, y = _interaction_problem(50, seed=5)
    hyperparameters = {"feature_dim": "4", "num_factors": "2", "predictor_type": "regressor"}
    assert twin.train({"train": _write_channel(tmp_path / "train", x, y)}, hyperparameters, tmp_path / "m") == []


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"num_factors": None}, "Missing required hyperparameter(s): num_factors"),
        ({"predictor_type": "multiclass_classifier"}, "predictor_type must be binary_classifier or regressor"),
        ({"epochs": "0"}, "epochs must be a positive integer"),
        ({"epochs": "1.5"}, "epochs must be an integer"),
        ({"bias_lr": "-1"}, "bias_lr must be non-negative"),
        ({"linear_lr": "fast"}, "linear_lr must be a number"),
        ({"factors_init_method": "uniform"}, "factors_init_method uniform needs factors_init_scale"),
        ({"bias_init_method": "zeros"}, "bias_init_method must be one of normal, uniform, constant"),
        ({"max_depth": "3"}, "Unknown hyperparameter(s) for factorization-machines: max_depth"),
        ({"feature_dim": "5"}, "has 4 features; feature_dim is 5"),
    ],
)
def test_bad_hyperparameters_are_client_errors(tmp_path: Path, change: dict[str, str | None], message: str) -> None:
    x, y = _interaction_problem(20, seed=6)
    hyperparameters = {"feature_dim": "4", "num_factors": "2", "predictor_type": "regressor"} | change
    with pytest.raises(ClientError, match=r"^ClientError: .*" + re.escape(message)):
        twin.train(
            {"train": _write_channel(tmp_path / "train", x, y)},
            {k: v for k, v in hyperparameters.items() if v is not None},
            tmp_path / "m",
        )


def test_bad_data_is_a_client_error(tmp_path: Path) -> None:
    x, y = _interaction_problem(20, seed=7)
    hyperparameters = {"feature_dim": "4", "num_factors": "2", "predictor_type": "binary_classifier"}
    with pytest.raises(ClientError, match="binary_classifier labels must be 0 or 1"):
        twin.train({"train": _write_channel(tmp_path / "a", x, y)}, hyperparameters, tmp_path / "m")
    (tmp_path / "csv").mkdir()
    (tmp_path / "csv" / "part-0.csv").write_text("1,0.5,0.5,0.5,0.5\n")
    with pytest.raises(ClientError, match="as RecordIO-protobuf: bad RecordIO magic"):
        twin.train({"train": tmp_path / "csv"}, hyperparameters, tmp_path / "m")
    with pytest.raises(ClientError, match="has no label"):
        twin.train({"train": _write_channel(tmp_path / "b", x, None)}, hyperparameters, tmp_path / "m")
    with pytest.raises(ClientError, match="channels train and test .* unexpected validation"):
        twin.train(
            {"train": _write_channel(tmp_path / "c", x, (y > 0).astype(float)), "validation": tmp_path / "c"},
            hyperparameters,
            tmp_path / "m",
        )
    with pytest.raises(ClientError, match="Training diverged"):
        twin.train(
            {"train": _write_channel(tmp_path / "d", x * 1e6, y)},
            hyperparameters | {"predictor_type": "regressor", "linear_lr": "100", "factors_lr": "100", "epochs": "5"},
            tmp_path / "m",
        )


def test_bad_requests_say_what_is_supported(tmp_path: Path) -> None:
    x, y = _interaction_problem(20, seed=8)
    twin.train(
        {"train": _write_channel(tmp_path / "t", x, y)},
        {"feature_dim": "4", "num_factors": "2", "predictor_type": "regressor"},
        tmp_path / "m",
    )
    model = twin.load(tmp_path / "m")
    with pytest.raises(
        ValueError, match="Unsupported content type 'text/csv'.*application/json or application/x-recordio-protobuf"
    ):
        twin.invoke(model, b"1,2,3,4", "text/csv", "application/json")
    with pytest.raises(ValueError, match="Unsupported accept 'text/csv'"):
        twin.invoke(model, b'{"instances": [{"features": [1, 2, 3, 4]}]}', "application/json", "text/csv")
    with pytest.raises(ValueError, match="instance 0 has 3 features; the model expects 4"):
        twin.invoke(model, b'{"instances": [{"features": [1, 2, 3]}]}', "application/json", "application/json")
    with pytest.raises(ValueError, match='"instances"'):
        twin.invoke(model, b"[[1, 2, 3, 4]]", "application/json", "application/json")
    with pytest.raises(ValueError, match="not RecordIO-protobuf"):
        twin.invoke(model, b"garbage!", "application/x-recordio-protobuf", "application/json")
