"""Read one source file of a split as parsed chunks, each with its journal position.

The stage between the scanners and the split's pass: runs of a CSV file
(cut by :func:`~questlearn.io._fastscan.fast_blocks`, or by the strict
:class:`~questlearn.io.csvscan.CsvScanner` when CSV shards need every record's
bytes) are parsed by pyarrow (:class:`~questlearn.io._parse.RecordParser`);
a Parquet file is read one batch of a row group at a time. Each step yields
``(chunk, position, read, size, blank_lines)``: the parsed
:class:`~questlearn.io._parse.Chunk`, the journal position after it (a resumed
split starts there), the bytes of the file as stored read so far, the bytes
consumed, and the empty lines skipped. After a file's last chunk,
:attr:`ChunkReader.sha256` holds the file's SHA-256.

:func:`read_ahead` produces the next item in a background thread while the
pass uses the current one.
"""

from __future__ import annotations

import pyarrow as pa

from ..manifest._files import sha256_of
from ..schema._columns import LABEL, NUMERIC, arrow_types
from ._fastscan import fast_blocks
from ._parquet_columns import as_float, carried_table, open_parquet, read_batches, readings_of
from ._parse import Chunk, RecordParser
from ._rowchecks import explain_conversion_error
from .csvscan import CsvScanner

PARSE_BLOCK_SIZE = 1024 * 1024  # pyarrow parses a run in pieces of this size, on every core
PARQUET_BATCH_ROWS = 32_768  # about the rows of one CSV block: the memory the stages hold stays alike


class ChunkReader:
    """Parsed chunks of the files of one source, in the column kinds of the split.

    Parameters
    ----------
    names : list of str
        The source's columns.
    kinds : dict
        Column name to kind (:mod:`questlearn.schema._columns`).
    label_numeric : bool
        Whether the label is read as a number.
    params : SplitParameters
        ``formats``, ``block_size``, ``delimiter`` and the missing-value tokens.
    first_scanner : CsvScanner, optional
        The scanner already opened on the source's first file (its header was
        checked); reused for that file.

    Attributes
    ----------
    sha256 : str or None
        SHA-256 of the file last read to its end.
    """

    def __init__(self, names: list, kinds: dict, label_numeric: bool, params, first_scanner: CsvScanner | None = None):
        self.names, self.kinds, self.label_numeric, self.params = names, kinds, label_numeric, params
        self.first_scanner = first_scanner
        self.sha256 = None

    def _scanner(self, source_file) -> CsvScanner:
        if self.first_scanner is not None and self.first_scanner.source is source_file:
            return self.first_scanner
        return CsvScanner(source_file, block_size=self.params.block_size, delimiter=self.params.delimiter)

    def csv_chunks(self, source_file, position: dict):
        """``(chunk, journal position, raw bytes read, bytes consumed, blank lines)`` for each run of a CSV file.

        Without CSV shards, runs are cut by :func:`~questlearn.io._fastscan.fast_blocks`
        (the strict scanner only locates problems); CSV shards need every
        record's bytes, so then the strict scanner cuts the runs. Reading
        starts at ``position`` (a journal position; a fresh file's is all None).
        An empty (0-byte) file has no runs: it is skipped like a header-only one.
        """
        if not source_file.bytes:
            self.sha256 = sha256_of(source_file.path)
            return
        p = self.params
        scanner = self._scanner(source_file)
        parser = RecordParser(self.names, arrow_types(self.kinds, self.label_numeric), delimiter=p.delimiter,
                              null_values=p.null_values, block_size=PARSE_BLOCK_SIZE,
                              check_utf8=False)  # the fast cut or the strict scanner checked every run's UTF-8
        expect = tuple(position["expect"]) if position["expect"] else None
        arguments = (position["offset"], position["line"], position["read_to"], expect)
        blocks = scanner.blocks(*arguments) if "csv" in p.formats else read_ahead(fast_blocks(scanner, *arguments))
        for block in blocks:  # cut in one thread, parsed in this one (pyarrow's pool), used in the pass's
            try:
                table = parser.parse(block.data)
            except pa.ArrowInvalid as error:
                exact = block.exact()  # raises for malformed records
                explain_conversion_error(exact, error, source_file.shown, names=self.names, kinds=self.kinds,
                                         label_numeric=self.label_numeric, delimiter=p.delimiter,
                                         null_values=p.null_values)
                raise
            records, blank_lines = block.lines, 0
            if table.num_rows != block.lines:  # blank lines or newlines inside quotes: count them exactly
                records, blank_lines = block.records, block.blank_lines
            if table.num_rows != records:
                raise RuntimeError(f"internal error: parsed {table.num_rows} rows but scanned {records} near byte {block.offset}")
            yield (Chunk(table, source_file.shown, block), {"offset": block.offset + len(block.data), "line": block.end_line,
                   "read_to": block.read_to, "expect": [block.raw_position, block.raw_sha256]},
                   block.raw_position, len(block.data), blank_lines)
        self.sha256 = scanner.sha256

    def parquet_chunks(self, source_file, position: dict):
        """``(chunk, journal position, bytes read, bytes consumed, 0)`` for each batch of a Parquet file,
        from batch ``position["batch"]`` on; an empty (0-byte) file has none."""
        if not source_file.bytes:
            self.sha256 = sha256_of(source_file.path)
            return
        parquet = open_parquet(source_file)
        readings = readings_of(parquet.schema_arrow)
        total_rows = max(parquet.metadata.num_rows, 1)
        wanted = list(arrow_types(self.kinds, self.label_numeric))
        if "csv" not in self.params.formats:  # without CSV copies, only the features and the label are read
            readings = {name: readings[name] for name in wanted}
        first, row, index = position["batch"], 0, 0
        for group in range(parquet.metadata.num_row_groups):  # one row group at a time: memory is one group's
            for batch in read_batches(parquet, source_file, group, list(readings), PARQUET_BATCH_ROWS):
                if index >= first:
                    table = carried_table(pa.Table.from_batches([batch]), readings)
                    columns = {}
                    for name in wanted:
                        try:
                            columns[name] = cast_column(table[name], self.kinds[name], self.label_numeric)
                        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as error:
                            raise ValueError(f"{source_file.shown}: rows {row + 1}-{row + len(table)}, column "
                                             f"{name!r}: {error} (the sample made this column numeric)") from None
                    chunk = Chunk(pa.table(columns), source_file.shown, None, row,
                                  full_table=table if "csv" in self.params.formats else None)  # CSV shards only
                    read = source_file.bytes * (row + len(table)) // total_rows
                    yield chunk, {"batch": index + 1}, read, source_file.bytes * len(table) // total_rows, 0
                row += batch.num_rows
                index += 1
        self.sha256 = sha256_of(source_file.path)


