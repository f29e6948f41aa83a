"""Split throughput, CPU and memory: questlearn vs polars, DuckDB, pyarrow and the original recipe.

Contenders, on one synthetic quest log, each in a fresh process, the order
alternating every round (``--rounds``), medians of per-round ratios:

* ``questlearn`` — ``split_csv(rows_per_shard=100_000, val_fraction=0.2,
  seed=0, id_columns=("attempt_id", "player_id"))`` with its default formats
  (model-ready ``.npy`` shards); ``questlearn_csv`` — the same with
  ``formats=("csv", "npy")``;
* ``polars`` — ``pl.scan_csv(src).sink_parquet(out)``;
* ``duckdb`` — ``COPY (SELECT * FROM read_csv(src)) TO out (FORMAT parquet)``
  on ``duckdb.connect()`` (default threads);
* ``pyarrow`` — streaming ``pyarrow.csv.open_csv`` into a
  ``pyarrow.parquet.ParquetWriter`` (8 MB blocks, so row groups are not tiny);
* ``recipe`` — the original recipe: ``pandas.read_csv(chunksize=1000)`` and
  ``to_csv`` of every chunk into its own file.

Each child imports its libraries before the clock starts, then reports wall
seconds, CPU seconds (``getrusage`` user + sys of itself and its waited-for
children, so threads and worker processes count), peak RSS (``VmHWM``) and
the bytes it wrote. Contenders whose module is not installed are skipped
(``pip install questlearn[bench]`` installs polars and DuckDB).

Whole-process mode (always, after the in-process contest; ``--cli-only`` runs
it alone and saves ``results/split_cli.json``): what a user sees at a shell.
Each contender is one fresh command, start-up included, timed by this
process from start to exit, alternating, ``--rounds`` rounds, medians of
per-round ratios:

* ``questlearn`` — ``questlearn split SOURCE OUT`` with the same arguments
  (the installed ``questlearn`` script beside this Python, else
  ``python -m questlearn``);
* ``polars`` — ``python -c "...pl.scan_csv(src).sink_parquet(out)"``;
* ``duckdb`` — ``python -c "...duckdb.connect().execute('COPY (SELECT * FROM
  read_csv(src)) TO out (FORMAT parquet)')"``.

CPU seconds are the child's ``getrusage(RUSAGE_CHILDREN)`` difference. Then
start-up alone, in fresh processes, alternating, medians: ``python -c pass``,
``python -c "import questlearn.split"`` and ``questlearn --help``.

Cold-cache mode (``--cold-megabytes 8000``): questlearn alone, alternately on
the ``--megabytes`` log and on a second, larger log, each run preceded by
evicting *that source file* from the page cache (``os.fsync`` then
``posix_fadvise(POSIX_FADV_DONTNEED)`` on the file only; nothing else is
dropped). Also the projection to a 100 GB log: hours at the large log's
cold throughput, and output bytes at the large log's output/source ratio.

Usage::

    python benchmarks/bench_split.py [--megabytes 1000] [--rounds 3] [--cold-megabytes 8000] [--work DIR]
    python benchmarks/bench_split.py --megabytes 100 --rounds 1    # a smoke run
    python benchmarks/bench_split.py --cli-only --megabytes 300      # whole processes only

Targets: questlearn >= polars (goal); >= DuckDB and >= 10x the
recipe (floor); cold throughput at 8 GB >= 0.9x that at 1 GB and peak RSS
at 8 GB within 10 % of 1 GB. Results go to ``results/split.json``
(``results/split_cli.json`` with ``--cli-only``, which checks no targets).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import peak_rss_mib, run_child, save, verdict  # noqa: E402

CONTENDERS = ("questlearn", "questlearn_csv", "polars", "duckdb", "pyarrow", "recipe")
MODULES = {"questlearn": "questlearn", "questlearn_csv": "questlearn", "polars": "polars", "duckdb": "duckdb",
           "pyarrow": "pyarrow", "recipe": "pandas"}
SPLIT_ARGUMENTS = dict(rows_per_shard=100_000, val_fraction=0.2, seed=0, id_columns=("attempt_id", "player_id"))
PROJECTED_BYTES = 100e9


# -- the child: one contender, one run --------------------------------------
def prepare_contender(kind: str):
    """Import what ``kind`` needs (outside the clock); return ``run(source, out)``."""
    if kind in ("questlearn", "questlearn_csv"):
        from questlearn.split import split_csv

        formats = {"formats": ("csv", "npy")} if kind == "questlearn_csv" else {}
        return lambda source, out: split_csv(source, out, verbose=False, **SPLIT_ARGUMENTS, **formats)
    if kind == "polars":
        import polars as pl

        return lambda source, out: pl.scan_csv(source).sink_parquet(out / "data.parquet")
    if kind == "duckdb":
        import duckdb

        def run_duckdb(source, out):
            quoted = {name: "'" + str(path).replace("'", "''") + "'" for name, path in
                      (("source", source), ("target", out / "data.parquet"))}
            with duckdb.connect() as connection:
                connection.execute(f"COPY (SELECT * FROM read_csv({quoted['source']})) TO {quoted['target']} (FORMAT parquet)")

        return run_duckdb
    if kind == "pyarrow":
        import pyarrow.csv as pa_csv
        import pyarrow.parquet as pq

        def run_pyarrow(source, out):
            reader = pa_csv.open_csv(source, read_options=pa_csv.ReadOptions(block_size=8 << 20))
            with pq.ParquetWriter(out / "data.parquet", reader.schema) as writer:
                for batch in reader:
                    writer.write_batch(batch)

        return run_pyarrow
    if kind == "recipe":
        import pandas as pd

        def run_recipe(source, out):
            for index, chunk in enumerate(pd.read_csv(source, chunksize=1000)):
                chunk.to_csv(out / f"split_data_{index:05d}.csv", index=False)

        return run_recipe
    raise ValueError(f"unknown contender {kind!r}; known: {', '.join(CONTENDERS)}")


def cpu_seconds() -> float:
    """User + system CPU seconds of this process (all threads) and its waited-for children."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def directory_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def child(kind: str, source: str, out: str) -> dict:
    """Run one contender on ``source`` into the new directory ``out``; return its measurements."""
    imported = time.perf_counter()
    run = prepare_contender(kind)
    import_seconds = time.perf_counter() - imported
    out = Path(out)
    if kind not in ("questlearn", "questlearn_csv"):
        out.mkdir(parents=True)  # questlearn makes (and checks) its own output directory
    cpu_before, started = cpu_seconds(), time.perf_counter()
    run(source, out)
    seconds = time.perf_counter() - started
    rss = peak_rss_mib()
    return {"seconds": seconds, "cpu_seconds": cpu_seconds() - cpu_before, "import_seconds": import_seconds,
            "peak_rss_mib": rss["self"], "largest_child_rss_mib": rss["largest_child"],
            "output_bytes": directory_bytes(out)}


