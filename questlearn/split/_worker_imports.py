"""What a process of ``split --parallel`` needs, imported once by the forkserver that forks them.

:func:`questlearn.split._parallel.part_process_context` names this module in
``multiprocessing.set_forkserver_preload``, so each part's process starts
with numpy, pyarrow and the splitter loaded (a fork), instead of importing
them in a fresh interpreter as a ``spawn`` child does (about 1.5 CPU-seconds
each).

The forkserver forks every worker, so it must run no thread of its own: as
in :mod:`questlearn.data._worker_imports`, pyarrow's allocator is told not to
start the jemalloc background thread, in the server alone, before pyarrow is
first imported there; its children inherit the setting.
"""

import os

os.environ.setdefault("JE_ARROW_MALLOC_CONF", "background_thread:false")

try:
    from . import _parallel  # noqa: F401  (the part task, the splitter, numpy and pyarrow)
except Exception:  # noqa: BLE001  any error here would end the server and the pool with it: without the
    pass           # preload, each process imports what it needs itself
