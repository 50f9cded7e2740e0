"""The LightGBM and CatBoost twins: train on small seeded data, log the lines the MetricDefinitions
parse, answer /invocations like the JumpStart inference scripts."""

from __future__ import annotations

import json
import re
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
from datadrop import algorithms
from datadrop.algorithms.jumpstart import JumpStartAlgorithm, encode_hyperparameters
from datadrop.local.twins import ClientError, module

pytest.importorskip("lightgbm")
pytest.importorskip("catboost")

FAST = {
    "lightgbm": {"num_boost_round": "60", "learning_rate": "0.2", "min_data_in_leaf": "5"},
    "catboost": {"iterations": "60", "learning_rate": "0.2"},
}


def make_data(problem_type: str, rows: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, 4))
    if problem_type == "regression":
        return x, 3 * x[:, 0] - 2 * x[:, 1] + rng.normal(scale=0.1, size=rows)
    if problem_type == "binary":
        return x, (x[:, 0] + x[:, 1] > 0).astype(float)
    return x, np.digitize(x[:, 0], [-0.5, 0.5]).astype(float)


def write_channel(directory: Path, x: np.ndarray, y: np.ndarray) -> Path:
    directory.mkdir(parents=True)
    lines = [",".join([f"{label:g}", *(f"{v:.5f}" for v in row)]) for label, row in zip(y, x, strict=True)]
    lines[0] = lines[0].rsplit(",", 1)[0] + ","  # one missing value
    (directory / "part-0.csv").write_text("\n".join(lines) + "\n")
    return directory


def request(name: str, problem_type: str, **overrides: str) -> dict[str, str]:
    algorithm = algorithms.get(name)
    assert isinstance(algorithm, JumpStartAlgorithm)
    plain = {**algorithm.default_hyperparameters(problem_type), **FAST[name], **overrides, **algorithm.derived_for(problem_type)}
    return algorithm.training("us-east-1", plain).hyperparameters


def train(name: str, problem_type: str, tmp_path: Path, **overrides: str) -> tuple[ModuleType, list[dict[str, object]], Path]:
    twin = module(name)
    x, y = make_data(problem_type, 400, 0)
    xv, yv = make_data(problem_type, 150, 1)
    channels = {"train": write_channel(tmp_path / "train", x, y), "validation": write_channel(tmp_path / "validation", xv, yv)}
    metrics = twin.train(channels, request(name, problem_type, **overrides), tmp_path / "model")
    return twin, metrics, tmp_path / "model"


SANE = {  # metric name → (bound, larger is better)
    ("lightgbm", "binary"): ("validation:binary_logloss", 0.35, False),
    ("lightgbm", "multiclass"): ("validation:multi_logloss", 0.4, False),
    ("lightgbm", "regression"): ("validation:rmse", 0.8, False),
    ("catboost", "binary"): ("validation:AUC", 0.95, True),
    ("catboost", "multiclass"): ("validation:MultiClass", 0.4, False),
    ("catboost", "regression"): ("validation:RMSE", 0.8, False),
}


