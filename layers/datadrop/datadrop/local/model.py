"""A model as the local SageMaker serves it, for batch transform and endpoints alike.

XGBoost: datadrop's inference script in script mode (`model_fn`, `input_fn`, `predict_fn`,
`output_fn`), as the container calls it. Every other algorithm: an inference pipeline of three
stages, as SageMaker runs one: datadrop's preprocessing (the same script, stage "preprocess"), the
algorithm's container (its local twin's `invoke`), datadrop's postprocessing (stage
"postprocess"). Either way one call: request body in, response body out, or an exception.
"""

from __future__ import annotations

import importlib.util
import sys
import uuid
from pathlib import Path
from types import ModuleType
from typing import Any

from datadrop.serving import INFERENCE_PROGRAM

__all__ = ["ScriptModel", "load_inference_module", "load_model"]


def load_inference_module(code_dir: Path) -> ModuleType:
    """Import ``code_dir/inference.py`` under a fresh module name, so endpoints don't share state."""
    path = Path(code_dir) / INFERENCE_PROGRAM
    if not path.is_file():
        raise FileNotFoundError(f"no {INFERENCE_PROGRAM} in {code_dir}")
    name = f"datadrop_inference_{uuid.uuid4().hex}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # some stdlib helpers look classes up by module name
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return module


class ScriptModel:
    """datadrop's inference script serving a model in its container (script mode)."""

    def __init__(self, code_dir: Path, model_dir: Path) -> None:
        self.module = load_inference_module(Path(code_dir))
        self.model = self.module.model_fn(str(model_dir))  # as at container start-up: a broken model fails here

    def answer(self, body: bytes | str, content_type: str | None, accept: str) -> tuple[bytes, str]:
        """One request: the response body and its content type. Raises what the script raises."""
        data = self.module.input_fn(body, content_type)
        prediction = self.module.predict_fn(data, self.model)
        result = self.module.output_fn(prediction, accept)
        text, out_type = result if isinstance(result, tuple) else (result, accept)
        return (text.encode("utf-8") if isinstance(text, str) else bytes(text)), out_type


def load_model(code_dir: Path, model_dir: Path) -> Any:
    """The served model of a code bundle and a model directory."""
    return ScriptModel(code_dir, model_dir)
