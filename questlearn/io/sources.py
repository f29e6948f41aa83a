"""What a split reads: one file, several, a directory, a glob; plain, compressed or Parquet.

:func:`resolve_sources` turns what the user passed into an ordered list of
:class:`SourceFile` objects, refusing what cannot be read safely (an
unfinished Spark/Hadoop output directory, a mix of CSV and Parquet, an empty
directory). :func:`open_decoded` opens one file as a stream of its
*decompressed* bytes that also hashes the raw bytes read, stops at the size
the file had when the split started, and reports how far into the raw file
it is (for progress bars that count compressed bytes).

Compression is detected by magic bytes, never by file name: gzip, bz2 and
zstd are decoded by pyarrow's codecs, xz by the standard library's
``lzma``; no extra dependency is needed. A ZIP archive is one file of the
source per CSV member (:mod:`questlearn.io._zip`), each streamed like a
compressed file. Formats questlearn does not read (7-Zip, tar, PDF,
SQLite...) are recognised the same way and refused, naming what the file
looks like. A dangling symbolic link, or a glob
over the ``part-*`` files of an unfinished Spark job, is refused like the
unfinished directory itself; an empty file (0 bytes, or compressed data
that decompresses to nothing) is kept in the list (and skipped by the
readers, like a header-only file).

Every path may also be a URL of an object store (``s3://bucket/logs/``,
a glob such as ``s3://bucket/logs/*.csv.gz``): :mod:`questlearn.io.storage`
lists, stats and reads it, by ranged reads, the same rules applied.
"""

from __future__ import annotations

import hashlib
import io
import lzma
import zipfile
import zlib
from dataclasses import dataclass, field, replace
from pathlib import Path

from ..errors import InputFormatError, IntegrityError, OptionError
from ._magic import (
    COMPRESSION_MAGIC,
    FOREIGN_MAGIC,
    PARQUET_MAGIC,
    ZIP_MAGIC,
    ignored_name,
)
from ._places import GLOB_CHARACTERS
from .storage import LOCAL, locate


@dataclass(frozen=True)
class ZipMember:
    """One member of a ZIP archive as a source item (what a part of a parallel split reads).

    Attributes
    ----------
    archive : str
        The archive's path or URL.
    member : str
        The member's name in it.
    """

    archive: str
    member: str


@dataclass(frozen=True)
class SourceFile:
    """One input file of a split.

    Attributes
    ----------
    path : Path or str
        Absolute path, or the object's URL in a store.
    name : str
        Name relative to the source given (for messages and the manifest).
    format : str
        ``"csv"`` or ``"parquet"``.
    compression : str or None
        ``"gzip"``, ``"bz2"``, ``"xz"``, ``"zstd"``, ``"zip"`` (a member of a
        ZIP archive), or None.
    bytes : int
        Size on disk when the split started; reading stops there (a ZIP
        member: its stored, compressed size).
    mtime_ns : int
        Modification time when the split started.
    shown : str
        The path as the user gave it, for error messages (a ZIP member:
        ``archive.zip:member.csv``).
    member : str or None
        The member's name inside the ZIP archive ``path``.
    archive_bytes : int or None
        The ZIP archive's size when the split started.
    etag : str or None
        An object's ETag (or GCS generation) when the split started: it
        changes when the object is replaced; None for a local file.
    store : LocalStore or RemoteStore
        Where the bytes are read (:mod:`questlearn.io.storage`).
    decodes_to_nothing : bool
        Compressed data that decompresses to zero bytes (an empty ``.gz``):
        :attr:`empty`, like a 0-byte file.
    recorded_size : int or None
        The uncompressed size the file records of itself (a ZIP member: the
        size in the archive's directory), or None (gzip and the others
        record none that can be trusted: see :attr:`decoded_bytes`).
    """

    path: Path | str
    name: str
    format: str
    compression: str | None
    bytes: int
    mtime_ns: int
    shown: str = ""
    member: str | None = None
    archive_bytes: int | None = None
    etag: str | None = None
    store: object = field(default=LOCAL, repr=False, compare=False)
    decodes_to_nothing: bool = False
    recorded_size: int | None = None

    def decoded_bytes(self, ratio: float) -> float:
        """The file's bytes once decompressed: its size when plain, the
        :attr:`recorded_size` when it has one, else its size times ``ratio``
        (decoded bytes per stored byte, as measured or guessed)."""
        if self.compression is None:
            return self.bytes
        return self.recorded_size if self.recorded_size is not None else self.bytes * ratio

    @property
    def empty(self) -> bool:
        """Whether the file holds no data: 0 bytes, or compressed data that
        decompresses to none (the readers skip it, like a header-only file)."""
        return not self.bytes or self.decodes_to_nothing

    def fingerprint(self) -> dict:
        return {"name": self.name, "path": str(self.path), "bytes": self.bytes, "mtime_ns": self.mtime_ns,
                "compression": self.compression, **self.member_record(),
                **({} if self.etag is None else {"etag": self.etag})}

    def member_record(self) -> dict:
        """What names a ZIP member in a record (its name, the archive's size); empty for a file."""
        return {} if self.member is None else {"member": self.member, "archive_bytes": self.archive_bytes}

    def describe(self) -> str:
        return self.name if self.compression is None else f"{self.name} ({self.compression})"


