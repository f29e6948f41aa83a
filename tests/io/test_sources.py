"""Sources: compressed, multi-file and Parquet inputs give the same shards as one plain CSV."""

import bz2
import gzip
import lzma
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import pytest
from helpers import ID_COLUMNS, check, run_child, run_env, run_questlearn

from questlearn.io.csvscan import CsvFormatError
from questlearn.manifest._files import load_manifest
from questlearn.split import split_csv
from questlearn.synth import write_quest_log

SPLIT = [sys.executable, "-m", "questlearn.cli", "split", "--no-progress", "--rows-per-shard", "4000",
         "--id-column", "attempt_id", "--id-column", "player_id", "--block-size", "65536"]


def split(source, out, **parameters):
    """Split quietly (model-ready and CSV shards) and return the loaded manifest (with its ``root``)."""
    parameters.setdefault("formats", ("csv", "npy"))
    split_csv(source, out, verbose=False, **parameters)
    return load_manifest(out)


def compress(source: Path, target: Path, kind: str) -> Path:
    data = source.read_bytes()
    if kind == "gzip":
        target.write_bytes(gzip.compress(data))
    elif kind == "bz2":
        target.write_bytes(bz2.compress(data))
    elif kind == "xz":
        target.write_bytes(lzma.compress(data))
    else:
        with pa.CompressedOutputStream(str(target), "zstd") as stream:
            stream.write(data)
    return target


def shard_hashes(manifest, part="csv"):
    return [(subset, s["files"][part]["sha256"]) for subset in ("train", "validate")
            for s in manifest["subsets"][subset]["shards"]]


def split_rows(manifest):
    """Every data row of the CSV shards, as bytes lines (header dropped), train then validate."""
    rows = []
    for subset in ("train", "validate"):
        for shard in manifest["subsets"][subset]["shards"]:
            lines = (Path(manifest["root"]) / shard["files"]["csv"]["name"]).read_bytes().splitlines()
            rows += lines[1:]
    return rows


