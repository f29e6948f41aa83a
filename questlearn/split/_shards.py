"""The files of one shard while it fills: written once, hashed while written.

A shard's parts (``features``, ``labels``, ``rows`` as ``.npy``; ``csv``
when asked) grow in hidden ``.partial`` files that stay open for the whole
pass. Each append goes to the file and into a running SHA-256, so a
finished shard is never read back:

* a ``.npy`` part starts with a fixed-size header (:data:`NPY_HEADER_BYTES`)
  whose shape is rewritten in place when the shard closes; its SHA-256
  covers the array data after the header (``data_offset``), and the
  loader checks the header's shape and dtype against the manifest;
* a CSV part starts with the source's header row and is hashed whole.

After a resume, :meth:`ShardFiles.reopen` cuts each file back to the size
the journal recorded and hashes what is kept, the only time shard bytes
are read.
"""

from __future__ import annotations

import hashlib
import os
import struct
from pathlib import Path

import numpy as np

from ..errors import OutputFolderError

NPY_HEADER_BYTES = 128
NPY_MAGIC = b"\x93NUMPY\x01\x00"


def npy_header(dtype, shape) -> bytes:
    """A version-1.0 ``.npy`` header padded to exactly :data:`NPY_HEADER_BYTES`."""
    text = "{'descr': %r, 'fortran_order': False, 'shape': %r, }" % (np.dtype(dtype).str, tuple(shape))
    room = NPY_HEADER_BYTES - len(NPY_MAGIC) - 2
    if len(text) + 1 > room:
        raise ValueError(f"shape {shape} does not fit a {NPY_HEADER_BYTES}-byte .npy header")
    return NPY_MAGIC + struct.pack("<H", room) + (text.ljust(room - 1) + "\n").encode("latin1")


def shard_name(subset: str, index: int, part: str) -> str:
    """A published shard file's name: ``train/split_data_00003.numbers.npy``."""
    suffix = "csv" if part == "csv" else f"{part}.npy"
    return f"{subset}/split_data_{index:05d}.{suffix}"


class ShardFiles:
    """The open partial files of one shard.

    Parameters
    ----------
    folder : Path
        The subset's folder.
    index : int
        The shard's number while the split runs (final names are given at
        the end, skipping shards that stayed empty).
    parts : dict
        ``{part: (dtype, columns)}`` for the ``.npy`` parts (``columns``
        None for one-dimensional arrays), and ``{"csv": header_bytes}``.
    """

    def __init__(self, folder: Path, index: int, parts: dict):
        self.folder, self.index, self.parts = Path(folder), int(index), parts
        self.rows = 0
        self.handles, self.hashes = {}, {}
        self.pieces: dict = {}  # {part: [[start, end], ...]} copied to the output's store (a store's output only)

    def partial_path(self, part: str) -> Path:
        suffix = "csv" if part == "csv" else f"{part}.npy"
        return self.folder / f".shard_{self.index:05d}.{suffix}.partial"

    def data_offset(self, part: str) -> int:
        return 0 if part == "csv" else NPY_HEADER_BYTES

    def row_bytes(self, part: str) -> int:
        dtype, columns = self.parts[part]
        return np.dtype(dtype).itemsize * (columns or 1)

    def open(self) -> None:
        """Create the partial files (a fresh shard)."""
        for part in self.parts:
            path = self.partial_path(part)
            handle = open(path, "wb", buffering=0)
            start = self.parts[part] if part == "csv" else npy_header(self.parts[part][0], self._shape(part, 0))
            handle.write(start)
            self.handles[part] = handle
            self.hashes[part] = hashlib.sha256(start if part == "csv" else b"")

    def reopen(self, rows: int, sizes: dict) -> None:
        """Continue a shard after a resume: cut its files to the journal's sizes."""
        self.rows = int(rows)
        for part in self.parts:
            path = self.partial_path(part)
            size = int(sizes[part])
            if not path.exists() or path.stat().st_size < size:
                raise OutputFolderError(f"{path} is missing or shorter than the split's journal says; delete the output "
                                 "directory and split again")
            handle = open(path, "r+b", buffering=0)
            handle.truncate(size)
            digest = hashlib.sha256()
            handle.seek(self.data_offset(part))
            for piece in iter(lambda: handle.read(1 << 20), b""):
                digest.update(piece)
            handle.seek(size)
            self.handles[part], self.hashes[part] = handle, digest

    def sizes(self) -> dict:
        """``{part: bytes}`` written so far (the journal's record)."""
        return {part: handle.tell() for part, handle in self.handles.items()}

    def append(self, part: str, payload) -> None:
        """Write ``payload`` (bytes-like, or a list of them) to ``part``, hashing it."""
        handle, digest = self.handles[part], self.hashes[part]
        for piece in payload if isinstance(payload, list) else (payload,):
            if not memoryview(piece).nbytes:  # a block without columns (no numbers, or no codes): nothing to write
                continue
            digest.update(piece)
            view = memoryview(piece).cast("B")
            while len(view):
                view = view[handle.write(view):]

    def fileno(self) -> int:
        return next(iter(self.handles.values())).fileno()

    def close(self) -> dict:
        """Write the final ``.npy`` shapes, close the files and return
        ``{part: {"bytes", "sha256", "data_offset"}}``."""
        record = {}
        for part, handle in self.handles.items():
            if part != "csv":
                os.pwrite(handle.fileno(), npy_header(self.parts[part][0], self._shape(part, self.rows)), 0)
            record[part] = {"bytes": handle.tell(), "sha256": self.hashes[part].hexdigest(),
                            "data_offset": self.data_offset(part)}
            handle.close()
        self.handles = {}
        return record

    def discard(self) -> None:
        """Close and delete the files (a shard that stayed empty)."""
        for handle in self.handles.values():
            handle.close()
        self.handles = {}
        for part in self.parts:
            self.partial_path(part).unlink(missing_ok=True)

    def _shape(self, part: str, rows: int) -> tuple:
        columns = self.parts[part][1]
        return (rows,) if columns is None else (rows, columns)
