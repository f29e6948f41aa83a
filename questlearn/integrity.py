"""Check shard files against the SHA-256 their manifest recorded, once.

A size check (done by :func:`questlearn.manifest.load_manifest`) misses
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
"""

from __future__ import annotations

import atexit
import hashlib
import os
import shutil
import tempfile
import threading
from pathlib import Path

from .manifest import sha256_of

VERIFY_MODES = ("once", "off")

_verified = set()
_lock = threading.Lock()
_marker_dirs = {}  # owner pid -> private directory of "verified" markers


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
            raise ValueError(f"verify must be one of {VERIFY_MODES}, got {mode!r}")
        self.mode = mode
        self.marker_dir = _private_marker_dir() if mode == "once" else None

    def check(self, path: Path, entry: dict) -> None:
        """Raise ``ValueError`` naming ``path`` unless it matches ``entry``.

        Parameters
        ----------
        path : Path
            The shard file about to be read.
        entry : dict
            Its manifest record: ``{"name", "bytes", "sha256"}``.
        """
        if self.mode == "off":
            return
        status = os.stat(path)
        if status.st_size != entry["bytes"]:
            raise ValueError(f"shard file {path} has {status.st_size} bytes, the manifest says {entry['bytes']}: "
                             "it was changed or truncated after the split; run the split again into a new directory")
        key = f"{path}\0{status.st_size}\0{status.st_mtime_ns}\0{status.st_ino}\0{entry['sha256']}"
        if key in _verified:
            return
        marker = Path(self.marker_dir) / hashlib.sha256(key.encode("utf-8", "surrogateescape")).hexdigest()
        if marker.exists():
            _verified.add(key)
            return
        digest = sha256_of(path)
        if digest != entry["sha256"]:
            raise ValueError(f"shard file {path} does not match the SHA-256 recorded in the manifest "
                             f"(recorded {entry['sha256'][:16]}..., found {digest[:16]}...): it was damaged, edited "
                             "or swapped with another file after the split; run the split again into a new directory")
        _verified.add(key)
        try:
            marker.touch()
        except OSError:
            pass  # the training process has exited or cleaned up: only this process remembers
