"""torch on CPU, before and after questlearn's thread limit, next to TensorFlow and JAX.

Each contender trains the quest MLP with :func:`questlearn.train._fit.train` on
the same split (the demo's size: 50,000 rows, batch 1024, 2 loading
threads) in a fresh process; contenders alternate, several rounds; the
figure is the median over rounds of the last epoch's seconds (the first
epoch pays for tracing and compilation).

* ``torch_default`` — ``QUESTLEARN_TORCH_THREADS=0``: torch's own thread
  count (one per core), i.e. questlearn before the fix;
* ``torch_questlearn`` — the fix: ``cores - workers`` threads
  (:mod:`questlearn.train._torch_cpu`);
* ``tensorflow``, ``jax`` — the other backends, for reference.

Usage: python benchmarks/bench_torch_cpu.py [--rows 50000] [--rounds 3] [--epochs 2]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import save, verdict  # noqa: E402

CONTENDERS = {
    "torch_default": {"KERAS_BACKEND": "torch", "QUESTLEARN_TORCH_THREADS": "0"},
    "torch_questlearn": {"KERAS_BACKEND": "torch"},
    "tensorflow": {"KERAS_BACKEND": "tensorflow"},
    "jax": {"KERAS_BACKEND": "jax"},
}
MODULES = {"torch_default": "torch", "torch_questlearn": "torch", "tensorflow": "tensorflow", "jax": "jax"}


def child(split: str, model_dir: str, epochs: str, workers: str) -> dict:
    import keras

    from questlearn.train._fit import train

    result = train(split, model_dir, epochs=int(epochs), batch_size=1024, workers=int(workers), verbose=0,
                   patience=100, seed=0)
    threads = None
    if keras.backend.backend() == "torch":
        import torch

        threads = torch.get_num_threads()
    return {"epoch_seconds": result.history["epoch_seconds"], "rows_per_second": result.history["rows_per_second"],
            "torch_threads": threads, "device": result.device}


def run(name: str, split: Path, work: Path, epochs: int, workers: int) -> dict:
    env = {**os.environ, **CONTENDERS[name], "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONUNBUFFERED": "1"}
    if name != "torch_default":
        env.pop("QUESTLEARN_TORCH_THREADS", None)
    model_dir = work / f"model-{name}"
    shutil.rmtree(model_dir, ignore_errors=True)
    result = subprocess.run([sys.executable, __file__, "--child", str(split), str(model_dir), str(epochs), str(workers)],
                            capture_output=True, text=True, env=env)
    if result.returncode != 0:
        raise RuntimeError(f"{name} failed:\n{result.stderr[-4000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--child", nargs=4, metavar=("SPLIT", "MODEL_DIR", "EPOCHS", "WORKERS"))
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(*args.child)))
        return 0
    from questlearn.split import split_csv
    from questlearn.synth import write_quest_log
    from questlearn.train._torch_cpu import usable_cores

    names = [n for n in CONTENDERS if importlib.util.find_spec(MODULES[n]) is not None]
    work = Path(tempfile.mkdtemp(prefix="questlearn-bench-torch-"))
    try:
        log = write_quest_log(work / "quests.csv", rows=args.rows, seed=0)
        split_csv(log, work / "split", rows_per_shard=10_000, val_fraction=0.2, seed=0,
                  id_columns=("attempt_id", "player_id"), progress=False)
        runs = {name: [] for name in names}
        for round_number in range(args.rounds):
            order = names if round_number % 2 == 0 else names[::-1]  # alternate, so drift hits all alike
            for name in order:
                outcome = run(name, work / "split", work, args.epochs, args.workers)
                runs[name].append(outcome)
                print(f"round {round_number + 1} {name:17s} epochs {[round(s, 2) for s in outcome['epoch_seconds']]} s"
                      f"  torch threads {outcome['torch_threads']}", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    medians = {name: statistics.median(r["epoch_seconds"][-1] for r in runs[name]) for name in names}
    summary = {name: {"median_last_epoch_seconds": round(medians[name], 3),
                      "median_rows_per_second": round(statistics.median(r["rows_per_second"][-1] for r in runs[name])),
                      "torch_threads": runs[name][0]["torch_threads"]} for name in names}
    ratios = {}
    if "torch_default" in medians and "torch_questlearn" in medians:
        ratios["torch_default_over_questlearn"] = round(medians["torch_default"] / medians["torch_questlearn"], 2)
        for other in ("tensorflow", "jax"):
            if other in medians:
                ratios[f"torch_questlearn_over_{other}"] = round(medians["torch_questlearn"] / medians[other], 2)
    for name in names:
        print(f"{name:17s} median last epoch {summary[name]['median_last_epoch_seconds']:7.2f} s"
              f"  {summary[name]['median_rows_per_second']:>9,} rows/s")
    print(json.dumps(ratios))
    path = save("torch_cpu", {"parameters": {**vars(args), "child": None, "usable_cores": usable_cores(),
                                             "training_rows": None},
                              "summary": summary, "ratios": ratios,
                              "runs": {n: [r["epoch_seconds"] for r in runs[n]] for n in names}})
    print(f"wrote {path}")
    checks = {}
    if "torch_default_over_questlearn" in ratios:
        checks["questlearn's thread limit makes torch on CPU faster than torch's default"] = ratios["torch_default_over_questlearn"] > 1
    return verdict(checks)


if __name__ == "__main__":
    sys.exit(main())
