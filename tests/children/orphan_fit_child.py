"""Fit with worker processes whose batches from the fourth on take minutes; print ``FITTING`` first.

Usage: python orphan_fit_child.py SPLIT_DIR START_METHOD

A slow batch (a huge CSV shard, a slow disk) keeps a worker busy: the test
SIGKILLs this process while its workers are inside such batches and checks
that they (and the ``forkserver``, the resource tracker) end with it instead
of finishing their batch for nobody.
"""

import multiprocessing
import sys
import time

from tiny_model import softmax_over_blocks

from questlearn.data.dataset import QuestSequence

SLOW_FROM_BATCH = 3


class SlowSequence(QuestSequence):
    def __getitem__(self, index):
        if index >= SLOW_FROM_BATCH:
            time.sleep(300)
        return super().__getitem__(index)


def main():
    split_dir, start_method = sys.argv[1:3]
    multiprocessing.set_start_method(start_method, force=True)
    import keras

    train = SlowSequence(split_dir, "train", batch_size=16, workers=2, use_multiprocessing=True, max_queue_size=2)

    class Announce(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if batch == SLOW_FROM_BATCH - 1:
                print("FITTING", flush=True)

    model = softmax_over_blocks(train)
    model.fit(train, epochs=1, shuffle=False, verbose=0, callbacks=[Announce()])


if __name__ == "__main__":
    main()
