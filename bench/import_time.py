#!/usr/bin/env python3
"""How long each Lambda handler module takes to import, in a Lambda-like, isolated interpreter.

Requirement: every handler (functions/*/app.py) imports in under 0.5 s with the datadrop layer on
the path, and imports neither the SageMaker SDK nor a training/dataframe library (polars only
lazily: `import app` must not pull it in).

What it does:

1. Builds a Lambda-like layer directory once, cached by the hash of layers/*/requirements.txt
   in bench/.layer-<hash>/python (git-ignored): the layers' requirements plus boto3 (which the
   Lambda runtime provides), as CPython 3.12 manylinux2014 x86_64 wheels, installed with
   `uv pip install --target` (or `pip install --target`). The datadrop package is re-copied into it
   on every run, so the current source is measured. The directory holds no bytecode (`--bytecode`
   says whether it is compiled before the timed runs).
2. Runs every handler import in a fresh `python3.12 -I -S -B` process per run, with sys.path =
   [function dir, layer dir] in front of the stdlib (no site, no dev venv), the environment
   variables template.yaml sets plus the Lambda runtime's (fake credentials, us-east-1), times
   `import app` inside the child and the whole child process from outside, and lists the heavy
   modules the import left in sys.modules.
3. Baselines in the same run: a bare interpreter start, `import boto3` alone (the floor every
   function pays) and `import polars` alone (what prepare pays lazily, on its first dataset).

Bytecode (--bytecode):
  warm  (default) the layer's .pyc exist (compiled once into a private pycache_prefix, in a
        discarded warm-up run): what the layers' Makefiles ship (bytecode) and boto3 from the
        runtime. A handler over budget here is over budget everywhere.
  none  sources only, nothing written: what a layer without bytecode costs on the read-only /opt
        (as SAM's python3.12 build made them), i.e. every cold start compiles the layer's .py files.

Exit status: 0 all handlers within budget and clean, 1 a handler over budget or importing a
forbidden module (the `-X importtime` chain responsible is printed), 2 setup error.

Stdlib only. Usage: python bench/import_time.py [--runs N] [--json] [--bytecode warm|none]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from machine import describe_machine  # bench/machine.py

REPO = Path(__file__).resolve().parent.parent
BENCH = REPO / "bench"
LAYER_SRC = REPO / "layers" / "datadrop"
# Every layer's requirements (layers/datadrop, layers/polars), merged into one directory: handlers see
# only what they import, and bench/layers.py measures the layers per function as sam build builds them.
REQUIREMENTS = sorted((REPO / "layers").glob("*/requirements.txt"))
FUNCTIONS = REPO / "functions"
TEMPLATE = REPO / "template.yaml"

BUDGET_S = 0.5
PY_VERSION = "3.12"
PYENV_FALLBACK = "3.12.1"
# What the Lambda python3.12 runtime provides on top of the layer (it ships boto3 in /var/runtime).
RUNTIME_PROVIDED = ["boto3"]
# Part of the cache key: change it when the way the layer is built changes.
LAYER_RECIPE = "v1 cp312 manylinux2014_x86_64 +boto3 no-bytecode"

# A handler import must leave none of these (top-level package names) in sys.modules.
FORBIDDEN = (
    "sagemaker",  # the SageMaker Python SDK
    "sagemaker_core",
    "sagemaker_inference",
    "xgboost",
    "sklearn",
    "lightgbm",
    "catboost",
    "polars",  # allowed only lazily (prepare imports it when it has data to prepare)
    "numpy",
    "pandas",
    "pyarrow",
    "scipy",
    "torch",
    "tensorflow",
)

HANDLER_ORDER = ["prepare", "train", "evaluate", "deploy"]

# Fake values for the Globals environment variables template.yaml sets on every function.
TEMPLATE_ENV_VALUES = {
    "STATE_TABLE_NAME": "datadrop-bench-StateTable-BENCH0000001",
    "IDEMPOTENCY_TABLE_NAME": "datadrop-bench-IdempotencyTable-BENCH0000002",
    "EVENT_BUS_NAME": "datadrop-bench-events",
    "DATA_BUCKET_NAME": "datadrop-bench-databucket-bench0000003",
    "ARTIFACT_BUCKET_NAME": "datadrop-bench-artifactbucket-bench0000004",
    "ARTIFACT_PREFIX": "datasets",
    "STUCK_AFTER_MINUTES": "30",
    "GIVE_UP_AFTER_HOURS": "24",
    "NAME_PREFIX": "datadrop",
    "DEFAULT_ACCURACY_THRESHOLD": "0.8",
    "SAGEMAKER_ROLE_ARN": "arn:aws:iam::123456789012:role/datadrop-bench-SageMakerExecutionRole-BENCH0000005",
    "TRAINING_INSTANCE_TYPE": "ml.m5.large",
    "TRANSFORM_INSTANCE_TYPE": "ml.m5.large",
    "ENDPOINT_INSTANCE_TYPE": "ml.m5.large",
    "DATADROP_COMPUTE": "sagemaker",
    "POWERTOOLS_SERVICE_NAME": "datadrop",
    "POWERTOOLS_LOG_LEVEL": "INFO",
    "POWERTOOLS_METRICS_NAMESPACE": "datadrop",
}
REQUIRED_ENV = [
    "STATE_TABLE_NAME",
    "IDEMPOTENCY_TABLE_NAME",
    "EVENT_BUS_NAME",
    "DATA_BUCKET_NAME",
    "ARTIFACT_BUCKET_NAME",
    "SAGEMAKER_ROLE_ARN",
    "NAME_PREFIX",
]

MARKER = "@@IMPORT_TIME_BENCH@@"

# Runs in the child: `python -I -S [-B] -c CHILD <module or ''> <sys.path entries...>`.
# Only sys and time (both built in) are loaded before the timed import.
CHILD = r"""
import sys, time
_target, _paths = sys.argv[1], sys.argv[2:]
_stdlib_path = list(sys.path)
sys.path[:0] = _paths
_t0 = time.perf_counter()
if _target:
    __import__(_target)
