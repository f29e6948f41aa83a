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
  ``val_fraction=0`` asks for no validate subset (a train-only split, which
  ``train`` refuses) and is never refused here; with ``test_fraction`` > 0
  it is refused up front (:class:`~questlearn.split._params.SplitParameters`).
  The held-out test subset (``test_fraction`` > 0) is refused empty the
  same way: it was asked for.
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
    ``rows`` rows leaves a subset that was asked for empty (train; validate
    when ``val_fraction`` > 0; test when ``test_fraction`` > 0).

    The split draws one number per row, in order, from
    ``numpy.random.Generator(PCG64(seed))``; a row goes to validate when
    its number is below ``val_fraction``, to test when it is at least that
    and below ``val_fraction + test_fraction``. The same numbers drawn here
    say which subsets get rows, and which fractions would fill them.
    """
    fraction, held_out = float(params.val_fraction), float(params.test_fraction)
    if (fraction == 0 and held_out == 0) or rows < 1:
        return  # no validate or test subset asked for; a source without rows is refused with its own message
    draws = np.random.Generator(np.random.PCG64(params.seed))
    low, high, drawn, test_drawn = 1.0, 0.0, 0, held_out == 0
    while drawn < rows:
        numbers = draws.random(min(DRAWS_AT_A_TIME, rows - drawn))
        low, high, drawn = min(low, float(numbers.min())), max(high, float(numbers.max())), drawn + len(numbers)
        test_drawn = test_drawn or bool(((numbers >= fraction) & (numbers < fraction + held_out)).any())
        if (fraction == 0 or low < fraction) and high >= fraction + held_out and test_drawn:
            return
    if fraction > 0 and low >= fraction:
        empty = "validate"
    else:
        empty = "train" if high < fraction + held_out else "test"
    if rows == 1:
        raise OptionError(f"{where} has 1 row: a split needs rows in both train and validate, as training does; "
                         "split a source of at least 2 rows")
    if held_out:
        change = {"train": "lower --val-fraction or --test-fraction", "validate": "raise --val-fraction",
                  "test": "raise --test-fraction"}[empty]
        raise OptionError(f"{where} has {rows} rows: with --val-fraction {fraction:g}, --test-fraction {held_out:g} and "
                          f"--seed {params.seed} no row is drawn into the {empty} subset, which was asked for; {change}, "
                          "change --seed, or split a larger source")
    raise OptionError(f"{where} has {rows} rows: with --val-fraction {fraction:g} and --seed {params.seed} no row is "
                     f"drawn into the {empty} subset, and training needs rows in both train and validate; with this "
                     f"seed --val-fraction {_fraction_between(low, high)} puts rows in both (any value above "
                     f"{low:.4f} and up to {high:.4f}), or split a larger source")


def check_subsets_dealt(rows_by_subset: dict, params, where: str) -> None:
    """Refuse, after the pass, a split whose train subset, or validate or test subset asked for, got no row."""
    if float(params.val_fraction) == 0 and float(params.test_fraction) == 0:
        return
    for subset, rows in rows_by_subset.items():
        if rows == 0 and params.share(subset) > 0:
            total = sum(rows_by_subset.values())
            if subset == "test":
                raise OptionError(f"{where}: none of its {total} rows was drawn into the test subset (--test-fraction "
                                  f"{params.test_fraction:g}, --seed {params.seed}), which was asked for; raise "
                                  "--test-fraction, change --seed, or split a larger source")
            change = "raise" if subset == "validate" else "lower"
            also = " (or --test-fraction)" if subset == "train" and params.test_fraction else ""
            raise OptionError(f"{where}: none of its {total} rows was drawn into the {subset} subset (--val-fraction "
                             f"{params.val_fraction:g}, --seed {params.seed}), and training needs rows in both train "
                             f"and validate; {change} --val-fraction{also}, change --seed, or split a larger source")


def _fraction_between(low: float, high: float) -> str:
    """A short fraction above ``low`` and at most ``high`` (``low < high``)."""
    middle = (low + high) / 2
    for digits in range(1, 8):
        value = round(middle, digits)
        if low < value <= high and 0 < value < 1:
            return f"{value:.{digits}f}"
    return repr(high)
