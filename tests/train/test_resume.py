"""Mid-epoch resume: a SIGKILLed ``questlearn train`` continues at the batch after its last save."""

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import pytest
from batch_records import read_batch_records, train_recorded
from helpers import TORCH_MISSING, run_child, run_env, start_child
from resumed import CrashAt, assert_resumed_equals_uninterrupted, steps_per_execution_resume
from splits import model_ready_split

from questlearn.cli import main
from questlearn.synth import write_quest_log
from questlearn.train._fit import train
from questlearn.train._resume import load_backup

TRAIN_ARGS = ["--epochs", "3", "--batch-size", "64", "--workers", "1", "--seed", "4"]


@pytest.fixture(scope="module")
def id_feature_split(tmp_path_factory):
    """A split where ``attempt_id`` is a feature, so each batch shows which rows it holds."""
    root = tmp_path_factory.mktemp("resume")
    log = write_quest_log(root / "quests.csv", rows=6000, seed=3)
    model_ready_split(log, root / "split", rows_per_shard=700, seed=0, id_columns=("player_id",), progress=False)
    return root / "split"


def train_ids(split_dir):
    manifest = json.loads((split_dir / "manifest.json").read_text())
    shards = manifest["subsets"]["train"]["shards"]
    return Counter(pd.concat([pd.read_csv(split_dir / s["files"]["csv"]["name"], usecols=["attempt_id"])
                              for s in shards])["attempt_id"].tolist())


def start_training(record, pause, model_dir, split_dir, extra=()):
    """Start ``questlearn train`` in a child that records each batch's ids to ``record`` and stops
    at ``pause`` (``"EPOCH:BATCH"``; ``"-"``: never) until the test kills it."""
    return start_child("resume_child.py", record, pause, "--", split_dir, "--model-dir", model_dir, *TRAIN_ARGS, *extra)


@pytest.mark.timeout(1200)
def test_sigkilled_training_resumes_mid_epoch_using_every_row_once(id_feature_split, tmp_path, capsys):
    expected = train_ids(id_feature_split)

    uninterrupted = train_recorded(tmp_path / "a.txt", [id_feature_split, "--model-dir", tmp_path / "a", *TRAIN_ARGS])
    assert uninterrupted == 0, capsys.readouterr().err[-3000:]

    killed = start_training(tmp_path / "b.txt", "1:37", tmp_path / "b", id_feature_split, ["--save-every-batches", "10"])
    deadline = time.monotonic() + 720
    while not Path(f"{tmp_path / 'b.txt'}.paused").exists():
        assert killed.poll() is None, killed.stderr.read()[-3000:]
        assert time.monotonic() < deadline, "the child never reached epoch 1, batch 37"
        time.sleep(0.1)
    os.kill(killed.pid, signal.SIGKILL)  # in the middle of epoch 1, 7 batches after its save at batch 30
    killed.communicate(timeout=360)
    assert killed.returncode == -signal.SIGKILL
    state = load_backup(tmp_path / "b" / "backup")
    assert (state.epoch, state.batches_done) == (1, 30)
    before_kill = read_batch_records(tmp_path / "b.txt")
    assert [b for e, b, _ in before_kill if e == 1] == list(range(38))  # trained up to batch 37, then killed

    Path(tmp_path / "b.txt").rename(tmp_path / "b-killed.txt")
    capsys.readouterr()
    resumed = train_recorded(tmp_path / "b.txt", [id_feature_split, "--model-dir", tmp_path / "b", *TRAIN_ARGS,
                                                  "--save-every-batches", "10"])  # in this process: a new start
    out, err = capsys.readouterr()
    assert resumed == 0, err[-3000:]
    assert "resuming from" in out and "batch 31" in out

    after = read_batch_records(tmp_path / "b.txt")
    batches_per_epoch = max(b for e, b, _ in read_batch_records(tmp_path / "a.txt") if e == 0) + 1
    assert [b for e, b, _ in after if e == 1] == list(range(30, batches_per_epoch))  # starts right after the save
    # The model's lineage in epoch 1: batches 0-29 of the killed run (kept in the saved state; its
    # batches 30-37 were lost with it) and batches 30-end of the resumed run.
    kept = [i for e, b, ids in before_kill if e == 1 and b < state.batches_done for i in ids]
    continued = [i for e, b, ids in after if e == 1 for i in ids]
    used = Counter(kept + continued)
    assert used == expected, "the interrupted epoch skipped or repeated rows"
    assert max(used.values()) == 1
    # Same rows, same order as the uninterrupted run, in every epoch.
    straight = [(e, b, ids) for e, b, ids in read_batch_records(tmp_path / "a.txt")]
    lineage = [r for r in before_kill if r[0] == 0 or (r[0] == 1 and r[1] < 30)] + after
    assert lineage == straight

    # one history entry per epoch, the resumed one covering the whole epoch; on TensorFlow (deterministic on
    # CPU with one loading thread) the resumed run is the same run
    assert_resumed_equals_uninterrupted(tmp_path / "a", tmp_path / "b", ("loss", "accuracy", "auc", "val_loss"), 3)
    assert not (tmp_path / "b" / "backup").exists()


