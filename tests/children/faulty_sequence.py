"""A QuestSequence that fails on purpose while reading one batch (for fault tests).

It lives in an importable module, not in a test function, so worker
processes started with ``spawn`` or ``forkserver`` can unpickle it.
"""

import os
import signal
import threading

from questlearn.data.dataset import QuestSequence


class FaultySequence(QuestSequence):
    """Batch ``fail_at`` fails inside the shard reader.

    ``fault``: ``"raise"`` (OSError), ``"systemexit"`` or ``"sigkill"`` (the
    worker process kills itself mid-read, as the out-of-memory killer would).
    Any other value reads normally.
    """

    def __init__(self, *args, fault="raise", fail_at=5, **kwargs):
        super().__init__(*args, **kwargs)
        self.fault, self.fail_at = fault, fail_at

    def __getitem__(self, index):
        if index != self.fail_at or self.fault not in ("raise", "systemexit", "sigkill"):
            return super().__getitem__(index)
        # Only this thread's read of this batch fails: thread workers share the sequence, and another
        # thread loading the next batch meanwhile must read it as usual.
        reader, self.reader = self.reader, _BrokenReader(self.reader, self.fault, self._owner_pid)
        _failing.reader = self.reader
        try:
            return super().__getitem__(index)
        finally:
            _failing.reader = None
            self.reader = reader


_failing = threading.local()  # .reader: the broken reader this thread is reading a failing batch with


class _BrokenReader:
    """Wraps a ShardReader; ``read`` fails in the requested way in the thread loading the failing batch."""

    def __init__(self, reader, fault, owner_pid):
        self._reader, self._fault, self._owner_pid = reader, fault, owner_pid

    def __getattr__(self, name):
        return getattr(self._reader, name)

    def read(self, segments):
        if getattr(_failing, "reader", None) is not self:  # another thread's batch, read while this one fails
            return self._reader.read(segments)
        if self._fault == "sigkill":
            if os.getpid() != self._owner_pid:
                os.kill(os.getpid(), signal.SIGKILL)
            return self._reader.read(segments)
        raise OSError("injected read error") if self._fault == "raise" else SystemExit(3)