def _detect(store, path, shown=None) -> tuple[str, str | None]:
    """``(format, compression)`` of a file, from its first bytes; formats questlearn does not read are refused."""
    try:
        head = store.read_range(path, 0, 512)
    except OSError as error:
        raise InputFormatError(f"cannot read {shown or path}: {error.strerror or error}") from None
    for offset, magic, what, fix in FOREIGN_MAGIC:
        if head[offset:offset + len(magic)] == magic:
            raise InputFormatError(f"{shown or path} looks like {what} (by its first bytes), not CSV or Parquet: {fix}")
    if head.startswith(PARQUET_MAGIC):
        return "parquet", None
    if head.startswith(ZIP_MAGIC):
        return "csv", "zip"
    for magic, compression in COMPRESSION_MAGIC:
        if head.startswith(magic):
            return "csv", compression
    return "csv", None


def _check_finished(folder, names: set) -> None:
    """Refuse the part-* files of a Spark or Hadoop job that is still writing, or did not finish
    (``names``: the entries of ``folder``)."""
    if "_temporary" in names:
        raise InputFormatError(f"{folder} holds _temporary/: a Spark or Hadoop job is still writing it (or died while "
                         "writing); wait for the job to finish, or re-run it")
    if "_SUCCESS" not in names:
        raise InputFormatError(f"{folder} holds part-* files but no _SUCCESS marker: the Spark or Hadoop job that wrote "
                         "it did not finish, so parts may be missing; re-run the job")


def _directory_files(store, folder) -> list:
    entries = store.children(folder)
    names = {store.name(p) for p, _ in entries}
    if any(name.startswith("part-") for name in names):
        _check_finished(folder, names)
    files, folders = [], []
    for entry, is_dir in entries:
        if ignored_name(store.name(entry)):
            continue
        (folders if is_dir else files).append(entry)
    if folders:
        raise OptionError(f"{folder} holds sub-directories ({', '.join(store.name(p) for p in folders[:3])}); "
                          "questlearn reads the files of one directory: pass the files or a glob such as "
                          "'dir/*/*.csv'")
    return files


