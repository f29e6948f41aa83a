"""Batch size, epochs, early-stopping patience and steps per execution that follow the data size.

A fixed batch of 1024 gives a 300-row table 20 optimizer steps in 20
epochs, and a 500-million-row log half a million steps an epoch. The plan
aims at a number of optimizer steps over the run, and lets early stopping
end it once the validation loss stops improving:

* batch size: the power of two nearest ``rows / 1000``, between 32 and 4096
  (so about a thousand steps an epoch for mid-sized data, and batches large
  enough to keep a big log's epochs fast);
* epochs: enough for the step budget: :data:`TARGET_STEPS` for a split read
  from its shards (a log larger than memory, whose epochs are long), between
  2 and 200 epochs; :data:`IN_MEMORY_TARGET_STEPS` for a table whose training
  rows are served from memory (cheap steps), between 2 and
  200 epochs as well (a table of a few thousand rows reaches 200 epochs
  first). The budget is a cap, not a goal:
  the learning rate's cosine runs over it, so it is still well above its
  floor while the validation loss keeps falling, and early stopping ends the
  run when it no longer does;
* patience (early stopping on validation loss, best weights restored): a
  tenth of the planned epochs, between 3 and 20 from shards, between 5 and
  20 from memory. A table in memory is as patient as its own plan is long:
  under its longer cosine the learning rate stays high for more epochs, and
  the validation loss of a small table jumps from epoch to epoch while it
  is high (an hourly series of 8,759 rows stopped at epoch 33 of 147 with
  patience 5, at twice the error its whole plan reaches); it counts only
  after the learning rate's warm-up (``warmup_epochs``), whose first epochs
  are noisy, though the best epoch may be a warm-up one, and only in epochs
  in which the validation loss's moving average did not fall 1 % below its
  best either (:class:`questlearn.train._callbacks.EarlyStoppingAfterWarmup`):
  a loss that jumps while it falls on average does not end the run.

The user's values always win; the plan is printed at the start of training.

:func:`steps_per_execution` picks how many batches each call into the
backend runs (Keras ``steps_per_execution``), to spread the fixed cost of a
step (Python, the loader, Keras's loop and callbacks) over several batches.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

TARGET_STEPS = 6000  # a split read from its shards
IN_MEMORY_TARGET_STEPS = 24000  # a table served from memory
BATCH_RANGE = (32, 4096)
EPOCH_RANGE = (2, 200)
IN_MEMORY_EPOCH_RANGE = (2, 200)
PATIENCE_RANGE = (3, 20)
IN_MEMORY_PATIENCE_RANGE = (5, 20)
STEPS_PER_EXECUTION = 16  # batches a backend call runs, when nothing needs to see each batch


@dataclass(frozen=True)
class TrainingPlan:
    """Batch size, epochs and patience for a run, and which of them were chosen (not given)."""

    batch_size: int
    epochs: int
    patience: int
    chosen: tuple
    warmup_epochs: int = 0
    in_memory: bool = False

    def describe(self, train_rows: int) -> str:
        steps = math.ceil(train_rows / self.batch_size)
        after = f" counted after the warm-up's {self.warmup_epochs} epochs" if self.warmup_epochs else ""
        if not self.chosen:
            return (f"questlearn: batch size {self.batch_size}, up to {self.epochs} epochs, patience {self.patience}"
                    f"{after} (as given)")
        budget, where = (IN_MEMORY_TARGET_STEPS, "in memory") if self.in_memory else (TARGET_STEPS, "read from its shards")
        return (f"questlearn: {train_rows:,} training rows: batch size {self.batch_size} ({steps:,} steps an epoch), up to "
                f"{self.epochs} epochs (a budget of about {budget:,} steps for a table {where}), "
                f"early-stopping patience {self.patience}{after}; "
                f"{', '.join(self.chosen)} chosen from the data size (--batch-size, --epochs, --patience set them)")


def training_plan(train_rows: int, batch_size: int | None = None, epochs: int | None = None,
                  patience: int | None = None, *, in_memory: bool = False, warmup_steps=None) -> TrainingPlan:
    """The :class:`TrainingPlan` for ``train_rows`` rows; given values are kept as they are.

    ``in_memory``: the training rows are served from memory (a larger step budget, see the module's
    docstring). ``warmup_steps``: a function of the planned steps giving the learning rate's warm-up
    steps, after which patience starts counting (``None``: no warm-up).
    """
    rows = max(int(train_rows), 1)
    chosen = []
    if batch_size is None:
        exponent = round(math.log2(max(rows / 1000, 1e-9)))
        batch_size = int(min(max(2 ** exponent, BATCH_RANGE[0]), BATCH_RANGE[1]))
        chosen.append("batch size")
    steps = math.ceil(rows / batch_size)
    target, epoch_range, patience_range = ((IN_MEMORY_TARGET_STEPS, IN_MEMORY_EPOCH_RANGE, IN_MEMORY_PATIENCE_RANGE)
                                           if in_memory else (TARGET_STEPS, EPOCH_RANGE, PATIENCE_RANGE))
    if epochs is None:
        epochs = int(min(max(math.ceil(target / steps), epoch_range[0]), epoch_range[1]))
        chosen.append("epochs")
    if patience is None:
        patience = int(min(max(int(epochs) // 10, patience_range[0]), patience_range[1]))
        chosen.append("patience")
    warmup_epochs = math.ceil(warmup_steps(int(epochs) * steps) / steps) if warmup_steps is not None else 0
    warmup_epochs = min(warmup_epochs, max(int(epochs) - 1, 0))  # patience always gets a chance to count
    return TrainingPlan(int(batch_size), int(epochs), int(patience), tuple(chosen), warmup_epochs, bool(in_memory))


def steps_per_execution(save_every_batches: int | None = None, per_batch_callbacks: bool = False,
                        backend: str = "tensorflow") -> int:
    """Batches each call into the backend runs (Keras ``compile(steps_per_execution=...)``).

    Keras calls the batch callbacks once a call, so: 1 on torch (Keras allows no more there) and
    when a callback must see every batch (``per_batch_callbacks``); else :data:`STEPS_PER_EXECUTION`,
    reduced to a divisor of ``save_every_batches`` so the mid-epoch saves fall where they were asked for
    (a save records the batches really done, so a resumed run starts exactly after them either way).
    """
    if backend == "torch" or per_batch_callbacks:
        return 1
    if save_every_batches:
        return math.gcd(STEPS_PER_EXECUTION, int(save_every_batches))
    return STEPS_PER_EXECUTION
