"""Resume training in the middle of an epoch, after a crash or a kill.

Keras's ``BackupAndRestore(save_freq=N)`` records the batch it saved at but
starts the interrupted epoch again from its first batch, so the rows before
the save are trained on twice in that epoch. questlearn can do better: its
batch order is a pure function of ``(seed, epoch)``
(:class:`~questlearn.data._batches.BatchPlan`), so the batches still to do are
known exactly.

:class:`TrainingBackup` is the callback :func:`questlearn.train._fit.train` uses
instead. It saves, atomically, in ``backup/state.npz``:

* every model variable, the random-seed states of dropout layers included
  (``model.variables``; ``save_weights`` leaves seed states out);
* the optimizer's variables (its step count and moments);
* the running metric totals of the epoch so far (``model.metrics_variables``),
  so the resumed epoch's history entry covers the whole epoch;
* on torch, torch's global random generators (unseeded ``Dropout`` draws
  from them there), put back just before the first resumed batch;
* where it is: ``epoch``, ``batches_done`` (dataset batches of that epoch
  already trained on), the seconds spent in that epoch, and the state of
  ``EarlyStopping`` and ``ModelCheckpoint`` (best value, patience used, best
  weights), which Keras would otherwise forget on a restart.

It saves at the end of the first epoch, then at an epoch end when its last
save is at least :data:`BACKUP_INTERVAL_SECONDS` old (so at every epoch end of
a log whose epochs take longer), and, when asked, every ``every_batches``
batches and/or every ``every_minutes`` minutes, and then at every epoch end
too. A small table's epochs take a fraction of a second, and a save (every
variable and the optimizer's moments read back and written with an
``fsync``) about 12 ms: on a 344-row table of 47 epochs, a twentieth of the
run, and for a model folder in a store, an upload an epoch. A run killed
between saves replays the epochs since the last one, in the same seeded
order, so it ends as the uninterrupted run does. With ``steps_per_execution``
above 1, Keras calls the batch hooks once per call into the backend, with
the call's last batch: a save then falls at the end of a call and records the
batches really done (:func:`~questlearn.train._fit.train` makes
``steps_per_execution`` divide ``every_batches``), so resuming stays exact. On a restart, :func:`train`
loads the state, restores the variables, and runs the rest of the
interrupted epoch from batch ``batches_done`` (``QuestSequence.start_batch``)
as a ``fit`` of its own, then the remaining epochs. The data set is pointed
at Keras's epoch number at every epoch begin (``set_epoch``), so the order
of each epoch does not depend on how many ``fit`` calls came before.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
from pathlib import Path

import keras
import numpy as np

from ..data._memory_feed import fit_input
from ..errors import ModelFileError, OptionError
from ._backup_file import (  # noqa: F401
    FORMAT,
    STATE_FILE,
    BackupState,
    DamagedBackupError,
    load_backup,
    remove_stale_partials,
)

BACKUP_INTERVAL_SECONDS = 30.0  # between epoch-end saves, unless the user asks to save more often

# EarlyStopping / ModelCheckpoint state (``trend``, ``trend_best``: EarlyStoppingAfterWarmup's moving average;
# ``unwritten``: BestModelCheckpoint's best not yet in its file)
_WATCHED = ("best", "wait", "best_epoch", "stopped_epoch", "trend", "trend_best", "unwritten", "best_weights")


def _arrays(variables) -> list[np.ndarray]:
    return [np.array(keras.ops.convert_to_numpy(v.value)) for v in variables]


def _assign(variables, arrays, what: str) -> None:
    variables = list(variables)
    if len(variables) != len(arrays):
        raise OptionError(f"the backup has {len(arrays)} {what} variables, this model has {len(variables)}: "
                          "was it made with other model arguments? Delete the backup directory to start afresh")
    for variable, array in zip(variables, arrays):
        if tuple(variable.shape) != tuple(array.shape):
            raise OptionError(f"backup {what} variable {variable.path} has shape {array.shape}, the model's is "
                              f"{tuple(variable.shape)}: delete the backup directory to start afresh")
        variable.assign(array)


class TrainingBackup(keras.callbacks.Callback):
    """Save the whole training state at epoch ends (at most every ``interval_seconds``) and every few batches
    or minutes.

    Parameters
    ----------
    backup_dir : str or Path
        Directory of ``state.npz``. :func:`questlearn.train._fit.train` removes it
        when training finishes.
    dataset : QuestSequence
        The training data; its ``start_batch`` gives the batch offset of a
        resumed epoch and its epoch is set from Keras's at each epoch begin.
    every_batches : int, optional
        Also save after every this many batches (counted inside the epoch).
    every_minutes : float, optional
        Also save after a batch when this many minutes passed since the last save.
    resumed : BackupState, optional
        The state training resumes from: its metric totals, elapsed time and
        callback state are put back at the start.
    watched : sequence of keras.callbacks.Callback
        ``EarlyStopping`` / ``ModelCheckpoint`` instances whose state
        (best value, wait, best weights) is saved and restored. List this
        callback after them.
    after_save : callable, optional
        Called with no arguments after each save (a model folder in a store
        uploads the backup then: :mod:`questlearn.train._model_store`).
    interval_seconds : float
        Without ``every_batches`` or ``every_minutes``, an epoch end saves when
        the last save is at least this old (the first epoch end always does).
        With either, every epoch end saves.

    Notes
    -----
    Place it last among the callbacks: its epoch-end save then includes what
    ``EarlyStopping`` and ``CSVLogger`` did for that epoch.
    """

    def __init__(self, backup_dir, dataset, *, every_batches: int | None = None, every_minutes: float | None = None,
                 resumed: BackupState | None = None, watched=(), after_save=None,
                 interval_seconds: float = BACKUP_INTERVAL_SECONDS):
        super().__init__()
        if every_batches is not None and int(every_batches) < 1:
            raise OptionError(f"save_every_batches must be at least 1, got {every_batches}")
        if every_minutes is not None and not float(every_minutes) > 0:
            raise OptionError(f"save_every_minutes must be positive, got {every_minutes}")
        self.backup_dir = Path(backup_dir)
        self.dataset = dataset
        self.every_batches = int(every_batches) if every_batches is not None else None
        self.every_seconds = 60.0 * float(every_minutes) if every_minutes is not None else None
        self.resumed = resumed
        self.watched = list(watched)
        self.after_save = after_save
        self.interval_seconds = float(interval_seconds)
        self.saves = 0
        self._saved_at = -math.inf
        self.continues = False  # True during a fit that runs only the rest of an interrupted epoch
        self._carry = None
        self._saved_model = None
        self._rng_pending = None

    # -- restoring -------------------------------------------------------
    def restore_model(self, sample=None) -> None:
        """Put the saved model and optimizer variables back (before ``fit``).

        ``sample``, an ``(x, y)`` batch (``x`` a dict of input blocks), is evaluated once when the state is
        from inside an epoch: that builds the compiled metrics (TensorFlow
        builds them only when ``fit`` first traces), so their saved totals
        can be put back when the epoch starts again.
        """
        state = self.resumed
        if state.batches_done and sample is not None:
            x, y = sample[:2]
            first = {block: values[:1] for block, values in x.items()} if isinstance(x, dict) else x[:1]  # numbers, codes
            self.model.evaluate(first, y[:1], verbose=0)
        _assign(self.model.variables, state.group("model"), "model")
        optimizer = self.model.optimizer
        if not optimizer.built:
            optimizer.build(self.model.trainable_variables)
        _assign(optimizer.variables, state.group("optimizer"), "optimizer")
        self._rng_pending = state.group("rng")  # put back just before the first batch (see on_train_batch_begin)

    def restore_best_weights(self) -> None:
        """Do what ``EarlyStopping(restore_best_weights=True)`` does when training ends, for a run whose every
        epoch was done before it stopped: the watched callbacks get their saved state back first (as when a
        ``fit`` begins), so that a best model not yet written is written after."""
        self.on_train_begin()
        for index, (callback, saved) in enumerate(zip(self.watched, self.resumed.meta["watched"])):
            if getattr(callback, "restore_best_weights", False) and saved.get("best_weights"):
                self.model.set_weights(self.resumed.group(f"best_weights_{index}"))

    def on_train_begin(self, logs=None):
        if self._carry is not None:  # a second fit in this process: carry on from the first
            for callback, saved in zip(self.watched, self._carry):
                callback.__dict__.update(saved)
            return
        if self.resumed is None:
            return
        for index, (callback, saved) in enumerate(zip(self.watched, self.resumed.meta["watched"])):
            for name, value in saved.items():
                if name != "best_weights":
                    setattr(callback, name, value)
            if saved.get("best_weights"):
                callback.best_weights = self.resumed.group(f"best_weights_{index}")

    def on_train_end(self, logs=None):
        self._carry = [{name: getattr(callback, name) for name in _WATCHED if hasattr(callback, name)}
                       for callback in self.watched]
        if self.continues and not self.model.stop_training and self._saved_model is not None:
            # EarlyStopping put the best weights back at the end of this fit, but
            # training goes on: continue from the weights the epoch ended with.
            _assign(self.model.variables, self._saved_model, "model")

    def on_epoch_begin(self, epoch, logs=None):
        self.dataset.set_epoch(epoch)
        self._epoch = epoch
        self._offset = self.dataset.start_batch
        self._carried_seconds = 0.0
        self._epoch_started = self._last_save = time.monotonic()
        state = self.resumed
        if state is not None and state.epoch == epoch and state.batches_done:
            if self._offset != state.batches_done:
                raise RuntimeError(f"resuming epoch {epoch} at batch {state.batches_done}, but the data set starts at {self._offset}")
            _assign(self.model.metrics_variables, state.group("metrics"), "metric")
            self._carried_seconds = float(state.meta["epoch_seconds"])

    def on_train_batch_begin(self, batch, logs=None):
        if self._rng_pending is not None:
            # Only now: starting fit and the epoch drew from torch's generator
            # (its DataLoader draws a seed per iterator) where the saved run did not.
            _set_backend_rng_state(self._rng_pending)
            self._rng_pending = None

    def on_train_batch_end(self, batch, logs=None):
        done = self._offset + batch + 1
        now = time.monotonic()
        due = self.every_batches is not None and done % self.every_batches == 0
        due = due or (self.every_seconds is not None and now - self._last_save >= self.every_seconds)
        if due and done < self._offset + self.params.get("steps", done + 1):
            self._save(self._epoch, done)
            self._last_save = now

    def on_epoch_end(self, epoch, logs=None):
        asked = self.every_batches is not None or self.every_seconds is not None
        # a fit that runs the rest of an interrupted epoch keeps the weights its epoch ended with (on_train_end)
        if asked or self.continues or time.monotonic() - self._saved_at >= self.interval_seconds:
            self._save(epoch + 1, 0)

    def time_keeper(self) -> keras.callbacks.Callback:
        """A callback to list right after ``ThroughputLogger``: it adds the time
        the interrupted process spent in a resumed epoch to ``epoch_seconds``
        and ``rows_per_second``, before ``CSVLogger`` writes them."""
        return _CarriedTime(self)

    # -- saving ------------------------------------------------------------
    def epoch_seconds(self) -> float:
        return self._carried_seconds + time.monotonic() - self._epoch_started

    def _save(self, epoch: int, batches_done: int) -> None:
        arrays = {}

        def put(name, values):
            for i, value in enumerate(values):
                arrays[f"{name}_{i}"] = value
            counts[name] = len(values)

        counts = {}
        self._saved_model = _arrays(self.model.variables)
        put("model", self._saved_model)
        put("optimizer", _arrays(self.model.optimizer.variables))
        put("metrics", _arrays(self.model.metrics_variables))
        put("rng", _backend_rng_state())
        watched = []
        for index, callback in enumerate(self.watched):
            saved = {name: _plain(getattr(callback, name)) for name in _WATCHED[:-1] if hasattr(callback, name)}
            best_weights = getattr(callback, "best_weights", None)
            saved["best_weights"] = None if best_weights is None else True
            if best_weights is not None:
                put(f"best_weights_{index}", [np.asarray(w) for w in best_weights])
            watched.append(saved)
        meta = {"format": FORMAT, "epoch": int(epoch), "batches_done": int(batches_done),
                "epoch_seconds": self.epoch_seconds() if batches_done else 0.0,
                "seed": self.dataset.seed, "batch_size": self.dataset.batch_size, "shuffle": self.dataset.shuffle,
                "counts": counts, "watched": watched}
        arrays["meta"] = np.array(json.dumps(meta))
        self.backup_dir.mkdir(parents=True, exist_ok=True)
        remove_stale_partials(self.backup_dir)  # of saves killed before their rename
        partial = self.backup_dir / f".{STATE_FILE}.{os.getpid()}.partial"
        try:
            with open(partial, "wb") as handle:
                np.savez(handle, **arrays)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(partial, self.backup_dir / STATE_FILE)  # atomic: a kill leaves the old or the new state
        except BaseException:
            partial.unlink(missing_ok=True)  # a full disk, an interrupt: no half-written file left behind
            raise
        self.saves += 1
        self._saved_at = time.monotonic()
        if self.after_save is not None:
            self.after_save()


class _CarriedTime(keras.callbacks.Callback):
    def __init__(self, backup: TrainingBackup):
        super().__init__()
        self.backup = backup

    def on_epoch_end(self, epoch, logs=None):
        carried = self.backup._carried_seconds
        if logs is not None and carried and "epoch_seconds" in logs:
            seconds = logs["epoch_seconds"] + carried
            logs["rows_per_second"] = logs["rows_per_second"] * logs["epoch_seconds"] / seconds
            logs["epoch_seconds"] = seconds


def trim_history(history_csv, epochs: int) -> None:
    """Keep the first ``epochs`` rows of ``history.csv``: a kill after ``CSVLogger``
    wrote an epoch's row but before that epoch's state was saved would
    otherwise leave the epoch in it twice once it is run again."""
    path = Path(history_csv)
    if not path.exists():
        return
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    if len(lines) > epochs + 1:
        partial = path.with_name(path.name + ".partial")
        partial.write_text("".join(lines[:epochs + 1]), encoding="utf-8")
        os.replace(partial, path)


def _backend_rng_state() -> list[np.ndarray]:
    """torch's global generators: on torch, ``Dropout`` without a seed draws from them
    (the other backends draw from seed-generator state in ``model.variables``)."""
    if keras.backend.backend() != "torch":
        return []
    import torch

    states = [torch.get_rng_state()]
    if torch.cuda.is_available():
        states += torch.cuda.get_rng_state_all()
    return [state.numpy() for state in states]


def _set_backend_rng_state(states) -> None:
    if not states or keras.backend.backend() != "torch":
        return
    import torch

    torch.set_rng_state(torch.from_numpy(states[0]))
    if torch.cuda.is_available() and len(states) > 1:
        torch.cuda.set_rng_state_all([torch.from_numpy(state) for state in states[1:]])


def _plain(value):
    """A JSON-safe copy of a callback attribute (numpy scalars become floats)."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    return float(value)


