"""Which accelerator the active Keras backend will use, in words."""

from __future__ import annotations

from ..quiet import keras


def describe_device() -> str:
    """Return e.g. ``"GPU: NVIDIA H100 80GB HBM3 (torch)"`` or ``"CPU (tensorflow; no GPU found)"``."""
    backend = keras.backend.backend()
    try:
        if backend == "tensorflow":
            import tensorflow as tf

            gpus = tf.config.list_physical_devices("GPU")
            if gpus:
                details = tf.config.experimental.get_device_details(gpus[0])
                return f"GPU: {details.get('device_name', gpus[0].name)} ({backend})"
        elif backend == "torch":
            import torch

            if torch.cuda.is_available():
                return f"GPU: {torch.cuda.get_device_name(0)} ({backend})"
        elif backend == "jax":
            import jax

            device = jax.devices()[0]
            if device.platform != "cpu":
                return f"{device.platform.upper()}: {device.device_kind} ({backend})"
    except Exception as error:  # noqa: BLE001 - describing must never stop training
        return f"CPU ({backend}; GPU check failed: {error})"
    return f"CPU ({backend}; no GPU found)"
