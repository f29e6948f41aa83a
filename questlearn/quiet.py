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

Keras's scikit-learn wrappers (``keras.wrappers``) are imported on first use
(:func:`questlearn._lazy.deferred_modules`): where scikit-learn is installed,
``import keras`` would otherwise import it and SciPy in every process.

Every questlearn module that needs Keras imports it from here
(``from .quiet import keras``). In a notebook, import this module before
Keras::

    import questlearn.quiet  # noqa: F401  (first: filters TensorFlow's start-up log)
    import keras
"""

from __future__ import annotations

import contextlib

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
        with filtered_stderr():
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


def _import_keras():
    with filtered_stderr(), deferred_modules():  # Keras's scikit-learn wrappers: imported on first use
        import keras

        if keras.backend.backend() == "tensorflow":
            import_tensorflow()
    return keras


keras = _import_keras()

__all__ = ["keras", "filtered_stderr", "import_tensorflow", "is_noise"]
