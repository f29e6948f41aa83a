"""ROC AUC of streamed ``(probabilities, labels)`` blocks: exact, in bounded memory.

The AUC of a score is the Mann–Whitney U statistic over (positive, negative)
row pairs: the share of pairs where the positive row scores higher, a tie
counting one half. Rows are grouped by score (positives and negatives per
distinct value, in ascending order), so

    AUC = sum over values v of positives(v) * (negatives below v + negatives(v) / 2) / (P * N).

Exact while the scored rows fit ``exact_cells`` (float32 probabilities plus a
label per row: by default 2**25 cells, 128 MiB, that is 16 million rows of a
binary model): each score is kept and grouped by its exact value. Beyond that
the rows are counted, ``exact_cells`` at a time, into a histogram per class
keyed by the float32 bit pattern of the probability (bins of equal *relative*
width, 2**-13 by default, so scores crowded near 0 stay apart; memory:
``histogram_bytes``); rows that share a bin count as tied, so the AUC is off
by at most half the share of (positive, negative) pairs that share a bin.
That bound is computed and reported (``max_error``), 0 when exact; on
softmax outputs it is of the order of 1e-5 (the AUC itself is closer still).
"""

from __future__ import annotations

import numpy as np

EXACT_CELLS = 2 ** 25
HISTOGRAM_BYTES = 2 ** 28
_ONE = int(np.float32(1.0).view(np.int32))  # the largest bit pattern of a probability in [0, 1]
_FINEST_SHIFT, _COARSEST_SHIFT = 10, 20      # 2**20 bins of relative width 2**-13 ... 2**10 bins


def auc_from_counts(positives: np.ndarray, negatives: np.ndarray) -> tuple[float, float]:
    """``(auc, max_error)`` from positives and negatives per score group, groups in ascending score order.

    Rows of a group count as tied; ``max_error`` is half the share of pairs inside a group (the error
    when groups are bins of several values; 0 is passed on by the caller when groups are exact values).
    ``auc`` is NaN when there are no positives or no negatives.
    """
    positives = np.asarray(positives, np.float64)
    negatives = np.asarray(negatives, np.float64)
    pairs = positives.sum() * negatives.sum()
    if not pairs:
        return float("nan"), 0.0
    below = np.cumsum(negatives) - negatives
    inside = float(positives @ negatives)
    return float((positives @ below + 0.5 * inside) / pairs), float(0.5 * inside / pairs)


def exact_auc(scores: np.ndarray, positive: np.ndarray) -> float:
    """The exact ROC AUC of ``scores`` for the rows where ``positive`` is true (ties count one half)."""
    values, group = np.unique(np.asarray(scores), return_inverse=True)
    group = group.reshape(-1)
    positives = np.bincount(group[np.asarray(positive, bool)], minlength=len(values))
    return auc_from_counts(positives, np.bincount(group, minlength=len(values)) - positives)[0]


class StreamingAUC:
    """One-vs-rest ROC AUC per class over streamed blocks.

    Two classes: one score, the probability of class 1 (positives: label 1).
    More: the probability of each class ``c`` (positives: label ``c``).

    Parameters
    ----------
    classes : int
        Number of classes (the model's softmax width).
    exact_cells : int
        Probabilities and labels kept exactly before switching to histograms.
    histogram_bytes : int
        Memory for the histograms of all classes (it sets the bin width; never
        wider than 2**-3 relative, however many classes).
    """

    def __init__(self, classes: int, exact_cells: int = EXACT_CELLS, histogram_bytes: int = HISTOGRAM_BYTES):
        self.classes, self.exact_cells = classes, exact_cells
        self.columns = 1 if classes == 2 else classes
        bins = max(histogram_bytes // (16 * self.columns), 1)
        self.shift = next((s for s in range(_FINEST_SHIFT, _COARSEST_SHIFT) if (_ONE >> s) < bins), _COARSEST_SHIFT)
        self.bins = (_ONE >> self.shift) + 1
        self.kept: list[tuple[np.ndarray, np.ndarray]] = []
        self.kept_cells = 0
        self.totals = self.positives = None  # histograms, once the kept rows outgrow exact_cells
        self.not_a_number = np.zeros(self.columns, bool)

    @property
    def exact(self) -> bool:
        """Whether every row so far is kept (no histogram yet)."""
        return self.totals is None

    def update(self, probabilities: np.ndarray, labels: np.ndarray) -> None:
        """Add a block: ``probabilities`` (rows, classes), ``labels`` class indices (rows,)."""
        scores = np.asarray(probabilities, np.float32).reshape(len(labels), -1)
        scores = scores[:, 1:2].copy() if self.classes == 2 else scores.copy()
        self.not_a_number |= np.isnan(scores).any(axis=0)
        self.kept.append((scores, np.asarray(labels).astype(np.int32).reshape(-1)))
        self.kept_cells += scores.size + len(labels)
        if self.kept_cells > self.exact_cells:  # from now on histograms, filled exact_cells at a time
            self._fold()

    def _fold(self) -> None:
        """Count the kept rows into the histograms (made at the first call) and let them go."""
        if self.exact:
            self.totals = np.zeros(self.columns * self.bins, np.int64)
            self.positives = np.zeros(self.columns * self.bins, np.int64)
        for kept in self.kept:
            self._count(*kept)
        self.kept, self.kept_cells = [], 0

    def _count(self, scores: np.ndarray, labels: np.ndarray) -> None:
        """Histogram bins: the float32 bit pattern of the probability (clipped to [0, 1]), shifted."""
        keys = np.nan_to_num(np.clip(scores, 0, 1), nan=0.0).view(np.int32)
        keys = (np.maximum(keys, 0) >> self.shift) + np.arange(self.columns, dtype=np.int64) * self.bins
        self.totals += np.bincount(keys.reshape(-1), minlength=len(self.totals))
        if self.classes == 2:
            positive = keys[labels == 1, 0]
        else:
            positive = keys[np.arange(len(labels)), labels]
        self.positives += np.bincount(positive, minlength=len(self.positives))

    def result(self) -> list[tuple[float, float]]:
        """``(auc, max_error)`` per score column (one for two classes, else one per class).

        ``auc`` is NaN for a class with no positive or no negative row, or with a NaN probability.
        """
        if not self.exact:
            self._fold()
        out = []
        labels = np.concatenate([k[1] for k in self.kept] + [np.zeros(0, np.int32)])
        for column in range(self.columns):
            label = 1 if self.classes == 2 else column
            if self.exact:
                scores = np.concatenate([k[0][:, column] for k in self.kept] + [np.zeros(0, np.float32)])
                auc, error = exact_auc(scores, labels == label), 0.0
            else:
                bins = slice(column * self.bins, (column + 1) * self.bins)
                positives = self.positives[bins]
                auc, error = auc_from_counts(positives, self.totals[bins] - positives)
            out.append((float("nan"), 0.0) if self.not_a_number[column] else (auc, error))
        return out
