"""Data-parallel training: 1 vs 2 local processes (keras.distribution, JAX, CPU), one run.

Contenders, each a fresh ``questlearn train`` command on the same split, run
alternately for several rounds:

* ``plain`` — ordinary single-process training (no distribution), the reference;
* ``1_process`` — ``--local-processes 1``: the multi-process code path with one process
  (its overhead: coordinator, DataParallel, fingerprint agreement);
* ``2_processes`` — ``--local-processes 2``: two processes on 127.0.0.1, each
  training on its equal half of every epoch, gradients all-reduced every step.

Figure: global training rows per second per epoch (``rows_per_second`` in
``history.json``: all training rows / epoch seconds), epoch 1 left out (it
includes XLA compilation), median over epochs and rounds; plus the wall time
of the whole command (start-up included). Ratios, not absolute times, are the
result: ``2_processes / 1_process``.

What to expect: on this 2-core box the two processes share the two cores that
one process already uses (XLA's CPU thread pool), and add an all-reduce per
step over Gloo, so no speed-up is possible here. The figure measures the cost
of the machinery. On a host with one accelerator per process, or several
hosts, each process brings its own compute and the all-reduce of this small
MLP's gradients (a few thousand floats) is cheap next to a step, so rows/s
should grow close to linearly with processes as long as the input pipeline of
each process keeps up (see bench_fit.py's input-wait fraction).

Usage: python benchmarks/bench_distributed.py [--megabytes 10] [--epochs 6] [--rounds 3] [--batch-size 1024]
(results/distributed.json; another batch size writes results/distributed_batchN.json)
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import save  # noqa: E402

CONTENDERS = {"plain": [], "1_process": ["--local-processes", "1"], "2_processes": ["--local-processes", "2"]}


def run(kind: str, split: Path, model_dir: Path, epochs: int, batch_size: int) -> dict:
    env = {**os.environ, "KERAS_BACKEND": "jax", "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONUNBUFFERED": "1"}
    command = [sys.executable, "-m", "questlearn", "train", str(split), "--model-dir", str(model_dir),
               "--epochs", str(epochs), "--batch-size", str(batch_size), "--workers", "1", "--verbose", "0",
               *CONTENDERS[kind]]
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=1800)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"{kind} failed:\n{done.stderr[-4000:]}")
    history = json.loads((model_dir / "history.json").read_text())
    shutil.rmtree(model_dir)
    return {"wall_seconds": wall, "rows_per_second": history["rows_per_second"], "rows_seen": history.get("rows_seen")}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megabytes", type=float, default=10)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=1024)
    args = parser.parse_args()
    if args.epochs < 2:
        parser.error("--epochs must be at least 2 (epoch 1 includes compilation and is left out)")
    work = Path(tempfile.mkdtemp(prefix="bench_distributed_"))
    try:
        from questlearn.split import split_csv
        from questlearn.synth import rows_for_megabytes, write_quest_log

        log = write_quest_log(work / "quests.csv", rows=rows_for_megabytes(args.megabytes, False), seed=0)
        manifest = split_csv(log, work / "split", rows_per_shard=20_000, val_fraction=0.2, seed=0,
                             id_columns=("attempt_id", "player_id"), progress=False)
        train_rows = manifest["subsets"]["train"]["rows"]
        runs = {kind: [] for kind in CONTENDERS}
        for round_ in range(args.rounds):
            order = list(CONTENDERS) if round_ % 2 == 0 else list(reversed(CONTENDERS))
            for kind in order:
                result = run(kind, work / "split", work / f"model_{kind}", args.epochs, args.batch_size)
                runs[kind].append(result)
                print(f"round {round_ + 1} {kind:12s} wall {result['wall_seconds']:6.1f} s, rows/s per epoch "
                      f"{[round(r) for r in result['rows_per_second']]}", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    summary = {}
    for kind, results in runs.items():
        steady = [r for result in results for r in result["rows_per_second"][1:]]
        summary[kind] = {"median_rows_per_second": round(statistics.median(steady)),
                         "median_wall_seconds": round(statistics.median(r["wall_seconds"] for r in results), 1)}
    ratio = summary["2_processes"]["median_rows_per_second"] / summary["1_process"]["median_rows_per_second"]
    overhead = summary["1_process"]["median_rows_per_second"] / summary["plain"]["median_rows_per_second"]
    counted = all(r["rows_seen"] == [train_rows] * args.epochs for kind in ("1_process", "2_processes") for r in runs[kind])
    payload = {"parameters": vars(args), "train_rows": train_rows, "summary": summary,
               "speedup_2_vs_1_process": round(ratio, 3), "one_process_vs_plain": round(overhead, 3),
               "every_row_once_per_epoch": counted, "runs": runs}
    path = save("distributed" if args.batch_size == 1024 else f"distributed_batch{args.batch_size}", payload)
    print(json.dumps({k: payload[k] for k in ("train_rows", "summary", "speedup_2_vs_1_process", "one_process_vs_plain",
                                               "every_row_once_per_epoch")}, indent=1))
    print(f"wrote {path}")
    return 0 if counted else 1


if __name__ == "__main__":
    sys.exit(main())