_t1 = time.perf_counter()
import json, os
_roots = [os.path.realpath(p) for p in sys.path if p]
_outside = []
for _name, _mod in list(sys.modules.items()):
    _file = getattr(_mod, "__file__", None)
    if _file and not any(os.path.realpath(_file).startswith(_r + os.sep) for _r in _roots):
        _outside.append(_name)
print(%(marker)r + json.dumps({
    "import_s": _t1 - _t0,
    "modules": sorted(sys.modules),
    "outside_path": sorted(_outside),
    "stdlib_path": _stdlib_path,
    "sys_path": sys.path,
    "version": sys.version.split()[0],
    "executable": sys.executable,
    "no_site": "site" not in sys.modules and sys.flags.no_site == 1,
    "isolated": sys.flags.isolated == 1,
    "dont_write_bytecode": sys.dont_write_bytecode,
    "pycache_prefix": sys.pycache_prefix,
}))
""" % {"marker": MARKER}


class SetupError(Exception):
    pass


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# ------------------------------------------------------------------ interpreter


def _version_of(cmd: list[str], env: dict[str, str] | None = None) -> tuple[str, str] | None:
    """(version, real executable) of a python command, or None when it does not run."""
    try:
        out = subprocess.run(
            [*cmd, "-I", "-S", "-c", "import sys; print('%d.%d' % sys.version_info[:2]); print(sys.executable)"],
            capture_output=True,
            text=True,
            timeout=30,
            env=env,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    lines = out.stdout.split()
    if out.returncode != 0 or len(lines) < 2:
        return None
    return lines[0], lines[1]


def find_python312() -> tuple[str, str]:
    """(interpreter path, how it was found). Order: sys.executable, python3.12 on PATH, pyenv."""
    tried = []
    if sys.version_info[:2] == (3, 12):
        return sys.executable, "sys.executable"
    tried.append(f"sys.executable ({sys.executable}) is {sys.version.split()[0]}")
    exe = shutil.which("python3.12")
    if exe:
        found = _version_of([exe])
        if found and found[0] == PY_VERSION:
            return found[1], f"python3.12 on PATH ({exe})"
        tried.append(f"python3.12 on PATH ({exe}) does not run as 3.12 (a pyenv shim without that version selected?)")
    else:
        tried.append("no python3.12 on PATH")
    env = dict(os.environ, PYENV_VERSION=PYENV_FALLBACK)
    found = _version_of(["python"], env=env)
    if found and found[0] == PY_VERSION:
        return found[1], f"pyenv (PYENV_VERSION={PYENV_FALLBACK} python)"
    tried.append(f"PYENV_VERSION={PYENV_FALLBACK} python is not a 3.12 interpreter")
    # Under a pyenv-run python, PATH starts with that version's bin, hiding the shims: ask pyenv itself.
    pyenv_root = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv")
    pyenv = shutil.which("pyenv") or (str(pyenv_root / "bin" / "pyenv") if (pyenv_root / "bin" / "pyenv").is_file() else None)
    if pyenv:
        found = _version_of([pyenv, "exec", "python"], env=env)
        if found and found[0] == PY_VERSION:
            return found[1], f"pyenv (PYENV_VERSION={PYENV_FALLBACK} {pyenv} exec python)"
        tried.append(f"PYENV_VERSION={PYENV_FALLBACK} {pyenv} exec python is not a 3.12 interpreter")
    else:
        tried.append("no pyenv")
    raise SetupError(
        "no Python 3.12 interpreter found (the Lambda runtime is python3.12, so the bench only measures 3.12):\n  - "
        + "\n  - ".join(tried)
        + f"\n  install one (e.g. `pyenv install {PYENV_FALLBACK}`) or run this script with a 3.12 python."
    )


# ------------------------------------------------------------------ layer


def find_uv() -> str | None:
    beside = Path(sys.executable).parent / "uv"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which("uv")


def layer_root() -> Path:
    digest = hashlib.sha256(b"".join(r.read_bytes() for r in REQUIREMENTS) + LAYER_RECIPE.encode()).hexdigest()[:12]
    return BENCH / f".layer-{digest}"


def _remove_bytecode(tree: Path) -> None:
    for cache in list(tree.rglob("__pycache__")):
        shutil.rmtree(cache, ignore_errors=True)
    for pyc in tree.rglob("*.py[co]"):
        pyc.unlink(missing_ok=True)


def build_layer(python: str, rebuild: bool) -> tuple[Path, dict]:
    """Install the layer's dependencies once (cached), then copy the current datadrop package in."""
    root = layer_root()
    target = root / "python"
    stamp = root / "layer.json"
    if rebuild and root.exists():
        shutil.rmtree(root)
    if not stamp.is_file() or not target.is_dir():
        if root.exists():
            shutil.rmtree(root)
        root.mkdir(parents=True)
        staging = Path(tempfile.mkdtemp(prefix="python.", dir=root))
        uv = find_uv()
        reqs = [arg for r in REQUIREMENTS for arg in ("-r", str(r))] + RUNTIME_PROVIDED
        if uv:
            cmd = [
                uv,
                "pip",
                "install",
                "--quiet",
                "--target",
                str(staging),
                "--python",
                python,
                "--python-version",
                PY_VERSION,
                "--python-platform",
                "x86_64-manylinux2014",
                "--only-binary",
                ":all:",
                *reqs,
            ]
            installer = "uv"
        else:
            cmd = [
                python,
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "--no-compile",
                "--target",
                str(staging),
                "--only-binary=:all:",
                "--python-version",
                PY_VERSION,
                "--platform",
                "manylinux2014_x86_64",
                "--implementation",
                "cp",
                *reqs,
            ]
            installer = "pip"
        log(f"building the layer once in {target.relative_to(REPO)} ({installer}):\n  $ {' '.join(cmd)}")
        env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH", "UV_SYSTEM_PYTHON")}
        proc = subprocess.run(cmd, env=env, stdout=sys.stderr)  # keep stdout for the table / --json
        if proc.returncode != 0:
            shutil.rmtree(root, ignore_errors=True)
            raise SetupError(f"layer install failed ({installer} exit {proc.returncode}); command above")
        _remove_bytecode(staging)  # sam build extracts wheels: sources only
        staging.rename(target)
        stamp.write_text(
            json.dumps(
                {
                    "installer": installer,
                    "command": cmd,
                    "requirements": "".join(r.read_text() for r in REQUIREMENTS),
                    "recipe": LAYER_RECIPE,
                    "built": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                },
                indent=2,
            )
        )
    info = json.loads(stamp.read_text())

    # The package itself: re-copied every run so the bench measures the current source.
    dest = target / "datadrop"
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(LAYER_SRC / "datadrop", dest, ignore=shutil.ignore_patterns("__pycache__", "*.py[co]"))
    _remove_bytecode(target)  # in case anything wrote bytecode into it
    size = sum(f.stat().st_size for f in target.rglob("*") if f.is_file())
    info["size_mb"] = round(size / 1e6, 1)
    info["top_level"] = sorted(p.name for p in target.iterdir() if not p.name.endswith((".dist-info", ".libs")))
    return target, info


