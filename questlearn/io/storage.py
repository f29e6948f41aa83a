"""Where a source's bytes live: this machine's disk or an object store, behind one interface.

:func:`locate` turns what the user passed (a local path, ``file://``,
``s3://``, ``gs://``, ``abfs://``/``az://``, ``hdfs://``, or any scheme an
installed fsspec package knows) into a store and a place in it. Both stores
offer what the readers need, and this module is the only one that tells
them apart:

- :class:`LocalStore`: paths, read with ``os`` and ``open`` as they always were;
- :class:`~questlearn.io._remote_store.RemoteStore`: objects, through a
  ``pyarrow.fs`` filesystem: listings, ranged reads (``open_input_file``),
  and a sequential stream that fetches blocks ahead in threads
  (:class:`~questlearn.io._read_ahead.ReadAhead`), so no object is ever
  downloaded whole or held in memory. Its module is imported only when a
  URL names a store.

Where a split writes (a folder, or a prefix in a store) is
:mod:`questlearn.io.outputs`.

A place is a :class:`~pathlib.Path` on this machine, or the object's URL
(``s3://bucket/key``) in a store. Options for a store's constructor come from
``storage_options`` (``--storage-option KEY=VALUE``); S3 also takes its
endpoint from ``AWS_ENDPOINT_URL_S3`` or ``AWS_ENDPOINT_URL``, which pyarrow
does not read itself. Credentials come from each store's own chain; their
values never appear in a message
(:func:`~questlearn.io._store_access.redacted` removes them).
"""

from __future__ import annotations

import glob
import os
from pathlib import Path

from ..errors import InputFormatError, IntegrityError, OptionError
from ._places import URL, Stat, fetched_bytes  # noqa: F401  (fetched_bytes: the public count)


def locate(item, storage_options: dict | None = None):
    """``(store, place)`` of a path or URL (``storage_options`` are for a store; a local path has none).

    Raises
    ------
    OptionError
        An unknown scheme, or storage options its filesystem does not take.
    MissingPackageError
        A scheme whose fsspec package is not installed.
    """
    match = URL.match(str(item)) if isinstance(item, str) else None
    if match is None or match.group(1).lower() == "file":
        path = Path(match.group(2)) if match else Path(item)
        return LOCAL, path
    scheme, rest, options = match.group(1).lower(), match.group(2), dict(storage_options or {})
    first, slash, path = rest.partition("/")
    if scheme in ("abfs", "abfss") and "@" in first:  # abfs://container@ACCOUNT.dfs.core.windows.net/path
        container, _, account_host = first.partition("@")
        options.setdefault("account_name", account_host.split(".")[0])
        rest = container + slash + path
    from ._remote_store import remote_store  # only where a store is named: pyarrow.fs stays unloaded otherwise

    store = remote_store(scheme, rest, options)
    return store, store.url(store.path_in_store(rest))


def parse_storage_options(pairs) -> dict:
    """``{key: value}`` from ``KEY=VALUE`` texts (``--storage-option``): ``true``/``false`` and numbers as such."""
    options = {}
    for pair in pairs or ():
        key, equals, value = pair.partition("=")
        if not equals or not key.strip():
            raise OptionError(f"--storage-option takes KEY=VALUE (e.g. endpoint_override=127.0.0.1:9000), got "
                              f"{key.strip() or pair!r}")
        options[key.strip()] = _typed(value.strip())
    return options


def _typed(text: str):
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    for kind in (int, float):
        try:
            value = kind(text)
        except ValueError:
            continue
        if str(value) == text:  # "0123" or "1e3" stay text, as given
            return value
    return text


class LocalStore:
    """Files on this machine's disk."""

    remote = False

    def kind(self, path: Path) -> str:
        """``"dir"``, ``"file"`` (a dangling link too: :meth:`stat` names it) or ``"missing"``."""
        if path.is_dir():
            return "dir"
        return "file" if path.is_file() or _dangling(path) else "missing"

    def children(self, folder: Path) -> list:
        """``[(path, is_dir)]`` of a folder's entries, in name order."""
        return [(p, p.is_dir()) for p in sorted(folder.iterdir(), key=lambda p: p.name)]

    def glob(self, pattern: Path) -> list:
        """The files (and dangling links) a pattern matches, in name order."""
        return [Path(m) for m in sorted(glob.glob(str(pattern))) if Path(m).is_file() or _dangling(Path(m))]

    def name(self, path: Path) -> str:
        return path.name

    def parent(self, path: Path) -> Path:
        return path.parent

    def relative(self, path: Path, base: Path) -> str:
        return str(path.relative_to(base))

    def common_base(self, paths: list) -> Path:
        return Path(os.path.commonpath([str(p) for p in paths]))

    def stat(self, path: Path) -> Stat:
        """The file's resolved path, size and modification time.

        Raises
        ------
        InputFormatError
            A dangling symbolic link, or not a regular file.
        """
        if _dangling(path):
            raise InputFormatError(f"{path} is a symbolic link to {os.readlink(path)!r}, which does not exist: "
                                   "fix or remove the link")
        if not path.is_file():
            raise InputFormatError(f"{path} is not a regular file (a device, socket or pipe?): pass data files only")
        resolved = Path(path).resolve()
        stat = resolved.stat()
        return Stat(resolved, stat.st_size, stat.st_mtime_ns)

    def read_range(self, path: Path, offset: int, size: int) -> bytes:
        with open(path, "rb") as handle:
            handle.seek(offset)
            return handle.read(size)

    def open_random(self, path: Path):
        """What ``pyarrow.parquet.ParquetFile`` and ``zipfile.ZipFile`` open: the path itself."""
        return str(path)

    def open_stream(self, path: Path, start: int, shown: str) -> "LocalStream":
        return LocalStream(path, start, shown)

    def sha256(self, path: Path) -> str:
        from ..manifest._files import sha256_of

        return sha256_of(path)

    def same_file(self, path: Path, local: Path) -> bool:
        """Whether ``path`` is the file ``local`` (reached by any path or link)."""
        return os.path.samefile(local, path)

    def join(self, path: Path, relative: str) -> Path:
        return Path(path) / relative


def _dangling(path: Path) -> bool:
    """Whether ``path`` is a symbolic link to nothing."""
    return path.is_symlink() and not path.exists()


class LocalStream:
    """A local file read from ``start`` on."""

    def __init__(self, path: Path, start: int, shown: str):
        self.handle, self.shown = open(path, "rb"), shown
        self.handle.seek(start)

    def readinto(self, view) -> int:
        return self.handle.readinto(view) or 0

    def read_after(self, prefix: bytes, size: int) -> bytes:
        """``prefix`` (the bytes just read) and up to ``size`` more, in one read: ``prefix`` is read again
        rather than copied in front of the new bytes."""
        start = self.handle.tell() - len(prefix)
        data = os.pread(self.handle.fileno(), len(prefix) + size, start)
        if len(data) < len(prefix) or data[:len(prefix)] != prefix:
            raise IntegrityError(f"{self.shown} changed while it was being read; split again")
        self.handle.seek(start + len(data))
        return data

    def close(self) -> None:
        self.handle.close()


LOCAL = LocalStore()
