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
    from tiny_model import softmax_over_blocks

    from questlearn.data.dataset import QuestSequence

    train = QuestSequence(sys.argv[1], "train", batch_size=256, workers=2, use_multiprocessing=True, max_queue_size=2)
    print(f"START_METHOD {multiprocessing.get_start_method()}", flush=True)
    model = softmax_over_blocks(train)
    history = model.fit(train, epochs=1, shuffle=False, verbose=0)
    print(f"FIT-OK {len(train)} {len(history.history['loss'])}", flush=True)


if __name__ == "__main__":
    main()
