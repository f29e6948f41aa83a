"""What a file is, by its first bytes; which names in a folder or an archive are not data.

:mod:`questlearn.io.sources` detects a source file's format and compression
with these tables, and :mod:`questlearn.io._zip` a ZIP member's.
"""

from __future__ import annotations

COMPRESSION_MAGIC = (
    (b"\x1f\x8b", "gzip"),
    (b"BZh", "bz2"),
    (b"\xfd7zXZ\x00", "xz"),
    (b"\x28\xb5\x2f\xfd", "zstd"),
)
PARQUET_MAGIC = b"PAR1"
ZIP_MAGIC = b"PK\x03\x04"
#: Formats questlearn does not read, recognised by their first bytes: (offset, magic, what it is, what to do).
FOREIGN_MAGIC = (
    (0, b"PK\x05\x06", "an empty ZIP archive", "extract the data it was meant to hold"),
    (0, b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive", "extract it (7z x) and pass the CSV or Parquet files"),
    (0, b"Rar!\x1a\x07", "a RAR archive", "extract it and pass the CSV or Parquet files"),
    (257, b"ustar\x00", "a tar archive", "extract it (tar -xf) and pass the CSV or Parquet files"),
    (257, b"ustar  \x00", "a tar archive", "extract it (tar -xf) and pass the CSV or Parquet files"),
    (0, b"\x04\x22\x4d\x18", "LZ4-compressed data", "decompress it first (lz4 -d), or recompress it with gzip "
                                                     "or zstd"),
    (0, b"%PDF-", "a PDF document", "export the table as CSV"),
    (0, b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "an old Excel or Office file", "save the sheet as CSV"),
    (0, b"SQLite format 3\x00", "an SQLite database", "export the table as CSV or Parquet"),
    (0, b"Obj\x01", "an Avro file", "convert it to Parquet or CSV"),
    (0, b"ARROW1", "an Arrow IPC (Feather) file", "write it as Parquet (pyarrow.parquet.write_table)"),
    (0, b"\x93NUMPY", "a NumPy array file", "write the table as CSV or Parquet"),
    (0, b"\x89HDF\r\n\x1a\n", "an HDF5 file", "write the table as CSV or Parquet"),
    (0, b"\x7fELF", "a program (ELF executable)", "pass the data file"),
    (0, b"\x89PNG", "a PNG image", "pass the data file"),
    (0, b"\xff\xd8\xff", "a JPEG image", "pass the data file"),
    (0, b"GIF89a", "a GIF image", "pass the data file"),
)


def ignored_name(name: str) -> bool:
    """Hidden files, ``_SUCCESS``-style markers and Hadoop ``.crc`` checksums are not data."""
    return name.startswith((".", "_")) or name.endswith(".crc")
