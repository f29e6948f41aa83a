"""Start the processes of a data-parallel job: here (``--local-processes``) or as one of N (``--num-processes``)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

from .._orphans import child_environment
from ..errors import OptionError
from ._processes import free_port, initialize


def train_process(split_dir, model_dir, *, num_processes: int, process_id: int, coordinator: str,
                  startup_timeout: int = 300, **train_options):
    """Run process ``process_id`` of a ``num_processes``-process data-parallel job.

    Every process runs this with the same arguments except ``process_id``.
    ``train_options`` go to :func:`questlearn.train._fit.train`; process 0 writes
    to ``model_dir`` (a folder, or a URL written through its staging folder), the
    others to a temporary directory removed at the end (they take no ``staging_dir``).

    Returns
    -------
    questlearn.train._result.TrainingResult
    """
    initialize(coordinator, num_processes, process_id, startup_timeout=startup_timeout)
    from ._fit import train

    scratch = None if process_id == 0 else tempfile.mkdtemp(prefix=f"questlearn-process{process_id}-")
    if scratch is not None:
        train_options.pop("staging_dir", None)  # process 0's staging folder, for a model folder URL
    try:
        return train(split_dir, model_dir if scratch is None else scratch, process=(process_id, num_processes), **train_options)
    finally:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)


# -- several processes on this machine ------------------------------------------

def launch_local(child_argv, num_processes: int, *, timeout: float | None = None, grace: float = 10.0) -> int:
    """Run ``python -m questlearn <child_argv>`` as ``num_processes`` processes of one job on 127.0.0.1.

    Each gets ``--num-processes N --process-id I --coordinator 127.0.0.1:PORT``
    appended and ``KERAS_BACKEND=jax``. When one exits with an error, the
    others get ``grace`` seconds to report theirs, then are terminated, so a
    crash never leaves the job waiting in a collective. If this process is
    killed, they end with it (:mod:`questlearn._orphans`).

    Returns
    -------
    int
        0, or the exit status of the first process that failed.
    """
    if int(num_processes) < 1:
        raise OptionError(f"--local-processes must be at least 1, got {num_processes}")
    backend = os.environ.get("KERAS_BACKEND", "jax")
    if backend != "jax":
        raise OptionError(f"KERAS_BACKEND is {backend!r}: multi-process training runs on JAX only "
                          "(keras.distribution; the TensorFlow backend's multi-worker strategy fails in Keras 3, keras-team/keras#20585)")
    coordinator = f"127.0.0.1:{free_port()}"
    env = child_environment({**os.environ, "KERAS_BACKEND": "jax"})  # they end with this process, even if it is killed
    processes = [subprocess.Popen([sys.executable, "-m", "questlearn", *map(str, child_argv),
                                   "--num-processes", str(num_processes), "--process-id", str(index),
                                   "--coordinator", coordinator], env=env)
                 for index in range(int(num_processes))]
    started, failed_at, status = time.monotonic(), None, 0
    previous = signal.signal(signal.SIGTERM, _exit_on_sigterm)  # so `finally` stops the children on `kill` too
    try:
        while any(p.poll() is None for p in processes):
            codes = [p.poll() for p in processes]
            if failed_at is None and any(code not in (None, 0) for code in codes):
                failed_at, status = time.monotonic(), next(code for code in codes if code not in (None, 0))
            if failed_at is not None and time.monotonic() - failed_at > grace:
                break
            if timeout is not None and time.monotonic() - started > timeout:
                status = status or 124
                break
            time.sleep(0.2)
    finally:
        signal.signal(signal.SIGTERM, previous)
        for p in processes:
            if p.poll() is None:
                p.terminate()
        for p in processes:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
    return status or next((p.returncode for p in processes if p.returncode), 0)


def _exit_on_sigterm(signum, frame):
    raise SystemExit(128 + signum)
