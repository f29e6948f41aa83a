"""The set-up the lesson notebooks share (not part of questlearn): one call opens each.

    import lesson
    DATA, EPOCHS = lesson.start(epochs=8, smoke_epochs=2)

:func:`start` imports :mod:`questlearn.quiet` first, before anything imports
Keras, so TensorFlow's C++ start-up log stays out of the notebook; a lesson
that never uses Keras (splitting, plotting) says ``keras=False`` and starts
in a fraction of a second instead of importing it.
"""

import importlib
import os
from pathlib import Path

import questlearn

# Set (to any non-empty value) by notebooks/conftest.py when pytest runs the notebooks, or CI=true:
# the notebooks train fewer epochs on the same data.
SMOKE_SWITCHES = ("QUESTLEARN_SMOKE", "CI")
DATA = Path("data")  # relative to the notebook's folder, where Jupyter and nbval run it; ignored by git
SPLIT = DATA / "split"  # notebook 01 writes it; 02 and 03 read it


def smoke_mode() -> bool:
    """True when a test run or CI runs the notebooks (see ``SMOKE_SWITCHES``)."""
    return any(os.environ.get(name) for name in SMOKE_SWITCHES)


def start(*, epochs: int | None = None, smoke_epochs: int | None = None, needs_split: bool = False,
          keras: bool = True):
    """Prepare a lesson: make the data folder and print the questlearn version and the mode.

    Parameters
    ----------
    epochs : int, optional
        Epochs the lesson trains in full mode; ``smoke_epochs`` in smoke mode.
    smoke_epochs : int, optional
        Epochs in smoke mode (default: ``epochs``).
    needs_split : bool
        The lesson reads notebook 01's split: stop with a message saying so when it is missing.
    keras : bool
        The lesson uses Keras: import it now, through :mod:`questlearn.quiet` (TensorFlow's start-up log off).

    Returns
    -------
    Path or (Path, int)
        The data folder, and with ``epochs`` also the epochs to train in this mode.
    """
    if keras:
        importlib.import_module("questlearn.quiet")  # first, before the lesson imports Keras
    smoke = smoke_mode()
    DATA.mkdir(exist_ok=True)
    print("questlearn", questlearn.__version__, "| smoke mode" if smoke else "| full mode")
    if needs_split and not (SPLIT / "manifest.json").exists():
        raise FileNotFoundError(f"run notebook 01 first: it writes {SPLIT}")
    if epochs is None:
        return DATA
    return DATA, (smoke_epochs if smoke and smoke_epochs is not None else epochs)
