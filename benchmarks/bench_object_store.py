"""Object storage: the loader through the shard cache vs local shards, bytes fetched per epoch, split from S3.

A real S3 server (moto, on 127.0.0.1, in this process) holds a split and its
source log. Every contender runs in a fresh process; contenders alternate,
``--rounds`` rounds; the claims are medians of the per-round ratios.

* loader rows/s: one epoch of the train subset (``QuestSequence``, npy
  shards, ``--batch-size`` rows a batch, read in index order in one thread)
  from the local split, and from ``s3://`` with a cold cache (an empty
  folder: every shard fetched during the epoch) and with a warm one (the
  folder the cold run filled).
* bytes fetched per epoch (``questlearn.io.storage.fetched_bytes``), over
  ``--epochs`` epochs: with a limit that holds the split, and with one that
  holds about a third of it.
* split MB/s: ``split_csv`` of the log from ``s3://`` vs from the local file.

Usage: python benchmarks/bench_object_store.py [--megabytes 24] [--rounds 3] [--epochs 3]

Targets: warm cache >= 0.9x local rows/s; a split that fits the cache is
fetched once over all epochs (train shards + manifest); one that does not
fetches at most one split's bytes per epoch; split from S3 >= 0.8x the
local split's MB/s.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parent.parent / "tests" / "support"))
from _common import run_child, save, verdict  # noqa: E402

ID_COLUMNS = ("attempt_id", "player_id")
ROWS_PER_SHARD = 5_000


def train_bytes(split_dir: Path) -> list[int]:
    """Bytes of each train shard's npy files."""
    manifest = json.loads((split_dir / "manifest.json").read_text())
    return [sum(shard["files"][part]["bytes"] for part in ("numbers", "codes", "labels"))
            for shard in manifest["subsets"]["train"]["shards"]]


