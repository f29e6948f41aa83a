"""Record, per trained batch, the attempt ids that questlearn's training fed the model.

:func:`record_batches` patches :class:`~questlearn.data.dataset.QuestSequence`, the epoch order of its
``tf.data`` feed from memory (:func:`questlearn.data._memory_feed.epoch_positions`, whose rows TensorFlow
cuts into the epoch's batches) and ``questlearn.train._fit.train`` so that every later ``train`` (``questlearn train`` included) appends
one line per trained batch to a record file: ``epoch batch id id id ...`` (``batch`` counts the epoch's
batches from its first, also in a resumed epoch). It is used in the test process and in
tests/children/resume_child.py, whose run the test SIGKILLs mid-epoch.
"""

import os
import time
from pathlib import Path


def read_batch_records(record_path) -> list:
    """The record file :func:`record_batches` wrote: ``[(epoch, batch, [ids...]), ...]``, in the order the
    batches were trained."""
    return [(int(epoch), int(batch), [int(i) for i in ids])
            for epoch, batch, *ids in (line.split() for line in Path(record_path).read_text().splitlines())]


def record_batches(record_path, pause=None):
    """Record every trained batch's attempt ids to ``record_path``; returns a function that undoes the patches.

    Parameters
    ----------
    record_path : str or Path
        The record file (appended to).
    pause : tuple of int, optional
        ``(epoch, batch)``: after recording that batch, write ``<record_path>.paused`` and sleep
        for ever, for the test to SIGKILL the process mid-epoch.
    """
    import keras

    import questlearn.data._memory_feed
    import questlearn.train._fit
    from questlearn.data.dataset import QuestSequence

    record_path = str(record_path)
    served = {}  # (epoch, batch) -> attempt ids of the batch as the data set produced it
    datasets = []
    originals = [(QuestSequence, name, QuestSequence.__dict__[name]) for name in ("__getitem__", "__init__", "in_memory")]
    originals.append((questlearn.train._fit, "train", questlearn.train._fit.train))
    originals.append((questlearn.data._memory_feed, "epoch_positions", questlearn.data._memory_feed.epoch_positions))
    original_getitem, original_init, original_in_memory, original_train, original_positions = (
        item[2] for item in originals)

    def ids_of(self, x):
        return x["numbers"][:, self.input_names()["numbers"].index("attempt_id")].astype("int64")

    def recording_getitem(self, index):
        x, y = original_getitem(self, index)
        if self.subset == "train":
            served[(self.epoch, int(index) + self.start_batch)] = ids_of(self, x).tolist()
        return x, y

    def recording_positions(self):  # the feed from memory: the epoch's rows, cut into batch_size slices
        positions = original_positions(self)
        if self.subset == "train":
            ids = ids_of(self, {"numbers": self._memory[0]["numbers"][positions]})
            for number, first in enumerate(range(0, len(ids), self.batch_size)):
                served[(self.epoch, self.start_batch + number)] = ids[first:first + self.batch_size].tolist()
        return positions

    def keep(self, *args, **kwargs):
        original_init(self, *args, **kwargs)
        datasets.append(self)

    def keep_in_memory(self):  # train() serves a small split from memory: the copy is the data set fit reads
        copy = original_in_memory(self)
        datasets.append(copy)
        return copy

    class Recorder(keras.callbacks.Callback):
        """Runs after every questlearn callback: the batch was trained on (and saved, if due)."""

        def __init__(self, dataset):
            super().__init__()
            self.dataset = dataset

        def on_epoch_begin(self, epoch, logs=None):
            self.epoch = epoch

        def on_train_batch_end(self, batch, logs=None):
            index = batch + self.dataset.start_batch
            ids = served.pop((self.epoch, index))
            with open(record_path, "a", encoding="utf-8") as handle:
                handle.write(f"{self.epoch} {index} {' '.join(map(str, ids))}\n")
                handle.flush()
                os.fsync(handle.fileno())
            if pause == (self.epoch, index):
                open(record_path + ".paused", "w").close()
                while True:
                    time.sleep(1)

    class LateRecorder(keras.callbacks.Callback):
        """Finds the training QuestSequence (made inside train()) when fit starts."""

        def on_train_begin(self, logs=None):
            if not hasattr(self, "inner"):
                self.inner = Recorder(next(d for d in reversed(datasets) if d.subset == "train"))
            self.inner.set_model(self.model)

        def on_epoch_begin(self, epoch, logs=None):
            self.inner.on_epoch_begin(epoch, logs)

        def on_train_batch_end(self, batch, logs=None):
            self.inner.on_train_batch_end(batch, logs)

    def train_with_recorder(*args, extra_callbacks=(), **kwargs):
        return original_train(*args, extra_callbacks=[*extra_callbacks, LateRecorder()], **kwargs)

    QuestSequence.__getitem__ = recording_getitem
    QuestSequence.__init__ = keep
    QuestSequence.in_memory = keep_in_memory
    questlearn.train._fit.train = train_with_recorder
    questlearn.data._memory_feed.epoch_positions = recording_positions

    def undo():
        for owner, name, original in originals:
            setattr(owner, name, original)

    return undo


def train_recorded(record_path, train_args):
    """Run ``questlearn train TRAIN_ARGS...`` in this process to its end, recording every trained batch to
    ``record_path`` as :func:`record_batches` does; returns the command's exit code."""
    from questlearn.cli import main

    undo = record_batches(record_path)
    try:
        return main(["train", *map(str, train_args)])
    finally:
        undo()
