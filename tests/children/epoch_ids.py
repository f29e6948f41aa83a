"""Print the attempt ids of one epoch read through Keras's enqueuer under a start method.

Usage: python epoch_ids.py SPLIT_DIR START_METHOD SOURCE [FIT_EPOCHS]

With FIT_EPOCHS, it then trains a tiny model for that many epochs with worker
processes for both the training and the validation rows, inside
``batch_refusals_as_user_errors`` as ``questlearn train`` runs it: every epoch
starts new pools, and the watchdog must not take the workers of the finished
ones for dead. Prints ``IDS <id> ...`` and then ``FIT-EPOCHS <epochs trained>``,
``WORKER-CPU <seconds> ...`` (what each worker of the fit had used when it
loaded its first batch) and ``IMPORT-CPU <seconds>`` (what a fresh process
takes to import the dataset module, Keras and its backend: measured here, on
this machine, as the reference).
"""

import multiprocessing
import resource
import subprocess
import sys
import tempfile


def main():
    split_dir, start_method, source = sys.argv[1:4]
    multiprocessing.set_start_method(start_method, force=True)
    import numpy as np
    from keras.src.trainers.data_adapters.py_dataset_adapter import PyDatasetAdapter

    from questlearn.data.dataset import QuestSequence

    loading = dict(batch_size=200, source=source, seed=1, workers=2, use_multiprocessing=True, max_queue_size=3)
    dataset = QuestSequence(split_dir, "train", **loading)
    adapter = PyDatasetAdapter(dataset, shuffle=False)
    adapter.on_epoch_begin()
    column = dataset.input_names()["numbers"].index("attempt_id")
    ids = np.concatenate([x["numbers"][:, column] for x, _ in adapter.get_numpy_iterator()]).astype(np.int64)
    adapter.on_epoch_end()
    print("IDS", " ".join(map(str, ids.tolist())), flush=True)
    if len(sys.argv) > 4:
        from cpu_noting_sequence import CpuNotingSequence, noted_seconds

        notes = tempfile.mkdtemp()
        fit(CpuNotingSequence(split_dir, "train", note_dir=notes, **loading),
            CpuNotingSequence(split_dir, "validate", note_dir=notes, **loading), int(sys.argv[4]))
        print("WORKER-CPU", " ".join(f"{seconds:.2f}" for seconds in noted_seconds(notes)), flush=True)
        print(f"IMPORT-CPU {import_seconds():.2f}", flush=True)


def fit(train, validation, epochs):
    from tiny_model import softmax_over_blocks

    from questlearn.data._supervision import batch_refusals_as_user_errors

    model = softmax_over_blocks(train)
    with batch_refusals_as_user_errors():
        history = model.fit(train, validation_data=validation, epochs=epochs, verbose=0)
    print(f"FIT-EPOCHS {len(history.history['loss'])}", flush=True)


def import_seconds() -> float:
    """CPU seconds a fresh process spends importing the dataset module (Keras and its backend with it)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run([sys.executable, "-c", "import questlearn.data.dataset"], check=True, capture_output=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)


if __name__ == "__main__":
    main()
