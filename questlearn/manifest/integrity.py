"""Check shard files against the SHA-256 their manifest recorded, once.

A size check (done by :func:`questlearn.manifest._files.load_manifest`) misses
same-size damage: flipped bytes, or two shards of equal size swapped, which
would pair one shard's features with another's labels. So before a shard's
rows reach the model, :class:`ShardVerifier` hashes each file it is about
to read and compares with the manifest.

Each file is hashed once per training run, not on every read: a verified
file is remembered by ``(path, size, mtime_ns, inode)``, in memory and in a
private temporary directory of the training process that its worker
processes (which Keras starts anew every epoch) share. Any change to the
file's size or modification time makes it count as unverified again.
``verify="off"`` skips hashing (sizes are still checked on load).

A ``.npy`` shard's entry carries ``data_offset``, the end of its header:
the SHA-256 covers the bytes from there to the end (the data), and the
header is checked instead: it must end exactly at ``data_offset`` and
describe a C-ordered array (the loader compares its shape and dtype with
the manifest every time it opens the file). An entry without
``data_offset`` (a CSV shard) is hashed whole.
"""

from __future__ import annotations

import atexit
import hashlib
import os
import shutil
import tempfile
import threading
from pathlib import Path

from ..errors import IntegrityError, OptionError
from ._files import sha256_of

VERIFY_MODES = ("once", "off")

_verified = set()
_lock = threading.Lock()
_marker_dirs = {}  # owner pid -> private directory of "verified" markers


def check_npy_header(path: Path, data_offset: int) -> None:
    """Raise :class:`~questlearn.errors.IntegrityError` naming ``path`` unless its ``.npy`` header ends at
    ``data_offset`` and describes a C-ordered array."""
    import numpy as np

    try:
        with open(path, "rb") as handle:
            version = np.lib.format.read_magic(handle)
            reader = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            _, fortran_order, _ = reader(handle)
            end = handle.tell()
    except ValueError as error:
        raise IntegrityError(f"shard file {path} has no readable .npy header ({error}): it was damaged or replaced") from None
    if end != data_offset or fortran_order:
        found = "a Fortran-ordered array" if fortran_order else f"a header of {end} bytes"
        raise IntegrityError(f"shard file {path} holds {found}, the manifest says a C-ordered array after a header of "
                             f"{data_offset} bytes: its header was edited after the split; run the split again into a new directory")


def _private_marker_dir() -> str:
    """This process's directory of verification markers (mode 0700, removed at exit)."""
    with _lock:
        directory = _marker_dirs.get(os.getpid())
        if directory is None:
            directory = _marker_dirs[os.getpid()] = tempfile.mkdtemp(prefix="questlearn-verified-")
            atexit.register(shutil.rmtree, directory, True)
        return directory


class ShardVerifier:
    """Compare shard files with their manifest entries (``bytes``, ``sha256``).

    Parameters
    ----------
    mode : str
        ``"once"`` (default): hash each file the first time this training run
        reads it. ``"off"``: trust the files (sizes are still checked).
    """

    def __init__(self, mode: str = "once"):
        if mode not in VERIFY_MODES:
            raise OptionError(f"verify must be one of {VERIFY_MODES}, got {mode!r}")
        self.mode = mode
        self.marker_dir = _private_marker_dir() if mode == "once" else None

    def check(self, path: Path, entry: dict) -> None:
        """Raise :class:`~questlearn.errors.IntegrityError` naming ``path`` unless it matches ``entry``.

        Parameters
        ----------
        path : Path
            The shard file about to be read.
        entry : dict
            Its manifest record: ``{"name", "bytes", "sha256"}`` and, for a
            ``.npy`` file, ``data_offset`` (where the hashed bytes start).
        """
        if self.mode == "off":
            return
        status = os.stat(path)
        if status.st_size != entry["bytes"]:
            raise IntegrityError(f"shard file {path} has {status.st_size} bytes, the manifest says {entry['bytes']}: "
                                 "it was changed or truncated after the split; run the split again into a new directory")
        offset = int(entry.get("data_offset", 0))
        key = f"{path}\0{status.st_size}\0{status.st_mtime_ns}\0{status.st_ino}\0{entry['sha256']}\0{offset}"
        if key in _verified:
            return
        marker = Path(self.marker_dir) / hashlib.sha256(key.encode("utf-8", "surrogateescape")).hexdigest()
        if marker.exists():
            _verified.add(key)
            return
        if offset:
            check_npy_header(path, offset)
            digest = sha256_of(path, offset)
        else:
            digest = sha256_of(path)
        if digest != entry["sha256"]:
            raise IntegrityError(f"shard file {path} does not match the SHA-256 recorded in the manifest "
                                 f"(recorded {entry['sha256'][:16]}..., found {digest[:16]}...): it was damaged, edited "
                                 "or swapped with another file after the split; run the split again into a new directory")
        _verified.add(key)
        try:
            marker.touch()
        except OSError:
            pass  # the training process has exited or cleaned up: only this process remembers