# ------------------------------------------------------------------ environment


def template_env_names() -> list[str]:
    """The variable names under Globals.Function.Environment.Variables in template.yaml."""
    names: list[str] = []
    lines = TEMPLATE.read_text().splitlines()
    in_globals = in_vars = False
    vars_indent = 0
    for line in lines:
        if re.match(r"^\S", line):
            in_globals = line.startswith("Globals:")
            in_vars = False
            continue
        if not in_globals or not line.strip() or line.lstrip().startswith("#"):
            continue
        indent = len(line) - len(line.lstrip())
        if line.strip() == "Variables:":
            in_vars, vars_indent = True, indent
            continue
        if in_vars:
            if indent <= vars_indent:
                in_vars = False
                continue
            m = re.match(r"^\s+([A-Za-z_][A-Za-z0-9_]*):", line)
            if m:
                names.append(m.group(1))
    return names


def lambda_env(function: str | None, python: str, warnings: list[str]) -> dict[str, str]:
    names = template_env_names()
    if not names:
        warnings.append("could not read Globals environment variables from template.yaml; using the known list")
        names = list(TEMPLATE_ENV_VALUES)
    env = {
        # what the Lambda runtime sets
        "PATH": os.pathsep.join(dict.fromkeys([str(Path(python).parent), "/usr/local/bin", "/usr/bin", "/bin"])),
        "LANG": "en_US.UTF-8",
        "TZ": ":UTC",
        "HOME": tempfile.gettempdir(),
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "AKIABENCHFAKEKEY0000",
        "AWS_SECRET_ACCESS_KEY": "bench/fake/secret/access/key/0000000000",
        "AWS_SESSION_TOKEN": "bench-fake-session-token",
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_EXECUTION_ENV": "AWS_Lambda_python3.12",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "512",
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "_HANDLER": "app.handler",
    }
    if function:
        env["AWS_LAMBDA_FUNCTION_NAME"] = f"datadrop-bench-{function.capitalize()}Function-BENCH"
        env["LAMBDA_TASK_ROOT"] = str(FUNCTIONS / function)
    for name in names:
        if name not in TEMPLATE_ENV_VALUES:
            warnings.append(f"template.yaml sets {name}, which the bench has no fake value for; using 'bench'")
        env[name] = TEMPLATE_ENV_VALUES.get(name, "bench")
    missing = [n for n in REQUIRED_ENV if n not in names]
    if missing:
        warnings.append(f"template.yaml Globals no longer set {', '.join(missing)}; the bench sets them anyway")
        for n in missing:
            env[n] = TEMPLATE_ENV_VALUES[n]
    env["AWS_DEFAULT_REGION"] = "us-east-1"
    return env


