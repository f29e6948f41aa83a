"""The shard files of a split, as local paths: read in place, or fetched from a store into a bounded cache.

:func:`open_split` gives a split's manifest and its *files*: an object the
loader (:class:`~questlearn.data._batches.ShardReader`) asks for "the local
paths of this shard's files" and tells when it is done with them.

- :class:`LocalFiles`: a split on this machine's disk (or a shared one): its
  files, read in place and checked against their SHA-256 once.
- :class:`ShardCache`: a split in an object store (``s3://bucket/prefix/``),
  as MosaicML Streaming reads one. The manifest is fetched first; whole
  shard files are then fetched into a local folder by background threads,
  in the order the epoch reads them (:meth:`ShardCache.schedule`: the
  dataset's seeded plan), each verified against the manifest's size and
  SHA-256 as it arrives, and evicted least recently used when the folder
  would pass its limit.

The cache folder is shared by every thread and process of a run, and
coordinated through it alone, so data worker processes need nothing else:

- a lock file per shard: a reader holds a shared lock while the shard is
  open; whoever fetches or evicts the shard holds it exclusively, so one
  process fetches while the others wait, and no shard in use is evicted;
- a *pin* per shard fetched (or found) ahead of its use: a prefetch never
  evicts a pinned shard (it is about to be used); the first reader unpins
  it. A reader that needs a shard now may evict pinned ones, the latest
  pinned first, so the run never waits on its own prefetch;
- a lock on the whole folder while room is made: the bytes of the shard
  files, of the fetches under way (reserved before they start) and of the
  manifest never pass the limit.

The process that made the dataset prefetches; a worker process fetches a
shard only when it needs one that is not there yet. In a data-parallel run
each process schedules only the shards its rows lie in.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
import threading
import weakref
from collections import deque
from pathlib import Path

from ..errors import ManifestError, OptionError
from ..io.storage import locate
from ..manifest._files import MANIFEST_NAME, MAX_MANIFEST_BYTES, load_manifest, resolve_inside, write_json_atomically
from ..manifest.integrity import ShardVerifier, check_npy_header
from ._lock_files import FileLock, close_lock_file, open_lock_file

#: Without --cache-limit: this fraction of the free disk where the cache lives.
DEFAULT_FRACTION_OF_FREE_DISK = 0.5
# A fetch waiting for room looks again after WAIT_SECONDS, then twice as long each time, up to
# PREFETCH_WAIT_SECONDS for a prefetch and READER_WAIT_SECONDS for a reader that needs the shard now;
# a shard released in this process wakes it at once (one released by a worker process is seen at the next look).
WAIT_SECONDS = 0.02
PREFETCH_WAIT_SECONDS = 0.5
READER_WAIT_SECONDS = 0.1
UNITS = {"": 1, "b": 1, "k": 10**3, "kb": 10**3, "m": 10**6, "mb": 10**6, "g": 10**9, "gb": 10**9, "t": 10**12,
         "tb": 10**12, "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}


def parse_size(text) -> int:
    """Bytes of ``20GB``, ``500MB``, ``1.5GiB`` or a plain number.

    Raises
    ------
    OptionError
        Anything else, or not positive.
    """
    found = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]*)?)\s*([A-Za-z]*)\s*", str(text))
    if not found or found.group(2).lower() not in UNITS or float(found.group(1)) <= 0:
        raise OptionError(f"--cache-limit takes a positive size in bytes, e.g. 20GB, 500MB or 1.5GiB, got {text!r}")
    return int(float(found.group(1)) * UNITS[found.group(2).lower()])


def shown_size(size: int) -> str:
    for unit, scale in (("GB", 10**9), ("MB", 10**6), ("kB", 10**3)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{size} bytes"


def default_cache_dir(url: str) -> Path:
    """``$XDG_CACHE_HOME/questlearn/shards/<hash of the split URL>`` (``~/.cache`` without XDG_CACHE_HOME)."""
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "questlearn" / "shards" / hashlib.sha256(url.rstrip("/").encode()).hexdigest()[:16]


def open_split(split_dir, subsets: tuple, *, verify: str = "once", cache_dir=None, cache_limit=None,
               storage_options: dict | None = None, verbose: bool = True):
    """``(manifest, files)`` of a split: a local folder, or a store's prefix read through a :class:`ShardCache`.

    Parameters
    ----------
    split_dir : str or Path
        The split's folder, or its URL (``s3://bucket/prefix/``).
    subsets : tuple of str
        The subsets whose shard files a local split checks now (see :func:`load_manifest`).
    verify : str
        ``"once"`` or ``"off"``: hashing of local shard files. Fetched shards are always verified.
    cache_dir, cache_limit, storage_options
        For a split in a store: the cache folder (default :func:`default_cache_dir`), its limit in
        bytes or as ``"20GB"`` (default half the free disk there, printed), the store's options.
    """
    store, place = locate(split_dir, storage_options)
    if not store.remote:
        manifest = load_manifest(place, subsets=subsets)
        return manifest, LocalFiles(Path(manifest["root"]), verify)
    cache = ShardCache.open(place, cache_dir, cache_limit, storage_options, verbose)
    return cache.manifest, cache


def holds_split(item, storage_options: dict | None = None) -> bool:
    """Whether a folder or a store's prefix holds a split (its ``manifest.json``)."""
    store, place = locate(item, storage_options)
    return store.kind(store.join(place, MANIFEST_NAME)) == "file"


