"""Fit with worker processes for a long time; print ``FITTING`` once the workers serve batches.

Usage: python orphan_fit_child.py SPLIT_DIR START_METHOD

The test SIGKILLs this process while it fits and checks that its worker
processes (and the ``forkserver``, the resource tracker) end with it.
"""

import multiprocessing
import sys


def main():
    split_dir, start_method = sys.argv[1:3]
    multiprocessing.set_start_method(start_method, force=True)
    import keras

    from questlearn.dataset import QuestSequence

    train = QuestSequence(split_dir, "train", batch_size=16, workers=2, use_multiprocessing=True, max_queue_size=2)

    class Announce(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            if batch == 3:
                print("FITTING", flush=True)

    model = keras.Sequential([keras.Input((len(train.feature_names),)), keras.layers.Dense(2, activation="softmax")])
    model.compile("sgd", "sparse_categorical_crossentropy")
    model.fit(train, epochs=1000, shuffle=False, verbose=0, callbacks=[Announce()])


if __name__ == "__main__":
    main()
