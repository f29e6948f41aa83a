"""Turn validated records into typed columns, the same way for every reader.

The strict scanner (:mod:`questlearn.io.csvscan`) finds records; this module
parses them with pyarrow using the split's schema and missing-value tokens,
so ``split``, the CSV loader and ``predict`` read a value identically. A
:class:`Chunk` is a parsed run of source rows that knows where each row came
from (file, line, byte offset; for Parquet, the row number) and how to give
back the rows as CSV bytes for the CSV shards.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv

from ._parquet_columns import ParquetFormatError
from .csvscan import CsvFormatError, RecordBlock


def parse_records(data: bytes, names: list, *, delimiter: str = ",", types=None, include=None,
                  null_values=("",), block_size: int | None = None, newlines_in_values: bool = True,
                  check_utf8: bool = True) -> pa.Table:
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
        the whole of ``data`` as one piece). A run holding a record longer
        than a piece is parsed again as one piece (pyarrow refuses a record
        that straddles two pieces).
    newlines_in_values : bool
        False parses faster, but splits a record at a newline inside quotes;
        with two or more columns such a split record always has the wrong
        field count, so pyarrow refuses it (then parse again with True).
    check_utf8 : bool
        False skips pyarrow's UTF-8 check of string columns, for records the
        scanners have already checked.
    """
    whole = max(len(data) + 1, 1 << 20)

    def read(piece: int) -> pa.Table:
        return pa_csv.read_csv(
            pa.BufferReader(pa.py_buffer(data)),  # no copy of the records
            read_options=pa_csv.ReadOptions(column_names=names, block_size=piece),
            parse_options=pa_csv.ParseOptions(delimiter=delimiter, newlines_in_values=newlines_in_values),
            convert_options=pa_csv.ConvertOptions(
                column_types=types or {}, include_columns=include or [], null_values=list(null_values),
                strings_can_be_null=True, quoted_strings_can_be_null=True, check_utf8=check_utf8,
            ),
        )

    if not block_size or block_size >= whole:
        return read(whole)
    try:
        return read(block_size)
    except pa.ArrowInvalid as error:
        if "straddl" not in str(error):
            raise
    return read(whole)  # a record longer than a piece: this run as one piece


class RecordParser:
    """Parse runs of records with one schema, cheapest settings first.

    Two settings cost parsing time and are rarely needed:

    * pyarrow compares every cell with every missing-value token, and pandas'
      default list costs about a tenth of the parse. Most of those tokens
      (``NA``, ``NULL``, ``#N/A``...) are not numbers, so in a numeric column
      they fail the conversion anyway; only the tokens a number parser
      accepts (``nan``, ``-999``...) and the empty field are needed to read
      numbers right. A run is first parsed with those
      (:attr:`quick_null_values`), and the other tokens are then looked for in
      the string columns alone. When the conversion fails or a token is
      found, the run is parsed again with every token, and so is each later
      run (the file uses its tokens).
    * With two or more columns, a run is first parsed as if no quoted value
      held a newline: a record split at such a newline has the wrong field
      count, which pyarrow refuses, and the run is parsed again allowing them.

    The table is the same either way: only the work differs.

    Parameters
    ----------
    names : list of str
        Column names from the header.
    types : dict
        ``{column: pyarrow type}`` of the columns to read (float64 or string).
    delimiter : str
    null_values : list of str
        Every missing-value token.
    block_size : int, optional
        As in :func:`parse_records`.
    check_utf8 : bool
        As in :func:`parse_records` (False for runs the scanners checked).
    """

    def __init__(self, names: list, types: dict, *, delimiter: str, null_values, block_size: int | None = None,
                 check_utf8: bool = True):
        self.names, self.types, self.delimiter, self.block_size = names, types, delimiter, block_size
        self.check_utf8 = check_utf8
        self.null_values = list(null_values)
        numbers = {t: _number(t) for t in self.null_values}
        # tokens read as a number other than NaN must be missing at once; a
        # NaN shows in the sum of its column
        self.quick_null_values = [t for t in self.null_values if t == "" or (numbers[t] is not None
                                                                             and not math.isnan(numbers[t]))]
        others = [t for t in self.null_values if t not in self.quick_null_values]
        self._others = pa.array(others, pa.string())
        self._string_columns = [n for n, t in types.items() if pa.types.is_string(t)]
        self._number_columns = [n for n, t in types.items() if not pa.types.is_string(t)]
        self.all_tokens = not others  # True once a run has needed them
        self._newline_settings = (True,) if len(names) < 2 else (False, True)

    def parse(self, data) -> pa.Table:
        """The table of ``data``; for malformed data, raises the
        :class:`pyarrow.ArrowInvalid` of a parse with every token."""
        import pyarrow.compute as pc

        error = None
        for tokens in ((self.null_values,) if self.all_tokens else (self.quick_null_values, self.null_values)):
            for newlines_in_values in self._newline_settings:
                try:
                    table = parse_records(data, self.names, delimiter=self.delimiter, types=self.types,
                                          include=list(self.types), null_values=tokens, block_size=self.block_size,
                                          newlines_in_values=newlines_in_values, check_utf8=self.check_utf8)
                except pa.ArrowInvalid as failure:
                    error = failure
                    continue
                if tokens is self.null_values:
                    self.all_tokens = True
                elif (any(pc.any(pc.is_in(table[n], value_set=self._others)).as_py() for n in self._string_columns)
                      or not all(math.isfinite(pc.sum(table[n]).as_py() or 0.0) for n in self._number_columns)):
                    break  # a token read as a category, or a NaN (a token?): parse with every token
                return table
        raise error


