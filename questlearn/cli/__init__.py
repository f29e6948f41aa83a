"""Command line: ``questlearn synth | split | inspect | train | predict | evaluate | export | plot | demo``.

Run ``questlearn COMMAND --help`` for the options of each command. Heavy
imports (Keras and its backend) happen only in the commands that train.

The command line is built in stages, one module each:

* :mod:`._parser` — the argument parser, one function per command's arguments
* :mod:`._options` — parsed arguments as the library's schema and storage options
* :mod:`._data_commands` — ``synth``, ``inspect``, ``split``
* :mod:`._train_commands` — ``train`` (one process or several) and ``demo``
* :mod:`._serve_commands` — ``predict``, ``evaluate``, ``export``, ``plot``

and here :func:`main`: parse, run the command's handler, and turn a user's
mistake into one line and an exit status.
"""

from __future__ import annotations

import gc
import sys

from ..errors import QuestlearnError
from ._data_commands import _inspect, _split, _synth
from ._parser import build_parser
from ._serve_commands import _evaluate, _export, _plot, _predict
from ._train_commands import _demo, _train, _without_option

__all__ = ["main", "build_parser", "_without_option"]  # the names imported from questlearn.cli


def _handlers() -> dict:
    """``{command: handler}``, looked up at each call: a handler replaced on this module (``_plot``) is the one run."""
    return {"synth": _synth, "split": _split, "inspect": _inspect, "train": _train, "predict": _predict,
            "evaluate": _evaluate, "export": _export, "plot": _plot, "demo": _demo}


def main(argv=None) -> int:
    """Run one command; a :class:`~questlearn.errors.QuestlearnError` is printed as one line (exit status 2).

    Parameters
    ----------
    argv : list of str, optional
        The arguments after ``questlearn`` (default: ``sys.argv[1:]``).

    Returns
    -------
    int
        The exit status: 0, the command's own (``inspect`` returns 1 for a
        problem found), 2 for a user's mistake, 130 when interrupted. A bug
        propagates with its traceback.
    """
    args = build_parser().parse_args(argv)
    from .._interrupts import keep_interrupts_in_python

    keep_interrupts_in_python()  # Ctrl-C always ends the command (pyarrow's own handler can drop it)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # --local-processes starts children with these
    try:
        code = _handlers()[args.command](args)
    except QuestlearnError as error:  # a user's mistake (CsvFormatError included): one line, no traceback
        print(f"questlearn {args.command}: error: {error}", file=sys.stderr)
        del error
        # Free the failed run's frames, arrays and helper threads (held in reference cycles by
        # the traceback) now, while numpy and pyarrow are fully alive, not during interpreter shutdown.
        gc.collect()
        return 2
    # Anything else (a plain ValueError from numpy included) is a bug: it propagates with its traceback, exit 1.
    except KeyboardInterrupt:
        resumable = args.command in ("split", "train", "demo")
        print("interrupted; run the same command again to resume" if resumable else "interrupted", file=sys.stderr)
        return 130
    # Arrow's readers keep helper threads until they are freed: free them now, while pyarrow is alive, so that
    # interpreter shutdown never tears down a live thread (std::terminate, exit -6: apache/arrow#34314).
    gc.collect()
    return code or 0
