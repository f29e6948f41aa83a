"""ZIP sources: a zip of CSV files is read as those files, streamed, like the other compressed formats."""

import gzip
import io
import signal
import sys
import zipfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from helpers import ID_COLUMNS, check, run_child, run_questlearn

from questlearn.errors import InputFormatError
from questlearn.manifest._files import load_manifest
from questlearn.split import split_csv
from questlearn.split.inspection import inspect_source
from questlearn.synth import write_quest_log

OPTIONS = {"rows_per_shard": 500, "id_columns": ID_COLUMNS, "block_size": 8192, "formats": ("csv", "npy")}
SPLIT = [sys.executable, "-m", "questlearn.cli", "split", "--no-progress", "--rows-per-shard", "400",
         "--id-column", "attempt_id", "--id-column", "player_id", "--block-size", "4096"]


def split(source, out, **parameters):
    split_csv(source, out, verbose=False, **{**OPTIONS, **parameters})
    return load_manifest(out)


def write_zip(target: Path, members, method=zipfile.ZIP_DEFLATED) -> Path:
    """A zip holding ``members``: ``(name, bytes or a path to copy)`` in the order given."""
    with zipfile.ZipFile(target, "w", method) as archive:
        for name, content in members:
            archive.writestr(name, content.read_bytes() if isinstance(content, Path) else content)
    return target


def npy_files(root: Path) -> dict:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*.npy"))}


def shard_rows(manifest) -> list:
    """Every data row of the CSV shards (headers dropped)."""
    rows = []
    for subset in ("train", "validate"):
        for shard in manifest["subsets"][subset]["shards"]:
            rows += (Path(manifest["root"]) / shard["files"]["csv"]["name"]).read_bytes().splitlines()[1:]
    return rows


def patch_member(path: Path, *, flags: int = 0, method: int | None = None) -> None:
    """Set flag bits and/or the compression method of the (first) member in both its local and central headers."""
    data = bytearray(path.read_bytes())
    for signature, flag_at, method_at in ((b"PK\x03\x04", 6, 8), (b"PK\x01\x02", 8, 10)):
        at = data.find(signature)
        data[at + flag_at] |= flags
        if method is not None:
            data[at + method_at:at + method_at + 2] = method.to_bytes(2, "little")
    path.write_bytes(bytes(data))


@pytest.fixture(scope="module")
def plain(tmp_path_factory):
    root = tmp_path_factory.mktemp("zipsrc")
    log = write_quest_log(root / "quests.csv", rows=3000, seed=13, nasty=True)
    return log, split(log, root / "plain")


@pytest.fixture(scope="module")
def rows(tmp_path_factory):
    """A log without quoted newlines, as its header and its rows (lines), to cut into members."""
    log = write_quest_log(tmp_path_factory.mktemp("ziprows") / "rows.csv", rows=3000, seed=14, nasty=False)
    lines = log.read_bytes().splitlines(keepends=True)
    assert len(lines) == 3001
    return lines[0], lines[1:]


@pytest.mark.parametrize("method", [zipfile.ZIP_DEFLATED, zipfile.ZIP_STORED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA],
                         ids=["deflate", "stored", "bzip2", "lzma"])
def test_a_zip_holding_one_csv_splits_to_the_same_shards_and_manifest_as_the_csv(plain, tmp_path, method):
    log, expected = plain
    packed = write_zip(tmp_path / "download.bin", [("quests.csv", log)], method)  # detected by content, not name
    manifest = split(packed, tmp_path / "out")
    assert npy_files(tmp_path / "out") == npy_files(Path(expected["root"]))
    for key in ("stats", "schema"):
        assert manifest[key] == expected[key], key
    for subset in ("train", "validate"):
        assert manifest["subsets"][subset]["rows"] == expected["subsets"][subset]["rows"]
        assert ([s["files"] for s in manifest["subsets"][subset]["shards"]]
                == [s["files"] for s in expected["subsets"][subset]["shards"]])
    recorded = manifest["source"]["files"]
    assert len(recorded) == 1
    assert recorded[0]["compression"] == "zip" and recorded[0]["member"] == "quests.csv"
    assert recorded[0]["name"] == "download.bin:quests.csv" and recorded[0]["rows"] == 3000
    assert recorded[0]["archive_bytes"] == packed.stat().st_size
    with zipfile.ZipFile(packed) as archive:
        assert recorded[0]["bytes"] == archive.getinfo("quests.csv").compress_size
    assert manifest["source"]["path"] == str(packed.resolve()) and manifest["source"]["member"] == "quests.csv"


