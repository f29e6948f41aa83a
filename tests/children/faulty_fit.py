"""Run ``fit`` on a QuestSequence whose batch 5 fails, and report how it ended.

Usage: python faulty_fit.py SPLIT_DIR START_METHOD FAULT WORKERS USE_MULTIPROCESSING [FAIL_AT [FITS]]

FAULT is ``raise`` (ordinary exception), ``systemexit``, ``sigkill`` (the
worker process is killed, as by the out-of-memory killer) or ``truncate``
(a shard file is cut short after the dataset was built). Prints one line
``RESULT <seconds> <leftover child processes> <error type>: <message>`` per
fit; FITS (default 1) runs that many fits one after the other in this
process, as a notebook cell run again would.
"""

import multiprocessing
import os
import sys
import time

FAIL_AT = int(sys.argv[6]) if len(sys.argv) > 6 else 5
FITS = int(sys.argv[7]) if len(sys.argv) > 7 else 1


def main():
    split_dir, start_method, fault, workers, processes = sys.argv[1:6]
    multiprocessing.set_start_method(start_method, force=True)
    for _ in range(FITS):
        fit_once(split_dir, fault, workers, processes)
    os._exit(0)


def fit_once(split_dir, fault, workers, processes):
    import psutil
    from faulty_sequence import FaultySequence
    from tiny_model import softmax_over_blocks

    train = FaultySequence(split_dir, "train", batch_size=64, fault=fault, fail_at=FAIL_AT,
                           workers=int(workers), use_multiprocessing=processes == "1", max_queue_size=4)
    if fault == "truncate":
        shard = os.path.join(split_dir, train.reader.shard_name(train.plan.segments(FAIL_AT)[0][0]))
        with open(shard, "r+b") as handle:
            handle.truncate(200)
    model = softmax_over_blocks(train)
    started = time.monotonic()
    try:
        model.fit(train, epochs=1, shuffle=False, verbose=0)
        outcome = "NO-ERROR: fit finished"
    except BaseException as error:  # noqa: BLE001 - we report whatever came out
        outcome = f"{type(error).__name__}: {' '.join(str(error).split())}"
    elapsed = time.monotonic() - started
    deadline = time.monotonic() + 60  # leftover workers must end; generous for a loaded machine
    me = psutil.Process()
    while time.monotonic() < deadline:
        leftover = [c for c in me.children(recursive=True) if c.is_running() and c.status() != psutil.STATUS_ZOMBIE
                    and "forkserver" not in " ".join(c.cmdline()) and "resource_tracker" not in " ".join(c.cmdline())]
        if not leftover:
            break
        time.sleep(0.2)
    print(f"RESULT {elapsed:.1f} {len(leftover)} {outcome}", flush=True)


if __name__ == "__main__":
    main()