# ------------------------------------------------------------------ measurement


class Target:
    def __init__(self, key: str, label: str, module: str, paths: list[Path], function: str | None, handler: bool):
        self.key, self.label, self.module, self.paths, self.function, self.handler = key, label, module, paths, function, handler
        self.env: dict[str, str] = {}
        self.samples: list[dict] = []
        self.importtime: list[dict] | None = None


def python_flags(bytecode: str, pycache: Path, write: bool) -> list[str]:
    flags = ["-I", "-S"]
    if not write:
        flags.append("-B")
    if bytecode == "warm":
        flags += ["-X", f"pycache_prefix={pycache}"]
    return flags


def run_child(python: str, target: Target, flags: list[str], extra: list[str] | None = None) -> tuple[dict, float, float, str]:
    """One fresh process: (child report, process wall seconds, process CPU seconds, stderr)."""
    cmd = [python, *flags, *(extra or []), "-c", CHILD, target.module, *map(str, target.paths)]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=target.env, cwd=tempfile.gettempdir())
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(MARKER)]
    if proc.returncode != 0 or not lines:
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-25:])
        raise SetupError(f"{target.label}: the child process failed (exit {proc.returncode}):\n{tail}")
    return json.loads(lines[-1][len(MARKER) :]), wall, cpu, proc.stderr


