"""A subset served from memory, fed to ``fit`` as a ``tf.data`` pipeline (TensorFlow backend).

Keras's TensorFlow trainer runs a ``PyDataset`` through
``tf.data.Dataset.from_generator``: every batch is a Python call made from
inside the graph, with Keras's epoch iterator and the data set's own batch
lookup around it. On a small table an epoch is a few batches of a few dozen
rows, and that per-batch Python is most of the epoch's time (a 225-row table,
8 batches and a validation batch: about 0.13 s an epoch in ``fit``, 0.07 s
fed this way).

:func:`memory_feed` keeps the rows and their order exactly as the data set
has them; only who cuts the batches changes. As each epoch begins, its
callback (:class:`_EpochOrder`) points the data set at Keras's epoch number,
as :class:`~questlearn.train._resume.TrainingBackup` does, and writes the
epoch's row order, computed from the data set's
:class:`~questlearn.data._batches.BatchPlan` (:func:`epoch_positions`: from
its ``start_batch`` on, so a resumed epoch skips the batches already done),
into a TensorFlow variable. Batch ``i`` is then rows ``i * batch_size`` to
``(i + 1) * batch_size`` of that order, gathered by TensorFlow from the
arrays :meth:`~questlearn.data.dataset.QuestSequence.in_memory` read: the
same rows, in the same seeded order, as the data set's own ``__getitem__``.
Nothing is read ahead (no prefetch), so a batch is cut from the order of
the epoch it trains in.

:func:`fit_input` picks this feed where it applies (TensorFlow, a whole
subset in memory, batches of a fixed size) and hands ``fit`` the data set
itself everywhere else.
"""

from __future__ import annotations

import numpy as np

from ..quiet import keras

#: Bytes TensorFlow holds for the feed's copy of the rows, per byte of the arrays: its allocator keeps about
#: twice the tensors' size (the feeds of a 100,000-row split whose arrays take 11.8 MiB added 21.6 MiB).
TENSORFLOW_COPY = 2


def held_bytes(array_bytes: int) -> int:
    """Bytes a subset served from memory holds: its arrays, and on TensorFlow the feed's copy of them."""
    return array_bytes * (1 + (TENSORFLOW_COPY if keras.backend.backend() == "tensorflow" else 0))


def epoch_positions(sequence) -> np.ndarray:
    """Positions, in the arrays of ``sequence.in_memory()``, of the rows of its current epoch in training order.

    The rows of batches ``start_batch`` to the last, concatenated: batch ``i`` of the epoch is the slice
    ``(i - start_batch) * batch_size`` to ``(i - start_batch + 1) * batch_size`` of it.
    """
    plan = sequence.plan
    first = min(sequence.start_batch * sequence.batch_size, plan.total_rows)
    return sequence.memory_positions(plan.segments_between(first, plan.total_rows))


def feeds_from_memory(sequence) -> bool:
    """Whether :func:`memory_feed` serves ``sequence``: TensorFlow's backend, a whole subset read into memory,
    batches of a fixed size."""
    return (keras.backend.backend() == "tensorflow" and getattr(sequence, "_memory", None) is not None
            and sequence.batch_size is not None and sequence.shard_count == 1)


class _EpochOrder(keras.callbacks.Callback):
    """Puts each epoch's row order into the feed's variable as the epoch begins, before ``fit`` asks for
    the epoch's iterator."""

    def __init__(self, sequence, order):
        super().__init__()
        self.sequence, self.order = sequence, order

    def on_epoch_begin(self, epoch, logs=None):
        self.sequence.set_epoch(epoch)  # as TrainingBackup does: the order follows Keras's epoch number
        self.order.assign(epoch_positions(self.sequence))


def memory_feed(sequence):
    """``sequence``'s batches (an in-memory :class:`~questlearn.data.dataset.QuestSequence`) as a ``tf.data``
    pipeline, and the callback ``fit`` needs with it.

    Returns
    -------
    (tf.data.Dataset, keras.callbacks.Callback)
        The batches of an epoch, cut from the order that the callback (in ``fit``'s callbacks) sets
        as each epoch begins; without the callback every epoch has the order of the sequence's
        epoch when the feed was made.
    """
    import tensorflow as tf

    x, y, _ = sequence._memory
    columns = {block: tf.convert_to_tensor(values) for block, values in x.items()}
    labels = tf.convert_to_tensor(y)
    order = tf.Variable(epoch_positions(sequence), shape=tf.TensorShape([None]), trainable=False)
    batch_size = int(sequence.batch_size)

    @tf.autograph.experimental.do_not_convert  # plain slicing: autograph's source rewrite would cost most of a second
    def batch(index):
        rows = order[index * batch_size:(index + 1) * batch_size]
        return {block: tf.gather(values, rows) for block, values in columns.items()}, tf.gather(labels, rows)

    feed = tf.data.Dataset.range(len(sequence)).map(batch)  # no prefetch: a gather costs microseconds, a thread more
    return feed, _EpochOrder(sequence, order)


def fit_input(sequence) -> tuple:
    """What ``fit`` should read for ``sequence``, and the callbacks it needs: its :func:`memory_feed` where
    that applies, else the sequence itself and none."""
    if not feeds_from_memory(sequence):
        return sequence, []
    feed, callback = memory_feed(sequence)
    return feed, [callback]
