"""Lock files that a fork never copies: the shard cache's ``flock`` coordination, safe under fork workers.

The shard cache (:mod:`questlearn.data._shard_cache`) coordinates threads and
processes through lock files it ``flock``\\ s. A process forked while one is
open would hold a copy of its descriptor, and with it the parent's lock, for
as long as it lives: a worker waiting on that shard would wait forever. So
every lock file is opened and recorded, or forgotten and closed, under a
thread lock that a fork waits for, and a forked child closes its copies of
every recorded descriptor at once (``os.register_at_fork``).
"""

from __future__ import annotations

import fcntl
import os
import threading
from pathlib import Path

_LOCK_FILES: set = set()  # descriptors of lock files open in this process
# Held while a lock file is opened and recorded, or forgotten and closed, and by a fork: a child is never forked
# between the two steps, holding a copy of a descriptor that its after-fork handler does not know to close.
_LOCK_FILES_LOCK = threading.Lock()


def open_lock_file(path) -> int:
    """Open (create) the lock file ``path``; its descriptor, which no forked child keeps."""
    with _LOCK_FILES_LOCK:
        descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        _LOCK_FILES.add(descriptor)
    return descriptor


def close_lock_file(descriptor: int) -> None:
    """Close a descriptor :func:`open_lock_file` gave (and release its ``flock``)."""
    with _LOCK_FILES_LOCK:
        _LOCK_FILES.discard(descriptor)
        os.close(descriptor)


class FileLock:
    """An exclusive ``flock`` on a file, as a context manager (between threads and processes)."""

    def __init__(self, path: Path):
        self.path = path

    def __enter__(self):
        self.descriptor = open_lock_file(self.path)
        fcntl.flock(self.descriptor, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc):
        close_lock_file(self.descriptor)


def _before_fork() -> None:
    _LOCK_FILES_LOCK.acquire()


def _after_fork_in_parent() -> None:
    _LOCK_FILES_LOCK.release()


def _after_fork_in_child() -> None:
    """A forked child holds none of the parent's lock files: its copies are closed (the parent keeps its own)."""
    global _LOCK_FILES_LOCK
    for descriptor in list(_LOCK_FILES):
        try:
            os.close(descriptor)
        except OSError:
            pass
    _LOCK_FILES.clear()
    _LOCK_FILES_LOCK = threading.Lock()  # the forking thread held the parent's: this one is free


os.register_at_fork(before=_before_fork, after_in_parent=_after_fork_in_parent, after_in_child=_after_fork_in_child)
