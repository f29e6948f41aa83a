"""Progress inside an epoch: rows done, rows per second and time left.

Keras's progress bar counts batches and, written to a file or a pipe,
leaves one line per update. :class:`TrainingProgress` counts rows, and

* on a terminal rewrites one line in place, a few times a second;
* in a Jupyter notebook rewrites one line in place too, but only every
  ``interval`` seconds: each write is an output of its own in the saved
  notebook (until ``nbconvert --coalesce-streams`` folds the rewritten
  line into one), so an epoch leaves ``epoch seconds / interval + 1``
  outputs, not five a second;
* anywhere else (a log file, ``| tee``, a batch job) prints a new line only
  every ``interval`` seconds, so a long epoch writes
  ``epoch seconds / interval + 1`` lines, however many batches it has;

and prints one summary line per epoch with the epoch's metrics.

Example
-------
>>> model.fit(train, epochs=3, verbose=0, callbacks=[TrainingProgress(train)])
epoch 1/3  612,352/1,000,000 rows (61%)  48,211 rows/s  1:02 left
"""

from __future__ import annotations

import sys
import time

import keras
import numpy as np

from ..errors import OptionError

TERMINAL_REFRESH_SECONDS = 0.2
LOG_INTERVAL_SECONDS = 10.0


def rows_in_batches(plan, batches) -> int:
    """Rows in the given batch indices of a :class:`~questlearn.data._batches.BatchPlan`."""
    batches = np.asarray(batches, dtype=np.int64)
    if not len(batches):
        return 0
    if plan.batch_size is None:
        return int(plan.shard_rows[plan.order[batches]].sum())
    return int(np.minimum(plan.batch_size, plan.total_rows - batches * plan.batch_size).sum())


def _clock(seconds: float) -> str:
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


class TrainingProgress(keras.callbacks.Callback):
    """Print rows done, rows/s and time left during ``fit`` on a :class:`QuestSequence`.

    Parameters
    ----------
    dataset : QuestSequence
        The training data passed to ``fit`` (its plan gives the rows per
        batch, its ``start_batch`` the rows already done in a resumed epoch).
    stream : file-like, optional
        Where to write; default ``sys.stdout`` at the time of writing.
    interval : float, optional
        Seconds between lines when ``stream`` is not a terminal, and between
        rewrites of the line in a Jupyter notebook (default
        ``LOG_INTERVAL_SECONDS``).
    dynamic : bool, optional
        Rewrite one line in place; default: when ``stream`` is a terminal or
        the output of a Jupyter kernel.
    epochs : int, optional
        Total epochs to show ("epoch 3/10"); default ``fit``'s ``epochs``.
    """

    def __init__(self, dataset, stream=None, interval: float | None = None, dynamic: bool | None = None,
                 epochs: int | None = None):
        super().__init__()
        interval = LOG_INTERVAL_SECONDS if interval is None else float(interval)
        if not interval > 0:
            raise OptionError(f"interval must be positive, got {interval}")
        self.dataset, self._stream, self.interval, self._dynamic = dataset, stream, interval, dynamic
        self.epochs = epochs
        self.lines = 0  # lines written (a rewritten line counts once), for tests and logs

    @property
    def stream(self):
        return self._stream if self._stream is not None else sys.stdout

    @property
    def dynamic(self) -> bool:
        if self._dynamic is not None:
            return self._dynamic
        return self._in_notebook() or self._on_terminal()

    def _on_terminal(self) -> bool:
        isatty = getattr(self.stream, "isatty", None)
        return bool(isatty and isatty())

    def _in_notebook(self) -> bool:
        """Writing to a Jupyter kernel's output (not a terminal), where every write is an output of its own."""
        return self.stream is sys.stdout and "ipykernel" in sys.modules and not self._on_terminal()

    @property
    def refresh_seconds(self) -> float:
        """Seconds between progress writes inside an epoch."""
        return TERMINAL_REFRESH_SECONDS if self.dynamic and not self._in_notebook() else self.interval

    def on_train_begin(self, logs=None):
        self._epochs = self.epochs or (self.params.get("epochs") if self.params else None)

    def on_epoch_begin(self, epoch, logs=None):
        data = self.dataset
        plan = data.plan
        own = np.arange(data.shard_index, len(plan), data.shard_count)
        self._epoch = epoch
        self._total = rows_in_batches(plan, own)
        self._done = self._resumed = rows_in_batches(plan, own[:data.start_batch])
        self._start = time.monotonic()
        self._last_write = self._start
        self._width = 0
        self._next_batch = 0

    def on_train_batch_end(self, batch, logs=None):
        # with steps_per_execution > 1 Keras calls this once per call into the backend, with the call's last
        # batch (past the epoch's end in a short last call): every batch since the previous call counts
        data = self.dataset
        done = range(self._next_batch, min(batch + 1, len(data)))
        self._next_batch = done.stop
        self._done += rows_in_batches(data.plan, [data.shard_index + (data.start_batch + b) * data.shard_count for b in done])
        now = time.monotonic()
        if now - self._last_write >= self.refresh_seconds:
            self._write(self._status(now), final=False)
            self._last_write = now

    def on_epoch_end(self, epoch, logs=None):
        seconds = time.monotonic() - self._start
        rate = (self._done - self._resumed) / seconds if seconds > 0 else float("nan")
        metrics = "  ".join(f"{k} {v:.4f}" for k, v in (logs or {}).items()
                            if isinstance(v, (int, float)) and k not in ("epoch_seconds", "rows_per_second"))
        self._write(f"{self._prefix()}  {self._done:,} rows in {_clock(seconds)}, {rate:,.0f} rows/s  {metrics}", final=True)

    # -- formatting ----------------------------------------------------------
    def _prefix(self) -> str:
        return f"epoch {self._epoch + 1}/{self._epochs}" if self._epochs else f"epoch {self._epoch + 1}"

    def _status(self, now: float) -> str:
        seconds = now - self._start
        rate = (self._done - self._resumed) / seconds if seconds > 0 else 0.0
        share = self._done / self._total if self._total else 1.0
        left = _clock((self._total - self._done) / rate) if rate > 0 else "?"
        return (f"{self._prefix()}  {self._done:,}/{self._total:,} rows ({share:.0%})  "
                f"{rate:,.0f} rows/s  {left} left")

    def _write(self, text: str, final: bool) -> None:
        stream = self.stream
        if self.dynamic:
            padding = " " * max(self._width - len(text), 0)
            stream.write("\r" + text + padding + ("\n" if final else ""))
            self._width = 0 if final else len(text)
            if final:
                self.lines += 1
        else:
            stream.write(text + "\n")
            self.lines += 1
        stream.flush()
