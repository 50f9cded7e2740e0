#!/usr/bin/env python3
"""The Lambda layers as `sam build` builds them: their sizes against Lambda's limits, their bytecode,
and every handler's import time against `import boto3`, measured in the same run.

Requirements (issue 10): every function's code plus its layers stays under Lambda's 250 MB
unzipped limit, every layer ships compiled bytecode, and every handler imports in under 1.5x the
time of `import boto3`.

What it does:

1. Reads the layers and functions from `sam build`'s output (`.aws-sam/build`, or --build-dir),
   building it first when it is missing or with --build (`sam build` with the layers' Makefiles:
   pip-installed CPython 3.12 wheels, then unchecked-hash .pyc).
2. Sizes: per layer, the unzipped bytes and the zipped bytes (deflate, as `sam package` zips), its
   .py files and how many have a CPython 3.12 unchecked-hash .pyc; per function, its code plus its
   layers against the limits (https://docs.aws.amazon.com/lambda/latest/dg/gettingstarted-limits.html):
   250 MB = 262,144,000 bytes unzipped for the code and all layers, at most 5 layers, and 50 MB
   zipped for a direct upload (CloudFormation always takes layers and code from S3, where that
   limit does not apply, so it is shown, not judged).
3. Import times: Lambda extracts a function's layers in order into /opt, so the bench links each
   function's layers into one `python` directory the same way, and imports `app` in a fresh
   `python3.12 -I -S -B` process per run with sys.path = [function dir, that directory, a boto3
   directory] + stdlib (-B: nothing is written, as on Lambda's read-only /opt and /var/task). The
   boto3 directory stands for the runtime's /var/runtime: boto3 installed once into
   bench/.layer-runtime-<hash>/ (git-ignored) and compiled, which is the strict choice for the
   ratio (without bytecode, boto3's compile time would be added to both sides). Baseline in the
   same run: `import boto3` alone. Also, not judged: every handler on the same layers without
   their .pyc, i.e. what a layer built by SAM's python3.12 workflow costs at every cold start; and
   the floor: `import boto3` plus pydantic's BaseModel and Powertools' Logger, Metrics and
   idempotency (what every handler uses at every invocation), without datadrop.
   Rounds are interleaved, after one discarded warm-up round.
4. The prepare step's data path (datadrop.dataprep.prepare on examples/penguins as CSV, gzip, Parquet
   and JSON Lines) in a child with PrepareFunction's layers and boto3 only: polars may need other
   packages only when it reads or writes, which an import does not show.

A handler fails when the median of its `import app` times is at or over --ratio (1.5) times the
median of `import boto3`, or when it leaves polars (or another forbidden module, see
bench/import_time.py) in sys.modules. Exit status: 0 all within limits, 1 a limit missed, 2 setup
error.

Usage: .venv/bin/python bench/layers.py [--build] [--runs N] [--json]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any

import import_time as it  # bench/import_time.py: the isolated child, the Lambda environment, the 3.12 finder
from machine import describe_machine  # bench/machine.py

REPO = Path(__file__).resolve().parent.parent
BENCH = REPO / "bench"
TEMPLATE = REPO / "template.yaml"
DEFAULT_BUILD_DIR = REPO / ".aws-sam" / "build"

UNZIPPED_LIMIT = 262_144_000  # "250 MB": the function's code and all its layers, extracted
ZIPPED_DIRECT_LIMIT = 50 * 1024 * 1024  # a .zip uploaded directly to the Lambda API (not via S3)
MAX_LAYERS = 5
RATIO = 1.5
MIB = 1024 * 1024
RUNTIME_RECIPE = "v1 boto3 cp312 manylinux2014_x86_64 unchecked-hash"
EXAMPLE = REPO / "examples" / "penguins"

# Runs in a child with sys.path = [a function's /opt/python, boto3] + stdlib: the prepare step's data
# path on the example, as CSV, gzip, Parquet and JSON Lines, so a dependency polars loads only when
# it reads or writes (numpy, pyarrow, ...) would show up here and not on Lambda.
PREPARE_CHILD = r"""
import gzip, io, json, sys
sys.path[:0] = sys.argv[3:]
import polars as pl
from datadrop import dataprep
from datadrop.config import parse_config
config = parse_config(open(sys.argv[2]).read(), "penguins")
raw = open(sys.argv[1], "rb").read()
frame = pl.read_csv(io.BytesIO(raw), infer_schema=False)
parquet, jsonl = io.BytesIO(), io.BytesIO()
frame.write_parquet(parquet)
frame.write_ndjson(jsonl)
rows = {}
for name, data in (("csv", raw), ("csv.gz", gzip.compress(raw)), ("parquet", parquet.getvalue()), ("jsonl", jsonl.getvalue())):
    prepared = dataprep.prepare(data, config)
    rows[name] = prepared.train_csv.count(b"\n")
