"""End-to-end ``fit`` throughput: questlearn vs the original recipe, same model, one run.

Three fits of the same MLP (questlearn.train.model.build_model, its
``"small"`` preset: the plain 64-32 network these figures have always used)
on the same training rows, each in a fresh process:

* ``recipe`` — the original recipe's PyDataset (one 1000-row CSV file per
  batch, pandas, 2 worker processes), whose ``x`` is one float32 matrix
  (its quest type one-hot encoded by pandas): the same hidden layers over
  that single input;
* ``questlearn`` — QuestSequence on the binary shards, batch 1000: ``x``
  holds the ``numbers`` and ``codes`` blocks (the model one-hot encodes or
  embeds the codes);
* ``in_memory`` — the same rows as numpy arrays already in memory: the
  model's own speed, with no input pipeline at all.

``input_wait_fraction = 1 - in_memory_time / pipeline_time`` estimates the
share of step time spent waiting on input. On a GPU machine the model is
faster, so this fraction is the number to watch there.

Usage: python benchmarks/bench_fit.py [--megabytes 24] [--epochs 2]

``--input-wait`` measures the input-wait fraction directly: the
model as :func:`questlearn.train._fit.train` builds it (its default preset,
with the split's quantiles), fed by a QuestSequence with ``--batch-size``
(default 1024: ``train()`` now chooses its batch size from the data size, so
the benchmark fixes one) and ``train()``'s default workers, trained for one epoch
(or ``--steps``) of the split that ``bench_loader.py --versus-raw`` uses
(``--split DIR`` reuses or keeps it). Two clocks, after ``WARMUP_STEPS``
steps (graph tracing, pool start):

* ``iterator``: time spent inside ``next()`` on the batches that Keras's
  PyDataset adapter hands to the backend (the training loop is blocked
  there: inside ``train_function`` with TensorFlow, between steps with JAX
  or torch);
* ``callback_gap``: time from ``on_train_batch_end`` to the next
  ``on_train_batch_begin`` (catches the wait with JAX/torch; with
  TensorFlow the batch is fetched inside the step, so this stays small).

The fraction is the larger of the two over the steps' wall time; target
< 5 % on CPU. Saves ``results/fit_input_wait.json``::

    python benchmarks/bench_fit.py --input-wait [--split /big/disk/split] [--steps N]

``--models`` compares the CPU fit throughput (training rows/s) of the
network presets against the model questlearn trained before them, on the
same synthetic log (``--megabytes``), side by side:

* ``default`` — this tree's default preset (numbers also through
  piecewise-linear embeddings of their quantile bins, 256-256 units, AdamW
  with a cosine schedule), built as ``train()`` builds it;
* ``small`` — this tree's ``"small"`` preset (the plain 64-32 MLP, Adam);
* ``old`` — questlearn at ``--baseline`` (default ``441e7a9``: one-hot
  shards, ``build_model(mean, variance, num_classes)`` with hidden (64, 32)),
  checked out with ``git archive`` into a temporary folder, given its own
  split of the log and trained through its own API as its ``train()`` did.

Each contender: a fresh process, ``QuestSequence(batch_size=--batch-size,
workers=2)`` over its split's train subset (the batch size is the same for
all, default 1024; 2 workers is both trees' ``train()`` default), ``fit``
for ``--epochs`` (default 2) epochs without validation or checkpoints; the
last epoch's training rows/s is reported (the first includes graph
tracing). Rounds (``--rounds``) alternate the order; reported are medians
and medians of per-round ratios ``default / old`` and ``small / old``.
Target: the small preset not slower than the old model (ratio >= 0.95).
Saves ``results/fit_models.json``::

    python benchmarks/bench_fit.py --models [--megabytes 24] [--rounds 3] [--batch-size 1024]
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
from _common import run_child, save, verdict  # noqa: E402
from bench_loader import prepare, recipe_dataset  # noqa: E402


def child(kind: str, data: str, epochs: str) -> dict:
    import keras
    import numpy as np

    from questlearn.data.dataset import QuestSequence
    from questlearn.train.devices import describe_device
    from questlearn.train.model import build_model

    data, epochs = Path(data), int(epochs)
    keras.utils.set_random_seed(0)
    reference = QuestSequence(data / "split", "train", batch_size=1000, shuffle=True)
    if kind == "recipe":
        files = sorted((data / "recipe").glob("split_data_*.csv"))
        inputs = recipe_dataset(files, workers=2, processes=True)
        # The recipe's x is one float32 matrix (numbers and its own one-hot quest type): the same hidden
        # layers over that one input, normalised with the moments of its first batch (not timed).
        first = inputs[0][0]
        model = build_model(first.mean(axis=0), first.var(axis=0), reference.num_classes, code_counts=(),
                            model="small")
        model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])  # one-hot labels
        fit = dict(x=inputs)
        rows = sum(1 for _ in files) * 1000
    else:
        mean, variance = reference.feature_moments()
        model = build_model(mean, variance, reference.num_classes, code_counts=reference.code_counts(), model="small")
    if kind == "questlearn":
        fit = dict(x=reference)
        rows = reference.plan.total_rows
    elif kind == "in_memory":
        batches = [reference[i] for i in range(len(reference))]
        x = {block: np.concatenate([b[0][block] for b in batches]) for block in batches[0][0]}  # numbers, codes
        y = np.concatenate([b[1] for b in batches])
        fit = dict(x=x, y=y, batch_size=1000)
        rows = len(y)
    model.fit(**fit, epochs=1, shuffle=False, verbose=0)  # warm-up: graph tracing, pools
    started = time.perf_counter()
    model.fit(**fit, epochs=epochs, shuffle=False, verbose=0)
    seconds = time.perf_counter() - started
    return {"rows_per_second": rows * epochs / seconds, "seconds": seconds, "device": describe_device()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megabytes", type=float, default=24.0)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--input-wait", action="store_true", help="input-wait fraction of fit on the big split")
    parser.add_argument("--split", type=Path, default=None, help="--input-wait: split to reuse, or to make and keep")
    parser.add_argument("--rows", type=int, default=5_500_000, help="--input-wait: rows of the synthetic log")
    parser.add_argument("--rows-per-shard", type=int, default=100_000)
    parser.add_argument("--steps", type=int, default=0, help="--input-wait: training steps (default: one epoch)")
    parser.add_argument("--batch-size", type=int, default=1024, help="--input-wait, --models: rows a batch")
    parser.add_argument("--models", action="store_true", help="fit rows/s of the presets vs the model of --baseline")
    parser.add_argument("--rounds", type=int, default=3, help="--models: rounds, alternating the order")
    parser.add_argument("--baseline", default="441e7a9", help="--models: commit of the old model")
    parser.add_argument("--child", nargs="+", metavar="ARG")
    args = parser.parse_args()
    if args.child:
        kind, *rest = args.child
        runner = {"input_wait": input_wait_child, "model": models_child}.get(kind)
        print(json.dumps(runner(*rest) if runner else child(kind, *rest)))
        return 0
    if args.input_wait:
        return input_wait(args)
    if args.models:
        return models(args)
    work = Path(tempfile.mkdtemp(prefix="questlearn-bench-fit-"))
    try:
        prepare(work, args.megabytes, seed=3)
        runs = {}
        for kind in ("recipe", "questlearn", "in_memory"):
            runs[kind] = run_child(Path(__file__), kind, str(work), str(args.epochs))
            print(f"{kind:11} {runs[kind]['rows_per_second']:>10,.0f} rows/s  ({runs[kind]['seconds']:.2f} s on {runs[kind]['device']})")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    speedup = runs["questlearn"]["rows_per_second"] / runs["recipe"]["rows_per_second"]
    wait = {kind: max(0.0, 1 - runs["in_memory"]["seconds"] / runs[kind]["seconds"]) for kind in ("recipe", "questlearn")}
    print(f"\nquestlearn fit is {speedup:.1f}x the recipe; input-wait fraction: "
          + ", ".join(f"{k} {v * 100:.0f} %" for k, v in wait.items()))
    save("fit", {"runs": runs, "speedup": speedup, "input_wait_fraction": wait})
    return verdict({
        f"questlearn fit faster than the recipe ({speedup:.1f}x)": speedup > 1.0,
        f"questlearn input wait below the recipe's ({wait['questlearn'] * 100:.0f} % vs {wait['recipe'] * 100:.0f} %)": wait["questlearn"] < wait["recipe"],
    })


# -- the input-wait fraction of fit, measured per step --------------
WARMUP_STEPS = 20


def train_defaults() -> dict:
    """Keyword defaults of :func:`questlearn.train._fit.train` (workers, model preset and shape).

    Its ``batch_size`` and ``epochs`` default to ``None`` (chosen from the
    data size): the fit benchmarks set the batch size themselves.
    """
    import inspect

    from questlearn.train._fit import train

    return {name: p.default for name, p in inspect.signature(train).parameters.items() if p.default is not p.empty}


def timed_batches(waits: list):
    """Patch Keras's PyDataset adapter so each ``next()`` on its batch iterator appends its seconds to ``waits``."""
    from keras.src.trainers.data_adapters.py_dataset_adapter import PyDatasetAdapter

    original = PyDatasetAdapter._get_iterator

    def _get_iterator(self):
        iterator = iter(original(self))
        while True:
            started = time.perf_counter()
            try:
                batch = next(iterator)
            except StopIteration:
                return
            waits.append(time.perf_counter() - started)
            yield batch

    PyDatasetAdapter._get_iterator = _get_iterator


