"""Train one short epoch with worker processes and report the start method used.

Usage: python -W always::DeprecationWarning process_workers_fit.py SPLIT_DIR

Run with every warning shown, it shows that worker processes do not start by
``fork`` from this (multi-threaded) process: Python 3.12+ would warn
``DeprecationWarning: ... use of fork() may lead to deadlocks``. Prints
``START_METHOD <name>`` and ``FIT-OK <batches>``.
"""

import multiprocessing
import sys


def main():
    from questlearn.data.dataset import QuestSequence
    from questlearn.train.model import build_model

    train = QuestSequence(sys.argv[1], "train", batch_size=256, workers=2, use_multiprocessing=True, max_queue_size=2)
    print(f"START_METHOD {multiprocessing.get_start_method()}", flush=True)
    model = build_model(*train.feature_moments(), train.num_classes, hidden=(), dropout=0.0,
                        code_counts=train.code_counts())  # one softmax layer over the numbers and codes blocks
    history = model.fit(train, epochs=1, shuffle=False, verbose=0)
    print(f"FIT-OK {len(train)} {len(history.history['loss'])}", flush=True)


if __name__ == "__main__":
    main()
