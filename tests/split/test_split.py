"""The splitter: no row lost or duplicated, strict errors, atomic and resumable."""

import csv
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import farmhash
import numpy as np
import pandas as pd
import pytest
from helpers import ID_COLUMNS, check, pause_when_exists, resume, run_env, run_questlearn

from questlearn.io.csvscan import CsvFormatError
from questlearn.manifest._files import load_manifest
from questlearn.split import split_csv
from questlearn.split._sequential import JOURNAL_NAME, MARKER_NAME
from questlearn.synth import CORRUPTIONS, corrupt, write_quest_log


def csv_rows(path):
    """Rows of a CSV file as lists of strings (header first), parsed by Python's csv module."""
    with open(path, newline="", encoding="utf-8-sig") as handle:
        return list(csv.reader(handle, strict=True))


def all_shard_files(manifest, part):
    root = Path(manifest["root"])
    for subset in ("train", "validate"):
        for shard in manifest["subsets"][subset]["shards"]:
            yield subset, shard, root / shard["files"][part]["name"]


@pytest.fixture(scope="module")
def nasty_split(quest_log, tmp_path_factory):
    out = tmp_path_factory.mktemp("nasty") / "split"
    # Tiny blocks and shards: boundaries fall next to quoted newlines and CRLFs.
    split_csv(quest_log, out, rows_per_shard=97, val_fraction=0.25, seed=1, id_columns=ID_COLUMNS, block_size=1024,
              formats=("csv", "npy"))
    return load_manifest(out)


def test_every_source_row_lands_in_exactly_one_csv_shard(quest_log, nasty_split):
    header, *source = csv_rows(quest_log)
    seen = []
    for _, shard, path in all_shard_files(nasty_split, "csv"):
        shard_header, *rows = csv_rows(path)
        assert shard_header == header  # header in every shard, BOM stripped
        assert 0 < len(rows) == shard["rows"] <= 97  # no empty shard, none past rows_per_shard
        labels = [row[-1] for row in rows]
        assert shard["label_counts"] == {value: labels.count(value) for value in sorted(set(labels))}
        seen += rows
    assert len(seen) == len(source) == 3000
    by_id = {row[0]: row for row in seen}
    assert len(by_id) == len(seen)  # no duplicates
    assert all(by_id[row[0]] == row for row in source)  # same content, quoted newlines and all
    assert any("\r\n" in row[-2] for row in seen) and any("\n" in row[-2] for row in seen)


def expected_codes(values, vocabulary, buckets):
    """Category codes as the encoding documents them: 0 missing, ``1 + FarmHash64 % H`` outside the
    vocabulary, ``H + 1 + position`` for the vocabulary's values."""
    position = {value: index for index, value in enumerate(vocabulary)}
    return [0 if pd.isna(v) or v == "" else
            (1 + buckets + position[v] if v in position else 1 + farmhash.fingerprint64(v) % buckets) for v in values]


