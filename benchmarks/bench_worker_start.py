"""Worker processes that start with Keras loaded, side by side with workers that import it themselves.

Keras starts a new pool of worker processes for every epoch and every
validation pass. Under ``forkserver`` (questlearn's default start method)
the server preloads Keras, its backend and the readers
(:mod:`questlearn.data._worker_imports`), so a worker forked from it has
nothing left to import. Contenders, each in a fresh process, alternating,
``--rounds`` rounds, medians:

* ``preloaded`` — questlearn as shipped;
* ``importing`` — the same with the preload turned off (each worker imports
  Keras and its backend itself, as before the preload).

Each reads a small split's training and validation subsets through Keras's
own adapter and enqueuer (``PyDatasetAdapter``, as ``fit`` does) for
``--epochs`` epochs with ``--workers`` worker processes. Measured per run:
the wall time of the whole process, and its CPU time with every process it
started (the forkserver and the workers it reaped). Target: the preloaded run
uses at most half the CPU of the importing one.

Usage: python benchmarks/bench_worker_start.py [--rounds 3] [--epochs 3] [--workers 2]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import run_child, save, verdict  # noqa: E402

CONTENDERS = ("preloaded", "importing")


def child(contender: str, split: str, epochs: int, workers: int) -> None:
    import psutil

    if contender == "importing":
        import questlearn.data._start_method as start_method

        start_method.preload_worker_imports = lambda: None  # the workers import Keras themselves
    from keras.src.trainers.data_adapters.py_dataset_adapter import PyDatasetAdapter

    from questlearn.data.dataset import QuestSequence

    started = time.perf_counter()
    rows = 0
    loading = dict(batch_size=512, workers=workers, use_multiprocessing=True)
    subsets = [QuestSequence(split, "train", **loading), QuestSequence(split, "validate", shuffle=False, **loading)]
    for _ in range(epochs):
        for dataset in subsets:  # a new pool each, as fit starts one per epoch and per validation pass
            adapter = PyDatasetAdapter(dataset, shuffle=False)
            adapter.on_epoch_begin()
            rows += sum(len(batch[1]) for batch in adapter.get_numpy_iterator())
            adapter.on_epoch_end()
    wall = time.perf_counter() - started
    me = psutil.Process()
    cpu = sum(me.cpu_times()[:4])  # its own, and that of the children it reaped
    for process in me.children(recursive=True):  # the forkserver, with the workers it reaped
        times = process.cpu_times()
        cpu += times.user + times.system + times.children_user + times.children_system
    print(json.dumps({"rows": rows, "seconds": round(wall, 2), "cpu_seconds": round(cpu, 2)}))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rows", type=int, default=20_000)
    args = parser.parse_args()
    from questlearn.split import split_csv
    from questlearn.synth import write_quest_log

    with tempfile.TemporaryDirectory() as folder:
        log = write_quest_log(Path(folder) / "quests.csv", rows=args.rows, seed=1)
        split = Path(folder) / "split"
        split_csv(log, split, rows_per_shard=2_000, verbose=False)
        runs = {name: [] for name in CONTENDERS}
        for round_number in range(args.rounds):
            order = CONTENDERS if round_number % 2 == 0 else CONTENDERS[::-1]
            for name in order:
                result = run_child(Path(__file__), name, str(split), str(args.epochs), str(args.workers))
                runs[name].append(result)
                print(f"round {round_number + 1} {name:10} {result['seconds']:7.2f} s wall "
                      f"{result['cpu_seconds']:7.2f} CPU-s ({result['rows']} rows)", flush=True)
    medians = {name: {key: statistics.median(run[key] for run in results) for key in ("seconds", "cpu_seconds")}
               for name, results in runs.items()}
    cpu_ratio = medians["preloaded"]["cpu_seconds"] / medians["importing"]["cpu_seconds"]
    wall_ratio = medians["preloaded"]["seconds"] / medians["importing"]["seconds"]
    print(f"preloaded / importing: CPU {cpu_ratio:.2f}x, wall {wall_ratio:.2f}x (medians of {args.rounds} rounds)")
    save("worker_start", {"epochs": args.epochs, "workers": args.workers, "rows": args.rows, "rounds": args.rounds,
                          "runs": runs, "medians": medians, "cpu_ratio": round(cpu_ratio, 3),
                          "wall_ratio": round(wall_ratio, 3)})
    return verdict({f"preloaded workers use at most half the CPU ({cpu_ratio:.2f}x)": cpu_ratio <= 0.5})


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]))
    else:
        sys.exit(main())
