"""Print the attempt ids of one epoch read through Keras's enqueuer under a start method.

Usage: python epoch_ids.py SPLIT_DIR START_METHOD SOURCE
"""

import multiprocessing
import sys


def main():
    split_dir, start_method, source = sys.argv[1:4]
    multiprocessing.set_start_method(start_method, force=True)
    import numpy as np
    from keras.src.trainers.data_adapters.py_dataset_adapter import PyDatasetAdapter

    from questlearn.data.dataset import QuestSequence

    dataset = QuestSequence(split_dir, "train", batch_size=200, source=source, seed=1,
                            workers=2, use_multiprocessing=True, max_queue_size=3)
    adapter = PyDatasetAdapter(dataset, shuffle=False)
    adapter.on_epoch_begin()
    column = dataset.input_names()["numbers"].index("attempt_id")
    ids = np.concatenate([x["numbers"][:, column] for x, _ in adapter.get_numpy_iterator()]).astype(np.int64)
    adapter.on_epoch_end()
    print("IDS", " ".join(map(str, ids.tolist())), flush=True)


if __name__ == "__main__":
    main()