def check_compatible(state: BackupState, dataset) -> None:
    """Refuse to resume with a data order other than the one the backup was made with."""
    saved = (state.meta["seed"], state.meta["batch_size"], state.meta["shuffle"])
    now = (dataset.seed, dataset.batch_size, dataset.shuffle)
    if saved != now:
        raise OptionError(f"the backup was made with (seed, batch_size, shuffle) = {saved}, this run uses {now}: "
                          "resuming would reuse or skip rows of the interrupted epoch. Use the same arguments, "
                          "or delete the backup directory to start afresh")
    if state.batches_done >= len(dataset):
        raise ModelFileError(f"the backup says {state.batches_done} batches of epoch {state.epoch} are done, but an epoch "
                             f"has only {len(dataset)}: the split changed since; delete the backup directory to start afresh")


def fit_resuming(model, train_data, backup: TrainingBackup, *, epochs: int, sample, history_csv, verbose: int,
                 fit_verbose: int, **fit) -> None:
    """``model.fit(train_data, epochs=epochs, **fit)``, resumed from ``backup.resumed`` if there is one.

    A data set served from memory reaches ``fit`` as its ``tf.data`` feed on TensorFlow
    (:func:`~questlearn.data._memory_feed.fit_input`: the same batches, cut by TensorFlow), the
    validation data set too.

    A state saved inside an epoch is resumed in two ``fit`` calls: the rest
    of the interrupted epoch (the data set starting at ``batches_done``),
    then the remaining epochs; a ``fit`` call cannot change the number of
    batches between its epochs.
    """
    state = backup.resumed
    first_epoch = 0
    if state is not None:
        check_compatible(state, train_data)
        backup.set_model(model)
        backup.restore_model(sample=sample)
        trim_history(history_csv, state.epoch)
        first_epoch = state.epoch
        if verbose:
            print(f"questlearn: resuming from {backup.backup_dir} at epoch {first_epoch + 1}, batch {state.batches_done + 1}")
    if fit.get("validation_data") is not None:
        fit["validation_data"], _ = fit_input(fit["validation_data"])  # no shuffle: one order, set when made
    callbacks = list(fit.pop("callbacks", None) or [])

    def fit_epochs(first: int, last: int) -> None:
        data, feeding = fit_input(train_data)  # made now: a resumed epoch has fewer batches
        model.fit(data, epochs=last, initial_epoch=first, verbose=fit_verbose, callbacks=[*callbacks, *feeding], **fit)

    if state is not None and state.batches_done and first_epoch < epochs:
        train_data.start_batch, backup.continues = state.batches_done, first_epoch + 1 < epochs
        fit_epochs(first_epoch, first_epoch + 1)
        train_data.start_batch, backup.continues = 0, False
        first_epoch = epochs if model.stop_training else first_epoch + 1  # EarlyStopping may end the run there
    if first_epoch < epochs:
        fit_epochs(first_epoch, epochs)
    elif state is not None and not state.batches_done:
        backup.restore_best_weights()  # every epoch was done: only EarlyStopping's last step is left


def remove_backup(backup_dir) -> None:
    """Delete the backup of a finished run."""
    shutil.rmtree(backup_dir, ignore_errors=True)
