"""Packaging of datadrop's inference code for the SageMaker XGBoost container.

Imported in Lambda, so stdlib only: ``inference.py`` (which needs numpy/xgboost) is shipped as a
file, never imported here.
"""

from __future__ import annotations

import gzip
import io
import json
import tarfile
from pathlib import Path

INFERENCE_PROGRAM = "inference.py"
RECIPE_FILE = "recipe.json"
RECIPE_FORMAT = "datadrop-recipe/1"
INFERENCE_SOURCE = Path(__file__).with_name(INFERENCE_PROGRAM)
DEFAULT_ACCEPT = "text/csv"
DEFAULT_ACCEPT_VARIABLE = "SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT"
# As inference.py names them (it cannot import this package: it runs in the containers).
STAGE_VARIABLE = "DATADROP_STAGE"
ALGORITHM_IO_VARIABLE = "DATADROP_ALGORITHM_IO"
ALGORITHM_VARIABLE = "DATADROP_ALGORITHM"
PREPROCESS = "preprocess"
POSTPROCESS = "postprocess"

__all__ = [
    "DEFAULT_ACCEPT_VARIABLE",
    "INFERENCE_PROGRAM",
    "INFERENCE_SOURCE",
    "RECIPE_FILE",
    "build_serving_bundle",
    "container_environment",
    "stage_environment",
]


def _check_recipe(recipe_json: bytes) -> None:
    """Fail in Lambda, with a readable reason, rather than at endpoint start-up."""
    try:
        recipe = json.loads(recipe_json)
    except ValueError as exc:
        raise ValueError(f"recipe is not valid JSON: {exc}") from exc
    if not isinstance(recipe, dict):
        raise ValueError("recipe must be a JSON object")  # noqa: TRY004 - bad content, reported like the other recipe errors
    if recipe.get("format") != RECIPE_FORMAT:
        raise ValueError(f"recipe format is {recipe.get('format')!r}, expected {RECIPE_FORMAT!r}")
    missing = [k for k in ("target", "classes", "columns", "features") if k not in recipe]
    if missing:
        raise ValueError(f"recipe is missing {', '.join(missing)}")


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o644
    info.mtime = 0  # fixed metadata: same inputs, same bytes (idempotent uploads)
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    tar.addfile(info, io.BytesIO(data))


def build_serving_bundle(recipe_json: bytes) -> bytes:
    """Return sourcedir.tar.gz (inference.py + recipe.json at the root) for SAGEMAKER_SUBMIT_DIRECTORY.

    Deterministic: the same recipe gives the same bytes, so re-delivered events re-upload nothing new.
    """
    if isinstance(recipe_json, str):
        recipe_json = recipe_json.encode("utf-8")
    _check_recipe(recipe_json)
    raw = io.BytesIO()
    with (
        gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as gz,
        tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar,
    ):
        _add(tar, INFERENCE_PROGRAM, INFERENCE_SOURCE.read_bytes())
        _add(tar, RECIPE_FILE, bytes(recipe_json))
    return raw.getvalue()


def container_environment(submit_directory: str, default_accept: str = DEFAULT_ACCEPT) -> dict[str, str]:
    """Environment for CreateModel so the container serves inference.py from the bundle.

    SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT matters: without it the container answers requests that
    carry no Accept (or */*) with application/json, while the local endpoint answers text/csv.
    """
    return {
        "SAGEMAKER_PROGRAM": INFERENCE_PROGRAM,
        "SAGEMAKER_SUBMIT_DIRECTORY": submit_directory,
        DEFAULT_ACCEPT_VARIABLE: default_accept,
        "SAGEMAKER_CONTAINER_LOG_LEVEL": "20",
    }


def stage_environment(
    submit_directory: str, stage: str, algorithm: str, algorithm_io: str, default_accept: str
) -> dict[str, str]:
    """Environment of a pipeline stage (the scikit-learn container running inference.py):
    which stage, which algorithm, how that algorithm talks (ResponseFormat as JSON), and what the
    stage answers a request that names no Accept: the preprocessing stage the algorithm's request
    format, the postprocessing stage the client's default."""
    return {
        **container_environment(submit_directory, default_accept),
        STAGE_VARIABLE: stage,
        ALGORITHM_VARIABLE: algorithm,
        ALGORITHM_IO_VARIABLE: algorithm_io,
    }
