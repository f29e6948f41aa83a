"""Check and encode one parsed chunk in source order: the split's per-chunk work that needs no split state.

A stage of the split's pass, run in its own thread between the parse and
the deal (:mod:`questlearn.split._sequential`): it refuses missing labels (or, with
``drop_missing_labels``, drops their rows and counts them), infinities,
NaN written as a value and numbers beyond float32 (each with its line), and
parses its datetime columns (a value the sample's format does not read
stops the split with its line, or with ``invalid="missing"`` is missing and
counted, like the numbers the reader read as missing), and computes the chunk's column statistics
and its model-ready rows (:meth:`questlearn.schema.encoding.Encoding.encode`). What depends on the rows
before it (the running statistics, the label's class codes, where each row
goes) stays in the pass, which merges these results in source order.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..io._parse import Chunk
from ..io._rowchecks import check_label_present, check_numbers
from ..schema._columns import CATEGORICAL, DATETIME, LABEL, NUMERIC, REGRESSION, NumericStats, Vocabulary, label_strings
from ..schema.encoding import MAX_VALUE_CHARACTERS, Encoding


@dataclass
class PreparedChunk:
    """A chunk checked and encoded, its rows in source order.

    Attributes
    ----------
    chunk : Chunk
    numbers : numpy.ndarray
        ``(rows, numbers columns)`` float32, the encoded numbers.
    codes : numpy.ndarray
        ``(rows, code columns)``, the category codes.
    numeric_stats : dict
        ``{numbers column: NumericStats}`` of this chunk (a datetime's ``t.days`` included).
    category_counts : dict
        ``{categorical column: int64 array}``: rows per code (missing, the
        out-of-vocabulary buckets, the vocabulary).
    targets : numpy.ndarray or None
        float32 regression targets (None for classification).
    dropped : int
        Rows read but dropped for a missing label (``chunk`` holds the rest;
        ``chunk.kept`` their positions among the rows read).
    """

    chunk: Chunk
    numbers: np.ndarray
    codes: np.ndarray
    numeric_stats: dict
    category_counts: dict
    targets: np.ndarray | None
    dropped: int = 0


def prepare_chunk(chunk: Chunk, *, kinds: dict, label: str, task: str, encoding: Encoding,
                  drop_missing_labels: bool = False, invalid: str = "stop") -> PreparedChunk:
    """Check ``chunk``'s values and encode its rows (see :class:`PreparedChunk`).

    A row whose label is missing stops the split, or is dropped (before any
    other check, and counted) when ``drop_missing_labels``. A datetime value
    its column's format does not read stops the split, or with ``invalid="missing"``
    is missing and counted in its ``t.days`` statistics' ``invalid``, like the
    numbers the reader read as missing (``chunk.invalid``).
    """
    label_column = chunk.table[label]
    dropped = 0
    if drop_missing_labels and label_column.null_count:
        chunk, dropped = _without_missing_labels(chunk, label_column)
    else:
        check_label_present(chunk, label, label_column)
    numbers, strings, parts, stats, targets = {}, {}, {}, {}, None
    for name in chunk.table.column_names:
        kind = kinds[name]
        if kind == NUMERIC or (kind == LABEL and task == REGRESSION):
            column = chunk.table[name]
            values = float_values(column)
            if kind == NUMERIC:
                block = NumericStats.of_block(values)
                block.invalid = chunk.invalid_count(name)
                check_numbers(chunk, name, values, column, block.extremes, nan_count=block.missing)
                numbers[name], stats[name] = values, block
            else:
                check_numbers(chunk, name, values, column)
                targets = values.astype(np.float32)
        elif kind == CATEGORICAL:
            strings[name] = chunk.table[name]
        elif kind == DATETIME:
            days, unreadable = _datetime_parts(chunk, name, encoding, parts, invalid)
            numbers[f"{name}.days"], stats[f"{name}.days"] = days, NumericStats.of_block(days)
            stats[f"{name}.days"].invalid = unreadable
    features, codes, counts = encoding.encode(numbers, strings, parts)
    # the pass needs only the label column (and the block, for locations and CSV shards): the parsed
    # feature columns are let go here, not held while the chunk waits to be dealt and written
    chunk = replace(chunk, table=chunk.table.select([label]))
    return PreparedChunk(chunk, features, codes, stats, counts, targets, dropped)


def _datetime_parts(chunk: Chunk, name: str, encoding: Encoding, parts: dict, invalid: str):
    """Parse a datetime column with the sample's format: its hour, weekday and month codes go to ``parts``;
    return its days since 1970 and how many values the format did not read (read as missing). Such a
    value stops the split, naming its row, unless ``invalid`` is ``"missing"``."""
    from ..schema import datetimes as dt

    days, codes, bad = encoding.datetime_inputs(name, chunk.table[name])
    unreadable = 0
    if bad is not None:
        fmt = encoding.datetime_format(name)
        if invalid != "missing":
            value = chunk.table[name][int(bad)].as_py()
            raise chunk.error(int(bad), f"column {name!r} holds {value!r}, which {dt.why_unreadable(value, fmt)}; "
                              "fix the value, add it as a missing-value token (--na-value), add --invalid missing "
                              "to read every unreadable date or number as missing (counted in the manifest), or "
                              f"declare the column --categorical-column {name}")
        unreadable = len(dt.unreadable(chunk.table[name], fmt))
    parts.update(codes)
    return days, unreadable


def label_codes(chunk: Chunk, vocabulary: Vocabulary, params, label_numeric: bool) -> np.ndarray:
    """Class codes of a chunk's label column, the classes met first added to ``vocabulary`` (each
    distinct value named and looked up once); more than ``params.max_classes`` classes is refused."""
    column = chunk.table[params.label]
    encoded = pc.dictionary_encode(column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column)
    indices = encoded.indices.to_numpy(zero_copy_only=False)
    repeats = np.bincount(indices, minlength=len(encoded.dictionary))
    classes = label_strings(pa.chunked_array([encoded.dictionary]))
    lengths = pc.fill_null(pc.utf8_length(classes), 0).to_numpy()
    if len(lengths) and lengths.max() > MAX_VALUE_CHARACTERS:  # a manifest records no longer class
        longest = int(lengths.argmax())
        raise chunk.error(int(np.flatnonzero(indices == longest)[0]),
                          f"the label {params.label!r} holds a value of {int(lengths[longest])} characters, more than "
                          f"the {MAX_VALUE_CHARACTERS} a class may have: is it the right column? (--label NAME)")
    try:
        codes = vocabulary.encode(classes, repeats)
    except OverflowError:
        raise chunk.error(0, f"the label {params.label!r} has more than {params.max_classes} distinct values "
                          "in the rows up to this block; " + ("use --task regression for a numeric target, or "
                          if label_numeric else "") + "raise --max-classes") from None
    return codes.astype(np.int32)[indices]


def _without_missing_labels(chunk: Chunk, label_column) -> tuple[Chunk, int]:
    """``chunk`` without its rows whose label is missing (``chunk.kept``: where the rest were read), and how many went."""
    present = label_column.is_valid()
    kept = np.flatnonzero(present.to_numpy(zero_copy_only=False))
    dropped = len(chunk) - len(kept)
    if chunk.kept is not None:
        kept = chunk.kept[kept]
    return replace(chunk, table=chunk.table.filter(present), kept=kept), dropped


def float_values(column) -> np.ndarray:
    """A float64 column as numpy, NaN for missing (one copy, however many chunks)."""
    chunks = getattr(column, "chunks", [column])
    if len(chunks) == 1:
        return chunks[0].to_numpy(zero_copy_only=False)
    if not chunks:
        return np.empty(0, np.float64)
    return np.concatenate([piece.to_numpy(zero_copy_only=False) for piece in chunks])
