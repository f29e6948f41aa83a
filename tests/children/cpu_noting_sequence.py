"""A ``QuestSequence`` whose worker processes note the CPU time they had used when they loaded their first batch.

Each worker writes ``<pid>`` (its user + system seconds) into ``note_dir`` once; ``noted_seconds``
reads them back. A worker that imported Keras and its backend itself has several seconds by then;
one forked from a forkserver that preloaded them has a fraction of a second.
"""

import os
import resource

from questlearn.data.dataset import QuestSequence


class CpuNotingSequence(QuestSequence):
    def __init__(self, *args, note_dir, **kwargs):
        super().__init__(*args, **kwargs)
        self.note_dir = str(note_dir)

    def __getitem__(self, index):
        path = os.path.join(self.note_dir, str(os.getpid()))
        if os.getpid() != self._owner_pid and not os.path.exists(path):
            usage = resource.getrusage(resource.RUSAGE_SELF)
            with open(path, "w") as note:
                note.write(repr(usage.ru_utime + usage.ru_stime))
        return super().__getitem__(index)


def noted_seconds(note_dir) -> list:
    return [float(open(os.path.join(note_dir, name)).read()) for name in sorted(os.listdir(note_dir))]
