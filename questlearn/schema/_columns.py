"""Column schema and streaming statistics for a split.

The schema is fixed once, before the pass, from a sample spread over the
whole source (:mod:`questlearn.schema._sampling`), for the whole data set: numeric
columns stay numeric (a later non-number is an error naming its line),
categorical columns get a vocabulary in order of first appearance (values
past ``max_categories`` share one out-of-vocabulary code), string columns
with more distinct values than that are free text (kept in the CSV shards,
never a feature), and the label's classes are collected over the full pass.
Every decision is reported (:func:`describe_schema`), never silent.
Statistics are merged block by block (Chan et al.'s parallel variance), so
a model can be normalised from the manifest without a second pass.
"""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..errors import OptionError

NUMERIC = "numeric"
CATEGORICAL = "categorical"
IDENTIFIER = "id"
DATETIME = "datetime"
TEXT = "text"
LABEL = "label"
CLASSIFICATION = "classification"
REGRESSION = "regression"
TASKS = (CLASSIFICATION, REGRESSION)

# pandas' default ``na_values`` (pandas.io.parsers), so a file pandas reads
# with its defaults means the same here. The empty field is always missing.
DEFAULT_NA_VALUES = ("", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN",
                     "<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null")
# pyarrow's own float syntax (what a numeric column accepts), as an RE2 pattern.
NUMBER_PATTERN = r"^\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*$|^\s*[+-]?(inf|nan)\s*$"
LIKELY_TOKENS = {"?", "-", "--", ".", "*", "missing", "unknown", "none", "nil", "n.a.", "na.", "#div/0!", "#value!",
                 "empty", "undefined", "not available", "x", "nd", "n/d"}


def missing_tokens(na_values=(), keep_default_na: bool = True) -> list[str]:
    """The strings read as a missing value: pandas' defaults (unless turned
    off) plus ``na_values``; the empty field always."""
    tokens = list(DEFAULT_NA_VALUES) if keep_default_na else [""]
    for token in na_values:
        if not isinstance(token, str):
            raise OptionError(f"missing-value tokens must be strings, got {token!r}")
        if token not in tokens:
            tokens.append(token)
    return tokens


def looks_like_token(value: str) -> bool:
    """Whether a non-number in a numeric column looks like a missing-value
    marker (``?``, ``-``, ``missing``...) rather than a real category."""
    text = value.strip().lower()
    return text in LIKELY_TOKENS or (len(text) <= 12 and not any(c.isdigit() for c in text))


def arrow_types(kinds: dict[str, str], label_numeric: bool = False) -> dict[str, pa.DataType]:
    """The pyarrow type each parsed column is read as (id and text columns are not parsed)."""
    types = {}
    for name, kind in kinds.items():
        if kind == NUMERIC or (kind == LABEL and label_numeric):
            types[name] = pa.float64()
        elif kind in (CATEGORICAL, LABEL, DATETIME):
            types[name] = pa.string()
    return types


def label_strings(column) -> pa.ChunkedArray:
    """Class names of a label column: numbers are named canonically, so ``1``,
    ``1.0`` and `` 1`` are one class ``"1"``."""
    if pa.types.is_floating(column.type) or pa.types.is_integer(column.type):
        return pc.cast(column, pa.string())
    return column


def class_order(values: list[str]) -> list[str]:
    """Sort class labels numerically when they all are numbers, else as text."""
    try:
        return sorted(values, key=float)
    except ValueError:
        return sorted(values)


