"""A QuestSequence that fails on purpose at one batch (for fault tests).

It lives in an importable module, not in a test function, so worker
processes started with ``spawn`` or ``forkserver`` can unpickle it.
"""

import os
import signal

from questlearn.dataset import QuestSequence


class FaultySequence(QuestSequence):
    def __init__(self, *args, fault="raise", fail_at=5, **kwargs):
        super().__init__(*args, **kwargs)
        self.fault, self.fail_at = fault, fail_at

    def __getitem__(self, index):
        if index != self.fail_at:
            return super().__getitem__(index)
        if self.fault == "sigkill" and os.getpid() != self._owner_pid:
            os.kill(os.getpid(), signal.SIGKILL)
        if self.fault not in ("raise", "systemexit"):
            return super().__getitem__(index)
        error = OSError("injected read error") if self.fault == "raise" else SystemExit(3)
        reader, self.reader = self.reader, _BrokenReader(self.reader, error)
        try:
            return super().__getitem__(index)
        finally:
            self.reader = reader


class _BrokenReader:
    """Wraps a ShardReader; ``read`` raises the given error."""

    def __init__(self, reader, error):
        self._reader, self._error = reader, error

    def __getattr__(self, name):
        return getattr(self._reader, name)

    def read(self, segments):
        raise self._error
