"""Decide every column's kind from a sample of rows, and say what was decided.

The sample (:mod:`questlearn.schema._sampling`) holds every column as strings, with
the split's missing-value tokens already turned into nulls. A column is

* ``numeric`` when every sampled value is a number (or all are missing);
* a problem, reported before the pass, when it is numeric except for a few
  tokens such as ``?`` (the fix is ``--na-value`` or
  ``--categorical-column``: questlearn does not guess which; with
  ``--invalid missing`` a note, and they are read as missing);
* ``datetime`` when every sampled value but a tolerated few is a date or time
  in one format (:func:`~questlearn.schema.datetimes.detect_format`); those few
  are named with their lines, and are problems like the numbers above;
* ``categorical`` when it holds other strings, up to ``max_categories``
  distinct values in the sample, else ``text`` (kept in the CSV shards, not a
  feature);
* ``label`` for the label: its classes are numbers compared as numbers when
  all sampled labels are numbers, and more than ``max_classes`` of them is a
  problem (suggesting ``--task regression`` for a numeric label).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc

from ..errors import SchemaError  # re-exported: the sample shows a problem to settle before the pass
from ..io.csvscan import CsvFormatError
from ._columns import (
    CATEGORICAL,
    CLASSIFICATION,
    DATETIME,
    IDENTIFIER,
    LABEL,
    NUMBER_PATTERN,
    NUMERIC,
    REGRESSION,
    TEXT,
    label_strings,
)
from .encoding import Encoding

__all__ = ["ColumnReport", "InferredSchema", "SampleFormatError", "SchemaError", "infer_schema"]


class SampleFormatError(CsvFormatError, SchemaError):
    """A sample problem whose row has a known file, line and byte offset."""


@dataclass
class ColumnReport:
    """What the sample showed about one column."""

    name: str
    kind: str
    missing: int
    distinct: int
    examples: list
    note: str = ""


@dataclass
class InferredSchema:
    """Column kinds decided before the pass, with the evidence.

    Attributes
    ----------
    kinds : dict
        ``{column: kind}`` in header order.
    label_numeric : bool
        The label is parsed as a number (regression, or classes that are
        all numbers).
    columns : list of ColumnReport
    sample_rows : int
    sample_note : str
        Where the sample came from.
    problems : list of str
        Settle these before splitting (see :meth:`raise_problems`).
    location : tuple or None
        ``(file, line, byte offset)`` of the first problem's row where known
        (line None for rows found by sampling in the middle of a file).
    notes : list of str
        How columns are read, printed under the table (a Parquet column
        left out, integers read with precision loss).
    sample : pyarrow.Table or None
        The sampled rows the kinds were decided from (None for a schema
        rebuilt from a record, as a parallel split's part gets it).
    extent : object or None
        How far the CSV sample reached (:func:`~questlearn.schema._sampling.sample_csv`),
        for the row estimate; None for Parquet or a rebuilt schema.
    encoding : Encoding or None
        The model-ready encoding, once decided from the sample
        (:meth:`~questlearn.schema.encoding.Encoding.from_sample`).
    datetime_formats : dict
        ``{datetime column: DatetimeFormat}`` detected in the sample.
    """

    kinds: dict
    label_numeric: bool
    columns: list
    sample_rows: int
    sample_note: str = ""
    problems: list = field(default_factory=list)
    location: tuple | None = None
    notes: list = field(default_factory=list)
    sample: pa.Table | None = field(default=None, repr=False, compare=False)
    extent: object = None
    encoding: Encoding | None = None
    datetime_formats: dict = field(default_factory=dict)

    def raise_problems(self) -> None:
        if not self.problems:
            return
        if len(self.problems) == 1:
            text = f"the sample shows a problem to settle before splitting: {self.problems[0]}"
        else:
            text = "the sample shows problems to settle before splitting:\n  " + "\n  ".join(self.problems)
        if self.location is not None:
            path, line, byte = self.location
            if line is not None:
                raise SampleFormatError(path, line, byte, text)
            text = f"{path}: byte offset {byte}: {text}"
        raise SchemaError(text)

    def describe(self, tokens=None) -> str:
        """A readable table of the decisions (printed by ``split`` and ``inspect``)."""
        lines = [f"questlearn: schema inferred from {self.sample_rows} sampled rows ({self.sample_note})"]
        if tokens is not None:
            shown = " ".join(repr(t) for t in tokens)
            lines.append(f"  missing-value tokens: {shown}")
        width = max([len(c.name) for c in self.columns] + [6])
        lines.append(f"  {'column':<{width}}  {'kind':<11}  {'missing':>7}  {'distinct':>8}  examples")
        for column in self.columns:
            examples = ", ".join(_short(v) for v in column.examples)
            note = f"  [{column.note}]" if column.note else ""
            lines.append(f"  {column.name:<{width}}  {column.kind:<11}  {column.missing:>7}  {column.distinct:>8}  "
                         f"{examples}{note}")
        lines += [f"  note: {note}" for note in self.notes]
        return "\n".join(lines)


def _short(value, limit: int = 20) -> str:
    text = str(value).replace("\r", "\\r").replace("\n", "\\n")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def infer_schema(sample: pa.Table, *, label: str, task: str = CLASSIFICATION, id_columns=(), categorical_columns=(),
                 max_categories: int = 100_000, max_classes: int = 50, native_types=None,
                 sample_note: str = "", locate=None, datetime_columns=(), invalid: str = "stop") -> InferredSchema:
    """Decide the kind of every column of ``sample``.

    Parameters
    ----------
    sample : pyarrow.Table
        Sampled rows; columns as strings (nulls are missing values), except
        those listed in ``native_types``.
    label, task, id_columns, categorical_columns, datetime_columns, max_categories, max_classes
        As in :func:`questlearn.split.split_csv`.
    native_types : dict, optional
        Column types a typed source (Parquet) declares
        (:func:`questlearn.io._parquet_columns.native_types`); numbers, booleans,
        decimals and durations are numeric, strings are decided as in a CSV,
        dates and times (sampled as ISO-8601 text) and anything else are
        kept as ``text``.
    sample_note : str
        Where the sample came from, for the report.
    locate : callable, optional
        ``locate(row) -> (file, line or None, byte offset)`` for a sample row.
    invalid : str
        What the split does with a value a numeric or datetime column cannot
        read (:class:`~questlearn.split.SplitParameters`' ``invalid``): with
        ``"stop"`` the few such values a sample tolerates are problems, with
        ``"missing"`` notes. A datetime column's sample tolerates up to
        :func:`~questlearn.schema.datetimes.tolerated_unreadable` of them, each
        named in the report with its line.

    Returns
    -------
    InferredSchema
    """
    from . import datetimes as dt

    native_types = native_types or {}
    kinds, reports, problems, location = {}, [], [], None
    formats = {}
    label_numeric = False
    for name in sample.column_names:
        column = sample[name]
        present = column.drop_null()
        uniques = pc.unique(present) if len(present) else None
        missing, distinct = column.null_count, len(uniques) if len(present) else 0
        examples = [_plain(v) for v in uniques.slice(0, 3).to_pylist()] if len(present) else []
        native = native_types.get(name)
        numeric_native = native is not None and (pa.types.is_integer(native) or pa.types.is_floating(native)
                                                 or pa.types.is_boolean(native) or pa.types.is_decimal(native)
                                                 or pa.types.is_duration(native))
        string_native = native is None or pa.types.is_string(native) or pa.types.is_large_string(native) \
            or pa.types.is_dictionary(native)
        note = ""
        if name == label:
            kind = LABEL
            if missing:
                problems.append(f"the label {name!r} is missing in {missing} sampled rows: every row needs a label; "
                                "add --drop-missing-labels to leave such rows out (counted in the manifest), "
                                "or set the missing-value tokens (--na-value, --no-default-na)")
                if location is None and locate is not None:
                    location = locate(pc.index(pc.is_null(column), True).as_py())
            numbers = numeric_native or (string_native and _non_numbers(present)[0] == 0 and len(present) > 0)
            if task == REGRESSION:
                if not numbers:
                    bad = _non_numbers(present)[1]
                    problems.append(f"--task regression needs a numeric label, but {name!r} holds {bad[:3]} in the sample")
                label_numeric = True
                note = "regression target"
            else:
                label_numeric = bool(numbers)
                as_numbers = pc.cast(pc.utf8_trim_whitespace(present), pa.float64()) if numbers and not numeric_native \
                    else present
                classes = len(pc.unique(label_strings(as_numbers))) if len(present) else 0
                distinct = classes
                note = f"{classes} classes in the sample" + (", compared as numbers" if numbers else "")
                if classes > max_classes:
                    advice = ("it looks like a quantity: use --task regression (Python: task='regression')"
                              if numbers else "is it the right column? (--label NAME)")
                    problems.append(f"the label {name!r} has {classes} distinct values in the sample, more than "
                                    f"--max-classes {max_classes}: {advice}, or raise --max-classes")
        elif name in id_columns:
            kind = IDENTIFIER
        elif name in datetime_columns:
            fmt = dt.detect_format(present, tolerate=True) if len(present) else None
            if fmt is None and len(present):
                failed = pc.unique(present.take(dt.unreadable(present, dt.closest_format(present)))).to_pylist()
                problems.append(f"--datetime-column {name!r}: sampled values such as {failed[:3]} are not dates or "
                                "times in a format questlearn reads (ISO 8601, YYYY/MM/DD, DD.MM.YYYY, MM/DD/YYYY, "
                                "each with an optional time), and more than "
                                f"{dt.tolerated_unreadable(len(present))} of {len(present)} sampled values fail to "
                                "parse in any one format")
            kind, formats[name] = DATETIME, fmt
            note = _datetime_note(fmt)
        elif name in categorical_columns:
            kind = CATEGORICAL
            if distinct > max_categories:
                note = f"{distinct} values: the {max_categories} most frequent kept, the others hashed"
        elif numeric_native:
            kind = NUMERIC
            if pa.types.is_duration(native):
                note = "duration, read as seconds"
            elif pa.types.is_decimal(native):
                note = f"{native}, read as float64"
        elif native is not None and pa.types.is_time(native):
            kind, note = TEXT, f"time of day ({native}): kept as text, not a feature"
        elif native is not None and (pa.types.is_timestamp(native) or pa.types.is_date(native)):
            fmt = dt.detect_format(present) if len(present) else None
            kind, formats[name] = DATETIME, fmt
            note = _datetime_note(fmt, native)
        elif not string_native:
            kind, note = TEXT, f"type {native} is not used as a feature"
        elif not len(present):
            kind, note = NUMERIC, "no values in the sample: all missing"
        else:
            bad_count, bad_values = _non_numbers(present)
            fmt = dt.detect_format(present, tolerate=True) if bad_count == len(present) else None
            if bad_count == 0:
                kind = NUMERIC
            elif fmt is not None:
                kind, formats[name] = DATETIME, fmt
                note = _datetime_note(fmt)
            elif bad_count <= len(present) // 2 and len(bad_values) <= 3:
                kind = NUMERIC
                shown = ", ".join(repr(v) for v in bad_values)
                first = bad_values[0]
                if invalid == "missing":
                    note = f"numeric except {shown} ({bad_count} of {len(present)} sampled values): read as missing " \
                           "(--invalid missing)"
                else:
                    problems.append(
                        f"column {name!r} is numeric except for {shown} ({bad_count} of {len(present)} sampled "
                        f"values): if {first!r} marks a missing value, add --na-value {_shell(first)} (Python: "
                        f"na_values=[{first!r}]); "
                        f"if the column is a category, declare --categorical-column {_shell(name)}; to read every "
                        "value that is not a number as missing (counted in the manifest), add --invalid missing")
                    note = f"numeric except {shown}"
                    if location is None and locate is not None:
                        location = locate(pc.index(column, first).as_py())
            elif _looks_like_text(present, distinct):
                kind, note = TEXT, "free text (long, mostly distinct values): not a feature"
            elif len(present) >= IDENTIFIER_MIN_VALUES and distinct >= IDENTIFIER_SHARE * len(present):
                kind = IDENTIFIER
                note = (f"looks like an identifier ({distinct} of {len(present)} sampled values distinct): not a "
                        f"feature; --categorical-column {_shell(name)} makes it one")
            else:
                kind = CATEGORICAL
                if distinct > max_categories:
                    note = f"{distinct} values: the {max_categories} most frequent kept, the others hashed"
        if kind == DATETIME and string_native and formats[name] is not None:  # the few values its format may not read
            unread = _unreadable_datetimes(name, column, formats[name], invalid, locate)
            if unread is not None:
                note += f"; {unread[0]}"
                if unread[1] is not None:
                    problems.append(unread[1])
                    location = location or unread[2]
        kinds[name] = kind
        reports.append(ColumnReport(name, kind, missing, distinct, examples, note))
    return InferredSchema(kinds, label_numeric, reports, sample.num_rows, sample_note, problems, location,
                          sample=sample, datetime_formats=formats)


IDENTIFIER_MIN_VALUES = 20  # fewer sampled values say too little to call a column an identifier
IDENTIFIER_SHARE = 0.9  # an identifier: at least this share of its sampled values distinct
TEXT_MIN_LENGTH = 30  # free text: values this long on average (and mostly distinct)


def _looks_like_text(present, distinct: int) -> bool:
    """Long, mostly distinct strings with spaces: free text, not a category."""
    if distinct < 0.5 * len(present):
        return False
    lengths = pc.utf8_length(present)
    spaced = pc.sum(pc.cast(pc.match_substring(present, " "), pa.int64())).as_py() or 0
    return (pc.mean(lengths).as_py() or 0) >= TEXT_MIN_LENGTH and spaced >= 0.5 * len(present)


def _unreadable_datetimes(name: str, column, fmt, invalid: str, locate):
    """The sampled values of a datetime column that ``fmt`` does not read (tolerated by
    :func:`~questlearn.schema.datetimes.detect_format`): None when there are none, else ``(note naming them
    and their lines, problem or None, location of the first)``; a problem under ``invalid="stop"``."""
    from . import datetimes as dt

    rows = dt.unreadable(column, fmt)
    if not len(rows):
        return None
    named = []
    for row in rows[:3].tolist():
        value = column[row].as_py()
        where = ""
        if locate is not None:
            path, line, byte = locate(row)
            where = f" (line {line})" if line is not None else f" (byte offset {byte} of {path})"
        named.append(f"{value!r}{where}")
    more = f" and {len(rows) - 3} more" if len(rows) > 3 else ""
    first = column[int(rows[0])].as_py()
    note = f"unreadable in the sample: {', '.join(named)}{more}"
    if invalid == "missing":
        return note + " (read as missing: --invalid missing)", None, None
    problem = (f"column {name!r} holds {first!r}, which {dt.why_unreadable(first, fmt)} ({len(rows)} of "
               f"{len(column) - column.null_count} sampled values of this datetime column); fix the value, add it as a "
               f"missing-value token (--na-value), or add --invalid missing to read every unreadable date or number "
               "as missing (counted in the manifest)")
    return note, problem, (locate(int(rows[0])) if locate is not None else None)


def _datetime_note(fmt, native=None) -> str:
    """What the schema table says of a datetime column."""
    if fmt is None:
        return "datetime: no values in the sample"
    note = f"datetime ({fmt.name}" + (f", {native}" if native is not None else "") + "): days, hour, weekday, month"
    return note + (f"; {fmt.note}" if fmt.note else "")


def _plain(value):
    """A sampled value as JSON can hold it (the report is journaled): numbers, strings and booleans as they
    are, anything else (a date, a decimal, bytes) as its text."""
    return value if value is None or isinstance(value, (str, int, float, bool)) else str(value)


def _non_numbers(present) -> tuple[int, list]:
    """How many values are not numbers, and the first few distinct ones."""
    if not len(present) or not (pa.types.is_string(present.type) or pa.types.is_large_string(present.type)):
        return 0, []
    numbers = pc.match_substring_regex(present, NUMBER_PATTERN)
    bad = present.filter(pc.invert(numbers))
    return len(bad), pc.unique(bad).slice(0, 4).to_pylist()


def _shell(text: str) -> str:
    import shlex

    return shlex.quote(text)