def test_every_source_row_lands_in_exactly_one_binary_shard(quest_log, nasty_split):
    table = pd.read_csv(quest_log, keep_default_na=False, na_values=[""])
    encoding = nasty_split["schema"]["encoding"]
    kinds = {c["name"]: c["kind"] for c in nasty_split["schema"]["columns"]}
    categorical = [f for f in nasty_split["schema"]["features"] if kinds[f] == "categorical"]
    assert encoding["numeric"] == [f for f in nasty_split["schema"]["features"] if f not in categorical]
    indicators = encoding["indicators"]  # numeric columns missing in the sample: a name.missing code each
    assert "stamina" in indicators and set(indicators) <= set(encoding["numeric"])
    assert encoding["code_columns"] == categorical + [f"{n}.missing" for n in indicators] and "quest_type" in categorical
    seen_rows = []
    for _, shard, path in all_shard_files(nasty_split, "rows"):
        rows = np.load(path)
        x = np.load(str(path).replace(".rows.npy", ".numbers.npy"))
        codes = np.load(str(path).replace(".rows.npy", ".codes.npy"))
        labels = np.load(str(path).replace(".rows.npy", ".labels.npy"))
        assert x.dtype == np.float32 and x.shape == (shard["rows"], len(encoding["numeric"]))
        assert codes.dtype == np.dtype(encoding["code_dtype"]) and codes.shape == (shard["rows"], len(encoding["code_columns"]))
        assert len(rows) == len(labels) == shard["rows"]
        assert np.all(np.diff(rows) > 0)  # rows keep their source order within a shard
        expected = table.iloc[rows]
        for position, (column, fill) in enumerate(zip(encoding["numeric"], encoding["fill_values"])):
            want = expected[column].to_numpy(np.float64)
            want = np.where(np.isnan(want), fill, want).astype(np.float32)  # a missing number is the fill value
            np.testing.assert_array_equal(x[:, position], want)
        for position, column in enumerate(categorical):
            vocabulary, buckets = encoding["vocabularies"][column], encoding["hash_buckets"][column]
            assert codes[:, position].tolist() == expected_codes(expected[column].tolist(), vocabulary, buckets)
        for position, column in enumerate(indicators, len(categorical)):
            assert codes[:, position].tolist() == expected[column].isna().astype(int).tolist()
        classes = nasty_split["schema"]["classes"]
        label_codes = nasty_split["schema"]["label_codes"]
        assert [classes[label_codes[c]] for c in labels] == expected["cleared"].astype(str).tolist()
        seen_rows += rows.tolist()
    assert sorted(seen_rows) == list(range(3000))


def test_manifest_records_schema_stats_and_checksums(quest_log, nasty_split):
    import hashlib

    manifest = nasty_split
    assert manifest["source"]["sha256"] == hashlib.sha256(quest_log.read_bytes()).hexdigest()
    assert manifest["source"]["rows"] == 3000
    assert manifest["schema"]["classes"] == ["0", "1"]
    kinds = {c["name"]: c["kind"] for c in manifest["schema"]["columns"]}
    assert kinds["attempt_id"] == "id" and kinds["quest_type"] == "categorical" and kinds["cleared"] == "label"
    assert kinds["stamina"] == "numeric" and kinds["note"] == "categorical"
    table = pd.read_csv(quest_log, keep_default_na=False, na_values=[""])
    for column in ("stamina", "power", "telemetry_00"):
        stats = manifest["stats"][column]
        assert stats["missing"] == table[column].isna().sum()
        assert stats["count"] == table[column].notna().sum()
        assert stats["mean"] == pytest.approx(table[column].mean(), rel=1e-9)
        assert stats["std"] == pytest.approx(table[column].std(ddof=0), rel=1e-9)
        assert (stats["min"], stats["max"]) == (table[column].min(), table[column].max())
    assert manifest["stats"]["stamina"]["missing"] > 0
    counts = manifest["stats"]["quest_type"]["category_counts"]
    assert counts == table["quest_type"].value_counts().to_dict()
    for _, shard, path in all_shard_files(manifest, "csv"):
        assert hashlib.sha256(path.read_bytes()).hexdigest() == shard["files"]["csv"]["sha256"]
    names = [Path(shard["files"]["csv"]["name"]) for _, shard, _ in all_shard_files(manifest, "csv")]
    assert names[0] == Path("train/split_data_00000.csv")
    assert all(n.parent.name in ("train", "validate") and n.name.startswith("split_data_") for n in names)


def test_assignment_is_deterministic_per_seed(plain_log, tmp_path):
    first = split_csv(plain_log, tmp_path / "a", rows_per_shard=500, seed=4)
    again = split_csv(plain_log, tmp_path / "b", rows_per_shard=500, seed=4, block_size=2048)
    with_csv = split_csv(plain_log, tmp_path / "d", rows_per_shard=500, seed=4, block_size=3000, formats=("csv", "npy"))
    other = split_csv(plain_log, tmp_path / "c", rows_per_shard=500, seed=5)
    shas = lambda m: [[s["files"][part]["sha256"] for part in ("numbers", "codes", "labels", "rows")]  # noqa: E731
                      for subset in ("train", "validate") for s in m["subsets"][subset]["shards"]]
    assert shas(first) == shas(again) == shas(with_csv)  # independent of the read block size and the CSV copies
    assert shas(first) != shas(other)
    assert abs(first["subsets"]["validate"]["rows"] / 2000 - 0.2) < 0.05


