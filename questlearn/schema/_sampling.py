"""Take a sample spread over the whole source, to decide column kinds.

The first block of a log says little about row 90 million: a token such as
``NA`` may first appear late, and a column may hold only numbers at the
start. So the sample is the first block plus ``pieces`` pieces at evenly
spaced offsets of the (uncompressed) files, each resynchronised on a record
boundary: from the first line end after the offset, the first position from
which the strict scanner reads whole records with the header's field count.
Compressed files cannot be entered in the middle; for them the sample is the
beginning of several files. Parquet files are sampled by row group: the
first and ``pieces`` more spread over the files, each through batches spread
over the whole group (:func:`sample_parquet`).

Nothing here is a guarantee: the pass still checks every value, and the
sample only decides what it will check for.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pyarrow as pa

from .._sizes import human_size
from ..io._parse import parse_records
from ..io.csvscan import CsvFormatError, CsvScanner

SAMPLE_PIECES = 8
PIECE_BYTES = 1 << 20
FIRST_BYTES = 4 << 20
RESYNC_ATTEMPTS = 32
PARQUET_SAMPLE_ROWS = 65_536  # rows a Parquet sample holds
SAMPLE_BATCHES_PER_GROUP = 16  # a sampled row group gives its rows in at least this many spread batches
MIN_SAMPLE_BATCH_ROWS, MAX_SAMPLE_BATCH_ROWS = 64, 8192


@dataclass
class SampleExtent:
    """What a CSV sample read, for estimating the source's rows.

    Attributes
    ----------
    first_end : int
        Decoded bytes of the first file the first block reaches (header
        included): the stretch whose records are counted exactly.
    first_records : int
        Records in that stretch.
    piece_bytes, piece_records : int
        Bytes and records of the pieces (whole records, spread over the
        plain files, or from the start of compressed ones).
    decoded_per_raw : float or None
        Decoded bytes per stored byte of a compressed file, from the first
        block read from one (None when none was read).
    first_whole : bool
        Whether the first stretch is the whole first file.
    """

    first_end: int = 0
    first_records: int = 0
    piece_bytes: int = 0
    piece_records: int = 0
    decoded_per_raw: float | None = None
    first_whole: bool = False

    def add(self, block, source_file, piece: bool) -> None:
        """Count one sampled block (of the first stretch, or a piece)."""
        if source_file.compression is not None and self.decoded_per_raw is None:
            self.decoded_per_raw = block.read_to / max(block.raw_position, 1)
        if piece:
            self.piece_bytes += len(block.data)
            self.piece_records += len(block)
        else:
            self.first_end = block.offset + len(block.data)
            self.first_records += len(block)


def measure_csv(reader) -> SampleExtent:
    """The :class:`SampleExtent` of the sample :func:`sample_csv` would take, its rows not parsed."""
    return sample_csv(reader, null_values=(), parse=False)[3]


def sample_csv(reader, *, null_values, pieces: int = SAMPLE_PIECES, piece_bytes: int = PIECE_BYTES,
               first_bytes: int = FIRST_BYTES, parse: bool = True):
    """Sampled rows of a CSV source as string columns.

    ``reader`` is the source's :class:`~questlearn.io._csv_reader.CsvReader`
    (its files, delimiter and scanners). The first file's first block
    (``first_bytes``; its last record counts even without a trailing
    newline) is always part of the sample.

    Returns
    -------
    table : pyarrow.Table
    note : str
        Where the sample came from.
    locate : callable
        ``locate(row) -> (file, line or None, byte offset)`` of a sample row
        (the line is None in pieces entered in the middle of a file).
    extent : SampleExtent
        The bytes and records sampled, for the row estimate.
    """
    files, delimiter = reader.readable, reader.delimiter
    first = reader.scanner(files[0], block_size=first_bytes)
    names = first.header.names
    strings = {name: pa.string() for name in names}
    tables, pieces_at = [], []  # pieces_at: (first sample row, block, file, line known)

    extent = SampleExtent()

    def add(block, source_file, line_known=True, piece=True):
        if block is not None:
            extent.add(block, source_file, piece)
        if block is not None and len(block) and parse:
            pieces_at.append((sum(t.num_rows for t in tables), block, source_file.shown, line_known))
            tables.append(parse_records(block.data, names, delimiter=delimiter, types=strings, null_values=null_values))

    def locate(row: int):
        start, block, shown, line_known = [p for p in pieces_at if p[0] <= row][-1]
        line, byte = block.locate(row - start)
        return shown, line if line_known else None, byte

    covered = 0
    blocks = first.blocks()
    try:  # up to first_bytes, or the end of a small file (its last record may lack a newline)
        for block in blocks:
            add(block, files[0], piece=False)
            covered = block.offset + len(block.data)
            if covered >= first_bytes:
                break
        else:
            extent.first_whole = True
    finally:
        blocks.close()
    taken = 0
    plain = [f for f in files if f.compression is None]
    total = sum(f.bytes for f in plain)
    if total > covered + piece_bytes:
        for k in range(pieces):
            target = total * (k + 1) // (pieces + 1)
            for source_file in plain:
                if target < source_file.bytes:
                    break
                target -= source_file.bytes
            if source_file is files[0] and target < covered:
                continue
            block = _resynchronised(first, source_file, target, piece_bytes)
            if block is not None:
                add(block, source_file, line_known=False)
                taken += 1
    compressed = [f for f in files[1:] if f.compression is not None]
    step = max(1, len(compressed) // pieces)
    for source_file in compressed[::step][:pieces]:
        blocks = reader.scanner(source_file, block_size=piece_bytes).blocks()
        try:
            block = next(blocks, None)
        finally:
            blocks.close()
        if block is not None:
            add(block, source_file)
            taken += 1
    note = f"first {human_size(covered)} of {files[0].name}"
    if taken:
        note += f" + {taken} pieces spread over the {'files' if len(files) > 1 else 'file'}"
    if files[0].compression or compressed:
        note += "; compressed files are sampled from their beginning"
    table = pa.concat_tables(tables) if tables else pa.table({n: pa.array([], pa.string()) for n in names})
    return table, note, locate, extent


def _resynchronised(scanner: CsvScanner, source_file, offset: int, piece_bytes: int):
    """Whole records read from ``offset`` on, after finding a record boundary."""
    data = source_file.store.read_range(source_file.path, offset, piece_bytes)  # one ranged read in a store
    position = 0
    for _ in range(RESYNC_ATTEMPTS):
        newline = data.find(b"\n", position)
        if newline < 0:
            return None
        position = newline + 1
        try:
            block = scanner.scan_fragment(data[position:], offset + position)
        except CsvFormatError:
            continue  # started inside a quoted field: try the next line end
        if block is not None and len(block):
            return block
    return None


def sample_parquet(files, readings: dict, *, pieces: int = SAMPLE_PIECES,
                   rows: int = PARQUET_SAMPLE_ROWS) -> tuple[pa.Table, str]:
    """Sampled rows of Parquet ``files``, spread over the source: about
    ``rows`` rows from ``pieces + 1`` row groups spread over the files (the
    first, the last, and evenly between; every group when there are no
    more), and in each group
    from batches spread over the whole group, not its first rows. The
    columns named in ``readings`` are as carried
    (:func:`~questlearn.io._parquet_columns.carried_table`).

    Memory stays bounded: a sampled row group is streamed in small batches
    (``ParquetFile.iter_batches`` over that one group) and only the spread
    batches are kept, so a large row group is never held whole (as
    ``read_row_group`` followed by ``take`` would). The price is decoding
    the sampled groups' pages up to the last batch kept: a file of one
    row group is decoded once, a batch at a time.
    """
    from ..io._parquet_columns import carried_table, open_parquet

    groups = []  # (file index, row group, its rows)
    for index, source_file in enumerate(files):
        metadata = open_parquet(source_file).metadata
        groups += [(index, g, metadata.row_group(g).num_rows) for g in range(metadata.num_row_groups)]
    last = len(groups) - 1  # the first group, the last, and ``pieces - 1`` evenly between (all, when no more)
    chosen = sorted({(last * k) // pieces for k in range(pieces + 1)}) if groups else []
    quota = max(1, rows // max(len(chosen), 1))
    tables = []
    for position in chosen:
        index, group, group_rows = groups[position]
        tables += [carried_table(pa.Table.from_batches([batch]), readings)
                   for batch in _spread_batches(files[index], group, group_rows, list(readings), quota)]
    if not tables:
        tables.append(carried_table(open_parquet(files[0]).schema_arrow.empty_table(), readings))
    table = pa.concat_tables(tables)
    return table, (f"{table.num_rows:,} rows spread over {len(chosen)} row group{'s' if len(chosen) != 1 else ''} "
                   f"of {len(files)} Parquet file{'s' if len(files) > 1 else ''}")


def _spread_batches(source_file, group: int, group_rows: int, columns: list, quota: int) -> list:
    """About ``quota`` rows of one row group, as batches spread evenly over it (all of it when it is smaller)."""
    from ..io._parquet_columns import open_parquet, read_batches

    batch_rows = max(MIN_SAMPLE_BATCH_ROWS, min(MAX_SAMPLE_BATCH_ROWS, quota // SAMPLE_BATCHES_PER_GROUP))
    count = max(1, math.ceil(group_rows / batch_rows))
    wanted = min(count, math.ceil(quota / batch_rows))
    keep = {(count - 1) * j // max(wanted - 1, 1) for j in range(wanted)}  # the first batch, the last, and between
    kept = []
    batches = read_batches(open_parquet(source_file), source_file, group, columns, batch_rows)
    try:
        for number, batch in enumerate(batches):
            if number in keep:
                kept.append(batch)
            if number >= max(keep):
                break
    finally:
        batches.close()
    return kept
