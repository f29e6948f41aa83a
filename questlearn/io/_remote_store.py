"""Objects in a store, read through a ``pyarrow.fs`` filesystem: listings, ranged reads and fetches.

:func:`questlearn.io.storage.locate` hands a URL's scheme, host and options to
:func:`remote_store`, which makes one :class:`RemoteStore` per store and
options. A :class:`RemoteStore` answers what a :class:`~questlearn.io.storage.LocalStore`
answers for paths. Its filesystem and its one-line, credential-free failures
come from :mod:`questlearn.io._store_access`; its sequential stream,
:class:`~questlearn.io._read_ahead.ReadAhead`, fetches blocks ahead in
threads, so no object is downloaded whole or held in memory.
"""

from __future__ import annotations

import datetime
import fnmatch
import hashlib
import os
from pathlib import Path

from ..errors import IntegrityError, OptionError, StorageError
from ._places import GLOB_CHARACTERS, Stat, count_fetched
from ._read_ahead import ReadAhead
from ._store_access import (ENDPOINT_ENVIRONMENT, SECRET_ENVIRONMENT, credential_source, open_filesystem,
                            store_error)

FETCH_PIECE = 4 << 20  # a whole object fetched into a cache is read in pieces of this size

_STORES: dict = {}


def remote_store(scheme: str, rest: str, options: dict) -> "RemoteStore":
    """The store of ``scheme://rest`` with ``options`` (made once per scheme, host, options and environment)."""
    host = rest.split("/", 1)[0] if scheme == "hdfs" else ""
    environment = [os.environ.get(name) for name in ENDPOINT_ENVIRONMENT + SECRET_ENVIRONMENT + ("AWS_PROFILE",)]
    key = (scheme, host, repr(sorted(options.items())), repr(environment))
    if key not in _STORES:
        _STORES[key] = RemoteStore(scheme, host, options)
    return _STORES[key]


