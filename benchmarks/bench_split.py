"""Split throughput and memory: questlearn vs the original recipe, side by side.

The original recipe: ``pandas.read_csv(chunksize=1000)`` and ``to_csv`` of
every chunk into its own file. Both run on the same file in the same run,
each in a fresh process; the claim is the *ratio* of their throughputs.
Peak RSS of questlearn is measured at 1x and 4x the data size.

Usage: python benchmarks/bench_split.py [--megabytes 64]

Targets (issue 2): questlearn >= 3x the recipe's MB/s; peak RSS at 4x
within 10 % of 1x.
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
from _common import peak_rss_mib, run_child, save, verdict  # noqa: E402


def child(kind: str, source: str, out: str) -> dict:
    started = time.perf_counter()
    if kind == "recipe":
        import pandas as pd

        Path(out).mkdir(parents=True)
        for index, chunk in enumerate(pd.read_csv(source, chunksize=1000)):
            chunk.to_csv(Path(out) / f"split_data_{index:05d}.csv", index=False)
    else:
        from questlearn.split import split_csv

        formats = ("csv",) if kind == "questlearn_csv" else ("csv", "npy")
        split_csv(source, out, rows_per_shard=100_000, val_fraction=0.2, seed=0,
                  id_columns=("attempt_id", "player_id"), formats=formats)
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "peak_rss_mib": peak_rss_mib()["self"]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megabytes", type=float, default=64.0)
    parser.add_argument("--child", nargs=3, metavar=("KIND", "SOURCE", "OUT"))
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(*args.child)))
        return 0

    from questlearn.synth import rows_for_megabytes, write_quest_log

    work = Path(tempfile.mkdtemp(prefix="questlearn-bench-split-"))
    try:
        sizes = {}
        for factor in (1, 4):
            path = write_quest_log(work / f"log_{factor}x.csv", rows=rows_for_megabytes(args.megabytes * factor), seed=1)
            sizes[factor] = path
        megabytes = sizes[1].stat().st_size / 1e6
        runs = {}
        for kind in ("recipe", "questlearn_csv", "questlearn_csv_npy"):
            runs[kind] = run_child(Path(__file__), kind, str(sizes[1]), str(work / f"out_{kind}"))
            runs[kind]["mb_per_s"] = megabytes / runs[kind]["seconds"]
            print(f"{kind:20} {runs[kind]['mb_per_s']:7.1f} MB/s  ({runs[kind]['seconds']:.2f} s, peak RSS {runs[kind]['peak_rss_mib']:.0f} MiB)")
        memory = {}
        for factor, path in sizes.items():
            memory[f"{factor}x"] = run_child(Path(__file__), "questlearn_csv_npy", str(path), str(work / f"mem_{factor}x"))
            print(f"questlearn at {factor}x ({path.stat().st_size / 1e6:.0f} MB): peak RSS {memory[f'{factor}x']['peak_rss_mib']:.1f} MiB")
    finally:
        shutil.rmtree(work, ignore_errors=True)

    speedup_csv = runs["questlearn_csv"]["mb_per_s"] / runs["recipe"]["mb_per_s"]
    speedup_both = runs["questlearn_csv_npy"]["mb_per_s"] / runs["recipe"]["mb_per_s"]
    growth = memory["4x"]["peak_rss_mib"] / memory["1x"]["peak_rss_mib"] - 1
    print(f"\nspeed-up vs recipe: {speedup_csv:.1f}x (CSV shards), {speedup_both:.1f}x (CSV + npy shards, with stats)")
    print(f"peak RSS growth 1x -> 4x: {growth * 100:+.1f} %")
    save("split", {"source_megabytes": megabytes, "runs": runs, "memory": memory,
                   "speedup_csv": speedup_csv, "speedup_csv_npy": speedup_both, "rss_growth_1x_to_4x": growth})
    return verdict({
        f"CSV-shard split >= 3x the recipe ({speedup_csv:.1f}x)": speedup_csv >= 3,
        f"CSV+npy split >= 3x the recipe ({speedup_both:.1f}x)": speedup_both >= 3,
        f"peak RSS growth 1x->4x < 10 % ({growth * 100:+.1f} %)": growth < 0.10,
    })


if __name__ == "__main__":
    sys.exit(main())
