"""A model directory in an object store (``--model-dir s3://bucket/prefix``): trained locally, kept in the store.

A store cannot append to an object and has no rename, so training writes
the model directory exactly as it writes a local one, in a local *staging
folder* (``--staging-dir``; by default ``$XDG_CACHE_HOME/questlearn/models/``
and a hash of the URL, ``~/.cache`` without ``XDG_CACHE_HOME``), and
:class:`StoredModelDir` copies it to the store:

- **Each backup** (:class:`~questlearn.train._resume.TrainingBackup`: every
  epoch end, and every ``--save-every-batches`` / ``--save-every-minutes``
  inside an epoch), as soon as it is written: ``state.npz`` and, when they
  changed, ``history.csv`` and ``best.keras``, each under a new numbered
  name in ``backup/`` (``backup/state-000007.npz``), each read back and
  checked, then the small ``backup/pointer.json`` naming them with their size
  and SHA-256 (the commit point: an object store has no rename, so a reader
  follows the pointer and never meets a half-written state). The objects the
  new pointer no longer names are then deleted.
- **The final files** when training ends: ``history.json`` is deleted first,
  then ``best.keras``, ``history.csv``, ``model.keras``, ``inference.json``,
  ``saved_model/`` and ``inference.keras`` are uploaded, ``history.json``
  last (a reader takes the folder as finished once it is there), and then
  ``backup/`` is deleted.

A run started with a URL whose ``backup/pointer.json`` exists downloads the
files it names into an emptied staging folder, each checked against its
size and SHA-256, and resumes from them exactly as from a local backup: on
this machine or any other. A URL without a backup is trained afresh, as a
local folder is (a finished model there is trained over).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

from ..errors import IntegrityError, OptionError, OutputFolderError, StorageError
from ..io.outputs import RemoteOutput, output_is_url
from ..io.storage import locate
from ..manifest._files import sha256_of
from ._backup_file import STATE_FILE, DamagedBackupError

POINTER = "backup/pointer.json"
MARKER = ".questlearn-model-staging"  # says the staging folder is questlearn's: its content may be replaced
HISTORY = "history.json"  # uploaded last: a reader takes the model folder as finished once it is there
#: The files of a backup besides ``backup/state.npz``: the history so far and the best model so far.
COMPANIONS = ("history.csv", "best.keras")
#: Final files uploaded in this order (what else the staging folder holds comes before ``inference.keras``).
FIRST = ("best.keras", "history.csv", "model.keras", "inference.json")
LAST = ("inference.keras", HISTORY)
POINTER_BYTES = 1 << 20


def default_staging_dir(url: str) -> Path:
    """``$XDG_CACHE_HOME`` (else ``~/.cache``) ``/questlearn/models/<hash of the URL>``."""
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(cache) / "questlearn" / "models" / hashlib.sha256(url.rstrip("/").encode()).hexdigest()[:16]


def open_model_dir(model_dir, storage_options: dict | None = None, staging_dir=None, verbose: int = 1):
    """Where training writes: a :class:`LocalModelDir` (a folder of this disk) or a
    :class:`StoredModelDir` (a prefix in a store, written through a staging folder).

    Raises
    ------
    OptionError
        ``staging_dir`` for a local model folder.
    """
    if not output_is_url(str(model_dir) if isinstance(model_dir, Path) else model_dir):
        if staging_dir is not None:
            raise OptionError("--staging-dir is for a --model-dir in an object store (s3://...); a local model "
                              "folder is written in place: leave it out")
        return LocalModelDir(Path(model_dir))
    store, url = locate(model_dir, storage_options)
    url = url.rstrip("/")
    staging = Path(staging_dir) if staging_dir is not None else default_staging_dir(url)
    return StoredModelDir(RemoteOutput(store, url, staging), verbose=verbose)


class LocalModelDir:
    """A model folder on this disk: training writes in place; nothing to fetch or upload."""

    url = None

    def __init__(self, folder: Path):
        self.folder = Path(folder)

    def prepare(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)

    def backup_saved(self) -> None:
        """Nothing to upload."""

    def publish(self) -> None:
        """Nothing to upload."""


class StoredModelDir:
    """A model folder in an object store, written in the local staging folder :attr:`folder` (see the module)."""

    def __init__(self, output: RemoteOutput, verbose: int = 1):
        self.output, self.url, self.folder, self.verbose = output, output.url, output.folder, verbose
        self.pointer = None  # the last backup pointer uploaded or downloaded
        self._sent = {}  # local name -> (size, mtime_ns, object name) of what the pointer holds now

    # -- starting ----------------------------------------------------------------
    def prepare(self) -> None:
        """Empty the staging folder, then download the store's backup into it (if there is one), checked.

        Raises
        ------
        OutputFolderError
            The staging folder holds files that are not questlearn's.
        DamagedBackupError
            The backup in the store does not match its pointer (size, SHA-256) or the pointer is unreadable.
        StorageError
            The store failed (one line naming the object).
        """
        self._empty_staging()
        self.pointer = self._read_pointer()
        if self.verbose:
            print(f"questlearn: the model folder {self.url} is written in the local staging folder {self.folder} "
                  "and uploaded: each backup as it is saved, the final files at the end", flush=True)
        if self.pointer is None:
            return
        for local, entry in self.pointer["files"].items():
            self._download(entry, local)
            self._sent[local] = (*_mark(self.folder / local), entry["object"])
        if self.verbose:
            print(f"questlearn: downloaded the backup in {self.url}/backup/ (save {self.pointer['save']}), "
                  "its files checked against their SHA-256", flush=True)

    def _empty_staging(self) -> None:
        folder = self.folder
        if folder.exists():
            if not folder.is_dir() or (any(folder.iterdir()) and not (folder / MARKER).is_file()):
                raise OutputFolderError(f"the staging folder {folder} holds files that are not questlearn's; name an "
                                        "empty or new folder with --staging-dir")
            shutil.rmtree(folder)
        folder.mkdir(parents=True)
        (folder / MARKER).write_text(self.url + "\n", encoding="utf-8")

    def _read_pointer(self) -> dict | None:
        url = self.output.place(POINTER)
        if self.output.store.kind(url) != "file":
            return None
        try:
            pointer = json.loads(self.output.store.read_small(url, POINTER_BYTES))
            files = pointer["files"]
            if not isinstance(pointer["save"], int) or f"backup/{STATE_FILE}" not in files or not all(
                    {"object", "bytes", "sha256"} <= set(entry) for entry in files.values()):
                raise ValueError("it lacks the save number, the state or an entry's object, bytes or sha256")
        except (ValueError, KeyError, TypeError) as error:
            raise DamagedBackupError(f"the training backup's pointer {url} cannot be read ({type(error).__name__}: "
                                     f"{' '.join(str(error).split())[:160]}); delete {self.url}/backup/ to start "
                                     "training over") from None
        return pointer

    def _download(self, entry: dict, local: str) -> None:
        target = self.folder / local
        target.parent.mkdir(parents=True, exist_ok=True)
        url = self.output.place(entry["object"])
        try:
            self.output.store.fetch(url, target, {"bytes": entry["bytes"], "sha256": entry["sha256"]})
        except IntegrityError:
            raise DamagedBackupError(f"the training backup {url} does not match the size and SHA-256 its pointer "
                                     f"{self.output.place(POINTER)} records; delete {self.url}/backup/ to start "
                                     "training over") from None
        except StorageError as error:
            if self.output.store.kind(url) == "missing":
                raise DamagedBackupError(f"the training backup {url}, named by {self.output.place(POINTER)}, is "
                                         f"missing; delete {self.url}/backup/ to start training over") from None
            raise error

    # -- while training ----------------------------------------------------------
    def backup_saved(self) -> None:
        """Upload the backup just saved in the staging folder: its changed files, then the pointer naming them."""
        save = (self.pointer["save"] + 1) if self.pointer else 1
        files = {}
        for local in (f"backup/{STATE_FILE}", *COMPANIONS):
            path = self.folder / local
            if not path.is_file():
                continue
            size, mtime, name = self._sent.get(local, (None, None, None))
            if local.startswith("backup/") or (size, mtime) != _mark(path):
                stem, dot, suffix = Path(local).name.partition(".")
                name = f"backup/{stem}-{save:06d}{dot}{suffix}"
                self.output.save(path, name)  # read back and checked
            files[local] = {"object": name, "bytes": path.stat().st_size, "sha256": sha256_of(path)}
            self._sent[local] = (*_mark(path), name)
        pointer = {"save": save, "files": files}
        staged = self.folder / "backup" / ".pointer.json"
        staged.write_text(json.dumps(pointer, indent=1) + "\n", encoding="utf-8")
        self.output.save(staged, POINTER)  # the commit point of this backup
        staged.unlink()
        kept = {entry["object"] for entry in files.values()} | {POINTER}
        self.output.delete([name for name in self.output.stored_names()
                            if name.startswith("backup/") and name not in kept])
        self.pointer = pointer

    # -- at the end ----------------------------------------------------------------
    def publish(self) -> None:
        """Upload the finished model folder, ``history.json`` last, then delete the backup in the store."""
        self.output.delete([HISTORY])  # a reader never takes a half-replaced folder for a finished one
        staged = sorted(str(p.relative_to(self.folder)) for p in self.folder.rglob("*") if p.is_file())
        staged = [name for name in staged if name != MARKER and not name.startswith("backup/")]
        middle = [name for name in staged if name not in FIRST + LAST]
        for name in [*(n for n in FIRST if n in staged), *middle, *(n for n in LAST if n in staged)]:
            self.output.save(self.folder / name, name)
        self.output.delete([name for name in self.output.stored_names() if name.startswith("backup/")])
        if self.verbose:
            print(f"questlearn: uploaded the model folder to {self.url} ({len(staged)} files, {HISTORY} last); "
                  f"the local copy stays in {self.folder}", flush=True)


def _mark(path: Path) -> tuple:
    """What tells a file changed since it was uploaded: its size and modification time."""
    stat = path.stat()
    return stat.st_size, stat.st_mtime_ns


#: What ``predict``, ``evaluate``, ``export`` and ``plot`` read of a finished model folder.
SERVED = ("inference.json", "inference.keras", "model.keras", HISTORY)


def fetch_model_dir(url: str, storage_options: dict | None = None) -> Path:
    """A local copy of the finished model folder at ``url``: its served files (:data:`SERVED`) downloaded into
    ``$XDG_CACHE_HOME/questlearn/served-models/<hash of the URL>`` (``~/.cache`` without ``XDG_CACHE_HOME``).

    Raises
    ------
    ModelFileError
        ``url`` holds no finished model (no ``history.json``: training never ended there).
    StorageError
        The store failed (one line naming the object).
    """
    from ..errors import ModelFileError

    store, url = locate(url, storage_options)
    url = url.rstrip("/")
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    folder = Path(cache) / "questlearn" / "served-models" / hashlib.sha256(url.encode()).hexdigest()[:16]
    output = RemoteOutput(store, url, folder)
    names = set(output.stored_names())
    if HISTORY not in names:
        raise ModelFileError(f"{url} holds no finished model (no {HISTORY}, which training uploads last): train one "
                             f"there with questlearn train SPLIT --model-dir {url}, or wait for that training to end")
    folder.mkdir(parents=True, exist_ok=True)
    for name in SERVED:
        (folder / name).unlink(missing_ok=True)  # nothing left from another model once under this URL
        if name in names:
            output.fetch(name)
    return folder
