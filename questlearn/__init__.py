"""questlearn: train Keras models on tabular logs far larger than memory.

The packages, in the order the data flows through them:

* :mod:`questlearn.io` — which files a source is, decompression, strict CSV scanning, typed chunks
* :mod:`questlearn.schema` — column kinds and the model-ready encoding, from a sample
* :mod:`questlearn.split` — the split into train/validate shards, and ``inspect``
* :mod:`questlearn.manifest` — ``manifest.json``: load, validate, verify the shards
* :mod:`questlearn.data` — batches from shards: ``QuestSequence``, a Keras ``PyDataset``
* :mod:`questlearn.train` — the model, ``train``, resume, several processes, plots
* :mod:`questlearn.serve` — the inference model, ``predict`` and ``evaluate``

and :mod:`questlearn.cli` (the ``questlearn`` command), :mod:`questlearn.synth`
(synthetic quest logs), :mod:`questlearn.errors` and :mod:`questlearn.quiet`
(Keras without TensorFlow's start-up log; in a notebook, ``import
questlearn.quiet`` before Keras).

The main names are importable from here and load on first use, so
``import questlearn`` imports neither Keras nor pandas::

    from questlearn import split_csv, QuestSequence, build_model
"""

from importlib.metadata import PackageNotFoundError, version

from ._lazy import lazy_exports

try:
    __version__ = version("questlearn")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
    __version__ = "0+unknown"

__all__ = ["split_csv", "SplitParameters", "inspect_source", "load_manifest", "QuestSequence", "BatchLoadError",
           "build_model", "plot_history", "predict_file", "predict_frame", "inference_inputs", "evaluate",
           "write_quest_log",
           "CsvFormatError", "SchemaError", "__version__"]

__getattr__, __dir__ = lazy_exports(__name__, {
    "split_csv": ".split", "SplitParameters": ".split", "inspect_source": ".split",
    "load_manifest": ".manifest",
    "QuestSequence": ".data", "BatchLoadError": ".data",
    "build_model": ".train", "plot_history": ".train",
    "predict_file": ".serve", "predict_frame": ".serve", "inference_inputs": ".serve", "evaluate": ".serve",
    "write_quest_log": ".synth",
    "CsvFormatError": ".io", "SchemaError": ".schema",
})