def resolve_sources(source, storage_options: dict | None = None) -> list[SourceFile]:
    """The files that make up ``source``, in the order they are read.

    Parameters
    ----------
    source : str, Path, ZipMember, or a list of them
        A file (a ZIP archive: its CSV members, see :mod:`questlearn.io._zip`);
        a directory (its files in name order, skipping hidden files,
        ``_``-prefixed files and ``.crc`` files); a glob pattern (matches in
        name order, with the same files skipped); or a list of any of these,
        read in the order given. Each may be an object store's URL
        (``s3://bucket/logs/``: an object, a prefix or a glob).
    storage_options : dict, optional
        Options of the object store's filesystem (:mod:`questlearn.io.storage`).

    Returns
    -------
    list of SourceFile

    Raises
    ------
    OptionError
        Nothing to read, a path that does not exist, a sub-directory, a file
        named twice.
    InputFormatError
        An unfinished Spark/Hadoop output directory, a format questlearn
        does not read, a dangling link, CSV and Parquet files mixed, or a
        ZIP archive without a readable CSV member (:func:`questlearn.io._zip.member_sources`).
    StorageError
        An object store that cannot be reached or refuses the credentials,
        or a missing bucket.
    """
    items = list(source) if isinstance(source, (list, tuple)) else [source]
    if not items:
        raise OptionError("no source given: pass a file, a directory, a glob or a list of files")
    wanted = {locate(i.archive, storage_options)[1]: i.member for i in items if isinstance(i, ZipMember)}
    items = [i.archive if isinstance(i, ZipMember) else i for i in items]
    paths: list = []  # (store, file, what its name is relative to, the item it came from)
    for item in items:
        store, item_path = locate(item, storage_options)
        kind = store.kind(item_path)
        if kind == "dir":
            paths += [(store, p, item_path, item_path) for p in _directory_files(store, item_path)]
        elif kind == "file":
            paths.append((store, item_path, store.parent(item_path), item_path))
        elif GLOB_CHARACTERS & set(str(item)):
            matches = [m for m in store.glob(item_path) if not ignored_name(store.name(m))]
            if not matches:
                raise OptionError(f"the pattern {str(item)!r} matches no data file")
            for folder in sorted({store.parent(m) for m in matches if store.name(m).startswith("part-")}, key=str):
                _check_finished(folder, {store.name(p) for p, _ in store.children(folder)})  # as for the folder
            base = store.common_base(matches)
            paths += [(store, m, base, item_path) for m in matches]
        else:
            raise OptionError(f"source {item_path} does not exist (pass a file, a directory or a glob)")
    if not paths:
        raise OptionError(f"{items[0]} holds no data files (hidden, '_'-prefixed and .crc files are skipped)")
    files, seen = [], set()
    for store, path, base, item_path in paths:
        stat = store.stat(path)  # refuses a dangling link, or what is not a regular file
        if stat.where in seen:
            raise OptionError(f"{path} is named twice in the source; every file is read once")
        seen.add(stat.where)
        kind, compression = _detect(store, stat.where, path)
        if len(items) > 1:
            name = str(path)  # as listed
        elif path == item_path:
            name = store.name(path)  # a single file
        else:
            name = store.relative(path, base)  # inside the directory or glob given
        source_file = SourceFile(stat.where, name, kind, compression, stat.size, stat.mtime_ns, str(path),
                                 etag=stat.etag, store=store)
        if compression == "zip":
            from ._zip import member_sources

            files += member_sources(source_file, wanted.get(path))
        else:
            files.append(_with_emptiness(source_file))
    formats = {f.format for f in files if not f.empty}  # an empty file is skipped, whatever its name
    if formats == {"parquet"}:
        files = [replace(f, format="parquet") if f.empty else f for f in files]
    if len(formats) > 1:
        parquet = next(f for f in files if f.format == "parquet")
        raise InputFormatError(f"the source mixes CSV and Parquet files ({parquet.name} is Parquet); split them separately")
    return files


def _with_emptiness(source_file: SourceFile) -> SourceFile:
    """``source_file``, marked :attr:`~SourceFile.empty` when it is compressed data that decompresses to
    nothing (its first decoded byte is read; a damaged file is left for its reader to report)."""
    if source_file.compression is None or not source_file.bytes:
        return source_file
    stream = DecodedStream(source_file)
    try:
        nothing = not stream.read(1)
    except InputFormatError:
        return source_file
    finally:
        stream.close()
    return replace(source_file, decodes_to_nothing=nothing) if nothing else source_file


