"""Training and reading from a split in an object store through the local shard cache.

A local split is uploaded to the tests' S3 server (moto on 127.0.0.1, the
``s3`` fixture) and read back as ``s3://bucket/split/``.
"""

import json
import threading
import time

import numpy as np
import pytest
from s3server import upload
from splits import ID_SPLIT_OPTIONS, expected_ids, model_ready_split

from questlearn.data.dataset import QuestSequence
from questlearn.errors import IntegrityError, OptionError
from questlearn.io import storage
from questlearn.manifest._files import load_manifest
from questlearn.train._fit import train


@pytest.fixture(scope="module")
def small_shards(id_log, tmp_path_factory):
    """The ``id_split`` rows in shards of 100 rows (25 shards), npy only."""
    out = tmp_path_factory.mktemp("smallshards") / "split"
    model_ready_split(id_log, out, fill="zero", formats=("npy",), **{**ID_SPLIT_OPTIONS, "rows_per_shard": 100})
    return out


def put_split(s3, split_dir, prefix="split"):
    """Every file of a local split as an object under ``prefix``; the split's URL."""
    for path in sorted(p for p in split_dir.rglob("*") if p.is_file()):
        upload(s3.fs, path, f"{s3.bucket}/{prefix}/{path.relative_to(split_dir).as_posix()}")
    return s3.url(prefix + "/")


def split_bytes(split_dir, source="npy"):
    """Bytes of the shard files of ``source`` in a split (train and validate)."""
    manifest = load_manifest(split_dir)
    parts = ("csv",) if source == "csv" else ("numbers", "codes", "labels")
    return sum(shard["files"][part]["bytes"] for subset in manifest["subsets"].values()
               for shard in subset["shards"] for part in parts)


def largest_shard(split_dir):
    manifest = load_manifest(split_dir)
    return max(sum(shard["files"][p]["bytes"] for p in ("numbers", "codes", "labels"))
               for subset in manifest["subsets"].values() for shard in subset["shards"])


def manifest_bytes(split_dir):
    return (split_dir / "manifest.json").stat().st_size


def folder_bytes(folder):
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


class SizeSampler:
    """A thread that samples a folder's size while it runs; :attr:`largest` is the most it saw."""

    def __init__(self, folder):
        self.folder, self.largest, self.samples = folder, 0, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            try:
                self.largest = max(self.largest, folder_bytes(self.folder))
                self.samples += 1
            except FileNotFoundError:
                pass
            self._stop.wait(0.005)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


@pytest.mark.timeout(360)
def test_training_with_a_cache_smaller_than_the_split_sees_every_row_and_stays_under_the_limit(
        s3, small_shards, tmp_path, monkeypatch):
    id_split = small_shards
    url = put_split(s3, id_split)
    limit = largest_shard(id_split) * 8 + manifest_bytes(id_split)  # the open shards, one fetch and a few ahead
    assert limit - manifest_bytes(id_split) < split_bytes(id_split) / 2
    seen = {}
    original = QuestSequence.__getitem__

    def record(self, index):
        batch = original(self, index)
        if self.subset == "train":
            column = self.input_names()["numbers"].index("attempt_id")
            seen.setdefault(self.epoch, {})[index] = batch[0]["numbers"][:, column].astype(np.int64)  # Keras peeks too
        return batch

    monkeypatch.setattr(QuestSequence, "__getitem__", record)
    before = storage.fetched_bytes()
    cache = tmp_path / "cache"
    with SizeSampler(cache) as sampler:
        train(url, tmp_path / "model", epochs=2, batch_size=128, workers=2, model="small", verbose=0,
              cache_dir=cache, cache_limit=limit, saved_model=False, in_memory=False)  # streamed, batch by batch
    assert sampler.samples > 10 and 0 < sampler.largest <= limit
    expected = expected_ids(id_split, "train")
    assert sorted(seen) == [0, 1]
    for epoch in seen.values():
        np.testing.assert_array_equal(np.sort(np.concatenate(list(epoch.values()))), expected)
    assert storage.fetched_bytes() - before > split_bytes(id_split)  # it streamed: more than one split's bytes


@pytest.mark.timeout(360)
def test_a_split_in_a_store_trained_from_memory_is_fetched_once_over_three_epochs(s3, small_shards, tmp_path):
    """Served from memory, each shard is downloaded once, to be read into memory: the epochs after it fetch
    nothing, even through a cache too small to keep the split."""
    url = put_split(s3, small_shards)
    limit = largest_shard(small_shards) * 8 + manifest_bytes(small_shards)
    assert limit - manifest_bytes(small_shards) < split_bytes(small_shards) / 2
    before = storage.fetched_bytes()
    train(url, tmp_path / "model", epochs=3, batch_size=128, model="small", verbose=0, cache_dir=tmp_path / "cache",
          cache_limit=limit, saved_model=False)
    assert json.loads((tmp_path / "model" / "history.json").read_text())["in_memory"]
    fetched = storage.fetched_bytes() - before
    assert fetched == split_bytes(small_shards) + manifest_bytes(small_shards)  # each shard and the manifest once