@pytest.mark.parametrize(("name", "problem_type"), list(SANE))
def test_trains_to_a_sane_score_and_logs_what_the_metric_definitions_read(
    name: str, problem_type: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, metrics, _ = train(name, problem_type, tmp_path)
    metric, bound, larger_is_better = SANE[(name, problem_type)]
    value = next(float(m["Value"]) for m in metrics if m["MetricName"] == metric)  # type: ignore[arg-type]
    assert (value >= bound) if larger_is_better else (value <= bound), (metric, value)

    # SageMaker's view: the last match of each MetricDefinitions regex in the job's log
    algorithm = algorithms.get(name)
    definitions = algorithm.training(
        "us-east-1", algorithm.plain_hyperparameters(request(name, problem_type))
    ).algorithm_specification["MetricDefinitions"]
    log = capsys.readouterr().out
    parsed: dict[str, float] = {}
    for definition in definitions:
        for line in log.splitlines():
            match = re.search(definition["Regex"], line)
            if match:
                parsed[definition["Name"]] = float(match.group(1))
    for m in metrics:
        assert parsed[str(m["MetricName"])] == pytest.approx(float(m["Value"]), rel=1e-4)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", list(FAST))
@pytest.mark.parametrize(("problem_type", "classes"), [("binary", 2), ("multiclass", 3), ("regression", 0)])
def test_invoke_answers_like_the_jumpstart_inference_script(name: str, problem_type: str, classes: int, tmp_path: Path) -> None:
    twin, _, model_dir = train(name, problem_type, tmp_path)
    model = twin.load(model_dir)
    x, _ = make_data(problem_type, 5, 7)
    body = "\n".join(",".join(f"{v:.4f}" for v in row) for row in x).encode()
    answer, content_type = twin.invoke(model, body, "text/csv", "application/json")
    assert content_type == "application/json"
    decoded = json.loads(answer)
    response = algorithms.get(name).response
    assert response is not None
    if problem_type == "regression":
        assert list(decoded) == [response.prediction_key]
        assert len(decoded["prediction"]) == 5
    else:
        probabilities = np.array(decoded[response.probabilities_key])
        assert probabilities.shape == (5, classes)
        assert np.allclose(probabilities.sum(axis=1), 1.0)
        verbose = json.loads(twin.invoke(model, body, "text/csv", "application/json;verbose")[0])
        assert verbose["labels"] == list(range(classes))
        assert verbose["predicted_label"] == list(np.argmax(probabilities, axis=1))


@pytest.mark.parametrize("name", list(FAST))
def test_bad_requests_say_what_is_wrong(name: str, tmp_path: Path) -> None:
    twin, _, model_dir = train(name, "binary", tmp_path)
    model = twin.load(model_dir)
    with pytest.raises(ValueError, match="text/csv"):
        twin.invoke(model, b'{"x": 1}', "application/json", "application/json")
    with pytest.raises(ValueError, match="expects 4"):
        twin.invoke(model, b"1,2,3", "text/csv", "application/json")
    with pytest.raises(ValueError, match="not a number"):
        twin.invoke(model, b"1,2,x,4", "text/csv", "application/json")
    with pytest.raises(ValueError, match="accept"):
        twin.invoke(model, b"1,2,3,4", "text/csv", "text/csv")


def test_bad_hyperparameters_and_data_are_client_errors(tmp_path: Path) -> None:
    lightgbm, catboost = module("lightgbm"), module("catboost")
    x, y = make_data("binary", 50, 0)
    channels = {"train": write_channel(tmp_path / "train", x, y)}
    with pytest.raises(ClientError, match="num_boost_round"):
        lightgbm.train(channels, encode_hyperparameters({"num_boost_round": "0", "metric": "binary_logloss"}), tmp_path / "m1")
    with pytest.raises(ClientError, match="Invalid hyperparameters"):
        lightgbm.train(channels, encode_hyperparameters({"num_leaves": "many"}), tmp_path / "m2")
    with pytest.raises(ClientError, match="thread_count"):
        catboost.train(channels, encode_hyperparameters({"thread_count": "0", "eval_metric": "AUC"}), tmp_path / "m3")
    with pytest.raises(ClientError, match="train"):
        catboost.train({}, encode_hyperparameters({"eval_metric": "AUC"}), tmp_path / "m4")
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "part-0.csv").write_text("0.5,1,2\n1.5,3,4\n2.5,5,6\n")
    with pytest.raises(ClientError, match="integers"):
        catboost.train({"train": bad}, encode_hyperparameters({"eval_metric": "AUC"}), tmp_path / "m5")


def test_without_validation_a_fifth_of_train_is_held_out(tmp_path: Path) -> None:
    x, y = make_data("regression", 300, 0)
    metrics = module("lightgbm").train(
        {"train": write_channel(tmp_path / "train", x, y)},
        encode_hyperparameters({"num_boost_round": "40", "learning_rate": "0.2", "metric": "rmse", "min_data_in_leaf": "5"}),
        tmp_path / "model",
    )
    assert {m["MetricName"] for m in metrics} == {"validation:rmse", "train:rmse"}
