"""What machine a benchmark ran on: both bench scripts print this with their numbers."""

from __future__ import annotations

import os
import platform
from pathlib import Path


def describe_machine(python_version: str | None, python_executable: str) -> dict:
    """Platform, CPU model, cores, memory and load average, from /proc where Linux has it."""
    cpu = platform.processor() or "unknown"
    memory: dict[str, int] = {}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            key, _, rest = line.partition(":")
            if key in ("MemTotal", "MemAvailable"):
                memory[key] = int(rest.split()[0]) * 1024
    except OSError:
        pass
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    try:
        load = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        load = None
    return {
        "platform": platform.platform(),
        "cpu_model": cpu,
        "cores": os.cpu_count(),
        "usable_cores": usable,
        "memory_total_gb": round(memory["MemTotal"] / 1e9, 1) if "MemTotal" in memory else None,
        "memory_available_gb": round(memory["MemAvailable"] / 1e9, 1) if "MemAvailable" in memory else None,
        "load_avg": load,
        "python": python_version,
        "python_executable": python_executable,
    }


def print_run_header(r: dict) -> None:
    """The date, machine, load and interpreter lines under a bench table's title."""
    m = r["machine"]
    print(f"date    : {r['date']}")
    print(
        f"machine : {m['platform']}; {m['cpu_model']}; {m['cores']} cores ({m['usable_cores']} usable); "
        f"{m['memory_total_gb']} GB RAM ({m['memory_available_gb']} GB available)"
    )
    after = m.get("after") or {}
    psi = after.get("cpu_pressure_some")
    print(
        f"load    : load avg at start {' '.join(map(str, m['load_avg'] or []))}, at end "
        f"{' '.join(map(str, after.get('load_avg') or []))}"
        + (
            f"; CPU pressure at end (some, %): avg10 {psi.get('avg10')}, avg60 {psi.get('avg60')}, avg300 {psi.get('avg300')}"
            if psi
            else ""
        )
    )
    print(f"python  : {m['python']} ({m['python_executable']})")
    print(f"bytecode: {r['bytecode']}")


def fmt_or_dash(x: float | None, fmt: str) -> str:
    return "-" if x is None else format(x, fmt)
