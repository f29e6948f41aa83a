"""Helpers shared by the benchmarks: child-process runs with peak RSS, reporting."""

from __future__ import annotations

import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results"
RESULTS_VARIABLE = "QUESTLEARN_BENCH_RESULTS"  # another folder for the JSON files (a smoke run keeps results/ as published)


def own_peak_rss_kib() -> float:
    """This process's peak resident memory in KiB.

    Linux's ``VmHWM`` belongs to this address space alone. ``ru_maxrss`` is
    not: it survives ``exec``, so a child started from a large parent
    (subprocess uses vfork) reports the parent's size as its own peak.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return float(line.split()[1])
    except OSError:
        pass
    return float(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def peak_rss_mib() -> dict:
    """Peak resident memory of this process and of its largest waited-for child, in MiB."""
    own = own_peak_rss_kib() / 1024
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {"self": round(own, 1), "largest_child": round(children, 1)}


def run_child(script: Path, *args: str) -> dict:
    """Run ``script --child ARGS`` in a fresh interpreter; return the JSON it prints last."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONUNBUFFERED": "1"}
    result = subprocess.run([sys.executable, str(script), "--child", *args], capture_output=True, text=True, env=env)
    if result.returncode != 0:
        raise RuntimeError(f"{script.name} child failed:\n{result.stderr[-4000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def batch_rows(batch) -> int:
    """Rows of a ``(x, y[, weights])`` batch: ``x`` may be a dict of blocks, ``y`` is one array."""
    return len(batch[1])


def machine() -> dict:
    return {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform(),
            "when": time.strftime("%Y-%m-%d %H:%M:%S")}


def results_folder() -> Path:
    """Where :func:`save` writes: ``$QUESTLEARN_BENCH_RESULTS`` if set, else ``benchmarks/results``."""
    return Path(os.environ.get(RESULTS_VARIABLE) or RESULTS)


def save(name: str, payload: dict) -> Path:
    folder = results_folder()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.json"
    path.write_text(json.dumps({"machine": machine(), **payload}, indent=1) + "\n")
    return path


def verdict(checks: dict) -> int:
    """Print each target as PASS/FAIL; return an exit code."""
    failed = 0
    for description, ok in checks.items():
        print(f"  {'PASS' if ok else 'FAIL'}  {description}")
        failed += not ok
    return 1 if failed else 0
