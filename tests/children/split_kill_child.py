"""Run ``questlearn split`` and SIGKILL it at the N-th time it reaches a chosen point.

Usage: python split_kill_child.py POINT N COUNT_FILE -- SPLIT_ARGS...

``POINT`` is one of :data:`POINTS`: a step of the split where a crash must be
survivable (a shard write, a journal write, a shard closing, a rename or
atomic replace, the journal's durability sync). ``N`` = 0 kills nothing and
writes to ``COUNT_FILE`` how often each point was reached, so the test can
choose kill points spread over a whole run, the final renames included.
Checkpoints are made every few kilobytes, so a small source has many.
"""

import json
import os
import signal
import sys


def main():
    point, nth, count_file = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    split_args = sys.argv[sys.argv.index("--") + 1:]
    import questlearn.split._journal as journal
    import questlearn.io.storage as storage
    import questlearn.split._sequential as split
    import questlearn.split._shards as shardfiles
    from questlearn.cli import main as cli_main

    split.CHECKPOINT_BYTES = 40_000
    counts = dict.fromkeys(POINTS, 0)

    def reached(name):
        counts[name] += 1
        if name == point and counts[name] == nth:
            os.kill(os.getpid(), signal.SIGKILL)

    def wrap(owner, attribute, name, after=False):
        original = getattr(owner, attribute)

        def wrapped(*args, **kwargs):
            if not after:
                reached(name)
            result = original(*args, **kwargs)
            if after:
                reached(name)
            return result
        setattr(owner, attribute, wrapped)

    wrap(journal.Append, "__call__", "append")
    wrap(journal.Append, "__call__", "after_append", after=True)
    wrap(journal.WriteJournal, "__call__", "journal")
    wrap(journal.CloseShard, "__call__", "close")
    wrap(journal.CloseShard, "__call__", "after_close", after=True)
    wrap(shardfiles.os, "pwrite", "header")
    wrap(storage.os, "replace", "replace")  # the os module: every rename, the final names and the manifest's
    wrap(storage.os, "replace", "after_replace", after=True)
    wrap(journal, "sync_file_system", "sync")
    try:
        code = cli_main(["split", *split_args])
    finally:
        if nth == 0:
            with open(count_file, "w") as handle:
                json.dump(counts, handle)
    sys.exit(code)


POINTS = ("append", "after_append", "journal", "close", "after_close", "header", "replace", "after_replace", "sync")

if __name__ == "__main__":
    main()