def test_a_zip_of_several_csvs_is_one_source_in_member_name_order(rows, tmp_path):
    header, body = rows
    thirds = [body[i::3] for i in range(3)]
    members = [(f"logs/part-{i}.csv", header + b"".join(thirds[i])) for i in (2, 0, 1)]  # stored out of order
    packed = write_zip(tmp_path / "parts.zip", members)
    folder = tmp_path / "parts"  # the same files gzip-compressed: sampled and estimated as the members are
    folder.mkdir()
    (folder / "_SUCCESS").write_bytes(b"")
    for name, content in members:
        (folder / f"{Path(name).name}.gz").write_bytes(gzip.compress(content, compresslevel=6, mtime=0))
    manifest = split(packed, tmp_path / "zipped")
    unzipped = split(folder, tmp_path / "unzipped")
    assert [f["name"] for f in manifest["source"]["files"]] == [f"parts.zip:logs/part-{i}.csv" for i in range(3)]
    assert [f["rows"] for f in manifest["source"]["files"]] == [len(t) for t in thirds]
    assert npy_files(tmp_path / "zipped") == npy_files(tmp_path / "unzipped")
    assert manifest["stats"] == unzipped["stats"] and manifest["schema"] == unzipped["schema"]
    assert sorted(shard_rows(manifest)) == sorted(line.rstrip(b"\n") for line in body)


def test_directories_macos_metadata_and_empty_members_are_skipped_and_printed(plain, tmp_path, capsys):
    log, expected = plain
    packed = write_zip(tmp_path / "mac.zip", [
        ("data/", b""), ("data/quests.csv", log), ("__MACOSX/data/._quests.csv", b"\x00\x05\x16\x07\x00\x02junk"),
        ("data/._quests.csv", b"\x00\x05\x16\x07"), ("data/.DS_Store", b"\x00\x00\x00\x01Bud1"),
        ("data/empty.csv", b""), ("README.md", b"# About these quests\n")])
    manifest = split(packed, tmp_path / "out")
    assert npy_files(tmp_path / "out") == npy_files(Path(expected["root"]))
    assert [f["member"] for f in manifest["source"]["files"]] == ["data/quests.csv"]
    printed = capsys.readouterr().out
    line = next(line for line in printed.splitlines() if "skipped" in line)
    for name in ("data/ (a directory)", "__MACOSX/data/._quests.csv", "data/._quests.csv", "data/.DS_Store",
                 "data/empty.csv (empty)", "README.md (not named .csv or .tsv)"):
        assert name in line, name
    assert line.startswith(f"questlearn: {packed}: skipped 6 member(s)")


def test_a_zip_with_no_csv_member_is_refused_in_one_line(tmp_path):
    packed = write_zip(tmp_path / "nothing.zip", [("data/", b""), ("__MACOSX/._x.csv", b"\x00\x05"),
                                                   ("empty.csv", b"")])
    with pytest.raises(InputFormatError) as caught:
        split_csv(packed, tmp_path / "out", verbose=False)
    message = str(caught.value)
    assert message.startswith(f"{packed} holds no CSV member") and "\n" not in message
    assert not (tmp_path / "out").exists()


def test_an_encrypted_zip_member_is_refused_naming_the_zip_the_member_and_the_fix(plain, tmp_path):
    log, _ = plain
    packed = write_zip(tmp_path / "secret.zip", [("quests.csv", log)])
    patch_member(packed, flags=0x1)
    with pytest.raises(InputFormatError) as caught:
        split_csv(packed, tmp_path / "out", verbose=False)
    message = str(caught.value)
    assert message.startswith(f"{packed}:quests.csv is encrypted") and "unzip" in message and "\n" not in message


