"""Refusals of a split that protect its input and its use: checked before it writes.

* The output folder must lie apart from the source: not the source file
  or folder itself, not inside a source folder (it would become one of the
  source's files, and every later split of that source would be refused),
  and not a folder holding a source file (the split would write among, or
  over, its input). :func:`check_output_apart` runs before the folder is
  created.
* :func:`create_output_folder` creates the output folder and says which
  folders it created, so a split refused afterwards removes exactly those
  (:func:`remove_created_folders`), and only while they are empty.
* Training needs rows in both subsets: :func:`check_subsets_filled`
  refuses, before the pass, a source whose rows (when their count is
  exact) the seeded draw would all send to one subset, and says which
  ``--val-fraction`` puts rows in both; :func:`check_subsets_dealt` is the
  same refusal after the pass, when the count was only estimated.
  ``val_fraction=0`` asks for no validate subset and is never refused.
"""

from __future__ import annotations

import glob
from pathlib import Path

import numpy as np

from ..errors import OptionError, OutputFolderError
from ..io.sources import GLOB_CHARACTERS

DRAWS_AT_A_TIME = 1 << 20


def check_output_apart(source, out) -> None:
    """Refuse an output folder that is, holds or lies inside the source.

    Parameters
    ----------
    source : str, Path, or a list of them
        As for :func:`questlearn.io.sources.resolve_sources`.
    out : str or Path
        The output folder (existing or not).

    Raises
    ------
    OutputFolderError
        One line naming the output, the source it clashes with, and the fix.
    """
    target = Path(out).resolve()
    for item in source if isinstance(source, (list, tuple)) else [source]:
        path = Path(item)
        if path.exists():
            matches = [path]
        elif GLOB_CHARACTERS & set(str(item)):
            matches = [Path(m) for m in glob.glob(str(item)) if Path(m).is_file()]
        else:
            continue  # the source's own refusal names it
        for match in matches:
            here = match.resolve()
            if target == here:
                raise OutputFolderError(f"the output folder {out} is the source {match} itself; split never writes over its "
                                 "input: name a new folder for the shards")
            if here.is_dir() and here in target.parents:
                raise OutputFolderError(f"the output folder {out} lies inside the source folder {match}, where it would "
                                 f"become part of the source; name a folder outside {match}")
            if target in here.parents:
                raise OutputFolderError(f"the output folder {out} holds the source {match}; split writes into a new or "
                                 "empty folder, never among its input: name a new folder for the shards")
    if target.exists() and not target.is_dir():
        raise OutputFolderError(f"the output {out} is a file, not a folder: name a new folder for the shards")


def create_output_folder(out: Path) -> list:
    """Create ``out`` (and missing parents); return the folders created, outermost first."""
    created, folder = [], Path(out)
    while not folder.exists() and not folder.is_symlink():
        created.append(folder)
        folder = folder.parent
    if not folder.is_dir():
        raise OutputFolderError(f"{folder} is a file, so the output folder {out} cannot be made; name another folder")
    Path(out).mkdir(parents=True, exist_ok=True)
    return created[::-1]


def remove_created_folders(created: list) -> None:
    """Remove the folders :func:`create_output_folder` created that are still empty, innermost first."""
    for folder in reversed(created):
        if folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()


def check_subsets_filled(rows: int, params, where: str) -> None:
    """Refuse before the pass when the seeded draw of a source of exactly
    ``rows`` rows leaves the train or the validate subset empty.

    The split draws one number per row, in order, from
    ``numpy.random.Generator(PCG64(seed))``; a row goes to validate when
    its number is below ``val_fraction``. The same numbers drawn here say
    which subsets get rows, and which fractions would fill both.
    """
    fraction = float(params.val_fraction)
    if fraction == 0 or rows < 1:
        return  # no validate subset asked for; a source without rows is refused with its own message
    draws = np.random.Generator(np.random.PCG64(params.seed))
    low, high, drawn = 1.0, 0.0, 0
    while drawn < rows:
        numbers = draws.random(min(DRAWS_AT_A_TIME, rows - drawn))
        low, high, drawn = min(low, float(numbers.min())), max(high, float(numbers.max())), drawn + len(numbers)
        if low < fraction <= high:
            return
    empty = "validate" if low >= fraction else "train"
    if rows == 1:
        raise OptionError(f"{where} has 1 row: a split needs rows in both train and validate, as training does; "
                         "split a source of at least 2 rows")
    raise OptionError(f"{where} has {rows} rows: with --val-fraction {fraction:g} and --seed {params.seed} no row is "
                     f"drawn into the {empty} subset, and training needs rows in both train and validate; with this "
                     f"seed --val-fraction {_fraction_between(low, high)} puts rows in both (any value above "
                     f"{low:.4f} and up to {high:.4f}), or split a larger source")


def check_subsets_dealt(rows_by_subset: dict, params, where: str) -> None:
    """Refuse, after the pass, a split whose train or validate subset got no row."""
    if float(params.val_fraction) == 0:
        return
    for subset, rows in rows_by_subset.items():
        if rows == 0:
            total = sum(rows_by_subset.values())
            change = "raise" if subset == "validate" else "lower"
            raise OptionError(f"{where}: none of its {total} rows was drawn into the {subset} subset (--val-fraction "
                             f"{params.val_fraction:g}, --seed {params.seed}), and training needs rows in both train "
                             f"and validate; {change} --val-fraction, change --seed, or split a larger source")


def _fraction_between(low: float, high: float) -> str:
    """A short fraction above ``low`` and at most ``high`` (``low < high``)."""
    middle = (low + high) / 2
    for digits in range(1, 8):
        value = round(middle, digits)
        if low < value <= high and 0 < value < 1:
            return f"{value:.{digits}f}"
    return repr(high)
