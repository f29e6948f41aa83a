"""ZIP archives as sources: each CSV member is one file of the source, streamed.

A ``.zip`` (recognised by its first bytes, ``PK\\x03\\x04``) becomes one
:class:`~questlearn.io.sources.SourceFile` per data member, in member-name
order, each read like a compressed file: the member's stored bytes are read
(and hashed, for a resumed split's check) from the archive as a window of
it, and decompressed on the fly by the standard library's ``zipfile``
(stored, deflate, bzip2 or lzma; the CRC-32 is checked at the member's
end). Nothing is extracted to disk and no member is held in memory; an
archive in an object store is read the same way, by ranged reads.

Directory entries, ``__MACOSX/`` and other hidden members (``._*``,
``.DS_Store``), ``_``-prefixed markers, ``.crc`` checksums and empty members
are skipped; when some members are named ``.csv`` or ``.tsv``, the other
text members (a README, a licence) are skipped too. What is skipped is
printed. An encrypted member, one compressed with a method ``zipfile``
cannot read, and one that is itself compressed, an archive or Parquet are
refused, naming the archive, the member and the fix.
"""

from __future__ import annotations

import functools
import struct
import zipfile
import zlib
from dataclasses import replace

from ..errors import InputFormatError, IntegrityError
from ._magic import (
    COMPRESSION_MAGIC,
    FOREIGN_MAGIC,
    PARQUET_MAGIC,
    ZIP_MAGIC,
    ignored_name,
)

#: The compression methods ``zipfile`` decompresses.
READABLE_METHODS = (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA)
#: Names of the other methods found in the wild (APPNOTE 4.4.5), for messages.
METHOD_NAMES = {1: "Shrink", 6: "Implode", 9: "Deflate64", 10: "PKWARE DCL Implode", 18: "IBM TERSE", 19: "IBM LZ77",
                93: "Zstandard", 95: "xz", 96: "JPEG", 97: "WavPack", 98: "PPMd", 99: "AES encryption"}
ENCRYPTED, STRONG_ENCRYPTION, PATCHED = 0x1, 0x40, 0x20
LOCAL_HEADER = struct.Struct("<4s22xHH")  # signature ... file name length, extra field length
#: What a member's first bytes say it holds, when it is not text: archives inside the zip.
ARCHIVES = ("a ZIP archive", "an empty ZIP archive", "a 7-Zip archive", "a RAR archive", "a tar archive",
            "LZ4-compressed data")
DATA_SUFFIXES = (".csv", ".tsv")
HEAD_BYTES = 512
SHOWN_SKIPPED = 6


def _refuse(archive, member: str, problem: str, fix: str) -> InputFormatError:
    return InputFormatError(f"{archive.shown or archive.path}:{member} {problem}: {fix}")


def _open_archive(archive) -> zipfile.ZipFile:
    """The archive's directory, or a one-line refusal of a damaged one."""
    try:
        return zipfile.ZipFile(archive.store.open_random(archive.path))
    except (zipfile.BadZipFile, OSError, EOFError) as error:
        raise InputFormatError(f"{archive.shown or archive.path} starts like a ZIP archive but its directory cannot "
                               f"be read ({error}): the download or copy is probably incomplete; fetch it again, or "
                               "extract what you can (unzip) and pass the CSV files") from None


def _skip_reason(info: zipfile.ZipInfo) -> str | None:
    """Why a member holds no data (a directory, a macOS resource fork, a hidden or empty file), or None."""
    name = info.filename
    if info.is_dir():
        return "a directory"
    if name.startswith("__MACOSX/") or "/__MACOSX/" in name or name.rsplit("/", 1)[-1].startswith("._"):
        return "macOS metadata"
    if ignored_name(name.rsplit("/", 1)[-1]):
        return "hidden, '_'-prefixed or .crc"
    if info.file_size == 0:
        return "empty"
    return None


LOCAL_FIELDS = struct.Struct("<4s2xHH")  # signature, version needed (skipped), flag bits, compression method


