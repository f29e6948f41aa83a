"""Batch size, epochs and early-stopping patience that follow the number of training rows.

A fixed batch of 1024 gives a 300-row table 20 optimizer steps in 20
epochs, and a 500-million-row log half a million steps an epoch. The plan
aims at about :data:`TARGET_STEPS` steps over the run:

* batch size: the power of two nearest ``rows / 1000``, between 32 and 4096
  (so about a thousand steps an epoch for mid-sized data, and batches large
  enough to keep a big log's epochs fast);
* epochs: enough for :data:`TARGET_STEPS` steps, between 2 and 200;
* patience (early stopping on validation loss, best weights restored): a
  tenth of the epochs, between 3 and 20.

The user's values always win; the plan is printed at the start of training.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

TARGET_STEPS = 6000
BATCH_RANGE = (32, 4096)
EPOCH_RANGE = (2, 200)
PATIENCE_RANGE = (3, 20)


@dataclass(frozen=True)
class TrainingPlan:
    """Batch size, epochs and patience for a run, and which of them were chosen (not given)."""

    batch_size: int
    epochs: int
    patience: int
    chosen: tuple

    def describe(self, train_rows: int) -> str:
        steps = math.ceil(train_rows / self.batch_size)
        if not self.chosen:
            return f"questlearn: batch size {self.batch_size}, up to {self.epochs} epochs, patience {self.patience} (as given)"
        return (f"questlearn: {train_rows:,} training rows: batch size {self.batch_size} ({steps:,} steps an epoch), up to "
                f"{self.epochs} epochs, early-stopping patience {self.patience}; "
                f"{', '.join(self.chosen)} chosen from the data size (--batch-size, --epochs, --patience set them)")


def training_plan(train_rows: int, batch_size: int | None = None, epochs: int | None = None,
                  patience: int | None = None) -> TrainingPlan:
    """The :class:`TrainingPlan` for ``train_rows`` rows; given values are kept as they are."""
    rows = max(int(train_rows), 1)
    chosen = []
    if batch_size is None:
        exponent = round(math.log2(max(rows / 1000, 1e-9)))
        batch_size = int(min(max(2 ** exponent, BATCH_RANGE[0]), BATCH_RANGE[1]))
        chosen.append("batch size")
    if epochs is None:
        steps = math.ceil(rows / batch_size)
        epochs = int(min(max(math.ceil(TARGET_STEPS / steps), EPOCH_RANGE[0]), EPOCH_RANGE[1]))
        chosen.append("epochs")
    if patience is None:
        patience = int(min(max(epochs // 10, PATIENCE_RANGE[0]), PATIENCE_RANGE[1]))
        chosen.append("patience")
    return TrainingPlan(int(batch_size), int(epochs), int(patience), tuple(chosen))
