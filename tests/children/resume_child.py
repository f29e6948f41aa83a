"""Run ``questlearn train`` and record, per trained batch, the attempt ids the model was fed.

Usage: python resume_child.py RECORD_FILE PAUSE_AT -- TRAIN_ARGS...

``RECORD_FILE`` gets one line per batch the model trained on:
``epoch batch id id id ...`` (``batch`` counts the epoch's batches from its
first, also in a resumed epoch; tests/support/batch_records.py). ``PAUSE_AT`` is ``EPOCH:BATCH`` or ``-``:
after recording that batch the process writes ``RECORD_FILE.paused`` and
sleeps, for the test to SIGKILL it mid-epoch.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "support"))


def main():
    record_path, pause_at = sys.argv[1], sys.argv[2]
    train_args = sys.argv[sys.argv.index("--") + 1:]
    pause = tuple(map(int, pause_at.split(":"))) if pause_at != "-" else None
    from batch_records import record_batches

    from questlearn.cli import main as cli_main

    record_batches(record_path, pause)
    sys.exit(cli_main(["train", *train_args]))


if __name__ == "__main__":
    main()
