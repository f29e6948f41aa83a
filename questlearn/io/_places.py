"""What both stores share: the URL and glob syntax, a file's or object's :class:`Stat`, and the bytes fetched.

:mod:`questlearn.io.storage` (paths, and :func:`~questlearn.io.storage.locate`)
and :mod:`questlearn.io._remote_store` (objects) both build on it.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass

URL = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://(.*)$", re.S)
GLOB_CHARACTERS = set("*?[")  # a path or URL holding one of these is a pattern


@dataclass(frozen=True)
class Stat:
    """What a file or object is now: its resolved place, size, modification time and, in a store, its ETag
    (or GCS generation), which changes when the object is replaced."""

    where: object
    size: int
    mtime_ns: int
    etag: str | None = None


_FETCHED = [0]
_FETCHED_LOCK = threading.Lock()


def count_fetched(size: int) -> None:
    """Add ``size`` bytes to :func:`fetched_bytes` (a store's reader calls it)."""
    with _FETCHED_LOCK:
        _FETCHED[0] += size


def fetched_bytes() -> int:
    """Bytes this process has downloaded whole from stores (shards and manifests fetched into a cache)."""
    return _FETCHED[0]
