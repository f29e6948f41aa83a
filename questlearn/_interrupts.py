"""Ctrl-C always reaches Python's own SIGINT handler, never pyarrow's.

Around a blocking call made from the main thread (``pyarrow.csv.read_csv``,
which the split's pass makes for every run of records), pyarrow swaps in a
cancelling SIGINT handler of its own. That handler only writes the signal to
a pipe; a separate pyarrow thread reads it and cancels the call in progress
(``arrow/util/cancel.cc``). When that thread runs late, as on a busy machine,
the call has already returned, pyarrow has restored Python's handler and
retired the call's stop source, and the thread finds nothing to cancel: the
Ctrl-C is dropped, and a split the user interrupted runs to its end.

questlearn reads in short runs, so waiting for the current one to end costs
nothing noticeable: with pyarrow's handler off, the signal goes to Python's
handler, which raises ``KeyboardInterrupt`` as soon as the run returns.
"""

from __future__ import annotations


def keep_interrupts_in_python() -> None:
    """Turn off pyarrow's cancelling SIGINT/SIGTERM handlers for this process.

    Called by the command line and by :func:`questlearn.split.split_csv`. It
    changes pyarrow's process-wide setting: a long pyarrow call of the
    caller's own is then interrupted when it returns rather than cancelled
    mid-way.
    """
    import pyarrow as pa

    pa.enable_signal_handlers(False)