def write_parts(source: Path, folder: Path, parts: int, header_only: int | None = None) -> list:
    """Cut ``source`` (no quoted newlines) into ``parts`` CSV files with the header in each."""
    lines = source.read_bytes().splitlines(keepends=True)
    header, body = lines[0], lines[1:]
    folder.mkdir(parents=True, exist_ok=True)
    size = -(-len(body) // parts)
    paths = []
    for index in range(parts):
        path = folder / f"part-{index:05d}.csv"
        rows = [] if index == header_only else body[index * size:(index + 1) * size]
        path.write_bytes(header + b"".join(rows))
        paths.append(path)
        if index == header_only:
            path.write_bytes(header)
    return paths


@pytest.fixture(scope="module")
def plain(tmp_path_factory):
    root = tmp_path_factory.mktemp("sources")
    log = write_quest_log(root / "quests.csv", rows=6000, seed=13)
    manifest = split(log, root / "plain", rows_per_shard=1000, id_columns=ID_COLUMNS, block_size=8192)
    return root, log, manifest


@pytest.mark.parametrize("kind", ["gzip", "bz2", "xz", "zstd"])
def test_compressed_sources_give_the_same_shards_as_the_plain_file(plain, kind, tmp_path):
    root, log, expected = plain
    packed = compress(log, tmp_path / "quests.csv.data", kind)  # a name that says nothing: detected by content
    manifest = split(packed, tmp_path / "out", rows_per_shard=1000, id_columns=ID_COLUMNS, block_size=8192)
    assert shard_hashes(manifest) == shard_hashes(expected)
    for part in ("numbers", "codes"):
        assert shard_hashes(manifest, part) == shard_hashes(expected, part)
    recorded = manifest["source"]["files"][0]
    assert recorded["compression"] == kind and recorded["rows"] == 6000
    assert recorded["sha256"] == __import__("hashlib").sha256(packed.read_bytes()).hexdigest()
    assert recorded["bytes"] == packed.stat().st_size


def test_a_corrupt_gzip_source_is_reported_as_such(plain, tmp_path):
    _, log, _ = plain
    packed = compress(log, tmp_path / "q.csv.gz", "gzip")
    data = bytearray(packed.read_bytes())
    packed.write_bytes(bytes(data[: len(data) // 2]))
    with pytest.raises(ValueError, match="gzip data is corrupt or truncated"):
        split_csv(packed, tmp_path / "out", id_columns=ID_COLUMNS, block_size=8192, verbose=False)


def test_many_files_are_one_source_in_name_order(plain, tmp_path):
    root, log, expected = plain
    folder = tmp_path / "parts"
    write_parts(log, folder, 4, header_only=2)
    (folder / "_SUCCESS").write_bytes(b"")
    (folder / ".part-00000.csv.crc").write_bytes(b"checksum")
    (folder / ".hidden.csv").write_bytes(b"junk")
    manifest = split(folder, tmp_path / "out", rows_per_shard=1000, id_columns=ID_COLUMNS, block_size=8192)
    part_rows = [r for p in sorted(folder.glob("part-*.csv")) for r in p.read_bytes().splitlines()[1:]]
    assert sorted(split_rows(manifest)) == sorted(part_rows)
    assert manifest["source"]["rows"] == sum(len(p.read_bytes().splitlines()) - 1 for p in folder.glob("part-*.csv"))
    assert [f["name"] for f in manifest["source"]["files"]] == [f"part-{i:05d}.csv" for i in range(4)]
    assert manifest["source"]["empty_files_skipped"] == 1
    by_glob = split(str(folder / "part-*.csv"), tmp_path / "glob", rows_per_shard=1000, id_columns=ID_COLUMNS,
                        block_size=8192)
    assert shard_hashes(by_glob) == shard_hashes(manifest)
    listed = split(sorted(folder.glob("part-*.csv")), tmp_path / "list", rows_per_shard=1000,
                       id_columns=ID_COLUMNS, block_size=8192)
    assert shard_hashes(listed) == shard_hashes(manifest)


def test_multi_file_rows_equal_the_single_file_rows(plain, tmp_path):
    root, log, expected = plain
    folder = tmp_path / "parts"
    write_parts(log, folder, 3)
    (folder / "_SUCCESS").write_bytes(b"")
    manifest = split(folder, tmp_path / "out", rows_per_shard=1000, id_columns=ID_COLUMNS, block_size=8192)
    assert sorted(split_rows(manifest)) == sorted(split_rows(expected))
    rows = np.concatenate([np.load(Path(manifest["root"]) / s["files"]["rows"]["name"])
                           for sub in ("train", "validate") for s in manifest["subsets"][sub]["shards"]])
    assert sorted(rows.tolist()) == list(range(6000))


def test_unfinished_spark_directories_and_mismatched_headers_are_refused(plain, tmp_path):
    _, log, _ = plain
    folder = tmp_path / "spark"
    write_parts(log, folder, 2)
    with pytest.raises(ValueError, match="no _SUCCESS marker"):
        split_csv(folder, tmp_path / "a", verbose=False)
    (folder / "_SUCCESS").write_bytes(b"")
    (folder / "_temporary").mkdir()
    with pytest.raises(ValueError, match="_temporary/: a Spark or Hadoop job is still writing"):
        split_csv(folder, tmp_path / "b", verbose=False)
    (folder / "_temporary").rmdir()
    part = folder / "part-00001.csv"
    part.write_bytes(part.read_bytes().replace(b"attempt_id,", b"attempt,", 1))
    with pytest.raises(CsvFormatError, match="the header differs") as caught:
        split_csv(folder, tmp_path / "c", verbose=False)
    assert str(part) in str(caught.value) and "line 1" in str(caught.value)


def test_parquet_sources_keep_every_row(plain, tmp_path):
    root, log, expected = plain
    table = pa_csv.read_csv(log)
    single = tmp_path / "quests.parquet"
    pq.write_table(table, single, row_group_size=700)
    manifest = split(single, tmp_path / "one", rows_per_shard=1000, id_columns=ID_COLUMNS)
    folder = tmp_path / "parquet_parts"
    folder.mkdir()
    for index, start in enumerate(range(0, table.num_rows, 2500)):
        pq.write_table(table.slice(start, 2500), folder / f"part-{index:05d}.parquet", row_group_size=900)
    (folder / "_SUCCESS").write_bytes(b"")
    parts = split(folder, tmp_path / "parts", rows_per_shard=1000, id_columns=ID_COLUMNS)
    for result in (manifest, parts):
        assert result["source"]["format"] == "parquet"
        assert result["source"]["rows"] == table.num_rows
        kinds = {c["name"]: c["kind"] for c in result["schema"]["columns"]}
        assert kinds["power"] == "numeric" and kinds["quest_type"] == "categorical" and kinds["cleared"] == "label"
        shards = [pa_csv.read_csv(Path(result["root"]) / s["files"]["csv"]["name"])
                  for sub in ("train", "validate") for s in result["subsets"][sub]["shards"]]
        ids = sorted(i for shard in shards for i in shard["attempt_id"].to_pylist())
        assert ids == sorted(table["attempt_id"].to_pylist())
        assert result["stats"]["power"]["count"] == expected["stats"]["power"]["count"]
        assert result["stats"]["power"]["mean"] == pytest.approx(expected["stats"]["power"]["mean"], rel=1e-12)
        assert result["stats"]["stamina"]["missing"] == expected["stats"]["stamina"]["missing"]


@pytest.mark.parametrize("payload,words", [
    (b"a;b;cleared\n1;2;0\n", "looks semicolon-delimited; pass --delimiter ';'"),
    (b"a\tb\tcleared\n1\t2\t0\n", "looks tab-delimited; pass --delimiter tab"),
    (b",a,cleared\n0,1,0\n1,2,1\n", "pandas or Dask index written with the data; write the file with to_csv(..., index=False)"),
    (b'a,note,cleared\n1,"he said \\"hi\\" twice",0\n', "backslash-escaped quotes"),
])
def test_writer_mistakes_name_their_fix(tmp_path, payload, words):
    source = tmp_path / "data.csv"
    source.write_bytes(payload)
    with pytest.raises(CsvFormatError) as caught:
        split_csv(source, tmp_path / "out", verbose=False)
    assert words in str(caught.value)
    if b"\\" in payload:
        assert ".option(\"escape\", '\"')" in str(caught.value)


def test_other_delimiters_split_like_commas(plain, tmp_path):
    _, log, expected = plain
    text = log.read_text(encoding="utf-8")
    assert ";" not in text
    semicolons = tmp_path / "semi.csv"
    semicolons.write_text(text.replace(",", ";"), encoding="utf-8")
    manifest = split(semicolons, tmp_path / "out", delimiter=";", rows_per_shard=1000, id_columns=ID_COLUMNS,
                         block_size=8192)
    for part in ("numbers", "codes"):
        assert shard_hashes(manifest, part) == shard_hashes(expected, part)
    assert manifest["schema"]["delimiter"] == ";"


def _kill_and_resume(command, out: Path, kills_at):
    """SIGKILL the split at each ``(step, N)`` of ``kills_at`` in turn (each run resuming the
    last; see tests/children/split_kill_child.py), then let it finish; return how many runs were killed."""
    kills = 0
    for point, nth in kills_at:
        killed = run_child("split_kill_child.py", point, nth, out.parent / "unused.json", "--", *command[4:], timeout=720)
        assert killed.returncode in (0, -signal.SIGKILL), killed.stderr[-2000:]
        kills += killed.returncode == -signal.SIGKILL
    subprocess.run(command, check=True, env=run_env(), stdout=subprocess.DEVNULL)
    return kills


def _tree(root: Path) -> dict:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and p.name != ".split.lock"}


@pytest.mark.timeout(1800)
@pytest.mark.parametrize("layout", ["gzip", "parts"])
def test_killed_split_of_gzip_and_multi_file_sources_resumes_byte_identical(tmp_path, layout):
    log = write_quest_log(tmp_path / "big.csv", rows=60_000, seed=9)
    if layout == "gzip":
        source = compress(log, tmp_path / "big.csv.gz", "gzip")
    else:
        source = tmp_path / "parts"
        write_parts(log, source, 6)
        (source / "_SUCCESS").write_bytes(b"")
    clean, killed = tmp_path / "clean", tmp_path / "killed"
    check(run_questlearn(*SPLIT[3:], source, clean, module="questlearn.cli"))
    # during the pass, then while closing the shards, then among the final renames
    steps = (("append", 300), ("after_append", 500), ("journal", 3), ("replace", 9), ("after_replace", 12),
             ("close", 2), ("after_replace", 5))
    kills = _kill_and_resume([*SPLIT, str(source), str(killed)], killed, steps)
    assert kills == len(steps)
    clean_files, resumed_files = _tree(clean), _tree(killed)
    assert sorted(clean_files) == sorted(resumed_files)
    for name in clean_files:
        assert clean_files[name] == resumed_files[name], name
    if layout == "parts":
        manifest = load_manifest(killed)
        assert [f["rows"] for f in manifest["source"]["files"]] == [10_000] * 6


def test_a_source_that_grows_during_the_split_is_refused(plain, tmp_path, monkeypatch):
    _, log, _ = plain
    growing = tmp_path / "growing.csv"
    growing.write_bytes(log.read_bytes())
    from questlearn.split import _plan as plan_module

    original = plan_module.decide_schema

    def infer_then_append(*args, **kwargs):
        result = original(*args, **kwargs)
        with open(growing, "ab") as handle:
            handle.write(log.read_bytes().splitlines(keepends=True)[1])
        return result

    monkeypatch.setattr(plan_module, "decide_schema", infer_then_append)
    with pytest.raises(ValueError, match="changed while questlearn read it"):
        split_csv(growing, tmp_path / "out", id_columns=ID_COLUMNS, verbose=False)
    assert not (tmp_path / "out" / "manifest.json").exists()


def _spark_folder(log: Path, folder: Path, parts: int = 3) -> list:
    paths = write_parts(log, folder, parts)
    (folder / "_SUCCESS").write_bytes(b"")
    return paths


@pytest.mark.parametrize("form", ["folder", "glob", "list"])
def test_a_dangling_symlink_among_the_parts_is_named_in_one_line(plain, tmp_path, form):
    _, log, _ = plain
    folder = tmp_path / "parts"
    paths = _spark_folder(log, folder)
    link = folder / "part-00009.csv"
    link.symlink_to(tmp_path / "gone.csv")
    source = {"folder": folder, "glob": str(folder / "part-*"), "list": [*paths, link]}[form]
    with pytest.raises(ValueError) as caught:
        split_csv(source, tmp_path / "out", id_columns=ID_COLUMNS, verbose=False)
    message = str(caught.value)
    assert "\n" not in message and "part-00009.csv" in message and "does not exist" in message


def test_a_glob_over_spark_parts_is_checked_like_the_folder(plain, tmp_path):
    _, log, _ = plain
    folder = tmp_path / "spark"
    write_parts(log, folder, 2)
    with pytest.raises(ValueError, match="no _SUCCESS marker"):
        split_csv(str(folder / "part-*"), tmp_path / "a", verbose=False)
    (folder / "_SUCCESS").write_bytes(b"")
    (folder / "_temporary").mkdir()
    with pytest.raises(ValueError, match="_temporary/: a Spark or Hadoop job is still writing"):
        split_csv(str(folder / "part-*.csv"), tmp_path / "b", verbose=False)


def test_a_header_mismatch_names_the_difference_without_echoing_the_file(plain, tmp_path):
    _, log, _ = plain
    folder = tmp_path / "parts"
    _spark_folder(log, folder, 2)
    secret = tmp_path / "secret.txt"
    secret.write_text("root:x:0:0:the-secret-in-this-file-must-not-be-printed-anywhere:/root\nline two\n")
    (folder / "part-00002.csv").symlink_to(secret)
    with pytest.raises(CsvFormatError) as caught:
        split_csv(folder, tmp_path / "a", id_columns=ID_COLUMNS, verbose=False)
    message = str(caught.value)
    assert "part-00002.csv" in message and "1 column where 29 are expected" in message
    assert "secret" not in message and "root:x" not in message
    (folder / "part-00002.csv").unlink()
    part = folder / "part-00001.csv"
    renamed = "player_" + "x" * 200
    part.write_bytes(part.read_bytes().replace(b"player_id,", renamed.encode() + b",", 1))
    with pytest.raises(CsvFormatError) as caught:
        split_csv(folder, tmp_path / "b", id_columns=ID_COLUMNS, verbose=False)
    message = str(caught.value)
    assert "column 2 is 'player_xxx" in message and "where 'player_id' is expected" in message
    assert renamed not in message  # the odd name is cut short


@pytest.mark.parametrize("kind", ["csv", "parquet", "csv.gz", "csv.zst"])
def test_an_empty_part_is_skipped_like_a_header_only_part(plain, tmp_path, kind, capsys):
    _, log, _ = plain
    folder = tmp_path / "parts"
    paths = _spark_folder(log, folder, 3)
    if kind == "parquet":
        for path in paths:
            pq.write_table(pa_csv.read_csv(path), path.with_suffix(".parquet"))
            path.unlink()
    empty = {"csv.gz": gzip.compress(b""), "csv.zst": pa.compress(b"", "zstd", asbytes=True)}.get(kind, b"")
    (folder / f"part-00000-empty.{kind}").write_bytes(empty)  # first in name order: compressed, it decompresses to nothing
    (folder / f"part-00003.{kind}").write_bytes(empty)
    split_csv(folder, tmp_path / "out", rows_per_shard=1000, id_columns=ID_COLUMNS, block_size=8192)
    assert "questlearn: skipped 2 empty or header-only file(s)" in capsys.readouterr().out
    manifest = load_manifest(tmp_path / "out")
    assert manifest["source"]["rows"] == 6000
    assert manifest["source"]["empty_files_skipped"] == 2
    assert len(manifest["source"]["files"]) == 5


@pytest.mark.parametrize("name,payload,looks_like", [
    ("quests.zip", None, "an empty ZIP archive"),  # a zip of CSV files is read: tests/io/test_zip_sources.py
    ("quests.7z", b"7z\xbc\xaf\x27\x1c\x00\x04" + bytes(64), "a 7-Zip archive"),
    ("quests.pdf", b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n", "a PDF document"),
    ("quests.xlsx.lz4", b"\x04\x22\x4d\x18\x64\x40\xa7" + bytes(32), "LZ4-compressed data"),
], ids=["empty-zip", "7z", "pdf", "lz4"])
def test_archives_and_other_binary_formats_are_named_by_their_first_bytes(plain, tmp_path, name, payload, looks_like):
    import zipfile

    _, log, _ = plain
    source = tmp_path / name
    if payload is None:
        with zipfile.ZipFile(source, "w"):
            pass
    else:
        source.write_bytes(payload)
    with pytest.raises(ValueError) as caught:
        split_csv(source, tmp_path / "out", verbose=False)
    message = str(caught.value)
    assert message.startswith(f"{source} looks like {looks_like}") and "\n" not in message


def test_a_gzip_of_a_gzip_is_named_with_its_fix(plain, tmp_path):
    _, log, _ = plain
    twice = tmp_path / "q.csv.gz"
    twice.write_bytes(gzip.compress(gzip.compress(log.read_bytes())))
    with pytest.raises(ValueError) as caught:
        split_csv(twice, tmp_path / "out", id_columns=ID_COLUMNS, verbose=False)
    message = str(caught.value)
    assert message == (f"{twice} is gzip data whose content is again gzip-compressed (compressed twice): decompress it "
                       f"once (gzip -dc {twice} > a new file) and pass that file instead")
    assert not (tmp_path / "out").exists()