def _number(token: str):
    """The float64 pyarrow's CSV reader reads ``token`` as (``nan``, ``-999``), or None."""
    record = ('"' + token.replace('"', '""') + '"\n').encode("utf-8")
    try:
        table = parse_records(record, ["value"], types={"value": pa.float64()}, null_values=[],
                              newlines_in_values=True)
    except pa.ArrowInvalid:
        return None
    return table["value"][0].as_py() if table.num_rows else None


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
    kept : numpy.ndarray or None
        When rows were dropped from ``table`` (``--drop-missing-labels``):
        the position of each kept row among the rows read (in ``block`` and
        ``full_table``); None when every row read is kept.
    invalid : dict or None
        ``{numeric column: positions among the rows read}`` of the values
        that are no number, read as missing (``split --invalid missing``);
        None when there were none.
    """

    table: pa.Table
    path: str
    block: RecordBlock | None = None
    first_row: int = 0
    full_table: pa.Table | None = None
    kept: np.ndarray | None = None
    invalid: dict | None = None

    def __len__(self) -> int:
        return self.table.num_rows

    def error(self, row: int, problem: str) -> ValueError:
        """An error for row ``row`` of this chunk, naming where it is."""
        row = int(self.read_position(row))
        if self.block is not None:
            line, byte = self.block.locate(row)
            return CsvFormatError(self.path, line, byte, problem, self.block.decompressed)
        return ParquetFormatError(f"{self.path}: row {self.first_row + row + 1}: {problem}")

    def record_bytes(self, rows: np.ndarray, delimiter: str = ",") -> list:
        """The given rows as CSV records: the source bytes themselves for a
        CSV source, written by pyarrow for a Parquet source."""
        if self.block is not None:
            read = self.read_position(rows)
            return _gather_records(memoryview(self.block.data), self.block.starts[read], self.block.stops[read])
        sink = io.BytesIO()
        if self.full_table is not None:
            table, rows = self.full_table, self.read_position(rows)
        else:
            table = self.table
        pa_csv.write_csv(table.take(pa.array(rows)), sink,
                         pa_csv.WriteOptions(include_header=False, delimiter=delimiter))
        return [sink.getvalue()]

    def invalid_count(self, name: str) -> int:
        """How many rows of ``table`` held a value of numeric column ``name`` that is no number (read as missing)."""
        positions = (self.invalid or {}).get(name)
        if positions is None:
            return 0
        return len(positions) if self.kept is None else int(np.isin(positions, self.kept).sum())

    def read_position(self, rows):
        """The positions among the rows read of rows (int or array) of ``table``."""
        return rows if self.kept is None else self.kept[rows]


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