def test_a_zip_member_compressed_with_a_method_zipfile_cannot_read_is_refused(plain, tmp_path):
    log, _ = plain
    packed = write_zip(tmp_path / "deflate64.zip", [("quests.csv", log)])
    patch_member(packed, method=9)
    with pytest.raises(InputFormatError) as caught:
        split_csv(packed, tmp_path / "out", verbose=False)
    message = str(caught.value)
    assert message.startswith(f"{packed}:quests.csv is compressed with Deflate64 (method 9)")
    assert "unzip" in message and "\n" not in message


def _gzip(data):
    return gzip.compress(data)


def _inner_zip(data):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as inner:
        inner.writestr("quests.csv", data)
    return buffer.getvalue()


@pytest.mark.parametrize("member,pack,looks_like", [
    ("quests.csv.gz", _gzip, "gzip-compressed data"),
    ("quests.csv", _gzip, "gzip-compressed data"),
    ("inner.zip", _inner_zip, "a ZIP archive"),
    ("photo.png", lambda data: b"\x89PNG\r\n\x1a\n" + bytes(64), "a PNG image"),
], ids=["gzip-member", "gzip-named-csv", "zip-in-zip", "image-only"])
def test_a_zip_member_that_is_compressed_an_archive_or_binary_is_refused(plain, tmp_path, member, pack, looks_like):
    log, _ = plain
    packed = write_zip(tmp_path / "nested.zip", [(member, pack(log.read_bytes()))])
    with pytest.raises(InputFormatError) as caught:
        split_csv(packed, tmp_path / "out", verbose=False)
    message = str(caught.value)
    assert message.startswith(f"{packed}:{member} is {looks_like}") and "\n" not in message
    assert "unzip" in message or "extract" in message


def test_a_zip_of_parquet_files_is_refused_telling_to_unzip(tmp_path):
    buffer = io.BytesIO()
    pq.write_table(pa.table({"level": [1, 2, 3], "cleared": [0, 1, 0]}), buffer)
    packed = write_zip(tmp_path / "tables.zip", [("part-0.parquet", buffer.getvalue()), ("part-1.parquet", buffer.getvalue())])
    with pytest.raises(InputFormatError) as caught:
        split_csv(packed, tmp_path / "out", verbose=False)
    message = str(caught.value)
    assert message.startswith(f"{packed}:part-0.parquet is Parquet") and "(unzip)" in message and "\n" not in message


def test_an_office_document_is_named_as_such_not_read_as_csv(tmp_path):
    packed = write_zip(tmp_path / "sheet.xlsx", [("[Content_Types].xml", b"<?xml version='1.0'?><Types/>"),
                                                 ("xl/workbook.xml", b"<workbook/>")])
    with pytest.raises(InputFormatError, match=r"looks like an Office document .*save the sheet as CSV"):
        split_csv(packed, tmp_path / "out", verbose=False)


def test_a_zip_member_whose_header_differs_is_refused_naming_it(plain, tmp_path):
    log, _ = plain
    packed = write_zip(tmp_path / "mixed.zip", [("a.csv", log), ("b.csv", b"level,power\n1,2\n")])
    with pytest.raises(InputFormatError) as caught:
        split_csv(packed, tmp_path / "out", verbose=False, id_columns=ID_COLUMNS)
    assert str(caught.value).startswith(f"{packed}:b.csv: line 1,") and "header differs" in str(caught.value)


