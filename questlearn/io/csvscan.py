"""Strict, streaming RFC 4180 record scanner with exact error locations.

The scanner reads a CSV file block by block and finds record boundaries
with vectorised quote-parity arithmetic (numpy), so a quoted field that
contains a delimiter, a newline or a CRLF never splits a record. It never
guesses: anything that is not well-formed CSV stops the scan with a
:class:`CsvFormatError` naming the file, the 1-based physical line and the
0-based byte offset of the problem.

Memory is bounded by ``block_size`` plus the longest record, and a record
longer than ``max_record_bytes`` is an error (one stray quote would
otherwise turn the rest of a 100 GB file into one "record").
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from typing import Iterator

import numpy as np

from ..errors import InputFormatError, OptionError

QUOTE = 0x22
BACKSLASH = 0x5C
LF = 0x0A
CR = 0x0D
UTF8_BOM = b"\xef\xbb\xbf"
DEFAULT_BLOCK_SIZE = 8 * 1024 * 1024
DEFAULT_MAX_RECORD_BYTES = 16 * 1024 * 1024
DECOMPRESS_COMMANDS = {"gzip": "gzip -dc", "bz2": "bzip2 -dc", "xz": "xz -dc", "zstd": "zstd -dc"}
UNTERMINATED = ("unterminated quoted field: the quote here opens a field that is never closed "
                "before the end of the file")


def _outside_quotes(quotes: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """The positions preceded by an even number of quotes: outside any quoted field."""
    return positions[(np.searchsorted(quotes, positions) & 1) == 0]


def _mebibytes(size: int) -> str:
    return f"{size / (1 << 20):g} MiB"


class CsvFormatError(InputFormatError):
    """A CSV file is not well-formed; the message names file, line and byte.

    Parameters
    ----------
    path : str
        The file being read.
    line : int
        1-based physical line number (quoted newlines count as lines, as in
        an editor).
    byte_offset : int
        0-based byte offset from the start of the file (of its
        decompressed data, for a compressed file).
    problem : str
        What is wrong, and what to do about it.
    decompressed : bool
        Whether the file is compressed: the message then says "byte N of
        the decompressed data", so nobody looks for it in the file as stored.
    """

    def __init__(self, path: str, line: int, byte_offset: int, problem: str, decompressed: bool = False):
        self.path = str(path)
        self.line = int(line)
        self.byte_offset = int(byte_offset)
        self.problem = problem
        self.decompressed = bool(decompressed)
        where = (f"byte {self.byte_offset} of the decompressed data" if self.decompressed
                 else f"byte offset {self.byte_offset}")
        super().__init__(f"{self.path}: line {self.line}, {where}: {problem}")

    def __reduce__(self):
        # Keeps the error picklable, so it can travel back from a worker process.
        return (type(self), (self.path, self.line, self.byte_offset, self.problem, self.decompressed))


@dataclass
class RecordBlock:
    """A run of complete records read from the source file.

    Attributes
    ----------
    data : bytes
        Raw bytes of the records, terminators included. The final record of a
        file without a trailing newline gets a ``\\n`` appended here.
    starts, stops : numpy.ndarray
        Offsets into ``data`` where each non-blank record begins and where the
        byte after its terminator is.
    offset : int
        Offset of ``data[0]`` in the source file.
    first_line : int
        Physical line number of ``data[0]``.
    newlines : numpy.ndarray
        Offsets of every ``\\n`` in ``data`` (used to turn offsets into lines).
    blank_lines : int
        Number of empty lines skipped in this block.
    read_to : int
        How far the scanner had read the (decompressed) file when it yielded
        this block; resuming with it reproduces the exact same later blocks.
    raw_position, raw_sha256 : int, str
        Bytes of the file on disk read by then, and their SHA-256 (a resumed
        split checks the file against it).
    decompressed : bool
        Whether the file is compressed (offsets count decompressed bytes).
    """

    data: bytes
    starts: np.ndarray
    stops: np.ndarray
    offset: int
    first_line: int
    newlines: np.ndarray
    blank_lines: int
    read_to: int = 0
    raw_position: int = 0
    raw_sha256: str = ""
    decompressed: bool = False

    def __len__(self) -> int:
        return len(self.starts)

    @property
    def lines(self) -> int:
        """Newlines in ``data``."""
        return len(self.newlines)

    @property
    def records(self) -> int:
        """Non-blank records in ``data``."""
        return len(self.starts)

    @property
    def end_line(self) -> int:
        """Physical line number of the byte after ``data`` (where the next run starts)."""
        return self.first_line + self.lines

    def exact(self) -> RecordBlock:
        """This block: the strict scanner's records are already exact
        (the same interface as :meth:`questlearn.io._fastscan.FastBlock.exact`)."""
        return self

    def line_of(self, position: int) -> int:
        """Physical line number of byte ``position`` of ``data``."""
        return self.first_line + int(np.searchsorted(self.newlines, position))

    def locate(self, record: int) -> tuple[int, int]:
        """Return ``(line, byte_offset)`` where record number ``record`` starts."""
        start = int(self.starts[record])
        return self.line_of(start), self.offset + start


@dataclass
class Header:
    """The header record: column names and raw bytes (terminator included)."""

    names: list[str]
    raw: bytes
    bom: bool


COMMON_DELIMITERS = {",": "comma", ";": "semicolon", "\t": "tab", "|": "pipe"}


class CsvScanner:
    """Iterate over the records of a CSV file in validated blocks.

    Parameters
    ----------
    source : SourceFile, str or Path
        The CSV file (UTF-8, RFC 4180 quoting; a leading UTF-8 byte-order
        mark is stripped once; gzip, bz2, xz or zstd compressed files are
        decompressed on the fly, see :mod:`questlearn.io.sources`).
    block_size : int
        Bytes read per step; memory use is a small multiple of this.
    max_record_bytes : int
        Longest record accepted.
    delimiter : str
        One-character field delimiter (``","`` by default).

    Raises
    ------
    CsvFormatError
        On an empty file, a header-only file (from :meth:`blocks` callers),
        ragged rows, stray or unterminated quotes, bare CR line endings, a
        CR inside an unquoted value, compressed data that breaks off,
        NUL bytes, invalid UTF-8, or an over-long record. Byte offsets and
        lines count decompressed bytes.
    """

    def __init__(
        self,
        source,
        block_size: int = DEFAULT_BLOCK_SIZE,
        max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES,
        delimiter: str = ",",
    ):
        from .sources import SourceFile, single_file

        if block_size < 1:
            raise OptionError(f"block_size must be positive, got {block_size}")
        if len(delimiter) != 1 or delimiter in "\"\r\n" or ord(delimiter) > 127:
            raise OptionError(f"the delimiter must be one ASCII character other than a quote or a line end, got {delimiter!r}")
        self.source = source if isinstance(source, SourceFile) else single_file(source)
        self.path = self.source.shown or str(self.source.path)
        self.block_size = int(block_size)
        self.max_record_bytes = int(max_record_bytes)
        self.delimiter = delimiter
        self._delimiter_byte = ord(delimiter)
        self.decompressed = self.source.compression is not None
        self.raw_position = 0
        self.sha256 = None
        self.header = self._read_header()

    def error(self, line: int, byte_offset: int, problem: str) -> CsvFormatError:
        """A :class:`CsvFormatError` at ``line`` and ``byte_offset`` of this file."""
        return CsvFormatError(self.path, line, byte_offset, problem, self.decompressed)

    def _open(self, expect=None):
        from .sources import open_decoded

        return open_decoded(self.source, expect)

    # -- header ---------------------------------------------------------
    def _read_header(self) -> Header:
        from .sources import CorruptCompressedData

        stream = self._open()
        head = b""
        try:
            head = stream.read(1 << 16)
            self._refuse_compressed_twice(head)
            bom = head.startswith(UTF8_BOM)
            begin = len(UTF8_BOM) if bom else 0
            while True:
                eof = len(head) < (1 << 16) or len(head) > self.max_record_bytes
                more = b"" if eof else stream.read(len(head))
                eof = eof or not more
                body = head[begin:]
                start = begin + len(body) - len(body.lstrip(b"\r\n"))  # blank lines before the header are skipped
                if eof and start == len(head):
                    raise self.error(1, 0, "the file is empty: expected a header row naming the columns")
                candidate = head + b"\n" if eof and not head.endswith(b"\n") else head
                first_line = 1 + head[begin:start].count(b"\n")
                block = self._scan(candidate[start:], start, first_line, eof=eof, expected_fields=None, max_records=1)
                if block is not None and len(block):
                    break
                if eof:
                    raise self.error(first_line, start, "the header row never ends (unterminated quote?)")
                head += more
        except CorruptCompressedData as error:
            raise self._broken_off(error, 0, 1, head) from None
        finally:
            stream.close()
        raw = block.data[block.starts[0] : block.stops[0]]
        text = raw.decode("utf-8")
        names = next(csv.reader(io.StringIO(text, newline=""), delimiter=self.delimiter, strict=True))
        self._header_end = start + int(block.stops[0])
        self._header_line = first_line
        self._header_lines = raw.count(b"\n")
        self._fields = len(names)
        return Header(names=names, raw=raw, bom=bom)

    def _refuse_compressed_twice(self, head: bytes) -> None:
        """Refuse a compressed file whose decompressed data is compressed again (a ``.gz`` of a ``.gz``)."""
        from ._magic import COMPRESSION_MAGIC

        outer = self.source.compression
        if outer not in DECOMPRESS_COMMANDS:
            return  # plain, or a ZIP member (whose compressed content the archive reader refuses)
        inner = next((name for magic, name in COMPRESSION_MAGIC if head.startswith(magic)), None)
        if inner is not None:
            raise InputFormatError(
                f"{self.path} is {outer} data whose content is again {inner}-compressed (compressed twice): "
                f"decompress it once ({DECOMPRESS_COMMANDS[outer]} {self.path} > a new file) and pass that file instead")

    @property
    def data_start(self) -> tuple[int, int]:
        """``(byte_offset, line)`` of the first data record."""
        return self._header_end, self._header_line + self._header_lines

    def check_names(self) -> None:
        """Refuse header rows that cannot name the columns, with the likely fix.

        Raises
        ------
        CsvFormatError
            A header without the delimiter but with another common one; an
            unnamed first column (a pandas/Dask index); an empty or
            duplicated column name.
        """
        names, line = self.header.names, self._header_line
        offset = self._header_end - len(self.header.raw)
        if len(names) == 1:
            others = [d for d in COMMON_DELIMITERS if d != self.delimiter and d in names[0]]
            if others:
                found = others[0]
                raise self.error(
                    line, offset,
                    f"the header holds no {COMMON_DELIMITERS.get(self.delimiter, repr(self.delimiter))} but "
                    f"{COMMON_DELIMITERS[found]}s: the file looks {COMMON_DELIMITERS[found]}-delimited; "
                    f"pass --delimiter {'tab' if found == chr(9) else repr(found)} (Python: delimiter={found!r})",
                )
        if len(names) > 1 and not names[0].strip():
            raise self.error(
                line, offset,
                "the first column has no name: this looks like a pandas or Dask index written with the data; "
                "write the file with to_csv(..., index=False), or give the column a name",
            )
        seen = set()
        for name in names:
            if not name.strip():
                raise self.error(line, offset, f"the header has an empty column name (columns: {names})")
            if name in seen:
                raise self.error(line, offset, f"the header names column {name!r} twice; column names must be unique")
            seen.add(name)

    # -- data records ---------------------------------------------------
    def blocks(self, start_offset: int | None = None, start_line: int | None = None,
               read_to: int | None = None, expect=None) -> Iterator[RecordBlock]:
        """Yield validated :class:`RecordBlock` objects until the end of file.

        ``start_offset``, ``start_line`` and ``read_to`` resume a scan from a
        block returned earlier (its end, line and ``read_to``); ``expect``
        is that block's ``(raw_position, raw_sha256)``, checked against the
        file as it is read again. After the last block, :attr:`sha256` holds
        the SHA-256 of the whole raw file.
        """
        yield from self.read_runs(lambda data, offset, line, eof: self._scan(
            data, offset, line, eof=eof, expected_fields=self._fields), start_offset, start_line, read_to, expect)

    def read_runs(self, scan, start_offset: int | None = None, start_line: int | None = None,
                  read_to: int | None = None, expect=None):
        """Read the file in blocks and yield the runs of whole records ``scan`` cuts.

        ``scan(data, offset, line, eof)`` returns a block (with ``data``,
        the run, and ``lines``, its newlines) or None to read more. The
        resume arguments and :attr:`sha256` are as in :meth:`blocks`.
        """
        from .sources import CorruptCompressedData

        offset, line = self.data_start
        if start_offset is not None:
            offset, line = int(start_offset), int(start_line)
        stream = self._open(expect)
        pending = b""
        try:
            stream.skip(offset)
            pending = stream.read(max(0, int(read_to) - offset)) if read_to is not None else b""
            while True:
                data = stream.read_after(pending, self.block_size)
                eof = len(data) == len(pending)
                if eof:
                    if not data:
                        break
                    if not data.endswith(b"\n"):
                        data += b"\n"
                block = scan(data, offset, line, eof)
                if block is None:
                    if len(data) > self.max_record_bytes:
                        raise self.error(
                            line, offset,
                            f"a record is longer than {self.max_record_bytes} bytes "
                            f"({_mebibytes(self.max_record_bytes)}, the most questlearn reads as one record); "
                            "most likely a quote opened here is never closed",
                        )
                    pending = data
                    continue
                self._check_record_lengths(block.data, offset, line)
                consumed = len(block.data)
                pending = data[consumed:]
                offset += consumed
                line += block.lines
                block.read_to = stream.position
                block.raw_position = stream.raw.position
                block.raw_sha256 = stream.raw.digest.copy().hexdigest()
                self.raw_position = stream.raw.position
                yield block
                if eof:
                    break
            self.sha256 = stream.finish()
            self.raw_position = stream.raw.position
        except CorruptCompressedData as error:
            if stream.position < offset:  # while skipping to a resumed position: no line to name
                raise
            raise self._broken_off(error, offset, line, pending) from None
        finally:
            stream.close()

    def _check_record_lengths(self, data, offset: int, line: int) -> None:
        """Refuse a run that holds a record longer than :attr:`max_record_bytes`
        (only a run longer than that can; most are not, and cost nothing)."""
        if len(data) <= self.max_record_bytes:
            return
        array = np.frombuffer(data, np.uint8)
        newlines = np.flatnonzero(array == LF)
        ends = _outside_quotes(np.flatnonzero(array == QUOTE), newlines) + 1
        lengths = np.diff(ends, prepend=0)
        longest = int(np.argmax(lengths))
        if lengths[longest] > self.max_record_bytes:
            start = int(ends[longest] - lengths[longest])
            raise self.error(line + int(np.searchsorted(newlines, start)), offset + start,
                             f"this record is {int(lengths[longest])} bytes long, more than the "
                             f"{self.max_record_bytes} bytes ({_mebibytes(self.max_record_bytes)}) questlearn reads "
                             "as one record; shorten its long field (keep large text or blobs out of the log), "
                             "or look for a quote here that is closed only far later")

    def _broken_off(self, error, offset: int, line: int, before: bytes) -> CsvFormatError:
        """The error for compressed data that breaks off, at the start of the
        line where decompression stops; ``before`` holds the decoded bytes from
        ``offset`` (on ``line``) up to the read that failed."""
        from .sources import DECODE_PIECE

        text = before + error.decoded
        return self.error(line + text.count(b"\n"), offset + text.rfind(b"\n") + 1,
                          f"the {self.source.compression} data is corrupt or truncated: it decompresses to byte "
                          f"{offset + len(text)}, in the record on this line, and breaks off within the next "
                          f"{DECODE_PIECE // 1024} KiB ({error.reason}); copy or compress the file again")

    def scan_fragment(self, data: bytes, base: int):
        """Validated whole records at the start of ``data`` (read from byte
        ``base``, not at the end of the file), or None; for sampling."""
        return self._scan(data, base, 1, eof=False, expected_fields=self._fields)

    def _fail(self, newlines: np.ndarray, base: int, line: int, position: int, problem: str):
        raise self.error(line + int(np.searchsorted(newlines, position)), base + position, problem)

    def _scan(self, data, base, line, eof, expected_fields, max_records=None):
        """Find and validate the complete records at the start of ``data``."""
        array = np.frombuffer(data, dtype=np.uint8)
        quotes = np.flatnonzero(array == QUOTE)
        newlines = np.flatnonzero(array == LF)
        terminators = _outside_quotes(quotes, newlines)
        if len(terminators) == 0:
            if eof:
                self._unterminated(array, quotes, 0, newlines, base, line)
            return None
        if max_records is not None:
            terminators = terminators[:max_records]
        cut = int(terminators[-1]) + 1
        if eof and max_records is None and cut < len(data):
            self._unterminated(array, quotes, cut, newlines, base, line)
        region = array[:cut]
        quotes = quotes[quotes < cut]
        newlines = newlines[newlines < cut]

        nul = np.flatnonzero(region == 0)
        if len(nul):
            self._fail(newlines, base, line, int(nul[0]),
                       "NUL byte: the file looks binary or UTF-16, expected UTF-8 text")
        carriage = np.flatnonzero(region == CR)
        if len(carriage):
            outside = _outside_quotes(quotes, carriage)
            bare = outside[array[outside + 1] != LF]
            if len(bare):
                self._bare_carriage_return(array, quotes, newlines, terminators, base, line, int(bare[0]),
                                           expected_fields)
        self._check_quotes(array, quotes, newlines, base, line)
        if region.max(initial=0) >= 0x80:
            try:
                data[:cut].decode("utf-8")
            except UnicodeDecodeError as error:
                self._fail(newlines, base, line, error.start,
                           f"invalid UTF-8 ({error.reason}); re-encode the file as UTF-8")

        starts = np.concatenate(([0], terminators[:-1] + 1))
        stops = terminators + 1
        content_end = terminators - (array[np.maximum(terminators - 1, 0)] == CR) * (terminators > starts)
        blank = content_end == starts
        starts, stops = starts[~blank], stops[~blank]
        if expected_fields is not None and len(starts):
            commas = np.flatnonzero(region == self._delimiter_byte)
            commas = _outside_quotes(quotes, commas)
            fields = np.diff(np.searchsorted(commas, np.concatenate(([starts[0]], stops)))) + 1
            # commas between a record's stop and the next start are impossible (blank lines only)
            ragged = np.flatnonzero(fields != expected_fields)
            if len(ragged):
                index = int(ragged[0])
                self._fail(newlines, base, line, int(starts[index]),
                           f"ragged row: expected {expected_fields} fields as in the header, found {int(fields[index])}")
        return RecordBlock(
            data=data[:cut], starts=starts, stops=stops, offset=base, first_line=line,
            newlines=newlines, blank_lines=int(blank.sum()), decompressed=self.decompressed,
        )

    def _bare_carriage_return(self, array, quotes, newlines, terminators, base, line, position, expected_fields):
        """A CR outside quotes and not before a LF: a CR line ending, or a CR
        inside an unquoted value (pandas' ``to_csv`` writes a text holding one
        as is).

        Lines that end in CR make the header (or a record holding several of
        them) look like one long line with too many fields; a CR inside a value
        of a file whose lines end in LF or CRLF leaves its record with the
        header's field count, so the error names the column.
        """
        line_ending = "bare CR line ending: convert the file to LF or CRLF line endings"
        if expected_fields is None:  # the header: a CR here ends it
            self._fail(newlines, base, line, position, line_ending)
        start = int(terminators[np.searchsorted(terminators, position) - 1]) + 1 if terminators[0] < position else 0
        stop = int(terminators[np.searchsorted(terminators, position)])
        delimiters = np.flatnonzero(array[start:stop] == self._delimiter_byte) + start
        delimiters = _outside_quotes(quotes, delimiters)
        if len(delimiters) + 1 != expected_fields:
            self._fail(newlines, base, line, position, line_ending)
        column = self.header.names[int(np.searchsorted(delimiters, position))]
        self._fail(newlines, base, line, position,
                   f"a carriage return (CR) inside the unquoted value of column {column!r}: CSV readers take it "
                   "for a line end; quote the values that hold one (pandas: to_csv(..., quoting=csv.QUOTE_NONNUMERIC)) "
                   "or remove the CR from the text")

    def _unterminated(self, array, quotes, record_start, newlines, base, line):
        """The file ends inside a quoted field of the record at ``record_start``."""
        quotes = quotes[quotes >= record_start]
        self._check_quotes(array, quotes, newlines, base, line)
        self._fail(newlines, base, line, self._field_opening_before(array, quotes, len(array)), UNTERMINATED)

    @staticmethod
    def _field_opening_before(array, quotes, position) -> int:
        """The last quote before ``position`` that opens a field (not an escaped ``""``)."""
        openings = quotes[0::2]
        openings = openings[(openings == 0) | (array[np.maximum(openings - 1, 0)] != QUOTE)]
        return int(openings[np.searchsorted(openings, position, side="right") - 1])

    def _check_quotes(self, array, quotes, newlines, base, line):
        """RFC 4180: a quote opens a field only at its start, and a closing
        quote is followed by a delimiter, a line end or a doubled quote.

        A misplaced quote shifts the meaning of every later quote, so the
        error points at the quote that opened the field where parsing broke.
        """
        if not len(quotes):
            return
        delimiter = self._delimiter_byte
        opening = quotes[0::2]
        closing = quotes[1::2]
        previous = array[np.maximum(opening - 1, 0)]
        bad_open = (opening > 0) & (previous != delimiter) & (previous != LF) & (previous != QUOTE)
        following = array[closing + 1]
        bad_close = (following != delimiter) & (following != LF) & (following != CR) & (following != QUOTE)
        problems = []
        if bad_open.any():
            problems.append((int(opening[bad_open][0]), "a quote inside an unquoted field"))
        if bad_close.any():
            problems.append((int(closing[bad_close][0]) + 1, "text after a closing quote"))
        if not problems:
            return
        position, problem = min(problems)
        advice = "quote whole fields, and double any quote inside them"
        if BACKSLASH in (array[max(position - 2, 0)], array[max(position - 1, 0)]):
            advice = ('this looks like backslash-escaped quotes (\\"), the default of Spark\'s CSV writer; write the '
                      "file with .option(\"escape\", '\"') so quotes inside fields are doubled as RFC 4180 says")
        self._fail(newlines, base, line, self._field_opening_before(array, quotes, position),
                   f"malformed quoting: {problem} at byte offset {base + position}, in the field opened by "
                   f"the quote here ({advice})")
