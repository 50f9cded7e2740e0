"""The inference script that runs inside the SageMaker XGBoost container (and locally)."""

from __future__ import annotations

import ast
import csv
import io
import json
import subprocess
import sys
import tarfile
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest
import xgboost as xgb
from datadrop.local.model import load_inference_module
from datadrop.serving import INFERENCE_PROGRAM, INFERENCE_SOURCE, build_serving_bundle, container_environment

RECIPE: dict[str, Any] = {
    "format": "datadrop-recipe/1",
    "target": "species",
    "problem_type": "multiclass",
    "classes": ["Adelie", "Chinstrap", "Gentoo"],
    "columns": ["species", "island", "bill_length_mm", "flipper_length_mm", "sex"],
    "features": [
        {"name": "bill_length_mm", "kind": "numeric", "fill": 44.45},
        {"name": "flipper_length_mm", "kind": "numeric", "fill": 197.0},
        {"name": "island", "kind": "categorical", "categories": ["Biscoe", "Dream", "Torgersen", "Dream, North"]},
        {"name": "sex", "kind": "categorical", "categories": ["female", "male"]},
    ],
    "missing_tokens": ["", "NA", "N/A", "n/a", "NaN", "nan", "null", "NULL", "None", "?"],
    "dropped": ["id"],
}
FILL_BILL, FILL_FLIPPER = 44.45, 197.0


@pytest.fixture()
def inf() -> ModuleType:
    """A fresh copy of inference.py with RECIPE active (module state is per load)."""
    module = load_inference_module(INFERENCE_SOURCE.parent)
    module.use_recipe(RECIPE)
    return module


def _rows(matrix: np.ndarray) -> list[list[float]]:
    return [[round(float(v), 4) for v in row] for row in matrix]


# ----------------------------------------------------------------------------- encoding


def test_encode_numeric_rules(inf: ModuleType) -> None:
    enc = lambda v: inf.encode_row(RECIPE, {"bill_length_mm": v})[0]
    assert enc(" 39.1 ") == pytest.approx(39.1)
    assert enc("1e2") == 100.0
    for missing in ["", "NA", " NA ", "?", "null", "None", "nan", "NaN"]:
        assert enc(missing) == FILL_BILL, missing
    for junk in ["abc", "39,1", "inf", "-Infinity", "1.2.3"]:
        assert enc(junk) == FILL_BILL, junk  # unparsable or not finite -> fill


def test_encode_categorical_rules(inf: ModuleType) -> None:
    enc = lambda v: inf.encode_row(RECIPE, {"island": v})[2]
    assert enc("Biscoe") == 0.0
    assert enc(" Torgersen ") == 2.0
    assert enc("Dream, North") == 3.0
    assert enc("biscoe") == -1.0  # unseen (case matters)
    assert enc("") == -1.0
    assert enc("NA") == -1.0


def test_encode_row_absent_and_order(inf: ModuleType) -> None:
    assert inf.encode_row(RECIPE, {}) == [FILL_BILL, FILL_FLIPPER, -1.0, -1.0]
    row = {"sex": "male", "island": "Dream", "flipper_length_mm": "181", "bill_length_mm": "39.1", "species": "x"}
    assert inf.encode_row(RECIPE, row) == [39.1, 181.0, 1.0, 1.0]


# ----------------------------------------------------------------------------- input_fn


def test_csv_without_header_with_and_without_target(inf: ModuleType) -> None:
    body = "Adelie,Torgersen,39.1,181,male\n\nTorgersen,NA,abc,female\n"
    assert _rows(inf.input_fn(body, "text/csv")) == [[39.1, 181.0, 2.0, 1.0], [FILL_BILL, FILL_FLIPPER, 2.0, 0.0]]


def test_csv_target_position_is_ignored(inf: ModuleType) -> None:
    assert _rows(inf.input_fn("whatever,Biscoe,50,200,male", "text/csv")) == [[50.0, 200.0, 0.0, 1.0]]


def test_csv_header_maps_by_name(inf: ModuleType) -> None:
    body = "sex,island,species,bill_length_mm\nfemale,Dream,Gentoo,47.5\nmale,Biscoe,,\n"
    assert _rows(inf.input_fn(body.encode(), "text/csv; charset=utf-8")) == [
        [47.5, FILL_FLIPPER, 1.0, 0.0],
        [FILL_BILL, FILL_FLIPPER, 0.0, 1.0],
    ]


