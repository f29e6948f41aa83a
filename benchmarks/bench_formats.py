"""Which binary shard format? Load time of one shard as model-ready blocks, side by side.

The same (about) 100,000 training rows, one shard, stored as: the CSV shard (parsed by pyarrow with
the manifest schema and encoded), a Parquet file (pyarrow, snappy: one float32
column per numbers column, one column per codes column in the split's code
dtype, the labels) and the ``.npy`` files questlearn writes (``numbers.npy``,
``codes.npy``, ``labels.npy``). Each is read and turned into the model's
blocks (float32 numbers, integer codes, labels) several times; the median
counts. Also the bytes on disk.

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
        # about 100,000 training rows: rows_per_shard is a maximum (shards are dealt about equal), so above it
        split_csv(log, work / "split", rows_per_shard=120_000, val_fraction=0.2, seed=0, formats=("csv", "npy"),
                  id_columns=("attempt_id", "player_id"), verbose=False)
        if len(load_manifest(work / "split")["subsets"]["train"]["shards"]) != 1:
            raise SystemExit("the train subset should be one shard of about 100,000 rows")
        manifest = load_manifest(work / "split")
        shard = manifest["subsets"]["train"]["shards"][0]
        csv_reader = ShardReader(manifest, "train", source="csv")
        npy_reader = ShardReader(manifest, "train", source="npy")
        numbers, _, labels = npy_reader._read_csv(0)  # the model-ready blocks, as the CSV route builds them
        codes = np.array(npy_reader._open_npy(0)[1])  # stored in the split's code dtype (uint8/uint16/int32)
        parquet = work / "shard.parquet"
        pq.write_table(pa.table({**{f"n{i}": numbers[:, i] for i in range(numbers.shape[1])},
                                 **{f"c{i}": codes[:, i] for i in range(codes.shape[1])}, "label": labels}), parquet)

        def block(table, prefix, width, dtype):
            if not width:
                return np.empty((table.num_rows, 0), dtype)
            return np.column_stack([table[f"{prefix}{i}"].to_numpy() for i in range(width)]).astype(dtype, copy=False)

        def from_parquet():
            table = pq.read_table(parquet)
            return (block(table, "n", numbers.shape[1], np.float32), block(table, "c", codes.shape[1], codes.dtype),
                    table["label"].to_numpy())

        results = {
            "csv": {"seconds": median_seconds(lambda: csv_reader._read_csv(0)),
                    "bytes": shard["files"]["csv"]["bytes"]},
            "parquet": {"seconds": median_seconds(from_parquet), "bytes": parquet.stat().st_size},
            "npy": {"seconds": median_seconds(lambda: [np.array(a) for a in npy_reader._open_npy(0)]),  # read in full
                    "bytes": sum(shard["files"][p]["bytes"] for p in ("numbers", "codes", "labels"))},
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
