"""Every process questlearn starts ends soon after its parent is killed (questlearn._orphans).

An orphan keeps the caller's stdout open, so a caller reading the output to
its end would hang: each test SIGKILLs a parent, then checks that its pipe
reaches end-of-file and that no process it started is still running.
"""

import subprocess
import sys
import threading
import time

import psutil
import pytest
from helpers import CHILDREN, child_command, run_env
from splits import SPLIT, write_parts

from questlearn.split._parallel import PARTS_DIR, SPLIT_WORKER_IMPORTS

END_SECONDS = 60  # the watch is half a second; 120x that leaves room for a 10x loaded machine and still
                 # catches what matters: an orphan that lives on


def start(command, **environment):
    """Popen with stdout (and stderr) piped; ``.lines`` fills as it prints, ``.eof`` is set at end-of-file."""
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               env={**run_env(), **environment}, cwd=CHILDREN, text=True)
    process.lines, process.eof = [], threading.Event()

    def read():
        for line in process.stdout:
            process.lines.append(line)
        process.eof.set()
    threading.Thread(target=read, daemon=True).start()
    return process


def watch_until(process, ready, seconds=240) -> dict:
    """The descendants of ``process`` seen until ``ready()`` (or the deadline), by pid."""
    seen, deadline = {}, time.monotonic() + seconds
    while time.monotonic() < deadline and process.poll() is None:
        seen.update(descendants(process.pid))
        if ready(seen):
            break
        time.sleep(0.01)
    assert process.poll() is None, f"the process ended before it could be killed: {''.join(process.lines)[-2000:]}"
    return seen


def descendants(pid: int) -> dict:
    try:
        return {child.pid: child for child in psutil.Process(pid).children(recursive=True)}
    except psutil.NoSuchProcess:
        return {}


def running(processes) -> list:
    alive = []
    for process in processes:
        try:
            if process.is_running() and process.status() != psutil.STATUS_ZOMBIE:
                alive.append(process)
        except psutil.NoSuchProcess:
            pass
    return alive


def assert_all_end_after_sigkill(process, seen: dict, cases: dict = None) -> None:
    """SIGKILL ``process``; its stdout must reach end-of-file and every descendant must end.

    ``cases`` names the case of a descendant (by pid) in the message of one that outlives it."""
    seen.update(descendants(process.pid))
    process.kill()
    output_ended = process.eof.wait(END_SECONDS)
    deadline = time.monotonic() + END_SECONDS
    while running(seen.values()) and time.monotonic() < deadline:
        time.sleep(0.1)
    survivors = running(seen.values())
    described = [(p.pid, (cases or {}).get(p.pid, ""), " ".join(p.cmdline())[-120:]) for p in survivors]
    for survivor in survivors:  # leave nothing behind, pass or fail
        survivor.kill()
    process.wait()
    assert not survivors, f"processes outlived their killed parent by {END_SECONDS} s: {described}"
    assert output_ended, "the killed process's stdout never reached end-of-file"


def cmdline(process) -> str | None:
    """``process``'s command line, or None once it is gone."""
    try:
        return " ".join(process.cmdline())
    except psutil.Error:
        return None


def cmdlines(seen: dict) -> list:
    return [line for line in map(cmdline, seen.values()) if line is not None]


# -- the helper ------------------------------------------------------------------------
# START_METHOD:DEATH_SIGNAL:DELAY, one child each, all of one parent; delay: the parent is killed before
# the child asks to die with it (last, so the others have asked by then; 10 s, far past the kill even on a busy machine).
CHILD_CASES = ["fork:0:0", "spawn:1:0", "spawn:0:0", "forkserver:1:0", "forkserver:0:0", "spawn:1:10"]


@pytest.mark.timeout(900)
def test_a_child_that_asks_to_die_with_its_parent_ends_when_the_parent_is_sigkilled():
    parent = start(child_command("orphan_parent.py", *CHILD_CASES))

    def cases(found):
        return {int(line.split()[1]): line.split()[2] for line in parent.lines
                if line.startswith("CHILD ") and int(line.split()[1]) in found}

    seen = watch_until(parent, lambda found: len(cases(found)) == len(CHILD_CASES))
    time.sleep(1.5)  # the children without a delay have asked by now
    assert_all_end_after_sigkill(parent, seen, cases(seen))


@pytest.mark.timeout(1200)
def test_local_training_processes_end_when_their_launcher_is_sigkilled(id_split, tmp_path):
    launch = "import sys; from questlearn.train._launch import launch_local; sys.exit(launch_local(sys.argv[1:], 2))"
    launcher = start([sys.executable, "-c", launch, "train", str(id_split), "--model-dir",
                      str(tmp_path / "model"), "--epochs", "500", "--batch-size", "16", "--workers", "1"],
                     KERAS_BACKEND="jax")
    seen = watch_until(launcher, lambda found: sum("--process-id" in line for line in cmdlines(found)) == 2)
    time.sleep(1.0)
    assert_all_end_after_sigkill(launcher, seen)


# -- the commands and worker pools ---------------------------------------------------
@pytest.fixture(scope="module")
def parts(tmp_path_factory):
    return write_parts(tmp_path_factory.mktemp("orphans") / "parts", rows=(3000, 2500, 3000, 2000), nasty=True)


@pytest.mark.timeout(1440)
@pytest.mark.parametrize("moment", ["pool start-up", "mid-pass"])
def test_a_sigkilled_parallel_split_leaves_no_process_behind_and_its_output_ends(parts, tmp_path, moment):
    out = tmp_path / "out"
    split = start([*SPLIT, "--parallel", "2", str(parts), str(out)])

    def ready(found):
        if moment == "pool start-up":  # the pool's server exists, still importing: before any initializer ran
            return any("forkserver import main" in line or "spawn_main" in line for line in cmdlines(found))
        return any(path.is_file() for path in (out / PARTS_DIR).rglob("*"))  # a part has started writing its shards
    seen = watch_until(split, ready)
    if moment == "mid-pass":  # the part processes are forked by a server that preloaded the splitter
        servers = [process for process in seen.values() if SPLIT_WORKER_IMPORTS in (cmdline(process) or "")]
        assert servers and descendants(servers[0].pid), cmdlines(seen)
    assert_all_end_after_sigkill(split, seen)


@pytest.mark.timeout(1440)
@pytest.mark.parametrize("start_method", ["forkserver", "spawn", "fork"])
def test_data_workers_inside_a_slow_batch_end_when_the_training_process_is_sigkilled(id_split, start_method):
    trainer = start(child_command("orphan_fit_child.py", id_split, start_method))
    seen = watch_until(trainer, lambda found: "FITTING\n" in trainer.lines)
    time.sleep(2.0)  # both workers are inside slow batches now
    assert_all_end_after_sigkill(trainer, seen)