def test_a_bad_row_inside_a_zip_member_names_the_member_line_and_decompressed_byte(rows, tmp_path):
    header, body = rows
    log = tmp_path / "good.csv"
    log.write_bytes(header + b"".join(body))
    lines = [header, *body]
    bad = 2500
    fields = lines[bad].split(b",")
    lines[bad] = b",".join(fields[:3]) + b"\n"  # a ragged row far past the sample's first block
    data = b"".join(lines)
    offset = len(b"".join(lines[:bad]))
    packed = write_zip(tmp_path / "bad.zip", [("good.csv", log), ("bad.csv", data)])
    with pytest.raises(InputFormatError) as caught:
        split_csv(packed, tmp_path / "out", verbose=False, **OPTIONS)
    message = str(caught.value)
    line = 1 + data[:offset].count(b"\n")
    assert message.startswith(f"{packed}:bad.csv: line {line}, byte {offset} of the decompressed data: ragged row")


def test_a_corrupt_zip_member_is_reported_as_corrupt_zip_data(plain, tmp_path):
    log, _ = plain
    packed = write_zip(tmp_path / "corrupt.zip", [("quests.csv", log)])
    data = bytearray(packed.read_bytes())
    middle = len(data) // 2
    data[middle:middle + 64] = bytes(64)  # inside the member's deflate stream
    packed.write_bytes(bytes(data))
    with pytest.raises(InputFormatError) as caught:
        split_csv(packed, tmp_path / "out", verbose=False, **OPTIONS)
    message = str(caught.value)
    assert message.startswith(f"{packed}:quests.csv: line") and "the zip data is corrupt or truncated" in message


def test_a_truncated_zip_is_refused_in_one_line(plain, tmp_path):
    log, _ = plain
    packed = write_zip(tmp_path / "cut.zip", [("quests.csv", log)])
    packed.write_bytes(packed.read_bytes()[:-100])  # the directory at the end is lost, as in a broken download
    with pytest.raises(InputFormatError) as caught:
        split_csv(packed, tmp_path / "out", verbose=False)
    message = str(caught.value)
    assert message.startswith(f"{packed} starts like a ZIP archive but its directory cannot be read")
    assert "fetch it again" in message and "\n" not in message


def test_inspect_reads_a_zip(plain, tmp_path):
    log, _ = plain
    packed = write_zip(tmp_path / "quests.zip", [("quests.csv", log)])
    printed = []
    inferred = inspect_source(packed, print_to=printed.append, label="cleared")
    assert [c.name for c in inferred.columns] == log.read_text(encoding="utf-8-sig").splitlines()[0].split(",")
    assert "(zip): quests.zip:quests.csv" in printed[0]


def test_splitting_a_zip_again_into_its_finished_output_returns_the_manifest(plain, tmp_path):
    log, _ = plain
    packed = write_zip(tmp_path / "quests.zip", [("quests.csv", log)])
    first = split(packed, tmp_path / "out")
    packed.touch()  # a new modification time, the same bytes: the member's stored bytes are hashed again
    assert split(packed, tmp_path / "out")["subsets"] == first["subsets"]


@pytest.mark.timeout(900)
def test_a_killed_split_of_a_zip_resumes_byte_identical(tmp_path):
    log = write_quest_log(tmp_path / "log.csv", rows=12_000, seed=9)
    packed = write_zip(tmp_path / "log.zip", [("a/log.csv", log), ("b/log.csv", log)])
    clean, killed = tmp_path / "clean", tmp_path / "killed"
    check(run_questlearn(*SPLIT[3:], packed, clean, module="questlearn.cli"))
    kills = 0
    for point, nth in (("append", 40), ("journal", 4), ("append", 120)):  # in the first member, then the second
        result = run_child("split_kill_child.py", point, nth, tmp_path / "unused.json", "--", *SPLIT[4:],
                           str(packed), str(killed), timeout=720)
        assert result.returncode == -signal.SIGKILL, result.stderr[-2000:]
        kills += 1
    check(run_questlearn(*SPLIT[3:], packed, killed, module="questlearn.cli"))
    tree = {str(p.relative_to(clean)): p.read_bytes() for p in sorted(clean.rglob("*")) if p.is_file()}
    resumed = {str(p.relative_to(killed)): p.read_bytes() for p in sorted(killed.rglob("*")) if p.is_file()}
    assert kills == 3 and sorted(tree) == sorted(resumed)
    for name, content in tree.items():
        assert resumed[name] == content, name
    assert [f["rows"] for f in load_manifest(killed)["source"]["files"]] == [12_000, 12_000]


