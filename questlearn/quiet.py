"""Import Keras without TensorFlow's C++ start-up log; keep genuine errors.

TensorFlow 2.21 writes its start-up lines (oneDNN notice, "Could not find
cuda drivers", CPU feature guard, and ``E0000 ... failed call to cuInit``
on a machine without a GPU) straight to file descriptor 2, partly before
absl logging is initialised, so ``TF_CPP_MIN_LOG_LEVEL`` alone does not
hide them. This module therefore:

1. sets ``TF_CPP_MIN_LOG_LEVEL=2`` (unless the user set it) so that C++
   INFO and WARNING lines logged *after* start-up are dropped by TensorFlow
   itself, while ERROR lines still show;
2. imports Keras (and, with the TensorFlow backend, probes the devices,
   which is when CUDA prints its ``cuInit`` error) with file descriptor 2
   redirected to a temporary file;
3. writes back to ``sys.stderr`` every captured line that is not known
   start-up noise, so a real error during import stays visible.

Keras's scikit-learn wrappers (``keras.wrappers``) and image plots
(``keras.visualization``) are imported on first use
(:func:`questlearn._lazy.deferred_modules`): ``import keras`` would otherwise
import scikit-learn and SciPy (where scikit-learn is installed) and
matplotlib's pyplot in every process. And
on the TensorFlow backend, TensorFlow is imported with JAX hidden
(:func:`_jax_hidden`): where JAX is installed, TensorFlow's TFLite converter
would otherwise import it (for ``experimental_from_jax``, which questlearn
never uses) in every process that loads TensorFlow, about half a second of CPU.

Every questlearn module that needs Keras imports it from here
(``from .quiet import keras``). In a notebook, import this module before
Keras::

    import questlearn.quiet  # noqa: F401  (first: filters TensorFlow's start-up log)
    import keras
"""

from __future__ import annotations

import contextlib
import json
import os
import sys

# sets TF_CPP_MIN_LOG_LEVEL=2 unless the user set it
from ._lazy import deferred_modules
from ._startup_log import NOISE, filtered_stderr, is_noise  # noqa: F401  (NOISE: part of this module's interface)


def import_tensorflow():
    """Import TensorFlow (raises ImportError when absent) with its start-up log filtered.

    Also for other Keras backends, where only some layers (``StringLookup``)
    pull TensorFlow in later.
    """
    global _tensorflow
    if _tensorflow is None:
        with filtered_stderr(), _jax_hidden():
            import tensorflow as tf

            # Device discovery is when CUDA prints its probe errors; do it now, filtered.
            with contextlib.suppress(Exception):
                tf.config.list_physical_devices()
            # On a CPU without AVX-512, oneDNN logs once per process (as an E-line) that it cannot
            # handle booleans, when the first boolean op runs: e.g. in fit, in the AUC of a
            # multi-class model. Run one here, so that the notice falls in the filter.
            with contextlib.suppress(Exception):
                tf.transpose(tf.constant([[True]]))
        _tensorflow = tf
    return _tensorflow


_tensorflow = None


def configured_backend() -> str:
    """The backend ``import keras`` will load, found as Keras finds it: ``KERAS_BACKEND``, else the
    ``"backend"`` of ``keras.json`` in ``KERAS_HOME`` (default ``~/.keras``, or ``/tmp/.keras`` where
    the home folder is not writable), else ``"tensorflow"``."""
    if os.environ.get("KERAS_BACKEND"):
        return os.environ["KERAS_BACKEND"]
    home = os.environ.get("KERAS_HOME")
    if home is None:
        base = os.path.expanduser("~")
        home = os.path.join(base if os.access(base, os.W_OK) else "/tmp", ".keras")
    try:
        with open(os.path.join(os.path.expanduser(home), "keras.json"), encoding="utf-8") as handle:
            return str(json.load(handle).get("backend", "tensorflow"))
    except (OSError, ValueError, AttributeError):
        return "tensorflow"


@contextlib.contextmanager
def _jax_hidden():
    """Within the block, ``import jax`` raises ImportError when Keras's backend is TensorFlow and neither JAX
    nor TensorFlow is imported yet (Keras's JAX and numpy backends import JAX themselves).

    TensorFlow's TFLite converter imports JAX, where it is installed, when TensorFlow is imported (and goes
    without it on ImportError). Afterwards JAX imports as usual.
    """
    hide = "jax" not in sys.modules and "tensorflow" not in sys.modules and configured_backend() == "tensorflow"
    if hide:
        sys.modules["jax"] = None  # the import system's mark for a module that cannot be imported
    try:
        yield
    finally:
        if hide and sys.modules.get("jax", 0) is None:
            del sys.modules["jax"]


def _import_keras():
    # Keras's scikit-learn wrappers and image plots: imported on first use; TensorFlow without JAX
    with filtered_stderr(), deferred_modules(), _jax_hidden():
        import keras

        if keras.backend.backend() == "tensorflow":
            import_tensorflow()
    return keras


keras = _import_keras()

__all__ = ["keras", "configured_backend", "filtered_stderr", "import_tensorflow", "is_noise"]