def single_file(path, storage_options: dict | None = None) -> SourceFile:
    """A :class:`SourceFile` for one path or URL (format and compression detected; a ZIP archive must hold one
    CSV member)."""
    store, path = locate(path, storage_options)
    if store.kind(path) != "file":
        raise OptionError(f"source {path} does not exist or is not a file")
    stat = store.stat(path)
    kind, compression = _detect(store, stat.where, path)
    source_file = SourceFile(stat.where, store.name(path), kind, compression, stat.size, stat.mtime_ns, str(path),
                             etag=stat.etag, store=store)
    if compression != "zip":
        return _with_emptiness(source_file)
    from ._zip import member_sources

    members = member_sources(source_file)
    if len(members) > 1:
        raise OptionError(f"{path} holds {len(members)} CSV members; read it as a source (resolve_sources) to read "
                          "them all")
    return members[0]


def check_unchanged(source_file: SourceFile) -> None:
    """Refuse a file that changed (size, modification time, or an object's ETag) while it was read."""
    stat = source_file.store.stat(source_file.path)
    size = source_file.bytes if source_file.member is None else source_file.archive_bytes
    if (stat.size, stat.mtime_ns, stat.etag) != (size, source_file.mtime_ns, source_file.etag):
        raise IntegrityError(
            f"{source_file.path} changed while questlearn read it ({size} -> {stat.size} bytes"
            f"{'' if stat.etag == source_file.etag else ', another ETag'}); "
            "split a finished file (copy a log that is still being written first)"
        )


class _HashingReader(io.RawIOBase):
    """Raw bytes of a file up to ``limit``, hashed as they are read.

    ``start`` is where the bytes begin in the file (a ZIP member's stored
    bytes; ``limit`` then counts from there). ``expect=(position, sha256
    hex)`` checks, when reading crosses ``position``, that the first
    ``position`` bytes still hash to what an interrupted split recorded.
    """

    def __init__(self, source_file: SourceFile, expect=None, start: int = 0):
        self.source_file = source_file
        self.handle = source_file.store.open_stream(source_file.path, start, source_file.shown or str(source_file.path))
        self.start = start  # where the bytes begin in the file (a ZIP member's stored bytes); positions count from it
        self.limit = source_file.bytes
        self.position = 0
        self.digest = hashlib.sha256()
        self.expect = expect

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        wanted = min(len(buffer), self.limit - self.position)
        if wanted <= 0:
            return 0
        view = memoryview(buffer)[:wanted]
        got = self.handle.readinto(view)
        self._hash(view[:got])
        return got

    def read_after(self, prefix: bytes, size: int) -> bytes:
        """``prefix`` (the bytes just read, ending at :attr:`position`) and up
        to ``size`` more, in one ``bytes`` read from the file: ``prefix`` is
        read again rather than copied in front of the new bytes."""
        wanted = min(size, self.limit - self.position)
        if wanted <= 0:
            return prefix
        data = self.handle.read_after(prefix, wanted)
        self._hash(memoryview(data)[len(prefix):])
        return data

    def _hash(self, view: memoryview) -> None:
        """Hash the next bytes of the file (and check a resumed split's prefix)."""
        got = len(view)
        if self.expect is not None and self.position + got >= self.expect[0]:
            cut = self.expect[0] - self.position
            self.digest.update(view[:cut])
            if self.digest.hexdigest() != self.expect[1]:
                raise IntegrityError(f"{self.source_file.path} changed since the interrupted split started; "
                                 "delete the output directory and split again")
            self.digest.update(view[cut:got])
            self.expect = None
        else:
            self.digest.update(view)
        self.position += got

    def close(self) -> None:
        self.handle.close()
        super().close()


DECODE_PIECE = 64 * 1024  # decoded bytes asked of a decompressor at a time: a failure loses at most this


class CorruptCompressedData(InputFormatError):
    """A compressed file's data ends or breaks before its end; the decompressed
    bytes before the failure are kept, so a reader can name the line there.

    Attributes
    ----------
    position : int
        Bytes of decompressed data obtained before the failure.
    decoded : bytes
        The last of them: those the failed read had obtained.
    """

    def __init__(self, source_file: "SourceFile", position: int, decoded: bytes, reason: str):
        self.source_file, self.position, self.decoded, self.reason = source_file, position, decoded, reason
        super().__init__(f"{source_file.shown or source_file.path}: byte {position} of the decompressed data: "
                         + self.problem)

    @property
    def problem(self) -> str:
        """What is wrong and what to do, without the place."""
        return (f"the {self.source_file.compression} data is corrupt or truncated: it decompresses up to "
                f"byte {self.position} and no further ({self.reason}); copy or compress the file again")

    def __reduce__(self):
        return (type(self), (self.source_file, self.position, self.decoded, self.reason))