@pytest.mark.timeout(900)
def test_a_parallel_split_of_a_zip_reads_each_member_as_a_part(rows, tmp_path):
    header, body = rows
    members = [(f"part-{i}.csv", header + b"".join(body[i::3])) for i in range(3)]
    packed = write_zip(tmp_path / "parts.zip", members)
    sequential = split(packed, tmp_path / "sequential")
    parallel = split(packed, tmp_path / "parallel", parallel=2)
    assert [f["name"] for f in parallel["source"]["files"]] == [f"parts.zip:part-{i}.csv" for i in range(3)]
    assert [f["member"] for f in parallel["source"]["files"]] == [f"part-{i}.csv" for i in range(3)]
    assert [f["rows"] for f in parallel["source"]["files"]] == [f["rows"] for f in sequential["source"]["files"]]
    assert sorted(shard_rows(parallel)) == sorted(shard_rows(sequential)) == sorted(line.rstrip(b"\n") for line in body)


def test_a_highly_compressed_members_rows_and_disk_are_estimated_from_its_recorded_size(tmp_path, capsys):
    import numpy as np

    from questlearn.schema.encoding import Encoding

    rng = np.random.default_rng(0)
    rows, random = 300_000, 110_000  # 12.6 MB decoded; the sample's first 4 MiB hold random notes, which compress little
    notes = [rng.bytes(16).hex() for _ in range(random)] + ["0" * 32] * (rows - random)
    data = "id,note,label\n" + "".join(f"{i:06d},{note},{i % 2}\n" for i, note in enumerate(notes))
    packed = write_zip(tmp_path / "log.zip", [("log.csv", data.encode())])
    assert packed.stat().st_size < len(data) / 3
    split_csv(packed, tmp_path / "out", label="label", id_columns=["id"], formats=("csv", "npy"), progress=False)
    manifest = load_manifest(tmp_path / "out")
    assert manifest["source"]["rows"] == rows
    assert manifest["scatter"]["estimated_rows"] == pytest.approx(rows, rel=0.02)
    printed = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("questlearn: about"))
    per_row = float(printed.split(" bytes a row")[0].rsplit("(", 1)[1])
    shards_row = Encoding.from_record(manifest["schema"]["encoding"]).row_bytes() + 4 + 8  # + label + row number
    assert per_row - shards_row == pytest.approx(len(data) / rows, rel=0.05)  # the CSV copy: the decoded bytes


def _garble_directory_entry(path: Path, start: int, garbage: bytes) -> None:
    """Overwrite bytes of the (first) member's central directory entry, from ``start`` past its signature."""
    data = bytearray(path.read_bytes())
    at = data.find(b"PK\x01\x02")
    data[at + start:at + start + len(garbage)] = garbage
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("start, garbage, wrong", [
    (10, b"\x3f\x3f", "says compression method 16191, flags 0x0, where the member's own header says method 8, flags 0x0"),
    (8, b"\xab" * 12, "says compression method 43947, flags 0xabab, where the member's own header says method 8, flags 0x0"),
    (42, b"\xff\x00\x00\x00", "points to byte 255, where no member begins"),
], ids=["method", "flags-and-method", "offset"])
def test_a_damaged_central_directory_is_reported_as_a_damaged_archive(plain, tmp_path, start, garbage, wrong):
    log, _ = plain
    packed = write_zip(tmp_path / "damaged.zip", [("quests.csv", log)])
    _garble_directory_entry(packed, start, garbage)
    with pytest.raises(InputFormatError) as caught:
        split_csv(packed, tmp_path / "out", verbose=False)
    assert str(caught.value) == (f"{packed} is a damaged ZIP archive: its central directory entry for 'quests.csv' "
                                 f"{wrong}; fetch or copy the archive again (or extract what unzip can and pass the "
                                 "CSV files)")
