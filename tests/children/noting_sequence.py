"""A ``QuestSequence`` whose worker processes note, at their first batch, whether they started preloaded."""

import os
import sys

from questlearn.data.dataset import QuestSequence

PRELOAD = "questlearn.data._worker_imports"  # imported by the forkserver alone: a worker has it only when forked from it


class NotingSequence(QuestSequence):
    """Each worker process writes ``note_dir/<pid>`` once, at its first batch: ``preloaded`` when it was
    forked from a forkserver that had imported :data:`PRELOAD` (Keras and the readers), ``fresh`` when not."""

    def __init__(self, *args, note_dir, **kwargs):
        super().__init__(*args, **kwargs)
        self.note_dir = str(note_dir)

    def __getitem__(self, index):
        path = os.path.join(self.note_dir, str(os.getpid()))
        if os.getpid() != self._owner_pid and not os.path.exists(path):
            with open(path, "w") as note:
                note.write("preloaded" if PRELOAD in sys.modules else "fresh")
        return super().__getitem__(index)


def notes(note_dir) -> list:
    """What each worker noted, one entry per worker process."""
    result = []
    for name in sorted(os.listdir(note_dir)):
        with open(os.path.join(note_dir, name)) as note:
            result.append(note.read())
    return result