def forbidden_in(modules: list[str]) -> list[str]:
    tops = {m.split(".", 1)[0] for m in modules}
    return [f for f in FORBIDDEN if f in tops]


def parse_importtime(stderr: str) -> list[dict]:
    """`-X importtime` lines (post-order) → [{name, depth, self_us, cum_us, chain}] with each entry's importer chain."""
    rows = []
    for line in stderr.splitlines():
        m = re.match(r"^import time:\s+(\d+)\s+\|\s+(\d+)\s+\|(\s*)(\S+)", line)
        if m:
            rows.append(
                {"self_us": int(m.group(1)), "cum_us": int(m.group(2)), "depth": (len(m.group(3)) - 1) // 2, "name": m.group(4)}
            )
    # post-order: an entry's importer is the next entry one level up
    for i, row in enumerate(rows):
        chain, depth = [row["name"]], row["depth"]
        for later in rows[i + 1 :]:
            if later["depth"] < depth:
                chain.append(later["name"])
                depth = later["depth"]
                if depth == 0:
                    break
        row["chain"] = list(reversed(chain))
    return rows


def explain(python: str, target: Target, flags: list[str], top: int) -> dict:
    """Re-run the import once with -X importtime: the top cumulative entries and the chains to forbidden modules."""
    _, _, _, stderr = run_child(python, target, flags, ["-X", "importtime"])
    rows = parse_importtime(stderr)
    ranked = sorted(rows, key=lambda r: r["cum_us"], reverse=True)[:top]
    root = next((r for r in rows if r["name"] == target.module and len(r["chain"]) == 1), None)
    direct = sorted(
        (r for r in rows if len(r["chain"]) == 2 and r["chain"][0] == target.module), key=lambda r: r["cum_us"], reverse=True
    )
    heavy = {}
    for name in forbidden_in([r["name"] for r in rows]):
        # the package's own entry (its importer chain); else the first of its submodules
        row = next((r for r in rows if r["name"] == name), None) or next(r for r in rows if r["name"].split(".", 1)[0] == name)
        heavy[name] = {"chain": row["chain"], "cum_us": row["cum_us"]}
    return {"top": ranked, "root": root, "direct": direct, "forbidden_chains": heavy}


def summarize(samples: list[dict], key: str) -> tuple[float, float]:
    values = [s[key] for s in samples]
    return statistics.median(values), max(values)


# ------------------------------------------------------------------ machine


def machine_info(python: str, report: dict) -> dict:
    return describe_machine(report.get("version"), python)


# ------------------------------------------------------------------ main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python bench/import_time.py",
        description=(
            "Time `import app` of every Lambda handler (functions/*/app.py) in a fresh, isolated python3.12 "
            "process with only the function dir and a Lambda-like layer dir on sys.path; check the import "
            f"stays under the budget ({BUDGET_S} s) and imports no SageMaker SDK, training or dataframe library."
        ),
        epilog="Exit status: 0 pass, 1 a handler over budget or importing a forbidden module, 2 setup error.",
    )
    parser.add_argument("--runs", type=int, default=7, help="fresh processes per handler and baseline (default 7)")
    parser.add_argument("--json", action="store_true", help="print the numbers as JSON instead of the table")
    parser.add_argument("--budget", type=float, default=BUDGET_S, help=f"seconds per handler import (default {BUDGET_S})")
    parser.add_argument(
        "--judge",
        choices=["median", "max"],
        default="median",
        help="statistic compared with the budget (default median; max is stricter and noisier)",
    )
    parser.add_argument(
        "--bytecode",
        choices=["warm", "none"],
        default="warm",
        help="warm: the layer's .pyc exist, compiled once in a discarded warm-up run (default; best case); "
        "none: layer as .py only and nothing written, so every run compiles it, like a layer without bytecode on "
        "Lambda's read-only /opt (worst case)",
    )
    parser.add_argument(
        "--importtime",
        action="store_true",
        help="show the top -X importtime entries for every handler (always shown for a failing one)",
    )
    parser.add_argument("--top", type=int, default=15, help="-X importtime entries to show (default 15)")
    parser.add_argument("--handlers", help="comma-separated subset of functions/* to measure (default all)")
    parser.add_argument("--rebuild", action="store_true", help="rebuild the cached layer directory")
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be at least 1")

    warnings: list[str] = []
    try:
        python, how = find_python312()
        layer, layer_info = build_layer(python, args.rebuild)
        handlers = sorted(
            (p.parent.name for p in FUNCTIONS.glob("*/app.py")),
            key=lambda n: (HANDLER_ORDER.index(n) if n in HANDLER_ORDER else len(HANDLER_ORDER), n),
        )
        if args.handlers:
            wanted = [h.strip() for h in args.handlers.split(",") if h.strip()]
            unknown = [h for h in wanted if h not in handlers]
            if unknown:
                raise SetupError(f"no such handler(s): {', '.join(unknown)} (have {', '.join(handlers)})")
            handlers = [h for h in handlers if h in wanted]
        if not handlers:
            raise SetupError(f"no handlers found under {FUNCTIONS}")

        targets = [
            Target("python", "python (bare start)", "", [], None, False),
            Target("boto3", "import boto3", "boto3", [layer], None, False),
            Target("polars", "import polars", "polars", [layer], None, False),
        ] + [Target(h, f"{h}: import app", "app", [FUNCTIONS / h, layer], h, True) for h in handlers]
        for t in targets:
            t.env = lambda_env(t.function, python, warnings)

        pycache = layer.parent / "pycache"
        if args.bytecode == "warm":
            shutil.rmtree(pycache, ignore_errors=True)
        measure_flags = python_flags(args.bytecode, pycache, write=False)
        # Discarded warm-up round: OS page cache, and in warm mode the .pyc in the private pycache_prefix.
        for t in targets:
            run_child(python, t, python_flags(args.bytecode, pycache, write=args.bytecode == "warm"))
        # Interleaved rounds, so machine noise spreads over every row rather than hitting one.
        first_report: dict = {}
        for i in range(args.runs):
            if not args.json:
                log(f"round {i + 1}/{args.runs}")
            for t in targets:
                report, wall, cpu, _ = run_child(python, t, measure_flags)
                first_report = first_report or report
                t.samples.append(
                    {
                        "import_s": report["import_s"] if t.module else 0.0,
                        "process_s": wall,
                        "cpu_s": cpu,
                        "modules": report["modules"],
                        "outside_path": report["outside_path"],
                        "report": report,
                    }
                )
    except SetupError as exc:
        log(f"error: {exc}")
        return 2

    boto3_median = summarize(targets[1].samples, "import_s")[0]
    rows = []
    failed = False
    for t in targets:
        imp_med, imp_max = summarize(t.samples, "import_s")
        proc_med, proc_max = summarize(t.samples, "process_s")
        cpu_med, _ = summarize(t.samples, "cpu_s")
        heavy = sorted({f for s in t.samples for f in forbidden_in(s["modules"])}, key=FORBIDDEN.index)
        outside = sorted({m for s in t.samples for m in s["outside_path"]})
        rep = t.samples[-1]["report"]
        isolation_ok = (
            rep["isolated"]
            and rep["no_site"]
            and not outside
            and rep["sys_path"][: len(t.paths)] == [str(p) for p in t.paths]
            and not any("site-packages" in p for p in rep["stdlib_path"])
        )
        row = {
            "key": t.key,
            "label": t.label,
            "handler": t.handler,
            "import_median_s": imp_med,
            "import_max_s": imp_max,
            "over_boto3_median_s": imp_med - boto3_median if t.handler else None,
            "process_median_s": proc_med,
            "process_max_s": proc_max,
            "cpu_median_s": cpu_med,
            "modules": len(t.samples[-1]["modules"]),
            "heavy_imported": heavy,
            "sys_path_front": [str(p) for p in t.paths],
            "isolated": isolation_ok,
            "outside_path_modules": outside,
            "samples": [{k: s[k] for k in ("import_s", "process_s", "cpu_s")} for s in t.samples],
        }
        if t.handler:
            judged = imp_med if args.judge == "median" else imp_max
            reasons = []
            if judged >= args.budget:
                reasons.append(f"{args.judge} import {judged:.3f} s >= {args.budget} s")
            if heavy:
                reasons.append(f"imports {', '.join(heavy)}")
            if not isolation_ok:
                reasons.append(
                    "not isolated (modules from outside [function dir, layer, stdlib]: "
                    f"{', '.join(outside) or 'none'}; see sys_path)"
                )
            row["result"] = "FAIL" if reasons else "PASS"
            row["reasons"] = reasons
            row["max_over_budget"] = imp_max >= args.budget
            failed = failed or bool(reasons)
            if reasons or args.importtime:
                row["importtime"] = explain(python, t, measure_flags, args.top)
        rows.append(row)

    result = {
        "budget_s": args.budget,
        "judge": args.judge,
        "runs": args.runs,
        "bytecode": args.bytecode,
        "python_found_via": how,
        "python_flags": measure_flags,
        "machine": machine_info(python, first_report),
        "layer": {"path": str(layer), **{k: layer_info[k] for k in ("installer", "built", "size_mb", "top_level")}},
        "forbidden": list(FORBIDDEN),
        "rows": rows,
        "warnings": sorted(set(warnings)),
        "passed": not failed,
    }
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print_table(result)
    return 1 if failed else 0


