"""The file of a training backup, ``backup/state.npz``: read it, or say it is damaged.

:class:`~questlearn.resume.TrainingBackup` writes the state to
``.state.npz.PID.partial`` and renames it to ``state.npz``, so a kill leaves
the old or the new state, and at worst a partial file, which the next start
or save removes (:func:`remove_stale_partials`). A ``state.npz`` damaged
some other way (cut short, emptied, bits flipped on the disk) stops
training with one line that names it and says to delete ``backup/`` to
start over (:class:`DamagedBackupError`): every array's CRC-32 is checked.
"""

from __future__ import annotations

import json
import os
import re
import zipfile
import zlib
from pathlib import Path

import numpy as np

from .._orphans import is_running
from ..errors import ModelFileError

STATE_FILE = "state.npz"
FORMAT = 1
PARTIAL_NAME = re.compile(re.escape(f".{STATE_FILE}.") + r"([0-9]+)\.partial")  # what TrainingBackup._save writes


class BackupState:
    """A loaded ``state.npz``: where training stopped and the saved arrays."""

    def __init__(self, meta: dict, arrays: dict):
        self.meta, self.arrays = meta, arrays

    @property
    def epoch(self) -> int:
        """The epoch to continue (the interrupted one, or the next after a finished one)."""
        return int(self.meta["epoch"])

    @property
    def batches_done(self) -> int:
        """Batches of :attr:`epoch` already trained on (0: start it from its beginning)."""
        return int(self.meta["batches_done"])

    def group(self, name: str) -> list[np.ndarray]:
        count = int(self.meta["counts"][name])
        return [self.arrays[f"{name}_{i}"] for i in range(count)]


class DamagedBackupError(ModelFileError):
    """``backup/state.npz`` cannot be read (cut short, emptied, bits flipped, written by something else)."""


# What reading a damaged state.npz raises: zipfile and numpy on a broken archive (a bad CRC-32 included),
# json on a broken meta record, KeyError for a missing array; anything else is a bug and keeps its traceback.
_DAMAGE = (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError, KeyError)


def load_backup(backup_dir) -> BackupState | None:
    """The state saved in ``backup_dir``, or ``None`` when there is none.

    Partial states left by saves that were killed are removed first
    (:func:`remove_stale_partials`). A state that cannot be read raises
    :class:`DamagedBackupError`, one line naming the file and saying to
    delete ``backup_dir`` to start over.
    """
    remove_stale_partials(backup_dir)
    path = Path(backup_dir) / STATE_FILE
    if not path.exists():
        return None
    try:
        arrays, meta = _read_state(path)
    except PermissionError:  # not damage: deleting the backup is not the fix
        raise
    except _DAMAGE as error:
        reason = " ".join(f"{type(error).__name__}: {error}".split())  # one line
        raise DamagedBackupError(f"the training backup {path} is damaged and cannot be resumed from ({reason}); "
                                 f"delete the directory {Path(backup_dir)} to start training over") from None
    if meta.get("format") != FORMAT:
        raise ModelFileError(f"{path} was written by another questlearn version (format {meta.get('format')}); "
                         f"delete the directory {Path(backup_dir)} to start training over")
    return BackupState(meta, arrays)


_META_KEYS = ("epoch", "batches_done", "epoch_seconds", "seed", "batch_size", "shuffle", "counts", "watched")


def _read_state(path: Path) -> tuple[dict, dict]:
    """The arrays and the meta record of ``state.npz``, every array read (so its CRC-32 checked) and listed."""
    # A flipped bit in a zip header can ask for a feature numpy never writes (encryption, another compression,
    # a later zip version): refused here as damage, not attempted.
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
    except NotImplementedError as error:  # zipfile: "zip file version 17.3"
        raise zipfile.BadZipFile(str(error)) from None
    for member in members:
        if member.flag_bits & 0x61 or member.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise zipfile.BadZipFile(f"member {member.filename!r} has flags {member.flag_bits:#x} and compression "
                                     f"{member.compress_type}, which numpy never writes")
    with np.load(path, allow_pickle=False) as stored:
        arrays = {key: stored[key] for key in stored.files}
    meta = json.loads(str(arrays.pop("meta")))
    if not isinstance(meta, dict):
        raise ValueError(f"the meta record is a {type(meta).__name__}, not an object")
    if meta.get("format") == FORMAT:
        absent = [key for key in _META_KEYS if key not in meta]
        if absent:
            raise KeyError(f"the meta record lacks {absent}")
        counts = meta.get("counts")
        numbers = [meta.get("epoch"), meta.get("batches_done"), *(counts.values() if isinstance(counts, dict) else [None])]
        if not all(isinstance(number, int) and number >= 0 for number in numbers):
            raise ValueError("the meta record lacks the epoch, the batches done or the array counts")
        for name, count in counts.items():
            missing = [f"{name}_{i}" for i in range(count) if f"{name}_{i}" not in arrays]
            if missing:
                raise KeyError(f"arrays {missing[:3]} are missing")
    return arrays, meta


def remove_stale_partials(backup_dir) -> list[Path]:
    """Delete the partial states of saves that were killed before their rename; return them.

    Only files named as :meth:`TrainingBackup._save` names them, and not those
    of a process still running (another save in progress).
    """
    removed = []
    try:
        entries = list(Path(backup_dir).iterdir())
    except (FileNotFoundError, NotADirectoryError):
        return removed
    for entry in entries:
        match = PARTIAL_NAME.fullmatch(entry.name)
        if match is None or (int(match.group(1)) != os.getpid() and is_running(int(match.group(1)))):
            continue
        try:
            entry.unlink()
            removed.append(entry)
        except FileNotFoundError:
            pass
    return removed