@pytest.mark.timeout(900)
def test_resume_refuses_another_data_order_and_keeps_early_stopping_state(id_feature_split, tmp_path):
    arguments = dict(epochs=2, batch_size=64, workers=1, verbose=0, seed=4, save_every_batches=5, saved_model=False)
    with pytest.raises(RuntimeError, match="simulated crash"):
        train(id_feature_split, tmp_path, extra_callbacks=[CrashAt(1, 12)], **arguments)
    state = load_backup(tmp_path / "backup")
    assert (state.epoch, state.batches_done) == (1, 10)
    early_stopping = state.meta["watched"][1]
    assert early_stopping["best_epoch"] == 0 and early_stopping["best_weights"]  # epoch 0's result is kept
    with pytest.raises(ValueError, match="batch_size"):
        train(id_feature_split, tmp_path, **{**arguments, "batch_size": 128})
    with pytest.raises(ValueError, match="save_every_batches"):
        train(id_feature_split, tmp_path / "other", **{**arguments, "save_every_batches": 0})
    result = train(id_feature_split, tmp_path, **arguments)
    assert result.history["epoch"] == [0, 1]
    assert not (tmp_path / "backup").exists()


@pytest.mark.timeout(900)
def test_save_every_minutes_saves_inside_the_epoch(id_feature_split, tmp_path):
    with pytest.raises(RuntimeError, match="simulated crash"):
        train(id_feature_split, tmp_path, epochs=1, batch_size=64, workers=1, verbose=0, save_every_minutes=1e-9,
              extra_callbacks=[CrashAt(0, 3)], saved_model=False)
    state = load_backup(tmp_path / "backup")
    assert (state.epoch, state.batches_done) == (0, 4)  # a save after every batch: the time is always up


# The resume checks of tests/support/resumed.py each backend runs, all in one child process per backend.
OTHER_BACKEND_CHECKS = {"jax": ("resumed_equals_uninterrupted", "steps_per_execution_resume"),
                        "torch": ("resumed_equals_uninterrupted",)}


