"""What every data worker process needs, imported once by the forkserver that forks them.

:func:`questlearn.data._start_method.preload_worker_imports` names this
module in ``multiprocessing.set_forkserver_preload``. Without it, each
worker of each pool (Keras starts new ones every epoch and every validation
pass) imports Keras and its backend to unpickle its task: about 8
CPU-seconds with TensorFlow.

The forkserver forks every worker, so it must run no thread of its own
(Python 3.12+ warns on a fork from a threaded process, and a thread holding
a lock at the fork deadlocks the child). So this module imports only:

- Keras and its backend, its start-up log filtered, without starting the
  backend (no device probe, no computation: TensorFlow starts its thread
  pools then, not at import);
- the readers, with pyarrow's allocator told not to start the jemalloc
  background thread that purges freed memory (it purges as memory is freed
  instead). The setting is made in the forkserver process alone, before
  pyarrow is first imported there, and its workers inherit it.

The server's only other threads are the idle pools of the BLAS libraries
numpy and scipy load, which hold no lock between calls and register fork
handlers; with them, Python 3.12 did not warn here, with jemalloc's it did
(tested with the jax backend where a Python 3.12 with questlearn is found).

The import takes the server a few CPU-seconds; a parent killed meanwhile is
outlived by that long (the server then reads that its parent is gone, and
ends), and the server holds Keras's memory for as long as it runs.
"""

import os

os.environ.setdefault("JE_ARROW_MALLOC_CONF", "background_thread:false")

try:
    from .._lazy import deferred_modules
    from .._startup_log import filtered_stderr

    with filtered_stderr(), deferred_modules():  # Keras's scikit-learn wrappers, image plots: on first use
        import keras  # noqa: F401
        from keras.src.trainers.data_adapters import py_dataset_adapter  # noqa: F401  (the workers' task functions)

    from . import _batches, _shard_cache  # noqa: F401  (numpy and pyarrow, and the shard readers)
except Exception:  # noqa: BLE001  the forkserver skips only an ImportError; any other would end it, and every pool
    pass           # with it: without the preload, each worker imports what it needs itself, as before