def cast_column(column, kind: str, label_numeric: bool):
    """A carried Parquet column (:func:`~questlearn.io._parquet_columns.carried_column`) in the type the pass reads it as."""
    if kind == NUMERIC or (kind == LABEL and label_numeric):
        return as_float(column)
    return column.cast(pa.string())


def read_ahead(items):
    """Produce the next item in a background thread while this one is processed.

    numpy and pyarrow release the GIL, so scanning and parsing overlap on two
    cores. At most two items are in memory at once; an error in the
    producer is raised here, in order.

    The producing thread never outlives the split into interpreter shutdown:
    it stops when this generator is closed, and, should an error leave the
    generator suspended (held by a traceback until the garbage collector
    runs), an ``atexit`` hook stops and joins it. A daemon thread still
    inside numpy or pyarrow when the interpreter finalizes is ended by
    ``pthread_exit``, whose unwinding through C++ frames aborts the process
    (``terminate called without an active exception``; apache/arrow#45017).
    """
    import atexit
    import queue
    import threading

    handoff = queue.Queue(maxsize=1)
    stop = threading.Event()
    done = object()

    def produce():
        try:
            for item in items:
                while not stop.is_set():
                    try:
                        handoff.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            handoff.put(done)
        except BaseException as error:  # noqa: BLE001 - handed to the consumer
            handoff.put(error)

    def stop_and_join():
        stop.set()
        while thread.is_alive():
            try:
                handoff.get(timeout=0.1)  # unblocks a final put of ``done`` or an error
            except queue.Empty:
                pass

    thread = threading.Thread(target=produce, name="questlearn-scan-ahead", daemon=True)
    thread.start()
    atexit.register(stop_and_join)
    try:
        while True:
            try:
                item = handoff.get(timeout=0.1)
            except queue.Empty:
                # A producer stopped from outside (an exit hook; a nested
                # read-ahead's hooks run inner first) hands over nothing more.
                if not thread.is_alive() and handoff.empty():
                    raise RuntimeError("the read-ahead thread stopped before the end of its input") from None
                continue
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop_and_join()
        atexit.unregister(stop_and_join)
        items.close()
