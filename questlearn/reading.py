"""Turn validated records into typed columns, the same way for every reader.

The strict scanner (:mod:`questlearn.csvscan`) finds records; this module
parses them with pyarrow using the split's schema and missing-value tokens,
so ``split``, the CSV loader and ``predict`` read a value identically. A
:class:`Chunk` is a parsed run of source rows that knows where each row came
from (file, line, byte offset; for Parquet, the row number) and how to give
back the rows as CSV bytes for the CSV shards.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv

from .csvscan import CsvFormatError, RecordBlock


def parse_records(data: bytes, names: list, *, delimiter: str = ",", types=None, include=None,
                  null_values=("",), block_size: int | None = None, newlines_in_values: bool = True) -> pa.Table:
    """Parse complete, validated CSV records (no header) into a table.

    Parameters
    ----------
    data : bytes
        Records, each ending in a line terminator.
    names : list of str
        Column names from the header.
    delimiter : str
    types : dict, optional
        ``{column: pyarrow type}``; columns not named are inferred.
    include : list of str, optional
        Columns to return (default all).
    null_values : sequence of str
        Strings that mean "missing" in every column, quoted or not.
    block_size : int, optional
        Parse in pieces of this many bytes, on pyarrow's threads (default:
        the whole of ``data`` as one piece).
    newlines_in_values : bool
        False parses faster, but splits a record at a newline inside quotes;
        with two or more columns such a split record always has the wrong
        field count, so pyarrow refuses it (then parse again with True).
    """
    return pa_csv.read_csv(
        io.BytesIO(data),
        read_options=pa_csv.ReadOptions(column_names=names, block_size=block_size or max(len(data) + 1, 1 << 20)),
        parse_options=pa_csv.ParseOptions(delimiter=delimiter, newlines_in_values=newlines_in_values),
        convert_options=pa_csv.ConvertOptions(
            column_types=types or {}, include_columns=include or [], null_values=list(null_values),
            strings_can_be_null=True, quoted_strings_can_be_null=True,
        ),
    )


@dataclass
class Chunk:
    """Parsed rows of one source file, with their origin.

    Attributes
    ----------
    table : pyarrow.Table
        The parsed columns.
    path : str
        The file, as the user named it.
    block : RecordBlock or None
        The CSV records (None for Parquet).
    first_row : int
        For Parquet: the file's row number of the first row.
    full_table : pyarrow.Table or None
        For Parquet: every column, as read (written to the CSV shards).
    """

    table: pa.Table
    path: str
    block: RecordBlock | None = None
    first_row: int = 0
    full_table: pa.Table | None = None

    def __len__(self) -> int:
        return self.table.num_rows

    def error(self, row: int, problem: str) -> ValueError:
        """An error for row ``row`` of this chunk, naming where it is."""
        if self.block is not None:
            line, byte = self.block.locate(row)
            return CsvFormatError(self.path, line, byte, problem)
        return ValueError(f"{self.path}: row {self.first_row + row + 1}: {problem}")

    def record_bytes(self, rows: np.ndarray, delimiter: str = ",") -> list:
        """The given rows as CSV records: the source bytes themselves for a
        CSV source, written by pyarrow for a Parquet source."""
        if self.block is not None:
            return _gather_records(memoryview(self.block.data), self.block.starts[rows], self.block.stops[rows])
        sink = io.BytesIO()
        table = self.full_table if self.full_table is not None else self.table
        pa_csv.write_csv(table.take(pa.array(rows)), sink,
                         pa_csv.WriteOptions(include_header=False, delimiter=delimiter))
        return [sink.getvalue()]


def reported_value(error: Exception):
    """The value pyarrow named in a conversion error (``invalid value 'x'``), or None."""
    message, marker = str(error), "invalid value '"
    if marker not in message:
        return None
    start = message.index(marker) + len(marker)
    return message[start: message.rindex("'")]


def first_row_holding(strings: pa.Table, columns, value):
    """``(column, row)`` of the first cell equal to ``value`` among ``columns`` (parsed as strings), or None."""
    import pyarrow.compute as pc

    if value is None:
        return None
    for name in columns:
        hits = pc.equal(strings[name], value).fill_null(False)
        if pc.any(hits).as_py():
            return name, pc.index(hits, True).as_py()
    return None


def _gather_records(memory: memoryview, starts: np.ndarray, stops: np.ndarray) -> list:
    """Raw bytes of the given records, merging runs of adjacent records."""
    if not len(starts):
        return []
    breaks = np.flatnonzero(starts[1:] != stops[:-1]) + 1
    run_starts = starts[np.concatenate(([0], breaks))].tolist()
    run_stops = stops[np.concatenate((breaks - 1, [len(starts) - 1]))].tolist()
    return [memory[a:b] for a, b in zip(run_starts, run_stops)]
