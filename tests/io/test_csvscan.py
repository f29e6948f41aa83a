"""The strict scanner: RFC 4180 records, exact error locations."""

import json

import pytest

from questlearn.io.csvscan import CsvFormatError, CsvScanner


def records(path, block_size=4):
    scanner = CsvScanner(path, block_size=block_size)
    found = []
    for block in scanner.blocks():
        found += [block.data[start:stop] for start, stop in zip(block.starts, block.stops)]
    return scanner.header.names, found


def write(tmp_path, payload: bytes):
    path = tmp_path / "input.csv"
    path.write_bytes(payload)
    return path


# csv-spectrum style cases: (name, bytes, expected header, expected raw records)
SPECTRUM = [
    ("simple", b"a,b,c\n1,2,3\n", ["a", "b", "c"], [b"1,2,3\n"]),
    ("simple_crlf", b"a,b,c\r\n1,2,3\r\n", ["a", "b", "c"], [b"1,2,3\r\n"]),
    ("comma_in_quotes", b'first,last\n"x, y",z\n', ["first", "last"], [b'"x, y",z\n']),
    ("escaped_quotes", b'a,b\n1,"ha ""ha"" ha"\n', ["a", "b"], [b'1,"ha ""ha"" ha"\n']),
    ("newlines", b'a,b\n1,"line\nbreak"\n2,3\n', ["a", "b"], [b'1,"line\nbreak"\n', b"2,3\n"]),
    ("newlines_crlf", b'a,b\r\n1,"line\r\nbreak"\r\n2,3\r\n', ["a", "b"], [b'1,"line\r\nbreak"\r\n', b"2,3\r\n"]),
    ("quotes_and_newlines", b'a,b\n1,"ha\n""ha""\nha"\n', ["a", "b"], [b'1,"ha\n""ha""\nha"\n']),
    ("utf8", "a,b\n1,ñandú ⚔\n".encode(), ["a", "b"], ["1,ñandú ⚔\n".encode()]),
    ("quoted_header", b'"a,1","b\nx"\n1,2\n', ["a,1", "b\nx"], [b"1,2\n"]),
    ("bom", b"\xef\xbb\xbfa,b\n1,2\n", ["a", "b"], [b"1,2\n"]),
    ("no_trailing_newline", b"a,b\n1,2\n3,4", ["a", "b"], [b"1,2\n", b"3,4\n"]),
    ("blank_lines_skipped", b"a,b\n1,2\n\n\r\n3,4\n\n", ["a", "b"], [b"1,2\n", b"3,4\n"]),
    ("empty_fields", b"a,b,c\n,,\n", ["a", "b", "c"], [b",,\n"]),
]


@pytest.mark.parametrize("name,payload,header,expected", SPECTRUM, ids=[case[0] for case in SPECTRUM])
@pytest.mark.parametrize("block_size", [1, 3, 7, 64, 1 << 20])
def test_records_are_found_whatever_the_block_size(tmp_path, name, payload, header, expected, block_size):
    names, found = records(write(tmp_path, payload), block_size)
    assert names == header
    assert found == expected


def test_quoted_newline_at_every_offset_around_a_block_boundary(tmp_path):
    # Rows whose quoted newlines and CRLFs land on every possible block cut.
    rows = [f'{i},"x{"y" * (i % 5)}\n{i}\r\nz",{i}\n'.encode() for i in range(40)]
    path = write(tmp_path, b"a,b,c\n" + b"".join(rows))
    for block_size in range(1, 40):
        _, found = records(path, block_size)
        assert found == rows, block_size


BAD = [
    # (name, bytes, line, byte offset, words in the message)
    ("empty_file", b"", 1, 0, "empty"),
    ("only_newlines", b"\n\n", 1, 0, "empty"),
    ("ragged_short", b"a,b,c\n1,2,3\n4,5\n", 3, 12, "expected 3 fields"),
    ("ragged_long_first_row", b"a,b\n1,2,3\n", 2, 4, "found 3"),
    ("unterminated_quote", b'a,b\n1,2\n3,"open\n5,6\n', 3, 10, "unterminated"),
    ("stray_quote", b'a,b\n1,x"y"\n', 2, 7, "a quote inside an unquoted field at byte offset 7"),
    ("text_after_closing_quote", b'a,b\n1,"x"y\n', 2, 6, "text after a closing quote at byte offset 9"),
    ("stray_quote_shifting_later_quotes", b'a,b\n1,"x""\n2,3\n"4",5\n', 2, 6, "malformed quoting"),
    ("bad_utf8", b"a,b\n1,2\n3,\xff\n", 3, 10, "invalid UTF-8"),
    ("bad_utf8_in_quoted_newline", b'a,b\n1,"x\n\xc3"\n', 3, 9, "invalid UTF-8"),
    ("nul_byte", b"a,b\n1,\x002\n", 2, 6, "NUL byte"),
    ("bare_cr", b"a,b\r1,2\r", 1, 3, "bare CR"),
]


@pytest.mark.parametrize("name,payload,line,offset,words", BAD, ids=[case[0] for case in BAD])
@pytest.mark.parametrize("block_size", [2, 1 << 20])
def test_bad_input_names_file_line_and_byte(tmp_path, name, payload, line, offset, words, block_size):
    path = write(tmp_path, payload)
    with pytest.raises(CsvFormatError) as caught:
        records(path, block_size)
    error = caught.value
    assert (error.line, error.byte_offset) == (line, offset)
    message = str(error)
    assert str(path) in message and f"line {line}" in message and f"byte offset {offset}" in message
    assert words in message


