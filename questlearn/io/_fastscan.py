"""Cut a CSV file into runs of whole records, touching each byte as little as possible.

The split's pass reads every byte of the source once more than the
sampling did, so this module keeps the per-byte work to what C does fast
(``bytes.count``, ``in``, ``isascii``) and one vectorised look at the
quote characters:

* a run ends at the last newline outside quotes (quote parity);
* quoting is checked the RFC 4180 way on the quote positions only (a quote
  opens a field only at its start; a closing quote is followed by a
  delimiter, a line end or a doubled quote);
* NUL bytes, bare CR line ends and invalid UTF-8 are looked for with
  ``bytes`` methods;
* the field count of every record is left to pyarrow, which refuses a
  ragged row.

Whenever one of these finds something, or pyarrow refuses the run, the
strict scanner (:meth:`questlearn.io.csvscan.CsvScanner` ``_scan``) scans that
run again and reports the problem with file, line and byte offset, as
before. Well-formed input is never tokenised twice.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .csvscan import LF, QUOTE, CsvScanner

MAX_CUT_TRIES = 64


@dataclass
class FastBlock:
    """A run of whole records, cut without locating each record.

    Attributes
    ----------
    data : memoryview
        The records, terminators included (a view of the bytes read: the
        run is not copied).
    offset, first_line : int
        Where ``data`` starts in the (decompressed) file.
    lines : int
        Newlines in ``data``: the line of the next block is ``first_line + lines``.
    read_to, raw_position, raw_sha256
        As in :class:`questlearn.io.csvscan.RecordBlock` (resume bookkeeping).
    """

    data: memoryview
    offset: int
    first_line: int
    lines: int
    scanner: CsvScanner
    read_to: int = 0
    raw_position: int = 0
    raw_sha256: str = ""
    _exact: object = None

    def exact(self):
        """The strict scanner's :class:`~questlearn.io.csvscan.RecordBlock` of this
        run: raises :class:`CsvFormatError` at the first malformed record."""
        if self._exact is None:
            self._exact = self.scanner._scan(bytes(self.data), self.offset, self.first_line, eof=False,
                                             expected_fields=self.scanner._fields)
            if self._exact is None or len(self._exact.data) != len(self.data):
                raise RuntimeError(f"internal error: the strict scanner and the fast cut disagree near byte {self.offset}")
        return self._exact

    def locate(self, record: int) -> tuple[int, int]:
        """``(line, byte offset)`` where record ``record`` of this run starts."""
        return self.exact().locate(record)

    @property
    def records(self) -> int:
        """Non-blank records in this run (the strict scanner counts them)."""
        return self.exact().records

    @property
    def blank_lines(self) -> int:
        """Empty lines in this run (the strict scanner counts them)."""
        return self.exact().blank_lines

    @property
    def decompressed(self) -> bool:
        """Whether the file is compressed (offsets count decompressed bytes)."""
        return self.scanner.decompressed

    @property
    def end_line(self) -> int:
        """Physical line number of the byte after ``data`` (where the next run starts)."""
        return self.first_line + self.lines


def fast_blocks(scanner: CsvScanner, start_offset=None, start_line=None, read_to=None, expect=None):
    """Yield :class:`FastBlock` runs of ``scanner``'s file until its end.

    Same resume arguments as :meth:`CsvScanner.blocks`; after the last
    block ``scanner.sha256`` holds the SHA-256 of the whole raw file.
    """
    marks = _Marks()

    def scan(data: bytes, offset: int, line: int, eof: bool):
        cut = _cut(scanner, data, offset, line, eof, marks)
        if cut is None:
            return None
        lines = int(np.count_nonzero(marks.equal(np.frombuffer(data, np.uint8, count=cut), LF)))  # 3x bytes.count
        return FastBlock(memoryview(data)[:cut], offset, line, lines, scanner)

    return scanner.read_runs(scan, start_offset, start_line, read_to, expect)


class _Marks:
    """Where a byte occurs in a run, in one boolean buffer reused run after run
    (a fresh one would cost the kernel new zeroed pages every run)."""

    def __init__(self):
        self._buffer = np.empty(0, bool)

    def equal(self, array: np.ndarray, byte: int) -> np.ndarray:
        if len(self._buffer) < len(array):
            self._buffer = np.empty(len(array), bool)
        marks = self._buffer[:len(array)]
        np.equal(array, byte, out=marks)
        return marks


def _cut(scanner: CsvScanner, data: bytes, offset: int, line: int, eof: bool, marks: _Marks):
    """Length of the whole records at the start of ``data`` (None: need more
    data). Anything suspicious is handed to the strict scanner, which raises
    with a location or confirms the cut."""
    array = np.frombuffer(data, dtype=np.uint8)
    quotes = np.flatnonzero(marks.equal(array, QUOTE)) if b'"' in data else np.empty(0, np.int64)
    position = data.rfind(b"\n")
    for _ in range(MAX_CUT_TRIES):
        if position < 0:
            break
        if int(np.searchsorted(quotes, position)) % 2 == 0:
            break
        position = data.rfind(b"\n", 0, position)
    else:
        return _strict_cut(scanner, data, offset, line, eof)
    if position < 0:
        if eof:
            return _strict_cut(scanner, data, offset, line, eof)
        return None
    cut = position + 1
    if eof and cut < len(data):
        return _strict_cut(scanner, data, offset, line, eof)
    quotes = quotes[:int(np.searchsorted(quotes, cut))]
    # The checks look at all of ``data``: the few bytes past the cut are
    # looked at again with the next run, and a false alarm there only costs
    # a strict scan (which finds nothing and confirms the cut).
    if (b"\x00" in data or _bare_carriage_returns(data) or _misplaced_quotes(array, quotes, scanner._delimiter_byte)
            or not _valid_utf8(data, cut)):
        return _strict_cut(scanner, data, offset, line, eof)
    return cut


def _strict_cut(scanner: CsvScanner, data: bytes, offset: int, line: int, eof: bool):
    block = scanner._scan(data, offset, line, eof=eof, expected_fields=scanner._fields)
    return None if block is None else len(block.data)


def _bare_carriage_returns(region: bytes) -> bool:
    if b"\r" not in region:
        return False
    carriage = region.count(b"\r")
    return carriage > 0 and carriage != region.count(b"\r\n")


def _valid_utf8(data, cut: int) -> bool:
    """Whether the first ``cut`` bytes of ``data`` are valid UTF-8."""
    if data.isascii():
        return True
    try:
        str(memoryview(data)[:cut], "utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _misplaced_quotes(array: np.ndarray, quotes: np.ndarray, delimiter: int) -> bool:
    """Whether any quote breaks RFC 4180 placement (the strict scanner then says where)."""
    if not len(quotes):
        return False
    opening, closing = quotes[0::2], quotes[1::2]
    previous = array[np.maximum(opening - 1, 0)]
    bad_open = (opening > 0) & (previous != delimiter) & (previous != LF) & (previous != QUOTE)
    following = array[np.minimum(closing + 1, len(array) - 1)]
    bad_close = (following != delimiter) & (following != LF) & (following != 0x0D) & (following != QUOTE)
    return bool(bad_open.any() or bad_close.any())
