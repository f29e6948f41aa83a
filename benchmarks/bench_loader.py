"""Loader throughput (rows/s, no model) and memory, side by side in one run.

Contenders, all on the same data and the same number of workers:

* ``recipe`` — the original blog recipe: a Keras Sequence/PyDataset whose
  batch ``i`` is ``pandas.read_csv`` of the 1000-row file ``i``, ``fillna(0)``,
  one-hot quest type, ``to_categorical`` labels;
* ``make_csv_dataset`` — ``tf.data.experimental.make_csv_dataset`` over the
  same 1000-row CSV files (batch 1000, 2 parallel reads);
* ``questlearn_csv`` / ``questlearn_npy`` — QuestSequence(batch_size=1000)
  on the CSV shards (``workers`` threads) or the binary shards (read in
  line: ``workers=1`` is fastest there) of a questlearn split, with the
  default integrity check (each shard file's SHA-256 once per run);
* ``questlearn_csv_verify_off`` / ``questlearn_npy_verify_off`` — the same
  with ``verify="off"``: the cost of the integrity check, side by side.

Every contender reads the data for the same number of epochs (pools and
files are set up again each epoch, as ``fit`` does).

PyDatasets are read through Keras's own adapter and enqueuer
(``PyDatasetAdapter.get_numpy_iterator``), as ``fit`` reads them. Each
contender runs in a fresh process; peak RSS includes worker processes.

Usage: python benchmarks/bench_loader.py [--megabytes 48] [--workers 2]
       python benchmarks/bench_loader.py --verify-cost [--megabytes 48] [--rounds 3]

``--verify-cost`` runs only the four questlearn contenders, alternating, in
``--rounds`` rounds, and saves medians to ``results/loader_verify.json``.

``--versus-raw`` compares, on a split with >= 40 train shards of
100,000 rows (``--rows 5500000 --rows-per-shard 100000``; ``--split DIR``
reuses or keeps one), ``QuestSequence(split, "train", batch_size=B, seed=0)``
read batch by batch (``seq[i]``) for two epochs (the first checks each
shard's SHA-256 once) against the fastest loop numpy allows that yields the
same batches: per shard, in a seeded order, ``np.load(mmap_mode="r")`` of
both ``x`` blocks (``numbers.npy``, ``codes.npy``) and the labels, a seeded
permutation and, per batch of B, ``numbers[idx]``, ``codes[idx]`` as int32
(the model's input dtype) and ``y[idx]``. B in 1024 and 8192,
fresh processes, alternating, ``--rounds`` rounds, medians of per-round
ratios; saves ``results/loader_raw.json``. Target: questlearn >= 0.8x the
raw loop's rows/s (second epoch), at both batch sizes::

    python benchmarks/bench_loader.py --versus-raw [--split /big/disk/split] [--rounds 3]

Targets: questlearn npy >= 20x recipe and >= 100x
make_csv_dataset; questlearn CSV >= 1.5x recipe; peak RSS flat 1x -> 4x.
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
from _common import batch_rows, peak_rss_mib, run_child, save, verdict  # noqa: E402

ID_COLUMNS = ("attempt_id", "player_id")
QUEST_TYPES = ["fetch", "escort", "puzzle", "dungeon", "boss", "raid"]


def recipe_dataset(files, workers, processes):
    import keras
    import numpy as np
    import pandas as pd

    class RecipeSequence(keras.utils.PyDataset):
        """The original recipe: one 1000-row CSV file is one batch."""

        def __init__(self, files, **kwargs):
            super().__init__(**kwargs)
            self.files = files

        def __len__(self):
            return len(self.files)

        def __getitem__(self, index):
            frame = pd.read_csv(self.files[index]).fillna(0)
            y = keras.utils.to_categorical(frame.pop("cleared").to_numpy(), num_classes=2)
            quest = pd.Categorical(frame.pop("quest_type"), categories=QUEST_TYPES)
            x = pd.concat([frame.drop(columns=list(ID_COLUMNS)), pd.get_dummies(quest, dtype="float32")], axis=1)
            return x.to_numpy(np.float32), y

    return RecipeSequence(files, workers=workers, use_multiprocessing=processes)


EPOCHS = 4


class SteadyClock:
    """Rows and seconds between the first and the last batch of each epoch.

    Keras re-creates its worker pool every epoch and waits 0.1 s for the
    queue to drain at the end; those fixed costs vanish on a 100 GB epoch,
    so the steady-state rate excludes them (the wall-clock rate, reported
    beside it, does not).
    """

    def __init__(self):
        self.rows = self.seconds = 0.0
        self.epoch_rates = []  # rows/s of each epoch, the first included (it pays for any one-off check)

    def epoch(self, batches):
        first = last = None
        rows_now = 0
        for rows in batches:
            now = time.perf_counter()
            if first is None:
                first = now
            else:
                self.rows += rows
                rows_now += rows
            last = now
        if first is not None:
            self.seconds += last - first
            self.epoch_rates.append(rows_now / max(last - first, 1e-9))


def through_keras(dataset, clock) -> int:
    """Rows read in ``EPOCHS`` epochs, the way ``fit`` iterates a PyDataset."""
    from keras.src.trainers.data_adapters.py_dataset_adapter import PyDatasetAdapter

    adapter = PyDatasetAdapter(dataset, shuffle=False)
    total = [0]

    def batches():
        for batch in adapter.get_numpy_iterator():
            rows = batch_rows(batch)  # x is a dict of blocks for QuestSequence: count the labels
            total[0] += rows
            yield rows

    for _ in range(EPOCHS):
        adapter.on_epoch_begin()
        clock.epoch(batches())
        adapter.on_epoch_end()
    return total[0]


def child(kind: str, data: str, workers: str) -> dict:
    data, workers = Path(data), int(workers)
    import keras  # noqa: F401 - imported before timing, as in a training script

    sampler = TreeMemorySampler()
    clock = SteadyClock()
    started = time.perf_counter()
    if kind == "recipe":
        files = sorted((data / "recipe").glob("split_data_*.csv"))
        rows = through_keras(recipe_dataset(files, workers, processes=True), clock)
    elif kind == "make_csv_dataset":
        import tensorflow as tf

        files = sorted(str(p) for p in (data / "recipe").glob("split_data_*.csv"))
        dataset = tf.data.experimental.make_csv_dataset(
            files, batch_size=1000, label_name="cleared", num_epochs=1, shuffle=False,
            num_parallel_reads=workers, select_columns=None)
        total = [0]

        def sizes():
            for _, label in dataset:
                total[0] += int(label.shape[0])
                yield int(label.shape[0])

        for _ in range(EPOCHS):
            clock.epoch(sizes())
        rows = total[0]
    else:
        from questlearn.data.dataset import QuestSequence

        source = "csv" if kind.startswith("questlearn_csv") else "npy"
        verify = "off" if kind.endswith("_verify_off") else "once"
        # npy batches are numpy takes from memory maps (numbers, codes, labels): Keras's thread pool costs more than it saves,
        # so they are read in line (workers=1). CSV shards are parsed by worker threads
        # (pyarrow releases the GIL) that share one shard cache.
        dataset = QuestSequence(data / "split", "train", batch_size=1000, source=source, shuffle=True,
                                workers=1 if source == "npy" else workers, use_multiprocessing=False, verify=verify)
        rows = through_keras(dataset, clock)
    seconds = time.perf_counter() - started
    steady = clock.rows / clock.seconds
    return {"rows": rows, "seconds": seconds, "rows_per_second": steady, "wall_rows_per_second": rows / seconds,
            "first_epoch_rows_per_second": clock.epoch_rates[0],
            "later_epochs_rows_per_second": sorted(clock.epoch_rates[1:])[len(clock.epoch_rates[1:]) // 2],
            "epoch_rows_per_second": clock.epoch_rates, "peak_rss_mib": sampler.stop(), "rss": peak_rss_mib()}


class TreeMemorySampler:
    """Largest RSS of this process plus all its children, sampled every 20 ms."""

    def __init__(self):
        import threading

        import psutil

        self._process, self._peak, self._stop = psutil.Process(), 0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        while not self._stop.is_set():
            total = self._process.memory_info().rss
            for child in self._process.children(recursive=True):
                try:
                    total += child.memory_info().rss
                except Exception:  # noqa: BLE001 - a worker may exit between listing and reading
                    pass
            self._peak = max(self._peak, total)
            self._stop.wait(0.02)

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        return round(self._peak / 2**20, 1)


def prepare(root: Path, megabytes: float, seed: int, recipe: bool = True) -> None:
    import pandas as pd

    from questlearn.split import split_csv
    from questlearn.synth import rows_for_megabytes, write_quest_log

    log = write_quest_log(root / "log.csv", rows=rows_for_megabytes(megabytes), seed=seed)
    # questlearn: one split; the train subset is what the loaders read.
    split_csv(log, root / "split", rows_per_shard=50_000, val_fraction=0.2, seed=0, id_columns=ID_COLUMNS,
              formats=("csv", "npy"))  # the recipe and the CSV contenders read the CSV shards
    if not recipe:
        return
    # The recipe's shards: the same train rows, 1000 per file (pandas chunks of the train CSV shards).
    (root / "recipe").mkdir()
    index = 0
    for shard in sorted((root / "split" / "train").glob("split_data_*.csv")):
        for chunk in pd.read_csv(shard, chunksize=1000):
            chunk.to_csv(root / "recipe" / f"split_data_{index:05d}.csv", index=False)
            index += 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megabytes", type=float, default=48.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--verify-cost", action="store_true", help="only the cost of shard integrity checks")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--versus-raw", action="store_true", help="QuestSequence vs a raw np.load(mmap) loop")
    parser.add_argument("--split", type=Path, default=None, help="--versus-raw: split to reuse, or to make and keep")
    parser.add_argument("--rows", type=int, default=5_500_000, help="--versus-raw: rows of the synthetic log")
    parser.add_argument("--rows-per-shard", type=int, default=100_000)
    parser.add_argument("--child", nargs=3, metavar=("KIND", "DATA", "WORKERS"))
    args = parser.parse_args()
    if args.child:
        kind = args.child[0]
        print(json.dumps(raw_child(*args.child) if kind in RAW_CONTENDERS else child(*args.child)))
        return 0
    if args.verify_cost:
        return verify_cost(args)
    if args.versus_raw:
        return versus_raw(args)

    work = Path(tempfile.mkdtemp(prefix="questlearn-bench-loader-"))
    try:
        for factor in (1, 4):
            (work / f"{factor}x").mkdir()
        prepare(work / "1x", args.megabytes, seed=1)
        runs = {}
        for kind in ("recipe", "make_csv_dataset", *VERIFY_CONTENDERS):
            runs[kind] = run_child(Path(__file__), kind, str(work / "1x"), str(args.workers))
            print(f"{kind:18} {runs[kind]['rows_per_second']:>12,.0f} rows/s steady "
                  f"({runs[kind]['wall_rows_per_second']:>10,.0f} wall: {runs[kind]['rows']} rows in "
                  f"{runs[kind]['seconds']:.2f} s), peak RSS incl. workers {runs[kind]['peak_rss_mib']:.0f} MiB")
        shutil.rmtree(work / "1x" / "recipe")
        prepare(work / "4x", args.megabytes * 4, seed=2)
        memory = {}
        for factor in (1, 4):
            for kind in ("questlearn_csv", "questlearn_npy"):
                memory[f"{kind}_{factor}x"] = run_child(Path(__file__), kind, str(work / f"{factor}x"), str(args.workers))
                print(f"{kind} at {factor}x: peak RSS incl. workers {memory[f'{kind}_{factor}x']['peak_rss_mib']:.0f} MiB")
    finally:
        shutil.rmtree(work, ignore_errors=True)

    rate = {kind: run["rows_per_second"] for kind, run in runs.items()}
    ratios = {
        "npy_vs_recipe": rate["questlearn_npy"] / rate["recipe"],
        "npy_vs_make_csv_dataset": rate["questlearn_npy"] / rate["make_csv_dataset"],
        "csv_vs_recipe": rate["questlearn_csv"] / rate["recipe"],
        "npy_verify_on_over_off": rate["questlearn_npy"] / rate["questlearn_npy_verify_off"],
        "csv_verify_on_over_off": rate["questlearn_csv"] / rate["questlearn_csv_verify_off"],
    }
    growth = {kind: memory[f"{kind}_4x"]["peak_rss_mib"] / memory[f"{kind}_1x"]["peak_rss_mib"] - 1
              for kind in ("questlearn_csv", "questlearn_npy")}
    print("\n" + ", ".join(f"{k}: {v:.1f}x" for k, v in ratios.items()))
    print("peak RSS growth 1x -> 4x: " + ", ".join(f"{k} {v * 100:+.1f} %" for k, v in growth.items()))
    save("loader", {"workers": args.workers, "runs": runs, "ratios": ratios, "memory": memory, "rss_growth": growth})
    return verdict({
        f"questlearn npy >= 20x recipe ({ratios['npy_vs_recipe']:.1f}x)": ratios["npy_vs_recipe"] >= 20,
        f"questlearn npy >= 100x make_csv_dataset ({ratios['npy_vs_make_csv_dataset']:.1f}x)": ratios["npy_vs_make_csv_dataset"] >= 100,
        f"questlearn csv >= 1.5x recipe ({ratios['csv_vs_recipe']:.1f}x)": ratios["csv_vs_recipe"] >= 1.5,
        **{f"{k} peak RSS growth < 10 % ({v * 100:+.1f} %)": v < 0.10 for k, v in growth.items()},
    })


VERIFY_CONTENDERS = ("questlearn_npy", "questlearn_npy_verify_off", "questlearn_csv", "questlearn_csv_verify_off")


def verify_cost(args) -> int:
    """Integrity check on vs off: fresh processes, alternating, ``--rounds`` rounds, medians."""
    import statistics

    work = Path(tempfile.mkdtemp(prefix="questlearn-bench-verify-"))
    try:
        prepare(work, args.megabytes, seed=1, recipe=False)
        rounds = {kind: [] for kind in VERIFY_CONTENDERS}
        for round_number in range(args.rounds):
            order = VERIFY_CONTENDERS if round_number % 2 == 0 else VERIFY_CONTENDERS[::-1]
            for kind in order:
                rounds[kind].append(run_child(Path(__file__), kind, str(work), str(args.workers)))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    medians = {kind: {key: statistics.median(run[key] for run in runs)
                      for key in ("rows_per_second", "first_epoch_rows_per_second", "later_epochs_rows_per_second",
                                  "wall_rows_per_second", "peak_rss_mib")}
               for kind, runs in rounds.items()}
    for kind, median in medians.items():
        print(f"{kind:26} {median['rows_per_second']:>11,.0f} rows/s steady: first epoch "
              f"{median['first_epoch_rows_per_second']:>11,.0f}, later {median['later_epochs_rows_per_second']:>11,.0f}; "
              f"wall {median['wall_rows_per_second']:>11,.0f}, "
              f"peak RSS {median['peak_rss_mib']:.0f} MiB")
    ratios = {}
    for source in ("npy", "csv"):
        on, off = medians[f"questlearn_{source}"], medians[f"questlearn_{source}_verify_off"]
        for key in ("rows_per_second", "first_epoch_rows_per_second", "later_epochs_rows_per_second", "wall_rows_per_second"):
            ratios[f"{source}_{key}_verify_on_over_off"] = on[key] / off[key]
    print("\n" + "\n".join(f"{k}: {v:.2f}" for k, v in ratios.items()))
    save("loader_verify", {"workers": args.workers, "megabytes": args.megabytes, "epochs": EPOCHS, "rounds": rounds,
                           "medians": medians, "ratios": ratios})
    # Targets: the one-off check costs at most half the first epoch's rate, and nothing after it.
    return verdict({
        **{f"{source} first epoch with verification >= 0.5x without "
           f"({ratios[f'{source}_first_epoch_rows_per_second_verify_on_over_off']:.2f}x)":
           ratios[f"{source}_first_epoch_rows_per_second_verify_on_over_off"] >= 0.5 for source in ("npy", "csv")},
        **{f"{source} later epochs with verification >= 0.8x without "
           f"({ratios[f'{source}_later_epochs_rows_per_second_verify_on_over_off']:.2f}x)":
           ratios[f"{source}_later_epochs_rows_per_second_verify_on_over_off"] >= 0.8 for source in ("npy", "csv")},
    })


# -- QuestSequence vs the raw memory-mapped loop ---------------------
RAW_CONTENDERS = ("questlearn_seq", "raw_mmap")
BATCH_SIZES = (1024, 8192)


RAW_BLOCKS = {"numbers": "float32", "codes": "int32"}  # the x blocks of a batch, as the model takes them


def raw_epoch(shards, split_dir: Path, batch_size: int, rng) -> int:
    """One epoch of the raw loop; returns the rows read.

    Per shard: memory maps of both ``x`` blocks (``numbers.npy``, float32,
    and ``codes.npy``, stored as uint8/uint16/int32) and the labels; per
    batch the same arrays a QuestSequence batch holds: a ``take`` of the
    rows from each block, codes as int32 (the model's ``codes`` input),
    a block without columns left out.
    """
    import numpy as np

    rows = 0
    for shard in rng.permutation(len(shards)):
        files = shards[shard]["files"]
        blocks = {name: np.load(split_dir / files[name]["name"], mmap_mode="r") for name in RAW_BLOCKS}
        blocks = {name: block for name, block in blocks.items() if block.shape[1]}
        y = np.load(split_dir / files["labels"]["name"], mmap_mode="r")
        order = rng.permutation(len(y))
        for start in range(0, len(order), batch_size):
            index = order[start:start + batch_size]
            # the copies a model step would consume
            x = {name: block[index].astype(RAW_BLOCKS[name], copy=False) for name, block in blocks.items()}
            batch = (x, y[index])
            rows += len(batch[1])
    return rows


def raw_child(kind: str, split: str, batch_size: str) -> dict:
    """Two epochs of one contender over the train subset: rows/s of each, peak RSS."""
    import numpy as np
    from _big_split import train_shards

    split_dir, batch_size = Path(split), int(batch_size)
    rates = []
    if kind == "questlearn_seq":
        from questlearn.data.dataset import QuestSequence

        sequence = QuestSequence(split_dir, "train", batch_size=batch_size, seed=0)
        for epoch in range(2):
            if epoch:
                sequence.on_epoch_end()
            started, rows = time.perf_counter(), 0
            for i in range(len(sequence)):
                rows += len(sequence[i][1])
            rates.append(rows / (time.perf_counter() - started))
    else:
        shards = train_shards(split_dir)
        rng = np.random.default_rng(0)
        for _ in range(2):
            started = time.perf_counter()
            rows = raw_epoch(shards, split_dir, batch_size, rng)
            rates.append(rows / (time.perf_counter() - started))
    return {"rows": rows, "first_epoch_rows_per_second": rates[0], "second_epoch_rows_per_second": rates[1],
            "peak_rss_mib": peak_rss_mib()["self"]}


def versus_raw(args) -> int:
    """QuestSequence vs the raw loop at each batch size: fresh processes, alternating, medians of ratios."""
    import statistics

    from _big_split import big_split, shard_summary, train_shards

    with big_split(args.split, args.rows, args.rows_per_shard) as split_dir:
        shards = shard_summary(train_shards(split_dir))
        print(f"{split_dir}: {shards['train_shards']} train shards, {shards['train_rows']:,} rows "
              f"({shards['min_rows']:,}..{shards['max_rows']:,} per shard)", flush=True)
        rounds = []
        for number in range(args.rounds):
            results = {}
            for batch_size in BATCH_SIZES:
                order = RAW_CONTENDERS if number % 2 == 0 else RAW_CONTENDERS[::-1]
                for kind in order:
                    run = results[f"{kind}_{batch_size}"] = run_child(Path(__file__), kind, str(split_dir), str(batch_size))
                    print(f"round {number + 1}, batch {batch_size:5}: {kind:15} epoch 1 {run['first_epoch_rows_per_second']:>12,.0f} "
                          f"rows/s, epoch 2 {run['second_epoch_rows_per_second']:>12,.0f} rows/s, "
                          f"peak RSS {run['peak_rss_mib']:.0f} MiB", flush=True)
            rounds.append(results)
    ratios = {f"{epoch}_epoch_batch_{batch_size}": statistics.median(
        r[f"questlearn_seq_{batch_size}"][f"{epoch}_epoch_rows_per_second"] / r[f"raw_mmap_{batch_size}"][f"{epoch}_epoch_rows_per_second"]
        for r in rounds) for batch_size in BATCH_SIZES for epoch in ("first", "second")}
    print("\nquestlearn / raw loop (medians of per-round ratios): " + ", ".join(f"{k} {v:.2f}x" for k, v in ratios.items()))
    save("loader_raw", {"split": shards, "batch_sizes": list(BATCH_SIZES), "rounds": rounds, "ratios_questlearn_over_raw": ratios})
    return verdict({f"QuestSequence >= 0.8x the raw mmap loop, batch {b}, second epoch "
                    f"({ratios[f'second_epoch_batch_{b}']:.2f}x)": ratios[f"second_epoch_batch_{b}"] >= 0.8
                    for b in BATCH_SIZES})


if __name__ == "__main__":
    sys.exit(main())
