"""The interface every source reader has (:mod:`questlearn.io.readers` picks one by format).

:func:`~questlearn.io.readers.reader_for` opens the files of a source (:func:`questlearn.io.sources.resolve_sources`)
with the reader of their format: :class:`~questlearn.io._csv_reader.CsvReader`
(plain or compressed CSV: a compressed file is CSV over its decoded stream)
or :class:`~questlearn.io._parquet_reader.ParquetReader`. Every reader

* opens the files and checks that they all have the first file's header
  (CSV) or schema (Parquet), naming the first that differs;
* gives the columns (:attr:`SourceReader.names`, and
  :meth:`SourceReader.columns`, those a split carries);
* takes a sample spread over the source to decide the column kinds
  (:meth:`SourceReader.sample`) and estimates its rows;
* reads a file of the source as typed chunks, each with its journal
  position (:meth:`SourceReader.chunks`, the split's pass), or the whole
  source as typed blocks with progress (:meth:`SourceReader.blocks`,
  ``predict`` and ``evaluate``);
* locates an error: every chunk (:class:`~questlearn.io._parse.Chunk`)
  knows where each row came from, file, line and byte (CSV) or file and row
  (Parquet), and ``chunk.error(row, problem)`` names it.

``inspect``, ``split`` and ``predict`` / ``evaluate`` read through these
readers, so a format's rules live in one file.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Callable, Iterator

from ._parse import Chunk
from .csvscan import DEFAULT_BLOCK_SIZE


@dataclass
class Sample:
    """Rows sampled over a source, to decide the column kinds.

    Attributes
    ----------
    table : pyarrow.Table
        The sampled rows (CSV: strings; Parquet: as carried).
    note : str
        Where the sample came from (printed with the schema).
    locate : callable or None
        ``locate(row) -> (file, line or None, byte offset)`` of a sample row
        (CSV), or None.
    extent : SampleExtent or None
        What a CSV sample read, for the row estimate.
    native_types : dict or None
        The type of each column as stored (Parquet), or None.
    notes : list of str
        What the reader noticed and the schema report prints.
    """

    table: object
    note: str
    locate: Callable | None = None
    extent: object = None
    native_types: dict | None = None
    notes: list = field(default_factory=list)


@dataclass
class InputBlock:
    """Typed rows of an input read by :meth:`SourceReader.blocks`, and how to find them in the source."""

    chunk: Chunk  # the rows and where each came from
    bytes_done: int  # progress: source bytes consumed so far

    @property
    def table(self):
        return self.chunk.table

    def error(self, row: int, problem: str) -> ValueError:
        """An error naming where row ``row`` is: file, line and byte (CSV) or file and row (Parquet)."""
        return self.chunk.error(row, problem)


class SourceReader(ABC):
    """The files of one source, read in their format.

    Parameters
    ----------
    files : list of SourceFile
        The source (:func:`questlearn.io.sources.resolve_sources`); empty
        (0-byte) files are kept in :attr:`files` and read as holding no rows.
    delimiter : str
        The CSV field delimiter.
    block_size : int
        Bytes read per step of a CSV file.
    check_names : bool
        Refuse a CSV header that cannot name the columns (an unnamed
        pandas index, an empty or duplicated name, another delimiter).
    role : str
        What the files make (``"a source"``, ``"an input"``), for messages.

    Attributes
    ----------
    files : list of SourceFile
        Every file, as given.
    sha256 : str or None
        SHA-256 of the file :meth:`chunks` last read to its end.
    """

    #: The format's name, as :class:`~questlearn.io.sources.SourceFile` holds it and the manifest records it.
    format: str = ""

    def __init__(self, files, *, delimiter: str = ",", block_size: int = DEFAULT_BLOCK_SIZE,
                 check_names: bool = True, role: str = "a source"):
        self.files = list(files)
        self.delimiter, self.block_size, self.role = delimiter, block_size, role
        self.sha256 = None
        self._open(check_names)

    @property
    def readable(self) -> list:
        """The files that hold bytes (all of them when none does: the reader then says the file is empty)."""
        return with_bytes(self.files)

    @property
    def total_bytes(self) -> int:
        """Bytes of the source as stored."""
        return sum(f.bytes for f in self.files)

    @abstractmethod
    def _open(self, check_names: bool) -> None:
        """Read the header (schema) of every file; refuse files that differ from the first."""

    @property
    @abstractmethod
    def names(self) -> list:
        """Every column of the source, in file order."""

    def columns(self, params) -> list:
        """The columns a split of this source carries (refusing, before the pass, columns it cannot)."""
        return list(self.names)

    def missing_tokens(self, tokens):
        """The missing-value tokens that apply to this format (CSV: ``tokens``; a Parquet file marks its own: None)."""
        return list(tokens)

    @abstractmethod
    def header_bytes(self, names: list) -> bytes:
        """The header record of the CSV copies of this source's rows (columns ``names``)."""

    @abstractmethod
    def sample(self, params) -> Sample:
        """Rows spread over the source, as the split's parameters read them."""

    @abstractmethod
    def estimate_rows(self, extent=None) -> tuple[int, bool]:
        """Rows in the source, and whether that is a count (not an extrapolation).

        ``extent`` is a CSV sample's :class:`~questlearn.schema._sampling.SampleExtent`
        (measured here when None).
        """

    @abstractmethod
    def chunks(self, source_file, position: dict, kinds: dict, label_numeric: bool, params) -> Iterator[tuple]:
        """``(chunk, journal position, bytes read, bytes consumed, blank lines)`` for each run of ``source_file``.

        The chunk holds the split's columns typed by their kinds; reading
        starts at ``position`` (a journal position; a fresh file's holds
        None and 0). After the last, :attr:`sha256` holds the file's SHA-256.
        """

    @abstractmethod
    def blocks(self, types: dict, null_values) -> Iterator[InputBlock]:
        """The source's rows as :class:`InputBlock` objects holding the columns ``types`` (``{name: pyarrow
        type}``) in those types, for a model (``predict``, ``evaluate``)."""


def with_bytes(files) -> list:
    """The files that are not :attr:`~questlearn.io.sources.SourceFile.empty`, or all of them when all are
    (the reader then says the file is empty)."""
    return [f for f in files if not f.empty] or list(files)


def header_difference(expected: list, found: list) -> str:
    """How a header differs, without echoing the file: the counts, or the first differing column."""
    if len(found) != len(expected):
        return f"{len(found)} column{'s' if len(found) != 1 else ''} where {len(expected)} are expected"
    position = next(i for i, (a, b) in enumerate(zip(expected, found)) if a != b)
    shown = found[position] if len(found[position]) <= 40 else found[position][:39] + "…"
    return f"column {position + 1} is {shown!r} where {expected[position]!r} is expected"