@pytest.mark.parametrize("kind", CORRUPTIONS)
def test_corrupted_rows_are_reported_with_line_and_byte(plain_log, tmp_path, kind):
    broken = tmp_path / "broken.csv"
    line, offset = corrupt(plain_log, broken, kind, row=1234)
    with pytest.raises(CsvFormatError) as caught:
        split_csv(broken, tmp_path / "out", block_size=4096)
    assert (caught.value.line, caught.value.byte_offset) == (line, offset), str(caught.value)
    assert str(broken) in str(caught.value)
    assert not (tmp_path / "out" / "manifest.json").exists()


@pytest.mark.parametrize("payload,words", [
    (b"", "empty"),
    (b"a,b,cleared\n", "no data rows"),
    (b"a,b,c\n1,2,3\n", "label column 'cleared' is missing"),
    (b"a,a,cleared\n1,2,0\n", "column 'a' twice"),
    (b"a,,cleared\n1,2,0\n", "empty column name"),
])
def test_bad_files_are_refused(tmp_path, payload, words):
    source = tmp_path / "bad.csv"
    source.write_bytes(payload)
    with pytest.raises(CsvFormatError, match=words) as caught:
        split_csv(source, tmp_path / "out")
    assert "line 1" in str(caught.value) or "line 2" in str(caught.value)


def test_finished_split_is_a_no_op_and_other_parameters_are_refused(plain_log, tmp_path):
    out = tmp_path / "out"
    manifest = split_csv(plain_log, out, rows_per_shard=700)
    before = (out / "manifest.json").read_bytes()
    assert split_csv(plain_log, out, rows_per_shard=700) == manifest
    assert (out / "manifest.json").read_bytes() == before
    with pytest.raises(ValueError, match="other parameters"):
        split_csv(plain_log, out, rows_per_shard=800)
    stranger = tmp_path / "stranger"
    stranger.mkdir()
    (stranger / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="not empty"):
        split_csv(plain_log, stranger)


def test_manifest_paths_outside_the_split_are_rejected(plain_log, tmp_path):
    out = tmp_path / "out"
    split_csv(plain_log, out, rows_per_shard=700)
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["subsets"]["train"]["shards"][0]["files"]["numbers"]["name"] = "../../etc/passwd"
    (out / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match="not a path inside"):
        load_manifest(out)


def test_truncated_shard_is_detected(plain_log, tmp_path):
    out = tmp_path / "out"
    manifest = split_csv(plain_log, out, rows_per_shard=700)
    shard = out / manifest["subsets"]["train"]["shards"][0]["files"]["codes"]["name"]
    shard.write_bytes(shard.read_bytes()[:100])
    with pytest.raises(ValueError, match="changed or truncated"):
        load_manifest(out)


SPLIT_COMMAND = [sys.executable, "-m", "questlearn.cli", "split", "--rows-per-shard", "3000",
                 "--block-size", "65536", "--seed", "2", "--id-column", "attempt_id", "--no-progress"]


@pytest.mark.timeout(900)
def test_killed_split_resumes_to_byte_identical_output(tmp_path):
    source = write_quest_log(tmp_path / "big.csv", rows=60_000, seed=9, nasty=True)
    clean = tmp_path / "clean"
    check(run_questlearn(*SPLIT_COMMAND[3:], source, clean, module="questlearn.cli"))
    killed = tmp_path / "killed"
    kills = 0
    for delay in (0.3, 0.5, 0.8, 1.1):
        process = subprocess.Popen([*SPLIT_COMMAND, str(source), str(killed)], env=run_env())
        journal = killed / JOURNAL_NAME
        deadline = time.monotonic() + 180
        while not journal.exists() and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(delay * 0.2)
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
            kills += 1
        process.wait()
        if (killed / "manifest.json").exists():
            break
    assert kills >= 1, "the split finished before it could be killed; make the input bigger"
    assert not (killed / "manifest.json").exists() or kills >= 1
    check(run_questlearn(*SPLIT_COMMAND[3:], source, killed, module="questlearn.cli"))

    def tree(root):
        return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}

    clean_files, resumed_files = tree(clean), tree(killed)
    assert sorted(clean_files) == sorted(resumed_files)
    for name in clean_files:
        assert clean_files[name] == resumed_files[name], name
    assert not any(name.endswith((".partial", ".tmp")) or "journal" in name for name in resumed_files)


