"""The callbacks a training run adds to Keras's own: patience that waits for the warm-up and follows the loss's
trend, a best-model file written at most so often, throughput in the logs."""

from __future__ import annotations

import math
import time

from ..errors import OptionError
from ..quiet import keras


def sees_every_batch(callback) -> bool:
    """Whether ``callback`` has its own batch hooks (Keras calls them once per ``steps_per_execution``)."""
    base = keras.callbacks.Callback
    return any(getattr(type(callback), hook) is not getattr(base, hook)
               for hook in ("on_train_batch_begin", "on_train_batch_end", "on_batch_begin", "on_batch_end"))


#: The moving average of the validation loss that also resets the patience: the weight of its past (about
#: five epochs), and how far below its best it must fall to count (a share of that best).
TREND_SMOOTHING = 0.8
TREND_MIN_FALL = 0.01


class EarlyStoppingAfterWarmup(keras.callbacks.EarlyStopping):
    """``EarlyStopping`` whose patience counts only after the warm-up, and only while the loss's trend is flat too.

    The best value and weights are tracked from the first epoch (a warm-up
    epoch may be the best one), but the epochs without improvement start to
    count at epoch ``warmup_epochs``: the first, noisy epochs of a warm-up
    cannot end the run.

    An epoch also does not count when the exponential moving average of the
    monitored value (``smoothing``: the weight of the past; 0 turns it off)
    falls at least ``min_fall`` (a share) below its best so far. A small
    table's validation loss can jump by half its value from one epoch to the
    next while it still falls on average: the average's new lows keep such
    a run going, where the jumps alone would stop it early. A loss that has
    levelled off moves its average by less than ``min_fall``, so the run
    still stops. The weights restored at the end are those of the epoch with
    the best monitored value itself.
    """

    def __init__(self, warmup_epochs: int = 0, smoothing: float = TREND_SMOOTHING, min_fall: float = TREND_MIN_FALL,
                 **kwargs):
        super().__init__(**kwargs)
        if not 0 <= smoothing < 1 or not 0 <= min_fall < 1:
            raise OptionError(f"smoothing and min_fall must be at least 0 and below 1, got {smoothing} and {min_fall}")
        self.warmup_epochs = int(warmup_epochs)
        self.smoothing, self.min_fall = float(smoothing), float(min_fall)
        self.trend = self.trend_best = None

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        self.trend = self.trend_best = None  # a resumed run gets both back from its backup (train._resume)

    def on_epoch_end(self, epoch, logs=None):
        current = (logs or {}).get(self.monitor)
        trend_fell = self._follow_trend(current)
        if current is None or (epoch >= self.warmup_epochs and not trend_fell):
            return super().on_epoch_end(epoch, logs)
        patience, self.patience = self.patience, math.inf
        self.wait -= 1  # Keras counts every epoch: this one does not count
        try:
            super().on_epoch_end(epoch, logs)
        finally:
            self.patience = patience
        if trend_fell and epoch >= self.warmup_epochs:
            self.wait = 0  # the average fell to a new low: the patience starts again

    def _follow_trend(self, current) -> bool:
        """Update the moving average with ``current``; whether it fell ``min_fall`` below its best."""
        if current is None or not self.smoothing:
            return False
        current = float(current)
        self.trend = current if self.trend is None else self.smoothing * self.trend + (1 - self.smoothing) * current
        if self.monitor_op is None:
            self._set_monitor_op()
        if self.trend_best is not None:
            margin = self.min_fall * abs(self.trend_best)  # towards the better side, as Keras signs min_delta
            if not self.monitor_op(self.trend + (margin if self.monitor_op == keras.ops.less else -margin),
                                   self.trend_best):
                return False
        self.trend_best = self.trend
        return True


#: Seconds between two writes of the best model while training runs (the last best is written at the end).
CHECKPOINT_INTERVAL_SECONDS = 30.0


class BestModelCheckpoint(keras.callbacks.ModelCheckpoint):
    """``ModelCheckpoint(save_best_only=True)`` that writes a new best at most every ``interval_seconds``.

    A small table reaches a new best validation loss every few epochs of a
    fraction of a second each, and Keras wrote the whole model file each
    time: on a 344-row table 15 writes of about 0.09 s, a tenth of the run.
    Here a new best is written at once when the last write is at least
    ``interval_seconds`` old (always on a table whose epochs take longer);
    otherwise it is marked ``unwritten`` and :meth:`write_unwritten` writes it
    after training, when early stopping has put the best epoch's weights back
    (both callbacks take the same epochs as best: a strictly lower validation
    loss). The mark is kept in the resume backup, so a run killed before
    the write still writes it when resumed. While a run trains, the file may
    be up to ``interval_seconds`` behind its best epoch.
    """

    def __init__(self, filepath, interval_seconds: float = CHECKPOINT_INTERVAL_SECONDS, **kwargs):
        super().__init__(filepath, save_best_only=True, **kwargs)
        self.interval_seconds = float(interval_seconds)
        self.unwritten = False
        self._written_at = -math.inf

    def _should_save_model(self, epoch, batch, logs, filepath):
        if not super()._should_save_model(epoch, batch, logs, filepath):  # also records the new best value
            return False
        now = time.monotonic()
        if now - self._written_at < self.interval_seconds:
            self.unwritten = True
            return False
        self._written_at, self.unwritten = now, False
        return True

    def write_unwritten(self, model) -> None:
        """Write ``model`` (holding the best epoch's weights) if the last best is not written yet."""
        if self.unwritten:
            model.save(self.filepath, overwrite=True)
            self.unwritten = False


class ThroughputLogger(keras.callbacks.Callback):
    """Add ``epoch_seconds`` and ``rows_per_second`` (training rows) to each epoch's logs."""

    def __init__(self, rows_per_epoch: int):
        super().__init__()
        self.rows_per_epoch = int(rows_per_epoch)

    def on_epoch_begin(self, epoch, logs=None):
        self._started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        seconds = time.perf_counter() - self._started
        if logs is not None:
            logs["epoch_seconds"] = seconds
            logs["rows_per_second"] = self.rows_per_epoch / seconds