def test_csv_header_with_unknown_extra_column(inf: ModuleType) -> None:
    body = "id,bill_length_mm,flipper_length_mm,island,sex\n7,40,190,Dream,female\n"
    assert _rows(inf.input_fn(body, "text/csv")) == [[40.0, 190.0, 1.0, 0.0]]


def test_csv_quoted_commas_crlf_and_bom(inf: ModuleType) -> None:
    body = '\ufeffAdelie,"Dream, North",39.1,181,male\r\n"Dream, North",40,"190",female\r\n'
    assert _rows(inf.input_fn(body.encode(), "text/csv")) == [[39.1, 181.0, 3.0, 1.0], [40.0, 190.0, 3.0, 0.0]]


def test_a_value_longer_than_the_csv_module_s_default_limit_is_served() -> None:
    """prepare accepts values of any length; the csv module's default limit is 131,072 characters."""
    csv.field_size_limit(131_072)  # as a fresh process has it: loading the script must lift it
    module = load_inference_module(INFERENCE_SOURCE.parent)
    module.use_recipe(RECIPE)
    long_island = "Dream " * 50_000  # 300,000 characters: an unseen category
    body = f'Adelie,"{long_island}",39.1,181,male\n'
    assert _rows(module.input_fn(body, "text/csv")) == [[39.1, 181.0, -1.0, 1.0]]


def test_csv_bad_row_count_says_what_was_expected(inf: ModuleType) -> None:
    with pytest.raises(ValueError) as err:
        inf.input_fn("Adelie,Torgersen,39.1,181,male\nTorgersen,39.1\n", "text/csv")
    msg = str(err.value)
    assert "row 2" in msg
    assert "5 values (species,island,bill_length_mm,flipper_length_mm,sex)" in msg
    assert "4 values without the target 'species' (island,bill_length_mm,flipper_length_mm,sex)" in msg
    assert "received 2 values" in msg
    assert err.value.status_code == 400


def test_csv_header_row_length_mismatch(inf: ModuleType) -> None:
    with pytest.raises(ValueError, match="row 3 has 1 values but the header has 2"):
        inf.input_fn("island,sex\nDream,male\nDream\n", "text/csv")


def test_empty_body_is_an_error(inf: ModuleType) -> None:
    with pytest.raises(ValueError, match="no data rows"):
        inf.input_fn("\n\n", "text/csv")


def test_json_instances_and_list(inf: ModuleType) -> None:
    doc = {"instances": [{"island": "Biscoe", "bill_length_mm": 50, "flipper_length_mm": None, "sex": "male", "extra": 1}]}
    assert _rows(inf.input_fn(json.dumps(doc), "application/json")) == [[50.0, FILL_FLIPPER, 0.0, 1.0]]
    doc2 = [{"island": "Dream"}, {"bill_length_mm": 41.5}]
    assert _rows(inf.input_fn(json.dumps(doc2).encode(), "application/json")) == [
        [FILL_BILL, FILL_FLIPPER, 1.0, -1.0],
        [41.5, FILL_FLIPPER, -1.0, -1.0],
    ]


def test_json_integral_float_matches_integer_coded_category(inf: ModuleType) -> None:
    recipe = dict(RECIPE, features=[{"name": "island", "kind": "categorical", "categories": ["1", "2"]}])
    inf.use_recipe(recipe)
    assert _rows(inf.input_fn('{"instances": [{"island": 2.0}, {"island": 2}, {"island": "1"}]}', "application/json")) == [
        [1.0],
        [1.0],
        [0.0],
    ]


def test_jsonlines_input(inf: ModuleType) -> None:
    body = '{"island": "Dream", "bill_length_mm": "40"}\n\n{"island": "Biscoe"}\n'
    assert _rows(inf.input_fn(body, "application/jsonlines")) == [
        [40.0, FILL_FLIPPER, 1.0, -1.0],
        [FILL_BILL, FILL_FLIPPER, 0.0, -1.0],
    ]


def test_jsonlines_arrays_as_prepare_writes_the_test_split_keep_a_raw_line_separator_inside_a_value(inf: ModuleType) -> None:
    # the held-out test split: one JSON array of raw texts per line, the columns but the target in order
    inputs = [name for name in RECIPE["columns"] if name != RECIPE["target"]]
    row = {"island": "Dre\u2028am", "bill_length_mm": "40"}
    body = json.dumps([row.get(name, "") for name in inputs], ensure_ascii=False) + "\n"
    assert "\u2028" in body  # raw, as JSON leaves it: only "\n" ends a line
    assert _rows(inf.input_fn(body, "application/jsonlines")) == _rows(inf.input_fn(json.dumps(row), "application/jsonlines"))


