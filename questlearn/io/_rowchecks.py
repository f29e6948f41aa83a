"""Checks every parsed block passes, and the errors that name the fix.

Each error names file, line and byte offset (CSV) or file and row
(Parquet), and says what to change: a missing-value token to add, a
column to declare categorical, a number float32 cannot hold, or
``--invalid missing``; with that option, :func:`parse_reading_invalid_as_missing`
reads a value that is no number as missing and says where it was.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..schema._columns import LABEL, NUMBER_PATTERN, NUMERIC, arrow_types, looks_like_token
from ._parse import Chunk, parse_records
from .csvscan import CsvFormatError

FLOAT32_MAX = float(np.finfo(np.float32).max)


def check_label_present(chunk: Chunk, name: str, column) -> None:
    missing = np.flatnonzero(column.is_null().to_numpy(zero_copy_only=False))
    if len(missing):
        raise chunk.error(int(missing[0]), f"missing label: column {name!r} is empty or a missing-value token in "
                          "this row; add --drop-missing-labels to leave such rows out (counted in the manifest), "
                          "or choose the missing-value tokens with --na-value / --no-default-na")


def check_numbers(chunk: Chunk, name: str, values: np.ndarray, column, extremes=None, nan_count=None) -> None:
    """Refuse infinities, NaN written as a number (in CSV), and values float32 cannot hold.

    ``extremes`` is the block's ``(min, max)`` and ``nan_count`` its count of
    NaN when already known (from the statistics); the rows are only searched
    when something is wrong.
    """
    if nan_count is None:
        nan_count = np.count_nonzero(np.isnan(values))
    if chunk.block is not None and nan_count != column.null_count:
        nan_written = np.isnan(values) & ~column.is_null().to_numpy(zero_copy_only=False)
        row = int(np.flatnonzero(nan_written)[0])
        raise chunk.error(row, f"column {name!r} holds NaN written as a value; add it as a missing-value token "
                          "(--na-value) or leave the field empty")
    if extremes is None:
        present = values[~np.isnan(values)]
        extremes = (present.min(), present.max()) if len(present) else None
    if extremes is not None and (extremes[0] < -FLOAT32_MAX or extremes[1] > FLOAT32_MAX):
        row = int(np.flatnonzero(np.abs(values) > FLOAT32_MAX)[0])
        what = "an infinite value" if np.isinf(values[row]) else f"{values[row]:g}, beyond float32's range (±3.4e38)"
        raise chunk.error(row, f"column {name!r} holds {what}; questlearn accepts finite numbers within float32's "
                          "range, or a missing value")


def numbers_or_missing(column) -> tuple[pa.Array, np.ndarray]:
    """A string column as float64 with each value that is no number read as missing (``split --invalid
    missing``), and the positions of those values."""
    strings = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    is_number = pc.fill_null(pc.match_substring_regex(strings, NUMBER_PATTERN), True)  # a missing value stays missing
    unreadable = np.flatnonzero(~is_number.to_numpy(zero_copy_only=False))
    kept = pc.if_else(is_number, pc.utf8_trim_whitespace(strings), pa.scalar(None, pa.string()))
    return pc.cast(kept, pa.float64()), unreadable


def parse_reading_invalid_as_missing(data: bytes, names: list, kinds: dict, types: dict, **options):
    """``(table, {numeric column: positions})``: records parsed with ``types``, each value of a numeric
    column that is no number read as missing (:func:`numbers_or_missing`); the label is parsed as
    ``types`` says (a label that is no number still fails)."""
    as_text = {name: pa.string() if kinds.get(name) == NUMERIC else kind for name, kind in types.items()}
    table = parse_records(data, names, types=as_text, include=list(types), **options)
    invalid = {}
    for name in table.column_names:
        if kinds.get(name) == NUMERIC:
            numbers, unreadable = numbers_or_missing(table[name])
            table = table.set_column(table.schema.get_field_index(name), name, numbers)
            if len(unreadable):
                invalid[name] = unreadable
    return table, invalid


def explain_conversion_error(block, error: Exception, path: str, *, names, kinds, label_numeric, delimiter, null_values):
    """Turn pyarrow's conversion error into one with a line and the right fix."""
    message = str(error)
    marker = "invalid value '"
    value = message[message.index(marker) + len(marker): message.rindex("'")] if marker in message else None
    strings = parse_records(block.data, names, delimiter=delimiter,
                            types={n: pa.string() for n in names}, null_values=null_values)
    for name, numeric in arrow_types(kinds, label_numeric).items():
        if numeric != pa.float64():
            continue
        column = strings[name]
        rows = [i for i, v in enumerate(column.to_pylist()) if v is not None and (v == value if value is not None else False)]
        if not rows:
            continue
        line, byte = block.locate(rows[0])
        if kinds[name] == LABEL:
            fix = ("the label's sampled values were all numbers; if this marks a missing label, add --na-value "
                   f"{value!r} (and --drop-missing-labels to leave such rows out)")
        elif looks_like_token(value):
            fix = (f"if {value!r} marks a missing value, add --na-value {value!r} (Python: na_values=[{value!r}]); "
                   f"if the column is a category, declare --categorical-column {name}; to read every value that is "
                   "no number as missing (counted in the manifest), add --invalid missing")
        else:
            fix = (f"write numbers without digit separators, units or spaces; if the column is a category, declare "
                   f"--categorical-column {name} (Python: categorical_columns=[{name!r}]); to read every value that "
                   "is no number as missing (counted in the manifest), add --invalid missing (Python: "
                   "invalid='missing')")
        raise CsvFormatError(path, line, byte,
                             f"column {name!r} holds {value!r}, which is not a number, but the sample made it "
                             f"numeric; {fix}", block.decompressed) from error
    raise error