class DecodedStream:
    """The decompressed bytes of one :class:`SourceFile`.

    Attributes
    ----------
    position : int
        Decompressed bytes returned so far.
    raw : _HashingReader
        The raw file: ``raw.position`` (bytes of the file read, for progress)
        and ``raw.digest``.
    """

    def __init__(self, source_file: SourceFile, expect=None):
        self.source_file = source_file
        compression = source_file.compression
        if compression == "zip":
            from ._zip import member_stream, open_member

            info, start = open_member(source_file)
            self.raw = _HashingReader(source_file, expect, start)
            self._stream = member_stream(self.raw, info)
        elif compression is None:
            self.raw = self._stream = _HashingReader(source_file, expect)
        elif compression == "xz":
            self.raw = _HashingReader(source_file, expect)
            self._stream = lzma.LZMAFile(self.raw)
        else:
            import pyarrow as pa

            self.raw = _HashingReader(source_file, expect)
            self._stream = pa.CompressedInputStream(pa.PythonFile(self.raw, mode="r"), compression)
        self.position = 0

    def read(self, size: int) -> bytes:
        """Up to ``size`` decoded bytes (fewer only at the end).

        Raises
        ------
        CorruptCompressedData
            The compressed data breaks off; it holds what was decoded before.
        """
        chunks, wanted = [], size
        compressed = self._stream is not self.raw
        while wanted > 0:  # raw and decoded reads may return less than asked before the end
            try:
                chunk = self._stream.read(min(wanted, DECODE_PIECE) if compressed else wanted)
            except (OSError, EOFError, lzma.LZMAError, zlib.error, zipfile.BadZipFile) as error:
                if not compressed:
                    raise
                decoded = b"".join(chunks)
                self.position += len(decoded)
                raise CorruptCompressedData(self.source_file, self.position, decoded, str(error)) from None
            chunk = bytes(chunk)
            if not chunk:
                break
            chunks.append(chunk)
            wanted -= len(chunk)
        data = b"".join(chunks)
        self.position += len(data)
        return data

    def read_after(self, prefix: bytes, size: int) -> bytes:
        """``prefix`` (the last bytes returned) followed by up to ``size`` more.

        An uncompressed file is read with ``prefix`` again in one read, so a
        block is not copied once more to put ``prefix`` in front of it.
        """
        if self._stream is not self.raw:
            return prefix + self.read(size)
        data = self.raw.read_after(prefix, size)
        self.position += len(data) - len(prefix)
        return data

    def skip(self, count: int) -> None:
        """Read and drop ``count`` bytes (a resumed split re-decodes up to its checkpoint)."""
        while count > 0:
            chunk = self.read(min(count, 1 << 22))
            if not chunk:
                raise IntegrityError(f"{self.source_file.path} is shorter than an interrupted split recorded")
            count -= len(chunk)

    def finish(self) -> str:
        """Read the rest of the raw file (trailing bytes a decoder ignored) and return its SHA-256
        (a ZIP member: of its stored bytes)."""
        while self.raw.readinto(bytearray(1 << 20)):
            pass
        return self.raw.digest.hexdigest()

    def close(self) -> None:
        if self._stream is not self.raw:
            self._stream.close()
        self.raw.close()


def open_decoded(source_file: SourceFile, expect=None) -> DecodedStream:
    """Open ``source_file`` as decompressed bytes (see :class:`DecodedStream`)."""
    return DecodedStream(source_file, expect)


def stored_sha256(source_file: SourceFile) -> str:
    """SHA-256 of the bytes of ``source_file`` as stored (a ZIP member: its compressed bytes), as a split records it."""
    if source_file.member is None:
        return source_file.store.sha256(source_file.path)
    stream = DecodedStream(source_file)
    try:
        return stream.finish()
    finally:
        stream.close()
