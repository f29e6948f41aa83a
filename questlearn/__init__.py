"""questlearn: train Keras models on tabular CSV logs far larger than memory.

Modules (import what you need; only ``dataset``, ``model``, ``train``,
``devices``, ``export``, ``predict`` and ``evaluate`` import Keras, always
through :mod:`questlearn.quiet`, which keeps TensorFlow's start-up log out
of the output; in a notebook, ``import questlearn.quiet`` before Keras):

* :mod:`questlearn.csvscan` — strict streaming CSV record scanner
* :mod:`questlearn.split` — split a CSV into resumable train/validate shards
* :mod:`questlearn.manifest` — the manifest of a finished split
* :mod:`questlearn.synth` — synthetic quest logs of any size
* :mod:`questlearn.batches` — batch plans and shard reading (keras-free)
* :mod:`questlearn.dataset` — ``QuestSequence``, the Keras ``PyDataset``
* :mod:`questlearn.supervision` — keeps worker failures from hanging ``fit``
* :mod:`questlearn.model`, :mod:`questlearn.train`, :mod:`questlearn.plots`
* :mod:`questlearn.export` — ``inference.keras``: raw columns in, probabilities out
* :mod:`questlearn.predict`, :mod:`questlearn.evaluate` — score and measure new rows
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("questlearn")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
    __version__ = "0+unknown"
