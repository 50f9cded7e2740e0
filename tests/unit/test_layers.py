"""The Lambda layers: what each function can import is shipped to it, polars only to prepare, and every
layer is built with bytecode.

The import graph is read from the source (ast), so it covers the imports inside functions too: a
handler that could reach polars on any code path would fail on Lambda without PolarsLayer. The
build recipe is checked through `make -n`, which prints the commands `sam build` runs.
"""

from __future__ import annotations

import ast
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from cfnlint.decode import cfn_yaml

ROOT = Path(__file__).resolve().parents[2]
LIBRARY = ROOT / "layers" / "datadrop"
# What the python3.12 runtime itself provides (in /var/runtime), so no layer needs to ship it.
RUNTIME_PROVIDED = {"boto3", "botocore", "awslambdaric"}
# Distribution name (requirements.txt) -> the top-level package it installs, where they differ.
IMPORT_NAMES = {"aws-lambda-powertools": "aws_lambda_powertools", "pyyaml": "yaml"}


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return cfn_yaml.load(str(ROOT / "template.yaml"))


def _functions(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: r for name, r in template["Resources"].items() if r["Type"] == "AWS::Serverless::Function"}


def _layer_ids(template: dict[str, Any], function: dict[str, Any]) -> list[str]:
    """The logical ids of a function's layers; SAM puts the Globals list first."""
    layers = list(template["Globals"]["Function"].get("Layers", [])) + list(function["Properties"].get("Layers", []))
    return [layer["Ref"] for layer in layers]


def _requirements(template: dict[str, Any], layer: str) -> set[str]:
    """Top-level import names of the packages a layer's requirements.txt installs."""
    path = ROOT / template["Resources"][layer]["Properties"]["ContentUri"] / "requirements.txt"
    names = set()
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            distribution = re.split(r"[\[<>=!~; ]", line, maxsplit=1)[0].lower()
            names.add(IMPORT_NAMES.get(distribution, distribution.replace("-", "_")))
    return names


def _shipped(template: dict[str, Any], function: dict[str, Any]) -> set[str]:
    """What a function can import besides the stdlib: its layers' packages, datadrop and the runtime's."""
    shipped = set(RUNTIME_PROVIDED)
    for layer in _layer_ids(template, function):
        shipped |= _requirements(template, layer)
        if (ROOT / template["Resources"][layer]["Properties"]["ContentUri"] / "datadrop").is_dir():
            shipped.add("datadrop")
    return shipped


# ----------------------------------------------------------------------------- import graph


def _is_type_checking(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def _imports(tree: ast.Module, module: str, is_package: bool, eager_only: bool) -> set[str]:
    """Absolute names of what a module imports: all of it, or (eager_only) what runs when it is
    imported, i.e. not inside a def nor under `if TYPE_CHECKING:`."""
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if eager_only and (isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda) or _is_type_checking(node)):
            return
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = module.split(".")
                parts = parts if is_package else parts[:-1]
                parts = parts[: len(parts) - node.level + 1]
                base = ".".join([*parts, base] if base else parts)
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)  # may be submodules
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


# A package that imports each module in its own directory (datadrop.algorithms' registry) reaches them all.
DISCOVERS_ITS_MODULES = "pkgutil.iter_modules(__path__)"


def _discovers_its_modules(source: str, eager_only: bool) -> bool:
    return not eager_only and DISCOVERS_ITS_MODULES in source


def _library_file(module: str) -> Path | None:
    path = LIBRARY.joinpath(*module.split("."))
    if (path / "__init__.py").is_file():
        return path / "__init__.py"
    return path.with_suffix(".py") if path.with_suffix(".py").is_file() else None


def _reachable(handler: Path, eager_only: bool) -> tuple[set[str], set[str]]:
    """(datadrop modules, top-level non-datadrop packages) a handler module can import."""
    modules: set[str] = set()
    external: set[str] = set()
    todo: list[tuple[str, Path]] = [("app", handler)]
    while todo:
        module, path = todo.pop()
        source = path.read_text()
        tree = ast.parse(source, str(path))
        imported = _imports(tree, module, path.name == "__init__.py", eager_only)
        if _discovers_its_modules(source, eager_only):
            imported |= {f"{module}.{file.stem}" for file in path.parent.glob("*.py") if file.name != "__init__.py"}
        for name in imported:
            top = name.split(".", 1)[0]
            if top != "datadrop":
                external.add(top)
                continue
            parts = name.split(".")
            for depth in range(1, len(parts) + 1):  # importing a.b.c runs a and a.b first
                parent = ".".join(parts[:depth])
                file = _library_file(parent)
                if file and parent not in modules:
                    modules.add(parent)
                    todo.append((parent, file))
    return modules, {name for name in external if name not in sys.stdlib_module_names and name != "__future__"}


