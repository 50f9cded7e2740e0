"""A model as the local SageMaker serves it, for batch transform and endpoints alike.

XGBoost: datadrop's inference script in script mode (`model_fn`, `input_fn`, `predict_fn`,
`output_fn`), as the container calls it. Every other algorithm: an inference pipeline, run as
SageMaker runs one (serially, each container's answer the next one's request, in the content type
its SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT names; the client's Accept goes to the last):
datadrop's preprocessing (the same script, stage "preprocess"), the algorithm's container (its local
twin's `invoke`), datadrop's postprocessing (stage "postprocess"). Either way one call: request
body in, response body out, or an exception.
"""

from __future__ import annotations

import importlib.util
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Protocol

from datadrop.serving import DEFAULT_ACCEPT_VARIABLE, INFERENCE_PROGRAM

__all__ = ["ModelFiles", "ScriptStage", "TwinStage", "load_inference_module", "load_model"]


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


@dataclass(frozen=True)
class ScriptStage:
    """A container running datadrop's inference script: its code, its model files, its environment."""

    code_dir: Path
    model_dir: Path
    environment: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class TwinStage:
    """An algorithm's container, played by its local twin."""

    algorithm: str
    model_dir: Path
    environment: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ModelFiles:
    """The containers of a SageMaker model, unpacked on this machine (picklable: worker processes get it)."""

    stages: tuple[ScriptStage | TwinStage, ...]

    @classmethod
    def script(cls, code_dir: Path, model_dir: Path) -> ModelFiles:
        return cls((ScriptStage(Path(code_dir), Path(model_dir)),))

    @property
    def description(self) -> str:
        return " → ".join(stage.algorithm if isinstance(stage, TwinStage) else "datadrop script" for stage in self.stages)


class ServedModel(Protocol):
    def answer(self, body: bytes | str, content_type: str | None, accept: str) -> tuple[bytes, str]: ...


class ScriptModel:
    """datadrop's inference script serving in its container (script mode, or a pipeline stage)."""

    def __init__(self, stage: ScriptStage) -> None:
        self.module = load_inference_module(stage.code_dir)
        # As at container start-up: a broken model fails here.
        self.model = self.module.model_fn(str(stage.model_dir), environ=stage.environment)

    def answer(self, body: bytes | str, content_type: str | None, accept: str) -> tuple[bytes, str]:
        """One request: the response body and its content type. Raises what the script raises."""
        data = self.module.input_fn(body, content_type)
        prediction = self.module.predict_fn(data, self.model)
        result = self.module.output_fn(prediction, accept)
        text, out_type = result if isinstance(result, tuple) else (result, accept)
        return (text.encode("utf-8") if isinstance(text, str) else bytes(text)), out_type


class TwinModel:
    """An algorithm's container: its twin's `load` at start-up, `invoke` per request."""

    def __init__(self, stage: TwinStage) -> None:
        from datadrop.local import twins  # the twins' libraries load only when a pipeline is served

        self.twin = twins.module(stage.algorithm)
        with twins.needs_extra(stage.algorithm):
            self.model = self.twin.load(stage.model_dir)

    def answer(self, body: bytes | str, content_type: str | None, accept: str) -> tuple[bytes, str]:
        payload = body.encode("utf-8") if isinstance(body, str) else bytes(body)
        answered: tuple[bytes, str] = self.twin.invoke(self.model, payload, content_type or "text/csv", accept)
        return answered


class PipelineModel:
    """Containers in series, as a SageMaker inference pipeline (InferenceExecutionConfig Serial)."""

    def __init__(self, files: ModelFiles) -> None:
        self.stages: list[tuple[ServedModel, str | None]] = []
        for stage in files.stages:
            served: ServedModel = ScriptModel(stage) if isinstance(stage, ScriptStage) else TwinModel(stage)
            self.stages.append((served, stage.environment.get(DEFAULT_ACCEPT_VARIABLE)))

    def answer(self, body: bytes | str, content_type: str | None, accept: str) -> tuple[bytes, str]:
        payload, media = (body.encode("utf-8") if isinstance(body, str) else bytes(body)), content_type
        last = len(self.stages) - 1
        for index, (served, default_accept) in enumerate(self.stages):
            stage_accept = accept if index == last else (default_accept or accept)
            payload, media = served.answer(payload, media, stage_accept)
        return payload, media or accept


def load_model(files: ModelFiles) -> ServedModel:
    """The served model of a SageMaker model's unpacked containers."""
    if len(files.stages) == 1 and isinstance(files.stages[0], ScriptStage):
        return ScriptModel(files.stages[0])
    return PipelineModel(files)
