"""The reader of Parquet sources: one file or several, read one batch of a row group at a time.

Every file must have the first file's schema (names and types). How each
column is carried (numbers, durations, strings, dates; nested columns left
out or refused) is decided by :mod:`questlearn.io._parquet_columns`; a
damaged file stops with file, row group and column; an error in a value
names the file and the row.
"""

from __future__ import annotations

from typing import Iterator

import pyarrow as pa

from ..schema import _sampling
from ..schema._columns import LABEL, NUMERIC, arrow_types
from ._parquet_columns import (
    EXACT_INTEGERS,
    ParquetFormatError,
    as_float,
    carried_column,
    carried_table,
    left_out_notes,
    native_types,
    open_parquet,
    parquet_columns,
    precision_notes,
    read_batches,
    reading_of,
    readings_of,
)
from ._parse import Chunk
from ._reader import InputBlock, Sample, SourceReader
from .sources import stored_sha256

SPLIT_BATCH_ROWS = 32_768  # about the rows of one CSV block: the memory the split's stages hold stays alike
INPUT_BATCH_ROWS = 65_536  # rows per block of an input to a model


class ParquetReader(SourceReader):
    """A Parquet source (see :class:`SourceReader`); ``delimiter`` only shapes its CSV copies' header."""

    format = "parquet"

    def _open(self, check_names: bool) -> None:
        files = self.readable
        self.schema = open_parquet(files[0]).schema_arrow
        for other in files[1:]:
            if not open_parquet(other).schema_arrow.equals(self.schema):
                raise ParquetFormatError(f"{other.shown}: its Parquet schema differs from {files[0].shown}'s; "
                                         f"every file of {self.role} must have the same columns and types")

    @property
    def names(self) -> list:
        return list(self.schema.names)

    def columns(self, params) -> list:
        """The carried columns (:func:`~questlearn.io._parquet_columns.parquet_columns` refuses or leaves out the others)."""
        return list(parquet_columns(self.readable, params).readings)

    def missing_tokens(self, tokens):
        return None  # a Parquet file marks a missing value itself

    def header_bytes(self, names: list) -> bytes:
        return (self.delimiter.join(_csv_field(n, self.delimiter) for n in names) + "\n").encode()

    def sample(self, params) -> Sample:
        files = self.readable
        columns = parquet_columns(files, params)
        table, note = _sampling.sample_parquet(files, columns.readings)
        table, largest = _numbers_as_read(table, columns.largest)
        return Sample(table, note, native_types=native_types(self.schema),
                      notes=precision_notes(largest) + left_out_notes(columns.left_out))

    def estimate_rows(self, extent=None) -> tuple[int, bool]:
        """The rows the files' metadata count: exact."""
        return sum(open_parquet(f).metadata.num_rows for f in self.readable), True

    def chunks(self, source_file, position: dict, kinds: dict, label_numeric: bool, params):
        """``(chunk, journal position, bytes read, bytes consumed, 0)`` for each batch of a Parquet file,
        from batch ``position["batch"]`` on; an empty (0-byte) file has none."""
        if not source_file.bytes:
            self.sha256 = stored_sha256(source_file)
            return
        parquet = open_parquet(source_file)
        readings = readings_of(parquet.schema_arrow)
        total_rows = max(parquet.metadata.num_rows, 1)
        wanted = list(arrow_types(kinds, label_numeric))
        copies = "csv" in params.formats
        if not copies:  # without CSV copies, only the features and the label are read
            readings = {name: readings[name] for name in wanted}
        first, row, index = position["batch"], 0, 0
        for group in range(parquet.metadata.num_row_groups):  # one row group at a time: memory is one group's
            for batch in read_batches(parquet, source_file, group, list(readings), SPLIT_BATCH_ROWS):
                if index >= first:
                    table = carried_table(pa.Table.from_batches([batch]), readings)
                    columns, invalid = {}, {}
                    for name in wanted:
                        try:
                            columns[name] = cast_column(table[name], kinds[name], label_numeric)
                        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as error:
                            numbers = _numbers_of_text(table[name], kinds[name], params.invalid)
                            if numbers is None:
                                raise _conversion_error(source_file.shown, row, table[name], name, error) from None
                            columns[name], unreadable = numbers
                            invalid[name] = unreadable
                    chunk = Chunk(pa.table(columns), source_file.shown, None, row,
                                  full_table=table if copies else None,  # CSV shards only
                                  invalid=invalid or None)
                    read = source_file.bytes * (row + len(table)) // total_rows
                    yield chunk, {"batch": index + 1}, read, source_file.bytes * len(table) // total_rows, 0
                row += batch.num_rows
                index += 1
        self.sha256 = stored_sha256(source_file)

    def blocks(self, types: dict, null_values=None) -> Iterator[InputBlock]:
        done = 0
        for source_file in self.readable:
            parquet, first = open_parquet(source_file), 0
            rows = max(parquet.metadata.num_rows, 1)
            batches = (batch for group in range(parquet.metadata.num_row_groups)  # one row group at a time
                       for batch in read_batches(parquet, source_file, group, list(types), INPUT_BATCH_ROWS))
            for batch in batches:
                table = {}
                for name, kind in types.items():
                    try:
                        column = carried_column(batch.column(name), reading_of(self.schema.field(name).type))
                        table[name] = as_float(column) if kind == pa.float64() else column.cast(kind)
                    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as error:
                        raise ParquetFormatError(f"{source_file.shown}: rows {first + 1}-{first + batch.num_rows}, "
                                                 f"column {name!r}: cannot read it as the model's {kind}: {error}") from None
                chunk = Chunk(pa.table(table), source_file.shown, None, first)
                first += batch.num_rows
                yield InputBlock(chunk, done + source_file.bytes * first // rows)
            done += source_file.bytes


def _numbers_of_text(column, kind: str, invalid: str):
    """A numeric text column with values that are no number, read as missing under ``--invalid missing``
    (:func:`~questlearn.io._rowchecks.numbers_or_missing`); None otherwise."""
    from ._rowchecks import numbers_or_missing

    text = pa.types.is_string(column.type) or pa.types.is_large_string(column.type)
    return numbers_or_missing(column) if invalid == "missing" and kind == NUMERIC and text else None


def _conversion_error(path: str, first_row: int, column, name: str, error: Exception) -> ParquetFormatError:
    """The error of a batch whose column ``name`` the pass cannot read as numbers: the first value that
    is no number, with its row and the fix, where the column is text; else pyarrow's reason."""
    from ._rowchecks import numbers_or_missing

    text = pa.types.is_string(column.type) or pa.types.is_large_string(column.type)
    unreadable = numbers_or_missing(column)[1] if text else []
    if not len(unreadable):
        return ParquetFormatError(f"{path}: rows {first_row + 1}-{first_row + len(column)}, column {name!r}: {error} "
                                  "(the sample made this column numeric)")
    at = int(unreadable[0])
    value = column[at].as_py()
    return ParquetFormatError(f"{path}: row {first_row + at + 1}: column {name!r} holds {value!r}, which is not a "
                              "number, but the sample made it numeric; fix the value, declare --categorical-column "
                              f"{name}, or add --invalid missing to read "
                              "every value that is no number as missing (counted in the manifest)")


def cast_column(column, kind: str, label_numeric: bool):
    """A carried Parquet column (:func:`~questlearn.io._parquet_columns.carried_column`) in the type the pass reads it as."""
    if kind == NUMERIC or (kind == LABEL and label_numeric):
        return as_float(column)
    return column.cast(pa.string())


def _numbers_as_read(sample, largest: dict):
    """The Parquet sample with decimals, and integers past 2**53, as the float64 the pass reads them as;
    and ``{column: largest magnitude}`` of those integers (statistics or sample)."""
    import pyarrow.compute as pc

    largest, columns = dict(largest), {}
    for name in sample.column_names:
        column = sample[name]
        if pa.types.is_integer(column.type) and column.null_count < len(column):
            extremes = pc.min_max(column).as_py()
            top = max(abs(extremes["min"]), abs(extremes["max"]))
            if top > EXACT_INTEGERS:
                largest[name] = max(top, largest.get(name, 0))
        if pa.types.is_decimal(column.type) or name in largest:
            column = as_float(column)
        columns[name] = column
    return pa.table(columns), largest


def _csv_field(text: str, delimiter: str) -> str:
    """A column name as a field of the CSV copies' header (quoted when it must be)."""
    if any(c in text for c in (delimiter, '"', "\n", "\r")):
        return '"' + text.replace('"', '""') + '"'
    return text
