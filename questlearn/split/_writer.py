"""The split's I/O thread: shard writes, hashing and checkpoints, in order.

The pass hands over one list of actions per block (append these rows to
those shards, close that wave, write a checkpoint) and goes on parsing the
next block while this thread writes and hashes (both release the GIL).
Actions run in the order given, so a checkpoint describes exactly the
writes queued before it: it makes them durable with one ``syncfs`` of the
output's file system (``fsync`` of each open file where ``syncfs`` is
missing), then replaces the journal atomically. At most ``depth`` blocks
wait, which bounds memory. An error in this thread is raised in the pass
at its next hand-over.
"""

from __future__ import annotations

import ctypes
import os
import queue
import threading

_DONE = object()


def sync_directory_file_system(folder) -> None:
    """:func:`sync_file_system` for the file system holding ``folder``."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        sync_file_system(fd)
    finally:
        os.close(fd)


def sync_file_system(fd: int, fallback_files=()) -> None:
    """Flush every dirty page of the file system holding ``fd`` to disk
    (``syncfs``; where it is missing, ``fsync`` of ``fallback_files``)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.syncfs(fd) == 0:
            return
    except (OSError, AttributeError):
        pass
    for handle in fallback_files:
        os.fsync(handle)


class ShardWriter:
    """Run actions in a background thread, in order (see module docstring)."""

    def __init__(self, depth: int = 2):
        self._queue = queue.Queue(maxsize=depth)
        self._error = None
        self._abandoned = False
        self._thread = threading.Thread(target=self._work, name="questlearn-shard-writer", daemon=True)
        self._thread.start()

    def submit(self, actions: list) -> None:
        """Queue a block's actions (callables); raise an earlier failure."""
        self._raise_failure()
        while True:
            try:
                self._queue.put(actions, timeout=0.5)
                return
            except queue.Full:
                self._raise_failure()

    def finish(self) -> None:
        """Wait for every queued action; raise a failure."""
        if self._thread.is_alive():
            self._queue.put(_DONE)
            self._thread.join()
        self._raise_failure()

    def abandon(self) -> None:
        """Stop after the current action (the split is failing anyway)."""
        self._abandoned = True
        while self._thread.is_alive():
            try:
                self._queue.get_nowait()
            except queue.Empty:
                pass
            try:
                self._queue.put_nowait(_DONE)
            except queue.Full:
                pass
            self._thread.join(timeout=0.1)

    def _raise_failure(self):
        if self._error is not None:
            raise self._error

    def _work(self):
        while True:
            actions = self._queue.get()
            if actions is _DONE:
                return
            if self._error is not None or self._abandoned:
                continue
            try:
                for action in actions:
                    action()
            except BaseException as error:  # noqa: BLE001 - raised in the pass
                self._error = error
