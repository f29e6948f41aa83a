"""Training on a GPU with jax and torch: rows/s, input wait, GPU use; the batch size and workers to use.

For each backend (``KERAS_BACKEND=jax``, ``KERAS_BACKEND=torch``) and each
batch size (1024 to 65536) and ``workers`` count, ``fit`` runs twice on
the same split, alternating:

* ``pipeline`` — :class:`~questlearn.data.dataset.QuestSequence` reading the
  npy shards (``x`` = the ``numbers`` and ``codes`` blocks) with ``workers``
  loading threads, into the model :func:`~questlearn.train.model.build_model`
  builds for them (codes one-hot encoded or embedded): what users run;
* ``model_only`` — the same number of batches of the same shape served
  from a few batches already in memory: the model's own speed (host to
  device copies included), with no loading work at all.

``input_wait_fraction = 1 - model_only_seconds / pipeline_seconds`` is the
share of step time spent waiting for input (goal: under 5 %). GPU
utilisation is sampled with ``pynvml`` or ``nvidia-smi`` while the
pipeline runs. Each backend runs in a fresh process per round; the
figures are medians over rounds of the last epoch.

The recommendation is the fastest (rows/s) setting whose input wait is
under 5 %, or the fastest overall if none is.

Usage
-----
python benchmarks/bench_gpu.py            # the full run, on a GPU machine: writes results/gpu.json
python benchmarks/bench_gpu.py --smoke    # a tiny run that checks the script works (any machine)

``results/gpu.json`` is written only when a GPU was found; on a CPU-only
machine the figures are printed and the script says so.
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
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import save  # noqa: E402

BACKENDS = ("jax", "torch")
BATCH_SIZES = (1024, 4096, 16384, 65536)
WORKERS = (2, 4, 8)
WAIT_GOAL = 0.05


# -- GPU utilisation ---------------------------------------------------------
class GpuSampler:
    """Mean GPU utilisation (percent) while running, from pynvml or nvidia-smi; ``None`` if neither works."""

    def __init__(self, every: float = 0.25):
        self.every, self.samples = every, []
        self._stop = threading.Event()
        self._read = self._reader()

    @staticmethod
    def _reader():
        try:
            import pynvml

            pynvml.nvmlInit()
            handle = pynvml.nvmlDeviceGetHandleByIndex(0)
            return lambda: float(pynvml.nvmlDeviceGetUtilizationRates(handle).gpu)
        except Exception:  # noqa: BLE001 - no pynvml or no NVIDIA driver
            pass
        if shutil.which("nvidia-smi"):
            def read():
                out = subprocess.run(["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits",
                                      "--id=0"], capture_output=True, text=True, timeout=5)
                return float(out.stdout.strip().splitlines()[0])
            try:
                read()
                return read
            except Exception:  # noqa: BLE001
                return None
        return None

    def __enter__(self):
        if self._read is not None:
            self._thread = threading.Thread(target=self._loop, daemon=True)
            self._thread.start()
        return self

    def _loop(self):
        while not self._stop.wait(self.every):
            try:
                self.samples.append(self._read())
            except Exception:  # noqa: BLE001
                return

    def __exit__(self, *exc):
        self._stop.set()

    @property
    def mean(self):
        return round(statistics.fmean(self.samples), 1) if self.samples else None


# -- one backend, in a child process -------------------------------------------
def child(split: str, batch_sizes: str, workers: str, epochs: str) -> dict:
    import keras

    from questlearn.data.dataset import QuestSequence
    from questlearn.train._torch_cpu import limit_torch_threads
    from questlearn.train.devices import describe_device
    from questlearn.train.model import build_model

    class ModelOnly(keras.utils.PyDataset):
        """``count`` batches served from four held in memory: no loading work."""

        def __init__(self, batches, count):
            super().__init__()
            self.batches, self.count = batches, count

        def __len__(self):
            return self.count

        def __getitem__(self, index):
            return self.batches[index % len(self.batches)]

    class LastEpoch(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.started = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.seconds = time.perf_counter() - self.started

    epochs = int(epochs)
    results = []
    for batch_size in map(int, batch_sizes.split(",")):
        for worker_count in map(int, workers.split(",")):
            limit_torch_threads(worker_count)
            keras.utils.set_random_seed(0)
            data = QuestSequence(split, "train", batch_size=batch_size, seed=0, workers=worker_count, max_queue_size=8)
            full = [data[i] for i in range(min(4, len(data)))]
            full = [b for b in full if len(b[1]) == batch_size] or full  # whole batches: one compiled shape
            model = build_model(*data.feature_moments(), data.num_classes, code_counts=data.code_counts())
            timing = {}
            for kind in ("model_only", "pipeline", "model_only", "pipeline"):  # alternate, twice
                source = ModelOnly(full, len(data)) if kind == "model_only" else data
                clock = LastEpoch()
                with GpuSampler() as gpu:
                    model.fit(source, epochs=epochs, shuffle=False, verbose=0, callbacks=[clock])
                timing.setdefault(kind, []).append((clock.seconds, gpu.mean))
            pipeline = min(s for s, _ in timing["pipeline"])
            model_only = min(s for s, _ in timing["model_only"])
            rows = data.plan.total_rows
            results.append({
                "batch_size": batch_size, "workers": worker_count, "rows": rows,
                "pipeline_seconds": pipeline, "model_only_seconds": model_only,
                "rows_per_second": rows / pipeline, "model_only_rows_per_second": rows / model_only,
                "input_wait_fraction": max(0.0, 1 - model_only / pipeline),
                "gpu_utilisation_percent": timing["pipeline"][-1][1],
            })
            print(f"  {keras.backend.backend():6s} batch {batch_size:6d} workers {worker_count}: "
                  f"{rows / pipeline:12,.0f} rows/s, input wait {results[-1]['input_wait_fraction']:.1%}, "
                  f"GPU {results[-1]['gpu_utilisation_percent']}%", file=sys.stderr, flush=True)
    return {"backend": keras.backend.backend(), "device": describe_device(), "results": results}


def run_backend(backend: str, split: Path, batch_sizes, workers, epochs: int) -> dict:
    env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONUNBUFFERED": "1"}
    command = [sys.executable, __file__, "--child", str(split), ",".join(map(str, batch_sizes)),
               ",".join(map(str, workers)), str(epochs)]
    result = subprocess.run(command, stdout=subprocess.PIPE, stderr=None, text=True, env=env)
    if result.returncode != 0:
        raise RuntimeError(f"the {backend} child failed (its output is above)")
    return json.loads(result.stdout.strip().splitlines()[-1])


def recommend(rows: list[dict]) -> dict:
    """The fastest setting with input wait under the goal (else the fastest)."""
    good = [r for r in rows if r["input_wait_fraction"] < WAIT_GOAL]
    best = max(good or rows, key=lambda r: r["rows_per_second"])
    return {"batch_size": best["batch_size"], "workers": best["workers"],
            "rows_per_second": round(best["rows_per_second"]),
            "input_wait_fraction": round(best["input_wait_fraction"], 4),
            "meets_wait_goal": bool(good)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2_000_000, help="rows of the synthetic quest log")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=2, help="per fit; the last one is timed")
    parser.add_argument("--batch-sizes", default=",".join(map(str, BATCH_SIZES)))
    parser.add_argument("--workers", default=",".join(map(str, WORKERS)))
    parser.add_argument("--backends", default=",".join(BACKENDS))
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: check that the script works")
    parser.add_argument("--child", nargs=4, metavar=("SPLIT", "BATCH_SIZES", "WORKERS", "EPOCHS"))
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(*args.child)))
        return 0
    if args.smoke:
        args.rows, args.rounds, args.batch_sizes, args.workers = 20_000, 1, "1024,4096", "2"
    batch_sizes = [int(b) for b in args.batch_sizes.split(",")]
    workers = [int(w) for w in args.workers.split(",")]
    backends = [b for b in args.backends.split(",") if importlib.util.find_spec(b) is not None]
    if not backends:
        print("neither jax nor torch is installed: nothing to measure")
        return 1

    from questlearn.split import split_csv
    from questlearn.synth import write_quest_log

    work = Path(tempfile.mkdtemp(prefix="questlearn-bench-gpu-"))
    try:
        log = write_quest_log(work / "quests.csv", rows=args.rows, seed=0)
        split_csv(log, work / "split", rows_per_shard=100_000, val_fraction=0.1, seed=0,
                  id_columns=("attempt_id", "player_id"), progress=False)
        log.unlink()
        rounds = {backend: [] for backend in backends}
        for round_number in range(args.rounds):
            for backend in backends if round_number % 2 == 0 else backends[::-1]:
                print(f"round {round_number + 1}: {backend}", flush=True)
                rounds[backend].append(run_backend(backend, work / "split", batch_sizes, workers, args.epochs))
    finally:
        shutil.rmtree(work, ignore_errors=True)

    report, on_gpu = {}, []
    for backend, runs in rounds.items():
        table = []
        for position, first in enumerate(runs[0]["results"]):
            same = [run["results"][position] for run in runs]
            table.append({"batch_size": first["batch_size"], "workers": first["workers"],
                          **{key: statistics.median(r[key] for r in same if r[key] is not None)
                             if any(r[key] is not None for r in same) else None
                             for key in ("rows_per_second", "model_only_rows_per_second", "input_wait_fraction",
                                         "gpu_utilisation_percent")}})
        device = runs[0]["device"]
        on_gpu.append(device.startswith("GPU"))
        report[backend] = {"device": device, "table": table, "recommended": recommend(table)}
        print(f"\n{backend} on {device}")
        print(f"  {'batch':>6} {'workers':>7} {'rows/s':>12} {'model-only rows/s':>18} {'input wait':>10} {'GPU %':>6}")
        for row in table:
            gpu = "-" if row["gpu_utilisation_percent"] is None else f"{row['gpu_utilisation_percent']:.0f}"
            print(f"  {row['batch_size']:>6} {row['workers']:>7} {row['rows_per_second']:>12,.0f} "
                  f"{row['model_only_rows_per_second']:>18,.0f} {row['input_wait_fraction']:>10.1%} {gpu:>6}")
        print(f"  recommended: {report[backend]['recommended']}")
    if all(on_gpu) and not args.smoke:
        path = save("gpu", {"parameters": {k: v for k, v in vars(args).items() if k != "child"}, "backends": report})
        print(f"\nwrote {path}")
    else:
        why = "this was a --smoke run" if args.smoke else "no GPU was found (the figures above are CPU figures)"
        print(f"\nresults/gpu.json NOT written: {why}. On a GPU machine run: python benchmarks/bench_gpu.py")
    return 0


if __name__ == "__main__":
    sys.exit(main())