class Vocabulary:
    """Values of a categorical column in order of first appearance, with counts.

    Parameters
    ----------
    column : str
        Column name, for error messages.
    max_size : int
        Most distinct values accepted; more means the column is probably an
        identifier or free text.
    values, counts : list, optional
        State to resume from.
    oov : int
        Rows whose value came after the vocabulary was full (state).
    overflow : str
        ``"oov"`` (share one out-of-vocabulary code) or ``"error"``.
    """

    def __init__(self, column: str, max_size: int, values=None, counts=None, oov: int = 0, overflow: str = "oov"):
        self.column = column
        self.max_size = int(max_size)
        self.values = list(values or [])
        self.counts = list(counts or [])
        self.oov = int(oov)
        self.overflow = overflow

    def encode(self, strings: pa.ChunkedArray, repeats=None) -> np.ndarray:
        """Return float64 codes, growing the vocabulary up to ``max_size``.

        NaN marks a missing value. Once the vocabulary is full, further new
        values get the out-of-vocabulary code ``max_size`` (as Keras
        ``StringLookup`` would) and are counted in :attr:`oov`; with
        ``overflow="error"`` (the label) they raise ``OverflowError``.
        ``repeats`` (optional) counts each value that many times (for a
        column passed as its distinct values).
        """
        known = set(self.values)
        for value in pc.unique(strings).to_pylist():
            if value is not None and value not in known:
                if len(self.values) >= self.max_size:
                    if self.overflow == "error":
                        raise OverflowError(self.column)
                    break
                self.values.append(value)
                self.counts.append(0)
                known.add(value)
        codes = pc.index_in(strings, value_set=pa.array(self.values, pa.string()))
        codes = codes.to_numpy(zero_copy_only=False).astype(np.float64)
        unknown = np.isnan(codes) & ~strings.is_null().to_numpy(zero_copy_only=False)
        if unknown.any():
            codes[unknown] = self.max_size
            self.oov += int(unknown.sum())
        kept = ~np.isnan(codes) & ~unknown
        present = codes[kept].astype(np.int64)
        weights = None if repeats is None else np.asarray(repeats)[kept]
        counts = np.bincount(present, weights=weights, minlength=len(self.values)).astype(np.int64)
        self.counts = [int(a + b) for a, b in zip(self.counts, counts.tolist())]
        return codes

    def state(self) -> dict:
        return {"values": self.values, "counts": self.counts, "oov": self.oov}


class NumericStats:
    """Streaming count, missing, mean, variance, min and max of one column, and ``invalid``: how many of its
    missing values were unreadable values read as missing (``split --invalid missing``)."""

    def __init__(self, count=0, missing=0, mean=0.0, m2=0.0, minimum=None, maximum=None, invalid=0):
        self.count, self.missing, self.mean, self.m2 = int(count), int(missing), float(mean), float(m2)
        self.minimum, self.maximum, self.invalid = minimum, maximum, int(invalid)

    @classmethod
    def of_block(cls, values: np.ndarray) -> "NumericStats":
        """The statistics of one block of float64 values (NaN = missing)."""
        with np.errstate(over="ignore", invalid="ignore"):  # a value past float32's range is refused right after
            total = float(values.sum())
            if math.isfinite(total):  # no NaN and no infinity: every value counts
                present = values
            else:
                present = values[~np.isnan(values)]
                total = float(present.sum())
            if not len(present):
                return cls(missing=len(values))
            mean = total / len(present)
            deviations = present - mean
            m2 = float(np.square(deviations, out=deviations).sum())
        return cls(len(present), len(values) - len(present), mean, m2, float(present.min()), float(present.max()))

    @property
    def extremes(self):
        """``(min, max)``, or None when no value is present."""
        return (self.minimum, self.maximum) if self.count else None

    def update(self, values: np.ndarray):
        """Merge a block of float64 values (NaN = missing) into the totals;
        return the block's ``(min, max)`` (None when all are missing)."""
        block = NumericStats.of_block(values)
        self.merge(block)
        return block.extremes

    def merge(self, other: "NumericStats") -> None:
        """Add another column's totals (Chan et al.'s parallel formulas)."""
        if other.count:
            total = self.count + other.count
            delta = other.mean - self.mean
            self.mean += delta * other.count / total
            self.m2 += other.m2 + delta * delta * self.count * other.count / total
            self.count = total
            self.minimum = other.minimum if self.minimum is None else min(self.minimum, other.minimum)
            self.maximum = other.maximum if self.maximum is None else max(self.maximum, other.maximum)
        self.missing += other.missing
        self.invalid += other.invalid

    def state(self) -> dict:
        state = {"count": self.count, "missing": self.missing, "mean": self.mean, "m2": self.m2,
                 "minimum": self.minimum, "maximum": self.maximum}
        return {**state, "invalid": self.invalid} if self.invalid else state

    def summary(self) -> dict:
        """Manifest form: population variance and standard deviation."""
        variance = self.m2 / self.count if self.count else 0.0
        return {"count": self.count, "missing": self.missing, "mean": self.mean if self.count else None,
                "variance": variance, "std": math.sqrt(variance), "min": self.minimum, "max": self.maximum}