def test_overlong_record_is_an_error_not_unbounded_memory(tmp_path):
    path = write(tmp_path, b'a,b\n1,"' + b"x" * 5000 + b"\n" * 10)
    scanner = CsvScanner(path, block_size=256, max_record_bytes=1024)
    with pytest.raises(CsvFormatError, match="longer than 1024 bytes"):
        list(scanner.blocks())


def test_error_survives_pickling():
    import pickle

    error = CsvFormatError("f.csv", 3, 17, "ragged row")
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.path, copy.line, copy.byte_offset, str(copy)) == ("f.csv", 3, 17, str(error))
    assert json.dumps(str(copy))


def test_an_error_in_a_compressed_file_names_the_byte_of_the_decompressed_data(tmp_path):
    import gzip

    path = tmp_path / "rows.csv.gz"
    path.write_bytes(gzip.compress(b"a,b\n1,2\n3\n"))
    with pytest.raises(CsvFormatError) as caught:
        records(path)
    assert (caught.value.line, caught.value.byte_offset) == (3, 8)
    assert "line 3, byte 8 of the decompressed data: ragged row" in str(caught.value)


def _compressed(data: bytes, kind: str) -> bytes:
    import bz2
    import gzip
    import lzma

    import pyarrow as pa

    if kind == "zstd":
        return pa.compress(data, "zstd", asbytes=True)
    if kind == "bz2":
        return bz2.compress(data, compresslevel=1)  # blocks of 100 kB: a cut file still decompresses in part
    return {"gzip": gzip.compress, "xz": lzma.compress}[kind](data)


def _decodable(packed: bytes, kind: str) -> int:
    """Bytes a decompressor fed 256 bytes at a time gets out of ``packed`` before it fails."""
    import pyarrow as pa

    stream = pa.CompressedInputStream(pa.BufferReader(packed), {"xz": "lzma"}.get(kind, kind))
    got = 0
    try:
        while chunk := stream.read(256):
            got += len(chunk)
    except (OSError, EOFError):
        pass
    return got


@pytest.mark.parametrize("kind", ["gzip", "bz2", "xz", "zstd"])
def test_compressed_data_that_breaks_off_is_reported_at_the_line_where_it_does(tmp_path, kind):
    import lzma

    data = b"a,b,c\n" + b"".join(b"%d,%d,%d\n" % (i, i * 7919 % 100003, i % 13) for i in range(60000))
    packed = _compressed(data, kind)
    path = tmp_path / "rows.csv.data"
    path.write_bytes(packed[: len(packed) * 2 // 3])
    if kind == "xz":
        decoder, good = lzma.LZMADecompressor(), 0
        for start in range(0, len(packed) * 2 // 3, 256):
            good += len(decoder.decompress(packed[start: min(start + 256, len(packed) * 2 // 3)]))
    else:
        good = _decodable(packed[: len(packed) * 2 // 3], kind)
    assert 200_000 < good < len(data)
    with pytest.raises(CsvFormatError) as caught:
        records(path, block_size=1 << 20)
    error = caught.value
    stop = int(str(error).split("decompresses to byte ")[1].split(",")[0])
    assert good - 64 * 1024 <= stop <= good  # not the start of the block being read
    line_start = data.rfind(b"\n", 0, stop) + 1
    assert (error.line, error.byte_offset) == (data[:line_start].count(b"\n") + 1, line_start)
    assert f"{kind} data is corrupt or truncated" in str(error) and "of the decompressed data" in str(error)
    assert str(error).startswith(f"{path}: line {error.line}, byte {line_start} of the decompressed data: ")


@pytest.mark.parametrize("block_size", [5, 1 << 20])
def test_a_carriage_return_inside_an_unquoted_value_names_its_column(tmp_path, block_size):
    # pandas' to_csv writes a text holding a CR unquoted when lines end in LF
    path = write(tmp_path, b"id,text,label\n0,fine,1\n1,hello\rworld,0\n2,ok,1\n")
    with pytest.raises(CsvFormatError) as caught:
        records(path, block_size)
    error = caught.value
    assert (error.line, error.byte_offset) == (3, 30)
    assert "column 'text'" in str(error) and "quote" in str(error) and "line ending" not in str(error)
    crlf = write(tmp_path, b"id,text,label\r\n0,fine,1\r\n1,a,hello\rworld\r\n")
    with pytest.raises(CsvFormatError, match="inside the unquoted value of column 'label'"):
        records(crlf, block_size)


def test_lines_that_end_in_a_carriage_return_are_still_called_so(tmp_path):
    lf_header_then_cr = write(tmp_path, b"id,text,label\n0,a,1\r1,b,0\r2,c,1\n")
    with pytest.raises(CsvFormatError, match="bare CR line ending") as caught:
        records(lf_header_then_cr)
    assert (caught.value.line, caught.value.byte_offset) == (2, 19)


def test_a_whole_record_longer_than_the_limit_is_refused_where_it_starts_even_in_one_read(tmp_path):
    path = write(tmp_path, b'a,b\n1,2\n3,"' + b"x\n" * 1000 + b'"\n5,6\n')  # a record of 2,005 bytes over 1,001 lines
    scanner = CsvScanner(path, block_size=1 << 16, max_record_bytes=1024)
    with pytest.raises(CsvFormatError) as caught:
        list(scanner.blocks())
    assert (caught.value.line, caught.value.byte_offset) == (3, 8)
    assert "this record is 2005 bytes long, more than the 1024 bytes" in str(caught.value)
    assert len(CsvScanner(path, block_size=1 << 16, max_record_bytes=2005).header.names) == 2
    assert sum(len(b) for b in CsvScanner(path, block_size=1 << 16, max_record_bytes=2005).blocks()) == 3
