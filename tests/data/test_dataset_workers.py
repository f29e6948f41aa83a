"""Worker processes under every start method, and faults that must not hang ``fit``.

Each case runs in a child Python process, so a start method can be set and a
regression that hangs is killed by the timeout instead of freezing the suite.
"""

import os
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


def leftover_lines(result) -> list:
    """The child's ``LEFTOVER <pid> <command line>`` lines: the processes it found alive."""
    return [line for line in result.stderr.splitlines() if line.startswith("LEFTOVER")]


@pytest.mark.timeout(1200)
@pytest.mark.parametrize("start_method", START_METHODS)
def test_worker_processes_see_every_row_once_under(id_split, start_method):
    result = run_child("epoch_ids.py", id_split, start_method, "csv")
    lines = [line for line in result.stdout.splitlines() if line.startswith("IDS")]
    assert lines, result.stderr[-3000:]
    ids = np.array(lines[0].split()[1:], dtype=np.int64)
    np.testing.assert_array_equal(np.sort(ids), expected_ids(id_split, "train"))


# A worker's death is noticed differently under each start method (forkserver workers are not our
# children), so SIGKILL runs under all three. What a worker raises comes back through the same pool
# code under every start method: an exception runs under fork and spawn (a fresh interpreter), a
# SystemExit (the worker ends; its message must still arrive) and a truncated shard under fork.
FAULTS = [(method, "sigkill", 5) for method in START_METHODS] + [
    ("fork", "raise", 5), ("spawn", "raise", 5), ("fork", "systemexit", 5), ("fork", "truncate", 5),
    # Killed at the pool's very first batch, before the watchdog has seen the pool.
    ("fork", "sigkill", 0), ("forkserver", "sigkill", 0)]


@pytest.mark.timeout(900)
@pytest.mark.parametrize("start_method,fault,fail_at", FAULTS)
def test_failing_batch_stops_fit_quickly_naming_the_shard(id_split, tmp_path, start_method, fault, fail_at):
    split = tmp_path / "split"
    shutil.copytree(id_split, split)
    result = run_child("faulty_fit.py", split, start_method, fault, 2, 1, fail_at, timeout=840)
    lines = [line for line in result.stdout.splitlines() if line.startswith("RESULT")]
    assert lines, f"fit did not come back: {result.stderr[-3000:]}"
    _, seconds, leftover, message = lines[0].split(" ", 3)
    assert float(seconds) < FIT_BOUND_SECONDS, message
    assert int(leftover) == 0, f"worker processes alive when fit raised: {message} {leftover_lines(result)}"
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


@pytest.mark.timeout(900)
def test_thread_workers_report_errors_too(id_split, tmp_path):
    result = run_child("faulty_fit.py", id_split, "fork", "raise", 2, 0)
    line = next(line for line in result.stdout.splitlines() if line.startswith("RESULT"))
    assert "could not load batch 5 " in line and "OSError: injected read error" in line
    assert line.split(" ", 3)[3].startswith("BatchLoadError: "), line


@pytest.mark.timeout(900)
def test_healthy_multi_epoch_training_with_worker_processes_is_not_stopped(id_split, tmp_path):
    """The watchdog must not mistake workers of finished pools (every epoch has new ones) for dead ones:
    from the second epoch on, the first epoch's workers are gone."""
    result = subprocess.run([sys.executable, "-m", "questlearn", "train", str(id_split), "--model-dir", str(tmp_path / "m"),
                             "--epochs", "2", "--batch-size", "64", "--workers", "2", "--processes", "--verbose", "0",
                             "--model", "small", "--hidden", "8"],  # the loader is under test, not the network
                            capture_output=True, text=True, timeout=840, env=run_env())
    assert result.returncode == 0, result.stderr[-3000:]
    assert '"epochs": 2' in result.stdout


@pytest.mark.timeout(1200)
@pytest.mark.parametrize("start_method", ["forkserver"])  # questlearn's default; spawn shares the queue code
def test_a_second_worker_death_in_the_same_process_stops_fit_too(id_split, tmp_path, start_method):
    """Terminating the first failed pool must not block the watchdog (it did, on a queue lock),
    or the next worker death in the process (a notebook cell run again) hangs ``fit`` forever.

    The child's timeout catches that hang; no wall time is asserted (spawn workers each import
    the backend, which takes long on a busy machine)."""
    result = run_child("faulty_fit.py", id_split, start_method, "sigkill", 2, 1, 5, 2, timeout=1140)
    lines = [line for line in result.stdout.splitlines() if line.startswith("RESULT")]
    assert len(lines) == 2, f"the second fit did not come back: {result.stdout[-2000:]} {result.stderr[-3000:]}"
    for line in lines:
        _, _, leftover, message = line.split(" ", 3)
        assert int(leftover) == 0, f"worker processes alive when fit raised: {message} {leftover_lines(result)}"
        assert message.startswith("BatchLoadError: "), message
        assert ("was killed by signal SIGKILL" in message or "died" in message) and "while loading batch 5 " in message


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