def _handler(function: dict[str, Any], template: dict[str, Any]) -> Path:
    handler = function["Properties"].get("Handler", template["Globals"]["Function"]["Handler"])
    return ROOT / function["Properties"]["CodeUri"] / (handler.rsplit(".", 1)[0].replace(".", "/") + ".py")


def test_every_package_a_handler_can_import_is_shipped_to_its_function(template):
    for name, function in _functions(template).items():
        modules, external = _reachable(_handler(function, template), eager_only=False)
        assert modules, name
        missing = external - _shipped(template, function)
        assert not missing, f"{name} can import {sorted(missing)}, which none of its layers ships"


def test_only_prepare_can_import_polars(template):
    reaching = {name for name, f in _functions(template).items() if "polars" in _reachable(_handler(f, template), False)[1]}
    assert reaching == {"PrepareFunction"}


def test_no_handler_imports_polars_when_it_is_imported(template):
    # prepare imports it on its first dataset (datadrop.intake), so a cold start without data does not pay for it.
    for name, function in _functions(template).items():
        _, external = _reachable(_handler(function, template), eager_only=True)
        assert "polars" not in external, name


def test_the_import_graph_is_complete(template):
    """No reachable module imports by a computed name, which the graph above could not follow."""
    for function in _functions(template).values():
        for module in _reachable(_handler(function, template), eager_only=False)[0]:
            source = _library_file(module).read_text()  # type: ignore[union-attr]
            if _discovers_its_modules(source, eager_only=False):
                continue  # the graph follows it to every module of its package
            assert "import_module(" not in source and "__import__(" not in source, module


def test_polars_is_in_the_polars_layer_only(template):
    layers = [name for name, r in template["Resources"].items() if r["Type"] == "AWS::Serverless::LayerVersion"]
    assert {layer for layer in layers if "polars" in _requirements(template, layer)} == {"PolarsLayer"}


# ----------------------------------------------------------------------------- build recipe


def _build_commands(template: dict[str, Any], layer: str) -> list[str]:
    """The commands `sam build` runs for a layer, as `make -n` prints them."""
    make = shutil.which("make")
    if make is None:
        pytest.skip("no make on this machine (sam build needs it for these layers too)")
    content = ROOT / template["Resources"][layer]["Properties"]["ContentUri"]
    out = subprocess.run(
        [make, "-n", "--no-print-directory", "-f", "Makefile", f"build-{layer}", "ARTIFACTS_DIR=/artifacts"],
        cwd=content,
        capture_output=True,
        text=True,
        check=True,
        env={k: v for k, v in os.environ.items() if k not in ("PYTHON", "MAKEFLAGS")},  # the Makefile's defaults
    )
    return out.stdout.replace("\\\n", " ").splitlines()


@pytest.mark.parametrize("layer", ["LibraryLayer", "PolarsLayer"])
def test_layer_build_installs_cpython312_wheels_and_compiles_them(template, layer):
    commands = _build_commands(template, layer)
    pip = [i for i, c in enumerate(commands) if " -m pip install " in c]
    compileall = [i for i, c in enumerate(commands) if " -m compileall " in c]
    assert len(pip) == 1 and len(compileall) == 1, commands
    install = commands[pip[0]]
    for flag in ('--target "/artifacts/python"', "--implementation cp", "--python-version 3.12", "--only-binary=:all:"):
        assert flag in install, flag
    assert "--platform manylinux2014_x86_64" in install
    assert "-r requirements.txt" in install
    # Bytecode last, over everything in the layer, and valid without its sources' dates (zipped as 1980 by sam package).
    compile_ = commands[compileall[0]]
    assert compileall[0] == len(commands) - 1, commands
    assert "--invalidation-mode unchecked-hash" in compile_
    assert compile_.rstrip().endswith('"/artifacts/python"')
    assert compile_.lstrip().startswith("python3.12 "), "the bytecode must be CPython 3.12's, the runtime's"


def test_library_layer_build_copies_the_library_before_compiling(template):
    commands = _build_commands(template, "LibraryLayer")
    copy = next(i for i, c in enumerate(commands) if c.startswith("cp -R datadrop "))
    assert copy < next(i for i, c in enumerate(commands) if " -m compileall " in c)