# -- the parent ---------------------------------------------------------------
def measure(kind: str, source: Path, out: Path, label: str | None = None) -> dict:
    """One fresh-process run of ``kind``; add rates relative to the source; delete its output."""
    try:
        run = run_child(Path(__file__), kind, str(source), str(out))
    finally:
        shutil.rmtree(out, ignore_errors=True)
    gigabytes = source.stat().st_size / 1e9
    run["mb_per_s"] = gigabytes * 1e3 / run["seconds"]
    run["cpu_seconds_per_gb"] = run["cpu_seconds"] / gigabytes
    run["output_over_source"] = run["output_bytes"] / source.stat().st_size
    print(f"  {label or kind:15} {run['mb_per_s']:8.1f} MB/s  {run['cpu_seconds_per_gb']:7.1f} CPU-s/GB  "
          f"peak RSS {run['peak_rss_mib']:7.0f} MiB  output {run['output_over_source']:.2f}x source  ({run['seconds']:.1f} s)",
          flush=True)
    return run


def evict(path: Path) -> None:
    """Drop ``path``'s pages from the page cache (that file only)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def warm(path: Path) -> None:
    """Read ``path`` once so every contender of the hot contest finds it in the page cache."""
    with open(path, "rb") as handle:
        while handle.read(16 << 20):
            pass


def write_log(path: Path, megabytes: float, seed: int) -> Path:
    """Write the synthetic log, or reuse one this script wrote with the same size and seed (in --work)."""
    from questlearn.synth import rows_for_megabytes, write_quest_log

    recipe = {"rows": rows_for_megabytes(megabytes), "seed": seed}
    note = path.with_name(path.name + ".json")
    if path.exists() and note.exists() and json.loads(note.read_text()) == {**recipe, "bytes": path.stat().st_size}:
        print(f"reusing {path}", flush=True)
        return path
    free = shutil.disk_usage(path.parent).free
    if free < megabytes * 1e6 * 3:  # the log, and room for the largest output (about 1.5x) beside it
        raise SystemExit(f"{path.parent} has {free / 1e9:.1f} GB free; a {megabytes:.0f} MB log and its split need "
                         f"about {megabytes * 3e-3:.1f} GB: pass --work on a larger disk")
    print(f"writing a {megabytes:.0f} MB synthetic log to {path} ...", flush=True)
    write_quest_log(path, rows=recipe["rows"], seed=seed)
    note.write_text(json.dumps({**recipe, "bytes": path.stat().st_size}))
    return path


def median_ratio(rounds: list, numerator: str, denominator: str, key: str) -> float | None:
    """Median over rounds of ``round[numerator][key] / round[denominator][key]``."""
    ratios = [r[numerator][key] / r[denominator][key] for r in rounds if numerator in r and denominator in r]
    return statistics.median(ratios) if ratios else None


def contest(source: Path, work: Path, rounds: int) -> dict:
    """All contenders on the warm ``source``, alternating, ``rounds`` rounds."""
    skipped = {k: f"module {MODULES[k]!r} is not installed" for k in CONTENDERS
               if importlib.util.find_spec(MODULES[k]) is None}
    failed = {}
    runs = []
    warm(source)
    for number in range(rounds):
        order = [k for k in (CONTENDERS if number % 2 == 0 else CONTENDERS[::-1]) if k not in skipped and k not in failed]
        print(f"round {number + 1} of {rounds}: {', '.join(order)}", flush=True)
        results = {}
        for kind in order:
            try:
                results[kind] = measure(kind, source, work / f"out_{kind}")
            except RuntimeError as error:
                if kind == "questlearn":
                    raise
                failed[kind] = str(error)[-2000:]
                print(f"  {kind:15} FAILED (left out of later rounds):\n{failed[kind]}", flush=True)
        runs.append(results)
    ran = [k for k in CONTENDERS if k not in skipped and k not in failed]
    medians = {k: {key: statistics.median(r[k][key] for r in runs if k in r)
                   for key in ("mb_per_s", "cpu_seconds_per_gb", "peak_rss_mib", "output_over_source")} for k in ran}
    ratios = {k: {"throughput": median_ratio(runs, "questlearn", k, "mb_per_s"),
                  "cpu_seconds_per_gb": median_ratio(runs, "questlearn", k, "cpu_seconds_per_gb"),
                  "peak_rss": median_ratio(runs, "questlearn", k, "peak_rss_mib")} for k in ran if k != "questlearn"}
    print("\nmedians (questlearn / contender, medians of per-round ratios):")
    for k in ran:
        m = medians[k]
        line = f"  {k:15} {m['mb_per_s']:8.1f} MB/s  {m['cpu_seconds_per_gb']:7.1f} CPU-s/GB  peak RSS {m['peak_rss_mib']:7.0f} MiB"
        if k in ratios:
            line += f"   questlearn/{k}: throughput {ratios[k]['throughput']:.2f}x, CPU per GB {ratios[k]['cpu_seconds_per_gb']:.2f}x"
        print(line)
    for k, why in {**skipped, **failed}.items():
        print(f"  {k:15} skipped: {why.splitlines()[0]}")
    return {"source_bytes": source.stat().st_size, "rounds": runs, "medians": medians,
            "ratios_questlearn_over": ratios, "skipped": skipped, "failed": failed}


# -- whole processes: the commands a user types ------------------------------
CLI_CONTENDERS = ("questlearn", "polars", "duckdb")
POLARS_COMMAND = "import sys, polars as pl; pl.scan_csv(sys.argv[1]).sink_parquet(sys.argv[2])"
DUCKDB_COMMAND = ("import sys, duckdb; quoted = [\"'\" + p.replace(\"'\", \"''\") + \"'\" for p in sys.argv[1:]]; "
                  "duckdb.connect().execute(f'COPY (SELECT * FROM read_csv({quoted[0]})) TO {quoted[1]} (FORMAT parquet)')")
STARTUP_COMMANDS = ("python -c pass", "python -c 'import questlearn.split'", "questlearn --help")


def questlearn_command() -> list[str]:
    """The ``questlearn`` script installed beside this Python, else ``python -m questlearn``."""
    script = Path(sys.executable).with_name("questlearn")
    return [str(script)] if script.exists() else [sys.executable, "-m", "questlearn"]


def cli_command(kind: str, source: Path, out: Path) -> list[str]:
    """The command line of contender ``kind`` splitting ``source`` into ``out``."""
    if kind == "questlearn":
        ids = [arg for name in SPLIT_ARGUMENTS["id_columns"] for arg in ("--id-column", name)]
        return [*questlearn_command(), "split", str(source), str(out), "--no-progress",
                "--rows-per-shard", str(SPLIT_ARGUMENTS["rows_per_shard"]),
                "--val-fraction", str(SPLIT_ARGUMENTS["val_fraction"]), "--seed", str(SPLIT_ARGUMENTS["seed"]), *ids]
    script = {"polars": POLARS_COMMAND, "duckdb": DUCKDB_COMMAND}[kind]
    return [sys.executable, "-c", script, str(source), str(out / "data.parquet")]


def shown_command(command: list[str]) -> list[str]:
    """``command`` as recorded: the program by its name, not its path on this machine."""
    return [Path(command[0]).name, *command[1:]]


def timed_process(command: list[str]) -> dict:
    """Run ``command`` to its end; return its wall and CPU seconds (its waited-for children included)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True,
                            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONUNBUFFERED": "1"})
    seconds = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command[:3])} ... exited {result.returncode}:\n{result.stderr[-2000:]}")
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return {"seconds": seconds, "cpu_seconds": cpu}


