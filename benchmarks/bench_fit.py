"""End-to-end ``fit`` throughput: questlearn vs the original recipe, same model, one run.

Three fits of the same MLP (questlearn.model.build_model) on the same
training rows, each in a fresh process:

* ``recipe`` — the original recipe's PyDataset (one 1000-row CSV file per
  batch, pandas, 2 worker processes);
* ``questlearn`` — QuestSequence on the binary shards, batch 1000;
* ``in_memory`` — the same rows as numpy arrays already in memory: the
  model's own speed, with no input pipeline at all.

``input_wait_fraction = 1 - in_memory_time / pipeline_time`` estimates the
share of step time spent waiting on input. On a GPU machine the model is
faster, so this fraction is the number to watch there.

Usage: python benchmarks/bench_fit.py [--megabytes 24] [--epochs 2]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import run_child, save, verdict  # noqa: E402
from bench_loader import prepare, recipe_dataset  # noqa: E402


def child(kind: str, data: str, epochs: str) -> dict:
    import keras
    import numpy as np

    from questlearn.dataset import QuestSequence
    from questlearn.devices import describe_device
    from questlearn.model import build_model

    data, epochs = Path(data), int(epochs)
    keras.utils.set_random_seed(0)
    reference = QuestSequence(data / "split", "train", batch_size=1000, shuffle=True)
    mean, variance = reference.feature_moments()
    model = build_model(mean, variance, reference.num_classes)
    if kind == "recipe":
        files = sorted((data / "recipe").glob("split_data_*.csv"))
        inputs = recipe_dataset(files, workers=2, processes=True)
        model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])  # one-hot labels
        fit = dict(x=inputs)
        rows = sum(1 for _ in files) * 1000
    elif kind == "questlearn":
        fit = dict(x=reference)
        rows = reference.plan.total_rows
    else:
        batches = [reference[i] for i in range(len(reference))]
        x = np.concatenate([b[0] for b in batches])
        y = np.concatenate([b[1] for b in batches])
        fit = dict(x=x, y=y, batch_size=1000)
        rows = len(y)
    model.fit(**fit, epochs=1, shuffle=False, verbose=0)  # warm-up: graph tracing, pools
    started = time.perf_counter()
    model.fit(**fit, epochs=epochs, shuffle=False, verbose=0)
    seconds = time.perf_counter() - started
    return {"rows_per_second": rows * epochs / seconds, "seconds": seconds, "device": describe_device()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megabytes", type=float, default=24.0)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--child", nargs=3, metavar=("KIND", "DATA", "EPOCHS"))
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(*args.child)))
        return 0
    work = Path(tempfile.mkdtemp(prefix="questlearn-bench-fit-"))
    try:
        prepare(work, args.megabytes, seed=3)
        runs = {}
        for kind in ("recipe", "questlearn", "in_memory"):
            runs[kind] = run_child(Path(__file__), kind, str(work), str(args.epochs))
            print(f"{kind:11} {runs[kind]['rows_per_second']:>10,.0f} rows/s  ({runs[kind]['seconds']:.2f} s on {runs[kind]['device']})")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    speedup = runs["questlearn"]["rows_per_second"] / runs["recipe"]["rows_per_second"]
    wait = {kind: max(0.0, 1 - runs["in_memory"]["seconds"] / runs[kind]["seconds"]) for kind in ("recipe", "questlearn")}
    print(f"\nquestlearn fit is {speedup:.1f}x the recipe; input-wait fraction: "
          + ", ".join(f"{k} {v * 100:.0f} %" for k, v in wait.items()))
    save("fit", {"runs": runs, "speedup": speedup, "input_wait_fraction": wait})
    return verdict({
        f"questlearn fit faster than the recipe ({speedup:.1f}x)": speedup > 1.0,
        f"questlearn input wait below the recipe's ({wait['questlearn'] * 100:.0f} % vs {wait['recipe'] * 100:.0f} %)": wait["questlearn"] < wait["recipe"],
    })


if __name__ == "__main__":
    sys.exit(main())
