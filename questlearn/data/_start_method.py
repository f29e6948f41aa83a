"""How data worker processes start: never by ``fork`` from a threaded process, and with Keras loaded once.

Keras 3 creates its ``PyDataset`` worker pools with ``multiprocessing.Pool``
(``keras/src/trainers/data_adapters/py_dataset_adapter.py``,
``get_pool_class``), that is with the process's *default* start method. On
Linux before Python 3.14 that default is ``fork``, and by the time a pool
starts, the Keras backend (JAX, TensorFlow, torch) runs threads of its own:
forking then can deadlock, and Python 3.12+ warns ``This process ... is
multi-threaded, use of fork() may lead to deadlocks in the child`` on every
worker (JAX warns too). ``forkserver`` forks workers from a server process
that runs no Python thread instead; it is Python 3.14's default on Linux,
and questlearn's dataset pickles for it (it holds paths and the manifest
only).

:func:`choose_start_method` makes ``forkserver`` the process default when
nobody chose one and the platform default is ``fork``. A start method the
program chose itself (``multiprocessing.set_start_method``) is kept.

Keras starts a new pool for every epoch, and another for every validation
pass, and each worker must import Keras and its backend to unpickle the
dataset and Keras's task function: about 8 CPU-seconds with TensorFlow.
With ``forkserver``, :func:`preload_worker_imports` has the server import
them once (``multiprocessing.set_forkserver_preload``, with
:mod:`questlearn.data._worker_imports`), so every worker of every later pool
starts with them loaded. The server imports modules only: it runs no Python
thread and no jemalloc thread (BLAS's idle pools are its only other threads),
and a worker runs no backend code (it reads shards into numpy arrays).
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.forkserver

SAFE_START_METHODS = ("forkserver", "spawn")
#: What a data worker imports, loaded once by the forkserver: Keras, its backend and the readers (no backend started).
WORKER_IMPORTS = "questlearn.data._worker_imports"


def choose_start_method() -> str:
    """Set a thread-safe default start method for worker pools, if none is chosen.

    With ``forkserver`` (chosen here or by the program), the server preloads
    the workers' imports (:func:`preload_worker_imports`).

    Returns
    -------
    str
        The start method worker pools of this process will use.
    """
    method = _default_start_method()
    if method == "forkserver":
        preload_worker_imports()
    return method


def _default_start_method() -> str:
    current = multiprocessing.get_start_method(allow_none=True)
    if current is not None:
        return current
    available = multiprocessing.get_all_start_methods()  # the first is the platform default
    if available[0] != "fork":
        return available[0]
    method = next(m for m in SAFE_START_METHODS if m in available)
    try:
        multiprocessing.set_start_method(method)
    except RuntimeError:  # another thread fixed the context just now: keep its choice
        return multiprocessing.get_start_method()
    return method


def preload_worker_imports() -> None:
    """Add :data:`WORKER_IMPORTS` to the modules the forkserver imports as it starts.

    Keeps the modules already listed (``__main__`` by default, so that classes
    defined in a script still unpickle), also on a forkserver the program
    chose itself. Has no effect on a server that is already running. If the
    preload fails there, each worker imports what it needs itself, as without it.
    """
    add_forkserver_preload(WORKER_IMPORTS)


def add_forkserver_preload(module: str) -> None:
    """Add ``module`` to the modules the forkserver imports as it starts, keeping those already listed.

    ``__main__`` is listed by default. One forkserver serves every pool of a
    process and keeps the modules it started with: a server already running
    is not changed.
    """
    listed = getattr(multiprocessing.forkserver._forkserver, "_preload_modules", None)
    listed = ["__main__"] if listed is None else list(listed)
    if module not in listed:
        multiprocessing.set_forkserver_preload([*listed, module])