def cli_contest(source: Path, work: Path, rounds: int) -> dict:
    """``questlearn split`` vs polars and DuckDB as whole fresh processes, alternating, ``rounds`` rounds."""
    skipped = {k: f"module {k!r} is not installed" for k in CLI_CONTENDERS if importlib.util.find_spec(k) is None}
    runs, gigabytes = [], source.stat().st_size / 1e9
    warm(source)
    for number in range(rounds):
        order = [k for k in (CLI_CONTENDERS if number % 2 == 0 else CLI_CONTENDERS[::-1]) if k not in skipped]
        print(f"whole-process round {number + 1} of {rounds}: {', '.join(order)}", flush=True)
        results = {}
        for kind in order:
            out = work / f"cli_{kind}"
            if kind != "questlearn":
                out.mkdir()  # questlearn makes (and checks) its own output directory
            try:
                run = timed_process(cli_command(kind, source, out))
            finally:
                shutil.rmtree(out, ignore_errors=True)
            run["mb_per_s"] = gigabytes * 1e3 / run["seconds"]
            results[kind] = run
            print(f"  {kind:15} {run['seconds']:7.2f} s  {run['mb_per_s']:8.1f} MB/s  {run['cpu_seconds']:7.1f} CPU-s",
                  flush=True)
        runs.append(results)
    ran = [k for k in CLI_CONTENDERS if k not in skipped]
    medians = {k: {key: statistics.median(r[k][key] for r in runs) for key in ("seconds", "mb_per_s", "cpu_seconds")}
               for k in ran}
    ratios = {k: {"throughput": median_ratio(runs, "questlearn", k, "mb_per_s"),
                  "cpu_seconds": median_ratio(runs, "questlearn", k, "cpu_seconds")} for k in ran if k != "questlearn"}
    print("\nwhole-process medians (questlearn / contender, medians of per-round ratios):")
    for k in ran:
        line = f"  {k:15} {medians[k]['seconds']:7.2f} s  {medians[k]['mb_per_s']:8.1f} MB/s"
        if k in ratios:
            line += f"   questlearn/{k}: throughput {ratios[k]['throughput']:.2f}x, CPU {ratios[k]['cpu_seconds']:.2f}x"
        print(line)
    return {"source_bytes": source.stat().st_size, "commands": {k: shown_command(cli_command(k, Path("SOURCE"), Path("OUT"))) for k in ran},
            "rounds": runs, "medians": medians, "ratios_questlearn_over": ratios, "skipped": skipped}


