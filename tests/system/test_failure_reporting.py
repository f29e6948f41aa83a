"""The test log names a failure the moment it happens (the root conftest's report hook), so a run
stopped by a time limit, or hanging in a later test, still says what broke."""

import subprocess
import sys
import threading
import time

import pytest
from helpers import REPO, run_env

FAILING_THEN_HANGING = '''
import pathlib, time

def test_breaks():
    assert 1 == 2, "the injected failure"

def test_hangs():
    pathlib.Path("hanging").write_text("")
    time.sleep(600)
'''


@pytest.mark.timeout(900)
@pytest.mark.parametrize("workers", ["0", "1"])
def test_a_failure_is_named_while_a_later_test_still_runs(tmp_path, workers):
    (tmp_path / "test_injected.py").write_text(FAILING_THEN_HANGING)
    # The root conftest as a plugin, in a folder of its own: the report hook alone, no other options.
    command = [sys.executable, "-m", "pytest", "-p", "conftest", "-p", "no:cacheprovider", "-c", "/dev/null",
               "--rootdir", str(tmp_path), "-n", workers, "-p", "no:randomly", "test_injected.py"]
    env = {**run_env(), "PYTHONPATH": str(REPO)}
    process = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True)
    lines = []
    reader = threading.Thread(target=lambda: lines.extend(process.stdout), daemon=True)
    reader.start()
    deadline = time.monotonic() + 720
    named = False
    while time.monotonic() < deadline and process.poll() is None:
        named = any("FAILED" in line and "test_breaks" in line and "the injected failure" in line for line in lines)
        if named and (tmp_path / "hanging").exists():
            break
        time.sleep(0.1)
    process.kill()
    process.wait()
    reader.join(10)
    assert (tmp_path / "hanging").exists(), "".join(lines)[-3000:]
    assert named, "the failure was not named before the run was stopped:\n" + "".join(lines)[-3000:]
