"""The twin registry: every algorithm has a twin module with the contract's functions, and a
missing library names the extra that brings it."""

from __future__ import annotations

import builtins
from pathlib import Path
from typing import Any

import pytest
from datadrop import algorithms
from datadrop.local import runner, twins


@pytest.mark.parametrize("name", algorithms.names())
def test_every_algorithm_has_a_twin_with_the_contracts_functions(name: str) -> None:
    algorithm = algorithms.get(name)
    module = twins.module(name)
    assert callable(module.train)
    if algorithm.serving == "pipeline":  # the middle container of its inference pipeline
        assert callable(module.load) and callable(module.invoke)


def test_a_missing_library_fails_the_job_naming_the_extra(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    real_import = builtins.__import__

    def without_torch(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "torch" or name.startswith("torch."):
            raise ModuleNotFoundError("No module named 'torch'", name="torch")
        return real_import(name, *args, **kwargs)

    monkeypatch.delitem(__import__("sys").modules, "datadrop.local.twins.tabtransformer", raising=False)
    monkeypatch.setattr(builtins, "__import__", without_torch)
    with pytest.raises(twins.MissingExtra, match=r"pip install 'datadrop\[torch\]'"), twins.needs_extra("tabtransformer"):
        twins.module("tabtransformer").train({}, {}, tmp_path)  # torch: imported at load or at train
    metrics, failure = runner.train_in_process("tabtransformer", {}, {}, tmp_path)
    assert metrics == [] and failure is not None
    assert failure.startswith("AlgorithmError: TabTransformer runs locally with torch") and "datadrop[torch]" in failure
