"""datadrop inference script for the SageMaker XGBoost container (script mode).

This file is shipped verbatim as ``inference.py`` inside ``sourcedir.tar.gz`` (see
``datadrop.serving.build_serving_bundle``) next to the data-prep step's ``recipe.json``.
The container imports it as the user module named by ``SAGEMAKER_PROGRAM`` and calls
``model_fn``/``input_fn``/``predict_fn``/``output_fn``; the local endpoint and local batch
transform call the very same functions, so local and AWS serve one code path.

Why standalone: the container has only its own Python (possibly 3.8), numpy and xgboost, so this
file imports nothing else (``sagemaker_inference`` only if the container has it) and keeps to
Python 3.8 syntax.

Status codes: in script mode the XGBoost container serves one model with sagemaker-containers'
Flask worker, whose Transformer wraps whatever ``input_fn``, ``predict_fn`` or ``output_fn`` raise
in a ``ClientError`` that nothing handles: every error below is an HTTP 500 with Flask's generic
page (the message goes to the endpoint's CloudWatch log), whatever its ``status_code``. The
``status_code`` matters only to servers that honour ``BaseInferenceToolkitError`` (the
multi-model server). The local endpoint answers as the container does.

Clients send RAW rows (the columns of the uploaded file); this script applies the recipe's
encoding, so callers never need to know how features were encoded for training.

Answers, one per row: classification gives the label (text/csv: one per line) or
``{"label": ..., "probabilities": {class: p}}`` (JSON: under "predictions"; JSON Lines: one per
line); regression gives the predicted number (text/csv: one per line) or ``{"value": x}`` in the
same places.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import pickle
import re
import sys
import threading
import warnings
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

RECIPE_FILE = "recipe.json"
MODEL_FILE = "xgboost-model"
RECIPE_FORMAT = "datadrop-recipe/1"
# An inference pipeline (every algorithm but XGBoost) runs this script twice, in the scikit-learn
# container: before the algorithm's container ("preprocess": raw rows in, encoded features out, in the
# algorithm's request format) and after it ("postprocess": the algorithm's answer in, labels and
# probabilities in the dataset's terms out). Which stage, and how the algorithm talks
# (datadrop.algorithms.base.ResponseFormat as JSON), come from the container's environment.
STAGE_VARIABLE = "DATADROP_STAGE"
ALGORITHM_IO_VARIABLE = "DATADROP_ALGORITHM_IO"
PREPROCESS = "preprocess"
POSTPROCESS = "postprocess"

CSV = "text/csv"
JSON = "application/json"
JSONLINES = "application/jsonlines"
INPUT_CONTENT_TYPES = (CSV, JSON, JSONLINES)
OUTPUT_CONTENT_TYPES = (CSV, JSON, JSONLINES)
DEFAULT_ACCEPT = CSV
_ALIASES = {
    "application/x-jsonlines": JSONLINES,
    "application/jsonl": JSONLINES,
    "application/x-ndjson": JSONLINES,
    "text/json": JSON,
}

# prepare accepts values of any length (a 5 MB field is among its tests), but the csv module refuses
# a field over 131,072 characters by default: lift the limit, so every value prepare took is served.
csv.field_size_limit(min(sys.maxsize, 2**31 - 1))

try:  # present in the SageMaker XGBoost container: lets us pick the HTTP status code there.
    from sagemaker_inference.errors import BaseInferenceToolkitError as _ToolkitError
except Exception:  # pragma: no cover - depends on the environment

    class _ToolkitError(Exception):  # type: ignore[no-redef]
        """Stand-in with the same attributes when the toolkit is not installed."""


class InvalidInput(ValueError, _ToolkitError):  # type: ignore[misc]
    """Bad request data (still a ValueError); the single-model container answers it with HTTP 500."""

    def __init__(self, message: str, status_code: int = 400) -> None:
        ValueError.__init__(self, message)
        self.status_code = status_code
        self.message = message
        self.phrase = message.replace("\r", " ").replace("\n", " ")[:200]

    def __str__(self) -> str:
        return self.message


class UnsupportedContentType(InvalidInput):
    """Unsupported request Content-Type: HTTP 415."""

    def __init__(self, message: str) -> None:
        InvalidInput.__init__(self, message, status_code=415)


class UnsupportedAccept(InvalidInput):
    """Unsupported Accept: HTTP 406."""

    def __init__(self, message: str) -> None:
        InvalidInput.__init__(self, message, status_code=406)


# --------------------------------------------------------------------------- recipe

# How a categorical feature's value is normalised before its lookup, by the name the recipe's
# feature carries ("normalise"); the same table as datadrop.recipe.CATEGORY_NORMALISATIONS.
CATEGORY_NORMALISATIONS = {"casefold": str.casefold}

# Dates as datadrop.roles reads them (DATETIME_PATTERN, parse_datetime, datetime_part; a test checks
# the two agree): YYYY-MM-DD or YYYY/MM/DD, optionally a time of day and a zone (ignored).
DATETIME_PATTERN = (
    r"([0-9]{4})[-/]([0-9]{2})[-/]([0-9]{2})"
    r"(?:[T ]([0-9]{2}):([0-9]{2})(?::([0-9]{2})(?:[.,][0-9]{1,9})?)?(?:Z|[+-][0-9]{2}(?::?[0-9]{2})?)?)?"
)
_DATETIME = re.compile(DATETIME_PATTERN)
DATETIME_PARTS = ("year", "month", "day", "day_of_week", "hour", "epoch_days")
_EPOCH_SHIFT = 719468  # days from 0000-03-01 to 1970-01-01
_NUMERIC, _CATEGORICAL, _BOOLEAN, _DATETIME_PART = range(4)


def parse_datetime(text: str) -> Optional[Tuple[int, int, int, int, int, int]]:
    """(year, month, day, hour, minute, second) of a stripped value, or None when it is not a date."""
    match = _DATETIME.fullmatch(text)
    if match is None:
        return None
    year, month, day, hour, minute, second = (int(g) if g else 0 for g in match.groups())
    if month == 2:
        month_days = 29 if (year % 4 == 0 and year % 100 != 0) or year % 400 == 0 else 28
    else:
        month_days = 30 if month in (4, 6, 9, 11) else 31
    if year < 1 or not 1 <= month <= 12 or not 1 <= day <= month_days or hour > 23 or minute > 59 or second > 59:
        return None
    return year, month, day, hour, minute, second


def datetime_part(parsed: Tuple[int, int, int, int, int, int], part: str) -> float:
    """year, month, day, hour; day_of_week (Monday 0); epoch_days (days since 1970-01-01, time as a fraction)."""
    year, month, day, hour, minute, second = parsed
    if part == "year":
        return float(year)
    if part == "month":
        return float(month)
    if part == "day":
        return float(day)
    if part == "hour":
        return float(hour)
    shifted = year - (1 if month <= 2 else 0)  # H. Hinnant's days_from_civil
    era = shifted // 400
    year_of_era = shifted - era * 400
    day_of_year = (153 * (month + (-3 if month > 2 else 9)) + 2) // 5 + day - 1
    days = era * 146097 + year_of_era * 365 + year_of_era // 4 - year_of_era // 100 + day_of_year - _EPOCH_SHIFT
    if part == "day_of_week":
        return float((days + _EPOCH_SHIFT + 2) % 7)
    return (days * 86400 + hour * 3600 + minute * 60 + second) / 86400


class CompiledRecipe:
    """The recipe with its lookups precomputed, so encoding a row is a few dict hits."""

    def __init__(self, recipe: Mapping[str, Any]) -> None:
        fmt = recipe.get("format", RECIPE_FORMAT)
        if fmt != RECIPE_FORMAT:
            raise ValueError("unsupported recipe format %r (expected %r)" % (fmt, RECIPE_FORMAT))
        for key in ("target", "classes", "columns", "features"):
            if key not in recipe:
                raise ValueError("recipe is missing %r" % key)
        self.recipe = recipe
        self.target = str(recipe["target"])
        self.problem_type = str(recipe.get("problem_type", "binary" if len(recipe["classes"]) == 2 else "multiclass"))
        self.classes = [str(c) for c in recipe["classes"]]
        self.columns = [str(c) for c in recipe["columns"]]
        self.inputs = [c for c in self.columns if c != self.target]  # columns a client sends
        self.missing = frozenset(str(t) for t in recipe.get("missing_tokens", ["", "NA", "NaN", "null"]))
        # (column read, kind, fill or lookup, how to read the value)
        self.features = []  # type: List[Tuple[str, int, Any, Any]]
        for f in recipe["features"]:
            kind = f.get("kind")
            column = str(f.get("column", f["name"]))
            if kind == "numeric":
                number_format = f.get("number_format")
                written = None
                if number_format is not None:  # (pattern, separators removed, decimal mark)
                    written = (re.compile(number_format["pattern"]), number_format["remove"], number_format["decimal"])
                self.features.append((column, _NUMERIC, float(f.get("fill", 0.0)), written))
            elif kind == "categorical":
                index = {str(c): float(i) for i, c in enumerate(f.get("categories", []))}
                normalise = f.get("normalise")
                if normalise is not None and normalise not in CATEGORY_NORMALISATIONS:
                    raise ValueError("feature %r has unknown normalisation %r" % (f.get("name"), normalise))
                self.features.append((column, _CATEGORICAL, index, CATEGORY_NORMALISATIONS.get(normalise)))
            elif kind == "boolean":  # case-folded spelling -> 1.0 / 0.0; anything else -1.0
                truth = {str(t): 1.0 for t in f["true"]}
                truth.update({str(t): 0.0 for t in f["false"]})
                self.features.append((column, _BOOLEAN, truth, None))
            elif kind == "datetime":
                if f.get("part") not in DATETIME_PARTS:
                    raise ValueError("feature %r has unknown datetime part %r" % (f.get("name"), f.get("part")))
                self.features.append((column, _DATETIME_PART, float(f["fill"]), str(f["part"])))
            else:
                raise ValueError("feature %r has unknown kind %r" % (f.get("name"), kind))
        self.feature_names = [str(f["name"]) for f in recipe["features"]]
        self.feature_columns = [column for column, _, _, _ in self.features]
        self.known_names = frozenset(self.columns) | frozenset(self.feature_names) | frozenset(self.feature_columns)

    def encode(self, raw: Mapping[str, Optional[str]]) -> List[float]:
        """Encode one raw row (column -> raw string); absent or None means missing."""
        out = []  # type: List[float]
        missing = self.missing
        dates = {}  # type: Dict[str, Any]  # column -> its parsed date (parts of one column share it)
        for name, kind, spec, normalise in self.features:
            v = raw.get(name)
            if v is None:
                v = ""
            elif not isinstance(v, str):
                v = str(v)
            v = v.strip()
            if kind == _DATETIME_PART:
                if name not in dates:
                    dates[name] = None if v in missing else parse_datetime(v)
                parsed = dates[name]
                out.append(spec if parsed is None else datetime_part(parsed, normalise))
            elif kind == _BOOLEAN:
                out.append(-1.0 if v in missing else spec.get(v.casefold(), -1.0))
            elif kind == _NUMERIC:
                if v in missing:
                    out.append(spec)
                    continue
                if normalise is not None and normalise[0].fullmatch(v):  # e.g. "1,234.5" in a thousands_comma column
                    for char in normalise[1]:
                        v = v.replace(char, "")
                    v = v.replace(normalise[2], ".")
                try:
                    x = float(v)
                except ValueError:
                    out.append(spec)
                    continue
                out.append(x if math.isfinite(x) else spec)
            elif v in missing:
                out.append(-1.0)
            else:
                out.append(spec.get(normalise(v) if normalise is not None else v, -1.0))
        return out


def compile_recipe(recipe: Union[Mapping[str, Any], CompiledRecipe]) -> CompiledRecipe:
    """Accept a recipe dict or an already compiled one."""
    return recipe if isinstance(recipe, CompiledRecipe) else CompiledRecipe(recipe)


def encode_row(recipe: Union[Mapping[str, Any], CompiledRecipe], raw: Mapping[str, Optional[str]]) -> List[float]:
    """Encode one raw row with the recipe's rules; the single definition used for serving.

    numeric: stripped value in missing_tokens, unparsable by float() or not finite -> fill; a value
    written as the feature's "number_format" says (its pattern, in full) first loses the separators
    in "remove" and has its "decimal" mark replaced by ".".
    categorical: index in categories of the stripped value, normalised as the feature's "normalise"
    says (e.g. casefold); anything else (missing, unseen) -> -1.0.
    boolean: 1.0 / 0.0 when the case-folded stripped value is one of the feature's "true" / "false"
    spellings; anything else (missing, other text) -> -1.0.
    datetime: the feature's "part" of the date in its "column" (``parse_datetime``); missing or not a
    date -> fill.
    """
    return compile_recipe(recipe).encode(raw)


def load_recipe(path: str) -> Dict[str, Any]:
    """Read recipe.json."""
    with open(path, "rb") as fh:
        return json.loads(fh.read().decode("utf-8"))


_STATE_LOCK = threading.Lock()
_ACTIVE = {"recipe": None, "stage": None}  # type: Dict[str, Any]


def use_recipe(recipe: Union[Mapping[str, Any], CompiledRecipe]) -> CompiledRecipe:
    """Make ``recipe`` the one input_fn uses (model_fn calls this; tests may too)."""
    compiled = compile_recipe(recipe)
    with _STATE_LOCK:
        _ACTIVE["recipe"] = compiled
    return compiled


def _active_recipe() -> CompiledRecipe:
    """input_fn has no model argument, so the recipe is module state set by model_fn."""
    current = _ACTIVE["recipe"]
    if current is not None:
        return current
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), RECIPE_FILE)
    if not os.path.exists(path):
        raise RuntimeError("no recipe loaded: call model_fn first or put %s next to %s" % (RECIPE_FILE, __file__))
    return use_recipe(load_recipe(path))


# --------------------------------------------------------------------------- model


class DatadropModel:
    """What model_fn returns: the booster plus the recipe it was trained with."""

    def __init__(self, booster: Any, recipe: CompiledRecipe) -> None:
        self.booster = booster
        self.recipe = recipe
        self.classes = recipe.classes
        self.regression = recipe.problem_type == "regression"
        config = json.loads(booster.save_config())
        self.objective = str(config["learner"]["objective"]["name"])
        self.lock = threading.Lock()


def _load_booster(path: str) -> Any:
    """Booster.save_model output; falls back to pickle (XGBoost containers <= 1.3 pickled it)."""
    import xgboost as xgb

    booster = xgb.Booster()
    try:
        with warnings.catch_warnings():  # xgboost >= 2.1 warns that "xgboost-model" has no extension
            warnings.simplefilter("ignore", UserWarning)
            booster.load_model(path)
        return booster
    except Exception as exc_native:
        try:
            with open(path, "rb") as fh:
                obj = pickle.load(fh)  # our own training output, never user-supplied
        except Exception:
            raise RuntimeError("cannot load model %s: %s" % (path, exc_native))
        if not isinstance(obj, xgb.Booster):
            raise RuntimeError("model %s is a pickled %s, not an xgboost Booster" % (path, type(obj).__name__))
        return obj


class StageModel:
    """What model_fn returns in a pipeline stage: the recipe and how the algorithm talks."""

    def __init__(self, stage: str, recipe: CompiledRecipe, algorithm_io: Mapping[str, Any]) -> None:
        if stage not in (PREPROCESS, POSTPROCESS):
            raise RuntimeError("%s is %r; expected %s or %s" % (STAGE_VARIABLE, stage, PREPROCESS, POSTPROCESS))
        for key in ("request_content_type", "accept", "layout"):
            if key not in algorithm_io:
                raise RuntimeError("%s lacks %r" % (ALGORITHM_IO_VARIABLE, key))
        self.stage = stage
        self.recipe = recipe
        self.io = dict(algorithm_io)
        self.shift = self.scale = None  # type: Optional[np.ndarray]
        if stage == PREPROCESS and self.io.get("standardise"):  # only the features going in are scaled
            scaling = recipe.recipe.get("standardise")
            if not isinstance(scaling, dict) or len(scaling.get("mean", [])) != len(recipe.features):
                raise RuntimeError("the algorithm reads standardised features, but the recipe has no standardise for them")
            self.shift = np.asarray(scaling["mean"], dtype=np.float64)
            self.scale = np.asarray(scaling["scale"], dtype=np.float64)


class Answer:
    """An algorithm's answer in the dataset's terms: per row, class probabilities (recipe class
    order) when the algorithm gives them, the class index, or the predicted value."""

    def __init__(self, probabilities: Optional[np.ndarray], indices: Optional[List[int]], values: Optional[List[float]]) -> None:
        self.probabilities = probabilities
        self.indices = indices
        self.values = values

    def __len__(self) -> int:
        for part in (self.probabilities, self.indices, self.values):
            if part is not None:
                return len(part)
        return 0


def _recipe_path(model_dir: str) -> str:
    here = os.path.join(os.path.dirname(os.path.abspath(__file__)), RECIPE_FILE)
    recipe_path = here if os.path.exists(here) else os.path.join(model_dir, RECIPE_FILE)
    if not os.path.exists(recipe_path):
        raise RuntimeError("no %s next to %s or in %s" % (RECIPE_FILE, __file__, model_dir))
    return recipe_path


def model_fn(model_dir: str, environ: Optional[Mapping[str, str]] = None) -> Union[DatadropModel, StageModel]:
    """Load ``xgboost-model`` and the recipe (next to this script, else in model_dir); in a
    pipeline stage (``DATADROP_STAGE`` set), the recipe alone. ``environ``: the container's
    environment (the local SageMaker passes the model's; a container has its own)."""
    environ = os.environ if environ is None else environ
    stage = environ.get(STAGE_VARIABLE, "")
    if stage:
        try:
            algorithm_io = json.loads(environ.get(ALGORITHM_IO_VARIABLE, ""))
        except ValueError:
            raise RuntimeError("%s must hold the algorithm's request and response format as JSON" % ALGORITHM_IO_VARIABLE)
        staged = StageModel(stage, use_recipe(load_recipe(_recipe_path(model_dir))), algorithm_io)
        with _STATE_LOCK:
            _ACTIVE["stage"] = staged
        return staged
    model_path = os.path.join(model_dir, MODEL_FILE)
    if not os.path.exists(model_path):
        raise RuntimeError("no %s in %s (found: %s)" % (MODEL_FILE, model_dir, sorted(os.listdir(model_dir))))
    recipe = use_recipe(load_recipe(_recipe_path(model_dir)))
    with _STATE_LOCK:
        _ACTIVE["stage"] = None
    booster = _load_booster(model_path)
    n_features = booster.num_features()
    if n_features != len(recipe.features):
        raise RuntimeError(
            "model expects %d features but the recipe lists %d (%s): model and recipe do not belong together"
            % (n_features, len(recipe.features), ", ".join(recipe.feature_names))
        )
    return DatadropModel(booster, recipe)


# --------------------------------------------------------------------------- input


def _media_type(content_type: Optional[str], default: str) -> str:
    """'text/csv; charset=utf-8' -> 'text/csv'; None/empty -> default."""
    if not content_type:
        return default
    media = content_type.split(";", 1)[0].strip().lower()
    return _ALIASES.get(media, media) if media else default


def _to_text(body: Union[bytes, bytearray, str]) -> str:
    if isinstance(body, (bytes, bytearray)):
        try:
            text = bytes(body).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidInput("request body is not UTF-8 text: %s" % exc)
    elif isinstance(body, str):
        text = body
    else:
        raise InvalidInput("request body must be bytes or str, got %s" % type(body).__name__)
    return text[1:] if text.startswith("\ufeff") else text


def _expected(recipe: CompiledRecipe) -> str:
    return "%d values (%s) or %d values without the target %r (%s)" % (
        len(recipe.columns),
        ",".join(recipe.columns),
        len(recipe.inputs),
        recipe.target,
        ",".join(recipe.inputs),
    )


def _is_header(recipe: CompiledRecipe, row: Sequence[str]) -> bool:
    """A header names columns: every cell is a known column, or every feature is named."""
    cells = [c.strip() for c in row]
    if not cells or len(set(cells)) != len(cells):
        return False
    present = set(cells)
    return present <= recipe.known_names or set(recipe.feature_columns) <= present


def _rows_to_matrix(recipe: CompiledRecipe, rows: Iterable[Sequence[str]]) -> np.ndarray:
    """CSV-like rows of raw strings -> encoded matrix; applies the header/positional rules."""
    header = None  # type: Optional[List[str]]
    encoded = []  # type: List[List[float]]
    n_cols, n_inputs = len(recipe.columns), len(recipe.inputs)
    number = 0
    for row in rows:
        if not row or (len(row) == 1 and not row[0].strip()):
            continue  # blank line
        number += 1
        if number == 1 and _is_header(recipe, row):
            header = [c.strip() for c in row]
            continue
        if header is not None:
            if len(row) != len(header):
                raise InvalidInput(
                    "row %d has %d values but the header has %d (%s)" % (number, len(row), len(header), ",".join(header))
                )
            names = header
        elif len(row) == n_cols:
            names = recipe.columns
        elif len(row) == n_inputs:
            names = recipe.inputs
        else:
            raise InvalidInput("row %d: expected %s; received %d values" % (number, _expected(recipe), len(row)))
        encoded.append(recipe.encode(dict(zip(names, row))))
    if not encoded:
        raise InvalidInput("request has no data rows; expected rows of %s" % _expected(recipe))
    return np.asarray(encoded, dtype=np.float32).reshape(len(encoded), len(recipe.features))


def _json_raw(value: Any, where: str) -> str:
    """JSON scalar -> the raw string a CSV would have carried."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 1e15:
            return str(int(value))  # 2.0 -> "2", so integer-coded categories still match
        return repr(value)
    if isinstance(value, str):
        return value
    raise InvalidInput("%s: values must be strings, numbers or null, got %s" % (where, type(value).__name__))


def _json_instances(recipe: CompiledRecipe, instances: Sequence[Any], what: str) -> np.ndarray:
    rows = []  # type: List[Mapping[str, str]]
    for i, inst in enumerate(instances, 1):
        where = "%s %d" % (what, i)
        if isinstance(inst, dict):
            rows.append({str(k): _json_raw(v, where + " field %r" % k) for k, v in inst.items()})
        elif isinstance(inst, list):  # positional, same count rule as CSV
            if len(inst) == len(recipe.columns):
                names = recipe.columns
            elif len(inst) == len(recipe.inputs):
                names = recipe.inputs
            else:
                raise InvalidInput("%s: expected %s; received %d values" % (where, _expected(recipe), len(inst)))
            rows.append({n: _json_raw(v, where) for n, v in zip(names, inst)})
        else:
            raise InvalidInput("%s must be an object {column: value}, got %s" % (where, type(inst).__name__))
    if not rows:
        raise InvalidInput("request has no instances")
    encoded = [recipe.encode(r) for r in rows]
    return np.asarray(encoded, dtype=np.float32).reshape(len(encoded), len(recipe.features))


def input_fn(request_body: Union[bytes, str], request_content_type: Optional[str]) -> Any:
    """Raw request -> encoded float32 matrix in the recipe's feature order; in the postprocessing
    stage, the algorithm's answer -> an Answer."""
    recipe = _active_recipe()
    staged = _ACTIVE["stage"]
    if staged is not None and staged.stage == POSTPROCESS:
        return _read_answer(staged, request_body, request_content_type)
    media = _media_type(request_content_type, CSV)
    if media == CSV:
        text = _to_text(request_body)
        return _rows_to_matrix(recipe, csv.reader(io.StringIO(text, newline="")))
    if media == JSON:
        text = _to_text(request_body)
        try:
            doc = json.loads(text)
        except ValueError as exc:
            raise InvalidInput("request body is not valid JSON: %s" % exc)
        if isinstance(doc, dict) and "instances" in doc:
            instances = doc["instances"]
        elif isinstance(doc, list):
            instances = doc
        else:
            raise InvalidInput('JSON body must be {"instances": [{column: value}, ...]} or a list of such objects')
        if not isinstance(instances, list):
            raise InvalidInput('"instances" must be a list of objects {column: value}')
        return _json_instances(recipe, instances, "instance")
    if media == JSONLINES:
        text = _to_text(request_body)
        docs = []  # type: List[Any]
        # "\n" only: str.splitlines() would also split inside a value at U+2028 or U+0085, which JSON leaves raw
        for n, line in enumerate(text.split("\n"), 1):
            if line.strip():
                try:
                    docs.append(json.loads(line))
                except ValueError as exc:
                    raise InvalidInput("line %d is not valid JSON: %s" % (n, exc))
        return _json_instances(recipe, docs, "line")
    raise UnsupportedContentType(
        "unsupported Content-Type %r; supported: %s" % (request_content_type, ", ".join(INPUT_CONTENT_TYPES))
    )


# --------------------------------------------------------------------------- predict


def predict_fn(input_data: Any, model: Union[DatadropModel, StageModel]) -> Any:
    """Class probabilities, shape (n, len(classes)), columns in recipe class order; for regression,
    the predicted values, shape (n, 1). A pipeline stage passes its input on: the algorithm's
    container predicts."""
    if isinstance(model, StageModel):
        return input_data
    import xgboost as xgb

    data = np.asarray(input_data, dtype=np.float32)
    if data.ndim == 1:
        data = data.reshape(1, -1)
    dmatrix = xgb.DMatrix(data, missing=np.nan)
    with model.lock:
        raw = np.asarray(model.booster.predict(dmatrix))
    if model.regression:
        return raw.reshape(-1, 1)  # float32, as the booster predicts: output_fn writes it at float32's precision
    k = len(model.classes)
    objective = model.objective
    if objective == "multi:softmax" or objective == "binary:hinge":
        index = raw.reshape(-1).astype(np.int64)
        probs = np.zeros((len(index), k), dtype=np.float64)
        probs[np.arange(len(index)), np.clip(index, 0, k - 1)] = 1.0
        return probs
    if raw.ndim == 2 and raw.shape[1] == k:
        return raw.astype(np.float64)
    p = raw.reshape(-1).astype(np.float64)
    if objective == "binary:logitraw":
        p = 1.0 / (1.0 + np.exp(-p))
    if k != 2:
        raise RuntimeError("model objective %s gives one score per row but the recipe has %d classes" % (objective, k))
    return np.column_stack([1.0 - p, p])


# --------------------------------------------------------------------------- output


def _labels(prediction: np.ndarray, classes: Sequence[str]) -> List[str]:
    return [classes[i] for i in np.argmax(prediction, axis=1)]


def _records(prediction: np.ndarray, classes: Sequence[str]) -> List[Dict[str, Any]]:
    labels = _labels(prediction, classes)
    return [
        {"label": label, "probabilities": {c: float(p) for c, p in zip(classes, row)}}
        for label, row in zip(labels, prediction.tolist())
    ]


def _choose_accept(accept: Optional[str]) -> str:
    """First supported type of a possibly comma-separated Accept; */* or none -> text/csv."""
    if not accept:
        return DEFAULT_ACCEPT
    for part in accept.split(","):
        media = _media_type(part, DEFAULT_ACCEPT)
        if media in ("*/*", "text/*"):
            return DEFAULT_ACCEPT
        if media == "application/*":
            return JSON
        if media in OUTPUT_CONTENT_TYPES:
            return media
    raise UnsupportedAccept("unsupported Accept %r; supported: %s" % (accept, ", ".join(OUTPUT_CONTENT_TYPES)))


def _values(prediction: np.ndarray) -> List[float]:
    """Regression predictions as floats that print as float32's shortest spelling (4012.3457, not
    4012.345703125): the booster predicts in float32, so more digits would be noise."""
    return [float(str(value)) for value in np.asarray(prediction, dtype=np.float32).reshape(-1)]


def output_fn(prediction: Any, accept: Optional[str]) -> Tuple[str, str]:
    """Serialize predictions; returns (body, content_type) as the toolkit allows. The
    preprocessing stage writes features in the algorithm's request format, whatever the Accept."""
    recipe = _ACTIVE["recipe"] if _ACTIVE["recipe"] is not None else _active_recipe()
    staged = _ACTIVE["stage"]
    if staged is not None and staged.stage == PREPROCESS:
        if staged.shift is not None and staged.scale is not None:  # as datadrop.channels standardised the training rows
            prediction = (np.asarray(prediction, dtype=np.float64) - staged.shift) / staged.scale
        return _write_features(prediction, staged.io["request_content_type"])
    classes = recipe.classes
    media = _choose_accept(accept)
    if isinstance(prediction, Answer) and prediction.probabilities is None:
        return _write_labels_only(prediction, recipe, media)
    if isinstance(prediction, Answer):
        prediction = prediction.probabilities
    if recipe.problem_type == "regression":
        values = _values(prediction)
        if media == CSV:
            return "\n".join(repr(value) for value in values), CSV
        if media == JSON:
            return json.dumps({"predictions": [{"value": value} for value in values]}), JSON
        return "\n".join(json.dumps({"value": value}) for value in values), JSONLINES
    prediction = np.asarray(prediction, dtype=np.float64)
    if prediction.ndim == 1:
        prediction = prediction.reshape(1, -1)
    if media == CSV:
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        for label in _labels(prediction, classes):
            writer.writerow([label])
        return buf.getvalue().rstrip("\n"), CSV
    records = _records(prediction, classes)
    if media == JSON:
        return json.dumps({"predictions": records}), JSON
    return "\n".join(json.dumps(r) for r in records), JSONLINES


# --------------------------------------------------------------------------- pipeline stages


def _number(value: Any) -> str:
    """A feature as the algorithm's CSV reads it: the shortest float32 spelling."""
    return repr(float(np.float32(value)))


def _write_features(matrix: np.ndarray, content_type: str) -> Tuple[str, str]:
    """Encoded features in the algorithm's request format (one row per record, no label)."""
    rows = np.asarray(matrix, dtype=np.float32).tolist()
    if content_type == CSV:
        return "\n".join(",".join(_number(v) for v in row) for row in rows), CSV
    if content_type == JSON:
        return json.dumps({"instances": [{"features": row} for row in rows]}), JSON
    if content_type == JSONLINES:
        return "\n".join(json.dumps({"features": row}) for row in rows), JSONLINES
    raise RuntimeError("the preprocessing stage cannot write %r; it writes %s" % (content_type, ", ".join(INPUT_CONTENT_TYPES)))


def _answer_records(staged: StageModel, text: str, media: str) -> List[Any]:
    """The per-row entries of an answer in the "records" layout."""
    key = staged.io.get("records_key")
    if media == JSONLINES or (media == JSON and key is None and "\n" in text.strip()):
        return [json.loads(line) for line in text.split("\n") if line.strip()]
    document = json.loads(text)
    if key is None:
        return document if isinstance(document, list) else [document]
    if not isinstance(document, dict) or key not in document:
        raise InvalidInput("the algorithm's answer has no %r list" % key)
    return list(document[key])


def _class_probabilities(scores: List[Any], k: int) -> np.ndarray:
    """Scores as the algorithm gives them -> (n, k) probabilities in class-index order: a binary
    score is P(class 1) or the pair [P0, P1]; a multiclass score lists every class."""
    rows = []  # type: List[List[float]]
    for score in scores:
        if isinstance(score, list) and len(score) == 1:
            score = score[0]
        if isinstance(score, list):
            if len(score) != k:
                raise InvalidInput("the algorithm gave %d class scores for %d classes" % (len(score), k))
            rows.append([float(p) for p in score])
        elif k == 2:
            p = float(score)
            rows.append([1.0 - p, p])
        else:
            raise InvalidInput("the algorithm gave one score for %d classes" % k)
    return np.asarray(rows, dtype=np.float64).reshape(len(rows), k)


def _read_answer(staged: StageModel, body: Union[bytes, str], content_type: Optional[str]) -> Answer:
    """The algorithm container's answer -> labels, probabilities or values in the dataset's terms."""
    io_ = staged.io
    recipe = staged.recipe
    text = _to_text(body)
    media = _media_type(content_type, _media_type(io_["accept"], JSON))
    if media not in (JSON, JSONLINES):
        raise InvalidInput("the algorithm answered %r; the postprocessing stage reads JSON or JSON Lines" % content_type)
    regression = recipe.problem_type == "regression"
    k = len(recipe.classes)
    try:
        if io_["layout"] == "columns":
            document = json.loads(text)
            if regression:
                values = document[io_["prediction_key"]]
                return Answer(None, None, [float(v) for v in values])
            probabilities = document.get(io_.get("probabilities_key") or "", None)
            if probabilities is not None:
                return Answer(_class_probabilities(list(probabilities), k), None, None)
            return Answer(None, [int(float(v)) for v in document[io_["prediction_key"]]], None)
        records = _answer_records(staged, text, media)
        score_key, label_key = io_.get("score_key"), io_.get("label_key")
        if regression:
            key = score_key if score_key and records and score_key in records[0] else label_key
            return Answer(None, None, [float(record[key]) for record in records])
        if score_key and records and score_key in records[0]:
            return Answer(_class_probabilities([record[score_key] for record in records], k), None, None)
        return Answer(None, [int(float(record[label_key])) for record in records], None)
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        if isinstance(exc, InvalidInput):
            raise
        raise InvalidInput("cannot read the algorithm's answer as %s: %s: %s" % (json.dumps(io_), type(exc).__name__, exc))


def _write_labels_only(answer: Answer, recipe: CompiledRecipe, media: str) -> Tuple[str, str]:
    """Answers of an algorithm that gives no probabilities (k-NN): labels or values only."""
    if answer.values is not None:
        values = [float(v) for v in answer.values]
        if media == CSV:
            return "\n".join(repr(value) for value in values), CSV
        if media == JSON:
            return json.dumps({"predictions": [{"value": value} for value in values]}), JSON
        return "\n".join(json.dumps({"value": value}) for value in values), JSONLINES
    classes = recipe.classes
    labels = []  # type: List[str]
    for index in answer.indices or []:
        if not 0 <= index < len(classes):
            raise InvalidInput("the algorithm predicted class %d of %d" % (index, len(classes)))
        labels.append(classes[index])
    if media == CSV:
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        for label in labels:
            writer.writerow([label])
        return buf.getvalue().rstrip("\n"), CSV
    records = [{"label": label} for label in labels]
    if media == JSON:
        return json.dumps({"predictions": records}), JSON
    return "\n".join(json.dumps(r) for r in records), JSONLINES
