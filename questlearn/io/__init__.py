"""Reading a source: which files, decompression, strict CSV scanning, one reader per format, typed chunks.

No Keras, no pandas.
"""

from .._lazy import lazy_exports

__all__ = ["resolve_sources", "SourceFile", "open_decoded", "CsvScanner", "CsvFormatError", "reader_for",
           "SourceReader", "ParquetFormatError"]

__getattr__, __dir__ = lazy_exports(__name__, {
    "resolve_sources": ".sources",
    "SourceFile": ".sources",
    "open_decoded": ".sources",
    "CsvScanner": ".csvscan",
    "CsvFormatError": ".csvscan",
    "reader_for": ".readers",
    "SourceReader": ".readers",
    "ParquetFormatError": "._parquet_columns",
})
