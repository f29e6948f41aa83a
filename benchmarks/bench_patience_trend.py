"""Early stopping with and without the moving average of the validation loss, on the quality benchmark's splits.

For each table and seed, ``questlearn split`` makes the split ``bench_quality.py`` makes (same CSV, label,
task, seed and ``--test-fraction 0.2``); then ``train()`` runs twice on it, each in a fresh process: with the
default early stopping (the patience also reset when the moving average of the validation loss falls to a
new low by a margin) and with the moving average off (``smoothing=0``: the rule before it). ``questlearn
evaluate`` scores the test subset. Records each run's test score, epochs and train seconds::

    python benchmarks/bench_patience_trend.py --sets seattle_temps,stocks_price,star98_pass,fair_affair --seeds 2
    python benchmarks/bench_patience_trend.py --sets diamonds_cut,diamonds_price --seeds 1 --output results/x.json

Results: ``results/patience_trend.json`` (or ``--output``).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import machine, results_folder
from bench_quality import DATASETS, cli_env, json_from, materialise, questlearn, split_args

TRAIN = """
import sys, time
import questlearn.train._fit as fit
split, model_dir, seed, average = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
if average == "off":
    class WithoutAverage(fit.EarlyStoppingAfterWarmup):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, smoothing=0, **kwargs)
    fit.EarlyStoppingAfterWarmup = WithoutAverage
started = time.perf_counter()
result = fit.train(split, model_dir, seed=seed, verbose=0, saved_model=False)
print(len(result.history["epoch"]), time.perf_counter() - started)
"""
VARIANTS = (("without the average", "off"), ("with it (the default)", "on"))


def run(name: str, seed: int, work: Path) -> list:
    data = DATASETS[name]
    materialise(data)
    split = work / f"{name}_{seed}"
    questlearn(*split_args(data, split, seed, 0.2), cwd=work)
    rows = []
    for variant, average in VARIANTS:
        model = work / f"{name}_{seed}_{average}"
        done = subprocess.run([sys.executable, "-c", TRAIN, str(split), str(model), str(seed), average],
                              capture_output=True, text=True, check=True, env=cli_env(), cwd=work)
        epochs, seconds = done.stdout.split()[-2:]
        evaluated, _ = questlearn("evaluate", str(model), str(split), "--subset", "test", "--no-progress", cwd=work)
        report = json_from(evaluated.stdout)
        score = {"rmse": report["rmse"]} if data.task == "regression" else {"accuracy": report["accuracy"]}
        rows.append({"set": name, "seed": seed, "early_stopping": variant, **score, "epochs": int(epochs),
                     "train_seconds": round(float(seconds), 1)})
        print(json.dumps(rows[-1]), flush=True)
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", default="seattle_temps,stocks_price,star98_pass,fair_affair",
                        help="comma-separated data sets of bench_quality.py")
    parser.add_argument("--seeds", type=int, default=2, help="split and train seeds 0..N-1 (default 2)")
    parser.add_argument("--output", type=Path, default=None, help="the results file")
    args = parser.parse_args()
    started = time.strftime("%Y-%m-%d %H:%M:%S")
    with tempfile.TemporaryDirectory() as scratch:
        rows = [row for name in args.sets.split(",") for seed in range(args.seeds)
                for row in run(name, seed, Path(scratch))]
    output = args.output or results_folder() / "patience_trend.json"
    output.write_text(json.dumps({"machine": machine(), "started": started, "rows": rows}, indent=1) + "\n")
    print(f"wrote {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