def test_split_killed_before_its_first_checkpoint_starts_over(plain_log, tmp_path):
    clean = split_csv(plain_log, tmp_path / "clean", rows_per_shard=700)
    out = tmp_path / "out"
    for subset in ("train", "validate"):  # what a split killed before its first journal leaves
        (out / subset).mkdir(parents=True)
        (out / subset / ".shard_00000.numbers.npy.partial").write_bytes(b"\x93NUMPY half a header")
    (out / "train" / ".shard_00001.labels.npy.partial").write_bytes(b"")
    (out / f".{JOURNAL_NAME}.tmp").write_bytes(b"{\"half")
    (out / MARKER_NAME).write_text("written by questlearn split")  # a split writes its marker before anything else
    again = split_csv(plain_log, out, rows_per_shard=700)
    assert again["subsets"] == clean["subsets"]
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "train").mkdir()
    (tmp_path / "mine" / "train" / "holiday.jpg").write_bytes(b"not ours")
    with pytest.raises(ValueError, match="not empty"):
        split_csv(plain_log, tmp_path / "mine")
    assert (tmp_path / "mine" / "train" / "holiday.jpg").exists()


def test_files_questlearn_did_not_write_are_never_removed(plain_log, tmp_path):
    """Shard-like names alone prove nothing: without questlearn's marker the folder is refused, untouched."""
    out = tmp_path / "someone_elses"
    for subset in ("train", "validate"):
        (out / subset).mkdir(parents=True)
        (out / subset / "split_data_00000.csv").write_bytes(b"precious,data\n1,2\n")
        (out / subset / ".split_data_00001.csv.partial").write_bytes(b"also theirs")
    (out / ".split-shards.jsonl").write_bytes(b"")
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    with pytest.raises(ValueError, match="not empty"):
        split_csv(plain_log, out)
    after = {p: p.read_bytes() for p in out.rglob("*") if p.is_file() and p.name != ".split.lock"}
    assert after == before


def test_a_split_that_fails_before_any_shard_leaves_nothing_behind(plain_log, tmp_path):
    """Re-running with the fix the message suggests works as printed (no 'not empty' refusal)."""
    broken = tmp_path / "broken.csv"
    corrupt(plain_log, broken, "ragged_row", row=1900)
    out = tmp_path / "new" / "out"
    with pytest.raises(CsvFormatError):
        split_csv(broken, out, rows_per_shard=5000)
    assert not out.exists()
    existing = tmp_path / "existing"
    existing.mkdir()
    with pytest.raises(CsvFormatError):
        split_csv(broken, existing, rows_per_shard=5000)
    assert sorted(p.name for p in existing.iterdir() if p.name != ".split.lock") == []
    split_csv(plain_log, existing, rows_per_shard=5000)
    assert (existing / "manifest.json").exists()


def test_resume_is_refused_when_the_source_changed(tmp_path):
    source = write_quest_log(tmp_path / "big.csv", rows=40_000, seed=9)
    out = tmp_path / "out"
    process = subprocess.Popen([*SPLIT_COMMAND, str(source), str(out)], env=run_env())
    deadline = time.monotonic() + 180
    while not (out / JOURNAL_NAME).exists() and time.monotonic() < deadline:
        time.sleep(0.005)
    process.send_signal(signal.SIGKILL)
    process.wait()
    if (out / "manifest.json").exists():
        pytest.skip("split finished before the kill")
    with open(source, "r+b") as handle:
        handle.seek(200)
        handle.write(b"9")
    result = subprocess.run([*SPLIT_COMMAND, str(source), str(out)], env=run_env(), capture_output=True, text=True)
    assert result.returncode == 2
    assert "unfinished split of another source" in result.stderr or "changed since" in result.stderr


def test_cli_reports_errors_without_a_traceback(tmp_path):
    source = tmp_path / "bad.csv"
    source.write_bytes(b"a,b,cleared\n1,2\n")
    result = run_questlearn("split", source, tmp_path / "o", module="questlearn.cli")
    assert result.returncode == 2
    assert "line 2, byte offset 12: ragged row" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.timeout(900)
