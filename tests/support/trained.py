"""A small trained model shared by the export, predict and CLI tests, the checks of a two-process training run,
and scoring raw rows through a SavedModel."""

import re

import numpy as np
from helpers import ID_COLUMNS
from splits import model_ready_split

from questlearn.synth import write_quest_log
from questlearn.train._fit import train


def train_small_model(root, rows: int = 4000, epochs: int = 2):
    """Split a plain quest log (one validate shard, ``fill="mean"``) and train on it.

    Returns ``(log, split_dir, result)``; the model is in ``root / "model"``.
    """
    log = write_quest_log(root / "quests.csv", rows=rows, seed=5)
    split_dir = root / "split"
    model_ready_split(log, split_dir, fill="mean", rows_per_shard=rows, val_fraction=0.25, seed=1, id_columns=ID_COLUMNS)
    result = train(split_dir, root / "model", epochs=epochs, batch_size=256, workers=1, verbose=0)
    return log, split_dir, result


def assert_one_job_on_every_row(output: str, history: dict, train_rows: int, epochs: int = 2) -> str:
    """Check a two-process training run through its ``--verbose 2`` output and its ``history.json``.

    Both processes print the same SHA-256 of their final weights, each epoch's training rows are split
    between the two and add up to ``train_rows``, and the global ``rows_seen`` (counted through the
    model) is ``train_rows`` every epoch, one padding row an epoch. Returns process 0's digest.
    """
    digests = dict(re.findall(r"process (\d+)/2 final weights sha256 ([0-9a-f]{64})", output))
    assert sorted(digests) == ["0", "1"], output[-3000:]
    assert len(set(digests.values())) == 1, digests  # bit-identical weights on both processes
    served = {}
    for process, epoch, rows in re.findall(r"process (\d+)/2, epoch (\d+): (\d+) training rows", output):
        served.setdefault(int(epoch), {})[int(process)] = int(rows)
    assert sorted(served) == list(range(1, epochs + 1))
    assert all(sum(per_process.values()) == train_rows and len(per_process) == 2 for per_process in served.values()), served
    assert history["rows_seen"] == [train_rows] * epochs  # counted through the model, globally
    assert history["processes"] == 2 and history["padding_rows_per_epoch"] == 1
    return digests["0"]


def saved_model_scores(serve, spec: dict, rows, output: str = "probabilities") -> np.ndarray:
    """``serve`` (a SavedModel's ``serving_default``) on ``rows``, a DataFrame of raw columns: each feature under
    its signature key from ``spec`` (``inference.json``), float32 for numbers, strings (``""`` for missing) else."""
    from questlearn.quiet import import_tensorflow

    tf = import_tensorflow()
    columns = {spec["signature_keys"][f["name"]]: tf.constant(rows[f["name"]].to_numpy(np.float32))
               if f["kind"] == "numeric" else tf.constant(rows[f["name"]].fillna("").astype(str).to_numpy(object))
               for f in spec["features"]}
    return serve(**columns)[output].numpy()
