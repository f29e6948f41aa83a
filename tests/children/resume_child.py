"""Run ``questlearn train`` and record, per trained batch, the attempt ids the model was fed.

Usage: python resume_child.py RECORD_FILE PAUSE_AT -- TRAIN_ARGS...

``RECORD_FILE`` gets one line per batch the model trained on:
``epoch batch id id id ...`` (``batch`` counts the epoch's batches from its
first, also in a resumed epoch). ``PAUSE_AT`` is ``EPOCH:BATCH`` or ``-``:
after recording that batch the process writes ``RECORD_FILE.paused`` and
sleeps, for the test to SIGKILL it mid-epoch.
"""

import os
import sys
import time


def main():
    record_path, pause_at = sys.argv[1], sys.argv[2]
    train_args = sys.argv[sys.argv.index("--") + 1:]
    pause = tuple(map(int, pause_at.split(":"))) if pause_at != "-" else None
    import keras

    import questlearn.train._fit
    from questlearn.cli import main as cli_main
    from questlearn.data.dataset import QuestSequence

    served = {}  # (epoch, batch) -> attempt ids of the batch as the data set produced it
    original_getitem = QuestSequence.__getitem__

    def recording_getitem(self, index):
        x, y = original_getitem(self, index)
        if self.subset == "train":
            column = self.input_names()["numbers"].index("attempt_id")
            served[(self.epoch, int(index) + self.start_batch)] = x["numbers"][:, column].astype("int64").tolist()
        return x, y

    QuestSequence.__getitem__ = recording_getitem

    class Recorder(keras.callbacks.Callback):
        """Runs after every questlearn callback: the batch was trained on (and saved, if due)."""

        def __init__(self, dataset):
            super().__init__()
            self.dataset, self.handle = dataset, open(record_path, "a", encoding="utf-8")

        def on_epoch_begin(self, epoch, logs=None):
            self.epoch = epoch

        def on_train_batch_end(self, batch, logs=None):
            index = batch + self.dataset.start_batch
            ids = served.pop((self.epoch, index))
            self.handle.write(f"{self.epoch} {index} {' '.join(map(str, ids))}\n")
            self.handle.flush()
            os.fsync(self.handle.fileno())
            if pause == (self.epoch, index):
                open(record_path + ".paused", "w").close()
                while True:
                    time.sleep(1)

    original_train = questlearn.train._fit.train
    original_init = QuestSequence.__init__
    datasets = []

    def keep(self, *args, **kwargs):
        original_init(self, *args, **kwargs)
        datasets.append(self)

    QuestSequence.__init__ = keep
    original_in_memory = QuestSequence.in_memory

    def keep_in_memory(self):  # train() serves a small split from memory: the copy is the data set fit reads
        copy = original_in_memory(self)
        datasets.append(copy)
        return copy

    QuestSequence.in_memory = keep_in_memory

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

    questlearn.train._fit.train = train_with_recorder
    sys.exit(cli_main(["train", *train_args]))


if __name__ == "__main__":
    main()
