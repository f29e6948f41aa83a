"""Ctrl-C during a split always reaches Python's handler.

pyarrow swaps in a SIGINT handler of its own around reads made from the main thread, and that
handler can drop the signal (it hands it to a pyarrow thread that may act after the read has
ended): a user's Ctrl-C was then lost and the split ran to its end. A child process splits a log
while a thread samples, through ``sigaction``, which function handles SIGINT; every sample must
find Python's. (The end-to-end Ctrl-C test is in tests/system/test_cli.py.)
"""

import sys

import pytest
from helpers import run_child

from questlearn.synth import write_quest_log


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads glibc's struct sigaction")
@pytest.mark.timeout(600)
@pytest.mark.parametrize("entry", ["cli", "api"])
def test_no_other_sigint_handler_is_installed_while_a_split_reads(tmp_path, entry):
    log = write_quest_log(tmp_path / "quests.csv", rows=40_000, seed=1)
    result = run_child("sigint_owner.py", entry, log, tmp_path / "split", timeout=540)
    assert result.returncode == 0, result.stderr[-3000:]
    counts = dict(line.split() for line in result.stdout.splitlines() if line.startswith(("SAMPLES", "FOREIGN")))
    assert int(counts["SAMPLES"]) > 100, result.stdout  # the sampler ran through the split
    assert int(counts["FOREIGN"]) == 0, f"pyarrow's handler was installed in {counts['FOREIGN']} of {counts['SAMPLES']} samples"
