"""Whole-process wall time of ``python -m questlearn train`` on small tables: a baseline tree vs this one.

For each table (``penguins``: the 344-row Palmer penguins from the
``palmerpenguins`` package, label ``species``; ``synth``: a ``questlearn synth``
quest log of ``--synth-rows`` rows), split once with this tree (both trees read
the same split format), then ``--rounds`` rounds of two fresh processes,
``python -m questlearn train SPLIT --model-dir NEW_FOLDER --verbose 0`` with
``PYTHONPATH`` at the baseline tree (``--baseline``, default ``4aab085``,
checked out with ``git archive``) and at this tree, the order alternating
from round to round. Each process trains with its own tree's default plan
(batch size, epochs, patience, and here the in-memory path and steps per
execution), to its end: the time includes Python's and TensorFlow's start,
graph tracing and the export of the model files.

Reported per table: the median seconds of each tree, the median of the
per-round ratios ``baseline / this tree`` (above 1: this tree is faster),
and each tree's epochs run and best validation metric, from the summary
``train`` prints. The machine may be shared: the ratio, measured side by
side, is the number to read, not the seconds. Saves
``results/train_small_tables.json``::

    python benchmarks/bench_train_small.py [--rounds 3] [--synth-rows 5000] [--baseline 4aab085] [--tables penguins,synth]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import save

ROOT = Path(__file__).resolve().parents[1]


def checkout(commit: str, folder: Path) -> Path:
    """The tree at ``commit`` (``git archive``), unpacked into ``folder``."""
    folder.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", commit], check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive, check=True)
    return folder


def questlearn(tree: Path, *args) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(tree), "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONUNBUFFERED": "1"}
    # cwd=tree: ``python -m`` puts the working folder first on sys.path, ahead of PYTHONPATH
    return subprocess.run([sys.executable, "-m", "questlearn", *map(str, args)], capture_output=True, text=True,
                          env=env, cwd=tree, check=False)


def make_table(name: str, folder: Path, synth_rows: int) -> tuple[Path, str]:
    """``(split folder, metric)`` of a table."""
    if name == "penguins":
        import palmerpenguins

        palmerpenguins.load_penguins().to_csv(folder / "penguins.csv", index=False)
        source, options, metric = folder / "penguins.csv", ["--label", "species"], "best_val_accuracy"
    else:
        source, options, metric = folder / "synth.csv", [], "best_val_accuracy"
        done = questlearn(ROOT, "synth", source, "--rows", synth_rows, "--no-progress")
        if done.returncode:
            raise RuntimeError(done.stderr[-3000:])
    done = questlearn(ROOT, "split", source, folder / f"{name}_split", *options, "--no-progress")
    if done.returncode:
        raise RuntimeError(done.stderr[-3000:])
    return folder / f"{name}_split", metric


def train_once(tree: Path, split: Path, model_dir: Path) -> dict:
    started = time.perf_counter()
    done = questlearn(tree, "train", split, "--model-dir", model_dir, "--verbose", "0")
    seconds = time.perf_counter() - started
    if done.returncode:
        raise RuntimeError(f"train with {tree} failed:\n{done.stderr[-3000:]}")
    summary = json.loads(done.stdout[done.stdout.index("{"):])
    return {"seconds": seconds, **summary}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--synth-rows", type=int, default=5000)
    parser.add_argument("--baseline", default="4aab085")
    parser.add_argument("--tables", default="penguins,synth")
    args = parser.parse_args(argv)
    results = {}
    with tempfile.TemporaryDirectory() as temporary:
        temporary = Path(temporary)
        trees = {"baseline": checkout(args.baseline, temporary / "baseline"), "this_tree": ROOT}
        for table in args.tables.split(","):
            split, metric = make_table(table, temporary, args.synth_rows)
            runs = {name: [] for name in trees}
            for round_ in range(args.rounds):
                order = list(trees) if round_ % 2 == 0 else list(reversed(trees))
                for name in order:
                    run = train_once(trees[name], split, temporary / f"{table}_{name}_{round_}")
                    runs[name].append(run)
                    print(f"{table} round {round_} {name}: {run['seconds']:.1f} s, {run['epochs']} epochs, "
                          f"{metric} {run.get(metric)}", flush=True)
            ratios = [b["seconds"] / t["seconds"] for b, t in zip(runs["baseline"], runs["this_tree"])]
            results[table] = {
                **{name: {"median_seconds": round(statistics.median(r["seconds"] for r in runs[name]), 2),
                          "seconds": [round(r["seconds"], 2) for r in runs[name]],
                          "epochs": [r["epochs"] for r in runs[name]],
                          metric: [r.get(metric) for r in runs[name]]} for name in trees},
                "median_ratio_baseline_over_this_tree": round(statistics.median(ratios), 3),
            }
            print(f"{table}: baseline / this tree = {results[table]['median_ratio_baseline_over_this_tree']}", flush=True)
    path = save("train_small_tables", {"baseline": args.baseline, "rounds": args.rounds, "tables": results})
    print(f"saved {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