@pytest.mark.parametrize(
    "body, match",
    [
        ("{not json", "not valid JSON"),
        ('{"rows": []}', "instances"),
        ('{"instances": [1]}', "must be an object"),
        ('{"instances": [{"island": [1]}]}', "strings, numbers or null"),
        ('{"instances": []}', "no instances"),
    ],
)
def test_json_errors(inf: ModuleType, body: str, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        inf.input_fn(body, "application/json")


def test_unsupported_content_type_names_supported_ones(inf: ModuleType) -> None:
    with pytest.raises(ValueError) as err:
        inf.input_fn(b"x", "application/x-protobuf")
    assert "text/csv" in str(err.value) and "application/json" in str(err.value)
    assert err.value.status_code == 415


# ----------------------------------------------------------------------------- output_fn

PROBS = np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]])


def test_output_csv(inf: ModuleType) -> None:
    assert inf.output_fn(PROBS, "text/csv") == ("Adelie\nGentoo", "text/csv")
    assert inf.output_fn(PROBS, "*/*")[1] == "text/csv"
    assert inf.output_fn(PROBS, None)[1] == "text/csv"


def test_output_csv_quotes_labels_with_commas(inf: ModuleType) -> None:
    inf.use_recipe(dict(RECIPE, classes=["a,b", "c", "d"]))
    assert inf.output_fn(PROBS, "text/csv")[0] == '"a,b"\nd'


def test_output_json(inf: ModuleType) -> None:
    body, ctype = inf.output_fn(PROBS, "application/json")
    assert ctype == "application/json"
    doc = json.loads(body)
    assert doc["predictions"][0]["label"] == "Adelie"
    assert doc["predictions"][1]["probabilities"] == pytest.approx({"Adelie": 0.1, "Chinstrap": 0.1, "Gentoo": 0.8})


def test_output_jsonlines(inf: ModuleType) -> None:
    body, ctype = inf.output_fn(PROBS, "application/jsonlines")
    assert ctype == "application/jsonlines"
    lines = [json.loads(line) for line in body.split("\n")]
    assert [r["label"] for r in lines] == ["Adelie", "Gentoo"]
    assert set(lines[0]["probabilities"]) == {"Adelie", "Chinstrap", "Gentoo"}


def test_output_accept_list_and_unsupported(inf: ModuleType) -> None:
    assert inf.output_fn(PROBS, "application/xml, application/json;q=0.9")[1] == "application/json"
    with pytest.raises(ValueError, match="supported: text/csv") as err:
        inf.output_fn(PROBS, "application/x-recordio-protobuf")
    assert err.value.status_code == 406


# ----------------------------------------------------------------------------- model_fn / predict_fn


def _write_model(model_dir: Path, recipe: dict[str, Any], multiclass: bool) -> None:
    rng = np.random.default_rng(1)
    x = rng.uniform(30, 60, size=(300, len(recipe["features"]))).astype(np.float32)
    if multiclass:
        y = np.digitize(x[:, 0], [40, 50])
        params = {"objective": "multi:softprob", "num_class": 3}
    else:
        y = (x[:, 0] > 45).astype(int)
        params = {"objective": "binary:logistic"}
    booster = xgb.train({**params, "nthread": 1, "seed": 0}, xgb.DMatrix(x, label=y), 10)
    model_dir.mkdir(parents=True, exist_ok=True)
    booster.save_model(str(model_dir / "xgboost-model.ubj"))
    (model_dir / "xgboost-model.ubj").rename(model_dir / "xgboost-model")
    (model_dir / "recipe.json").write_text(json.dumps(recipe))


def test_model_fn_falls_back_to_recipe_in_model_dir_and_predicts(tmp_path: Path) -> None:
    _write_model(tmp_path / "model", RECIPE, multiclass=True)
    module = load_inference_module(INFERENCE_SOURCE.parent)  # no recipe.json next to the source
    model = module.model_fn(str(tmp_path / "model"))
    probs = module.predict_fn(module.input_fn("Biscoe,35,190,male\nBiscoe,55,190,male\n", "text/csv"), model)
    assert probs.shape == (2, 3)
    assert np.allclose(probs.sum(axis=1), 1.0)
    assert module.output_fn(probs, "text/csv")[0] == "Adelie\nGentoo"


