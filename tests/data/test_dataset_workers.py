"""Worker processes under every start method, and faults that must not hang ``fit``.

Each case runs in a child Python process, so a start method can be set and a
regression that hangs is killed by the timeout instead of freezing the suite.
"""

import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
from helpers import run_child, run_env
from splits import expected_ids

START_METHODS = ["fork", "spawn", "forkserver"]
FIT_BOUND_SECONDS = 150  # a hang is what is caught (fit never returns); 30 s was measured as 37-47 s on a
                        # loaded 2-core machine, so the bound leaves room for 10x that load


def leftover_lines(stderr: str) -> list:
    """The child's ``LEFTOVER <case number> <pid> <command line>`` lines: the processes it found alive."""
    return [line for line in stderr.splitlines() if line.startswith("LEFTOVER")]


@pytest.mark.timeout(1200)
@pytest.mark.parametrize("start_method", START_METHODS)
def test_worker_processes_see_every_row_once_under(id_split, start_method):
    # Under forkserver (questlearn's default) the child then trains 2 epochs with worker processes, as
    # `questlearn train --processes` does: the watchdog must not mistake workers of finished pools (every
    # epoch has new ones) for dead ones: from the second epoch on, the first epoch's workers are gone.
    fit_epochs = ["2"] if start_method == "forkserver" else []
    result = run_child("epoch_ids.py", id_split, start_method, "csv", *fit_epochs)
    lines = [line for line in result.stdout.splitlines() if line.startswith("IDS")]
    assert lines, result.stderr[-3000:]
    ids = np.array(lines[0].split()[1:], dtype=np.int64)
    np.testing.assert_array_equal(np.sort(ids), expected_ids(id_split, "train"))
    if fit_epochs:
        assert result.returncode == 0, result.stderr[-3000:]
        assert "FIT-EPOCHS 2" in result.stdout, result.stderr[-3000:]
    # Keras starts new pools every epoch and validation pass (2 workers each); under forkserver every worker of
    # the epoch and of the fit is forked from a server that imported Keras and the readers once, so none imports
    # them again (about 6 CPU-seconds each with TensorFlow); under spawn each imports them itself.
    workers = re.search(r"^WORKERS (.*)$", result.stdout, re.M).group(1).split()
    assert workers, result.stdout[-2000:]
    expected = "preloaded" if start_method == "forkserver" else ("fresh" if start_method == "spawn" else None)
    if expected:
        assert set(workers) == {expected}, workers


# A worker's death is noticed differently under each start method (forkserver workers are not our
# children), so SIGKILL runs under all three. What a worker raises comes back through the same pool
# code under every start method: an exception runs under fork and spawn (a fresh interpreter), a
# SystemExit (the worker ends; its message must still arrive) and a truncated shard under fork.
# Each start method's cases run one after another in one child process (``FAULT:WORKERS:PROCESSES:FAIL_AT``),
# as notebook cells run again would.
FAULTS = {
    # Killed at the pool's very first batch, before the watchdog has seen the pool: first in a fresh process,
    # before the watchdog thread and its notes folder exist.
    "fork": ["sigkill:2:1:0", "sigkill:2:1:5", "raise:2:1:5", "systemexit:2:1:5", "truncate:2:1:5",
             "raise:2:0:5"],  # thread workers report errors too
    "spawn": ["sigkill:2:1:5", "raise:2:1:5"],
    # questlearn's default start method (spawn shares the queue code): terminating the first failed pool must
    # not block the watchdog (it did, on a queue lock), or the next worker death in the process (a notebook
    # cell run again) hangs ``fit`` forever; so a second and a third worker death follow the first.
    "forkserver": ["sigkill:2:1:5", "sigkill:2:1:5", "sigkill:2:1:0"],
}


def fault_results(split, start_method, cases) -> tuple:
    """Run ``cases`` in one ``faulty_fit.py`` child: ``({case number: RESULT fields}, stdout, stderr)``.

    A child that hangs is killed by its timeout; the cases that reported before it still count."""
    try:
        result = run_child("faulty_fit.py", split, start_method, *cases, timeout=1500)
        stdout, stderr = result.stdout, result.stderr
    except subprocess.TimeoutExpired as hung:
        stdout, stderr = (text.decode() if isinstance(text, bytes) else text or "" for text in (hung.stdout, hung.stderr))
    results = {}
    for line in stdout.splitlines():
        if line.startswith("RESULT "):
            _, number, _, seconds, leftover, message = line.split(" ", 5)
            results[int(number)] = (seconds, leftover, message)
    return results, stdout, stderr


