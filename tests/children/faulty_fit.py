"""Run ``fit`` on QuestSequences whose batch fails, one case after another, and report how each ended.

Usage: python faulty_fit.py SPLIT_DIR START_METHOD CASE [CASE ...]

Each CASE is ``FAULT:WORKERS:PROCESSES:FAIL_AT``: batch FAIL_AT fails with
FAULT, read by WORKERS workers, processes when PROCESSES is 1 (threads when
0). FAULT is ``raise`` (ordinary exception), ``systemexit``, ``sigkill``
(the worker process is killed, as by the out-of-memory killer) or
``truncate`` (a shard file is cut short after the dataset was built; that
case damages a fresh copy of the split, not SPLIT_DIR). ``fit`` runs inside
``batch_refusals_as_user_errors``, as ``questlearn.train`` runs it. The
cases run one after the other in this process, as notebook cells run again
would, with no pause between them: a fit started at once after another's
worker died must report its own failure, not the earlier one (the watchdog
deletes the note of a dead worker it has reported). A case repeated is a
second fit of the same kind. Before each fit it prints ``CASE <n> <case>``
(to stdout and stderr, so a hang names its case),
after it ``RESULT <n> <case> <seconds> <leftover child processes> <error
type>: <message>``, the leftover processes counted at once when ``fit`` has
raised (those started during the fit: a process of an earlier case still
ending is not this fit's) and listed on stderr as ``LEFTOVER <n> <pid>
<command line>``.
"""

import multiprocessing
import os
import shutil
import sys
import tempfile
import time


def main():
    split_dir, start_method, *cases = sys.argv[1:]
    multiprocessing.set_start_method(start_method, force=True)
    for number, case in enumerate(cases):
        print(f"CASE {number} {case}", flush=True)
        print(f"CASE {number} {case}", file=sys.stderr, flush=True)
        fault, workers, processes, fail_at = case.split(":")
        if fault != "truncate":
            fit_once(number, case, split_dir, fault, int(workers), processes == "1", int(fail_at))
            continue
        with tempfile.TemporaryDirectory() as scratch:
            copy = shutil.copytree(split_dir, os.path.join(scratch, "split"))
            fit_once(number, case, copy, fault, int(workers), processes == "1", int(fail_at))
    os._exit(0)


def fit_once(number, case, split_dir, fault, workers, processes, fail_at):
    import psutil
    from faulty_sequence import FaultySequence
    from tiny_model import softmax_over_blocks

    from questlearn.data._supervision import batch_refusals_as_user_errors

    train = FaultySequence(split_dir, "train", batch_size=64, fault=fault, fail_at=fail_at,
                           workers=workers, use_multiprocessing=processes, max_queue_size=4)
    if fault == "truncate":
        shard = os.path.join(split_dir, train.reader.shard_name(train.plan.segments(fail_at)[0][0]))
        with open(shard, "r+b") as handle:
            handle.truncate(200)
    model = softmax_over_blocks(train)
    earlier = {child.pid for child in psutil.Process().children(recursive=True)}  # an earlier case's, if any
    started = time.monotonic()
    try:
        with batch_refusals_as_user_errors():
            model.fit(train, epochs=1, shuffle=False, verbose=0)
        outcome = "NO-ERROR: fit finished"
    except BaseException as error:  # noqa: BLE001 - we report whatever came out
        outcome = f"{type(error).__name__}: {' '.join(str(error).split())}"
    elapsed = time.monotonic() - started
    helpers = _start_method_helpers()
    leftover = [c for c in psutil.Process().children(recursive=True)
                if c.pid not in helpers and c.pid not in earlier and _alive(c)]
    for process in leftover:
        print(f"LEFTOVER {number} {process.pid} {_command(process)}", file=sys.stderr, flush=True)
    print(f"RESULT {number} {case} {elapsed:.1f} {len(leftover)} {outcome}", flush=True)


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
