"""Fault injection for notebook 02's lesson (not part of questlearn).

Worker processes must import what they run: under ``spawn`` and
``forkserver`` (Python 3.14's default on Linux) a class or function defined
in a notebook cell cannot be found by a worker, so these live in a module
next to the notebooks.
"""

import os
import signal

from questlearn.data import QuestSequence


def kill_this_process():
    """Die at once, as a worker does when the out-of-memory killer picks it."""
    os.kill(os.getpid(), signal.SIGKILL)


class WorkerKilledSequence(QuestSequence):
    """A QuestSequence whose worker process is SIGKILLed while loading batch ``kill_at``."""

    def __init__(self, *args, kill_at=3, **kwargs):
        super().__init__(*args, **kwargs)
        self.kill_at = kill_at

    def __getitem__(self, index):
        if index != self.kill_at:
            return super().__getitem__(index)
        reader, self.reader = self.reader, _KillingReader(self.reader, self._owner_pid)
        try:
            return super().__getitem__(index)  # notes the batch for the watchdog, then reads
        finally:
            self.reader = reader


class _KillingReader:
    """Wraps a ShardReader; ``read`` kills the calling worker process."""

    def __init__(self, reader, owner_pid):
        self._reader, self._owner_pid = reader, owner_pid

    def __getattr__(self, name):
        return getattr(self._reader, name)

    def read(self, segments):
        if os.getpid() != self._owner_pid:  # never kill the notebook's own kernel
            kill_this_process()
        return self._reader.read(segments)
