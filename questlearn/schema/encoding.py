"""The model-ready encoding of a split: fixed before the pass, applied once.

A split writes each row's features as the arrays the model consumes, so
loading a batch is a memory-mapped ``take`` and nothing more. The encoding
must therefore be known before the first row is written; it is decided from
the sample spread over the source (:mod:`questlearn.schema._sampling`) and
printed with the schema. A row becomes two blocks:

* **numbers** (float32), in column order: each numeric column, a missing
  value replaced by the fill value (the column's mean in the sample,
  ``fill="mean"``, the default, or ``0``, ``fill="zero"``, as in the
  original recipe), and, in a datetime column ``t``'s place, ``t.days``:
  days since 1970-01-01T00:00 of its wall-clock time
  (:mod:`questlearn.schema.datetimes`), filled the same way;
* **codes** (one integer per categorical column, stored as the narrowest of
  uint8, uint16 and int32 that holds every code): for a categorical column
  with ``V`` vocabulary values and ``H`` out-of-vocabulary buckets,

  - ``0``: missing (an empty string is missing too);
  - ``1 .. H``: a value outside the vocabulary, in bucket
    ``1 + FarmHash Fingerprint64(value) % H`` (counted as ``oov``);
  - ``H + 1 .. H + V``: the vocabulary's values, most frequent in the
    sample first.

  This is exactly Keras ``StringLookup(vocabulary, num_oov_indices=H,
  mask_token="")``, so the exported inference model maps raw strings to
  the same codes. Each datetime column adds three codes: ``t.hour`` (hour
  of day + 1), ``t.weekday`` (Monday 1 .. Sunday 7) and ``t.month`` (1 ..
  12), ``0`` when missing.

The vocabulary holds the sample's values, most frequent first, up to
``max_categories``; values past it, values longer than
:data:`MAX_VALUE_CHARACTERS` (the longest string a manifest records) and
values first met after the sample share the hash buckets: one bucket (the old ``<other>``) for a vocabulary
of at most :data:`FEW_VALUES` values, ``hash_buckets`` for a larger one.
The model one-hot-encodes small code ranges and embeds larger ones
(:mod:`questlearn.train.model`).

The manifest keeps it all as ``schema.encoding`` (:meth:`Encoding.as_record`);
the CSV loader, the exported inference model and the normalisation moments
read it from there, so every path encodes a row the same way.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..errors import SchemaError
from ._columns import NUMBER_PATTERN
from .._limits import MAX_STRING_LENGTH

FILL_POLICIES = ("mean", "zero")
FEW_VALUES = 16  # a vocabulary this small gets one out-of-vocabulary code (and is one-hot encoded by the model)
DEFAULT_HASH_BUCKETS = 64
QUANTILE_BINS = 48  # bins of the piecewise-linear number embedding, from the sample's quantiles (16 left a
# time series' day-to-day changes, 23 days a bin over a year, out of reach: benchmarks/bench_quality.py)
DATETIME_PARTS = {"hour": 25, "weekday": 8, "month": 13}  # derived code columns and their code counts (0 = missing)
MAX_VALUE_CHARACTERS = MAX_STRING_LENGTH  # the longest vocabulary value: a manifest records no longer string
CODE_DTYPES = ((np.uint8, 1 << 8), (np.uint16, 1 << 16), (np.int32, 1 << 31))


def code_dtype(largest_code_count: int):
    """The narrowest of uint8, uint16 and int32 that holds codes ``0 .. largest_code_count - 1``."""
    for dtype, limit in CODE_DTYPES:
        if largest_code_count <= limit:
            return np.dtype(dtype)
    raise SchemaError(f"a categorical column needs {largest_code_count} codes, more than int32 holds")


def fingerprint_buckets(values: list, buckets: int) -> np.ndarray:
    """``FarmHash Fingerprint64(value) % buckets`` per string: TensorFlow's
    ``tf.strings.to_hash_bucket_fast``, which Keras ``StringLookup`` uses for
    its out-of-vocabulary indices."""
    import farmhash

    return np.fromiter((farmhash.fingerprint64(v) % buckets for v in values), np.int64, len(values))


@dataclass
class Encoding:
    """How feature columns become the ``numbers`` and ``codes`` blocks.

    Attributes
    ----------
    fill : str
        ``"mean"`` or ``"zero"``: how :attr:`fill_values` were chosen.
    numeric : list of str
        Columns of the numbers block: numeric features, then ``t.days`` per
        datetime feature ``t``.
    fill_values : list of float
        The value a missing entry of each numbers column becomes.
    categorical : list of str
        Categorical feature columns (each one column of the codes block,
        before the datetime parts).
    vocabularies : dict
        ``{column: [values]}``, most frequent in the sample first.
    hash_buckets : dict
        ``{column: H}``: out-of-vocabulary buckets of each categorical column.
    datetimes : dict
        ``{column: format}`` of the datetime features: the pattern of their
        :class:`questlearn.schema.datetimes.DatetimeFormat` (Parquet timestamps
        and dates are read as ISO-8601 text).
    capped : dict
        ``{column: values in the sample}`` for the categorical columns whose
        sample showed more values than the vocabulary holds (printed, not recorded).
    overlong : dict
        ``{column: distinct values}`` of the sample's values longer than
        :data:`MAX_VALUE_CHARACTERS`, kept out of the vocabulary (they go to
        the hash buckets; printed, not recorded).
    quantiles : dict
        ``{numbers column: [edges]}``: :data:`QUANTILE_BINS` + 1 quantiles of
        the column's present values in the sample (repeated edges merged), the
        bins of the model's piecewise-linear number embedding.
    indicators : list of str
        Numeric columns with missing values in the sample: each adds a code
        column ``name.missing`` (``1`` where the value was missing and was
        filled, ``0`` where present), so the model sees missingness as a
        gradient-boosted tree does, not only the fill value.
    """

    fill: str
    numeric: list
    fill_values: list
    categorical: list
    vocabularies: dict
    hash_buckets: dict = field(default_factory=dict)
    datetimes: dict = field(default_factory=dict)
    capped: dict = field(default_factory=dict, compare=False)
    quantiles: dict = field(default_factory=dict)
    indicators: list = field(default_factory=list)
    overlong: dict = field(default_factory=dict, compare=False)
    _value_sets: dict = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        if self.fill not in FILL_POLICIES:
            raise ValueError(f"fill must be one of {FILL_POLICIES}, got {self.fill!r}")
        if len(self.fill_values) != len(self.numeric):
            raise ValueError("fill_values must have one value per numeric column")
        for name in self.categorical:
            self.hash_buckets.setdefault(name, 1)
        self._value_sets = {name: pa.array(self.vocabularies[name], pa.string()) for name in self.categorical}

    # -- shape ---------------------------------------------------------------
    @property
    def code_columns(self) -> list[str]:
        """Columns of the codes block: categorical features, then ``t.hour``,
        ``t.weekday`` and ``t.month`` per datetime feature ``t``."""
        return (list(self.categorical) + [f"{t}.{part}" for t in self.datetimes for part in DATETIME_PARTS]
                + [f"{n}.missing" for n in self.indicators])

    @property
    def code_counts(self) -> list[int]:
        """How many codes each codes column takes (``1 + H + V``, or a datetime part's fixed count)."""
        counts = [1 + self.hash_buckets[n] + len(self.vocabularies[n]) for n in self.categorical]
        return counts + [count for _ in self.datetimes for count in DATETIME_PARTS.values()] + [2] * len(self.indicators)

    @property
    def code_dtype(self):
        return code_dtype(max(self.code_counts, default=1))

    @property
    def features(self) -> list[str]:
        """The source columns the encoding reads."""
        days = {f"{t}.days" for t in self.datetimes}
        return [n for n in self.numeric if n not in days] + list(self.categorical) + list(self.datetimes)

    def inputs_of(self, feature: str) -> tuple[list[int], list[int]]:
        """Positions of a source column's inputs in the numbers and the codes blocks."""
        if feature in self.datetimes:
            codes = self.code_columns
            return [self.numeric.index(f"{feature}.days")], [codes.index(f"{feature}.{p}") for p in DATETIME_PARTS]
        if feature in self.categorical:
            return [], [self.categorical.index(feature)]
        if feature in self.indicators:
            return [self.numeric.index(feature)], [self.code_columns.index(f"{feature}.missing")]
        return [self.numeric.index(feature)], []

    def row_bytes(self) -> int:
        """Bytes of one row's two blocks in the shards."""
        return 4 * len(self.numeric) + self.code_dtype.itemsize * len(self.code_columns)

    # -- building and recording ------------------------------------------
    @classmethod
    def from_sample(cls, sample: pa.Table, kinds: dict, fill: str = "mean", null_values=(),
                    max_categories: int | None = None, hash_buckets: int = DEFAULT_HASH_BUCKETS,
                    datetime_formats=None) -> "Encoding":
        """Decide the encoding from the sampled rows.

        Parameters
        ----------
        sample : pyarrow.Table
            The sample (string columns for CSV, native types for Parquet).
        kinds : dict
            ``{column: kind}`` as inferred; ``numeric``, ``categorical`` and
            ``datetime`` columns are the features.
        fill : str
            ``"mean"`` or ``"zero"``.
        null_values : sequence of str
            Missing-value tokens, for string samples.
        max_categories : int, optional
            Most vocabulary values per categorical column: the most frequent
            values in the sample are kept (ties: the smaller value), the
            others share the hash buckets.
        hash_buckets : int
            Out-of-vocabulary buckets of a column whose vocabulary has more
            than :data:`FEW_VALUES` values (or was capped); smaller ones get one.
        datetime_formats : dict, optional
            ``{datetime column: DatetimeFormat or None}`` (None: no value in
            the sample to tell; read as ISO 8601).

        A value longer than :data:`MAX_VALUE_CHARACTERS` never enters a
        vocabulary: it is hashed into the buckets like a value first met
        after the sample (and counted as out-of-vocabulary).
        """
        from . import datetimes as dt

        datetime_formats = datetime_formats or {}
        numeric, categorical, dated, fill_values = [], [], {}, []
        vocabularies, buckets, capped, overlong = {}, {}, {}, {}
        missing = set(null_values) | {""}

        quantiles, indicators = {}, []

        def add_number(name, values):
            present = values[~np.isnan(values)]
            numeric.append(name)
            fill_values.append(float(present.mean()) if fill == "mean" and len(present) else 0.0)
            edges = np.quantile(present, np.linspace(0, 1, QUANTILE_BINS + 1)) if len(present) else np.zeros(1)
            quantiles[name] = [float(e) for e in np.unique(edges.astype(np.float32))]

        for name, kind in kinds.items():
            in_sample = name in sample.column_names
            if kind == "numeric":
                values = _as_float(sample[name], null_values) if in_sample else np.empty(0)
                add_number(name, values)
                if 0 < np.isnan(values).sum() < len(values):
                    indicators.append(name)
            elif kind == "datetime":
                fmt = datetime_formats.get(name) or dt.ISO_8601
                dated[name] = fmt.as_record()
                seconds, absent = (np.empty(0, np.int64), np.empty(0, bool))
                if in_sample:
                    seconds, absent, _ = dt.parse(_without_tokens(pc.cast(sample[name], pa.string()), null_values), fmt)
                add_number(f"{name}.days", dt.features(seconds, absent)["days"])
            elif kind == "categorical":
                column = pc.cast(sample[name], pa.string()) if in_sample else pa.chunked_array([], pa.string())
                pairs = sorted((-c["counts"], c["values"]) for c in pc.value_counts(column).to_pylist()
                               if c["values"] is not None and c["values"] not in missing)
                kept = [pair for pair in pairs if len(pair[1]) <= MAX_VALUE_CHARACTERS]
                if len(kept) < len(pairs):
                    overlong[name], pairs = len(pairs) - len(kept), kept
                if max_categories is not None and len(pairs) > max_categories:
                    capped[name] = len(pairs)
                    pairs = pairs[:max_categories]
                vocabularies[name] = [value for _, value in pairs]
                categorical.append(name)
                few = len(pairs) <= FEW_VALUES and name not in capped
                buckets[name] = 1 if few else int(hash_buckets)
        encoding = cls(fill, numeric, fill_values, categorical, vocabularies, buckets, dated, capped, quantiles,
                       indicators, overlong)
        encoding.check_column_names()
        return encoding

    @classmethod
    def from_record(cls, record: dict) -> "Encoding":
        """The encoding a manifest's ``schema.encoding`` describes."""
        return cls(record["fill"], list(record["numeric"]), [float(v) for v in record["fill_values"]],
                   list(record["categorical"]), {n: list(v) for n, v in record["vocabularies"].items()},
                   {n: int(v) for n, v in record.get("hash_buckets", {}).items()}, dict(record.get("datetimes", {})),
                   quantiles={n: [float(e) for e in v] for n, v in record.get("quantiles", {}).items()},
                   indicators=list(record.get("indicators", [])))

    def as_record(self) -> dict:
        """The manifest form (``schema.encoding``)."""
        return {"fill": self.fill, "numeric": self.numeric, "fill_values": self.fill_values,
                "categorical": self.categorical, "vocabularies": self.vocabularies,
                "hash_buckets": {n: self.hash_buckets[n] for n in self.categorical}, "datetimes": self.datetimes,
                "code_columns": self.code_columns, "code_counts": self.code_counts,
                "code_dtype": self.code_dtype.name, "quantiles": self.quantiles, "indicators": self.indicators}

    def datetime_format(self, name: str):
        """The :class:`~questlearn.schema.datetimes.DatetimeFormat` of a datetime feature."""
        from .datetimes import DatetimeFormat

        return DatetimeFormat.from_record(self.datetimes[name])

    def datetime_inputs(self, name: str, column) -> tuple[np.ndarray, dict, int | None]:
        """A datetime column parsed with its format: its ``t.days`` (float64, NaN when missing), its
        ``{"t.hour", "t.weekday", "t.month": codes}``, and the position of the first value the format
        does not read (None when all do)."""
        from . import datetimes as dt

        seconds, missing, bad = dt.parse(column, self.datetime_format(name))
        features = dt.features(seconds, missing)
        return features["days"], {f"{name}.{part}": features[part] for part in DATETIME_PARTS}, bad

    def check_column_names(self) -> None:
        """Refuse two model inputs with the same name.

        A datetime column ``t`` adds ``t.days``, ``t.hour``, ``t.weekday``
        and ``t.month``: a source column already named so would no longer
        say which input a feature is.

        Raises
        ------
        SchemaError
            Naming both and the column to rename.
        """
        made = {}
        for names, what in ((self.numeric, "numeric input"), (self.code_columns, "categorical input")):
            for name in names:
                if name in made:
                    raise SchemaError(f"two model inputs would both be named {name!r} (a {made[name]} and a {what}; "
                                      "a datetime column t adds t.days, t.hour, t.weekday and t.month, a numeric "
                                      f"column x with missing values x.missing): rename the source column {name!r}")
                made[name] = what

    def describe(self) -> str:
        """Printed before the pass, under the schema."""
        fills = ", ".join(f"{n}={v:.4g}" for n, v in list(zip(self.numeric, self.fill_values))[:6])
        if len(self.numeric) > 6:
            fills += f", ... ({len(self.numeric)} columns; all in the manifest's schema.encoding)"
        lines = [f"questlearn: model-ready shards hold {len(self.numeric)} float32 numbers and "
                 f"{len(self.code_columns)} {self.code_dtype.name} category codes per row ({self.row_bytes()} bytes)"]
        if self.numeric:
            lines.append(f"  missing numbers are filled with the sample {'mean' if self.fill == 'mean' else 'value 0'}"
                         + (f": {fills}" if self.fill == "mean" else ""))
        for name in self.categorical:
            size, buckets = len(self.vocabularies[name]), self.hash_buckets[name]
            later = "values first met later" if name not in self.capped else \
                (f"the other {self.capped[name] - size} values of the sample (past --max-categories {size}; raise it "
                 "to keep more) and values first met later")
            oov = "share one out-of-vocabulary code" if buckets == 1 else f"go to {buckets} hashed buckets"
            lines.append(f"  {name}: {size} values in the sample, most frequent first; {later} {oov}")
            if self.overlong.get(name):
                count = self.overlong[name]
                lines.append(f"  {name}: {count} value{'s' if count != 1 else ''} of the sample longer than "
                             f"{MAX_VALUE_CHARACTERS} characters {'go' if count != 1 else 'goes'} to the "
                             "out-of-vocabulary code(s) (a vocabulary value is at most that long)")
        for name in self.datetimes:
            lines.append(f"  {name}: datetime -> {name}.days (days since 1970-01-01, wall clock), {name}.hour, "
                         f"{name}.weekday, {name}.month")
        if self.indicators:
            shown = ", ".join(self.indicators[:6]) + (f", ... ({len(self.indicators)})" if len(self.indicators) > 6 else "")
            lines.append(f"  missing-value indicators (name.missing codes) for the numeric columns missing in the sample: {shown}")
        return "\n".join(lines)

    # -- encoding rows -----------------------------------------------------
    def encode(self, numbers: dict, strings: dict, parts: dict | None = None, order=None):
        """Encode one block of rows.

        Parameters
        ----------
        numbers : dict
            ``{numbers column: float64 array}``, NaN for missing (a datetime's
            ``t.days`` included).
        strings : dict
            ``{categorical column: pyarrow string array}``, null for missing.
        parts : dict, optional
            ``{"t.hour" ...: int codes}`` of the datetime features
            (:func:`questlearn.schema.datetimes.features`).
        order : numpy.ndarray, optional
            Row positions: encode these rows, in this order (default all, in order).

        Returns
        -------
        numbers : numpy.ndarray
            ``(rows, len(numeric))`` float32.
        codes : numpy.ndarray
            ``(rows, len(code_columns))`` of :attr:`code_dtype`.
        counts : dict
            ``{categorical column: int64 array}``: rows per code (``0``
            missing, then the buckets, then the vocabulary).
        """
        parts = parts or {}
        sizes = [len(v) for v in (*numbers.values(), *strings.values(), *parts.values())]
        rows = sizes[0] if sizes else 0
        # Built column by column in (columns, rows) arrays, each column a contiguous write; then transposed
        # once into row-major blocks, whose rows are put in ``order`` by one ``take``.
        block = np.empty((len(self.numeric), rows), np.float32)
        codes = np.empty((len(self.code_columns), rows), self.code_dtype)
        indicator_at = {name: position for position, name in enumerate(self.indicators, len(self.code_columns) - len(self.indicators))}
        for position, (name, fill) in enumerate(zip(self.numeric, self.fill_values)):
            column = block[position]
            column[:] = numbers[name]
            absent = np.isnan(column)
            if name in indicator_at:
                codes[indicator_at[name]] = absent
            if absent.any():
                column[absent] = fill
        counts = {}
        for position, name in enumerate(self.categorical):
            codes[position], counts[name] = self.codes_of(name, strings[name])
        parts_end = len(self.code_columns) - len(self.indicators)
        for position, name in enumerate(self.code_columns[len(self.categorical):parts_end], len(self.categorical)):
            codes[position] = parts[name]
        block, codes = np.ascontiguousarray(block.T), np.ascontiguousarray(codes.T)
        if order is not None:
            block, codes = block.take(order, axis=0), codes.take(order, axis=0)
        return block, codes, counts

    def codes_of(self, name: str, column) -> tuple[np.ndarray, np.ndarray]:
        """Codes of one categorical column's values, and rows per code."""
        if isinstance(column, pa.ChunkedArray):
            column = column.combine_chunks()
        if not pa.types.is_string(column.type):
            column = pc.cast(column, pa.string())
        buckets, size = self.hash_buckets[name], len(self.vocabularies[name])
        index = pc.index_in(column, value_set=self._value_sets[name])
        codes = index.to_numpy(zero_copy_only=False)
        known = ~np.isnan(codes) if codes.dtype.kind == "f" else np.ones(len(codes), bool)
        codes = np.where(known, np.nan_to_num(codes) + 1 + buckets, 0).astype(np.int64)
        absent = pc.fill_null(pc.equal(column, ""), True).to_numpy(zero_copy_only=False)  # null or empty
        unknown = ~known & ~absent
        if unknown.any():
            outside = column.filter(pa.array(unknown))
            distinct = pc.unique(outside)
            bucket_of = fingerprint_buckets(distinct.to_pylist(), buckets) + 1
            codes[unknown] = bucket_of[pc.index_in(outside, value_set=distinct).to_numpy(zero_copy_only=False)]
        return codes, np.bincount(codes, minlength=1 + buckets + size)

    def moments(self, stats: dict, rows: int) -> tuple[np.ndarray, np.ndarray]:
        """Mean and variance of every numbers column over the split, from the
        manifest's statistics (no pass over the data), the fill accounted
        for; a constant column gets variance 1."""
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
        # A column constant over the split gets variance 1, not 0: normalising by a zero variance would turn
        # its first different value at prediction time into ~1e7 and let it alone decide the output.
        variances = [v if v > 0 else 1.0 for v in variances]
        return np.asarray(means, np.float32), np.asarray(variances, np.float32)

    def bounds(self, stats: dict) -> tuple[np.ndarray, np.ndarray]:
        """The range of every numbers column over the split: ``(lower, upper)`` as float64 arrays.

        The manifest's ``min`` and ``max`` over every row, widened to take in
        the column's fill value (what a missing value becomes, in training and
        when scoring), so no value the numbers block held is outside it; a
        column without values gets its fill value as both bounds. NaN for a
        column whose statistics record no ``min``/``max`` (a manifest written
        before they were): its range is unknown.
        """
        lower, upper = [], []
        for name, filled in zip(self.numeric, self.fill_values):
            entry = stats.get(name, {})
            if "min" not in entry or "max" not in entry:
                lower.append(np.nan)
                upper.append(np.nan)
                continue
            seen = [v for v in (entry["min"], entry["max"]) if v is not None]
            lower.append(min([*seen, filled]))
            upper.append(max([*seen, filled]))
        return np.asarray(lower, np.float64), np.asarray(upper, np.float64)


def _without_tokens(column, null_values):
    """A string column with its missing-value tokens (and empty strings) as nulls."""
    nulls = pa.array(list(null_values) + [""], pa.string())
    return pc.if_else(pc.is_in(column, value_set=nulls), pa.scalar(None, pa.string()), column)


def _as_float(column, null_values) -> np.ndarray:
    """A sample column as float64 with NaN for missing (string samples are parsed; a value that is no
    number, which only ``split --invalid missing`` lets through the sample, is missing too)."""
    if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
        nulls = pa.array(list(null_values) + [""], pa.string())
        trimmed = pc.utf8_trim_whitespace(column)
        number = pc.fill_null(pc.match_substring_regex(trimmed, NUMBER_PATTERN), False)
        absent = pc.or_(pc.is_in(trimmed, value_set=nulls), pc.invert(number))
        column = pc.cast(pc.if_else(absent, pa.scalar(None, pa.string()), trimmed), pa.float64())
    else:
        column = pc.cast(column, pa.float64())
    return column.to_numpy(zero_copy_only=False).astype(np.float64)
