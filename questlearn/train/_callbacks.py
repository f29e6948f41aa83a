"""The callbacks a training run adds to Keras's own: patience that waits for the warm-up, throughput in the logs."""

from __future__ import annotations

import math
import time

from ..quiet import keras


def sees_every_batch(callback) -> bool:
    """Whether ``callback`` has its own batch hooks (Keras calls them once per ``steps_per_execution``)."""
    base = keras.callbacks.Callback
    return any(getattr(type(callback), hook) is not getattr(base, hook)
               for hook in ("on_train_batch_begin", "on_train_batch_end", "on_batch_begin", "on_batch_end"))


class EarlyStoppingAfterWarmup(keras.callbacks.EarlyStopping):
    """``EarlyStopping`` whose patience counts only after the learning rate's warm-up.

    The best value and weights are tracked from the first epoch (a warm-up
    epoch may be the best one), but the epochs without improvement start to
    count at epoch ``warmup_epochs``: the first, noisy epochs of a warm-up
    cannot end the run.
    """

    def __init__(self, warmup_epochs: int = 0, **kwargs):
        super().__init__(**kwargs)
        self.warmup_epochs = int(warmup_epochs)

    def on_epoch_end(self, epoch, logs=None):
        if epoch >= self.warmup_epochs or (logs or {}).get(self.monitor) is None:
            return super().on_epoch_end(epoch, logs)
        patience, self.patience = self.patience, math.inf
        self.wait -= 1  # Keras counts every epoch: this one does not count
        try:
            super().on_epoch_end(epoch, logs)
        finally:
            self.patience = patience


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
