"""Run one job on a data set and print the peak RSS of this process and its children (MiB).

Usage: python memory_probe.py split SOURCE OUT | python memory_probe.py load SPLIT_DIR SOURCE
"""

import resource
import sys


def main():
    job = sys.argv[1]
    if job == "split":
        from questlearn.split import split_csv

        split_csv(sys.argv[2], sys.argv[3], rows_per_shard=20_000, block_size=1 << 20, id_columns=("attempt_id",))
    else:
        from keras.src.trainers.data_adapters.py_dataset_adapter import PyDatasetAdapter

        from questlearn.data.dataset import QuestSequence

        dataset = QuestSequence(sys.argv[2], "train", batch_size=512, source=sys.argv[3], workers=2,
                                use_multiprocessing=True)
        adapter = PyDatasetAdapter(dataset, shuffle=False)
        adapter.on_epoch_begin()
        rows = sum(len(batch[1]) for batch in adapter.get_numpy_iterator())
        adapter.on_epoch_end()
        assert rows == dataset.plan.total_rows
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(f"PEAK {own:.1f} {children:.1f}")


if __name__ == "__main__":
    main()
