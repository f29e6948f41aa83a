"""The reader of CSV sources, plain or compressed (CSV over the decoded stream).

Every file is scanned strictly (:class:`~questlearn.io.csvscan.CsvScanner`:
malformed input stops with file, line and byte) and must have the first
file's header. The split's pass cuts runs of whole records at C speed
(:func:`~questlearn.io._fastscan.fast_blocks`; the strict scanner when CSV
shards need every record's bytes) and parses them with pyarrow
(:class:`~questlearn.io._parse.RecordParser`); the sample is spread over the
files (:func:`~questlearn.schema._sampling.sample_csv`).
"""

from __future__ import annotations

import math
from typing import Iterator

import pyarrow as pa

from ..schema import _sampling
from ..schema._columns import arrow_types
from ._chunks import read_ahead
from ._fastscan import fast_blocks
from ._parse import Chunk, RecordParser, first_row_holding, parse_records, reported_value
from ._reader import InputBlock, Sample, SourceReader, header_difference
from ._rowchecks import explain_conversion_error, parse_reading_invalid_as_missing
from .csvscan import CsvFormatError, CsvScanner
from .sources import stored_sha256

PARSE_BLOCK_SIZE = 1024 * 1024  # pyarrow parses a run in pieces of this size, on every core


class CsvReader(SourceReader):
    """A CSV source: one file or several, each plain or gzip, bz2, xz or zstd compressed (see :class:`SourceReader`)."""

    format = "csv"

    def _open(self, check_names: bool) -> None:
        files = self.readable
        first = self.scanner(files[0])
        if check_names:
            first.check_names()
        self._scanners = [first]
        for other in files[1:]:
            scanner = self.scanner(other)
            if scanner.header.names != first.header.names:
                raise CsvFormatError(other.shown, 1, 0, f"the header differs from {files[0].shown}'s: "
                                     f"{header_difference(first.header.names, scanner.header.names)}; every file "
                                     f"of {self.role} must have the same columns")
            self._scanners.append(scanner)

    def scanner(self, source_file, block_size: int | None = None) -> CsvScanner:
        """The strict scanner of one file: the one opened on it when its header was checked, or a new one
        reading ``block_size`` bytes per step."""
        if block_size is None:
            known = next((s for s in getattr(self, "_scanners", ()) if s.source is source_file), None)
            if known is not None:
                return known
        return CsvScanner(source_file, block_size=block_size or self.block_size, delimiter=self.delimiter)

    @property
    def names(self) -> list:
        return self._scanners[0].header.names

    def header_bytes(self, names: list) -> bytes:
        return self._scanners[0].header.raw  # as the first file writes it

    def sample(self, params) -> Sample:
        table, note, locate, extent = _sampling.sample_csv(self, null_values=params.null_values)
        return Sample(table, note, locate, extent)

    def estimate_rows(self, extent=None) -> tuple[int, bool]:
        """Rows in the source: those counted in the sample's first stretch, plus
        the rest of the (decoded) bytes at the pieces' records per byte.

        The pieces are spread over the whole source, so a log whose rows
        change length along the way is estimated from all of it, not its
        first block. A ZIP member counts as the uncompressed size the
        archive records; other compressed files as their size times the
        decoded-per-stored ratio of the first compressed block sampled. A
        one-file source the sample read whole is counted exactly.
        """
        files = self.readable
        if extent is None:
            extent = _sampling.measure_csv(self)
        if len(files) == 1 and extent.first_whole:
            return extent.first_records, True
        ratio = extent.decoded_per_raw or 1.0
        decoded = sum(f.decoded_bytes(ratio) for f in files)
        rest = max(decoded - extent.first_end, 0)
        if extent.piece_records:
            per_byte = extent.piece_records / extent.piece_bytes
        elif extent.first_records:
            per_byte = extent.first_records / max(extent.first_end, 1)
        else:
            return 0, False
        return int(math.ceil(extent.first_records + rest * per_byte)), False

    def chunks(self, source_file, position: dict, kinds: dict, label_numeric: bool, params):
        """``(chunk, journal position, raw bytes read, bytes consumed, blank lines)`` for each run of a CSV file.

        Without CSV shards, runs are cut by :func:`~questlearn.io._fastscan.fast_blocks`
        (the strict scanner only locates problems); CSV shards need every
        record's bytes, so then the strict scanner cuts the runs. Reading
        starts at ``position`` (a journal position; a fresh file's is all None).
        An empty file (0 bytes, or compressed data that decompresses to
        nothing) has no runs: it is skipped like a header-only one.
        """
        if source_file.empty:
            self.sha256 = stored_sha256(source_file)
            return
        p = params
        names = self.names
        scanner = self.scanner(source_file)
        parser = RecordParser(names, arrow_types(kinds, label_numeric), delimiter=p.delimiter,
                              null_values=p.null_values, block_size=PARSE_BLOCK_SIZE,
                              check_utf8=False)  # the fast cut or the strict scanner checked every run's UTF-8
        expect = tuple(position["expect"]) if position["expect"] else None
        arguments = (position["offset"], position["line"], position["read_to"], expect)
        blocks = scanner.blocks(*arguments) if "csv" in p.formats else read_ahead(fast_blocks(scanner, *arguments))
        for block in blocks:  # cut in one thread, parsed in this one (pyarrow's pool), used in the pass's
            invalid = None
            try:
                table = parser.parse(block.data)
            except pa.ArrowInvalid as error:
                exact = block.exact()  # raises for malformed records
                lenient = self._reading_invalid_as_missing(exact, kinds, parser.types, p) \
                    if p.invalid == "missing" else None
                if lenient is None:
                    explain_conversion_error(exact, error, source_file.shown, names=names, kinds=kinds,
                                             label_numeric=label_numeric, delimiter=p.delimiter,
                                             null_values=p.null_values)
                    raise
                table, invalid = lenient
            records, blank_lines = block.lines, 0
            if table.num_rows != block.lines:  # blank lines or newlines inside quotes: count them exactly
                records, blank_lines = block.records, block.blank_lines
            if table.num_rows != records:
                raise RuntimeError(f"internal error: parsed {table.num_rows} rows but scanned {records} near byte {block.offset}")
            yield (Chunk(table, source_file.shown, block, invalid=invalid or None),
                   {"offset": block.offset + len(block.data), "line": block.end_line,
                   "read_to": block.read_to, "expect": [block.raw_position, block.raw_sha256]},
                   block.raw_position, len(block.data), blank_lines)
        self.sha256 = scanner.sha256

    def _reading_invalid_as_missing(self, block, kinds: dict, types: dict, params):
        """``(table, {column: positions})`` of a run whose numbers did not all convert, each value of a numeric
        column that is no number read as missing (``--invalid missing``); None when that is not the reason
        (the label, say), for the conversion error to be explained."""
        try:
            return parse_reading_invalid_as_missing(block.data, self.names, kinds, types, delimiter=params.delimiter,
                                                    null_values=params.null_values, block_size=PARSE_BLOCK_SIZE,
                                                    check_utf8=False)
        except pa.ArrowInvalid:
            return None

    def blocks(self, types: dict, null_values) -> Iterator[InputBlock]:
        names, done = self.names, 0
        for source_file, scanner in zip(self.readable, self._scanners):
            for block in scanner.blocks():
                if not len(block):
                    continue
                try:
                    table = parse_records(block.data, names, delimiter=self.delimiter, types=types,
                                          include=list(types), null_values=null_values)
                except pa.ArrowInvalid as error:
                    strings = parse_records(block.data, names, delimiter=self.delimiter, include=list(types),
                                            types={n: pa.string() for n in types}, null_values=null_values)
                    raise _conversion_error(Chunk(strings, scanner.path, block), types, reported_value(error)) from error
                yield InputBlock(Chunk(table, scanner.path, block), done + block.raw_position)
            done += source_file.bytes


def _conversion_error(strings: Chunk, types: dict, value) -> ValueError:
    """Where the value pyarrow could not convert to a model's column type is, with what it means."""
    numeric = [n for n, t in types.items() if t == pa.float64()]
    found = first_row_holding(strings.table, numeric, value)
    if found is None:
        return strings.error(0, "pyarrow could not convert this block to the model's column types")
    name, row = found
    return strings.error(row, f"column {name!r} holds {value!r}, which is not a number, but the model was "
                              "trained on it as a numeric column (a missing-value token the split did not "
                              "know? the model's tokens are in inference.json)")