def _s(x: float | None) -> str:
    return "-" if x is None else f"{x:.3f}"


def print_table(r: dict) -> None:
    m = r["machine"]
    layer = r["layer"]
    print()
    print(
        f"datadrop Lambda handler import time: {r['runs']} fresh processes per row, budget {r['budget_s']} s "
        f"({r['judge']} of `import app`)"
    )
    print(
        f"machine : {m['platform']}; {m['cpu_model']}; {m['cores']} cores ({m['usable_cores']} usable); "
        f"load avg {' '.join(map(str, m['load_avg'] or []))}"
    )
    print(f"python  : {m['python']} {m['python_executable']} (via {r['python_found_via']}), flags {' '.join(r['python_flags'])}")
    try:
        shown = Path(layer["path"]).relative_to(REPO)
    except ValueError:
        shown = layer["path"]
    print(
        f"layer   : {shown} ({layer['installer']}, built {layer['built']}, {layer['size_mb']} MB unzipped; "
        f"datadrop copied fresh from layers/datadrop/datadrop)"
    )
    print(
        f"bytecode: {r['bytecode']} "
        + (
            "(.py only in the layer, nothing written: every cold start compiles the layer, as on Lambda's read-only /opt)"
            if r["bytecode"] == "none"
            else "(layer .pyc precompiled in a private pycache_prefix: best case)"
        )
    )
    iso = all(row["isolated"] for row in r["rows"])
    print(
        "sys.path: [function dir, layer dir] + stdlib (python -I -S: no site, no venv); isolation "
        + ("ok: every module came from those dirs" if iso else "BROKEN: see outside_path_modules in --json")
    )
    print()
    head = ("", "import (s)", "", "vs boto3", "process (s)", "", "cpu (s)", "", "", "")
    cols = ("target", "median", "max", "median", "median", "max", "median", "modules", "heavy imported", "result")
    widths = (22, 8, 7, 9, 8, 7, 8, 8, 16, 6)
    fmt = "  ".join(f"{{:<{w}}}" if i in (0, 8, 9) else f"{{:>{w}}}" for i, w in enumerate(widths))
    print(fmt.format(*head))
    print(fmt.format(*cols))
    print(fmt.format(*("-" * w for w in widths)))
    for row in r["rows"]:
        over = row["over_boto3_median_s"]
        print(
            fmt.format(
                row["label"],
                _s(row["import_median_s"]) if row["key"] != "python" else "-",
                _s(row["import_max_s"]) if row["key"] != "python" else "-",
                ("+" + _s(over)) if over is not None and over >= 0 else _s(over),
                _s(row["process_median_s"]),
                _s(row["process_max_s"]),
                _s(row["cpu_median_s"]),
                row["modules"],
                ", ".join(row["heavy_imported"]) or "none",
                row.get("result", ""),
            )
        )
    print()
    print(
        "import = time.perf_counter() around the import inside the child; process = the whole child from the parent, "
        "spawn to exit (interpreter start + import + the bench's module checks + teardown); cpu = its user+sys time;"
    )
    print(
        "vs boto3 = handler import median minus the `import boto3` median (what the handler adds to the floor every "
        "function pays); polars is what prepare pays lazily."
    )
    print(f"heavy = forbidden top-level packages left in sys.modules: {', '.join(r['forbidden'])}.")
    print(
        "Lambda's CPU share scales with MemorySize (512 MB is about a third of a vCPU), so Lambda cold imports "
        "run slower than this machine."
    )
    for w in r["warnings"]:
        print(f"warning: {w}")
    for row in r["rows"]:
        if row.get("max_over_budget") and row.get("result") == "PASS":
            print(f"note: {row['key']} max {row['import_max_s']:.3f} s exceeded the budget in one run (machine noise?)")
        if "importtime" in row:
            it = row["importtime"]
            print()
            why = "; ".join(row["reasons"]) or "requested with --importtime"
            print(
                f"{row['key']}: {why}. Top {len(it['top'])} cumulative -X importtime entries (one run, same flags and sys.path):"
            )
            print(f"  {'cum ms':>8}  {'self ms':>8}  chain (importer > ... > module)")
            for e in it["top"]:
                print(f"  {e['cum_us'] / 1000:8.1f}  {e['self_us'] / 1000:8.1f}  {' > '.join(e['chain'])}")
            if it["root"]:
                print(
                    f"  what `import {it['root']['name']}` spends its {it['root']['cum_us'] / 1000:.1f} ms on "
                    "(each module is charged to whoever imported it first):"
                )
                print(
                    f"  {it['root']['self_us'] / 1000:8.1f}  ms  {it['root']['name']} itself (its module body, "
                    "incl. work done at import time such as creating clients)"
                )
                for e in it["direct"][:8]:
                    print(f"  {e['cum_us'] / 1000:8.1f}  ms  {e['name']}")
            for name, info in it["forbidden_chains"].items():
                print(f"  forbidden {name} ({info['cum_us'] / 1000:.1f} ms cumulative) imported via: {' > '.join(info['chain'])}")
    print()
    bad = [row for row in r["rows"] if row.get("result") == "FAIL"]
    if bad:
        print("FAIL: " + "; ".join(f"{row['key']}: {', '.join(row['reasons'])}" for row in bad))
    else:
        n = sum(1 for row in r["rows"] if row["handler"])
        print(
            f"PASS: all {n} handlers import in under {r['budget_s']} s ({r['judge']}) without "
            "sagemaker, training or dataframe libraries."
        )


if __name__ == "__main__":
    sys.exit(main())
