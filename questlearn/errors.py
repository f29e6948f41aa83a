"""The errors questlearn raises for a user's mistake, by what went wrong.

Every one is a :class:`QuestlearnError`, itself a ``ValueError`` (so code
that caught ``ValueError`` keeps working). The ``questlearn`` command prints
a ``QuestlearnError`` as one line (``questlearn split: error: ...``, exit
status 2); any other exception is a bug and shows its traceback.

Catch the class you can handle::

    from questlearn.errors import DiskFullError, InputFormatError

    try:
        split_csv("logs/", "split/")
    except InputFormatError as error:   # CsvFormatError has .path, .line, .byte_offset
        ...
"""

from __future__ import annotations

__all__ = ["QuestlearnError", "OptionError", "InputFormatError", "SchemaError", "OutputFolderError",
           "DiskFullError", "ManifestError", "IntegrityError", "ModelFileError", "ProcessesDisagreeError",
           "MissingPackageError", "StorageError"]


class QuestlearnError(ValueError):
    """Something the user gave or asked for is wrong; the message says what and how to fix it."""


class OptionError(QuestlearnError):
    """An option or argument out of its range, or two that do not go together."""


class InputFormatError(QuestlearnError):
    """A source file that cannot be read as what it should be (CSV, Parquet, compressed), naming where."""


class SchemaError(QuestlearnError):
    """The columns do not make the split asked for (a missing label, a numeric column holding words, ...)."""


class OutputFolderError(QuestlearnError):
    """An output that would overwrite an input, or a folder that holds something else or is in use."""


class DiskFullError(QuestlearnError):
    """The disk is full, or would be: free space and run the same command again."""


class ManifestError(QuestlearnError):
    """A ``manifest.json`` that is missing, damaged, or does not fit what uses it."""


class IntegrityError(QuestlearnError):
    """A file that changed after it was written: a shard whose SHA-256 differs, a source modified mid-split."""


class ModelFileError(QuestlearnError):
    """A model directory's file (``inference.keras``, ``inference.json``, ``backup/``) missing or damaged."""


class ProcessesDisagreeError(QuestlearnError):
    """The processes of one training job do not see the same data or configuration."""


class MissingPackageError(QuestlearnError):
    """An optional package a feature needs is not installed; the message names the extra to install."""


class StorageError(QuestlearnError):
    """An object store that cannot be read: unreachable, credentials refused, a missing bucket or object, throttled."""


def first_line(error: BaseException) -> str:
    """The first line of ``error``'s message, or its class name when the message is empty.

    For the one-line errors that quote what a library said (pyarrow, a store);
    a caller that quotes a long message cuts it itself. Not in ``__all__``: a
    helper of questlearn's own modules, not of its interface.
    """
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__
