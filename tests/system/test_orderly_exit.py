"""Error exits are orderly: exit code 2, one message line, no native abort at shutdown."""

import subprocess
import sys

import numpy as np
import pytest
from helpers import REPO, run_env

from questlearn.synth import write_quest_log

SUSPENDED_READ_AHEAD = """
import atexit, sys, threading
import numpy as np
sys.path.insert(0, {root!r})
from questlearn.split._sequential import _read_ahead

def report():  # registered first, so it runs after questlearn's own exit hooks
    alive = [t.name for t in threading.enumerate() if t.name == "questlearn-scan-ahead"]
    print("ALIVE_AT_EXIT", alive, flush=True)

atexit.register(report)

def blocks():
    while True:
        yield np.random.default_rng(0).random(200_000).sum()  # numpy work, as the scanner does

def passed_on(items):
    for item in items:
        yield item

reader = {reader}
next(reader)
KEPT = [reader]  # left suspended, as a traceback in a reference cycle keeps it after an error
"""


@pytest.mark.timeout(900)
@pytest.mark.parametrize("reader", ["_read_ahead(blocks())",
                                    "_read_ahead(passed_on(_read_ahead(blocks())))"],  # the split's stages nest
                         ids=["one stage", "nested stages"])
def test_the_scan_ahead_thread_is_stopped_before_interpreter_shutdown(reader):
    """A daemon thread still in numpy/pyarrow at finalization is ended by pthread_exit, which can abort
    the process ('terminate called without an active exception'). Nested stages stop too: the inner
    stage's exit hook runs first, and the outer stage must not then wait forever for it."""
    code = SUSPENDED_READ_AHEAD.format(root=str(REPO), reader=reader)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=900, env=run_env())
    assert result.returncode == 0, result.stderr[-2000:]
    assert "ALIVE_AT_EXIT []" in result.stdout, result.stdout + result.stderr[-2000:]


@pytest.mark.timeout(1800)
def test_many_splits_ending_in_a_conversion_error_exit_with_code_2(tmp_path):
    from questlearn.schema._sampling import FIRST_BYTES, PIECE_BYTES, SAMPLE_PIECES

    log = write_quest_log(tmp_path / "quests.csv", rows=150_000, seed=4)
    lines = log.read_text().split("\n")
    # A word in a numeric column in a gap between the schema sample's pieces, so that the pass (not the
    # sample) meets it, with the next block being scanned ahead.
    total = log.stat().st_size
    gap_start = max(FIRST_BYTES, total // (SAMPLE_PIECES + 1) + PIECE_BYTES)
    gap_end = 2 * total // (SAMPLE_PIECES + 1)
    assert gap_end - gap_start > 200_000
    offsets = np.cumsum([len(line) + 1 for line in lines])
    bad = int(np.searchsorted(offsets, (gap_start + gap_end) // 2))
    fields = lines[bad].split(",")
    fields[4] = "abc"
    lines[bad] = ",".join(fields)
    log.write_text("\n".join(lines))
    runs = 6
    commands = [[sys.executable, "-m", "questlearn", "split", str(log), str(tmp_path / f"out{i}"),
                 "--block-size", "65536", "--no-progress"] for i in range(runs)]
    for first in range(0, runs, 2):  # two at a time: the machine has two cores
        processes = [subprocess.Popen(c, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=run_env())
                     for c in commands[first:first + 2]]
        for process in processes:
            _, stderr = process.communicate(timeout=900)
            assert "terminate called" not in stderr and process.returncode == 2, (process.returncode, stderr[-2000:])
            assert stderr.strip().count("\n") == 0 and stderr.startswith("questlearn split: error: "), stderr
            assert f"line {bad + 1}" in stderr and "'abc'" in stderr and "sample made it numeric" in stderr
