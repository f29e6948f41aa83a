"""A stream over an object in a store: ranged reads fetched ahead in threads, memory bounded.

:class:`ReadAhead` is what :meth:`~questlearn.io._remote_store.RemoteStore.open_stream`
returns: the split's pass and the CSV readers read it in order, and no object
is downloaded whole or held in memory.
"""

from __future__ import annotations

import concurrent.futures
import io
import threading
from collections import deque

#: Ranged reads: a stream's first block, its largest, and the blocks fetched ahead of the one being read.
FIRST_BLOCK = 64 * 1024  # what a CSV header read asks for: a file opened to check its header holds nothing more
LARGEST_BLOCK = 8 << 20
BLOCKS_AHEAD = 4
FETCH_THREADS = 16  # shared by every stream: many files open at once cost no thread each

_POOL: list = []
_POOL_LOCK = threading.Lock()


def _fetch_pool() -> concurrent.futures.ThreadPoolExecutor:
    """The threads that fetch blocks ahead, made on first use."""
    with _POOL_LOCK:
        if not _POOL:
            _POOL.append(concurrent.futures.ThreadPoolExecutor(FETCH_THREADS,
                                                               thread_name_prefix="questlearn-read-ahead"))
        return _POOL[0]


class ReadAhead(io.RawIOBase):
    """An object read in order from ``start``: ranged reads, several in flight ahead of the reader.

    Blocks start at :data:`FIRST_BLOCK` bytes and double up to
    :data:`LARGEST_BLOCK`; the first is fetched when asked for, and the
    blocks fetched ahead grow by one per block read, to
    :data:`BLOCKS_AHEAD`: a file whose header alone is read costs one small
    request, and memory stays bounded. ``store`` is the
    :class:`~questlearn.io._remote_store.RemoteStore` that opens the object
    and names its failures.
    """

    def __init__(self, store, url: str, start: int):
        self.store, self.url = store, url
        self.file = store.open_random(url)
        self.size = self.file.size()
        self.next_offset, self.block = start, FIRST_BLOCK
        self.pending: deque = deque()
        self.ahead, self.used = 1, 0  # blocks to hold in flight, blocks read
        self.buffer = memoryview(b"")

    def readable(self) -> bool:
        return True

    def _fetch(self) -> None:
        while len(self.pending) < self.ahead and self.next_offset < self.size:
            size = min(self.block, self.size - self.next_offset)
            self.pending.append(_fetch_pool().submit(self.file.read_at, size, self.next_offset))
            self.next_offset += size
            self.block = min(self.block * 2, LARGEST_BLOCK)

    def readinto(self, buffer) -> int:
        """Fill ``buffer`` (less only at the object's end)."""
        view, filled = memoryview(buffer).cast("B"), 0
        while filled < len(view):
            if not self.buffer:
                self._fetch()
                if not self.pending:
                    break
                try:
                    self.buffer = memoryview(self.pending.popleft().result())
                except OSError as error:
                    raise self.store.error(self.url, error) from None
                self.used += 1
                self.ahead = min(self.used - 1, BLOCKS_AHEAD)
                self._fetch()  # the next blocks are fetched while this one is used
                self.ahead = max(self.ahead, 1)  # the next block is fetched when asked for, at least
            count = min(len(view) - filled, len(self.buffer))
            view[filled:filled + count] = self.buffer[:count]
            self.buffer = self.buffer[count:]
            filled += count
        return filled

    def read_after(self, prefix: bytes, size: int) -> bytes:
        """``prefix`` followed by up to ``size`` more bytes."""
        data = bytearray(len(prefix) + size)
        data[:len(prefix)] = prefix
        got = self.readinto(memoryview(data)[len(prefix):])
        return bytes(memoryview(data)[:len(prefix) + got])

    def close(self) -> None:
        for future in self.pending:
            future.cancel()
        concurrent.futures.wait(self.pending)  # none still reads from the file being closed
        self.pending.clear()
        self.buffer = memoryview(b"")
        super().close()
