"""``questlearn predict`` throughput and memory, side by side in one run.

Contenders, on the same rows and the same trained model:

* ``predict_file`` — :func:`questlearn.serve.predict.predict_file`: a CSV file
  in, a CSV file out (strict scanning, parsing, the inference model,
  writing), streamed in 8 MB blocks;
* ``in_memory`` — ``inference.keras``'s ``model.predict`` on the same rows
  already parsed and held in memory as the tensors
  :func:`questlearn.serve.inference_inputs` builds (reading the file and
  building them is not timed): the model's own cost, including its
  in-model category lookup and hashing, the floor for any file-to-file path.

Each run is a fresh process; rounds alternate between the contenders and
the medians are reported. Peak RSS of ``predict_file`` is measured on the
1x and the 4x input: streaming means it must stay flat.

Usage: python benchmarks/bench_predict.py [--rows 100000] [--rounds 3]
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
from _common import peak_rss_mib, run_child, save, verdict  # noqa: E402

SCRIPT = Path(__file__)


def child(mode: str, model_dir: str, source: str, output: str) -> dict:
    import questlearn.quiet  # noqa: F401  (TensorFlow's start-up log off)

    if mode == "predict_file":
        from questlearn.serve.predict import predict_file

        started = time.perf_counter()
        rows = predict_file(model_dir, source, output)
        seconds = time.perf_counter() - started
    else:
        import keras
        import pandas as pd

        from questlearn.serve import inference_inputs

        model = keras.saving.load_model(Path(model_dir) / "inference.keras")
        frame = pd.read_csv(source, keep_default_na=False, na_values=[""])
        # the model's raw inputs (numbers as float32, categories as strings, datetimes as int64 seconds), not timed
        inputs = inference_inputs(frame, model_dir)
        model.predict({k: v[:10] for k, v in inputs.items()}, verbose=0)  # build the predict function (not timed)
        started = time.perf_counter()
        model.predict(inputs, batch_size=8192, verbose=0)
        seconds = time.perf_counter() - started
        rows = len(frame)
    return {"rows": rows, "seconds": seconds, "rows_per_second": rows / seconds, "peak_rss_mib": peak_rss_mib()["self"]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000, help="rows of the 1x input")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds per contender")
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(*args.child)))
        return 0

    import questlearn.quiet  # noqa: F401
    from questlearn.split import split_csv
    from questlearn.synth import write_quest_log
    from questlearn.train._fit import train

    work = Path(tempfile.mkdtemp(prefix="bench-predict-"))
    try:
        small = write_quest_log(work / "train.csv", rows=20_000, seed=1)
        split_csv(small, work / "split", rows_per_shard=20_000, id_columns=("attempt_id", "player_id"))
        train(work / "split", work / "model", epochs=1, batch_size=1024, workers=1, verbose=0)
        inputs = {1: write_quest_log(work / "x1.csv", rows=args.rows, seed=2),
                  4: write_quest_log(work / "x4.csv", rows=4 * args.rows, seed=2)}
        runs = {"predict_file": [], "in_memory": []}
        for round_ in range(args.rounds):
            for mode in (("predict_file", "in_memory") if round_ % 2 == 0 else ("in_memory", "predict_file")):
                runs[mode].append(run_child(SCRIPT, mode, str(work / "model"), str(inputs[1]), str(work / "out.csv")))
                print(f"round {round_} {mode}: {runs[mode][-1]['rows_per_second']:,.0f} rows/s", flush=True)
        big = run_child(SCRIPT, "predict_file", str(work / "model"), str(inputs[4]), str(work / "out4.csv"))
    finally:
        shutil.rmtree(work, ignore_errors=True)

    median = {mode: statistics.median(r["rows_per_second"] for r in results) for mode, results in runs.items()}
    rss_1x = statistics.median(r["peak_rss_mib"] for r in runs["predict_file"])
    ratio = median["predict_file"] / median["in_memory"]
    payload = {
        "rows_1x": args.rows, "rounds": args.rounds,
        "median_rows_per_second": median,
        "predict_file_vs_in_memory": ratio,
        "predict_file_peak_rss_mib": {"1x": rss_1x, "4x": big["peak_rss_mib"]},
        "predict_file_4x_rows_per_second": big["rows_per_second"],
        "runs": runs,
    }
    print(json.dumps({k: v for k, v in payload.items() if k != "runs"}, indent=1))
    print(f"saved {save('predict', payload)}")
    return verdict({
        f"predict_file peak RSS flat from 1x to 4x input ({rss_1x:.0f} -> {big['peak_rss_mib']:.0f} MiB, within 10 %)":
            big["peak_rss_mib"] <= 1.10 * rss_1x,
    })


if __name__ == "__main__":
    sys.exit(main())
