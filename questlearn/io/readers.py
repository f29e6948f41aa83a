"""One reader per source format, behind one interface: :func:`reader_for` picks it.

A source's files are read by the reader of their format
(:class:`~questlearn.io._csv_reader.CsvReader`, plain or compressed CSV;
:class:`~questlearn.io._parquet_reader.ParquetReader`), each a
:class:`SourceReader` (:mod:`questlearn.io._reader`): open the files and check
their headers agree, give the columns, sample for the schema inference,
read typed chunks with their positions, locate an error. A format's rules
live in its reader's module, and nowhere else.
"""

from __future__ import annotations

from ._csv_reader import CsvReader
from ._parquet_reader import ParquetReader
from ._reader import InputBlock, Sample, SourceReader, header_difference, with_bytes
from .csvscan import DEFAULT_BLOCK_SIZE

__all__ = [
    "CsvReader",
    "InputBlock",
    "ParquetReader",
    "Sample",
    "SourceReader",
    "header_difference",
    "reader_for",
    "with_bytes",
]
READERS = (CsvReader, ParquetReader)


def reader_for(files, *, delimiter: str = ",", block_size: int = DEFAULT_BLOCK_SIZE, check_names: bool = True,
               role: str = "a source") -> SourceReader:
    """The reader of ``files``' format (see :class:`SourceReader` for the parameters).

    Raises
    ------
    InputFormatError
        A file that cannot be read, or whose header or schema differs from
        the first file's.
    """
    kind = with_bytes(files)[0].format
    reader = next(r for r in READERS if r.format == kind)
    return reader(files, delimiter=delimiter, block_size=block_size, check_names=check_names, role=role)