def startup(repeats: int) -> dict:
    """Wall seconds of ``STARTUP_COMMANDS``, each in ``repeats`` fresh processes, alternating; medians."""
    commands = dict(zip(STARTUP_COMMANDS, ([sys.executable, "-c", "pass"],
                                           [sys.executable, "-c", "import questlearn.split"],
                                           [*questlearn_command(), "--help"])))
    names = list(commands)
    seconds = {name: [] for name in names}
    for number in range(repeats):
        for name in (names if number % 2 == 0 else names[::-1]):
            seconds[name].append(timed_process(commands[name])["seconds"])
    medians = {name: statistics.median(values) for name, values in seconds.items()}
    print(f"\nstart-up, medians of {repeats} fresh processes:")
    for name in names:
        print(f"  {name:40} {medians[name]:6.2f} s  (range {min(seconds[name]):.2f}-{max(seconds[name]):.2f} s)")
    return {"repeats": repeats, "seconds": seconds, "medians": medians}


def cold(small: Path, large: Path, work: Path, rounds: int) -> dict:
    """questlearn on the small and the large log, alternating, each source evicted first."""
    runs = []
    for number in range(rounds):
        pair = (("small", small), ("large", large)) if number % 2 == 0 else (("large", large), ("small", small))
        print(f"cold round {number + 1} of {rounds}", flush=True)
        results = {}
        for name, source in pair:
            evict(source)
            results[name] = measure("questlearn", source, work / f"out_cold_{name}", f"{name} log, cold")
        runs.append(results)
    throughput = median_ratio(runs, "large", "small", "mb_per_s")
    rss = median_ratio(runs, "large", "small", "peak_rss_mib")
    large_mb_per_s = statistics.median(r["large"]["mb_per_s"] for r in runs)
    output_over_source = statistics.median(r["large"]["output_over_source"] for r in runs)
    projection = {"source_bytes": PROJECTED_BYTES, "hours": PROJECTED_BYTES / (large_mb_per_s * 1e6) / 3600,
                  "output_bytes": output_over_source * PROJECTED_BYTES, "at_mb_per_s": large_mb_per_s,
                  "output_over_source": output_over_source}
    print(f"\ncold cache: large/small throughput {throughput:.2f}x, peak RSS {rss:.3f}x; "
          f"100 GB projection: {projection['hours']:.2f} h at {large_mb_per_s:.1f} MB/s, "
          f"{projection['output_bytes'] / 1e9:.0f} GB of output")
    return {"small_bytes": small.stat().st_size, "large_bytes": large.stat().st_size, "rounds": runs,
            "throughput_large_over_small": throughput, "peak_rss_large_over_small": rss, "projection_100gb": projection}


