"""Damaged, swapped or edited shard files stop loading, naming the file."""

import os
import pickle
import shutil

import numpy as np
import pytest
from helpers import run_questlearn

from questlearn.data import _supervision
from questlearn.data._batches import ShardReader
from questlearn.data._supervision import BatchLoadError
from questlearn.data.dataset import QuestSequence
from questlearn.errors import IntegrityError
from questlearn.manifest import integrity
from questlearn.manifest._files import load_manifest


@pytest.fixture()
def split_copy(id_split, tmp_path):
    copy = tmp_path / "split"
    shutil.copytree(id_split, copy)
    return copy


def shard_file(split, shard, part, subset="train"):
    return split / load_manifest(split)["subsets"][subset]["shards"][shard]["files"][part]["name"]


def flip_bytes(path, offset=-64, count=8):
    data = bytearray(path.read_bytes())
    for position in range(offset, offset + count):
        data[position] ^= 0xFF
    path.write_bytes(bytes(data))


def read_shard(split, shard, **options):
    reader = ShardReader(load_manifest(split), "train", **options)
    return reader.read([(shard, np.arange(10))])


@pytest.mark.parametrize("source,part", [("npy", "numbers"), ("npy", "codes"), ("npy", "labels"), ("csv", "csv")])
def test_flipped_bytes_stop_loading_naming_the_file(split_copy, source, part):
    damaged = shard_file(split_copy, 2, part)
    flip_bytes(damaged, offset=-40 if part != "csv" else -200)
    with pytest.raises(ValueError, match=f"{damaged.name} does not match the SHA-256"):
        read_shard(split_copy, 2, source=source)
    read_shard(split_copy, 3, source=source)  # the other shards still load


def test_shards_whose_rows_were_swapped_at_equal_sizes_are_refused(split_copy):
    """Another shard's rows written into a shard, keeping its size and header, can only be told by the SHA-256."""
    first, second = shard_file(split_copy, 0, "numbers"), shard_file(split_copy, 1, "numbers")
    first_bytes, second_bytes = first.read_bytes(), second.read_bytes()
    header = 128  # questlearn's fixed .npy header; the hash covers what follows it
    for target, own, other in ((first, first_bytes, second_bytes), (second, second_bytes, first_bytes)):
        data = other[header:][: len(own) - header]
        target.write_bytes(own[:header] + data + own[header + len(data):])
        assert target.stat().st_size == len(own)
    for shard, name in ((0, first.name), (1, second.name)):
        with pytest.raises(ValueError, match=f"{name} does not match"):
            read_shard(split_copy, shard)


@pytest.mark.parametrize("bad_code", [-1, 2])
def test_label_codes_outside_the_classes_are_refused_even_unverified(split_copy, bad_code):
    labels = shard_file(split_copy, 1, "labels")
    codes = np.load(labels)
    codes[7] = bad_code
    np.save(labels, codes)  # same size: only the SHA-256 or the range check can tell
    with pytest.raises(ValueError, match=f"{labels.name} holds the label code {bad_code}, outside 0..1"):
        read_shard(split_copy, 1, verify="off")


def test_a_damaged_shard_fails_fit_style_iteration_with_its_name(split_copy):
    damaged = shard_file(split_copy, 0, "numbers")
    flip_bytes(damaged)
    dataset = QuestSequence(split_copy, "train", batch_size=64, shuffle=False)
    with pytest.raises(BatchLoadError, match=f"could not load batch 0 .*{damaged.name} does not match the SHA-256"):
        dataset[0]


def test_verify_off_skips_hashing(split_copy, monkeypatch):
    flip_bytes(shard_file(split_copy, 2, "numbers"))
    monkeypatch.setattr(integrity, "sha256_of", lambda path, offset=0: pytest.fail(f"hashed {path} with verify='off'"))
    x, _ = read_shard(split_copy, 2, verify="off")
    assert len(x["numbers"]) == len(x["codes"]) == 10
    with pytest.raises(ValueError, match="verify must be one of"):
        read_shard(split_copy, 2, verify="always")


def test_each_file_is_hashed_once_per_run_and_again_when_it_changes(split_copy, monkeypatch):
    hashed = []
    real = integrity.sha256_of
    monkeypatch.setattr(integrity, "sha256_of", lambda path, offset=0: hashed.append(path.name) or real(path, offset))
    reader = ShardReader(load_manifest(split_copy), "train", cache_shards=1)
    for shard in (0, 1, 0, 1):  # a cache of one shard: every read opens the files again
        reader.read([(shard, np.arange(5))])
    assert sorted(hashed) == sorted(shard_file(split_copy, s, part).name for s in (0, 1)
                                    for part in ("numbers", "codes", "labels"))
    # A worker process (a fresh unpickled reader, an empty in-memory record) trusts the run's markers.
    worker = pickle.loads(pickle.dumps(reader))
    monkeypatch.setattr(integrity, "_verified", set())
    worker.read([(0, np.arange(5))])
    assert len(hashed) == 6
    flip_bytes(shard_file(split_copy, 1, "numbers"))  # a change after verification: size same, mtime not
    with pytest.raises(ValueError, match="does not match the SHA-256"):
        worker.read([(1, np.arange(5))])


