"""What a training run returns, and the baselines it reports its model against.

:class:`TrainingResult` holds the trained model and its history; every
``best_*`` figure it reports belongs to the epoch whose weights the model
holds (:func:`restored_epoch`). :func:`class_counts` and
:func:`mean_baseline` give the majority-class and predict-the-mean
baselines from the manifest and the validation shards, in bounded memory.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..data.dataset import QuestSequence
from ..quiet import keras


def restored_epoch(history: dict) -> int | None:
    """Index into ``history`` of the epoch whose weights the trained model holds: the first lowest ``val_loss``.

    ``EarlyStopping(restore_best_weights=True)`` restores that epoch's
    weights when training ends (a later epoch replaces the best only when
    strictly lower), so every metric reported as the best is that epoch's.
    ``None`` when no epoch has a validation loss.
    """
    losses = np.asarray([np.nan if v is None else v for v in history.get("val_loss", [])], np.float64)
    if not len(losses) or np.isnan(losses).all():
        return None
    return int(np.nanargmin(losses))


@dataclass
class TrainingResult:
    """What :func:`train` did."""

    model: keras.Model
    history: dict
    model_dir: Path
    device: str
    majority_baseline: float
    extra: dict = field(default_factory=dict)
    stored_at: str | None = None  # the model folder's URL when it is kept in a store (model_dir: its local copy)

    @property
    def best_epoch(self) -> int | None:
        """Index into the history of the epoch whose weights the model holds (:func:`restored_epoch`)."""
        return restored_epoch(self.history)

    def best(self, metric: str) -> float:
        """``metric`` at :attr:`best_epoch` (NaN when there is none)."""
        values, epoch = self.history.get(metric, []), self.best_epoch
        return float(values[epoch]) if epoch is not None and epoch < len(values) else float("nan")

    @property
    def best_val_accuracy(self) -> float:
        """The validation accuracy of the restored epoch (:attr:`best_epoch`)."""
        return self.best("val_accuracy")

    def summary(self) -> dict:
        """What training did, in a few numbers; the ``best_*`` ones all belong to the restored epoch.

        ``best_epoch`` numbers it from 1, as Keras's progress lines do.
        """
        epoch = self.best_epoch
        restored = {"best_epoch": None if epoch is None else int(self.history.get("epoch", range(epoch + 1))[epoch]) + 1,
                    "best_val_loss": round(self.best("val_loss"), 6)}
        if "mean_baseline" in self.extra:
            quality = {"best_val_rmse": round(self.best("val_rmse"), 6),
                       "best_val_mae": round(self.best("val_mae"), 6),
                       "mean_baseline_rmse": round(self.extra["mean_baseline"]["rmse"], 6),
                       "mean_baseline_mae": round(self.extra["mean_baseline"]["mae"], 6)}
        else:
            quality = {"best_val_accuracy": round(self.best_val_accuracy, 4),
                       "majority_baseline": round(self.majority_baseline, 4)}
        return {
            "device": self.device,
            "epochs": len(self.history.get("epoch", [])),
            **restored,
            **quality,
            "rows_per_second_last_epoch": round(self.history["rows_per_second"][-1]) if self.history.get("rows_per_second") else None,
            "model": f"{self.stored_at}/model.keras" if self.stored_at else str(self.model_dir / "model.keras"),
            "history": f"{self.stored_at}/history.json" if self.stored_at else str(self.model_dir / "history.json"),
        }


def class_counts(dataset: QuestSequence) -> np.ndarray:
    """Exact count of each class in a dataset's subset, from the manifest (no data read)."""
    classes = dataset.manifest["schema"]["classes"]
    counts = np.zeros(len(classes), dtype=np.int64)
    for shard in dataset.reader.shards:
        for value, count in shard["label_counts"].items():
            counts[classes.index(value)] += count
    return counts


def mean_baseline(train_data: QuestSequence, validation_data: QuestSequence) -> dict:
    """MAE and RMSE on validation of always predicting the training target's mean.

    Reads only the validation shards, one at a time (bounded memory).
    """
    target_mean = train_data.manifest["subsets"]["train"]["label_stats"]["mean"]
    reader = validation_data.reader
    absolute = squared = 0.0
    rows = 0
    for shard in range(len(reader.shards)):
        targets = reader.targets(shard)
        errors = targets.astype(np.float64) - target_mean
        absolute += float(np.abs(errors).sum())
        squared += float((errors * errors).sum())
        rows += len(targets)
    return {"mean": target_mean, "mae": absolute / max(rows, 1), "rmse": math.sqrt(squared / max(rows, 1))}