def input_wait_child(split: str, steps: str, batch_size: str) -> dict:
    import keras

    from questlearn.data.dataset import QuestSequence
    from questlearn.train.devices import describe_device
    from questlearn.train.model import build_model

    class StepClock(keras.callbacks.Callback):
        """Per step: the gap from the previous step's end to this step's begin, and each step's end time."""

        def __init__(self):
            super().__init__()
            self.gaps, self.ends = [], []

        def on_train_batch_begin(self, batch, logs=None):
            if self.ends:
                self.gaps.append(time.perf_counter() - self.ends[-1])

        def on_train_batch_end(self, batch, logs=None):
            self.ends.append(time.perf_counter())

    defaults = train_defaults()
    loading = {k: defaults[k] for k in ("workers", "use_multiprocessing", "max_queue_size") if k in defaults}
    loading["batch_size"] = int(batch_size)  # train()'s own default depends on the data size
    keras.utils.set_random_seed(0)
    data = QuestSequence(split, "train", shuffle=True, seed=0, **loading)
    mean, variance = data.feature_moments()
    steps = int(steps) or len(data)
    model = build_model(mean, variance, data.num_classes, hidden=defaults["hidden"], dropout=defaults["dropout"],
                        learning_rate=defaults["learning_rate"], code_counts=data.code_counts(),
                        model=defaults["model"], quantiles=data.feature_quantiles(), total_steps=steps)
    waits, clock = [], StepClock()
    timed_batches(waits)
    if steps <= WARMUP_STEPS + 10:
        raise SystemExit(f"need more than {WARMUP_STEPS + 10} steps, got {steps}")
    model.fit(data, epochs=1, steps_per_epoch=steps, shuffle=False, verbose=0, callbacks=[clock])
    # Steps after the warm-up: wall time from the end of step WARMUP_STEPS - 1 to the end of the last.
    wall = clock.ends[-1] - clock.ends[WARMUP_STEPS - 1]
    gap = sum(clock.gaps[WARMUP_STEPS - 1:])  # gaps[i] precedes step i + 1
    waited = sum(waits[-(len(clock.ends) - WARMUP_STEPS):])  # the iterator's last batches are the measured steps'
    return {"steps": len(clock.ends), "measured_steps": len(clock.ends) - WARMUP_STEPS, "wall_seconds": wall,
            "iterator_wait_seconds": waited, "callback_gap_seconds": gap,
            "iterator_wait_fraction": waited / wall, "callback_gap_fraction": gap / wall,
            "rows_per_second": (len(clock.ends) - WARMUP_STEPS) * loading["batch_size"] / wall,
            "model": defaults["model"], "loading": loading, "backend": keras.backend.backend(), "device": describe_device()}


