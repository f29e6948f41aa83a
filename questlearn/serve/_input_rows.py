"""Read the rows to score: a file or URL as a stream of checked blocks, or a DataFrame or dict of columns.

Both obey the split's number rules (:func:`check_numeric_columns`) and
locate a bad value for the message: file, line and byte for a file
(:class:`~questlearn.io._parse.Chunk`), position and index label for a
DataFrame (:class:`FrameRows`), shifted by :class:`OffsetRows` when the
rows are scored in chunks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..errors import InputFormatError
from ..io._rowchecks import check_numbers
from ..io.csvscan import DEFAULT_BLOCK_SIZE
from ..io.readers import InputBlock, reader_for
from ..io.sources import resolve_sources
from ..split._prepare import float_values


@dataclass
class InputStream:
    """A source opened for reading: its columns, size and blocks."""

    names: list[str]
    total_bytes: int
    blocks: Callable[[dict], Iterator[InputBlock]]  # column types -> parsed blocks


def open_input(source, na_values, block_size: int = DEFAULT_BLOCK_SIZE, delimiter: str = ",",
               storage_options: dict | None = None) -> InputStream:
    """Open a source as a stream of parsed pyarrow tables.

    Every source kind ``split`` accepts (:func:`questlearn.io.sources.resolve_sources`),
    read by the reader of its format (:func:`questlearn.io.readers.reader_for`):
    CSV files plain or compressed, scanned strictly (malformed input stops
    with file, line and byte), several files or a directory (every header
    must equal the first's), or Parquet files read by batch.

    Parameters
    ----------
    source : str, Path or list
        The input.
    na_values : list of str
        Tokens read as missing (the manifest's ``schema.na_values``).
    block_size : int
        Bytes per block; memory is a small multiple of this.
    delimiter : str
        The CSV field delimiter the model's split used.
    storage_options : dict, optional
        Options of the object store's filesystem, for a source given as a URL
        (:mod:`questlearn.io.storage`).

    Returns
    -------
    InputStream
        ``blocks(column_types)`` yields :class:`~questlearn.io.readers.InputBlock`
        objects holding only the requested columns, parsed as the given
        pyarrow types; the float64 columns passed
        :func:`~questlearn.io._rowchecks.check_numbers`.
    """
    reader = reader_for(resolve_sources(source, storage_options), delimiter=delimiter, block_size=block_size,
                        check_names=False, role="an input")

    def blocks(types: dict) -> Iterator[InputBlock]:
        for block in reader.blocks(types, na_values):
            check_numeric_columns(block.chunk, types)
            yield block

    return InputStream(names=reader.names, total_bytes=sum(f.bytes for f in reader.readable), blocks=blocks)


def check_numeric_columns(rows, types: dict) -> None:
    """Apply the split's number rules (:func:`~questlearn.io._rowchecks.check_numbers`) to the float64 columns.

    Parameters
    ----------
    rows : Chunk or FrameRows
        The parsed rows (``rows.table``) and where each is, for the message.
    types : dict
        ``{column: pyarrow type}`` of the columns read.
    """
    for name, wanted in types.items():
        if wanted == pa.float64():
            column = rows.table[name]
            check_numbers(rows, name, float_values(column), column)


@dataclass
class FrameRows:
    """Rows of a DataFrame or dict input, located for an error by position and index label.

    Stands in for a :class:`~questlearn.io._parse.Chunk` in
    :func:`check_numeric_columns`: it has no CSV block, so NaN is missing,
    as pandas means it.
    """

    table: pa.Table
    index: object = None  # the DataFrame's index; None for a dict of columns
    block = None

    def error(self, row: int, problem: str) -> ValueError:
        where = f"row {row}" if self.index is None else f"row {row} (index {self.index[row]!r})"
        return InputFormatError(f"the input's {where}: {problem}")


class OffsetRows:
    """Rows located ``start`` rows further into ``rows`` (a chunk of a larger table)."""

    def __init__(self, rows, start: int):
        self.rows, self.start = rows, start

    def error(self, row: int, problem: str) -> ValueError:
        return self.rows.error(self.start + row, problem)


def read_frame(predictor, data) -> tuple[pa.Table, FrameRows]:
    """The columns of a DataFrame or dict the model reads, as it reads them (checked), and where each row is.

    Parameters
    ----------
    predictor : Predictor
        The loaded model (:class:`questlearn.serve.predict.Predictor`): which
        columns to read, as what, and the manifest's missing-value tokens.
    data : pandas.DataFrame or dict
        One entry per column (see :func:`questlearn.serve.predict.predict_frame`).

    Returns
    -------
    tuple of (pyarrow.Table, FrameRows)
        The ids, features and label: a text token of ``na_values`` made
        missing, each feature cast to the type the model reads (a datetime
        feature given as times kept as it is), the numbers checked; and the
        rows, located by position and index label.

    Raises
    ------
    SchemaError, InputFormatError
        A missing feature column, a value that cannot be cast, or a number
        the split refuses.
    """
    is_frame = type(data).__name__ == "DataFrame"
    table = pa.Table.from_pandas(data, preserve_index=False) if is_frame else pa.table(
        {str(k): v if isinstance(v, (pa.Array, pa.ChunkedArray)) else pa.array(np.asarray(v) if not isinstance(v, list) else v)
         for k, v in data.items()})
    types = predictor.column_types(table.column_names)
    na_values = pa.array(predictor.spec["na_values"], pa.string())
    columns = {}
    for name, wanted in types.items():
        column = table[name]
        if name not in predictor.kinds:  # ids and the label pass through as given
            columns[name] = column
            continue
        if predictor.kinds[name] == "datetime" and (pa.types.is_timestamp(column.type) or pa.types.is_date(column.type)):
            columns[name] = column  # read as the times they are, not as text
            continue
        if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
            column = pc.if_else(pc.is_in(column, value_set=na_values), pa.scalar(None, column.type), column)
        try:
            columns[name] = column.cast(wanted)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as error:
            raise InputFormatError(f"column {name!r} cannot be read as {wanted} for the model: {error}") from None
    columns = pa.table(columns)
    rows = FrameRows(columns, data.index if is_frame else None)
    check_numeric_columns(rows, types)
    return columns, rows
