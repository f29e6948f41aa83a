"""Use a trained model: the exported inference model, ``predict`` and ``evaluate``.
"""

from .._lazy import lazy_exports

__all__ = ["predict_file", "predict_frame", "inference_inputs", "Predictor", "evaluate", "build_inference_model",
           "export_models", "export_saved_model"]

__getattr__, __dir__ = lazy_exports(__name__, {
    "predict_file": ".predict",
    "predict_frame": ".predict",
    "inference_inputs": ".predict",
    "Predictor": ".predict",
    "evaluate": ".evaluate",
    "build_inference_model": ".export",
    "export_models": ".export",
    "export_saved_model": ".export",
})
