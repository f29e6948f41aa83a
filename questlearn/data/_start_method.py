"""How data worker processes start: never by ``fork`` from a threaded process.

Keras 3 creates its ``PyDataset`` worker pools with ``multiprocessing.Pool``
(``keras/src/trainers/data_adapters/py_dataset_adapter.py``,
``get_pool_class``), that is with the process's *default* start method. On
Linux before Python 3.14 that default is ``fork``, and by the time a pool
starts, the Keras backend (JAX, TensorFlow, torch) runs threads of its own:
forking then can deadlock, and Python 3.12+ warns ``This process ... is
multi-threaded, use of fork() may lead to deadlocks in the child`` on every
worker (JAX warns too). ``forkserver`` forks workers from a small
single-threaded server process instead; it is Python 3.14's default on
Linux, and questlearn's dataset pickles for it (it holds paths and the
manifest only).

:func:`choose_start_method` makes ``forkserver`` the process default when
nobody chose one and the platform default is ``fork``. A start method the
program chose itself (``multiprocessing.set_start_method``) is kept.
"""

from __future__ import annotations

import multiprocessing

SAFE_START_METHODS = ("forkserver", "spawn")


def choose_start_method() -> str:
    """Set a thread-safe default start method for worker pools, if none is chosen.

    Returns
    -------
    str
        The start method worker pools of this process will use.
    """
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
