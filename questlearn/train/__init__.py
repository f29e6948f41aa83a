"""Train the model on a split: the model, ``fit`` with the callbacks long runs need, resume, several
processes.
"""

from .._lazy import lazy_exports

__all__ = ["train", "TrainingResult", "build_model", "describe_device", "plot_history", "load_history"]

__getattr__, __dir__ = lazy_exports(__name__, {
    "train": "._fit",
    "TrainingResult": "._result",
    "build_model": ".model",
    "describe_device": ".devices",
    "plot_history": ".plots",
    "load_history": ".plots",
})