def check_fault_case(case, seconds, leftover, message, leftovers) -> None:
    """What every failing batch must give: ``fit`` raised soon, no worker left, questlearn's error naming the batch."""
    fault, _, _, fail_at = case.split(":")
    assert float(seconds) < FIT_BOUND_SECONDS, message
    assert int(leftover) == 0, f"worker processes alive when fit raised: {message} {leftovers}"
    # questlearn's named error on every backend (TensorFlow's tf.data re-raises it as an UnknownError of its own)
    assert message.startswith("IntegrityError: " if fault == "truncate" else "BatchLoadError: "), message
    assert "train/split_data_" in message  # the shard is named
    if fault == "sigkill":
        assert ("was killed by signal SIGKILL" in message or "died" in message) and f"while loading batch {fail_at} " in message
    elif fault == "truncate":
        assert "could not load batch" in message and "split_data_" in message
    else:
        assert "could not load batch 5 " in message
        assert ("OSError: injected read error" if fault == "raise" else "SystemExit: 3") in message


@pytest.mark.timeout(1600)
@pytest.mark.parametrize("start_method", START_METHODS)
def test_failing_batch_stops_fit_quickly_naming_the_shard(id_split, start_method):
    cases = FAULTS[start_method]
    results, stdout, stderr = fault_results(id_split, start_method, cases)
    failures = []
    for number, case in enumerate(cases):
        if number not in results:
            failures.append(f"case {number} {case}: fit did not come back: {stdout[-2000:]} {stderr[-3000:]}")
            break  # the cases after it never ran
        own = [line for line in leftover_lines(stderr) if line.split()[1] == str(number)]
        try:
            check_fault_case(case, *results[number], own)
        except AssertionError as failure:
            failures.append(f"case {number} {case}: {failure}")
    assert not failures, "\n".join(failures)


def _runs_questlearn(python):
    if python is None or not os.path.exists(python):
        return False
    probe = subprocess.run([python, "-c", "import questlearn.data.dataset"], capture_output=True, timeout=900,
                           env={**run_env(), "KERAS_BACKEND": "jax"})
    return probe.returncode == 0


PYTHON_312 = next((p for p in (os.environ.get("QUESTLEARN_PYTHON312"), shutil.which("python3.12"))
                   if _runs_questlearn(p)), None)
# Every warning printed, each time: with -W error, Python 3.12 reports the fork warning raised inside
# a pool's thread nowhere, so "always" is what makes it visible.
WARNINGS_SHOWN = ["-W", "always::DeprecationWarning", "-W", "always::RuntimeWarning"]
FORK_WARNINGS = ("use of fork() may lead to deadlocks", "os.fork() was called")  # CPython 3.12+, JAX


def _fit_with_worker_processes(python, split):
    env = {**run_env(), "KERAS_BACKEND": "jax"}  # JAX warns on fork under any Python, CPython from 3.12
    return run_child("process_workers_fit.py", split, python=python, python_options=WARNINGS_SHOWN, env=env, timeout=840)


@pytest.mark.timeout(900)
def test_process_workers_do_not_start_by_fork(id_split):
    """Keras pools use the default start method; questlearn makes it forkserver unless the program chose one."""
    result = _fit_with_worker_processes(sys.executable, id_split)
    assert "START_METHOD forkserver" in result.stdout, result.stderr[-3000:]
    assert "FIT-OK" in result.stdout, result.stderr[-3000:]
    assert not [w for w in FORK_WARNINGS if w in result.stderr], result.stderr[-3000:]


@pytest.mark.timeout(900)
@pytest.mark.skipif(PYTHON_312 is None, reason="needs a python3.12 (or QUESTLEARN_PYTHON312=/path/to/python) that "
                    "can import questlearn with the jax backend: 3.12 is where fork from a threaded process warns")
def test_no_fork_warning_on_python_312(id_split):
    result = _fit_with_worker_processes(PYTHON_312, id_split)
    assert "FIT-OK" in result.stdout, result.stderr[-3000:]
    assert not [w for w in FORK_WARNINGS if w in result.stderr], result.stderr[-3000:]
