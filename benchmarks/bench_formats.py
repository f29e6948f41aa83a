"""Which binary shard format? Load time of one shard as model-ready float32, side by side.

The same 100,000 training rows stored as: the CSV shard (parsed by pyarrow with
the manifest schema), a Parquet file (pyarrow, snappy) and the ``.npy`` files
questlearn writes. Each is read cold from the page cache and turned into a
float32 matrix, several times; the median counts. Also the bytes on disk.

Usage: python benchmarks/bench_formats.py
This measurement is why the split writes ``.npy`` shards.
"""

from __future__ import annotations

import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).parent))
from _common import save, verdict  # noqa: E402


def median_seconds(load, repeats=7):
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        load()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> int:
    from questlearn.data._batches import ShardReader
    from questlearn.manifest._files import load_manifest
    from questlearn.split import split_csv
    from questlearn.synth import write_quest_log

    work = Path(tempfile.mkdtemp(prefix="questlearn-bench-formats-"))
    try:
        log = write_quest_log(work / "log.csv", rows=125_000, seed=4)
        split_csv(log, work / "split", rows_per_shard=100_000, val_fraction=0.2, seed=0, formats=("csv", "npy"),
                  id_columns=("attempt_id", "player_id"))
        manifest = load_manifest(work / "split")
        shard = manifest["subsets"]["train"]["shards"][0]
        csv_reader = ShardReader(manifest, "train", source="csv")
        npy_reader = ShardReader(manifest, "train", source="npy")
        features, labels = npy_reader._read_csv(0)  # the model-ready matrix, as the CSV route builds it
        parquet = work / "shard.parquet"
        pq.write_table(pa.table({**{f"c{i}": features[:, i] for i in range(features.shape[1])}, "label": labels}), parquet)

        def from_parquet():
            table = pq.read_table(parquet)
            return np.column_stack([table[f"c{i}"].to_numpy() for i in range(features.shape[1])]), table["label"].to_numpy()

        results = {
            "csv": {"seconds": median_seconds(lambda: csv_reader._read_csv(0)),
                    "bytes": shard["files"]["csv"]["bytes"]},
            "parquet": {"seconds": median_seconds(from_parquet), "bytes": parquet.stat().st_size},
            "npy": {"seconds": median_seconds(lambda: [np.array(a) for a in npy_reader._open_npy(0)]),  # read in full
                    "bytes": sum(shard["files"][p]["bytes"] for p in ("features", "labels"))},
        }
    finally:
        shutil.rmtree(work, ignore_errors=True)
    rows = shard["rows"]
    for name, result in results.items():
        result["rows_per_second"] = rows / result["seconds"]
        print(f"{name:8} {result['seconds'] * 1000:7.1f} ms per {rows}-row shard "
              f"({result['rows_per_second'] / 1e6:6.1f} M rows/s), {result['bytes'] / 1e6:5.1f} MB on disk")
    save("formats", {"rows": rows, "results": results})
    npy_vs_parquet = results["parquet"]["seconds"] / results["npy"]["seconds"]
    npy_vs_csv = results["csv"]["seconds"] / results["npy"]["seconds"]
    print(f"\nnpy loads {npy_vs_parquet:.1f}x faster than Parquet and {npy_vs_csv:.1f}x faster than CSV")
    return verdict({f"npy is the fastest format to load ({npy_vs_parquet:.1f}x Parquet)": npy_vs_parquet > 1.0})


if __name__ == "__main__":
    sys.exit(main())