@pytest.fixture(scope="module")
def backend_checks(id_feature_split, tmp_path_factory):
    """``run(backend)``: the child process (tests/children/resume_checks.py) that ran every check of
    ``OTHER_BACKEND_CHECKS[backend]`` with ``KERAS_BACKEND=backend``, started once per module."""
    results = {}
    # JAX compiles each of the child's six fits of the same network anew; its persistent compilation cache, in a
    # folder of this test alone, compiles each step function once (the same executables: the weights compared
    # bit for bit are unchanged; about 40 % of the child's CPU)
    jax_cache = {"JAX_COMPILATION_CACHE_DIR": str(tmp_path_factory.mktemp("jax-cache")),
                 "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0", "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "0"}

    def run(backend):
        if backend not in results:
            results[backend] = run_child("resume_checks.py", id_feature_split, tmp_path_factory.mktemp(backend),
                                         *OTHER_BACKEND_CHECKS[backend], timeout=1740,
                                         env={**run_env(), "KERAS_BACKEND": backend,
                                              **(jax_cache if backend == "jax" else {})})
        return results[backend]

    return run


@pytest.mark.xdist_group("resume_backends")  # one worker: the backend child below is started once
@pytest.mark.timeout(1800)
@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_resumed_run_equals_the_uninterrupted_one_on_other_backends(backend_checks, backend):
    """jax keeps dropout's random state in seed variables; torch draws from its global generator,
    which the backup saves too: on both, a resumed run is the uninterrupted run."""
    pytest.importorskip(backend, reason=TORCH_MISSING if backend == "torch" else None)
    result = backend_checks(backend)
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"SAME resumed_equals_uninterrupted {backend}" in result.stdout


class CrashOnSave(keras.callbacks.Callback):
    """Simulates a kill after the last epoch's state was saved, before model.keras was written."""

    def on_train_end(self, logs=None):
        raise RuntimeError("simulated crash")


@pytest.mark.timeout(900)
def test_a_run_killed_after_its_last_epoch_finishes_with_the_best_weights(id_feature_split, tmp_path):
    # asked to save every minute: the state is saved at every epoch end too, the last one included
    arguments = dict(epochs=4, batch_size=256, workers=1, verbose=0, seed=4, learning_rate=0.05, dropout=0.0, patience=10,
                     saved_model=False, save_every_minutes=1.0)
    straight = train(id_feature_split, tmp_path / "a", **arguments)
    with pytest.raises(RuntimeError, match="simulated crash"):
        train(id_feature_split, tmp_path / "b", extra_callbacks=[CrashOnSave()], **arguments)
    state = load_backup(tmp_path / "b" / "backup")
    assert state.epoch == 4 and state.meta["watched"][1]["best_epoch"] < 3  # the best is not the last epoch
    watched = state.meta["watched"][1]  # and the moving average of val_loss that also resets the patience
    assert watched["trend_best"] is not None and watched["trend"] >= 0.99 * watched["trend_best"]
    # best.keras is written at most every 30 s: the crashed run's file still holds its first epoch, and the
    # backup knows that a later best is not written yet
    assert watched["best_epoch"] > 0 and state.meta["watched"][0]["unwritten"] is True
    first_epoch_best = keras.saving.load_model(tmp_path / "b" / "best.keras").get_weights()
    finished = train(id_feature_split, tmp_path / "b", **arguments)
    assert finished.history["epoch"] == [0, 1, 2, 3]
    for a, b in zip(straight.model.get_weights(), finished.model.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    for folder in ("b", "a"):  # both runs' best.keras: the best epoch's weights, the model's at the end
        best = keras.saving.load_model(tmp_path / folder / "best.keras").get_weights()
        for a, b in zip(best, finished.model.get_weights()):
            np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7, err_msg=folder)
    assert not all(np.array_equal(a, b) for a, b in zip(first_epoch_best, finished.model.get_weights()))


class EpochClock(keras.callbacks.Callback):
    """Stands in for the backup's clock: each epoch takes ``seconds`` (the time at an epoch's end, from its begin)."""

    def __init__(self, seconds):
        super().__init__()
        self.seconds, self.now = seconds, 0.0

    def monotonic(self):
        return self.now

    def on_epoch_begin(self, epoch, logs=None):
        self.now = (epoch + 1) * self.seconds


@pytest.mark.timeout(900)
def test_without_save_options_an_epoch_end_saves_at_most_every_interval_and_a_kill_replays_the_epochs_since(
        id_feature_split, tmp_path, monkeypatch):
    """Epochs of 16 s: saved after epoch 0 (the first) and epoch 2 (32 s later), not after epochs 1 and 3. Killed
    after its last epoch, the run resumes after epoch 2, replays epoch 3 and ends as the uninterrupted run does."""
    from questlearn.train import _resume

    arguments = dict(epochs=4, batch_size=256, workers=1, verbose=0, seed=4, learning_rate=0.05, dropout=0.0,
                     patience=10, saved_model=False)
    straight = train(id_feature_split, tmp_path / "a", **arguments)
    clock, saved = EpochClock(16.0), []
    monkeypatch.setattr(_resume, "time", clock)
    save = _resume.TrainingBackup._save

    def recorded_save(backup, epoch, batches_done):
        saved.append(clock.now)
        save(backup, epoch, batches_done)

    monkeypatch.setattr(_resume.TrainingBackup, "_save", recorded_save)
    with pytest.raises(RuntimeError, match="simulated crash"):
        train(id_feature_split, tmp_path / "b", extra_callbacks=[clock, CrashOnSave()], **arguments)
    assert _resume.BACKUP_INTERVAL_SECONDS == 30 and saved == [16.0, 48.0]
    assert load_backup(tmp_path / "b" / "backup").epoch == 3
    monkeypatch.undo()
    finished = train(id_feature_split, tmp_path / "b", **arguments)
    assert finished.history["epoch"] == [0, 1, 2, 3] and finished.history["loss"] == straight.history["loss"]
    for a, b in zip(straight.model.get_weights(), finished.model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_a_fit_that_finishes_an_interrupted_epoch_saves_at_its_end_whatever_the_interval():
    """Resumed without the save option that made a mid-epoch state: the rest of that epoch is a fit of its own,
    whose end must save (it keeps the weights the epoch ended with for the epochs after it)."""
    from questlearn.train._resume import TrainingBackup

    saves = []
    for continues, asked in ((False, False), (True, False), (False, True)):
        backup = TrainingBackup("unused", dataset=None, every_batches=5 if asked else None)
        backup._save = lambda epoch, done, saves=saves: saves.append(epoch)
        backup._saved_at = float("inf")  # just saved, as far as the interval goes
        backup.continues = continues
        backup.on_epoch_end(3)
    assert saves == [4, 4]  # not the plain epoch end inside the interval


# -- a damaged backup ----------------------------------------------------------------
def write_small_state(path):
    """A ``state.npz`` laid out as ``TrainingBackup`` writes it, small enough to damage at every byte."""
    from questlearn.train._resume import FORMAT

    meta = {"format": FORMAT, "epoch": 1, "batches_done": 10, "epoch_seconds": 1.5, "seed": 4, "batch_size": 64,
            "shuffle": True, "counts": {"model": 2, "optimizer": 1, "metrics": 1, "rng": 0},
            "watched": [{"best": 0.5, "wait": 0, "best_weights": None}]}
    rng = np.random.default_rng(0)
    arrays = {"model_0": rng.random((5, 3), dtype=np.float32), "model_1": rng.random(3, dtype=np.float32),
              "optimizer_0": np.array(7, np.int64), "metrics_0": np.array(2.0, np.float32)}
    np.savez(path, **arrays, meta=np.array(json.dumps(meta)))
    return meta, arrays


@pytest.mark.timeout(900)
def test_every_truncation_and_bit_flip_of_a_backup_loads_the_same_state_or_names_the_damage(tmp_path):
    from questlearn.train._resume import DamagedBackupError

    backup = tmp_path / "backup"
    backup.mkdir()
    meta, arrays = write_small_state(backup / "state.npz")
    good = (backup / "state.npz").read_bytes()
    damaged = [good[:length] for length in range(len(good))]
    damaged += [bytes(good[:i]) + bytes([good[i] ^ (1 << bit)]) + good[i + 1:] for i in range(len(good)) for bit in (0, 7)]
    named = 0
    for data in damaged:
        (backup / "state.npz").write_bytes(data)
        try:
            state = load_backup(backup)
        except DamagedBackupError as error:
            message = str(error)
            assert "\n" not in message and str(backup / "state.npz") in message and f"delete the directory {backup}" in message
            named += 1
            continue
        assert state.meta == meta  # a flip the format does not notice changed nothing that is read
        for name, array in arrays.items():
            np.testing.assert_array_equal(state.arrays[name], array)
    assert named > len(damaged) / 2


@pytest.fixture(scope="module")
def saved_state(id_feature_split, tmp_path_factory):
    """The bytes of a real mid-epoch ``state.npz``: training crashed at epoch 0, batch 6, after its save at batch 5."""
    model_dir = tmp_path_factory.mktemp("saved")
    with pytest.raises(RuntimeError, match="simulated crash"):
        train(id_feature_split, model_dir, epochs=1, batch_size=64, workers=1, verbose=0, seed=4, save_every_batches=5,
              extra_callbacks=[CrashAt(0, 6)], saved_model=False)
    return (model_dir / "backup" / "state.npz").read_bytes()


DAMAGE = {"truncated": lambda data: data[:len(data) // 2],
          "empty": lambda data: b"",
          "bit-flipped": lambda data: data[:len(data) // 2] + bytes([data[len(data) // 2] ^ 0x10]) + data[len(data) // 2 + 1:]}


@pytest.mark.timeout(900)
@pytest.mark.parametrize("damage", DAMAGE)
def test_a_damaged_backup_stops_train_with_one_line_saying_to_delete_it(id_feature_split, saved_state, tmp_path, damage,
                                                                          capsys):
    backup = tmp_path / "model" / "backup"
    backup.mkdir(parents=True)
    damaged = DAMAGE[damage](saved_state)
    (backup / "state.npz").write_bytes(damaged)
    code = main(["train", str(id_feature_split), "--model-dir", str(tmp_path / "model"), *TRAIN_ARGS])
    stderr = capsys.readouterr().err
    assert code == 2, stderr[-3000:]
    assert "Traceback" not in stderr, stderr[-3000:]
    errors = [line for line in stderr.splitlines() if line.startswith("questlearn train: error:")]
    assert len(errors) == 1, stderr[-3000:]
    assert str(backup / "state.npz") in errors[0] and f"delete the directory {backup} to start training over" in errors[0]
    assert (backup / "state.npz").read_bytes() == damaged  # the user decides; nothing is deleted for them


def test_partial_states_of_killed_saves_are_removed_at_the_next_start(tmp_path):
    backup = tmp_path / "backup"
    backup.mkdir()
    ended = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = [backup / f".state.npz.{int(ended.stdout)}.partial", backup / f".state.npz.{os.getpid()}.partial"]
    kept = [backup / f".state.npz.{os.getppid()}.partial",  # a process still running: its save may be under way
            backup / "notes.partial", backup / ".state.npz.x1.partial", backup / "state.npz.12.partial"]
    for path in stale + kept:
        path.write_bytes(b"PK\x03\x04half a save")
    assert load_backup(backup) is None
    assert [path.name for path in stale if path.exists()] == []
    assert all(path.exists() for path in kept)
    write_small_state(backup / "state.npz")
    stale[0].write_bytes(b"PK\x03\x04half a save")
    assert load_backup(backup).epoch == 1 and not stale[0].exists()


@pytest.mark.xdist_group("resume_backends")
@pytest.mark.timeout(1800)
@pytest.mark.parametrize("backend", ["tensorflow", "jax"])
def test_several_steps_per_execution_resume_mid_epoch_exactly(id_feature_split, backend_checks, tmp_path, backend):
    """Five batches a backend call, a save every ten: killed at batch 24 of epoch 1, the run resumes at batch 20
    and ends as the uninterrupted run does, on TensorFlow and on jax (tests/support/resumed.py asserts it)."""
    pytest.importorskip(backend)
    if keras.backend.backend() == backend:  # this process's backend: no child needed
        steps_per_execution_resume(id_feature_split, tmp_path)
        return
    result = backend_checks(backend)
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"SAME steps_per_execution_resume {backend}" in result.stdout


def test_steps_per_execution_must_divide_the_save_interval(id_feature_split, tmp_path):
    with pytest.raises(ValueError, match="must divide save_every_batches"):
        train(id_feature_split, tmp_path, epochs=1, batch_size=64, verbose=0, steps_per_execution=4,
              save_every_batches=10, saved_model=False)