@pytest.mark.timeout(360)
def test_a_split_smaller_than_the_cache_is_fetched_once_over_three_epochs(s3, id_split, tmp_path):
    url = put_split(s3, id_split)
    before = storage.fetched_bytes()
    dataset = QuestSequence(url, "train", batch_size=256, seed=1, workers=2, cache_dir=tmp_path / "cache",
                            cache_limit="50MB")
    for epoch in range(3):
        dataset.set_epoch(epoch)
        ids = np.concatenate([dataset[i][0]["numbers"][:, 0] for i in range(len(dataset))])
        assert len(ids) == dataset.plan.total_rows
    fetched = storage.fetched_bytes() - before
    manifest = (id_split / "manifest.json").stat().st_size
    train_bytes = sum(shard["files"][p]["bytes"] for shard in load_manifest(id_split)["subsets"]["train"]["shards"]
                      for p in ("numbers", "codes", "labels"))
    assert fetched == train_bytes + manifest


def test_a_shard_replaced_in_the_store_after_the_split_is_refused_by_its_sha256(s3, id_split, tmp_path):
    url = put_split(s3, id_split)
    manifest = load_manifest(id_split)
    shard = manifest["subsets"]["train"]["shards"][0]["files"]["numbers"]
    replaced = bytearray((id_split / shard["name"]).read_bytes())
    replaced[-3] ^= 0x40  # same size, one value changed: only the hash tells
    (tmp_path / "replaced.npy").write_bytes(replaced)
    upload(s3.fs, tmp_path / "replaced.npy", f"{s3.bucket}/split/{shard['name']}")
    dataset = QuestSequence(url, "train", batch_size=None, shuffle=False, cache_dir=tmp_path / "cache")
    with pytest.raises(IntegrityError) as caught:
        dataset.reader.read([(0, np.arange(3))])
    message = str(caught.value)
    assert "\n" not in message and f"{url}{shard['name']}" in message and "SHA-256" in message
    assert not (tmp_path / "cache" / shard["name"]).exists()  # nothing unverified is left to read


@pytest.mark.parametrize("source,shuffle", [("npy", True), ("npy", False), ("csv", True)])
def test_a_split_in_the_store_gives_the_same_batches_as_the_local_split(s3, id_split, tmp_path, source, shuffle):
    url = put_split(s3, id_split)
    local = QuestSequence(id_split, "train", batch_size=200, shuffle=shuffle, seed=4, source=source)
    remote = QuestSequence(url, "train", batch_size=200, shuffle=shuffle, seed=4, source=source,
                           cache_dir=tmp_path / "cache",
                           cache_limit=largest_shard(id_split) * 4 + manifest_bytes(id_split) if source == "npy" else "1MB")
    for epoch in (0, 1):
        local.set_epoch(epoch)
        remote.set_epoch(epoch)
        assert len(local) == len(remote)
        for index in range(len(local)):
            (x_local, y_local), (x_remote, y_remote) = local[index], remote[index]
            assert sorted(x_local) == sorted(x_remote)
            for block in x_local:
                np.testing.assert_array_equal(x_local[block], x_remote[block])
            np.testing.assert_array_equal(y_local, y_remote)


def test_a_limit_too_small_for_the_shards_held_at_once_is_refused_in_one_line(s3, id_split, tmp_path):
    url = put_split(s3, id_split)
    with pytest.raises(OptionError) as caught:
        QuestSequence(url, "train", cache_dir=tmp_path / "cache", cache_limit=largest_shard(id_split) * 2)
    assert "\n" not in str(caught.value) and "--cache-limit" in str(caught.value)
    enough = largest_shard(id_split) * 5 + manifest_bytes(id_split)  # train and validate, 2 shards each, one fetch
    for _ in range(3):  # a dataset made again replaces the one before: the limit still holds both readers
        QuestSequence(url, "train", cache_dir=tmp_path / "cache", cache_limit=enough)
    QuestSequence(url, "validate", cache_dir=tmp_path / "cache", cache_limit=enough)
    with pytest.raises(OptionError, match="--cache-limit takes a positive size"):
        QuestSequence(url, "train", cache_dir=tmp_path / "other", cache_limit="lots")


@pytest.mark.timeout(540)
def test_worker_processes_read_every_row_once_through_a_small_cache(s3, small_shards, tmp_path):
    from keras.src.trainers.data_adapters.py_dataset_adapter import PyDatasetAdapter

    url = put_split(s3, small_shards)
    cache = tmp_path / "cache"
    limit = largest_shard(small_shards) * 8 + manifest_bytes(small_shards)  # 2 workers and this process, 2 shards each
    dataset = QuestSequence(url, "train", batch_size=128, seed=2, workers=2, use_multiprocessing=True,
                            max_queue_size=4, cache_dir=cache, cache_limit=limit)
    column = dataset.input_names()["numbers"].index("attempt_id")
    with SizeSampler(cache) as sampler:
        adapter = PyDatasetAdapter(dataset, shuffle=False)
        adapter.on_epoch_begin()
        ids = [x["numbers"][:, column].astype(np.int64) for x, _ in adapter.get_numpy_iterator()]
        adapter.on_epoch_end()
    np.testing.assert_array_equal(np.sort(np.concatenate(ids)), expected_ids(small_shards, "train"))
    assert 0 < sampler.largest <= limit