def checks(result: dict) -> int:
    """Print PASS/FAIL (or SKIP) per target; return the exit code."""
    if "contest" not in result:  # --cli-only: figures to read, no targets
        return 0
    ratios, targets = result["contest"]["ratios_questlearn_over"], {}
    for kind, need, what in (("polars", 1.0, "goal"), ("duckdb", 1.0, "floor"), ("recipe", 10.0, "floor")):
        if kind in ratios and ratios[kind]["throughput"] is not None:
            got = ratios[kind]["throughput"]
            targets[f"questlearn >= {need:g}x {kind} ({what}): {got:.2f}x"] = got >= need
        else:
            print(f"  SKIP  questlearn >= {need:g}x {kind} ({what}): {kind} did not run")
    if "cold" in result:
        c = result["cold"]
        targets[f"cold cache: throughput at the large log >= 0.9x the small one ({c['throughput_large_over_small']:.2f}x)"] = \
            c["throughput_large_over_small"] >= 0.9
        targets[f"cold cache: peak RSS at the large log within 10 % of the small one ({c['peak_rss_large_over_small']:.3f}x)"] = \
            c["peak_rss_large_over_small"] <= 1.10
    return verdict(targets)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megabytes", type=float, default=1000.0, help="size of the contest's log (default 1 GB)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--cold-megabytes", type=float, default=0.0,
                        help="also run the cold-cache comparison against a log of this size (e.g. 8000)")
    parser.add_argument("--cli-only", action="store_true",
                        help="only the whole-process contest and start-up times; save results/split_cli.json")
    parser.add_argument("--startup-repeats", type=int, default=7, help="fresh processes per start-up command")
    parser.add_argument("--work", type=Path, default=None, help="directory for the logs and outputs (default: a temp dir)")
    parser.add_argument("--child", nargs=3, metavar=("KIND", "SOURCE", "OUT"))
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(*args.child)))
        return 0

    work = Path(tempfile.mkdtemp(prefix="questlearn-bench-split-", dir=args.work))
    try:
        small = write_log(work / "log.csv", args.megabytes, seed=1)
        result = {"split_arguments": {**SPLIT_ARGUMENTS, "id_columns": list(SPLIT_ARGUMENTS["id_columns"])}}
        if not args.cli_only:
            result["contest"] = contest(small, work, args.rounds)
        result["cli"] = cli_contest(small, work, args.rounds)
        result["startup"] = startup(args.startup_repeats)
        if args.cold_megabytes and not args.cli_only:
            large = write_log(work / "log_large.csv", args.cold_megabytes, seed=2)
            result["cold"] = cold(small, large, work, args.rounds)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"\nsaved {save('split_cli' if args.cli_only else 'split', result)}")
    return checks(result)


if __name__ == "__main__":
    sys.exit(main())