def child(kind: str, source: str, cache: str, limit: str, epochs: str, batch_size: str) -> dict:
    from questlearn.io import storage

    if kind == "split":
        from questlearn.split import split_csv

        started = time.perf_counter()
        split_csv(source, cache, rows_per_shard=ROWS_PER_SHARD, id_columns=ID_COLUMNS, formats=("npy",), verbose=False)
        return {"seconds": time.perf_counter() - started}
    from questlearn.data.dataset import QuestSequence

    remote = {} if kind == "local" else {"cache_dir": cache, "cache_limit": int(limit)}
    started = time.perf_counter()
    before = storage.fetched_bytes()  # the first epoch's bytes include the manifest's
    dataset = QuestSequence(source, "train", batch_size=int(batch_size), seed=1, **remote)
    fetched, rows, epoch_seconds = [], 0, []
    for epoch in range(int(epochs)):
        dataset.set_epoch(epoch)
        begun = time.perf_counter()
        for index in range(len(dataset)):
            rows += len(dataset[index][1])
        epoch_seconds.append(time.perf_counter() - begun)
        fetched.append(storage.fetched_bytes() - before)
        before = storage.fetched_bytes()
    seconds = time.perf_counter() - started
    return {"rows": rows, "seconds": seconds, "rows_per_s": rows / seconds, "epoch_seconds": epoch_seconds,
            "fetched_per_epoch": fetched}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megabytes", type=float, default=24.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=4096)
    parser.add_argument("--child", nargs=6)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(*args.child)))
        return 0

    from s3server import ACCESS_KEY_ID, SECRET_ACCESS_KEY, S3Server, s3_filesystem, upload

    from questlearn.split import split_csv
    from questlearn.synth import rows_for_megabytes, write_quest_log

    here = Path(__file__)
    work = Path(tempfile.mkdtemp(prefix="questlearn-bench-object-store-"))
    server = S3Server().start()
    os.environ.update(AWS_ACCESS_KEY_ID=ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY=SECRET_ACCESS_KEY,
                      AWS_DEFAULT_REGION="us-east-1", AWS_EC2_METADATA_DISABLED="true",
                      AWS_ENDPOINT_URL_S3=server.endpoint)
    try:
        store = s3_filesystem(server.endpoint)
        store.create_dir("bench")
        log = write_quest_log(work / "log.csv", rows=rows_for_megabytes(args.megabytes), seed=1)
        megabytes = log.stat().st_size / 1e6
        upload(store, log, "bench/logs/log.csv")
        split_dir = work / "split"
        split_csv(log, split_dir, rows_per_shard=ROWS_PER_SHARD, id_columns=ID_COLUMNS, formats=("npy",), verbose=False)
        for path in sorted(p for p in split_dir.rglob("*") if p.is_file()):
            upload(store, path, f"bench/split/{path.relative_to(split_dir).as_posix()}")
        url = "s3://bench/split/"
        shard_bytes, largest = sum(train_bytes(split_dir)), max(train_bytes(split_dir))
        manifest_bytes = (split_dir / "manifest.json").stat().st_size
        big = str(50 * (shard_bytes + manifest_bytes))
        common = (big, "1", str(args.batch_size))
        print(f"log {megabytes:.1f} MB; train shards {shard_bytes / 1e6:.1f} MB (largest {largest / 1e6:.2f} MB); manifest {manifest_bytes / 1e3:.1f} kB")

        loader_rounds = []
        for number in range(args.rounds):
            cache = work / f"cache_{number}"
            order = ("local", "cold", "warm") if number % 2 == 0 else ("cold", "warm", "local")
            result = {}
            for kind in order:
                source = str(split_dir) if kind == "local" else url
                result[kind] = run_child(here, "local" if kind == "local" else "s3", source, str(cache), *common)
            shutil.rmtree(cache)
            for kind in ("cold", "warm"):
                result[f"{kind}_over_local"] = result[kind]["rows_per_s"] / result["local"]["rows_per_s"]
            print(f"round {number + 1}: local {result['local']['rows_per_s']:,.0f} rows/s, cold cache "
                  f"{result['cold']['rows_per_s']:,.0f} ({result['cold_over_local']:.2f}x), warm cache "
                  f"{result['warm']['rows_per_s']:,.0f} ({result['warm_over_local']:.2f}x)")
            loader_rounds.append(result)
        warm = statistics.median(r["warm_over_local"] for r in loader_rounds)
        cold = statistics.median(r["cold_over_local"] for r in loader_rounds)

        small = str(max(shard_bytes // 3, 4 * largest) + manifest_bytes)  # a third, or the least it may be
        epochs = str(args.epochs)
        fits = run_child(here, "s3", url, str(work / "cache_fits"), big, epochs, str(args.batch_size))
        streams = run_child(here, "s3", url, str(work / "cache_streams"), small, epochs, str(args.batch_size))
        print(f"fetched per epoch, split fits the cache: {[round(b / 1e6, 2) for b in fits['fetched_per_epoch']]} MB; "
              f"limit {int(small) / 1e6:.1f} MB: {[round(b / 1e6, 2) for b in streams['fetched_per_epoch']]} MB "
              f"(train shards {shard_bytes / 1e6:.2f} MB + manifest)")

        split_rounds = []
        for number in range(args.rounds):
            order = ("local", "s3") if number % 2 == 0 else ("s3", "local")
            result = {}
            for kind in order:
                out = work / f"out_{kind}_{number}"
                run = run_child(here, "split", str(log) if kind == "local" else "s3://bench/logs/log.csv", str(out),
                                "0", "0", "0")
                shutil.rmtree(out)
                result[kind] = {**run, "mb_per_s": megabytes / run["seconds"]}
            result["ratio"] = result["s3"]["mb_per_s"] / result["local"]["mb_per_s"]
            print(f"round {number + 1}: split local {result['local']['mb_per_s']:.1f} MB/s, from S3 "
                  f"{result['s3']['mb_per_s']:.1f} MB/s: {result['ratio']:.2f}x")
            split_rounds.append(result)
        split_ratio = statistics.median(r["ratio"] for r in split_rounds)
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)

    once = shard_bytes + manifest_bytes
    print(f"\nloader rows/s over local (median of {args.rounds} rounds): cold cache {cold:.2f}x, warm cache {warm:.2f}x")
    print(f"split from S3 over local (median of {args.rounds} rounds): {split_ratio:.2f}x")
    save("object_store", {"source_megabytes": megabytes, "train_shard_bytes": shard_bytes,
                          "manifest_bytes": manifest_bytes, "batch_size": args.batch_size, "epochs": args.epochs,
                          "loader_rounds": loader_rounds, "cold_over_local": cold, "warm_over_local": warm,
                          "fits": fits, "streams": {"limit": int(small), **streams},
                          "split_rounds": split_rounds, "split_s3_over_local": split_ratio})
    return verdict({
        f"warm cache >= 0.9x local loader rows/s ({warm:.2f}x)": warm >= 0.9,
        f"a split that fits is fetched once over {args.epochs} epochs ({sum(fits['fetched_per_epoch'])} bytes, "
        f"split {once})": sum(fits["fetched_per_epoch"]) == once,
        f"a split that does not fit fetches at most its bytes per epoch (most {max(streams['fetched_per_epoch'])}, "
        f"split {once})": max(streams["fetched_per_epoch"]) <= once,
        f"split from S3 >= 0.8x the local split ({split_ratio:.2f}x)": split_ratio >= 0.8,
    })


if __name__ == "__main__":
    sys.exit(main())