class LocalFiles:
    """A split's files where they are, each checked against its SHA-256 the first time it is read."""

    def __init__(self, root: Path, verify: str = "once"):
        self.root, self.verifier = root, ShardVerifier(verify)

    def acquire(self, entries: list) -> list[Path]:
        """The local paths of one shard's files (``entries``: their manifest records), verified."""
        paths = [resolve_inside(self.root, entry["name"]) for entry in entries]
        for path, entry in zip(paths, entries):
            self.verifier.check(path, entry)
        return paths

    def release(self, entries: list) -> None:
        """The reader is done with this shard's files (nothing to do here)."""

    def need_room(self, reader: str, shards: int, units: list) -> None:
        """A reader may hold this many shards open at once (no limit applies here)."""

    def schedule(self, stream: str, shards: list) -> None:
        """The shards a reader will read next, in order (nothing to fetch here)."""


_CACHES: dict = {}
_CACHES_LOCK = threading.Lock()
_INSTANCES: "weakref.WeakSet" = weakref.WeakSet()


def _after_fork_in_child() -> None:
    """A worker forked from a process using a cache starts with its thread locks free and no streams
    (its copies of the lock files are closed by :mod:`questlearn.data._lock_files`)."""
    global _CACHES_LOCK
    _CACHES_LOCK = threading.Lock()
    for cache in list(_INSTANCES):
        cache._start_thread_state()


os.register_at_fork(after_in_child=_after_fork_in_child)


