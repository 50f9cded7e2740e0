"""Local twins of SageMaker XGBoost training, batch transform and endpoints: real xgboost, real HTTP."""

from __future__ import annotations

import io
import json
import tarfile
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from datadrop.local.endpoint import CONTAINER_ERROR_BODY, CONTAINER_ERROR_TYPE, LocalEndpoint
from datadrop.local.model import ModelFiles, load_inference_module
from datadrop.local.transform import run_batch_transform
from datadrop.local.twins.base import TrainingFailed
from datadrop.local.twins.xgboost import train as train_xgboost
from datadrop.serving import build_serving_bundle

COLUMNS = ["species", "island", "bill_length_mm", "flipper_length_mm"]
ISLANDS = ["Biscoe", "Dream", "Torgersen"]


def _recipe(classes: list[str]) -> dict[str, Any]:
    return {
        "format": "datadrop-recipe/1",
        "target": "species",
        "problem_type": "binary" if len(classes) == 2 else "multiclass",
        "classes": classes,
        "columns": COLUMNS,
        "features": [
            {"name": "bill_length_mm", "kind": "numeric", "fill": 45.0},
            {"name": "flipper_length_mm", "kind": "numeric", "fill": 200.0},
            {"name": "island", "kind": "categorical", "categories": ISLANDS},
        ],
        "missing_tokens": ["", "NA", "?"],
    }