def test_a_full_disk_says_so_in_one_line_and_the_split_resumes_after_space_is_freed(tmp_path):
    """Too little disk for the estimate: refused before the pass; a disk that fills up during the
    pass (another program's file): one line, and the same command resumes once space is freed."""
    import os
    import shutil as shell

    if os.geteuid() != 0 or not shell.which("mount"):
        pytest.skip("needs root to mount a small tmpfs")
    source = write_quest_log(tmp_path / "log.csv", rows=150_000, seed=2)  # about 30 MB of source, 20 MB of shards
    disk = tmp_path / "tiny"
    disk.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(disk)], capture_output=True).returncode:
        pytest.skip("mounting a tmpfs is not permitted here")
    try:
        command = [*SPLIT_COMMAND, str(source), str(disk / "out")]
        early = subprocess.run(command, capture_output=True, text=True, env=run_env(), timeout=720)
        assert early.returncode == 2 and "not enough disk for this split" in early.stderr, early.stderr
        assert "Traceback" not in early.stderr and not (disk / "out").exists()

        subprocess.run(["mount", "-o", "remount,size=40m", str(disk)], check=True)
        process = subprocess.Popen(command, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=run_env())
        marker = disk / "out" / MARKER_NAME  # written once the disk check passed
        assert pause_when_exists(process, marker), "the split ended before its pass"  # paused, however busy the machine
        ballast = disk / "ballast"
        with open(ballast, "wb") as handle:  # another program fills the disk during the pass
            while shell.disk_usage(disk).free > (2 << 20):
                handle.write(b"\0" * (1 << 20))
        resume(process)
        stderr = process.communicate(timeout=720)[1]
        assert process.returncode == 2, stderr
        lines = [line for line in stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and "is full" in lines[0] and "run the same command again" in lines[0], stderr
        assert not (disk / "out" / "manifest.json").exists()
        ballast.unlink()
        subprocess.run(command, check=True, env=run_env(), capture_output=True, timeout=720)
        clean = tmp_path / "clean"
        subprocess.run([*SPLIT_COMMAND, str(source), str(clean)], check=True, env=run_env(), capture_output=True, timeout=720)
        for path in sorted(clean.rglob("*")):
            if path.is_file() and path.name != ".split.lock":
                assert (disk / "out" / path.relative_to(clean)).read_bytes() == path.read_bytes(), path.name
        assert sorted(p.name for p in (disk / "out").rglob("*")) == sorted(p.name for p in clean.rglob("*"))
    finally:
        subprocess.run(["umount", "-l", str(disk)], capture_output=True)


def test_fill_zero_writes_missing_numbers_as_zero(plain_log, tmp_path):
    mean = load_manifest_after(split_csv(plain_log, tmp_path / "mean", rows_per_shard=700, verbose=False), tmp_path / "mean")
    zero = load_manifest_after(split_csv(plain_log, tmp_path / "zero", rows_per_shard=700, fill="zero", verbose=False),
                               tmp_path / "zero")
    assert zero["schema"]["encoding"]["fill"] == "zero" and set(zero["schema"]["encoding"]["fill_values"]) == {0.0}
    stamina = mean["schema"]["encoding"]["numeric"].index("stamina")
    assert mean["schema"]["encoding"]["fill_values"][stamina] == pytest.approx(50, abs=5)
    table = pd.read_csv(plain_log)
    for manifest, fill in ((mean, mean["schema"]["encoding"]["fill_values"][stamina]), (zero, 0.0)):
        for _, shard, path in all_shard_files(manifest, "rows"):
            rows = np.load(path)
            x = np.load(str(path).replace(".rows.npy", ".numbers.npy"))
            missing = table["stamina"].isna().to_numpy()[rows]
            column = manifest["schema"]["encoding"]["numeric"].index("stamina")
            assert np.all(x[missing, column] == np.float32(fill))
    with pytest.raises(ValueError, match="fill must be"):
        split_csv(plain_log, tmp_path / "bad", fill="median")


def load_manifest_after(_, out):
    return load_manifest(out)