def input_wait(args) -> int:
    from _big_split import big_split, shard_summary, train_shards

    with big_split(args.split, args.rows, args.rows_per_shard) as split_dir:
        shards = shard_summary(train_shards(split_dir))
        run = run_child(Path(__file__), "input_wait", str(split_dir), str(args.steps), str(args.batch_size))
    fraction = max(run["iterator_wait_fraction"], run["callback_gap_fraction"])
    print(f"fit of the {run['model']!r} model on {run['device']} ({run['backend']}), {run['loading']}: {run['measured_steps']} steps after "
          f"{WARMUP_STEPS} warm-up, {run['rows_per_second']:,.0f} rows/s; waiting for input: "
          f"{run['iterator_wait_fraction'] * 100:.1f} % in the batch iterator, "
          f"{run['callback_gap_fraction'] * 100:.1f} % between steps")
    save("fit_input_wait", {"split": shards, "warmup_steps": WARMUP_STEPS, "run": run, "input_wait_fraction": fraction})
    return verdict({f"input-wait fraction in fit on CPU < 5 % ({fraction * 100:.1f} %)": fraction < 0.05})


# -- the presets against the model of an older commit --------------
MODEL_CONTENDERS = ("default", "small", "old")
FIT_WORKERS = 2  # train()'s default loader threads, in both trees
SYNTH_LABEL = "cleared"


