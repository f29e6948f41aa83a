"""The model-ready encoding of a split: fixed before the pass, applied once.

A split writes each row's features as the float32 vector the model
consumes, so loading a batch is a memory-mapped ``take`` and nothing more.
The encoding must therefore be known before the first row is written; it is
decided from the sample spread over the source (:mod:`questlearn.schema._sampling`)
and printed with the schema:

* **numeric** columns are copied, a missing value replaced by the fill
  value: the column's mean in the sample (``fill="mean"``, the default) or
  ``0`` (``fill="zero"``, as in the original recipe);
* **categorical** columns become one-hot blocks: one column per value seen
  in the sample (sorted), then ``name=<other>`` for values first met after
  the sample (counted as ``stats[name]["oov"]`` and reported at the end).
  A missing value is all zeros.

The manifest keeps it as ``schema.encoding`` (see :meth:`Encoding.as_record`);
the CSV loader, the exported inference model and the normalisation moments
all read it from there, so every path encodes a row the same way.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..errors import SchemaError

FILL_POLICIES = ("mean", "zero")
OTHER = "<other>"


@dataclass
class Encoding:
    """How feature columns become the float32 matrix ``x``.

    Attributes
    ----------
    fill : str
        ``"mean"`` or ``"zero"``: how :attr:`fill_values` were chosen.
    numeric : list of str
        Numeric feature columns, in header order: the first columns of ``x``.
    fill_values : list of float
        The value a missing entry of each numeric column becomes.
    categorical : list of str
        Categorical feature columns, in header order.
    vocabularies : dict
        ``{column: [values]}``: the one-hot columns of each categorical
        feature, before its ``<other>`` column.
    capped : dict
        ``{column: (values in the sample, max_categories)}`` for the
        categorical columns whose sample showed more values than
        ``max_categories`` (:meth:`from_sample`; printed by :meth:`describe`,
        not recorded).
    width : int
        Columns of ``x`` (derived).
    """

    fill: str
    numeric: list
    fill_values: list
    categorical: list
    vocabularies: dict
    capped: dict = field(default_factory=dict, compare=False)
    width: int = field(init=False, compare=False)
    _value_sets: dict = field(init=False, repr=False, compare=False)
    _offsets: dict = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        if self.fill not in FILL_POLICIES:
            raise ValueError(f"fill must be one of {FILL_POLICIES}, got {self.fill!r}")
        if len(self.fill_values) != len(self.numeric):
            raise ValueError("fill_values must have one value per numeric column")
        self._value_sets = {name: pa.array(self.vocabularies[name], pa.string()) for name in self.categorical}
        offsets, position = {}, len(self.numeric)
        for name in self.categorical:
            offsets[name] = position
            position += len(self.vocabularies[name]) + 1
        self._offsets, self.width = offsets, position

    # -- building and recording ------------------------------------------
    @classmethod
    def from_sample(cls, sample: pa.Table, kinds: dict, fill: str = "mean", null_values=(),
                    max_categories: int | None = None) -> "Encoding":
        """Decide the encoding from the sampled rows.

        Parameters
        ----------
        sample : pyarrow.Table
            The sample (string columns for CSV, native types for Parquet).
        kinds : dict
            ``{column: kind}`` as inferred; ``numeric`` and ``categorical``
            columns are the features.
        fill : str
            ``"mean"`` or ``"zero"``.
        null_values : sequence of str
            Missing-value tokens, for string samples.
        max_categories : int, optional
            Most one-hot columns per categorical feature (a declared
            categorical column may show more values in the sample): the most
            frequent values in the sample are kept (ties: the smaller value),
            the others go to ``<other>``.
        """
        numeric = [n for n, k in kinds.items() if k == "numeric"]
        categorical = [n for n, k in kinds.items() if k == "categorical"]
        fill_values = []
        for name in numeric:
            values = _as_float(sample[name], null_values) if name in sample.column_names else np.empty(0)
            present = values[~np.isnan(values)]
            fill_values.append(float(present.mean()) if fill == "mean" and len(present) else 0.0)
        vocabularies, capped = {}, {}
        for name in categorical:
            column = pc.cast(sample[name], pa.string()) if name in sample.column_names else pa.chunked_array([], pa.string())
            counted = pc.value_counts(column).to_pylist()
            missing = set(null_values)
            pairs = [(-c["counts"], c["values"]) for c in counted if c["values"] is not None and c["values"] not in missing]
            if max_categories is not None and len(pairs) > max_categories:
                capped[name] = (len(pairs), int(max_categories))
                pairs = sorted(pairs)[:max_categories]
            vocabularies[name] = sorted(value for _, value in pairs)
        encoding = cls(fill, numeric, fill_values, categorical, vocabularies, capped)
        encoding.check_column_names()
        return encoding

    @classmethod
    def from_record(cls, record: dict) -> "Encoding":
        """The encoding a manifest's ``schema.encoding`` describes."""
        return cls(record["fill"], list(record["numeric"]), [float(v) for v in record["fill_values"]],
                   list(record["categorical"]), {n: list(v) for n, v in record["vocabularies"].items()})

    def as_record(self) -> dict:
        """The manifest form (``schema.encoding``)."""
        return {"fill": self.fill, "numeric": self.numeric, "fill_values": self.fill_values,
                "categorical": self.categorical, "vocabularies": self.vocabularies, "columns": self.columns()}

    def columns(self) -> list[str]:
        """Names of the columns of ``x``: numeric features, then each
        categorical feature's ``name=value`` columns and ``name=<other>``."""
        names = list(self.numeric)
        for name in self.categorical:
            names += [f"{name}={value}" for value in self.vocabularies[name]] + [f"{name}={OTHER}"]
        return names

    def check_column_names(self) -> None:
        """Refuse two columns of ``x`` with the same name (:meth:`columns`).

        The one-hot column ``x=a`` of value ``a`` of categorical column ``x``
        can meet a column of the source literally named ``x=a`` (or the
        one-hot column of value ``b`` of a categorical ``x=a`` meets that of
        value ``a=b`` of ``x``; or a value spelled ``<other>``): the names
        would no longer say which input a feature is.

        Raises
        ------
        ValueError
            Naming both and the column (or value) to rename.
        """
        made = {name: (f"numeric column {name!r}", name) for name in self.numeric}  # x's column -> (what, source column)
        for name in self.categorical:
            for value in [*self.vocabularies[name], None]:
                column = f"{name}={OTHER if value is None else value}"
                what = (f"the {OTHER} column of categorical column {name!r}" if value is None
                        else f"value {value!r} of categorical column {name!r}")
                if column not in made:
                    made[column] = (what, name)
                    continue
                first, source = made[column]
                if source == name:
                    fix = f"rename the value {OTHER!r} of column {name!r} in the data"
                else:
                    fix = f"rename column {max(source, name, key=len)!r}"
                raise SchemaError(f"two model-ready columns would both be named {column!r}: {first} and {what} "
                                 f"(one-hot columns are named <column>=<value>); {fix}")

    def describe(self) -> str:
        """Printed before the pass, under the schema."""
        fills = ", ".join(f"{n}={v:.4g}" for n, v in list(zip(self.numeric, self.fill_values))[:6])
        if len(self.numeric) > 6:
            fills += f", ... ({len(self.numeric)} columns; all in the manifest's schema.encoding)"
        lines = [f"questlearn: model-ready shards hold {self.width} float32 columns per row"]
        if self.numeric:
            lines.append(f"  missing numbers are filled with the sample {'mean' if self.fill == 'mean' else 'value 0'}"
                         + (f": {fills}" if self.fill == "mean" else ""))
        for name in self.categorical:
            if name in self.capped:
                seen, cap = self.capped[name]
                lines.append(f"  {name}: {seen} values in the sample outgrew --max-categories {cap}: one-hot over the "
                             f"{cap} most frequent; the others, and values first met later, go to {name}={OTHER}")
                continue
            lines.append(f"  {name}: one-hot over the {len(self.vocabularies[name])} values in the sample; "
                         f"values first met later go to {name}={OTHER}")
        return "\n".join(lines)

    # -- encoding rows -----------------------------------------------------
    def encode(self, numbers: dict, strings: dict, order=None) -> tuple[np.ndarray, dict]:
        """Encode one block of rows.

        Parameters
        ----------
        numbers : dict
            ``{numeric column: float64 array}``, NaN for missing.
        strings : dict
            ``{categorical column: pyarrow string array}``, null for missing.
        order : numpy.ndarray, optional
            Row positions: encode these rows, in this order (default all, in order).

        Returns
        -------
        x : numpy.ndarray
            ``(rows, width)`` float32.
        counts : dict
            ``{categorical column: int64 array}``: rows per vocabulary value,
            then the rows that went to ``<other>``.
        """
        rows = len(next(iter(numbers.values()))) if numbers else (len(next(iter(strings.values()))) if strings else 0)
        # Built column by column in a (width, rows) array in source order,
        # each column a contiguous write; then transposed once into the
        # row-major matrix, whose rows are put in ``order`` by one ``take``.
        columns = np.empty((self.width, rows), np.float32)
        columns[len(self.numeric):] = 0.0
        for position, (name, fill) in enumerate(zip(self.numeric, self.fill_values)):
            column = columns[position]
            column[:] = numbers[name]
            missing = np.isnan(column)
            if missing.any():
                column[missing] = fill
        counts = {}
        for name in self.categorical:
            column = strings[name]
            size = len(self.vocabularies[name])
            codes = pc.fill_null(pc.index_in(column, value_set=self._value_sets[name]), size)  # unseen -> <other>
            codes = codes.to_numpy(zero_copy_only=False).astype(np.int64)
            rows_present = np.flatnonzero(~column.is_null().to_numpy(zero_copy_only=False))
            codes = codes[rows_present]
            counts[name] = np.bincount(codes, minlength=size + 1)
            columns[self._offsets[name] + codes, rows_present] = 1.0
        x = np.ascontiguousarray(columns.T)
        return (x if order is None else x.take(order, axis=0)), counts

    def moments(self, stats: dict, rows: int) -> tuple[np.ndarray, np.ndarray]:
        """Mean and variance of every column of ``x`` over the split, from the
        manifest's statistics (no pass over the data): numeric columns
        account for the fill, one-hot columns are Bernoulli; a constant
        column gets variance 1."""
        means, variances = [], []
        rows = max(int(rows), 1)
        for name, filled in zip(self.numeric, self.fill_values):
            entry = stats[name]
            mean = entry["mean"] or 0.0
            missing = entry["missing"] / rows
            total_mean = (1 - missing) * mean + missing * filled
            second = (1 - missing) * (entry["variance"] + mean * mean) + missing * filled * filled
            means.append(total_mean)
            variances.append(max(second - total_mean * total_mean, 0.0))
        for name in self.categorical:
            counts = [stats[name]["category_counts"].get(v, 0) for v in self.vocabularies[name]]
            frequency = np.asarray(counts + [stats[name].get("oov", 0)], np.float64) / rows
            means += frequency.tolist()
            variances += (frequency * (1 - frequency)).tolist()
        # A column constant over the split (an <other> column nothing reached,
        # a numeric column with one value) gets variance 1, not 0: normalising
        # by a zero variance would turn its first different value at
        # prediction time into ~1e7 and let it alone decide the output.
        variances = [v if v > 0 else 1.0 for v in variances]
        return np.asarray(means, np.float32), np.asarray(variances, np.float32)


def _as_float(column, null_values) -> np.ndarray:
    """A sample column as float64 with NaN for missing (string samples are parsed)."""
    if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
        nulls = pa.array(list(null_values) + [""], pa.string())
        trimmed = pc.utf8_trim_whitespace(column)
        column = pc.cast(pc.if_else(pc.is_in(trimmed, value_set=nulls), pa.scalar(None, pa.string()), trimmed),
                         pa.float64())
    else:
        column = pc.cast(column, pa.float64())
    return column.to_numpy(zero_copy_only=False).astype(np.float64)