def _check_directory_entry(archive, info: zipfile.ZipInfo) -> None:
    """Refuse a member whose central directory entry disagrees with its local header: a damaged archive
    (whose garbled method or flags would otherwise read as an unknown method or encryption)."""
    try:
        local = archive.store.read_range(archive.path, info.header_offset, LOCAL_FIELDS.size)
    except (OSError, ValueError, OverflowError):
        local = b""
    if len(local) != LOCAL_FIELDS.size or local[:4] != ZIP_MAGIC:
        wrong = f"points to byte {info.header_offset}, where no member begins"
    else:
        _, flags, method = LOCAL_FIELDS.unpack(local)
        if method == info.compress_type and flags & ENCRYPTED == info.flag_bits & ENCRYPTED:
            return
        wrong = (f"says compression method {info.compress_type}, flags {info.flag_bits:#x}, where the member's own "
                 f"header says method {method}, flags {flags:#x}")
    raise InputFormatError(f"{archive.shown or archive.path} is a damaged ZIP archive: its central directory entry "
                           f"for {info.filename!r} {wrong}; fetch or copy the archive again (or extract what "
                           "unzip can and pass the CSV files)")


def _check_readable(archive, info: zipfile.ZipInfo) -> None:
    """Refuse a member ``zipfile`` cannot decompress: encrypted, patched, or another method (a damaged
    directory entry is refused as such first)."""
    _check_directory_entry(archive, info)
    if info.flag_bits & (ENCRYPTED | STRONG_ENCRYPTION) or info.compress_type == 99:
        raise _refuse(archive, info.filename, "is encrypted (password-protected)",
                      "questlearn does not read encrypted archives; extract it with its password (unzip) and pass "
                      "the CSV file")
    if info.flag_bits & PATCHED or info.compress_type not in READABLE_METHODS:
        method = METHOD_NAMES.get(info.compress_type, "an unknown method")
        raise _refuse(archive, info.filename, f"is compressed with {method} (method {info.compress_type}), which "
                      "Python's zipfile cannot read", "extract it (unzip or 7z x) and pass the CSV file, or zip it "
                      "again with deflate (zip -Z deflate)")


def _head(archive, opened: zipfile.ZipFile, info: zipfile.ZipInfo) -> bytes:
    """The first decompressed bytes of a member."""
    try:
        with opened.open(info) as member:
            return member.read(HEAD_BYTES)
    except (zipfile.BadZipFile, OSError, EOFError, zlib.error, NotImplementedError, RuntimeError) as error:
        raise _refuse(archive, info.filename, f"cannot be decompressed ({error})",
                      "the archive is damaged; fetch or copy it again") from None


def _looks_like(head: bytes) -> tuple[str, str] | None:
    """``(what, fix)`` for a member whose first bytes are not text: compressed data, an archive, Parquet, a binary
    format; None for text."""
    if head.startswith(PARQUET_MAGIC):
        return "Parquet", ("questlearn reads Parquet by random access, which a zip member does not allow: extract "
                           "the archive (unzip) and pass the Parquet files")
    for magic, compression in COMPRESSION_MAGIC:
        if head.startswith(magic):
            return f"{compression}-compressed data", (f"extract the archive (unzip) and pass the {compression} file "
                                                      "(questlearn reads it compressed)")
    if head.startswith(ZIP_MAGIC):
        return "a ZIP archive", "extract the archive (unzip), then the one inside it, and pass the CSV files"
    for offset, magic, what, fix in FOREIGN_MAGIC:
        if head[offset:offset + len(magic)] == magic:
            return what, f"extract the archive (unzip), then: {fix}"
    return None


def _skipped_line(archive, skipped: list) -> str:
    shown = ", ".join(f"{name} ({why})" for name, why in skipped[:SHOWN_SKIPPED])
    more = f" and {len(skipped) - SHOWN_SKIPPED} more" if len(skipped) > SHOWN_SKIPPED else ""
    return f"questlearn: {archive.shown or archive.path}: skipped {len(skipped)} member(s) that are not data: {shown}{more}"


