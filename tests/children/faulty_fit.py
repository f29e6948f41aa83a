"""Run ``fit`` on a QuestSequence whose batch 5 fails, and report how it ended.

Usage: python faulty_fit.py SPLIT_DIR START_METHOD FAULT WORKERS USE_MULTIPROCESSING [FAIL_AT [FITS]]

FAULT is ``raise`` (ordinary exception), ``systemexit``, ``sigkill`` (the
worker process is killed, as by the out-of-memory killer) or ``truncate``
(a shard file is cut short after the dataset was built). ``fit`` runs inside
``batch_refusals_as_user_errors``, as ``questlearn.train`` runs it. Prints one
line ``RESULT <seconds> <leftover child processes> <error type>: <message>``
per fit, the leftover processes counted at once when ``fit`` has raised;
FITS (default 1) runs that many fits one after the other in this process,
as a notebook cell run again would.
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

    from questlearn.data._supervision import batch_refusals_as_user_errors

    train = FaultySequence(split_dir, "train", batch_size=64, fault=fault, fail_at=FAIL_AT,
                           workers=int(workers), use_multiprocessing=processes == "1", max_queue_size=4)
    if fault == "truncate":
        shard = os.path.join(split_dir, train.reader.shard_name(train.plan.segments(FAIL_AT)[0][0]))
        with open(shard, "r+b") as handle:
            handle.truncate(200)
    model = softmax_over_blocks(train)
    started = time.monotonic()
    try:
        with batch_refusals_as_user_errors():
            model.fit(train, epochs=1, shuffle=False, verbose=0)
        outcome = "NO-ERROR: fit finished"
    except BaseException as error:  # noqa: BLE001 - we report whatever came out
        outcome = f"{type(error).__name__}: {' '.join(str(error).split())}"
    elapsed = time.monotonic() - started
    helpers = _start_method_helpers()
    leftover = [c for c in psutil.Process().children(recursive=True) if c.pid not in helpers and _alive(c)]
    for process in leftover:
        print(f"LEFTOVER {process.pid} {_command(process)}", file=sys.stderr, flush=True)
    print(f"RESULT {elapsed:.1f} {len(leftover)} {outcome}", flush=True)


def _start_method_helpers() -> set:
    """The pids of multiprocessing's own long-lived processes: the fork server and the resource tracker.

    By pid, not by command line: a worker the fork server forks keeps the fork server's command line."""
    from multiprocessing import forkserver, resource_tracker

    return {pid for pid in (getattr(forkserver._forkserver, "_forkserver_pid", None),
                            getattr(resource_tracker._resource_tracker, "_pid", None)) if pid is not None}


def _alive(process) -> bool:
    import psutil

    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _command(process) -> str:
    import psutil

    try:
        return " ".join(process.cmdline())
    except psutil.Error:
        return ""


if __name__ == "__main__":
    main()