def test_binary_probabilities_are_one_minus_p_and_p(tmp_path: Path) -> None:
    recipe = dict(RECIPE, problem_type="binary", classes=["no", "yes"])
    _write_model(tmp_path / "model", recipe, multiclass=False)
    module = load_inference_module(INFERENCE_SOURCE.parent)
    model = module.model_fn(str(tmp_path / "model"))
    data = module.input_fn("Biscoe,35,190,male\nBiscoe,55,190,male\n", "text/csv")
    probs = module.predict_fn(data, model)
    p = model.booster.predict(xgb.DMatrix(data))
    assert np.allclose(probs, np.column_stack([1 - p, p]))
    assert module.output_fn(probs, "text/csv")[0] == "no\nyes"


def test_regression_answers_a_number_per_row_in_each_format(tmp_path: Path) -> None:
    recipe = dict(RECIPE, target="body_mass_g", problem_type="regression", classes=[])
    recipe["columns"] = ["body_mass_g", *RECIPE["columns"][1:]]
    rng = np.random.default_rng(2)
    x = rng.uniform(30, 60, size=(300, len(recipe["features"]))).astype(np.float32)
    booster = xgb.train({"objective": "reg:squarederror", "nthread": 1, "seed": 0}, xgb.DMatrix(x, label=100 * x[:, 0]), 20)
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    booster.save_model(str(model_dir / "xgboost-model.ubj"))
    (model_dir / "xgboost-model.ubj").rename(model_dir / "xgboost-model")
    (model_dir / "recipe.json").write_text(json.dumps(recipe))
    module = load_inference_module(INFERENCE_SOURCE.parent)
    model = module.model_fn(str(model_dir))
    data = module.input_fn("island,bill_length_mm,flipper_length_mm,sex\nBiscoe,35,190,male\nDream,55,,\n", "text/csv")
    values = module.predict_fn(data, model)
    raw = booster.predict(xgb.DMatrix(data))
    assert values.shape == (2, 1) and np.array_equal(values[:, 0], raw)
    expected = [float(str(value)) for value in raw]  # float32's shortest spelling
    assert np.float32(expected[0]) == raw[0] and 3000 < expected[0] < 4000 < expected[1]

    body, content_type = module.output_fn(values, "text/csv")
    assert content_type == "text/csv" and [float(line) for line in body.split("\n")] == expected
    assert body.split("\n")[0] == repr(expected[0])
    body, content_type = module.output_fn(values, "application/json")
    assert json.loads(body) == {"predictions": [{"value": value} for value in expected]}
    body, content_type = module.output_fn(values, "application/jsonlines")
    assert [json.loads(line) for line in body.splitlines()] == [{"value": value} for value in expected]


def test_model_and_recipe_must_agree(tmp_path: Path) -> None:
    _write_model(tmp_path / "model", RECIPE, multiclass=True)
    fewer = dict(RECIPE, features=RECIPE["features"][:2])
    (tmp_path / "model" / "recipe.json").write_text(json.dumps(fewer))
    module = load_inference_module(INFERENCE_SOURCE.parent)
    with pytest.raises(RuntimeError, match="model expects 4 features but the recipe lists 2"):
        module.model_fn(str(tmp_path / "model"))


# ----------------------------------------------------------------------------- the file itself and its bundle


def test_script_is_standalone_and_python38_compatible() -> None:
    source = INFERENCE_SOURCE.read_text()
    tree = ast.parse(source, feature_version=(3, 8))
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])
    third_party = imported - set(sys.stdlib_module_names) - {"__future__"}
    assert third_party == {"numpy", "xgboost", "sagemaker_inference"}  # the last one only if the container has it


def test_bundle_holds_script_and_recipe_and_is_deterministic() -> None:
    recipe_json = json.dumps(RECIPE).encode()
    bundle = build_serving_bundle(recipe_json)
    assert bundle == build_serving_bundle(recipe_json)
    with tarfile.open(fileobj=io.BytesIO(bundle), mode="r:gz") as tar:
        assert sorted(tar.getnames()) == [INFERENCE_PROGRAM, "recipe.json"]
        assert tar.extractfile(INFERENCE_PROGRAM).read() == INFERENCE_SOURCE.read_bytes()  # type: ignore[union-attr]
        assert tar.extractfile("recipe.json").read() == recipe_json  # type: ignore[union-attr]


