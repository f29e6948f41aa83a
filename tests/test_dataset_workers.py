"""Worker processes under every start method, and faults that must not hang ``fit``.

Each case runs in a child Python process, so a start method can be set and a
regression that hangs is killed by the timeout instead of freezing the suite.
"""

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from test_dataset import expected_ids
from helpers import run_env

HERE = Path(__file__).parent
START_METHODS = ["fork", "spawn", "forkserver"]
FIT_BOUND_SECONDS = 30  # generous: spawn workers import the backend first; hangs are what we catch


def run_child(script, *args, timeout=120):
    result = subprocess.run([sys.executable, str(HERE / script), *map(str, args)], capture_output=True,
                            text=True, timeout=timeout, env=run_env(), cwd=HERE)
    return result


@pytest.mark.timeout(180)
@pytest.mark.parametrize("start_method", START_METHODS)
def test_worker_processes_see_every_row_once_under(id_split, start_method):
    result = run_child("epoch_ids.py", id_split, start_method, "csv")
    lines = [line for line in result.stdout.splitlines() if line.startswith("IDS")]
    assert lines, result.stderr[-3000:]
    ids = np.array(lines[0].split()[1:], dtype=np.int64)
    np.testing.assert_array_equal(np.sort(ids), expected_ids(id_split, "train"))


FAULTS = [(method, fault, 5) for method in START_METHODS for fault in ("raise", "sigkill")] + [
    ("fork", "systemexit", 5), ("spawn", "systemexit", 5), ("fork", "truncate", 5),
    # Killed at the pool's very first batch, before the watchdog has seen the pool.
    ("fork", "sigkill", 0), ("forkserver", "sigkill", 0)]


@pytest.mark.timeout(180)
@pytest.mark.parametrize("start_method,fault,fail_at", FAULTS)
def test_failing_batch_stops_fit_quickly_naming_the_shard(id_split, tmp_path, start_method, fault, fail_at):
    split = tmp_path / "split"
    shutil.copytree(id_split, split)
    result = run_child("faulty_fit.py", split, start_method, fault, 2, 1, fail_at)
    lines = [line for line in result.stdout.splitlines() if line.startswith("RESULT")]
    assert lines, f"fit did not come back: {result.stderr[-3000:]}"
    _, seconds, leftover, message = lines[0].split(" ", 3)
    assert float(seconds) < FIT_BOUND_SECONDS, message
    assert int(leftover) == 0, f"worker processes left behind: {message}"
    assert "NO-ERROR" not in message
    assert "train/split_data_" in message  # the shard is named
    if fault == "sigkill":
        assert ("was killed by signal SIGKILL" in message or "died" in message) and f"while loading batch {fail_at} " in message
    elif fault == "truncate":
        assert "could not load batch" in message and "split_data_" in message
    else:
        assert "could not load batch 5 " in message
        assert ("OSError: injected read error" if fault == "raise" else "SystemExit: 3") in message


@pytest.mark.timeout(120)
def test_thread_workers_report_errors_too(id_split, tmp_path):
    result = run_child("faulty_fit.py", id_split, "fork", "raise", 2, 0)
    line = next(line for line in result.stdout.splitlines() if line.startswith("RESULT"))
    assert "could not load batch 5 " in line and "OSError: injected read error" in line


@pytest.mark.timeout(300)
def test_healthy_multi_epoch_training_with_worker_processes_is_not_stopped(id_split, tmp_path):
    """The watchdog must not mistake workers of finished pools (every epoch has new ones) for dead ones."""
    result = subprocess.run([sys.executable, "-m", "questlearn", "train", str(id_split), "--model-dir", str(tmp_path / "m"),
                             "--epochs", "4", "--batch-size", "64", "--workers", "2", "--processes", "--verbose", "0"],
                            capture_output=True, text=True, timeout=280, env=run_env())
    assert result.returncode == 0, result.stderr[-3000:]
    assert '"epochs": 4' in result.stdout
