"""TensorFlow's start-up log: which lines are noise, and a filter for file descriptor 2.

:mod:`questlearn.quiet` imports Keras through :func:`filtered_stderr`; the
forkserver of the data workers (:mod:`questlearn.data._worker_imports`)
imports it the same way without starting the backend.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

#: Lines TensorFlow/CUDA print while starting that say nothing actionable.
NOISE = re.compile(
    r"^("
    r"WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    r"|[IW]\d{4} \S+ +\d+ \S+:\d+\] .*"  # glog INFO / WARNING lines
    r"|E\d{4} \S+ +\d+ \S+:\d+\] (failed call to cuInit|Unable to register cu(DNN|FFT|BLAS) factory"
    r"|computation placer already registered"
    r"|oneDNN supports DT_BOOL only on platforms with AVX-512).*"
    r"|To enable the following instructions: .*rebuild TensorFlow with the appropriate compiler flags\."
    r"|.*rebuild TensorFlow with the appropriate compiler flags\."
    r")\s*$"
)


def is_noise(line: str) -> bool:
    """True for a TensorFlow/CUDA start-up log line that carries no error."""
    return bool(NOISE.match(line))


@contextlib.contextmanager
def filtered_stderr():
    """Capture file descriptor 2; on exit, re-emit the lines that are not noise.

    Falls back to doing nothing when descriptor 2 cannot be duplicated
    (e.g. it is closed).
    """
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    try:
        saved = os.dup(2)
    except OSError:
        yield
        return
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield
        finally:
            with contextlib.suppress(Exception):
                sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            kept = [line for line in capture.read().decode("utf-8", "replace").splitlines() if line.strip() and not is_noise(line)]
            if kept:
                print("\n".join(kept), file=sys.stderr, flush=True)
