"""Where a split writes: a folder on this disk, or a prefix in an object store staged on this disk.

:func:`open_output` returns a :class:`LocalOutput` (every hook a no-op: shards
are renamed in place when published) or a :class:`RemoteOutput` (shards are
written in a local staging folder, uploaded, checked against their SHA-256,
and ``manifest.json`` is uploaded last). The splitter calls the same hooks
on both (docs/architecture.md, "Object storage").
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

from ..errors import IntegrityError, OptionError, StorageError
from ._remote_store import RemoteStore
from .storage import URL, locate

#: Bytes read or sent at a time while uploading a file or reading an object back.
TRANSFER_BLOCK = 8 << 20


def output_is_url(out) -> bool:
    """Whether ``out`` names a place in a store (a URL other than ``file://``), not a path on this machine."""
    match = URL.match(out) if isinstance(out, str) else None
    return bool(match) and match.group(1).lower() != "file"


def open_output(out, storage_options: dict | None = None, staging_dir=None):
    """Where a split writes: a :class:`LocalOutput` (a folder on this disk) or a :class:`RemoteOutput`
    (a prefix in an object store, its shards written first in a local staging folder).

    ``staging_dir`` is the staging folder of a store's output (default:
    ``$XDG_CACHE_HOME``, else ``~/.cache``, then ``questlearn/staging/`` and
    a hash of the output's URL); a local output takes none.
    """
    store, place = locate(str(out) if isinstance(out, Path) else out, storage_options)
    if not store.remote:
        if staging_dir is not None:
            raise OptionError("--staging-dir is for an output in an object store (s3://...); a local output folder "
                              "is written in place: leave it out")
        return LocalOutput(Path(out))
    if staging_dir is None:
        cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        staging_dir = Path(cache) / "questlearn" / "staging" / hashlib.sha256(place.encode()).hexdigest()[:16]
    return RemoteOutput(store, place, Path(staging_dir))


class LocalOutput:
    """A split written in place, in a folder of this disk: nothing to upload, every hook a no-op."""

    checkpoint_each_wave = False  # a local checkpoint costs a sync: made every so many bytes of source only
    remote = False

    def __init__(self, folder: Path):
        self.folder, self.shown = Path(folder), str(folder)

    def check_apart(self, sources) -> None:
        """Paths are checked by :func:`questlearn.split._output.check_output_apart`."""

    def disk_need(self, total: int, one_wave: int) -> int:
        """Bytes this disk must hold: every shard."""
        return total

    def disk_note(self, needed: int, free: int) -> str:
        from .._sizes import human_size

        return f"{human_size(free)} free in {self.folder}"

    def stored_names(self):
        """None: the folder is the output itself."""
        return None

    def place(self, name: str) -> str:
        """The path of ``name`` in the output."""
        return str(self.folder / name)

    def exists(self, name: str) -> bool:
        return (self.folder / name).exists()

    def fetch_prefix(self, prefix: str) -> None:
        """Nothing to fetch: the folder is the output."""

    def fetch(self, name: str) -> None:
        """Nothing to fetch: the folder is the output."""

    def save(self, path: Path, name: str) -> None:
        """Nothing to upload: the file is in the output already."""

    def move(self, path: Path, name: str) -> None:
        """Nothing to do now: a local shard gets its final name when the split is published."""

    def save_pieces(self, name: str, ranges: list) -> bool:
        """False: a local shard needs no copies of its pieces (it is resumed from its own file)."""
        return False

    def fetch_pieces(self, path: Path, pieces: list) -> None:
        """Nothing to fetch: the shard's file is here."""

    def publish_file(self, partial: Path, name: str) -> None:
        """Give a closed shard's file its final name ``name`` (resumable: done already if it is there)."""
        final = self.folder / name
        if partial.exists():
            os.replace(partial, final)
        elif not final.exists():
            from ..errors import OutputFolderError

            raise OutputFolderError(f"{final} is missing; delete {self.folder} and split again")

    def publish_manifest(self, path: Path) -> None:
        """The manifest was written in place, atomically: published."""

    def delete(self, names) -> None:
        """Nothing in a store to delete."""

    def clear_staging(self, own, keep=()) -> None:
        """No staging folder."""


class RemoteOutput:
    """A split written to a prefix of an object store, through a local staging folder.

    A store cannot append to an object, and every shard of a wave grows until
    the wave closes, so the shards are written in the staging folder exactly
    as a local split writes them; a closed shard is uploaded, checked and
    deleted from the folder (:meth:`move`), so the folder holds one wave at a
    time. At each checkpoint the bytes the open shards gained since the
    last one are uploaded, all in one object (:meth:`save_pieces`), then the
    journal (:meth:`save`), so another machine resumes from the store alone.
    ``manifest.json`` is uploaded last (:meth:`publish_manifest`): a store
    has no rename, and the manifest is the commit point; readers ignore
    objects it does not list.

    Every upload is read back and its SHA-256 compared with the one computed
    while the file was sent (:meth:`_upload`). The store's own checksum is not
    used: pyarrow neither asks for nor returns S3's ``x-amz-checksum-sha256``,
    an ETag is an MD5 only for single-part uploads without KMS, and GCS and
    Azure report other digests, so reading back is the one check that holds
    for every store; it costs one download of what was uploaded.
    """

    checkpoint_each_wave = True  # a wave's shards are safe only once uploaded: a checkpoint as each closes
    remote = True

    def __init__(self, store: RemoteStore, url: str, staging: Path):
        self.store, self.url, self.folder = store, url.rstrip("/"), Path(staging)
        self.shown = self.url

    def place(self, name: str) -> str:
        return f"{self.url}/{name}"

    def check_apart(self, sources) -> None:
        """Refuse an output prefix that is, holds or lies inside an object of the source."""
        from ..errors import OutputFolderError

        for item in sources if isinstance(sources, (list, tuple)) else [sources]:
            match = URL.match(str(item))
            if not match or not self.url.startswith(self.store.root) or not str(item).startswith(self.store.root):
                continue
            source = str(item).rstrip("/")
            fixed = re.split(r"[*?\[]", source, maxsplit=1)[0].rstrip("/")  # a glob: the prefix before its pattern
            if self.url == source or self.url.startswith(fixed + "/") or source.startswith(self.url + "/"):
                raise OutputFolderError(f"the output {self.url} overlaps the source {item}; split never writes over "
                                        "or among its input: name a new prefix for the shards")

    def disk_need(self, total: int, one_wave: int) -> int:
        """Bytes the staging folder's disk must hold: one wave of shards (all of them, if fewer)."""
        return min(total, one_wave)

    def disk_note(self, needed: int, free: int) -> str:
        from .._sizes import human_size

        return (f"uploaded to {self.url}; the staging folder {self.folder} holds one wave of them at a time, about "
                f"{human_size(needed)}: {human_size(free)} free there")

    # -- listing and fetching ------------------------------------------------
    def stored_names(self) -> list:
        """The names (relative to the prefix) of every object under it."""
        import pyarrow.fs as pafs

        path = self.store._path(self.url)
        selector = pafs.FileSelector(path, recursive=True, allow_not_found=True)
        infos = self.store._call(self.url, lambda: self.store.filesystem.get_file_info(selector))
        return sorted(i.path[len(path):].lstrip("/") for i in infos if i.type == pafs.FileType.File)

    def exists(self, name: str) -> bool:
        return self.store.kind(self.place(name)) == "file"

    def fetch_prefix(self, prefix: str) -> None:
        """Download every object under ``prefix`` to the same names in the staging folder."""
        for name in self.stored_names():
            if name.startswith(prefix.rstrip("/") + "/"):
                self.fetch(name)

    def fetch(self, name: str) -> None:
        """Download the object ``name`` to the same name in the staging folder."""
        target = self.folder / name
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(target, "wb") as handle:
            self._download(self.place(name), handle)

    def fetch_pieces(self, path: Path, pieces: list) -> None:
        """Rebuild an open shard's staged file from its pieces ``[(object name, offset in it, start, end)]``."""
        from ..errors import OutputFolderError

        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as handle:
            for name, offset, start, end in pieces:
                url = self.place(name)
                opened = self.open_piece(url)
                if handle.tell() != start or opened.size() < offset + end - start:
                    raise OutputFolderError(f"{url} does not hold the piece of {path.name} the split's journal "
                                            f"records; delete {self.url} and split again")
                for at in range(offset, offset + end - start, TRANSFER_BLOCK):
                    size = min(TRANSFER_BLOCK, offset + end - start - at)
                    handle.write(self.store._call(url, lambda: opened.read_at(size, at)))

    def open_piece(self, url: str):
        return self.store.open_random(url)
    def _download(self, url: str, handle) -> int:
        stream = self.store.open_stream(url, 0, url)
        try:
            buffer, total = bytearray(TRANSFER_BLOCK), 0
            while got := stream.readinto(buffer):
                handle.write(memoryview(buffer)[:got])
                total += got
        finally:
            stream.close()
        return total

    # -- uploading -------------------------------------------------------------
    def save(self, path: Path, name: str) -> None:
        """Upload the file ``path`` as ``name``, checked (the staged file stays)."""
        self._upload([(path, 0, path.stat().st_size)], name)

    def move(self, path: Path, name: str) -> None:
        """Upload a closed shard's file as ``name``, checked, then delete it from the staging folder."""
        self.save(path, name)
        path.unlink()

    def save_pieces(self, name: str, ranges: list) -> bool:
        """Upload bytes ``start:end`` of each ``(path, start, end)`` of ``ranges``, one after the other, as the
        one object ``name``, checked (one request for all the open shards' new bytes of a checkpoint)."""
        self._upload(ranges, name)
        return True

    def publish_file(self, partial: Path, name: str) -> None:
        """Upload a closed shard still in the staging folder as ``name``; one moved earlier must be in the store."""
        if partial.exists():
            self.move(partial, name)
        elif self.store.kind(self.place(name)) != "file":
            from ..errors import OutputFolderError

            raise OutputFolderError(f"{self.place(name)} is missing; delete {self.url} and split again")

    def publish_manifest(self, path: Path) -> None:
        """Upload ``manifest.json`` (the commit point: after every shard it names is in the store)."""
        self.save(path, path.name)

    def _upload(self, ranges: list, name: str) -> None:
        """Send bytes ``start:end`` of each ``(path, start, end)`` as the object ``name``, then read it back
        and compare SHA-256s."""
        url = self.place(name)
        sent = hashlib.sha256()

        def send():
            with self.store.filesystem.open_output_stream(self.store._path(url), compression=None) as target:
                for path, start, end in ranges:
                    with open(path, "rb") as source:
                        source.seek(start)
                        left = end - start
                        while left:
                            piece = source.read(min(TRANSFER_BLOCK, left))
                            if not piece:
                                raise OSError(f"{path} ended {left} bytes early")
                            sent.update(piece)
                            target.write(piece)
                            left -= len(piece)

        self.store._call(url, send)
        back = self.store.sha256(url)
        if back != sent.hexdigest():
            raise IntegrityError(f"{url} does not read back as uploaded (SHA-256 {back[:12]}..., sent "
                                 f"{sent.hexdigest()[:12]}...): the upload was damaged; run the same command again")

    def delete(self, names) -> None:
        """Delete the objects ``names`` (relative to the prefix); missing ones are fine."""
        for name in names:
            url = self.place(name)
            try:
                self.store._call(url, lambda: self.store.filesystem.delete_file(self.store._path(url)))
            except StorageError:
                if self.store.kind(url) != "missing":
                    raise

    def clear_staging(self, own, keep=()) -> None:
        """Empty the staging folder of what ``own(relative name)`` says is the split's (but the names in
        ``keep``); refuse anything else."""
        from ..errors import OutputFolderError

        if not self.folder.is_dir():
            return
        entries = [p for p in self.folder.rglob("*") if p.is_file()]
        foreign = [str(p.relative_to(self.folder)) for p in entries if not own(str(p.relative_to(self.folder)))]
        if foreign:
            raise OutputFolderError(f"the staging folder {self.folder} holds other files ({sorted(foreign)[:3]}); "
                                    "name an empty or new folder with --staging-dir")
        for path in entries:
            if str(path.relative_to(self.folder)) not in keep:
                path.unlink()
        for folder in sorted((p for p in self.folder.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
            if not any(folder.iterdir()):
                folder.rmdir()
