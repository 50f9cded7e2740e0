"""The optional twins: AutoGluon-Tabular (datadrop[autogluon]) and TabTransformer (datadrop[torch]).

Each part is skipped, with the reason, when its extra is not installed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from datadrop.local.twins import ClientError

KINDS = ("binary", "multiclass", "regression")
MODEL_IDS = {
    "autogluon": {"classification": "autogluon-classification-ensemble", "regression": "autogluon-regression-ensemble"},
    "tabtransformer": {
        "classification": "pytorch-tabtransformerclassification-model",
        "regression": "pytorch-tabtransformerregression-model",
    },
}


def _rows(kind: str, n: int, rng: np.random.Generator) -> np.ndarray:
    """Penguin-like: three measurements and an island code (0, 1, 2) that matters."""
    x = rng.normal(size=(n, 4))
    x[:, 3] = rng.integers(0, 3, size=n)
    if kind == "regression":
        y = 3 * x[:, 0] + x[:, 1] + x[:, 3] + rng.normal(scale=0.1, size=n)
    elif kind == "binary":
        y = (x[:, 0] + x[:, 1] > 0).astype(float)
    else:
        y = np.digitize(x[:, 0] + 0.5 * (x[:, 3] - 1), [-0.6, 0.6]).astype(float)
    return np.column_stack([y, x])


def _write(path: Path, rows: np.ndarray) -> None:
    path.mkdir(parents=True, exist_ok=True)
    lines = [
        ",".join([f"{int(r[0])}" if float(r[0]).is_integer() else repr(float(r[0]))] + [f"{v:.6g}" for v in r[1:]]) for r in rows
    ]
    (path / "data.csv").write_text("\n".join(lines) + "\n")


def _jumpstart_channel(root: Path, kind: str, seed: int = 0) -> Path:
    """The JumpStart layout: one `training` channel with train/, validation/ and categorical_index.json."""
    rng = np.random.default_rng(seed)
    _write(root / "train", _rows(kind, 400, rng))
    _write(root / "validation", _rows(kind, 150, rng))
    (root / "categorical_index.json").write_text(json.dumps({"cat_index_list": [4]}))
    return root


def _source(algorithm: str, kind: str) -> dict[str, str]:
    model_id = MODEL_IDS[algorithm]["regression" if kind == "regression" else "classification"]
    return {"sagemaker_submit_directory": json.dumps(f"s3://jumpstart-cache-prod-us-east-1/source/{model_id}/sourcedir.tar.gz")}


def _answer(twin: Any, model: Any, accept: str = "application/json") -> dict[str, Any]:
    body, content_type = twin.invoke(model, b"0.1,0.2,0.3,1\n1.5,,2,2\n-2,-1,0,0\n", "text/csv", accept)
    assert content_type == "application/json"
    answer: dict[str, Any] = json.loads(body)
    return answer


def _check_shapes(twin: Any, model: Any, kind: str) -> None:
    if kind == "regression":
        answer = _answer(twin, model, "application/json;verbose")
        assert list(answer) == ["prediction"] and len(answer["prediction"]) == 3
        # y = 3*x0 + x1 + island: the first row is about 1.5, the last about -7
        assert answer["prediction"][2] < answer["prediction"][0] < answer["prediction"][1]
        return
    classes = 2 if kind == "binary" else 3
    plain = _answer(twin, model)
    assert list(plain) == ["probabilities"]
    probabilities = np.asarray(plain["probabilities"])
    assert probabilities.shape == (3, classes)
    assert np.allclose(probabilities.sum(axis=1), 1.0)
    verbose = _answer(twin, model, "application/json;verbose")
    assert verbose["predicted_label"] == np.argmax(probabilities, axis=1).tolist()
    assert verbose["predicted_label"][2] == 0  # x0 = -2: class 0 in both problems


def _check_bad_requests(twin: Any, model: Any) -> None:
    with pytest.raises(ValueError, match="text/csv"):
        twin.invoke(model, b"1,2,3,4\n", "application/json", "application/json")
    with pytest.raises(ValueError, match="trained on 4"):
        twin.invoke(model, b"1,2,3\n", "text/csv", "application/json")
    with pytest.raises(ValueError, match="non-numeric"):
        twin.invoke(model, b"1,2,x,4\n", "text/csv", "application/json")
    with pytest.raises(ValueError, match="Accept"):
        twin.invoke(model, b"1,2,3,4\n", "text/csv", "text/csv")


# ---------------------------------------------------------------- TabTransformer


@pytest.fixture(scope="module")
def tabtransformer() -> Any:
    pytest.importorskip("torch", reason="the TabTransformer twin needs the torch extra: pip install 'datadrop[torch]'")
    from datadrop.local.twins import tabtransformer as twin

    return twin


TT_FAST = {"n_epochs": "20", "batch_size": "64", "input_dim": '"16"', "n_blocks": "1", "learning_rate": "0.005"}


@pytest.mark.parametrize(
    ("kind", "metric", "floor"),
    [("binary", "validation:f1", 0.9), ("multiclass", "validation:accuracy", 0.85), ("regression", "validation:r2", 0.95)],
)
def test_tabtransformer_trains_and_answers_like_jumpstart(
    tabtransformer: Any, tmp_path: Path, kind: str, metric: str, floor: float
) -> None:
    channel = _jumpstart_channel(tmp_path / "training", kind)
    metrics = tabtransformer.train(
        {"training": channel, "model": tmp_path / "dummy"}, {**TT_FAST, **_source("tabtransformer", kind)}, tmp_path / "model"
    )
    assert [m["MetricName"] for m in metrics] == [metric]
    assert metrics[0]["Value"] >= floor
    model = tabtransformer.load(tmp_path / "model")
    _check_shapes(tabtransformer, model, kind)
    if kind == "binary":
        _check_bad_requests(tabtransformer, model)


def test_tabtransformer_is_seeded(tabtransformer: Any, tmp_path: Path) -> None:
    channel = _jumpstart_channel(tmp_path / "training", "multiclass")
    hp = {**TT_FAST, "n_epochs": "3"}
    first = tabtransformer.train({"training": channel}, hp, tmp_path / "a")
    second = tabtransformer.train({"training": channel}, hp, tmp_path / "b")
    assert first == second


@pytest.mark.parametrize(
    ("hyperparameters", "message"),
    [
        ({"input_dim": '"24"'}, "input_dim"),
        ({"patience": "1"}, "patience"),
        ({"attn_dropout": "1.0"}, "attn_dropout"),
        ({"n_epochs": "two"}, "n_epochs"),
        ({"eval_metric": '"auc"'}, "Unknown hyperparameter"),
    ],
)
def test_tabtransformer_refuses_bad_hyperparameters(
    tabtransformer: Any, tmp_path: Path, hyperparameters: dict[str, str], message: str
) -> None:
    channel = _jumpstart_channel(tmp_path / "training", "binary")
    with pytest.raises(ClientError, match=message):
        tabtransformer.train({"training": channel}, hyperparameters, tmp_path / "model")


def test_tabtransformer_refuses_bad_data(tabtransformer: Any, tmp_path: Path) -> None:
    channel = _jumpstart_channel(tmp_path / "training", "binary")
    (channel / "categorical_index.json").write_text(json.dumps({"cat_index_list": [0]}))
    with pytest.raises(ClientError, match="0 is the label"):
        tabtransformer.train({"training": channel}, TT_FAST, tmp_path / "model")
    (channel / "categorical_index.json").unlink()
    _write(channel / "train", np.array([[0.5, 1.0, 2.0, 3.0, 0.0], [1.0, 1.0, 2.0, 3.0, 1.0]]))
    with pytest.raises(ClientError, match="class indices"):
        tabtransformer.train({"training": channel}, {**TT_FAST, **_source("tabtransformer", "binary")}, tmp_path / "model")
    with pytest.raises(ClientError, match="train/"):
        tabtransformer.train({"training": tmp_path / "empty"}, TT_FAST, tmp_path / "model")


# ---------------------------------------------------------------- AutoGluon-Tabular


@pytest.fixture(scope="module")
def autogluon() -> Any:
    pytest.importorskip(
        "autogluon.tabular", reason="the AutoGluon twin needs the autogluon extra: pip install 'datadrop[autogluon]'"
    )
    from datadrop.local.twins import autogluon as twin

    return twin


@pytest.mark.parametrize(
    ("kind", "metric", "floor"),
    [("binary", "roc_auc", 0.95), ("multiclass", "accuracy", 0.85), ("regression", "root_mean_squared_error", None)],
)
def test_autogluon_trains_and_answers_like_jumpstart(
    autogluon: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str, metric: str, floor: float | None
) -> None:
    if kind != "binary":  # the whole local model set once; LightGBM alone for the others, to stay fast
        monkeypatch.setattr(autogluon, "LOCAL_MODELS", {"GBM": {"num_boost_round": 100}})
    channel = _jumpstart_channel(tmp_path / "training", kind)
    metrics = autogluon.train({"training": channel}, {"verbosity": "0", **_source("autogluon", kind)}, tmp_path / "model")
    names = [m["MetricName"] for m in metrics]
    assert names == [f"validation:{metric}", f"train:{metric}"]
    value = metrics[0]["Value"]
    if floor is None:
        assert 0 < value < 1.0  # the noise is 0.1 and y spans about +-10: an error, positive
    else:
        assert value >= floor
    model = autogluon.load(tmp_path / "model")
    _check_shapes(autogluon, model, kind)
    if kind == "multiclass":
        _check_bad_requests(autogluon, model)


@pytest.mark.parametrize(
    ("hyperparameters", "message"),
    [
        ({"presets": '"fastest"'}, "presets"),
        ({"num_bag_folds": "1"}, "num_bag_folds"),
        ({"auto_stack": '"maybe"'}, "auto_stack"),
        ({"set_best_to_refit_full": '"True"'}, "refit_full"),
        ({"n_epochs": "3"}, "Unknown hyperparameter"),
        ({"eval_metric": '"no_such_metric"'}, "eval_metric"),
    ],
)
def test_autogluon_refuses_bad_hyperparameters(
    autogluon: Any, tmp_path: Path, hyperparameters: dict[str, str], message: str
) -> None:
    channel = _jumpstart_channel(tmp_path / "training", "binary")
    with pytest.raises(ClientError, match=message):
        autogluon.train({"training": channel}, hyperparameters, tmp_path / "model")


def test_autogluon_refuses_unknown_channels(autogluon: Any, tmp_path: Path) -> None:
    with pytest.raises(ClientError, match="Unsupported channel"):
        autogluon.train({"train": tmp_path, "test": tmp_path}, {}, tmp_path / "model")