def test_bundle_rejects_a_broken_recipe() -> None:
    with pytest.raises(ValueError, match="not valid JSON"):
        build_serving_bundle(b"{")
    with pytest.raises(ValueError, match="format"):
        build_serving_bundle(b'{"format": "other"}')
    with pytest.raises(ValueError, match="features"):
        build_serving_bundle(json.dumps({k: v for k, v in RECIPE.items() if k != "features"}).encode())


def test_container_environment() -> None:
    env = container_environment("s3://b/code/sourcedir.tar.gz")
    assert env["SAGEMAKER_PROGRAM"] == "inference.py"
    assert env["SAGEMAKER_SUBMIT_DIRECTORY"] == "s3://b/code/sourcedir.tar.gz"
    assert env["SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT"] == "text/csv"


def test_serving_package_imports_no_numpy() -> None:
    code = "import sys, datadrop.serving; assert 'numpy' not in sys.modules and 'xgboost' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, env={"PYTHONPATH": str(INFERENCE_SOURCE.parents[2])})


def test_the_stage_settings_names_agree_with_the_package_that_sets_them(inf: ModuleType) -> None:
    from datadrop import serving

    for name in ("STAGE_VARIABLE", "ALGORITHM_IO_VARIABLE", "PREPROCESS", "POSTPROCESS"):
        assert getattr(inf, name) == getattr(serving, name), name


def _stage(tmp_path: Path, stage: str, algorithm: str, recipe: dict[str, Any] = RECIPE) -> ModuleType:
    """inference.py loaded as a pipeline stage of `algorithm`, with the environment CreateModel gives it."""
    from datadrop import algorithms

    module = load_inference_module(INFERENCE_SOURCE.parent)
    (tmp_path / "recipe.json").write_text(json.dumps(recipe))
    environment = {"DATADROP_STAGE": stage, "DATADROP_ALGORITHM_IO": algorithms.get(algorithm).stage_settings()}
    module.stage_model = module.model_fn(str(tmp_path), environ=environment)
    return module


def _through(module: ModuleType, body: bytes | str, content_type: str, accept: str) -> str:
    text, _ = module.output_fn(module.predict_fn(module.input_fn(body, content_type), module.stage_model), accept)
    return str(text)


def test_preprocessing_writes_the_algorithms_request_format_standardised_where_it_trains_so(tmp_path: Path) -> None:
    raw = "Dream,40.0,190,male\n"  # island, bill, flipper, sex: the inputs without the target
    csv_features = _through(_stage(tmp_path, "preprocess", "linear-learner"), raw, "text/csv", "application/json")
    assert csv_features == "40.0,190.0,1.0,1.0"
    scaled_recipe = {**RECIPE, "standardise": {"mean": [40.0, 200.0, 1.0, 0.0], "scale": [2.0, 10.0, 1.0, 1.0]}}
    knn = _through(_stage(tmp_path, "preprocess", "knn", scaled_recipe), raw, "text/csv", "text/csv")
    assert json.loads(knn) == {"features": [0.0, -1.0, 0.0, 1.0]}  # JSON Lines, as k-NN's batch transform takes


def test_postprocessing_reads_each_answer_shape_into_the_datasets_labels(tmp_path: Path) -> None:
    binary = {**RECIPE, "problem_type": "binary", "classes": ["female", "male"]}
    learner = _stage(tmp_path, "postprocess", "linear-learner", binary)  # a binary score is P(class 1)
    answer = json.loads(
        _through(learner, '{"predictions": [{"score": 0.8, "predicted_label": 1}]}', "application/json", "application/json")
    )
    assert answer == {"predictions": [{"label": "male", "probabilities": {"female": pytest.approx(0.2), "male": 0.8}}]}
    boosted = _stage(tmp_path, "postprocess", "lightgbm")  # JumpStart: columns of class probabilities
    assert (
        _through(boosted, '{"probabilities": [[0.1, 0.2, 0.7], [0.6, 0.3, 0.1]]}', "application/json", "text/csv")
        == "Gentoo\nAdelie"
    )
    neighbours = _stage(tmp_path, "postprocess", "knn")  # labels only: no probabilities are made up
    assert _through(
        neighbours, '{"predicted_label": 1.0}\n{"predicted_label": 0.0}', "application/jsonlines", "application/jsonlines"
    ) == ('{"label": "Chinstrap"}\n{"label": "Adelie"}')
    with pytest.raises(ValueError, match="predicted class 7 of 3"):
        _through(neighbours, '{"predicted_label": 7}', "application/jsonlines", "text/csv")
