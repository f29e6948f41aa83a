"""Column schema and streaming statistics for a split.

The schema is fixed once, from the header and the first block of rows, for
the whole data set: numeric columns stay numeric (a later non-number is an
error naming its line), categorical columns get a vocabulary in order of
first appearance, and the label's classes are collected over the full pass.
Statistics are merged block by block (Chan et al.'s parallel variance), so
a model can be normalised from the manifest without a second pass.
"""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

NUMERIC = "numeric"
CATEGORICAL = "categorical"
IDENTIFIER = "id"
LABEL = "label"


def infer_kinds(table: pa.Table, label: str, id_columns, categorical_columns) -> dict[str, str]:
    """Decide the kind of every column from a sample of parsed rows.

    Parameters
    ----------
    table : pyarrow.Table
        The first block of rows, parsed with pyarrow's type inference.
    label : str
        Name of the label column.
    id_columns, categorical_columns : iterable of str
        Columns the user declared as identifiers (kept in CSV shards, never
        used as features) or as categories (even if they look numeric).

    Returns
    -------
    dict
        ``{column name: "numeric" | "categorical" | "id" | "label"}``.
    """
    kinds = {}
    for name, column_type in zip(table.column_names, table.schema.types):
        if name == label:
            kinds[name] = LABEL
        elif name in id_columns:
            kinds[name] = IDENTIFIER
        elif name in categorical_columns:
            kinds[name] = CATEGORICAL
        elif pa.types.is_integer(column_type) or pa.types.is_floating(column_type) or pa.types.is_null(column_type):
            kinds[name] = NUMERIC
        else:
            kinds[name] = CATEGORICAL
    return kinds


def arrow_types(kinds: dict[str, str]) -> dict[str, pa.DataType]:
    """The pyarrow type each non-identifier column is parsed as."""
    return {name: pa.float64() if kind == NUMERIC else pa.string() for name, kind in kinds.items() if kind != IDENTIFIER}


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
    """

    def __init__(self, column: str, max_size: int, values=None, counts=None):
        self.column = column
        self.max_size = int(max_size)
        self.values = list(values or [])
        self.counts = list(counts or [])

    def encode(self, strings: pa.ChunkedArray) -> np.ndarray:
        """Return float64 codes (NaN where missing), growing the vocabulary."""
        known = set(self.values)
        for value in pc.unique(strings).to_pylist():
            if value is not None and value not in known:
                self.values.append(value)
                self.counts.append(0)
                known.add(value)
        if len(self.values) > self.max_size:
            raise OverflowError(self.column)
        codes = pc.index_in(strings, value_set=pa.array(self.values, pa.string()))
        codes = codes.to_numpy(zero_copy_only=False).astype(np.float64)
        present = codes[~np.isnan(codes)].astype(np.int64)
        counts = np.bincount(present, minlength=len(self.values))
        self.counts = [int(a + b) for a, b in zip(self.counts, counts.tolist())]
        return codes

    def state(self) -> dict:
        return {"values": self.values, "counts": self.counts}


class NumericStats:
    """Streaming count, missing, mean, variance, min and max of one column."""

    def __init__(self, count=0, missing=0, mean=0.0, m2=0.0, minimum=None, maximum=None):
        self.count, self.missing, self.mean, self.m2 = int(count), int(missing), float(mean), float(m2)
        self.minimum, self.maximum = minimum, maximum

    def update(self, values: np.ndarray) -> None:
        """Merge a block of float64 values (NaN = missing) into the totals."""
        present = values[~np.isnan(values)]
        self.missing += int(len(values) - len(present))
        if not len(present):
            return
        count = len(present)
        mean = float(present.mean())
        m2 = float(((present - mean) ** 2).sum())
        total = self.count + count
        delta = mean - self.mean
        self.mean += delta * count / total
        self.m2 += m2 + delta * delta * self.count * count / total
        self.count = total
        low, high = float(present.min()), float(present.max())
        self.minimum = low if self.minimum is None else min(self.minimum, low)
        self.maximum = high if self.maximum is None else max(self.maximum, high)

    def state(self) -> dict:
        return {"count": self.count, "missing": self.missing, "mean": self.mean, "m2": self.m2,
                "minimum": self.minimum, "maximum": self.maximum}

    def summary(self) -> dict:
        """Manifest form: population variance and standard deviation."""
        variance = self.m2 / self.count if self.count else 0.0
        return {"count": self.count, "missing": self.missing, "mean": self.mean if self.count else None,
                "variance": variance, "std": math.sqrt(variance), "min": self.minimum, "max": self.maximum}
