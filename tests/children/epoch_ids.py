"""Print the attempt ids of one epoch read through Keras's enqueuer under a start method.

Usage: python epoch_ids.py SPLIT_DIR START_METHOD SOURCE [FIT_EPOCHS]

With FIT_EPOCHS, it then trains a tiny model for that many epochs with worker
processes for both the training and the validation rows, inside
``batch_refusals_as_user_errors`` as ``questlearn train`` runs it: every epoch
starts new pools, and the watchdog must not take the workers of the finished
ones for dead. Prints ``IDS <id> ...`` and then ``FIT-EPOCHS <epochs trained>`` and
``WORKERS <note> ...``: for each worker process of the epoch and the fit,
``preloaded`` when it was forked from a forkserver that had imported Keras and
the readers, ``fresh`` when it imported them itself.
"""

import multiprocessing
import shutil
import sys
import tempfile


def main():
    split_dir, start_method, source = sys.argv[1:4]
    multiprocessing.set_start_method(start_method, force=True)
    import numpy as np
    from keras.src.trainers.data_adapters.py_dataset_adapter import PyDatasetAdapter

    from noting_sequence import NotingSequence, notes

    loading = dict(batch_size=200, source=source, seed=1, workers=2, use_multiprocessing=True, max_queue_size=3,
                   note_dir=tempfile.mkdtemp())
    dataset = NotingSequence(split_dir, "train", **loading)
    adapter = PyDatasetAdapter(dataset, shuffle=False)
    adapter.on_epoch_begin()
    column = dataset.input_names()["numbers"].index("attempt_id")
    ids = np.concatenate([x["numbers"][:, column] for x, _ in adapter.get_numpy_iterator()]).astype(np.int64)
    adapter.on_epoch_end()
    print("IDS", " ".join(map(str, ids.tolist())), flush=True)
    if len(sys.argv) > 4:
        fit(dataset, NotingSequence(split_dir, "validate", **loading), int(sys.argv[4]))
    print("WORKERS", " ".join(notes(loading["note_dir"])), flush=True)
    shutil.rmtree(loading["note_dir"])


def fit(train, validation, epochs):
    from tiny_model import softmax_over_blocks

    from questlearn.data._supervision import batch_refusals_as_user_errors

    model = softmax_over_blocks(train)
    with batch_refusals_as_user_errors():
        history = model.fit(train, validation_data=validation, epochs=epochs, verbose=0)
    print(f"FIT-EPOCHS {len(history.history['loss'])}", flush=True)



if __name__ == "__main__":
    main()