class RemoteStore:
    """Objects in a store, through a ``pyarrow.fs`` filesystem.

    A place is the object's URL; :meth:`path_in_store` is its path for the
    filesystem (``bucket/key``).
    """

    remote = True

    def __init__(self, scheme: str, host: str, options: dict):
        self.scheme, self.host, self.options = scheme, host, options
        self.root = f"{scheme}://{host}"
        self.filesystem, self.endpoint = open_filesystem(scheme, host, options)

    def path_in_store(self, rest: str) -> str:
        """The filesystem's path of ``scheme://rest``: ``bucket/key`` (HDFS: ``/path``), no trailing ``/``."""
        if self.scheme == "hdfs":
            return "/" + rest.split("/", 1)[1].strip("/") if "/" in rest else "/"
        return rest.rstrip("/")

    def url(self, path: str) -> str:
        return self.root + path

    def _path(self, url: str) -> str:
        return url[len(self.root):]

    # -- listing ----------------------------------------------------------
    def kind(self, url: str) -> str:
        """``"dir"`` (a prefix holding objects), ``"file"`` or ``"missing"``; a missing bucket is refused."""
        import pyarrow.fs as pafs

        info = self._call(url, lambda: self.filesystem.get_file_info(self._path(url)))
        if info.type == pafs.FileType.File:
            return "file"
        if info.type == pafs.FileType.Directory:
            return "dir"
        bucket = self._path(url).lstrip("/").split("/", 1)[0]
        if self.scheme != "hdfs" and bucket and not GLOB_CHARACTERS & set(bucket):
            found = self._call(url, lambda: self.filesystem.get_file_info(bucket))
            if found.type == pafs.FileType.NotFound:
                raise StorageError(f"{url}: the bucket {bucket!r} does not exist (or these credentials, from "
                                   f"{self.credential_source()}, cannot see it): check the URL")
        return "missing"

    def children(self, url: str) -> list:
        """``[(url, is_dir)]`` of the objects and prefixes right under a prefix, in name order."""
        import pyarrow.fs as pafs

        infos = self._call(url, lambda: self.filesystem.get_file_info(pafs.FileSelector(self._path(url))))
        return sorted(((self.url(i.path), i.type == pafs.FileType.Directory) for i in infos),
                      key=lambda entry: self.name(entry[0]))

    def glob(self, pattern: str) -> list:
        """The objects a pattern matches, in name order (``*`` and ``?`` do not cross a ``/``)."""
        import pyarrow.fs as pafs

        path = self._path(pattern)
        parts = path.split("/")
        fixed = next(i for i, part in enumerate(parts) if GLOB_CHARACTERS & set(part))
        if fixed == 0:
            raise OptionError(f"{pattern}: a pattern cannot match bucket names; name the bucket and match the "
                              "objects in it (s3://bucket/logs/*.csv)")
        base = "/".join(parts[:fixed])
        wanted = parts[fixed:]
        selector = pafs.FileSelector(base, recursive=len(wanted) > 1, allow_not_found=True)
        infos = self._call(pattern, lambda: self.filesystem.get_file_info(selector))
        matches = []
        for info in infos:
            relative = info.path[len(base):].lstrip("/").split("/")
            if info.type == pafs.FileType.File and len(relative) == len(wanted) and all(
                    fnmatch.fnmatchcase(part, want) for part, want in zip(relative, wanted)):
                matches.append(self.url(info.path))
        return sorted(matches)

    def name(self, url: str) -> str:
        return url.rstrip("/").rsplit("/", 1)[-1]

    def parent(self, url: str) -> str:
        return url.rstrip("/").rsplit("/", 1)[0]

    def relative(self, url: str, base: str) -> str:
        return url[len(base.rstrip("/")) + 1:]

    def common_base(self, urls: list) -> str:
        split = [self._path(u).split("/")[:-1] for u in urls]
        common = []
        for parts in zip(*split):
            if len(set(parts)) > 1:
                break
            common.append(parts[0])
        return self.url("/".join(common))

    # -- reading ------------------------------------------------------------
    def stat(self, url: str) -> Stat:
        """Size, modification time and ETag (or generation) of an object (one HEAD request)."""
        opened = self.open_random(url)
        modified = _metadata(opened).get("Last-Modified")
        if modified:
            mtime_ns = int(datetime.datetime.fromisoformat(modified.replace("Z", "+00:00")).timestamp()) * 10**9
        else:
            mtime_ns = self._call(url, lambda: self.filesystem.get_file_info(self._path(url))).mtime_ns or 0
        return Stat(url, opened.size(), mtime_ns, _identity(opened))

    def read_range(self, url: str, offset: int, size: int) -> bytes:
        opened = self.open_random(url)
        return self._call(url, lambda: opened.read_at(max(0, min(size, opened.size() - offset)), offset))

    def open_random(self, url: str):
        """A seekable file whose reads are ranged requests (``pyarrow.parquet`` and ``zipfile`` read it)."""
        return self._call(url, lambda: self.filesystem.open_input_file(self._path(url)))

    def open_stream(self, url: str, start: int, shown: str) -> ReadAhead:
        return ReadAhead(self, url, start)

    def sha256(self, url: str) -> str:
        digest, stream = hashlib.sha256(), self.open_stream(url, 0, url)
        try:
            buffer = bytearray(1 << 20)
            while got := stream.readinto(buffer):
                digest.update(memoryview(buffer)[:got])
        finally:
            stream.close()
        return digest.hexdigest()

    def same_file(self, url: str, local: Path) -> bool:
        return False  # an object in a store is never a file on this disk

    def join(self, url: str, relative: str) -> str:
        return url.rstrip("/") + "/" + relative

    def read_small(self, url: str, most: int) -> bytes:
        """The whole of a small object (a manifest); more than ``most`` bytes is refused."""
        opened = self.open_random(url)
        size = opened.size()
        if size > most:
            raise StorageError(f"{url} has {size} bytes, more than the {most} such a file can have: check the URL")
        data = self._call(url, lambda: opened.read_at(size, 0))
        count_fetched(len(data))
        return data

    def fetch(self, url: str, target: Path, entry: dict) -> None:
        """Download the object ``url`` whole into the new local file ``target``, verified against ``entry``.

        ``entry`` is the object's manifest record (``bytes``, ``sha256`` and,
        for a ``.npy`` file, ``data_offset``: where the hashed bytes start).
        The bytes are hashed as they arrive; every byte counts in
        :func:`fetched_bytes`.

        Raises
        ------
        IntegrityError
            The object's size or SHA-256 is not the recorded one (``target`` is removed).
        StorageError
            The store failed (one line naming ``url``).
        """
        digest, offset, done = hashlib.sha256(), int(entry.get("data_offset", 0)), 0
        stream = self._call(url, lambda: self.filesystem.open_input_stream(self._path(url)))
        try:
            with open(target, "wb") as out:
                while True:
                    try:
                        chunk = stream.read(FETCH_PIECE)
                    except OSError as error:
                        raise self.error(url, error) from None
                    if not chunk:
                        break
                    out.write(chunk)
                    if done + len(chunk) > offset:
                        digest.update(memoryview(chunk)[max(0, offset - done):])
                    done += len(chunk)
                    count_fetched(len(chunk))
                    if done > entry["bytes"]:
                        break
        finally:
            stream.close()
        found = digest.hexdigest()
        if done != entry["bytes"] or found != entry["sha256"]:
            target.unlink(missing_ok=True)
            what = (f"has {done if done <= entry['bytes'] else 'more than ' + str(entry['bytes'])} bytes, the split's "
                    f"manifest says {entry['bytes']}") if done != entry["bytes"] else (
                f"does not match the SHA-256 recorded in the split's manifest (recorded {entry['sha256'][:16]}..., "
                f"found {found[:16]}...)")
            raise IntegrityError(f"shard {url} {what}: it was replaced or damaged in the store after the split; "
                                 "run the split again into a new prefix")

    # -- faults -------------------------------------------------------------
    def _call(self, url: str, action):
        """``action()``, its failures as one-line :class:`StorageError` messages naming ``url``."""
        try:
            return action()
        except FileNotFoundError:
            raise StorageError(f"{url} does not exist (no such object or prefix): check the URL") from None
        except OSError as error:
            raise self.error(url, error) from None

    def error(self, url: str, error: Exception) -> StorageError:
        """What went wrong with ``url``, in one line without any credential."""
        bucket = self._path(url).lstrip("/").split("/", 1)[0]
        return store_error(url, bucket, error, scheme=self.scheme, endpoint=self.endpoint, options=self.options)

    def credential_source(self) -> str:
        """Where the credentials come from, in words (never their values)."""
        return credential_source(self.scheme, self.options)

def _metadata(opened) -> dict:
    """``{name: text}`` of the metadata an opened object's HEAD request returned (empty where there is none)."""
    try:
        metadata = opened.metadata() or {}
    except (OSError, NotImplementedError):
        return {}
    return {str(k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else str(v))
            for k, v in metadata.items()}


def _identity(opened) -> str | None:
    """An object's ETag (S3, Azure) or generation (GCS): it changes whenever the object is written again."""
    metadata = _metadata(opened)
    value = next((metadata[k] for k in ("ETag", "Etag", "etag", "generation", "x-goog-generation") if metadata.get(k)),
                 None)
    return value.strip('"') if value else None
