"""Helpers shared by the tests (importable from test modules and child scripts).

pytest puts ``tests/support`` on ``sys.path`` (``pythonpath`` in pyproject.toml), so a test
module in any folder imports these as ``from helpers import run_env``.
"""

import os
import subprocess
import sys
from pathlib import Path

import zygote

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


def run_child(script, *args, timeout=900, env=None, python=sys.executable, python_options=(), fresh=False):
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
    fresh : bool
        Start a fresh interpreter even where the child could be forked from the zygote, which has
        Keras imported already (tests/support/zygote.py): for what only a fresh start shows.
    """
    env = run_env() if env is None else env
    command = child_command(script, *args, python=python, python_options=python_options)
    if not fresh and zygote.usable(python, python_options, env):
        return zygote.run(command[1:], cwd=CHILDREN, env=env, timeout=timeout)
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env, cwd=CHILDREN)


def start_child(script, *args, env=None, fresh=False):
    """Start a child script of ``tests/children`` without waiting: a ``Popen`` (or, forked from the
    zygote, an object that answers like one) with stdout and stderr as text (the caller waits, with a
    timeout, or kills it). ``fresh``: as for :func:`run_child`."""
    env = run_env() if env is None else env
    command = child_command(script, *args)
    if not fresh and zygote.usable(env=env):
        return zygote.start(command[1:], cwd=CHILDREN, env=env)
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=CHILDREN)


def run_questlearn(*args, module="questlearn", timeout=900, env=None, cwd=None, fresh=False):
    """Run ``python -m questlearn ARGS`` (or ``-m`` another module) to its end and return the
    ``CompletedProcess`` (text output), forked from the zygote unless ``fresh`` (see :func:`run_child`)."""
    env = run_env() if env is None else env
    cwd = os.getcwd() if cwd is None else cwd
    argv = [module, *map(str, args)]
    if not fresh and zygote.usable(env=env):
        return zygote.run(argv, cwd=cwd, env=env, timeout=timeout, module=module)
    return subprocess.run([sys.executable, "-m", *argv], capture_output=True, text=True, timeout=timeout, env=env,
                          cwd=cwd)


def check(done):
    """``done`` (a finished process) when it exited 0; otherwise fail the test with the end of its stderr."""
    assert done.returncode == 0, f"exit {done.returncode}: {(done.stderr or '')[-3000:]}"
    return done


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
