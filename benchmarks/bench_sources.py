"""Sources: gzip vs plain split throughput, inspect on 1 GB, memory of multi-file and Parquet splits.

* gzip vs plain: the same log split from its plain and its gzip copy, each
  run in a fresh process, alternating, ``--rounds`` rounds; the claim is the
  median of the per-round ratios (MB/s of uncompressed data).
* inspect on a 1 GB file: seconds, and the bytes the process read
  (``/proc/self/io`` ``rchar``): it must read a small fraction of the file.
* peak RSS of a split at 1x and 4x the data, for a directory of CSV part
  files and for a Parquet file (4x = four times the parts / rows).

Usage: python benchmarks/bench_sources.py [--megabytes 48] [--rounds 3] [--inspect-gigabytes 1]

Targets: gzip split >= 0.5x the plain split; inspect reads < 5 % of
the 1 GB file; peak RSS growth 1x -> 4x < 10 % for both sources.
"""

from __future__ import annotations

import argparse
import gzip
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import peak_rss_mib, run_child, save, verdict  # noqa: E402

ID_COLUMNS = ("attempt_id", "player_id")


def bytes_read() -> int:
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("rchar:"):
            return int(line.split()[1])
    return -1


def child(kind: str, source: str, out: str) -> dict:
    started = time.perf_counter()
    if kind == "inspect":
        from questlearn.split.inspection import inspect_source

        inspect_source(source, id_columns=ID_COLUMNS, print_to=lambda *_: None)
    else:
        from questlearn.split import split_csv

        split_csv(source, out, rows_per_shard=100_000, id_columns=ID_COLUMNS, verbose=False)
    return {"seconds": time.perf_counter() - started, "peak_rss_mib": peak_rss_mib()["self"], "rchar": bytes_read()}


def write_parts(log: Path, folder: Path, parts: int) -> Path:
    """Cut ``log`` (no quoted newlines) into ``parts`` files of about equal size, streaming."""
    folder.mkdir()
    size = log.stat().st_size // parts + 1
    with open(log, "rb") as source:
        header = source.readline()
        for index in range(parts):
            with open(folder / f"part-{index:05d}.csv", "wb") as part:
                part.write(header)
                written = 0
                for line in source:
                    part.write(line)
                    written += len(line)
                    if written >= size:
                        break
    (folder / "_SUCCESS").write_bytes(b"")
    return folder


def write_parquet(log: Path, target: Path) -> Path:
    """``log`` as Parquet in 50,000-row groups, streaming."""
    import pyarrow.csv as pa_csv
    import pyarrow.parquet as pq

    reader = pa_csv.open_csv(log, read_options=pa_csv.ReadOptions(block_size=8 << 20))
    with pq.ParquetWriter(target, reader.schema) as writer:
        for batch in reader:
            writer.write_batch(batch, row_group_size=50_000)
    return target


def repeat_to(log: Path, target: Path, gigabytes: float) -> Path:
    """A file of about ``gigabytes`` GB: the log's header, then its rows over and over."""
    with open(log, "rb") as source:
        header = source.readline()
        body = source.read()
    with open(target, "wb") as handle:
        handle.write(header)
        written = 0
        while written < gigabytes * 1e9:
            handle.write(body)
            written += len(body)
    return target


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megabytes", type=float, default=48.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--inspect-gigabytes", type=float, default=1.0)
    parser.add_argument("--child", nargs=3, metavar=("KIND", "SOURCE", "OUT"))
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(*args.child)))
        return 0

    from questlearn.synth import rows_for_megabytes, write_quest_log

    here = Path(__file__)
    work = Path(tempfile.mkdtemp(prefix="questlearn-bench-sources-"))
    try:
        logs = {f: write_quest_log(work / f"log_{f}x.csv", rows=rows_for_megabytes(args.megabytes * f), seed=1)
                for f in (1, 4)}
        megabytes = logs[1].stat().st_size / 1e6
        packed = work / "log_1x.csv.gz"
        with open(logs[1], "rb") as plain, gzip.open(packed, "wb", compresslevel=6) as compressed:
            shutil.copyfileobj(plain, compressed, 1 << 20)
        rounds = []
        for number in range(args.rounds):
            order = ("plain", "gzip") if number % 2 == 0 else ("gzip", "plain")
            result = {}
            for kind in order:
                source = logs[1] if kind == "plain" else packed
                run = run_child(here, "split", str(source), str(work / f"out_{kind}_{number}"))
                shutil.rmtree(work / f"out_{kind}_{number}")
                result[kind] = {**run, "mb_per_s": megabytes / run["seconds"]}
            result["ratio"] = result["gzip"]["mb_per_s"] / result["plain"]["mb_per_s"]
            print(f"round {number + 1}: plain {result['plain']['mb_per_s']:.1f} MB/s, gzip {result['gzip']['mb_per_s']:.1f} MB/s "
                  f"(of uncompressed data): {result['ratio']:.2f}x")
            rounds.append(result)
        gzip_ratio = statistics.median(r["ratio"] for r in rounds)

        big = repeat_to(logs[1], work / "one_gigabyte.csv", args.inspect_gigabytes)
        inspect = run_child(here, "inspect", str(big), str(work / "unused"))
        inspect["file_bytes"] = big.stat().st_size
        inspect["read_fraction"] = inspect["rchar"] / inspect["file_bytes"]
        print(f"inspect on {inspect['file_bytes'] / 1e9:.2f} GB: {inspect['seconds']:.2f} s, read "
              f"{inspect['rchar'] / 1e6:.1f} MB ({inspect['read_fraction'] * 100:.2f} % of the file)")
        big.unlink()

        memory = {}
        for factor, log in logs.items():
            parts = write_parts(log, work / f"parts_{factor}x", 4 * factor)
            parquet = write_parquet(log, work / f"log_{factor}x.parquet")
            for name, source in (("parts", parts), ("parquet", parquet)):
                run = run_child(here, "split", str(source), str(work / f"mem_{name}_{factor}x"))
                memory.setdefault(name, {})[f"{factor}x"] = run
                print(f"{name:8} at {factor}x: peak RSS {run['peak_rss_mib']:.1f} MiB ({run['seconds']:.1f} s)")
        growth = {name: m["4x"]["peak_rss_mib"] / m["1x"]["peak_rss_mib"] - 1 for name, m in memory.items()}
    finally:
        shutil.rmtree(work, ignore_errors=True)

    print(f"\ngzip / plain split throughput (median of {args.rounds} rounds): {gzip_ratio:.2f}x")
    for name, value in growth.items():
        print(f"peak RSS growth 1x -> 4x, {name}: {value * 100:+.1f} %")
    save("sources", {"source_megabytes": megabytes, "rounds": rounds, "gzip_over_plain": gzip_ratio,
                     "inspect": inspect, "memory": memory, "rss_growth_1x_to_4x": growth})
    return verdict({
        f"gzip split >= 0.5x the plain split ({gzip_ratio:.2f}x)": gzip_ratio >= 0.5,
        f"inspect reads < 5 % of a {args.inspect_gigabytes:g} GB file ({inspect['read_fraction'] * 100:.2f} %)":
            inspect["read_fraction"] < 0.05,
        **{f"peak RSS growth 1x->4x < 10 %, {name} ({value * 100:+.1f} %)": value < 0.10 for name, value in growth.items()},
    })


if __name__ == "__main__":
    sys.exit(main())
