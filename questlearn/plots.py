"""Plot a training history saved by :func:`questlearn.train.train`."""

from __future__ import annotations

import json
from pathlib import Path


def load_history(path) -> dict:
    """Read ``history.json`` (or a ``history.csv`` from ``CSVLogger``)."""
    path = Path(path)
    if path.suffix == ".csv":
        from .train import read_history_csv

        return read_history_csv(path)
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def plot_history(history, title: str | None = None):
    """Loss, accuracy and input throughput per epoch, train vs validation.

    Parameters
    ----------
    history : dict or str or Path
        ``{"epoch": [...], "loss": [...], "val_loss": [...], ...}`` or a path
        to ``history.json`` / ``history.csv``.
    title : str, optional
        Figure title.

    Returns
    -------
    matplotlib.figure.Figure
        Three panels: loss, accuracy (each with ``train`` and ``validation``
        lines) and rows per second (when recorded).
    """
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    if not isinstance(history, dict):
        history = load_history(history)
    if "loss" not in history or not history["loss"]:
        raise ValueError("the history has no 'loss' values; is it a questlearn/Keras training history?")
    epochs = [e + 1 for e in history.get("epoch", range(len(history["loss"])))]
    panels = [("loss", "loss"), ("accuracy", "accuracy")]
    if history.get("rows_per_second"):
        panels.append(("rows_per_second", "rows per second"))
    figure, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.4), layout="constrained")
    for axis, (key, label) in zip(axes, panels):
        axis.plot(epochs, history[key], marker="o", label="train")
        if f"val_{key}" in history:
            axis.plot(epochs, history[f"val_{key}"], marker="o", label="validation")
        if key == "accuracy" and history.get("majority_baseline"):
            axis.axhline(history["majority_baseline"], color="grey", linestyle="--", label="majority baseline")
        if key == "rows_per_second":
            axis.set_ylim(bottom=0)  # from 0, so a small dip does not look like a collapse
        axis.set_xlabel("epoch")
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
        axis.set_ylabel(label)
        axis.grid(alpha=0.3)
        axis.legend()
    if title:
        figure.suptitle(title)
    return figure