def test_the_train_command_takes_a_split_url_a_cache_folder_and_a_limit(s3, id_split, tmp_path, capsys):
    from questlearn.cli import main

    url = put_split(s3, id_split)
    code = main(["train", url, "--model-dir", str(tmp_path / "model"), "--epochs", "1", "--batch-size", "256",
                 "--model", "small", "--verbose", "0", "--cache-dir", str(tmp_path / "cache"), "--cache-limit", "5MB"])
    out = capsys.readouterr().out
    assert code in (0, None) and (tmp_path / "model" / "model.keras").is_file()
    assert f"shards of {url.rstrip('/')}/ are fetched into the cache {tmp_path / 'cache'}, at most 5.0 MB" in out
    assert sorted(p.name for p in (tmp_path / "cache").rglob("*.numbers.npy"))  # read from the cache


def test_evaluate_scores_a_split_in_the_store_as_the_same_split_on_disk(s3, tmp_path):
    from trained import train_small_model

    from questlearn.serve.evaluate import evaluate

    _, split_dir, _ = train_small_model(tmp_path, rows=1200, epochs=1)
    url = put_split(s3, split_dir)
    local = evaluate(tmp_path / "model", split_dir)
    remote = evaluate(tmp_path / "model", url)
    assert remote.pop("source") == f"{url} (validate subset)"
    local.pop("source")
    assert remote == local


@pytest.mark.timeout(120)
def test_a_worker_forked_while_a_lock_file_opens_holds_no_copy_of_it(tmp_path, monkeypatch):
    """A fork that lands between opening a shard's lock file and recording it would give the child a copy
    the child does not know to close: that copy keeps the parent's flock for as long as the child lives,
    and a worker then waits forever for the shard. The fork waits until the file is recorded."""
    import os

    from questlearn.data import _lock_files

    opened, forking = threading.Event(), threading.Event()
    real_open = os.open

    class PausingOs:
        """``os`` for the lock files module, whose ``open`` pauses after opening until a fork has been asked for."""

        def __getattr__(self, name):
            return getattr(os, name)

        @staticmethod
        def open(*args, **kwargs):
            descriptor = real_open(*args, **kwargs)
            opened.set()
            forking.wait(10)
            time.sleep(0.5)  # the fork, asked for, runs now unless something holds it back
            return descriptor

    monkeypatch.setattr(_lock_files, "os", PausingOs())
    lock = _lock_files.FileLock(tmp_path / "shard.lock")
    holder = threading.Thread(target=lock.__enter__)
    holder.start()
    assert opened.wait(30)
    forking.set()
    pid = os.fork()
    if pid == 0:  # the child: does it still have the lock file open?
        held = any(os.path.realpath(f"/proc/self/fd/{fd}") == str(tmp_path / "shard.lock")
                   for fd in os.listdir("/proc/self/fd"))
        os._exit(1 if held else 0)
    holder.join(30)
    lock.__exit__(None, None, None)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, "the forked child holds a copy of the lock file"


@pytest.mark.timeout(300)
def test_a_prefetch_finding_no_room_backs_off_and_a_release_wakes_it(s3, small_shards, tmp_path, monkeypatch):
    """A prefetch waiting for room looks again after longer and longer waits (not every few milliseconds for as
    long as the cache stays full: that stole a core from training), and fetches as soon as a shard is released."""
    url = put_split(s3, small_shards)
    dataset = QuestSequence(url, "train", batch_size=128, workers=1, cache_dir=tmp_path / "cache",
                            cache_limit=largest_shard(small_shards) * 6 + manifest_bytes(small_shards))
    cache, reader = dataset.reader.files, dataset.reader
    shards = [reader._entries(shard) for shard in range(len(reader.shards))]
    cache.schedule("train", [])  # no prefetch of the dataset's own: this test fills the cache itself
    held = []
    for entries in shards:  # readers hold shards until no other fits (a held shard is never evicted)
        if cache.limit - cache.used_bytes() < sum(entry["bytes"] for entry in entries):
            break
        cache.acquire(entries)
        held.append(entries)
    waiting = [entries for entries in shards[len(held):] if not cache._present(entries)][:2]
    assert held and waiting
    attempts = []
    make_room = cache._make_room
    monkeypatch.setattr(cache, "_make_room", lambda *args, **kw: attempts.append(time.monotonic()) or make_room(*args, **kw))
    cache.schedule("train", waiting)
    time.sleep(4)
    # 0.02 s, twice as long each time, up to 0.5 s: about a dozen looks in 4 s (one every 0.02 s was 200)
    assert 3 <= len(attempts) <= 20, len(attempts)
    assert not cache._present(waiting[0])
    cache.release(held.pop())  # a reader is done with a shard: the prefetch evicts it and fetches
    deadline = time.monotonic() + 120  # a hang guard, generous for a loaded machine
    while not cache._present(waiting[0]) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert cache._present(waiting[0])
    for entries in held:
        cache.release(entries)
    cache.schedule("train", [])