class ShardCache:
    """A split in a store, read through a bounded folder of whole shard files (see the module docstring).

    Made by :meth:`open` (one per folder and process, shared by the train and validate datasets); it
    pickles as its folder, URL and limit, for worker processes.
    """

    def __init__(self, url: str, folder: Path, limit: int, storage_options: dict | None):
        self.url, self.folder, self.limit = url.rstrip("/"), Path(folder), int(limit)
        self.storage_options = storage_options
        self.manifest = None
        self.held_shards: dict = {}  # reader (the subset it reads) -> shards it may hold open at once
        self.units: dict = {}  # shard key -> its files' records, as the readers read them (npy or CSV)
        self._owner_pid = os.getpid()
        self._start_thread_state()
        _INSTANCES.add(self)

    def _start_thread_state(self) -> None:
        """What belongs to this process's threads: held shards, prefetch streams, the wake-up for room."""
        self._held: dict = {}  # shard key -> (lock file descriptor, count) held by readers of this process
        self._held_lock = threading.Lock()
        self._streams: dict = {}  # stream name -> (deque of shards to prefetch, its thread)
        self._paths_of: dict = {}  # a shard's file names -> their checked local paths
        self._room = threading.Condition()
        self._releases = 0  # shards released in this process so far (under self._room)

    # -- opening ----------------------------------------------------------
    @classmethod
    def open(cls, url: str, cache_dir=None, cache_limit=None, storage_options=None, verbose=True) -> "ShardCache":
        folder = Path(cache_dir) if cache_dir is not None else default_cache_dir(url)
        key = (str(folder.resolve()), url.rstrip("/"))
        with _CACHES_LOCK:
            cache = _CACHES.get(key)
            if cache is None:
                folder.mkdir(parents=True, exist_ok=True)
                limit = parse_size(cache_limit) if cache_limit is not None else None
                said = "--cache-limit"
                if limit is None:
                    limit = int(shutil.disk_usage(folder).free * DEFAULT_FRACTION_OF_FREE_DISK)
                    said = "half the free disk there; set it with --cache-limit"
                cache = cls(url, folder, limit, storage_options)
                cache._fetch_manifest()
                if verbose:
                    print(f"questlearn: shards of {cache.url}/ are fetched into the cache {folder}, at most "
                          f"{shown_size(limit)} ({said}); the split has {shown_size(cache.split_bytes())}")
                _CACHES[key] = cache
            elif cache_limit is not None:
                cache.limit = parse_size(cache_limit)  # the latest limit given for this folder
        return cache

    def _store(self):
        return locate(self.url + "/", self.storage_options)[0]

    def _fetch_manifest(self) -> None:
        """The split's manifest, fetched (it is small); a changed one empties the cache of the old shards."""
        store = self._store()
        url = store.join(self.url, MANIFEST_NAME)
        if store.kind(url) != "file":
            raise ManifestError(f"{self.url}/ holds no {MANIFEST_NAME}: check the URL, or let the split that writes "
                                "there finish")
        data = store.read_small(url, MAX_MANIFEST_BYTES)
        try:
            fetched = json.loads(data)
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise ManifestError(f"{url} is not valid JSON ({error}): it was damaged or edited") from None
        local = self.folder / MANIFEST_NAME
        try:
            kept = json.loads(local.read_text(encoding="utf-8")) if local.is_file() else None
        except (UnicodeDecodeError, json.JSONDecodeError):
            kept = None
        if kept != fetched:  # another split under the same URL: none of the cached shards may be read
            with self._folder_lock():
                for path in sorted(self.folder.iterdir()):
                    if path.name != ".lock":
                        shutil.rmtree(path) if path.is_dir() else path.unlink()
                write_json_atomically(local, fetched)
        self.manifest = load_manifest(self.folder, check_files=False)
        self.manifest["url"] = self.url + "/"

    def __getstate__(self):
        return {"url": self.url, "folder": self.folder, "limit": self.limit, "storage_options": self.storage_options,
                "manifest": self.manifest, "held_shards": self.held_shards, "units": self.units, "_owner_pid": self._owner_pid}

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._start_thread_state()
        _INSTANCES.add(self)

    # -- sizes ------------------------------------------------------------
    def _all_shards(self) -> list:
        """Every shard of the split, as the list of its files' manifest records."""
        return [list(shard["files"].values()) for subset in self.manifest["subsets"].values()
                for shard in subset["shards"]]

    def split_bytes(self) -> int:
        return sum(entry["bytes"] for files in self._all_shards() for entry in files)

    def need_room(self, reader: str, shards: int, units: list) -> None:
        """Note that ``reader`` (a subset's dataset; a new one replaces the old) may hold ``shards`` shards open
        at once; a limit too small for all the readers is refused.

        ``units`` are the shards it may read, each the list of its files' records (the cache fetches and
        evicts a shard's files together).

        Raises
        ------
        OptionError
            The limit is smaller than the largest shard times the shards held at once, plus one being fetched.
        """
        self.held_shards[reader] = int(shards)
        held = sum(self.held_shards.values())
        self.units.update((self._key(entries), entries) for entries in units)
        largest = max(sum(entry["bytes"] for entry in files) for files in self.units.values())
        needed = largest * (held + 1) + (self.folder / MANIFEST_NAME).stat().st_size
        if needed > self.limit:
            raise OptionError(f"--cache-limit {shown_size(self.limit)} is too small for {self.url}/: reading it holds "
                              f"up to {held} shards open and fetches one more, each up to "
                              f"{shown_size(largest)}; give at least --cache-limit {needed}")

    # -- reading ----------------------------------------------------------
    @staticmethod
    def _key(entries: list) -> str:
        return re.sub(r"[^A-Za-z0-9._-]", "_", entries[0]["name"])

    def _paths(self, entries: list) -> list[Path]:
        """The local paths of a shard's files, checked to lie inside the folder once (eviction asks often)."""
        names = tuple(entry["name"] for entry in entries)
        paths = self._paths_of.get(names)
        if paths is None:
            paths = self._paths_of[names] = tuple(resolve_inside(self.folder, name) for name in names)
        return list(paths)  # the caller's own list: the kept paths cannot be changed through it

    def _present(self, entries: list) -> bool:
        return all(path.is_file() for path in self._paths(entries))

    def _state(self, key: str, kind: str) -> Path:
        return self.folder / ".state" / f"{key}.{kind}"

    def acquire(self, entries: list) -> list[Path]:
        """The local paths of one shard's files, fetched and verified first if they are not here.

        The shard stays in the cache (it is locked) until :meth:`release`.
        """
        key = self._key(entries)
        while True:
            descriptor = self._open_lock(key)
            fcntl.flock(descriptor, fcntl.LOCK_SH)  # waits while another thread or process fetches or evicts it
            if self._present(entries):
                self._state(key, "pin").unlink(missing_ok=True)
                self._state(key, "used").touch()
                with self._held_lock:
                    held = self._held.get(key)
                    if held is None:
                        self._held[key] = (descriptor, 1)
                    else:  # held by another thread of this process already: one lock is enough
                        self._held[key] = (held[0], held[1] + 1)
                        close_lock_file(descriptor)
                return self._paths(entries)
            close_lock_file(descriptor)
            self._fetch(entries, now=True)

    def release(self, entries: list) -> None:
        """The reader is done with this shard: it may be evicted."""
        key = self._key(entries)
        with self._held_lock:
            held = self._held.pop(key, None)
            if held is not None and held[1] > 1:
                self._held[key] = (held[0], held[1] - 1)
                return
        if held is not None:
            close_lock_file(held[0])  # closing the descriptor releases its lock
            with self._room:  # the shard may be evicted now: wake the fetches waiting for room
                self._releases += 1
                self._room.notify_all()

    def _wait_for_room(self, releases: int, waits: int, longest: float) -> None:
        """Sleep after a failed attempt to make room (the ``waits``-th in a row), unless a shard was released
        in this process since the attempt began (``releases``, read before it); a release ends the sleep."""
        with self._room:
            if self._releases == releases:
                self._room.wait(min(WAIT_SECONDS * 2 ** waits, longest))

    # -- prefetching ---------------------------------------------------------
    def schedule(self, stream: str, shards: list) -> None:
        """Fetch ``shards`` (each the list of its files' records) ahead of the reader named ``stream``, in order.

        Replaces that stream's earlier schedule (its pins are dropped); only the process that made the
        cache prefetches.
        """
        if os.getpid() != self._owner_pid:
            return
        old = self._streams.get(stream)
        if old is not None:
            old[0].clear()
            for entries in old[2]:
                self._state(self._key(entries), "pin").unlink(missing_ok=True)
        queue = deque(shards)
        thread = threading.Thread(target=self._prefetch, args=(queue,), daemon=True,
                                  name=f"questlearn-shard-prefetch-{stream}")
        self._streams[stream] = (queue, thread, list(shards))
        thread.start()

    def _prefetch(self, queue: deque) -> None:
        waits = 0  # failed attempts in a row: the next look waits longer, so a full cache costs no CPU
        while queue:
            try:
                entries = queue[0]
            except IndexError:
                return
            releases = self._releases
            try:
                done = self._fetch(entries, now=False)
            except Exception:  # noqa: BLE001 - the reader that needs the shard fetches it again and names the fault
                done = True
            if done:
                waits = 0
                try:
                    queue.popleft()
                except IndexError:
                    return
            else:
                self._wait_for_room(releases, waits, PREFETCH_WAIT_SECONDS)
                waits += 1

    # -- fetching and eviction --------------------------------------------
    def _open_lock(self, key: str) -> int:
        folder = self.folder / ".state"
        folder.mkdir(exist_ok=True)
        return open_lock_file(folder / f"{key}.lock")

    def _folder_lock(self):
        return FileLock(self.folder / ".lock")

    def _fetch(self, entries: list, now: bool) -> bool:
        """Fetch a shard unless it is here; ``now``: a reader waits for it (and may evict pinned shards).

        Returns False when a prefetch found no room (nothing evictable yet); True once the shard is here
        (and pinned, for a prefetch).
        """
        key = self._key(entries)
        descriptor = self._open_lock(key)
        try:
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX | (0 if now else fcntl.LOCK_NB))
            except BlockingIOError:
                return True  # a reader holds it: it is here, and being read (a prefetch moves on)
            if self._present(entries):
                if not now:
                    self._state(key, "pin").touch()
                return True
            size = sum(entry["bytes"] for entry in entries)
            reservation = self._state(key, "fetching")
            waits, releases = 0, self._releases
            while not self._make_room(size, key, reservation, may_evict_pinned=now):
                if not now:
                    return False
                self._wait_for_room(releases, waits, READER_WAIT_SECONDS)
                waits, releases = waits + 1, self._releases
            try:
                store = self._store()
                for entry, path in zip(entries, self._paths(entries)):
                    path.parent.mkdir(parents=True, exist_ok=True)
                    partial = path.with_name(path.name + ".partial")
                    store.fetch(store.join(self.url, entry["name"]), partial, entry)
                    if entry.get("data_offset"):
                        check_npy_header(partial, int(entry["data_offset"]))
                    os.replace(partial, path)
                if not now:
                    self._state(key, "pin").touch()
            except BaseException:
                for path in self._paths(entries):
                    path.unlink(missing_ok=True)
                    path.with_name(path.name + ".partial").unlink(missing_ok=True)
                raise
            finally:
                reservation.unlink(missing_ok=True)
            return True
        finally:
            close_lock_file(descriptor)

    def used_bytes(self) -> int:
        """Bytes in the folder (shard files, manifest) plus those reserved by fetches under way."""
        total = 0
        for path in self.folder.rglob("*"):
            try:
                if path.name.endswith(".fetching"):
                    total += int(path.read_text() or 0)
                elif path.is_file() and not path.name.endswith(".partial"):
                    total += path.stat().st_size
            except (OSError, ValueError):
                continue  # removed meanwhile
        return total

    def _make_room(self, size: int, key: str, reservation: Path, may_evict_pinned: bool) -> bool:
        """Evict shards until ``size`` more bytes fit, and reserve them; False if that cannot be done now."""
        with self._folder_lock():
            free = self.limit - self.used_bytes()
            if free < size:
                candidates = []
                for other, entries in list(self.units.items()):
                    if other == key or not self._present(entries):
                        continue
                    pinned = self._state(other, "pin")
                    if pinned.exists():
                        if not may_evict_pinned:
                            continue
                        order = (1, -_mtime(pinned))  # about to be used: the last pinned first, after all others
                    else:
                        order = (0, _mtime(self._state(other, "used")))  # least recently used first
                    candidates.append((order, other, entries))
                for _, other, entries in sorted(candidates, key=lambda item: item[0]):
                    if free >= size:
                        break
                    free += self._evict(other, entries)
                if free < size:
                    return False
            reservation.write_text(str(size))
            return True

    def _evict(self, key: str, entries: list) -> int:
        """Remove a shard no reader holds; its bytes (0 when it is in use)."""
        descriptor = self._open_lock(key)
        try:
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return 0  # in use
            freed = 0
            for path in self._paths(entries):
                try:
                    freed += path.stat().st_size
                    path.unlink()
                except FileNotFoundError:
                    pass
            self._state(key, "pin").unlink(missing_ok=True)
            return freed
        finally:
            close_lock_file(descriptor)


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except FileNotFoundError:
        return 0.0
