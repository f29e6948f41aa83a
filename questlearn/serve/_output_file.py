"""The output file of ``predict``: refused where it would harm an input, written whole or not at all.

:func:`check_output` refuses an output that is a directory, one of the
inputs (the same file by any path or link) or inside an input folder.
:func:`partial_file` writes it under a hidden temporary name beside it
(:func:`partial_name`), held by a lock while the run lives, and renames it
once complete; the partial files killed runs of the same output left are
removed (:func:`remove_stale_partials`), and a full disk stops with one
line and leaves nothing behind.
"""

from __future__ import annotations

import errno
import os
import re
import secrets
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO, Iterator

from ..errors import DiskFullError, OutputFolderError
from ..io.sources import resolve_sources
from ..io.storage import LOCAL
from ._model_files import INFERENCE_MODEL, INFERENCE_SPEC

PARTIAL_TOKEN = re.compile(r"[0-9a-f]{8}")


def check_output(output: Path, source, model_dir, storage_options: dict | None = None) -> None:
    """Refuse an output that is a directory, lies in no directory, is one of the inputs or lies in an input folder.

    An input is any file of ``source`` or the model's ``inference.keras`` /
    ``inference.json``; "is" means the same file, reached by any path,
    symbolic or hard link (same device and inode).

    Parameters
    ----------
    output : Path
        The CSV file to write.
    source : str, Path or list
        The input, as for :func:`questlearn.serve._input_rows.open_input`.
    model_dir : str or Path
        The model directory.
    storage_options : dict, optional
        Options of the object store's filesystem, for a source given as a URL.

    Raises
    ------
    OutputFolderError
        The output may not be written there, with the reason and the fix.
    """
    if output.is_dir():
        raise OutputFolderError(f"cannot write {output}: it is a directory; name the CSV file to write "
                                f"(e.g. {output / 'predictions.csv'})")
    if not output.parent.is_dir():
        raise OutputFolderError(f"cannot write {output}: the directory {output.parent} does not exist")
    if output.exists():
        model_files = [Path(model_dir) / name for name in (INFERENCE_MODEL, INFERENCE_SPEC)]
        inputs = [(f.store, f.path, f.shown) for f in resolve_sources(source, storage_options)]
        inputs += [(LOCAL, p, str(p)) for p in model_files if p.exists()]
        for store, path, shown in inputs:
            if store.same_file(path, output):
                raise OutputFolderError(f"cannot write {output}: it is the input file {shown}, which writing would replace; "
                                        "choose another output file")
    for folder in _source_folders(source):
        if output.resolve().is_relative_to(folder):
            raise OutputFolderError(f"cannot write {output}: it lies inside the input folder {folder}, where the next "
                                    "run over that folder would read it as a part; write it elsewhere")


def _source_folders(source) -> list[Path]:
    """The folders named as (part of) ``source``, resolved."""
    entries = source if isinstance(source, (list, tuple)) else [source]
    return [Path(entry).resolve() for entry in entries if Path(entry).is_dir()]


@contextmanager
def partial_file(output: Path) -> Iterator[BinaryIO]:
    """Write ``output`` whole or not at all: yield a new partial file, renamed to ``output`` when the block ends.

    The partial files earlier runs of ``output`` left are removed first, and
    again after the rename (any that a run started meanwhile and killed left
    behind). The partial file has a name no other file has
    (:func:`partial_name`) and is locked while this process holds it open,
    so that no other run removes it. It is removed whatever stops the block.

    Parameters
    ----------
    output : Path
        The file to write (checked by :func:`check_output`).

    Yields
    ------
    file
        The partial file, open for writing bytes.

    Raises
    ------
    DiskFullError
        The disk or the quota filled up: nothing was written.
    """
    remove_stale_partials(output)
    partial = partial_name(output, secrets.token_hex(4))  # a new name: clobbers nothing
    try:
        with open(partial, "xb") as sink:
            _hold(sink)  # a live run's partial file: no other run removes it
            yield sink
        os.replace(partial, output)
        remove_stale_partials(output)  # any that a run started meanwhile and killed left behind
    except OSError as error:
        if error.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        raise DiskFullError(f"cannot write {output}: {error.strerror}; nothing was written (the partial file was "
                            "removed): free some space or choose another disk, and run the command again") from None
    finally:
        if partial.exists():
            partial.unlink()


def partial_name(output: Path, token: str) -> Path:
    """The hidden file a run writes ``output`` into before renaming it: ``.NAME.TOKEN.partial`` beside it.

    Parameters
    ----------
    output : Path
        The file to write.
    token : str
        Eight hex digits, new for each run.

    Returns
    -------
    Path
        The partial file's path.
    """
    return output.with_name(f".{output.name}.{token}.partial")


def remove_stale_partials(output: Path) -> list[Path]:
    """Remove the partial files earlier runs writing ``output`` left (a killed run cannot remove its own).

    Only names :func:`partial_name` gives for this very output (eight hex
    digits for the token) are removed: other outputs' partial files and any
    other file stay, and so does the partial file of a run still writing
    (it holds a lock on it, which ends with its process). Each removal is
    printed.

    Parameters
    ----------
    output : Path
        The file to write.

    Returns
    -------
    list of Path
        The files removed.
    """
    prefix, suffix = f".{output.name}.", ".partial"
    removed = []
    for path in output.parent.iterdir():
        name = path.name
        if name.startswith(prefix) and name.endswith(suffix) and PARTIAL_TOKEN.fullmatch(name[len(prefix):-len(suffix)]) \
                and path.is_file() and not path.is_symlink() and not _held(path):
            try:
                path.unlink()
            except FileNotFoundError:  # another run removed it first
                continue
            removed.append(path)
    if removed:
        print(f"predict: removed {len(removed)} partial file(s) of {output} left by an earlier run that did not finish: "
              f"{', '.join(p.name for p in removed)}", file=sys.stderr)
    return removed


def _hold(handle) -> None:
    """Lock an open partial file for as long as this process keeps it open (where ``fcntl`` exists)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: an open file cannot be removed there anyway
        return
    fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)


def _held(path: Path) -> bool:
    """Whether a live run holds ``path`` (:func:`_hold`)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover
        return False
    try:
        with open(path, "rb") as handle:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:  # gone, or unreadable: not ours to judge
        return True
    return False
