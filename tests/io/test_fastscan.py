"""The fast record cut reports every malformed input exactly where the strict scanner does.

Without CSV shards the split cuts runs with :mod:`questlearn.io._fastscan`;
with them, with the strict scanner. Both must stop at the same file, line
and byte offset with the same message, and count blank lines the same.
"""

import pytest

from questlearn.io.csvscan import CsvFormatError
from questlearn.manifest._files import load_manifest
from questlearn.split import split_csv

HEADER = b"id,level,note,cleared\n"


def good_rows(count, start=0):
    return b"".join(b"%d,%d,n%d,%d\n" % (i, i % 60, i % 7, i % 2) for i in range(start, start + count))


def _break(row_bytes):
    return HEADER + good_rows(900) + row_bytes + good_rows(400, start=2000)


BROKEN = {
    "ragged row": _break(b"1,2,3\n"),
    "too many fields": _break(b"1,2,x,0,9\n"),
    "stray quote inside a field": _break(b'1,2,ab"c,0\n'),
    "text after a closing quote": _break(b'1,2,"ab"c,0\n'),
    "unterminated quote": HEADER + good_rows(900) + b'1,2,"never closed,0\n' + good_rows(50, start=5000),
    "bad UTF-8": _break(b"1,2,caf\xe9,0\n"),
    "bare CR": _break(b"1,2,x,0\r5,6,y,1\n"),
    "NUL byte": _break(b"1,2,x\x00y,0\n"),
    "backslash-escaped quote": _break(b'1,2,"say \\"hi\\"",0\n'),
    "not a number": _break(b"1,lots,x,0\n"),
    "missing label": _break(b"1,2,x,\n"),
}


@pytest.mark.parametrize("case", BROKEN)
@pytest.mark.parametrize("block_size", [1024, 7000])
def test_fast_cut_reports_what_the_strict_scanner_reports(tmp_path, case, block_size):
    source = tmp_path / "broken.csv"
    source.write_bytes(BROKEN[case])
    errors = []
    for formats in (("npy",), ("csv", "npy")):
        with pytest.raises(CsvFormatError) as caught:
            split_csv(source, tmp_path / f"out-{len(formats)}", formats=formats, block_size=block_size, verbose=False)
        errors.append((caught.value.line, caught.value.byte_offset, caught.value.problem))
        assert not (tmp_path / f"out-{len(formats)}").exists()
    assert errors[0] == errors[1]
    assert errors[0][0] >= 902, errors[0]  # in the broken row, not at a block edge


def test_quoted_newlines_crlf_and_blank_lines_are_cut_and_counted_alike(tmp_path):
    body = b"".join(b'%d,%d,"line one\nline two, %d",%d\r\n' % (i, i % 60, i, i % 2) if i % 5 == 0 else
                    b"%d,%d,plain %d,%d\n" % (i, i % 60, i, i % 2) for i in range(3000))
    lines = body.split(b"\n")
    for position in (7, 400, 401, 402, 2999):  # blank lines, a run of them, one at the end
        lines[position] = b"\n" + lines[position]
    source = tmp_path / "quoted.csv"
    source.write_bytes(HEADER + b"\n".join(lines) + b"\n\n")
    manifests = []
    for formats in (("npy",), ("csv", "npy")):
        out = tmp_path / f"out-{len(formats)}"
        split_csv(source, out, formats=formats, block_size=1024, verbose=False, id_columns=("id",))
        manifests.append(load_manifest(out))
    fast, strict = manifests
    assert fast["source"]["rows"] == strict["source"]["rows"] == 3000
    assert fast["source"]["blank_lines_skipped"] == strict["source"]["blank_lines_skipped"] == 6
    shas = lambda m: [s["files"][part]["sha256"] for sub in ("train", "validate")  # noqa: E731
                      for s in m["subsets"][sub]["shards"] for part in ("numbers", "codes")]
    assert shas(fast) == shas(strict)