print(json.dumps({"train_rows": rows, "modules": sorted(sys.modules)}))
"""

# The floor of any handler that validates its events with pydantic and uses Powertools' Logger,
# Metrics and idempotency at every invocation: boto3 and those imports alone, on TrainFunction's
# layers. Not judged; it shows how much of the 1.5x budget is left for datadrop's own modules.
FLOOR_PROBE = """import boto3
from pydantic import BaseModel, ConfigDict, Field, field_validator
from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer, IdempotencyConfig, idempotent
"""
FLOOR_FUNCTION = "TrainFunction"


# ------------------------------------------------------------------ build and template


def _template_loader() -> Any:
    try:
        import yaml
    except ImportError as exc:  # the repository's .venv has PyYAML (a datadrop dependency)
        raise it.SetupError("PyYAML is needed to read the built template: run with .venv/bin/python") from exc

    class Loader(yaml.SafeLoader):
        pass

    def tagged(loader: Any, tag: str, node: Any) -> dict[str, Any]:  # !Ref, !GetAtt, !Sub ...: kept as {tag: value}
        if isinstance(node, yaml.ScalarNode):
            value: Any = loader.construct_scalar(node)
        elif isinstance(node, yaml.SequenceNode):
            value = loader.construct_sequence(node, deep=True)
        else:
            value = loader.construct_mapping(node, deep=True)
        return {tag: value}

    Loader.add_multi_constructor("!", tagged)
    return yaml, Loader


def read_template(path: Path) -> dict[str, Any]:
    yaml, loader = _template_loader()
    return yaml.load(path.read_text(), Loader=loader)  # a SafeLoader subclass


def _ref(node: Any) -> str:
    return node.get("Ref") or node.get("!Ref") if isinstance(node, dict) else str(node)


def functions_and_layers(template: dict[str, Any]) -> tuple[dict[str, list[str]], list[str]]:
    """{function logical id: its layers' logical ids in order}, [layer logical ids]. SAM puts the
    Globals' layers first, then the function's own."""
    globals_layers = [_ref(x) for x in template.get("Globals", {}).get("Function", {}).get("Layers", [])]
    resources = template["Resources"]
    layers = [
        name for name, r in resources.items() if r["Type"] in ("AWS::Serverless::LayerVersion", "AWS::Lambda::LayerVersion")
    ]
    functions = {
        name: globals_layers + [_ref(x) for x in r["Properties"].get("Layers", [])]
        for name, r in resources.items()
        if r["Type"] == "AWS::Serverless::Function"
    }
    return functions, layers


def find_sam() -> str:
    beside = Path(sys.executable).parent / "sam"
    found = str(beside) if beside.is_file() else shutil.which("sam")
    if not found:
        raise it.SetupError("no sam CLI found (it is in .venv after `.ci/ensure-venv dev`)")
    return found


def sam_build(build_dir: Path, python: str) -> float:
    """`sam build` into build_dir; the layers' Makefiles and SAM's python3.12 builds both run `python3.12`."""
    env = dict(os.environ, SAM_CLI_TELEMETRY="0", PYTHON=python)
    # A python3.12 on PATH that runs (a pyenv shim without that version selected does not).
    env["PATH"] = os.pathsep.join([str(Path(python).parent), env.get("PATH", "")])
    env.pop("VIRTUAL_ENV", None)
    env.pop("PYTHONPATH", None)
    cmd = [find_sam(), "build", "--template", str(TEMPLATE), "--build-dir", str(build_dir)]
    it.log(f"building: $ {' '.join(cmd)}")
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=REPO, env=env, stdout=sys.stderr)
    if proc.returncode != 0:
        raise it.SetupError(f"sam build failed (exit {proc.returncode})")
    return time.perf_counter() - t0


# ------------------------------------------------------------------ sizes and bytecode


def tree_size(root: Path) -> tuple[int, int]:
    """(bytes, files) of a directory, as Lambda counts it: the extracted files."""
    files = [p for p in root.rglob("*") if p.is_file()]
    return sum(p.stat().st_size for p in files), len(files)


def zipped_size(root: Path) -> int:
    """Bytes of the .zip `sam package` would upload (deflate at zlib's default level, as it zips)."""
    with tempfile.TemporaryFile() as f:
        with zipfile.ZipFile(f, "w", zipfile.ZIP_DEFLATED) as zf:
            for path in sorted(root.rglob("*")):
                if path.is_file():
                    zf.write(path, path.relative_to(root).as_posix())
        return f.seek(0, os.SEEK_END)


def bytecode_report(root: Path, magic: bytes) -> dict[str, Any]:
    """How many .py have a CPython 3.12 .pyc next to them, and of which kind (PEP 552 flags)."""
    sources = [p for p in root.rglob("*.py") if "__pycache__" not in p.parts]
    kinds = {"unchecked-hash": 0, "checked-hash": 0, "timestamp": 0, "other magic": 0}
    missing = []
    for source in sources:
        pyc = source.parent / "__pycache__" / f"{source.stem}.cpython-312.pyc"
        if not pyc.is_file():
            missing.append(str(source.relative_to(root)))
            continue
        header = pyc.read_bytes()[:8]
        flags = int.from_bytes(header[4:8], "little")
        if header[:4] != magic:
            kinds["other magic"] += 1
        else:
            kinds["unchecked-hash" if flags == 0b01 else "checked-hash" if flags == 0b11 else "timestamp"] += 1
    return {
        "py": len(sources),
        "pyc": sum(kinds.values()),
        "kinds": kinds,
        "missing": missing[:10],
        "missing_count": len(missing),
    }


# ------------------------------------------------------------------ Lambda-like directories


def runtime_dir(python: str, rebuild: bool) -> Path:
    """boto3 as the python3.12 runtime has it in /var/runtime: installed once (cached), compiled."""
    digest = hashlib.sha256(RUNTIME_RECIPE.encode()).hexdigest()[:12]
    root = BENCH / f".layer-runtime-{digest}"
    target = root / "python"
    if rebuild and root.exists():
        shutil.rmtree(root)
    if not target.is_dir():
        shutil.rmtree(root, ignore_errors=True)
        staging = root / "staging"
        cmd = [
            python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-compile",
            "--target", str(staging), "--implementation", "cp", "--python-version", "3.12", "--only-binary=:all:",
            "--platform", "manylinux2014_x86_64", "boto3",
        ]  # fmt: skip
        it.log(f"installing the runtime's boto3 once into {target.relative_to(REPO)}:\n  $ {' '.join(cmd)}")
        env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
        if subprocess.run(cmd, env=env, stdout=sys.stderr).returncode != 0:
            shutil.rmtree(root, ignore_errors=True)
            raise it.SetupError("installing boto3 for the runtime directory failed (command above)")
        compile_cmd = [python, "-m", "compileall", "-q", "-j", "0", "--invalidation-mode", "unchecked-hash", str(staging)]
        if subprocess.run(compile_cmd, stdout=sys.stderr).returncode != 0:
            shutil.rmtree(root, ignore_errors=True)
            raise it.SetupError("compiling the runtime directory failed")
        staging.rename(target)
    return target


def link_tree(src: Path, dest: Path, keep_bytecode: bool) -> None:
    """Hard-link (else copy) src's files into dest, replacing what is there: a layer extracted over
    the layers before it, as Lambda extracts them into /opt."""
    for path in src.rglob("*"):
        if path.is_dir() or (not keep_bytecode and "__pycache__" in path.parts):
            continue
        target = dest / path.relative_to(src)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.unlink(missing_ok=True)
        try:
            os.link(path, target)
        except OSError:
            shutil.copy2(path, target)


def opt_dirs(build_dir: Path, functions: dict[str, list[str]], work: Path, keep_bytecode: bool) -> dict[str, Path]:
    """One /opt/python per distinct list of layers."""
    dirs: dict[str, Path] = {}
    by_layers: dict[tuple[str, ...], Path] = {}
    for function, layers in functions.items():
        key = tuple(layers)
        if key not in by_layers:
            opt = work / f"opt-{len(by_layers)}-{'bytecode' if keep_bytecode else 'sources'}" / "python"
            for layer in layers:
                link_tree(build_dir / layer / "python", opt, keep_bytecode)
            by_layers[key] = opt
        dirs[function] = by_layers[key]
    return dirs


def run_prepare(python: str, opt: Path, runtime: Path) -> dict[str, Any]:
    """The prepare step's data path on PrepareFunction's layers alone: (ok, what)."""
    cmd = [python, "-I", "-S", "-B", "-c", PREPARE_CHILD, str(EXAMPLE / "penguins.csv"), str(EXAMPLE / "species.yaml")]
    proc = subprocess.run([*cmd, str(opt), str(runtime)], capture_output=True, text=True, cwd=tempfile.gettempdir())
    if proc.returncode != 0:
        return {"ok": False, "error": "\n".join(proc.stderr.strip().splitlines()[-5:])}
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    heavy = [name for name in it.forbidden_in(out["modules"]) if name != "polars"]
    return {"ok": not heavy, "train_rows": out["train_rows"], "heavy_imported": heavy}


# ------------------------------------------------------------------ main


def short(function: str) -> str:
    return function.removesuffix("Function").lower()


def measure(args: argparse.Namespace) -> dict[str, Any]:
    python, how = it.find_python312()
    machine = describe_machine(None, python)  # the load average before the build and the runs
    build_dir = Path(args.build_dir).resolve()
    source_template = read_template(TEMPLATE)
    functions, layers = functions_and_layers(source_template)
    needed = [build_dir / name for name in [*functions, *layers]]
    build_seconds = None
    if args.build or not all(p.is_dir() for p in needed):
        build_seconds = sam_build(build_dir, python)
    missing = [str(p) for p in needed if not p.is_dir()]
    if missing:
        raise it.SetupError(f"not in the build output: {', '.join(missing)}")
    magic = bytes.fromhex(
        subprocess.run(
            [python, "-I", "-c", "import importlib.util; print(importlib.util.MAGIC_NUMBER.hex())"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    )

    it.log("sizing the built layers and functions (zipping them in a temporary file)")
    layer_rows = {}
    for layer in layers:
        unzipped, files = tree_size(build_dir / layer)
        layer_rows[layer] = {
            "unzipped_bytes": unzipped,
            "zipped_bytes": zipped_size(build_dir / layer),
            "files": files,
            "bytecode": bytecode_report(build_dir / layer, magic),
        }
    function_rows = {}
    for function, its_layers in functions.items():
        code_unzipped, _ = tree_size(build_dir / function)
        total = code_unzipped + sum(layer_rows[layer]["unzipped_bytes"] for layer in its_layers)
        function_rows[function] = {
            "layers": its_layers,
            "code_unzipped_bytes": code_unzipped,
            "code_zipped_bytes": zipped_size(build_dir / function),
            "total_unzipped_bytes": total,
            "code_bytecode": bytecode_report(build_dir / function, magic),
        }

    work = Path(tempfile.mkdtemp(prefix=".layer-opt-", dir=BENCH))  # same file system as the build: hard links
    try:
        runtime = runtime_dir(python, args.rebuild_runtime)
        with_pyc = opt_dirs(build_dir, functions, work, keep_bytecode=True)
        without_pyc = opt_dirs(build_dir, functions, work, keep_bytecode=False) if not args.no_sources else {}
        warnings: list[str] = []
        targets = [it.Target("boto3", "import boto3", "boto3", [runtime], None, False)]
        if FLOOR_FUNCTION in with_pyc:
            probe = work / "floor"
            probe.mkdir()
            (probe / "floor_probe.py").write_text(FLOOR_PROBE)
            targets.append(
                it.Target(
                    "floor", "floor: pydantic+Powertools", "floor_probe", [probe, with_pyc[FLOOR_FUNCTION], runtime], None, False
                )
            )
        for function in functions:
            code = build_dir / function
            targets.append(
                it.Target(
                    function, f"{short(function)}: import app", "app", [code, with_pyc[function], runtime], short(function), True
                )
            )
            if without_pyc:
                label = f"{short(function)}: no layer .pyc"
                targets.append(
                    it.Target(f"{function}/sources", label, "app", [code, without_pyc[function], runtime], short(function), False)
                )
        for t in targets:
            t.env = it.lambda_env(t.function, python, warnings)
            if t.function:
                t.env["LAMBDA_TASK_ROOT"] = str(t.paths[0])
        flags = ["-I", "-S", "-B"]  # -B: nothing written, as on the read-only /opt and /var/task
        for t in targets:  # discarded warm-up round: the OS page cache
            it.run_child(python, t, flags)
        for i in range(args.runs):
            if not args.json:
                it.log(f"round {i + 1}/{args.runs}")
            for t in targets:
                report, wall, cpu, _ = it.run_child(python, t, flags)
                t.samples.append({"import_s": report["import_s"], "process_s": wall, "cpu_s": cpu, "modules": report["modules"]})
        version = report["version"]
        prepare_check = run_prepare(python, with_pyc["PrepareFunction"], runtime) if "PrepareFunction" in with_pyc else None
    finally:
        shutil.rmtree(work, ignore_errors=True)

    boto3_median = statistics.median(s["import_s"] for s in targets[0].samples)
    import_rows = []
    for t in targets:
        values = [s["import_s"] for s in t.samples]
        row: dict[str, Any] = {
            "key": t.key,
            "label": t.label,
            "median_s": statistics.median(values),
            "min_s": min(values),
            "max_s": max(values),
            "ratio_to_boto3": statistics.median(values) / boto3_median,
            "heavy_imported": sorted({f for s in t.samples for f in it.forbidden_in(s["modules"])}),
            "samples_s": values,
        }
        if t.handler:
            reasons = []
            if row["median_s"] >= args.ratio * boto3_median:
                reasons.append(
                    f"median {row['median_s']:.3f} s >= {args.ratio} x import boto3 ({args.ratio * boto3_median:.3f} s)"
                )
            if row["heavy_imported"]:
                reasons.append(f"imports {', '.join(row['heavy_imported'])}")
            row["result"] = "FAIL" if reasons else "PASS"
            row["reasons"] = reasons
        import_rows.append(row)

    checks = []
    for layer, row in layer_rows.items():
        bc = row["bytecode"]
        ok = bc["py"] > 0 and bc["kinds"]["unchecked-hash"] == bc["py"]
        checks.append((ok, f"{layer}: {bc['kinds']['unchecked-hash']} of {bc['py']} .py have a CPython 3.12 unchecked-hash .pyc"))
    for function, row in function_rows.items():
        checks.append(
            (
                row["total_unzipped_bytes"] < UNZIPPED_LIMIT,
                f"{function}: code + layers {row['total_unzipped_bytes'] / MIB:.1f} MiB unzipped, limit {UNZIPPED_LIMIT / MIB:.0f} MiB",
            )
        )
        checks.append((len(row["layers"]) <= MAX_LAYERS, f"{function}: {len(row['layers'])} layer(s), limit {MAX_LAYERS}"))
    if prepare_check is not None:
        what = (
            f"PrepareFunction: datadrop.dataprep.prepare runs on its layers alone (examples/penguins as CSV, gzip, "
            f"Parquet, JSON Lines; train rows {prepare_check.get('train_rows')})"
        )
        if prepare_check.get("heavy_imported"):
            what += f"; but it imported {', '.join(prepare_check['heavy_imported'])}, which no layer ships"
        if prepare_check.get("error"):
            what += f"; failed: {prepare_check['error']}"
        checks.append((prepare_check["ok"], what))
    for row in import_rows:
        if "result" in row:
            checks.append(
                (
                    row["result"] == "PASS",
                    f"{row['label']}: median {row['median_s']:.3f} s = {row['ratio_to_boto3']:.2f}x import boto3"
                    + (f" ({'; '.join(row['reasons'])})" if row["reasons"] else f", limit {args.ratio}x"),
                )
            )
    return {
        "date": time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime()),
        "machine": {**machine, "python": version, "load_avg_at_end": describe_machine(version, python)["load_avg"]},
        "python_found_via": how,
        "build_dir": str(build_dir),
        "built_now_seconds": build_seconds,
        "runs": args.runs,
        "ratio": args.ratio,
        "limits": {"unzipped_bytes": UNZIPPED_LIMIT, "zipped_direct_upload_bytes": ZIPPED_DIRECT_LIMIT, "layers": MAX_LAYERS},
        "layers": layer_rows,
        "functions": function_rows,
        "imports": import_rows,
        "prepare_on_its_layers": prepare_check,
        "boto3_median_s": boto3_median,
        "checks": [{"ok": ok, "what": what} for ok, what in checks],
        "passed": all(ok for ok, _ in checks),
        "warnings": sorted(set(warnings)),
    }


def mib(n: int) -> str:
    return f"{n / MIB:.1f}"


def print_report(r: dict[str, Any]) -> None:
    m = r["machine"]
    print()
    print(f"datadrop Lambda layers as built by sam build ({r['build_dir']}), and handler imports ({r['runs']} runs each)")
    print(f"date    : {r['date']}")
    print(
        f"machine : {m['platform']}; {m['cpu_model']}; {m['cores']} cores ({m['usable_cores']} usable); "
        f"{m['memory_total_gb']} GB RAM; load avg at start {' '.join(map(str, m['load_avg'] or []))}, "
        f"at end {' '.join(map(str, m.get('load_avg_at_end') or []))}"
    )
    print(f"python  : {m['python']} {m['python_executable']} (via {r['python_found_via']})")
    if r["built_now_seconds"] is not None:
        print(f"build   : sam build ran now ({r['built_now_seconds']:.0f} s)")
    print()
    print("layers (MiB; the .zip as sam package deflates it; Lambda: direct upload <= 50 MiB zipped, via S3 no zipped limit)")
    fmt = "{:<14} {:>9} {:>9} {:>7} {:>7} {:>15}  {}"
    print(fmt.format("layer", "unzipped", "zipped", "files", ".py", "3.12 .pyc", "zipped vs 50 MiB direct upload"))
    for layer, row in r["layers"].items():
        bc = row["bytecode"]
        direct = (
            "fits"
            if row["zipped_bytes"] <= r["limits"]["zipped_direct_upload_bytes"]
            else "over: S3 only (CloudFormation uploads via S3)"
        )
        print(
            fmt.format(
                layer, mib(row["unzipped_bytes"]), mib(row["zipped_bytes"]), row["files"], bc["py"],
                f"{bc['kinds']['unchecked-hash']} unchecked", direct,
            )
        )  # fmt: skip
    print()
    print(f"functions (MiB; limit: code + all layers unzipped < {r['limits']['unzipped_bytes']:,} bytes = 250 MiB)")
    fmt = "{:<18} {:>6} {:>9} {:>9} {:>8}  {}"
    print(fmt.format("function", "code", "+ layers", "= total", "of limit", "layers"))
    for function, row in r["functions"].items():
        layers_bytes = row["total_unzipped_bytes"] - row["code_unzipped_bytes"]
        print(
            fmt.format(
                function, mib(row["code_unzipped_bytes"]), mib(layers_bytes), mib(row["total_unzipped_bytes"]),
                f"{100 * row['total_unzipped_bytes'] / r['limits']['unzipped_bytes']:.0f} %", ", ".join(row["layers"]),
            )
        )  # fmt: skip
    print()
    print(
        f"imports: `import app` in python3.12 -I -S -B, sys.path = [function dir, its layers as /opt/python, boto3 as "
        f"/var/runtime]; limit {r['ratio']}x the `import boto3` median ({r['ratio'] * r['boto3_median_s']:.3f} s)"
    )
    fmt = "{:<26} {:>8} {:>8} {:>8} {:>9}  {:<15} {}"
    print(fmt.format("target", "median s", "min s", "max s", "x boto3", "heavy imported", "result"))
    for row in r["imports"]:
        print(
            fmt.format(
                row["label"], f"{row['median_s']:.3f}", f"{row['min_s']:.3f}", f"{row['max_s']:.3f}",
                f"{row['ratio_to_boto3']:.2f}", ", ".join(row["heavy_imported"]) or "none", row.get("result", ""),
            )
        )  # fmt: skip
    print("(the `no layer .pyc` rows: the same layers without their bytecode, compiled at every cold start; not judged)")
    if any(row["key"] == "floor" for row in r["imports"]):
        print(
            "(`floor`: import boto3, pydantic's BaseModel and Powertools' Logger, Metrics and idempotency, nothing of "
            f"datadrop, on {FLOOR_FUNCTION}'s layers; not judged)"
        )
    for w in r["warnings"]:
        print(f"warning: {w}")
    print()
    for check in r["checks"]:
        print(f"  {'PASS' if check['ok'] else 'FAIL'}  {check['what']}")
    print()
    print("PASS: every limit met" if r["passed"] else "FAIL: a limit missed (above)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python bench/layers.py",
        description="Sizes of the layers `sam build` builds against Lambda's limits, their bytecode, and every "
        f"handler's import time against {RATIO}x `import boto3` in the same run.",
        epilog="Exit status: 0 every limit met, 1 a limit missed, 2 setup error.",
    )
    parser.add_argument(
        "--build", action="store_true", help="run sam build first (it runs anyway when the build output is missing)"
    )
    parser.add_argument("--build-dir", default=str(DEFAULT_BUILD_DIR), help="sam build's output (default .aws-sam/build)")
    parser.add_argument("--runs", type=int, default=7, help="fresh processes per handler and baseline (default 7)")
    parser.add_argument("--ratio", type=float, default=RATIO, help=f"limit of handler / boto3 import medians (default {RATIO})")
    parser.add_argument("--no-sources", action="store_true", help="skip the rows of the layers without bytecode")
    parser.add_argument("--rebuild-runtime", action="store_true", help="reinstall the cached boto3 runtime directory")
    parser.add_argument("--json", action="store_true", help="print the numbers as JSON instead of the tables")
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    try:
        result = measure(args)
    except (it.SetupError, subprocess.CalledProcessError) as exc:
        it.log(f"error: {exc}")
        return 2
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print_report(result)
    return 0 if result["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
