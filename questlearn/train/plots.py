"""Plot a training history saved by :func:`questlearn.train._fit.train`.

Whatever the model recorded is drawn, one panel per metric: the loss first,
then the other metrics in the order of the history (``accuracy`` and ``auc``
for a classifier, ``mae`` and ``rmse`` for a regression model, any extra
metric a run added), each with its ``train`` and ``validation`` lines, then
the input throughput. Reading a history needs only the standard library
(``json``, ``csv``); drawing needs matplotlib, never Keras.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

from ..errors import ModelFileError

# Per-epoch series the panels never show: the epoch number is the x axis, and an
# epoch's seconds are what rows per second already shows, per row.
NOT_PLOTTED = ("epoch", "epoch_seconds")
THROUGHPUT = "rows_per_second"
LABELS = {"loss": "loss", THROUGHPUT: "rows per second", "mae": "mean absolute error",
          "rmse": "root mean squared error"}
PANELS_PER_ROW = 3


def read_history_csv(path) -> dict:
    """``history.csv`` written by ``CSVLogger`` as ``{column: [values...]}``."""
    with open(path, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    columns = rows[0].keys() if rows else []
    return {column: [int(r[column]) if column == "epoch" else float(r[column]) for r in rows] for column in columns}


def load_history(path) -> dict:
    """Read ``history.json`` (or a ``history.csv`` from ``CSVLogger``)."""
    path = Path(path)
    if path.suffix == ".csv":
        return read_history_csv(path)
    try:
        with open(path, encoding="utf-8") as handle:
            history = json.load(handle)
    except ValueError as error:  # not UTF-8, or not JSON
        raise ModelFileError(f"{path} is not valid JSON ({error}): it was damaged or edited; train the model "
                             "again to write it anew") from None
    if not isinstance(history, dict):
        raise ModelFileError(f"{path} holds a JSON {type(history).__name__}, not the object of a training history")
    return history


def plotted_metrics(history: dict) -> list:
    """The metrics :func:`plot_history` draws, one panel each, in order.

    Every per-epoch series of numbers (as long as ``loss``) is a metric,
    ``val_NAME`` belonging to ``NAME`` (a ``val_`` series without its
    training one is drawn alone); ``loss`` comes first, the throughput
    last, the rest in the history's order; :data:`NOT_PLOTTED` is left out.
    """
    epochs = len(history.get("loss") or [])
    names = []
    for key, values in history.items():
        if not _series(values, epochs) or key in NOT_PLOTTED:
            continue
        name = key[len("val_"):] if key.startswith("val_") else key
        if name not in names:
            names.append(name)
    return sorted(names, key=lambda name: (name != "loss", name == THROUGHPUT))


def plot_history(history, title: str | None = None):
    """One panel per recorded metric per epoch, train vs validation.

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
        The panels of :func:`plotted_metrics` (``figure.metrics`` names
        them, in the order of ``figure.axes``): each with ``train`` and
        ``validation`` lines where recorded, a classifier's accuracy with
        the majority baseline, a regression model's ``mae`` and ``rmse``
        with the predict-the-mean baseline, the throughput from 0.
    """
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    if not isinstance(history, dict):
        history = load_history(history)
    if "loss" not in history or not history["loss"]:
        raise ModelFileError("the history has no 'loss' values; is it a questlearn/Keras training history?")
    epochs = [e + 1 for e in history.get("epoch", range(len(history["loss"])))]
    metrics = plotted_metrics(history)
    columns = min(len(metrics), PANELS_PER_ROW)
    rows = math.ceil(len(metrics) / columns)
    figure, axes = plt.subplots(rows, columns, figsize=(4.2 * columns, 3.4 * rows), layout="constrained", squeeze=False)
    panels = axes.ravel().tolist()
    for unused in panels[len(metrics):]:
        unused.remove()
    for axis, key in zip(panels, metrics):
        if key in history:
            axis.plot(epochs, history[key], marker="o", label="train")
        if f"val_{key}" in history:
            axis.plot(epochs, history[f"val_{key}"], marker="o", label="validation")
        for value, label in _baselines(history, key):
            axis.axhline(value, color="grey", linestyle="--", label=label)
        if key == THROUGHPUT:
            axis.set_ylim(bottom=0)  # from 0, so a small dip does not look like a collapse
        axis.set_xlabel("epoch")
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
        axis.set_ylabel(LABELS.get(key, key.replace("_", " ")))
        axis.grid(alpha=0.3)
        axis.legend()
    if title:
        figure.suptitle(title)
    figure.metrics = metrics
    return figure


def _series(values, epochs: int) -> bool:
    """Whether ``values`` is one number per epoch."""
    return (isinstance(values, list) and len(values) == epochs and epochs > 0
            and all(v is None or (isinstance(v, (int, float)) and not isinstance(v, bool)) for v in values))


def _baselines(history: dict, key: str) -> list:
    """``[(value, label)]`` reference lines of a panel: what a model that learned nothing scores."""
    if key == "accuracy" and history.get("majority_baseline"):
        return [(history["majority_baseline"], "majority baseline")]
    mean_baseline = history.get("mean_baseline")
    if isinstance(mean_baseline, dict) and isinstance(mean_baseline.get(key), (int, float)):
        return [(mean_baseline[key], "predict-the-mean baseline")]
    return []