def test_npy_hashes_cover_the_data_after_the_header_which_is_checked(split_copy):
    entry = load_manifest(split_copy)["subsets"]["train"]["shards"][0]["files"]
    for part in ("numbers", "codes", "labels", "rows"):
        path = split_copy / entry[part]["name"]
        offset = entry[part]["data_offset"]
        assert offset > 0 and integrity.sha256_of(path, offset) == entry[part]["sha256"]
        assert integrity.sha256_of(path) != entry[part]["sha256"]  # the header is not hashed
    assert entry["csv"]["data_offset"] == 0 and integrity.sha256_of(split_copy / entry["csv"]["name"]) == entry["csv"]["sha256"]
    numbers = split_copy / entry["numbers"]["name"]
    data = numbers.read_bytes()
    header = data[:entry["numbers"]["data_offset"]]
    assert b"'fortran_order': False" in header
    numbers.write_bytes(header.replace(b"'fortran_order': False", b"'fortran_order': True ") + data[len(header):])
    with pytest.raises(ValueError, match=f"{numbers.name} holds a Fortran-ordered array"):
        read_shard(split_copy, 0)


def test_entries_without_data_offset_are_hashed_whole(split_copy, tmp_path):
    path = shard_file(split_copy, 0, "numbers")
    entry = {"name": path.name, "bytes": path.stat().st_size, "sha256": integrity.sha256_of(path)}
    integrity.ShardVerifier("once").check(path, entry)  # whole-file hash, no data_offset: accepted
    with pytest.raises(ValueError, match="does not match the SHA-256"):
        integrity.ShardVerifier("once").check(path, {**entry, "data_offset": 0, "sha256": "0" * 64})


def test_a_shard_refusal_keeps_its_named_error_through_a_worker_process(split_copy, tmp_path, monkeypatch):
    """A worker's failed batch reaches the training process pickled, or as the note the watchdog reads:
    both keep the named error class, which train and evaluate raise for the command to print as one line."""
    damaged = shard_file(split_copy, 0, "numbers")
    flip_bytes(damaged)
    with pytest.raises(BatchLoadError) as caught:
        QuestSequence(split_copy, "train", batch_size=64, shuffle=False)[0]
    assert caught.value.user_error is IntegrityError
    assert pickle.loads(pickle.dumps(caught.value)).user_error is IntegrityError
    monkeypatch.setattr(_supervision, "heartbeat_dir", lambda owner_pid: tmp_path)
    _supervision.note_batch_failed(os.getpid(), str(caught.value), caught.value.user_error)
    noted = _supervision._noted_failure((tmp_path / f"{os.getpid()}.failed").read_text(encoding="utf-8"))
    assert noted.user_error is IntegrityError and str(noted) == str(caught.value)
    with pytest.raises(IntegrityError, match=f"could not load batch 0 .*{damaged.name} does not match the SHA-256"):
        with _supervision.batch_refusals_as_user_errors():
            raise noted


def test_a_failed_batch_that_is_not_a_users_mistake_keeps_its_class():
    with pytest.raises(BatchLoadError, match="a data worker process"):
        with _supervision.batch_refusals_as_user_errors():
            raise BatchLoadError("a data worker process (pid 1) was killed by signal SIGKILL")
    assert _supervision._noted_failure("\nnumpy broke").user_error is None


@pytest.mark.timeout(900)
def test_train_stops_with_one_line_when_a_worker_process_meets_a_damaged_shard(split_copy, tmp_path):
    first = QuestSequence(split_copy, "train", batch_size=64, shuffle=True, seed=0).plan.segments(0)[0][0]
    damaged = shard_file(split_copy, (first + 1) % len(load_manifest(split_copy)["subsets"]["train"]["shards"]), "numbers")
    flip_bytes(damaged)  # not the shard of batch 0, which Keras reads in the training process itself
    result = run_questlearn("train", split_copy, "--model-dir", tmp_path / "model", "--epochs", "1", "--batch-size", "64",
                            "--workers", "2", "--processes", "--verbose", "0", timeout=840)
    errors = [line for line in result.stderr.splitlines() if line.startswith("questlearn train: error:")]
    assert result.returncode == 2, result.stderr[-3000:]
    assert "Traceback" not in result.stderr and len(errors) == 1
    assert f"{damaged.name} does not match the SHA-256" in errors[0] and "run the split again" in errors[0]
