"""Keep the torch backend fast on CPU: no more compute threads than free cores.

Measured (``benchmarks/bench_torch_cpu.py``): with ``KERAS_BACKEND=torch``
and no GPU, an epoch of the quest MLP took 10-25 times longer than on
TensorFlow or JAX. The cause is thread oversubscription. torch runs each
small matrix product of the model on an OpenMP team of one thread per
core, and OpenMP threads spin-wait for each other at the end of every
operation. ``fit`` runs thousands of these tiny operations per epoch, while
the data loader's ``workers`` (and anything else on the machine) want the
same cores: whenever one team thread is descheduled, the others spin until
it runs again, so each operation costs a scheduler time slice instead of
microseconds. TensorFlow's and XLA's thread pools block instead of
spinning and do not suffer from it.

:func:`limit_torch_threads` gives torch ``cores - workers`` compute threads
(at least one), the rule of PyTorch's CPU performance tuning guide (do not
oversubscribe cores between compute and data-loading threads).
"""

from __future__ import annotations

import os

from ..errors import OptionError

ENVIRONMENT = "QUESTLEARN_TORCH_THREADS"


def usable_cores() -> int:
    """CPU cores this process may run on (its affinity mask, not the whole machine)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def limit_torch_threads(workers: int) -> str | None:
    """Cap torch's intra-op threads when training on the torch backend without a GPU.

    Parameters
    ----------
    workers : int
        Data loading workers that will run alongside the model.

    Returns
    -------
    str or None
        What was done, in words (for the training log), or ``None`` when
        the backend is not torch or a GPU is used.

    Notes
    -----
    ``QUESTLEARN_TORCH_THREADS=N`` sets the number explicitly
    (``0``: keep torch's own default); an ``OMP_NUM_THREADS`` set by the
    user is respected as well. The setting is global to the process.
    """
    import keras

    if keras.backend.backend() != "torch":
        return None
    import torch

    if torch.cuda.is_available():
        return None
    chosen = os.environ.get(ENVIRONMENT, "").strip()
    if chosen:
        try:
            threads = int(chosen)
        except ValueError:
            raise OptionError(f"{ENVIRONMENT} must be a whole number of threads (0: torch's default), got {chosen!r}") from None
        if threads < 0:
            raise OptionError(f"{ENVIRONMENT} must be 0 or more, got {threads}")
        if threads == 0:
            return f"torch on CPU: {torch.get_num_threads()} compute threads (torch's default, as {ENVIRONMENT}=0 asks)"
        reason = f"as {ENVIRONMENT} asks"
    elif os.environ.get("OMP_NUM_THREADS"):
        return f"torch on CPU: {torch.get_num_threads()} compute threads (OMP_NUM_THREADS is set)"
    else:
        cores = usable_cores()
        threads = max(1, cores - int(workers))
        reason = f"{cores} cores - {workers} loading workers; set {ENVIRONMENT} to change"
    torch.set_num_threads(threads)
    return f"torch on CPU: {threads} compute thread{'s' if threads != 1 else ''} ({reason})"
