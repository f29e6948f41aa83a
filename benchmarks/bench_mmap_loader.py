"""Loader rows/s on model-ready shards vs the raw memory-mapped ``take`` loop (issue 10).

Contenders, on the same ``.npy`` shards (page cache warm for both: each
contender reads the whole set once before timing):

* ``raw`` — ``np.load(path, mmap_mode="r")`` of each shard's features and
  labels, a seeded permutation of its rows, then ``np.take`` of each batch
  of it: the least a loader can do;
* ``questlearn`` — :class:`~questlearn.batches.ShardReader` reading every
  batch of a seeded :class:`~questlearn.batches.BatchPlan` epoch (same batch
  size), with its default integrity check (each file hashed once per run).

Each contender runs in a fresh process; rounds alternate the order; the
verdict uses the median over rounds of the per-round ratio
questlearn/raw, at batch 1024 and 8192. Target: >= 0.8.

``fit``: the same MLP (:func:`questlearn.model.build_model`) fitted one
epoch (after a warm-up epoch) on the first ``--fit-shards`` shards, from a
:class:`~questlearn.dataset.QuestSequence` (``--fit-workers`` threads; 2,
``train``'s default; 1 reads in line) and from the same rows as numpy arrays in memory. The input-wait
fraction is ``1 - in_memory_time / questlearn_time`` per round, median
over rounds. Target on CPU: < 5 %.

The shards are written here directly as a format-2 split (model-ready
float32 matrix, int32 label codes, the manifest's entries), so the loader
is measured alone; ``--split DIR`` measures an existing split instead.

Usage: python benchmarks/bench_mmap_loader.py [--shards 40] [--rows 100000] [--width 16] [--rounds 3] [--fit-shards 6]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import peak_rss_mib, run_child, save, verdict  # noqa: E402

BATCH_SIZES = (1024, 8192)


def _entry(root: Path, name: str) -> dict:
    path = root / name
    with open(path, "rb") as handle:
        version = np.lib.format.read_magic(handle)
        (np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0)(handle)
        offset = handle.tell()
        digest = hashlib.sha256(handle.read()).hexdigest()
    return {"name": name, "bytes": path.stat().st_size, "sha256": digest, "data_offset": offset}


def write_split(root: Path, shards: int, rows: int, width: int) -> None:
    """A train subset of ``shards`` model-ready shards and its manifest."""
    from questlearn.encoding import Encoding
    from questlearn.manifest import FORMAT_VERSION, write_json_atomically

    numeric = [f"n{i}" for i in range(width - 4)]
    encoding = Encoding("mean", numeric, [0.0] * len(numeric), ["kind"], {"kind": ["a", "b", "c"]})
    (root / "train").mkdir(parents=True)
    rng = np.random.default_rng(0)
    entries = []
    for index in range(shards):
        x = rng.standard_normal((rows, width), dtype=np.float32)
        codes = rng.integers(0, 2, rows, dtype=np.int32)
        files = {}
        for part, array in (("features", x), ("labels", codes), ("rows", np.arange(rows, dtype=np.int64))):
            name = f"train/split_data_{index:05d}.{part}.npy"
            np.save(root / name, array)
            files[part] = _entry(root, name)
        entries.append({"index": index, "rows": rows, "files": files,
                        "label_counts": {"0": int((codes == 0).sum()), "1": int((codes == 1).sum())}})
    columns = [{"name": n, "kind": "numeric"} for n in numeric] + [{"name": "kind", "kind": "categorical"},
                                                                   {"name": "cleared", "kind": "label"}]
    stats = {n: {"count": rows * shards, "missing": 0, "mean": 0.0, "variance": 1.0} for n in numeric}
    stats["kind"] = {"count": rows * shards, "missing": 0, "oov": 0, "category_counts": {"a": 1, "b": 1, "c": 1}}
    manifest = {
        "format_version": FORMAT_VERSION, "complete": True, "source": {"rows": rows * shards},
        "parameters": {"formats": ["npy"], "fill": "mean"},
        "schema": {"columns": columns, "label": "cleared", "classes": ["0", "1"], "label_codes": [0, 1],
                   "features": numeric + ["kind"], "categories": {"kind": ["a", "b", "c"]},
                   "encoding": encoding.as_record()},
        "stats": stats,
        "subsets": {"train": {"rows": rows * shards, "shards": entries}, "validate": {"rows": 0, "shards": []}},
    }
    write_json_atomically(root / "manifest.json", manifest)


def raw_epoch(manifest: dict, batch_size: int) -> int:
    """The raw loop: memory-map each shard, permute its rows, take batch after batch."""
    root, total = Path(manifest["root"]), 0
    shards = manifest["subsets"]["train"]["shards"]
    for number in np.random.default_rng([0, 0]).permutation(len(shards)):
        shard = shards[number]
        x = np.load(root / shard["files"]["features"]["name"], mmap_mode="r")
        y = np.load(root / shard["files"]["labels"]["name"], mmap_mode="r")
        order = np.random.default_rng([0, 0, int(number)]).permutation(shard["rows"])
        for start in range(0, len(order), batch_size):
            rows = order[start:start + batch_size]
            batch, labels = np.take(x, rows, axis=0), np.take(y, rows)
            total += len(batch) + 0 * len(labels)
    return total


def questlearn_epoch(reader, batch_size: int) -> int:
    from questlearn.batches import BatchPlan

    plan = BatchPlan([s["rows"] for s in reader.shards], batch_size, True, 0, 0)
    total = 0
    for index in range(len(plan)):
        x, _ = reader.read(plan.segments(index))
        total += len(x)
    return total


def fit_child(kind: str, split: str, shards: int) -> dict:
    """One timed epoch of ``fit`` (after a warm-up epoch) from the loader or from memory."""
    import keras

    from questlearn.dataset import QuestSequence
    from questlearn.model import build_model

    keras.utils.set_random_seed(0)
    kind, _, workers = kind.partition(":")
    data = QuestSequence(split, "train", batch_size=1024, shuffle=True, workers=int(workers or 1))
    data.reader.shards = data.reader.shards[:shards]
    mean, variance = data.feature_moments()
    model = build_model(mean, variance, data.num_classes)
    if kind == "fit_questlearn":
        fit = dict(x=data)
    else:
        batches = [data[i] for i in range(len(data))]
        fit = dict(x=np.concatenate([b[0] for b in batches]), y=np.concatenate([b[1] for b in batches]), batch_size=1024)
    model.fit(**fit, epochs=1, shuffle=False, verbose=0)  # warm-up: graph tracing, pools, page cache
    started = time.perf_counter()
    model.fit(**fit, epochs=1, shuffle=False, verbose=0)
    return {"seconds": time.perf_counter() - started, "rows": data.plan.total_rows}


def child(kind: str, split: str, batch_size: str) -> dict:
    from questlearn.batches import ShardReader
    from questlearn.manifest import load_manifest

    if kind.startswith("fit_"):
        return fit_child(kind, split, int(batch_size))
    manifest, batch_size = load_manifest(split), int(batch_size)
    reader = ShardReader(manifest, "train")
    if kind == "raw":
        def epoch():
            return raw_epoch(manifest, batch_size)
    else:
        def epoch():
            return questlearn_epoch(reader, batch_size)
    epoch()  # warm the page cache (and, for questlearn, the once-per-run hash) before timing
    started = time.perf_counter()
    rows = epoch()
    seconds = time.perf_counter() - started
    return {"rows": rows, "seconds": seconds, "rows_per_second": rows / seconds, "peak_rss_mib": peak_rss_mib()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", nargs=3)
    parser.add_argument("--split", type=Path)
    parser.add_argument("--shards", type=int, default=40)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--width", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--fit-shards", type=int, default=6, help="shards fitted on in the input-wait measurement (0: skip it)")
    parser.add_argument("--fit-workers", type=int, default=2, help="QuestSequence workers in the fit (1: read inline)")
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(*args.child)))
        return 0
    work = None
    if args.split is None:
        work = Path(tempfile.mkdtemp(prefix="questlearn-bench-mmap-"))
        args.split = work / "split"
        write_split(args.split, args.shards, args.rows, args.width)
    try:
        runs = {b: {"raw": [], "questlearn": []} for b in BATCH_SIZES}
        fits = {}
        for round_number in range(args.rounds):
            for batch_size in BATCH_SIZES:
                order = ("raw", "questlearn") if round_number % 2 == 0 else ("questlearn", "raw")
                for kind in order:
                    runs[batch_size][kind].append(run_child(Path(__file__), kind, str(args.split), str(batch_size)))
            if args.fit_shards:
                order = ("fit_in_memory", "fit_questlearn") if round_number % 2 == 0 else ("fit_questlearn", "fit_in_memory")
                for kind in order:
                    fits.setdefault(kind, []).append(run_child(Path(__file__), f"{kind}:{args.fit_workers}", str(args.split),
                                                               str(args.fit_shards)))
    finally:
        if work is not None:
            shutil.rmtree(work, ignore_errors=True)
    checks, summary = {}, {}
    for batch_size, result in runs.items():
        ratios = [q["rows_per_second"] / r["rows_per_second"] for q, r in zip(result["questlearn"], result["raw"])]
        ratio = statistics.median(ratios)
        summary[batch_size] = {"ratio_median": ratio, "ratios": ratios,
                               **{k: statistics.median(x["rows_per_second"] for x in v) for k, v in result.items()}}
        print(f"batch {batch_size}: raw {summary[batch_size]['raw'] / 1e6:.2f} M rows/s, questlearn "
              f"{summary[batch_size]['questlearn'] / 1e6:.2f} M rows/s: ratio {ratio:.2f} (rounds {[round(r, 2) for r in ratios]})")
        checks[f"questlearn >= 0.8x the raw mmap take loop at batch {batch_size} ({ratio:.2f}x)"] = ratio >= 0.8
    if fits:
        waits = [max(0.0, 1 - m["seconds"] / q["seconds"]) for m, q in zip(fits["fit_in_memory"], fits["fit_questlearn"])]
        wait = statistics.median(waits)
        summary["fit_input_wait_fraction"] = {"median": wait, "rounds": waits}
        print(f"fit (batch 1024, {args.fit_shards} shards): input-wait fraction {wait * 100:.1f} % "
              f"(rounds {[round(w * 100, 1) for w in waits]} %)")
        checks[f"input-wait fraction in fit on CPU under 5 % ({wait * 100:.1f} %)"] = wait < 0.05
    save("mmap_loader", {"shards": args.shards, "rows_per_shard": args.rows, "width": args.width,
                         "rounds": args.rounds, "results": summary, "runs": {str(k): v for k, v in runs.items()},
                         "fits": fits})
    return verdict(checks)


if __name__ == "__main__":
    sys.exit(main())
