"""Sequential split vs ``--parallel 2`` on the same directory of part files.

Each contender runs in a fresh process, alternating, for several rounds;
the claim is the ratio of the median wall times. The sequential split
already overlaps scanning and parsing on two threads, so on a 2-core
machine (shared with others) two part tasks compete for the same cores:
expect about 1x here. On a host with many idle cores, part tasks scale until
the disk or the merge (a sequential pass that rewrites only the ``.npy``
shards whose codes change and hard-links the rest) is the limit.

Usage: python benchmarks/bench_parallel_split.py [--megabytes 64] [--parts 4] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import peak_rss_mib, run_child, save  # noqa: E402

OPTIONS = dict(rows_per_shard=100_000, val_fraction=0.2, seed=0, id_columns=("attempt_id", "player_id"))


def child(kind: str, source: str, out: str) -> dict:
    from questlearn.split import split_csv

    started = time.perf_counter()
    parallel = None if kind == "sequential" else int(kind.split("_")[1])
    manifest = split_csv(source, out, parallel=parallel, verbose=False, **OPTIONS)
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "rows": manifest["source"]["rows"], "parent_peak_rss_mib": peak_rss_mib()["self"]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megabytes", type=float, default=64.0, help="total size of the part files")
    parser.add_argument("--parts", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--child", nargs=3, metavar=("KIND", "SOURCE", "OUT"))
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(*args.child)))
        return 0

    from questlearn.synth import rows_for_megabytes, write_quest_log

    contenders = ("sequential", "parallel_2")
    work = Path(tempfile.mkdtemp(prefix="questlearn-bench-psplit-"))
    try:
        parts = work / "parts"
        parts.mkdir()
        rows = rows_for_megabytes(args.megabytes / args.parts)
        for index in range(args.parts):
            write_quest_log(parts / f"part-{index:05d}.csv", rows=rows, seed=index)
        (parts / "_SUCCESS").write_bytes(b"")
        megabytes = sum(p.stat().st_size for p in parts.glob("part-*")) / 1e6
        runs = {kind: [] for kind in contenders}
        for round_index in range(args.rounds):
            order = contenders if round_index % 2 == 0 else contenders[::-1]  # alternate who goes first
            for kind in order:
                out = work / f"out_{kind}"
                result = run_child(Path(__file__), kind, str(parts), str(out))
                shutil.rmtree(out)
                runs[kind].append(result)
                print(f"round {round_index + 1} {kind:11} {result['seconds']:6.2f} s  "
                      f"({megabytes / result['seconds']:5.1f} MB/s, {result['rows']} rows)", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    medians = {kind: statistics.median(r["seconds"] for r in runs[kind]) for kind in contenders}
    speedup = medians["sequential"] / medians["parallel_2"]
    print(f"\nmedian: sequential {medians['sequential']:.2f} s, --parallel 2 {medians['parallel_2']:.2f} s: "
          f"speed-up {speedup:.2f}x on {megabytes:.0f} MB in {args.parts} parts")
    path = save(f"parallel_split_{megabytes:.0f}mb", {"source_megabytes": megabytes, "parts": args.parts, "rounds": args.rounds,
                                   "options": {k: list(v) if isinstance(v, tuple) else v for k, v in OPTIONS.items()},
                                   "runs": runs, "median_seconds": medians,
                                   "median_mb_per_s": {k: megabytes / v for k, v in medians.items()},
                                   "speedup_parallel_2": speedup,
                                   "note": "2 shared cores: the sequential split already uses two threads"})
    print(f"saved {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