def member_sources(archive, only: str | None = None) -> list:
    """The data members of the ZIP ``archive`` as source files, in member-name order.

    Parameters
    ----------
    archive : SourceFile
        The archive as a file (its name, size and modification time).
    only : str, optional
        The one member wanted (a part of a parallel split): nothing is
        skipped or printed then.

    Returns
    -------
    list of SourceFile
        One per data member: ``name`` and ``shown`` are ``archive:member``,
        ``compression`` is ``"zip"``, ``bytes`` is the member's stored
        (compressed) size, ``recorded_size`` its uncompressed size as the
        archive's directory records it (the row and disk estimates use it).

    Raises
    ------
    InputFormatError
        A damaged archive, an Office document, no data member, a member
        named twice, an encrypted member, one compressed with a method
        zipfile cannot read, or one that is compressed data, an archive,
        Parquet or another binary format by its first bytes.
    """
    with _open_archive(archive) as opened:
        infos = opened.infolist()
        names = [i.filename for i in infos]
        where = archive.shown or archive.path
        if "[Content_Types].xml" in names or names[:1] == ["mimetype"]:
            raise InputFormatError(f"{where} looks like an Office document (Excel, Word, OpenDocument: a ZIP of XML "
                                   "files), not CSV or Parquet: save the sheet as CSV")
        if only is not None:
            chosen = [i for i in infos if i.filename == only]
            if len(chosen) != 1:
                raise IntegrityError(f"{where} no longer holds one member {only!r}; it changed since the split "
                                     "started: delete the output directory and split again")
            _check_readable(archive, chosen[0])
            return [_member_file(archive, chosen[0])]
        skipped, candidates = [], []
        for info in sorted(infos, key=lambda i: i.filename):
            reason = _skip_reason(info)
            if reason is not None:
                skipped.append((info.filename, reason))
                continue
            _check_readable(archive, info)
            candidates.append((info, _looks_like(_head(archive, opened, info))))
    for info, found in candidates:
        if found is not None and (found[0] == "Parquet" or found[0] in ARCHIVES or found[0].endswith("compressed data")):
            raise _refuse(archive, info.filename, f"is {found[0]} inside the zip (by its first bytes)", found[1])
    text = [info for info, found in candidates if found is None]
    named = [info for info in text if info.filename.lower().endswith(DATA_SUFFIXES)]
    data = named or text
    skipped += [(info.filename, "not named .csv or .tsv" if found is None else found[0])
                for info, found in candidates if info not in data]
    if not data:
        binary = [(info.filename, found) for info, found in candidates if found is not None]
        if binary:
            name, (what, fix) = binary[0]
            raise _refuse(archive, name, f"is {what} (by its first bytes), and the archive holds no CSV member", fix)
        raise InputFormatError(f"{where} holds no CSV member (only directories, macOS metadata, hidden or empty "
                               "files): zip the CSV files themselves")
    member_names = [info.filename for info in data]
    twice = next((n for n in member_names if member_names.count(n) > 1), None)
    if twice is not None:
        raise InputFormatError(f"{where} holds two members named {twice!r}: questlearn cannot tell them apart; "
                               "extract the archive (unzip) and pass the files you mean")
    if skipped:
        print(_skipped_line(archive, skipped), flush=True)
    return [_member_file(archive, info) for info in data]


def _member_file(archive, info: zipfile.ZipInfo):
    return replace(archive, name=f"{archive.name}:{info.filename}", shown=f"{archive.shown or archive.path}:"
                   f"{info.filename}", bytes=info.compress_size, member=info.filename, archive_bytes=archive.bytes,
                   recorded_size=info.file_size)


@functools.lru_cache(maxsize=4)
def _directory(store, path, size: int, mtime_ns: int, etag) -> dict:
    """``{member name: ZipInfo}`` of an archive, read once per version of it (every member's stream needs it)."""
    with zipfile.ZipFile(store.open_random(path)) as opened:
        return {info.filename: info for info in opened.infolist()}


def open_member(source_file) -> tuple[zipfile.ZipInfo, int]:
    """The member's directory entry and the offset of its stored bytes in the archive.

    Raises
    ------
    IntegrityError
        The archive changed since the source was listed (the member is gone,
        its size or its local header differ).
    """
    changed = (f"{source_file.path} changed since questlearn listed it (member {source_file.member!r}); "
               "split a finished file")
    try:
        store = source_file.store
        stat = store.stat(source_file.path)
        info = _directory(store, source_file.path, stat.size, stat.mtime_ns, stat.etag)[source_file.member]
        header = store.read_range(source_file.path, info.header_offset, LOCAL_HEADER.size)
    except (KeyError, zipfile.BadZipFile, OSError, EOFError):
        raise IntegrityError(changed) from None
    if len(header) != LOCAL_HEADER.size or info.compress_size != source_file.bytes:
        raise IntegrityError(changed)
    signature, name_length, extra_length = LOCAL_HEADER.unpack(header)
    start = info.header_offset + LOCAL_HEADER.size + name_length + extra_length
    if signature != b"PK\x03\x04" or start + info.compress_size > source_file.archive_bytes:
        raise IntegrityError(changed)
    return info, start


def member_stream(raw, info: zipfile.ZipInfo):
    """The decompressed bytes of a member whose stored bytes ``raw`` reads (from their first byte).

    ``zipfile.ZipExtFile`` is what ``ZipFile.open`` returns, made here on
    the hashing reader so the stored bytes read are hashed and counted; it
    checks the member's CRC-32 at its end.
    """
    return zipfile.ZipExtFile(raw, "r", info)
