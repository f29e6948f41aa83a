"""Helpers shared by the tests (importable from test modules and child scripts).

pytest puts ``tests/support`` on ``sys.path`` (``pythonpath`` in pyproject.toml), so a test
module in any folder imports these as ``from helpers import run_env``.
"""

import os
import subprocess
import sys
from pathlib import Path

ID_COLUMNS = ("attempt_id", "player_id")
# Why the torch tests skip where torch is missing (CI among them) and how to run them.
TORCH_MISSING = ("torch is not installed; the test extra leaves it out because its default wheel pulls gigabytes "
                 "of CUDA libraries. Run these tests after: pip install torch --index-url "
                 "https://download.pytorch.org/whl/cpu")
REPO = Path(__file__).resolve().parents[2]  # the repository root (holds the questlearn package)
CHILDREN = REPO / "tests" / "children"  # the scripts the tests run in child Python processes


def run_env():
    """Environment for child Python processes: quiet TensorFlow, same backend."""
    env = dict(os.environ)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    env["PYTHONUNBUFFERED"] = "1"
    return env


def child_command(script, *args, python=sys.executable, python_options=()):
    """The command line that runs ``tests/children/<script>`` with ``args`` (each made a string)."""
    return [python, *python_options, str(CHILDREN / script), *map(str, args)]


def run_child(script, *args, timeout=900, env=None, python=sys.executable, python_options=()):
    """Run a child script of ``tests/children`` to its end, in that folder, and return the
    ``CompletedProcess`` (stdout and stderr captured as text).

    Parameters
    ----------
    script : str
        File name in ``tests/children``, e.g. ``"faulty_fit.py"``.
    *args
        Its command-line arguments (paths and numbers are made strings).
    timeout : float
        Seconds before the child is killed and ``subprocess.TimeoutExpired`` raised, so a
        regression that hangs fails the test instead of freezing the suite.
    env : dict, optional
        Its environment; :func:`run_env` when omitted.
    python, python_options
        The interpreter and its options (e.g. ``["-W", "always"]``).
    """
    return subprocess.run(child_command(script, *args, python=python, python_options=python_options),
                          capture_output=True, text=True, timeout=timeout,
                          env=run_env() if env is None else env, cwd=CHILDREN)


def start_child(script, *args, env=None):
    """Start a child script of ``tests/children`` without waiting: a ``Popen`` with stdout and
    stderr piped as text (the caller waits, with a timeout, or kills it)."""
    return subprocess.Popen(child_command(script, *args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=run_env() if env is None else env, cwd=CHILDREN)


def zero_inputs(model, rows: int) -> dict:
    """Zeros for each named input of a questlearn network (``{"numbers": float32, "codes": int32}``), ``rows`` rows."""
    import numpy as np

    return {name: np.zeros((rows, tensor.shape[-1]), tensor.dtype) for name, tensor in model.input.items()}


def pause_when_exists(process, path, timeout=720) -> bool:
    """Poll for ``path`` and SIGSTOP ``process`` the moment it exists, so that what the test does
    next (a signal, filling a disk) lands in the middle of its run however busy the machine is.

    Returns True when the process was paused while still running, after ``path`` appeared; False
    when it ended first, or when the deadline passed without ``path``. Whether the run was still
    mid-way (e.g. no ``manifest.json`` yet) is the caller's to check; it retries with a fresh output
    if not, and resumes a paused process with :func:`resume` after acting on it.
    """
    import signal
    import time

    deadline = time.monotonic() + timeout
    while not Path(path).exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.001)
    if process.poll() is not None:
        return False
    process.send_signal(signal.SIGSTOP)
    return Path(path).exists()


def resume(process) -> None:
    """SIGCONT a process paused by :func:`pause_when_exists` (its pending signals land now)."""
    import signal

    process.send_signal(signal.SIGCONT)