def models_child(kind: str, split: str, epochs: str, batch_size: str) -> dict:
    """Fit one contender on ``split``'s train subset with the questlearn on ``sys.path``; per-epoch rows/s.

    ``kind`` ``"old"``: the old tree's API (one ``features`` matrix, ``build_model(mean, variance,
    num_classes)`` with its own defaults); otherwise this tree's preset ``kind``, built as ``train()`` builds it.
    """
    import keras

    import questlearn
    from questlearn.data.dataset import QuestSequence
    from questlearn.train.devices import describe_device
    from questlearn.train.model import build_model

    class EpochClock(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.started = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.seconds = [*getattr(self, "seconds", []), time.perf_counter() - self.started]

    epochs, batch_size = int(epochs), int(batch_size)
    keras.utils.set_random_seed(0)
    data = QuestSequence(split, "train", batch_size=batch_size, shuffle=True, seed=0, workers=FIT_WORKERS)
    mean, variance = data.feature_moments()
    if kind == "old":
        model = build_model(mean, variance, data.num_classes)
    else:
        model = build_model(mean, variance, data.num_classes, code_counts=data.code_counts(), model=kind,
                            quantiles=data.feature_quantiles(), total_steps=epochs * len(data))
    clock = EpochClock()
    model.fit(data, epochs=epochs, shuffle=False, verbose=0, callbacks=[clock])  # QuestSequence shuffles itself
    rows = data.plan.total_rows
    return {"rows_per_second": rows / clock.seconds[-1], "epoch_seconds": clock.seconds, "train_rows": rows,
            "inputs": {tensor.name: list(tensor.shape[1:]) for tensor in model.inputs},
            "parameters": model.count_params(), "package": str(Path(questlearn.__file__).parent),
            "backend": keras.backend.backend(), "device": describe_device()}


def models(args) -> int:
    from bench_encoding import REPO, checkout, run

    if args.epochs < 2:
        raise SystemExit("--models reports the last epoch, after the first's graph tracing: --epochs must be at least 2")
    work = Path(tempfile.mkdtemp(prefix="questlearn-bench-fit-models-"))
    try:
        (work / "old").mkdir()
        roots = {"default": REPO, "small": REPO, "old": checkout(args.baseline, work / "old")}
        log = work / "quests.csv"
        run(REPO, "-m", "questlearn", "synth", str(log), "--megabytes", str(args.megabytes), "--no-progress")
        splits = {"new": work / "split-new", "old": work / "split-old"}  # each tree splits the log in its own format
        for tree, split in splits.items():
            run(roots[tree] if tree == "old" else REPO, "-m", "questlearn", "split", str(log), str(split),
                "--label", SYNTH_LABEL, "--id-column", "attempt_id", "--id-column", "player_id",
                "--rows-per-shard", "50000", "--drop-missing-labels", "--no-progress")
        measured = {c: [] for c in MODEL_CONTENDERS}
        for round_number in range(args.rounds):
            order = MODEL_CONTENDERS if round_number % 2 == 0 else MODEL_CONTENDERS[::-1]
            for contender in order:
                split = splits["old" if contender == "old" else "new"]
                result = run(roots[contender], str(Path(__file__).resolve()), "--child", "model", contender,
                             str(split), str(args.epochs), str(args.batch_size))
                measured[contender].append(json.loads(result.stdout.strip().splitlines()[-1]))
                r = measured[contender][-1]
                print(f"round {round_number + 1} {contender:7s}: {r['rows_per_second']:>10,.0f} rows/s in the last "
                      f"epoch ({r['train_rows']:,} rows, {r['parameters']:,} parameters, {r['device']})", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    medians = {c: statistics.median(r["rows_per_second"] for r in runs) for c, runs in measured.items()}
    ratios = {f"{c}_over_old": statistics.median(a["rows_per_second"] / b["rows_per_second"]
                                                 for a, b in zip(measured[c], measured["old"])) for c in ("default", "small")}
    print("\nlast-epoch rows/s (medians): " + ", ".join(f"{c} {v:,.0f}" for c, v in medians.items())
          + f"; default / old {ratios['default_over_old']:.2f}, small / old {ratios['small_over_old']:.2f}")
    path = save("fit_models", {"baseline_commit": args.baseline, "megabytes": args.megabytes, "rounds": args.rounds,
                               "epochs": args.epochs, "batch_size": args.batch_size, "workers": FIT_WORKERS,
                               "median_rows_per_second": medians, "ratios": ratios, "runs": measured})
    print(f"saved {path}")
    return verdict({f"small preset not slower than the old model (small / old {ratios['small_over_old']:.2f} >= 0.95)":
                    ratios["small_over_old"] >= 0.95})


if __name__ == "__main__":
    sys.exit(main())
