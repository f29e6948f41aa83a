"""Shutting down a broken worker pool never blocks, even where ``Pool.terminate`` would."""

import subprocess
import sys

import pytest
from helpers import REPO, run_env

BROKEN_POOL = """
import multiprocessing, os, signal, sys, threading, time
sys.path.insert(0, {root!r})
from questlearn.data import _supervision as supervision

def broken_pool(context):
    pool = context.Pool(2)
    while len([p for p in pool._pool if p.is_alive()]) < 2:
        time.sleep(0.05)
    # Wait until a worker waits for tasks, holding the task queue's read lock (spawn workers take long to
    # get there on a busy machine): the lock can no longer be taken here.
    while pool._inqueue._rlock.acquire(block=False):
        pool._inqueue._rlock.release()
        time.sleep(0.05)
    time.sleep(0.3)
    workers = list(pool._pool)
    for process in workers:  # idle workers: one holds the task queue's read lock for good
        os.kill(process.pid, signal.SIGKILL)
    time.sleep(0.5)
    return pool, workers

if __name__ == "__main__":
    context = multiprocessing.get_context(sys.argv[1])
    pool, _ = broken_pool(context)
    plain = threading.Thread(target=pool.terminate, daemon=True)
    plain.start()
    plain.join(3)
    print("PLAIN_TERMINATE_BLOCKED", plain.is_alive(), flush=True)
    for process in list(pool._pool):  # its respawned workers would outlive this script
        process.kill()
    pool, workers = broken_pool(context)
    supervision._shut_down(pool, workers)
    alive = [p.pid for p in pool._pool if p.is_alive()]
    threads = [pool._worker_handler.is_alive(), pool._task_handler.is_alive(), pool._result_handler.is_alive()]
    print("SHUT_DOWN", pool._state, alive, threads, flush=True)
    os._exit(0)
"""


@pytest.mark.timeout(900)
@pytest.mark.parametrize("start_method", ["fork", "spawn"])
def test_shut_down_finishes_a_pool_whose_terminate_blocks(tmp_path, start_method):
    script = tmp_path / "broken_pool.py"
    script.write_text(BROKEN_POOL.format(root=str(REPO)))
    output = tmp_path / "output.txt"
    with open(output, "w") as handle:  # a file, not a pipe: a leftover worker cannot hold the test up
        subprocess.run([sys.executable, str(script), start_method], stdout=handle, stderr=subprocess.STDOUT,
                       timeout=900, env=run_env())
    result = subprocess.CompletedProcess([], 0, output.read_text(), "")
    assert "PLAIN_TERMINATE_BLOCKED True" in result.stdout, result.stdout + result.stderr[-2000:]  # the premise
    assert "SHUT_DOWN TERMINATE [] [False, False, False]" in result.stdout, result.stdout + result.stderr[-2000:]


def test_a_backend_error_quoting_a_failed_batch_is_raised_as_that_batch_load_error_with_its_cause():
    """TensorFlow's tf.data re-raises a batch's exception as an UnknownError quoting it."""
    from questlearn.data._supervision import BatchLoadError, batch_refusals_as_user_errors

    failure = BatchLoadError("a data worker process (pid 1) was killed by signal SIGKILL while loading batch 5")
    quoting = RuntimeError(f"Graph execution error: <stack traces unavailable> BatchLoadError: {failure} [[{{node PyFunc}}]]")
    with pytest.raises(BatchLoadError) as caught:
        with batch_refusals_as_user_errors():
            raise quoting
    assert str(caught.value) == str(failure) and caught.value.__cause__ is quoting