def _raw(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """bill decides the class; flipper is noise; island is noise."""
    rng = np.random.default_rng(seed)
    return rng.uniform(30, 60, n), rng.uniform(170, 230, n), rng.integers(0, 3, n)


def _labels(bill: np.ndarray, n_classes: int) -> np.ndarray:
    return (bill > 45).astype(int) if n_classes == 2 else np.digitize(bill, [40, 50])


def _write_training_csv(path: Path, n: int, seed: int, n_classes: int) -> None:
    """The built-in algorithm's contract: headerless, label first, encoded features in recipe order."""
    bill, flipper, island = _raw(n, seed)
    y = _labels(bill, n_classes)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{c},{b:.3f},{f:.1f},{i}\n" for c, b, f, i in zip(y, bill, flipper, island)))


def _raw_holdout(n: int, n_classes: int, classes: list[str]) -> tuple[list[str], list[str]]:
    """Raw rows (as a client sends them, target first) away from the class boundaries, and truth."""
    bill, flipper, island = _raw(n * 3, seed=99)
    keep = np.min(np.abs(bill[:, None] - np.array([40.0, 45.0, 50.0])), axis=1) > 1.0
    bill, flipper, island = bill[keep][:n], flipper[keep][:n], island[keep][:n]
    truth = [classes[k] for k in _labels(bill, n_classes)]
    rows = [f"?,{ISLANDS[i]},{b:.2f},{f:.0f}" for b, f, i in zip(bill, flipper, island)]
    return rows, truth


@dataclass
class Trained:
    code_dir: Path
    model_dir: Path
    classes: list[str]
    metrics: list[dict]


def _train(root: Path, classes: list[str], hyperparameters: dict[str, str]) -> Trained:
    k = len(classes)
    _write_training_csv(root / "train" / "part-0.csv", 400, seed=1, n_classes=k)
    _write_training_csv(root / "validation.csv", 150, seed=2, n_classes=k)
    metrics = train_xgboost({"train": root / "train", "validation": root / "validation.csv"}, hyperparameters, root / "model")
    code_dir = root / "code"
    code_dir.mkdir()
    with tarfile.open(fileobj=io.BytesIO(build_serving_bundle(json.dumps(_recipe(classes)).encode())), mode="r:gz") as tar:
        tar.extractall(code_dir, filter="data")
    return Trained(code_dir, root / "model", classes, metrics)


@pytest.fixture(scope="module")
def binary(tmp_path_factory: pytest.TempPathFactory) -> Trained:
    hp = {"num_round": "30", "objective": "binary:logistic", "eta": "0.3", "max_depth": "3", "seed": "7"}
    return _train(tmp_path_factory.mktemp("binary"), ["no", "yes"], hp)


@pytest.fixture(scope="module")
def multi(tmp_path_factory: pytest.TempPathFactory) -> Trained:
    hp = {
        "num_round": "30",
        "objective": "multi:softprob",
        "num_class": "3",
        "eta": "0.3",
        "max_depth": "3",
        "subsample": "0.9",
        "min_child_weight": "1",
    }
    return _train(tmp_path_factory.mktemp("multi"), ["Adelie", "Chinstrap", "Gentoo"], hp)


def _predict(trained: Trained, rows: list[str]) -> list[str]:
    module = load_inference_module(trained.code_dir)
    model = module.model_fn(str(trained.model_dir))
    body, _ = module.output_fn(module.predict_fn(module.input_fn("\n".join(rows), "text/csv"), model), "text/csv")
    return body.split("\n")


# ----------------------------------------------------------------------------- training


def test_binary_model_learns(binary: Trained) -> None:
    rows, truth = _raw_holdout(200, 2, binary.classes)
    accuracy = np.mean([p == t for p, t in zip(_predict(binary, rows), truth)])
    assert accuracy > 0.9
    names = {m["MetricName"]: m["Value"] for m in binary.metrics}
    assert set(names) == {"train:error", "train:logloss", "validation:error", "validation:logloss"}
    assert names["validation:error"] < 0.1


def test_multiclass_model_learns(multi: Trained) -> None:
    rows, truth = _raw_holdout(200, 3, multi.classes)
    accuracy = np.mean([p == t for p, t in zip(_predict(multi, rows), truth)])
    assert accuracy > 0.9
    names = {m["MetricName"]: m["Value"] for m in multi.metrics}
    assert set(names) == {"train:merror", "train:mlogloss", "validation:merror", "validation:mlogloss"}
    assert 0 <= names["validation:mlogloss"] < 0.5


def test_training_is_deterministic(tmp_path: Path) -> None:
    _write_training_csv(tmp_path / "t.csv", 200, seed=3, n_classes=2)
    hp = {"num_round": "10", "objective": "binary:logistic", "subsample": "0.7", "seed": "5"}
    a = train_xgboost({"train": tmp_path / "t.csv"}, hp, tmp_path / "a")
    b = train_xgboost({"train": tmp_path / "t.csv"}, hp, tmp_path / "b")
    assert a == b
    assert (tmp_path / "a" / "xgboost-model").read_bytes() == (tmp_path / "b" / "xgboost-model").read_bytes()


def test_early_stopping_keeps_the_best_round(tmp_path: Path) -> None:
    import xgboost as xgb

    _write_training_csv(tmp_path / "t.csv", 200, seed=3, n_classes=2)
    _write_training_csv(tmp_path / "v.csv", 100, seed=4, n_classes=2)
    hp = {"num_round": "300", "objective": "binary:logistic", "eval_metric": "error,logloss", "early_stopping_rounds": "5"}
    metrics = train_xgboost({"train": tmp_path / "t.csv", "validation": tmp_path / "v.csv"}, hp, tmp_path / "m")
    booster = xgb.Booster()
    booster.load_model(bytearray((tmp_path / "m" / "xgboost-model").read_bytes()))
    assert booster.num_boosted_rounds() < 300
    assert {m["MetricName"] for m in metrics} == {"train:error", "train:logloss", "validation:error", "validation:logloss"}


def _fails(tmp_path: Path, hp: dict[str, str], data: str = "0,1.0,2\n1,3.0,4\n") -> TrainingFailed:
    (tmp_path / "t.csv").write_text(data)
    with pytest.raises(TrainingFailed) as err:
        train_xgboost({"train": tmp_path / "t.csv"}, hp, tmp_path / "m")
    assert err.value.reason.startswith("ClientError: ")
    assert not (tmp_path / "m" / "xgboost-model").exists()
    return err.value


def test_missing_num_round_fails_like_the_container(tmp_path: Path) -> None:
    err = _fails(tmp_path, {"objective": "binary:logistic"})
    assert str(err) == "ClientError: Missing required hyperparameter: num_round"


def test_unknown_hyperparameter_fails_naming_it(tmp_path: Path) -> None:
    err = _fails(tmp_path, {"num_round": "5", "n_estimators": "100"})
    assert isinstance(err, ValueError)
    assert "n_estimators" in str(err)


@pytest.mark.parametrize(
    "hp, match",
    [
        ({"num_round": "ten"}, "num_round: could not parse"),
        ({"num_round": "5", "eta": "1.5"}, r"eta: value 1.5 not in range \[0, 1\]"),
        ({"num_round": "5", "objective": "multi:softprob"}, "num_class"),
        ({"num_round": "5", "eval_metric": "accuracy"}, "accuracy"),
        ({"num_round": "5", "objective": "multi:softprob", "num_class": "2"}, None),
    ],
)
def test_bad_hyperparameters(tmp_path: Path, hp: dict[str, str], match: str | None) -> None:
    if match is None:  # a valid configuration: labels 0/1 with 2 classes trains fine
        train_xgboost({"train": _csv(tmp_path, "0,1.0,2\n1,3.0,4\n")}, hp, tmp_path / "m")
        return
    with pytest.raises(TrainingFailed, match=match):
        train_xgboost({"train": _csv(tmp_path, "0,1.0,2\n1,3.0,4\n")}, hp, tmp_path / "m")


def _csv(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "t.csv"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    "data, match",
    [
        ("0,1.0,2\n1,abc,4\n", r"Non-numeric value 'abc'.*line 2, column 2"),
        ("0,1.0,2\n,3.0,4\n", "Missing label .* row 2"),
        ("0,1.0,2\n2,3.0,4\n", "labels must be 0 or 1"),
    ],
)
def test_bad_data(tmp_path: Path, data: str, match: str) -> None:
    with pytest.raises(TrainingFailed, match=match):
        train_xgboost({"train": _csv(tmp_path, data)}, {"num_round": "3", "objective": "binary:logistic"}, tmp_path / "m")


def test_empty_channel(tmp_path: Path) -> None:
    (tmp_path / "train").mkdir()
    with pytest.raises(TrainingFailed, match="No data in train channel"):
        train_xgboost({"train": tmp_path / "train"}, {"num_round": "3"}, tmp_path / "m")


def test_missing_feature_values_are_allowed(tmp_path: Path) -> None:
    train_xgboost(
        {"train": _csv(tmp_path, "0,,2\n1,3.0,\n0,1,1\n")}, {"num_round": "2", "objective": "binary:logistic"}, tmp_path / "m"
    )
    assert (tmp_path / "m" / "xgboost-model").exists()


# ----------------------------------------------------------------------------- batch transform


def test_batch_transform_one_line_per_record(multi: Trained, tmp_path: Path) -> None:
    rows, truth = _raw_holdout(25, 3, multi.classes)
    # a quoted field with a comma and one with a newline: neither may split a record
    for i, quoted in ((3, '"Dre\nam"'), (4, '"Bis, coe"')):
        parts = rows[i].split(",")
        parts[1] = quoted
        rows[i] = ",".join(parts)
    (tmp_path / "in.csv").write_text("\n".join(rows) + "\n\n")
    n = run_batch_transform(
        ModelFiles.script(multi.code_dir, multi.model_dir), tmp_path / "in.csv", tmp_path / "out" / "pred.jsonl", batch_size=7
    )
    assert n == 25
    lines = (tmp_path / "out" / "pred.jsonl").read_text().splitlines()
    assert len(lines) == 25
    records = [json.loads(line) for line in lines]
    assert all(set(r["probabilities"]) == set(multi.classes) for r in records)
    assert np.mean([r["label"] == t for r, t in zip(records, truth)]) > 0.85


def test_batch_transform_csv_output_and_errors(binary: Trained, tmp_path: Path) -> None:
    (tmp_path / "in.csv").write_text("?,Biscoe,35,190\n?,Dream,55,190\n")
    n = run_batch_transform(
        ModelFiles.script(binary.code_dir, binary.model_dir), tmp_path / "in.csv", tmp_path / "out.csv", accept="text/csv"
    )
    assert n == 2
    assert (tmp_path / "out.csv").read_text() == "no\nyes\n"
    (tmp_path / "bad.csv").write_text("?,Biscoe,35,190\n?,Dream\n")
    with pytest.raises(ValueError, match="records 1-2 of bad.csv: row 2"):
        run_batch_transform(ModelFiles.script(binary.code_dir, binary.model_dir), tmp_path / "bad.csv", tmp_path / "o.csv")


# ----------------------------------------------------------------------------- endpoint


def _post(url: str, body: bytes, content_type: str | None = "text/csv", accept: str | None = None) -> tuple[int, str, str]:
    headers = {}
    if content_type:
        headers["Content-Type"] = content_type
    if accept:
        headers["Accept"] = accept
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.headers.get("Content-Type"), response.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.headers.get("Content-Type"), err.read().decode()


def test_endpoint_serves_pings_and_invocations(multi: Trained, binary: Trained) -> None:
    endpoint = LocalEndpoint(ModelFiles.script(multi.code_dir, multi.model_dir)).start()
    try:
        assert endpoint.url.startswith("http://127.0.0.1:") and endpoint.port > 0
        with urllib.request.urlopen(endpoint.url + "/ping", timeout=5) as response:
            assert response.status == 200 and response.read() == b""

        raw = b"species,island,bill_length_mm\n,Biscoe,35\n,Dream,45\n,Torgersen,55\n"
        assert _post(endpoint.invocations_url, raw) == (200, "text/csv", "Adelie\nChinstrap\nGentoo")

        status, ctype, body = _post(
            endpoint.invocations_url, b'{"instances": [{"bill_length_mm": 58}]}', "application/json", "application/json"
        )
        assert (status, ctype) == (200, "application/json")
        assert json.loads(body)["predictions"][0]["label"] == "Gentoo"

        # Bad input, an unsupported Content-Type or Accept: the SageMaker XGBoost container wraps
        # whatever input_fn/output_fn raise into a 500 with Flask's generic page; so does this.
        for body, content_type, accept in [
            (b"Biscoe,35\n", "text/csv", None),
            (b"x", "application/x-protobuf", None),
            (b"Biscoe,35,190", "text/csv", "image/png"),
        ]:
            assert _post(endpoint.invocations_url, body, content_type, accept) == (
                500,
                CONTAINER_ERROR_TYPE,
                CONTAINER_ERROR_BODY.decode(),
            )

        # concurrent clients, and the server still answers after errors
        results: list[int] = []
        threads = [
            threading.Thread(target=lambda: results.append(_post(endpoint.invocations_url, b"Dream,45,200")[0])) for _ in range(8)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert results == [200] * 8

        blue = endpoint.model_url
        endpoint.swap(ModelFiles.script(binary.code_dir, binary.model_dir))
        assert _post(endpoint.invocations_url, raw) == (200, "text/csv", "no\nno\nyes")
        # blue/green: the new model has a server of its own; the old one stopped after the switch
        assert endpoint.model_url != blue
        with pytest.raises(urllib.error.URLError):
            urllib.request.urlopen(f"{blue}/ping", timeout=2)

        with pytest.raises(FileNotFoundError):
            endpoint.swap(ModelFiles.script(binary.code_dir.parent / "nowhere", binary.model_dir))
        assert _post(endpoint.invocations_url, raw)[0] == 200  # a failed swap keeps the old model
    finally:
        endpoint.stop()
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(f"http://127.0.0.1:{endpoint.port}/ping", timeout=2)


def test_two_endpoints_with_different_recipes_coexist(multi: Trained, binary: Trained) -> None:
    with (
        LocalEndpoint(ModelFiles.script(multi.code_dir, multi.model_dir)) as a,
        LocalEndpoint(ModelFiles.script(binary.code_dir, binary.model_dir)) as b,
    ):
        assert _post(a.invocations_url, b"Dream,58,200")[2] == "Gentoo"
        assert _post(b.invocations_url, b"Dream,58,200")[2] == "yes"
        assert _post(a.invocations_url, b"Dream,58,200")[2] == "Gentoo"


def test_swapping_models_fails_no_request_of_a_client_polling_meanwhile(multi: Trained, binary: Trained) -> None:
    """Blue/green: the endpoint's port answers every request while its model changes, back and forth."""
    with LocalEndpoint(ModelFiles.script(multi.code_dir, multi.model_dir)) as endpoint:
        answers: list[tuple[int, str]] = []
        stop = threading.Event()

        def poll() -> None:
            while not stop.is_set():
                status, _, body = _post(endpoint.invocations_url, b"Dream,58,200")
                answers.append((status, body))

        poller = threading.Thread(target=poll)
        poller.start()
        try:
            for trained in (binary, multi, binary):
                time.sleep(0.05)
                endpoint.swap(ModelFiles.script(trained.code_dir, trained.model_dir))
            time.sleep(0.05)
        finally:
            stop.set()
            poller.join()
    assert len(answers) > 10
    assert {status for status, _ in answers} == {200}
    assert {body for _, body in answers} == {"Gentoo", "yes"}
