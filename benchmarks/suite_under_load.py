"""The whole test suite, run while other work keeps every core busy: no test may depend on an idle machine.

Starts one CPU hog per core (a busy loop each, at the suite's priority, ending with this script),
then runs the README's test command, ``python3 -m pytest``, ``--runs`` times in a row, and records
each run's outcome, its pytest summary line and its wall time in
``results/suite_under_load.json``. Exits non-zero if any run fails.

    python benchmarks/suite_under_load.py --runs 2
    python benchmarks/suite_under_load.py --runs 1 --name rerun -- tests/train/test_distributed.py   # some tests only

The wall times are what the runs took under that load (about twice the time alone on two cores);
they are a record, not a target.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

from _common import machine, results_folder

REPO = Path(__file__).resolve().parents[1]
# A busy loop that ends when its parent (this script) is gone, however this script ends.
HOG = "import os, time\nparent = os.getppid()\nwhile os.getppid() == parent:\n    for _ in range(200_000): pass\n"
SUMMARY = re.compile(r"^=+ (.* in [0-9.]+s.*) =+$")


def start_hogs(count: int) -> list:
    return [subprocess.Popen([sys.executable, "-c", HOG]) for _ in range(count)]


def run_suite(log: Path, pytest_args: list) -> dict:
    started = time.monotonic()
    with open(log, "w", encoding="utf-8") as output:
        code = subprocess.call([sys.executable, "-m", "pytest", *pytest_args], cwd=REPO, stdout=output,
                               stderr=subprocess.STDOUT)
    seconds = time.monotonic() - started
    lines = log.read_text(encoding="utf-8", errors="replace").splitlines()
    summary = next((m.group(1) for line in reversed(lines) if (m := SUMMARY.match(line.strip()))), "no summary line")
    failed = [line.strip() for line in lines if line.startswith(("FAILED ", "ERROR "))]
    return {"pytest_args": pytest_args, "exit_code": code, "summary": summary, "wall_seconds": round(seconds), "failures": failed[:50],
            "log": str(log)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=2, help="suite runs in a row (default 2)")
    parser.add_argument("--hogs", type=int, default=os.cpu_count() or 2, help="busy loops beside it (default: one per core)")
    parser.add_argument("--name", default="suite_under_load", help="the results file's name (default suite_under_load)")
    parser.add_argument("pytest_args", nargs="*", help="after --: what pytest runs (default: the whole suite)")
    args = parser.parse_args()
    hogs = start_hogs(args.hogs)
    runs = []
    try:
        for number in range(1, args.runs + 1):
            log = Path(os.environ.get("TMPDIR", "/tmp")) / f"questlearn-suite-under-load-{number}.log"
            print(f"run {number} of {args.runs} beside {len(hogs)} CPU hogs (log: {log})", flush=True)
            runs.append(run_suite(log, args.pytest_args))
            print(json.dumps(runs[-1]), flush=True)
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()
    result = {"machine": machine(), "hogs": len(hogs), "load_at_end": os.getloadavg(), "runs": runs}
    path = results_folder() / f"{args.name}.json"
    path.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {path}")
    return 0 if all(run["exit_code"] == 0 for run in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
