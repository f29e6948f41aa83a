"""Make Keras worker processes fail loudly instead of hanging.

Keras runs ``PyDataset`` workers in a ``multiprocessing.Pool`` and waits on
each batch with ``AsyncResult.get()`` and no timeout. If a worker dies (the
OS out-of-memory killer sends SIGKILL) its batch never arrives and ``fit``
hangs forever (CPython gh-66587). And after an ordinary exception the pool
can stay alive with its workers.

Each worker process notes, in a small file per pid, the batch it is loading
and deletes the note when the batch is done. A watchdog thread in the
training process looks at Keras's pools every ``POLL_SECONDS``. When a
worker died (its exit code, a replaced worker, or a note whose process is
gone), or a worker reported a failed batch, it fails every pending batch
of that pool with a :class:`BatchLoadError` naming the batch and shards the
worker was loading, so ``fit`` raises within about a second; shortly after,
it shuts the pool down so no worker processes are left behind.

The watchdog itself never blocks: ``Pool.terminate()`` can wait forever on
a queue lock that a killed worker held, or on a pipe nobody reads any more
(gh-66587), so each failed pool is shut down by its own short-lived daemon
thread, which kills the pool's workers outright if terminating takes longer
than ``KILL_AFTER_SECONDS``. The watchdog goes on supervising every pool,
old and new, for the life of the process (a notebook cell run again).

This reaches into Keras's ``py_dataset_adapter._DATA_POOLS`` and the
standard library's ``Pool`` internals (``_pool``, ``_cache``, ``_state``).
``tests/data/test_dataset_workers.py`` fails if either changes shape.
"""

from __future__ import annotations

import atexit
import collections
import multiprocessing.pool
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
import weakref
from contextlib import contextmanager
from pathlib import Path

from .. import errors
from ..errors import QuestlearnError

POLL_SECONDS = 0.2
TERMINATE_AFTER_SECONDS = 2.0
KILL_AFTER_SECONDS = 3.0
EXIT_WAIT_SECONDS = 30.0  # a bound, not a pause: the wait ends as soon as the killed workers have exited

_watchdog_lock = threading.Lock()
_watchdog_thread = None
_held_pools = set()  # every pool the watchdog has seen running, held until it has closed or been shut down
_held_lock = threading.Lock()
_pooled_workers = set()  # pids the watchdog has seen in a pool: their notes are that pool's, not a later one's


class BatchLoadError(RuntimeError):
    """A batch could not be loaded; the message names the batch and shards.

    Parameters
    ----------
    message : str
        What failed, naming the batch and its shards.
    user_error : type, optional
        The :mod:`questlearn.errors` class of the loader's refusal when the
        cause is the user's to fix (a damaged or changed shard file); ``None``
        when it is a bug or a dead worker. It survives pickling, so a
        worker process's refusal reaches the training process intact.
    """

    def __init__(self, message: str, user_error: type | None = None):
        super().__init__(message)
        self.user_error = user_error
        _recent_failures.append(self)  # made, or unpickled from a worker, in this process

    def __reduce__(self):
        return type(self), (str(self), self.user_error)

    def as_user_error(self) -> Exception:
        """The error to show the user: ``user_error(message)`` if the cause was theirs to fix, else this one."""
        return self if self.user_error is None else self.user_error(str(self))


# The latest failed batches made or received in this process: TensorFlow's tf.data turns the exception of a
# batch into an op error of its own (an UnknownError) that only quotes the message, by which it is found again.
_recent_failures = collections.deque(maxlen=16)


def user_error_class(error: BaseException) -> type | None:
    """The nearest :mod:`questlearn.errors` class of ``error`` (``None`` for a bug)."""
    if not isinstance(error, QuestlearnError):
        return None
    return next(kind for kind in type(error).__mro__ if kind.__module__ == QuestlearnError.__module__)


@contextmanager
def batch_refusals_as_user_errors():
    """Raise a failed batch as questlearn's named error, once the data workers it started have ended.

    The failed batch is a :class:`BatchLoadError`, or the backend's error
    quoting one (TensorFlow's ``tf.data`` re-raises a batch's exception as
    an ``UnknownError`` of its own). A cause that is the user's (a damaged
    shard) is raised as that named error, which the ``questlearn`` command
    prints as one line; any other is raised as the :class:`BatchLoadError`,
    with its message and the backend's error as its cause, and keeps its
    traceback. On every backend, before the error leaves, the worker pools
    started inside the block are terminated and their workers joined
    (:func:`end_pools_started_since`), so none is left running.
    """
    before = _data_pools()
    try:
        yield
    except Exception as error:
        failure = error if isinstance(error, BatchLoadError) else _failure_quoted_by(error)
        if failure is None:
            raise
        end_pools_started_since(before)
        if failure.user_error is not None:
            raise failure.as_user_error() from None
        if failure is error:
            raise
        raise BatchLoadError(str(failure)) from error


def _failure_quoted_by(error: Exception) -> BatchLoadError | None:
    text = str(error)
    return next((failure for failure in reversed(_recent_failures) if str(failure) in text), None)


def _data_pools() -> weakref.WeakSet:
    """Keras's worker pools alive now, and those the watchdog holds (none when Keras's data adapter was never
    imported). Keras lists its pools in a weak set: when ``fit`` fails it drops a pool that may still have
    workers running, so the watchdog keeps each pool it has seen until the pool has ended."""
    adapter = sys.modules.get("keras.src.trainers.data_adapters.py_dataset_adapter")
    pools = weakref.WeakSet(adapter._DATA_POOLS) if adapter is not None else weakref.WeakSet()
    with _held_lock:
        pools.update(_held_pools)
    return pools


def end_pools_started_since(before) -> None:
    """Terminate Keras's worker pools not in ``before`` and wait for their workers to end.

    Each pool is shut down as :func:`_shut_down` does it (killing its
    workers if terminating hangs), here in the calling thread, so the
    wait is bounded by about ``2 * KILL_AFTER_SECONDS`` a pool.
    """
    for pool in [pool for pool in _data_pools() if pool not in before]:
        _shut_down(pool, list(pool._pool))


def heartbeat_dir(owner_pid: int) -> Path:
    """Where the workers of training process ``owner_pid`` note their batch."""
    return Path(tempfile.gettempdir()) / f"questlearn-workers-{owner_pid}"


def note_batch_started(owner_pid: int, description: str) -> None:
    """Record, from a worker process, which batch it is loading now."""
    try:
        (heartbeat_dir(owner_pid) / str(os.getpid())).write_text(description, encoding="utf-8")
    except OSError:
        pass  # supervision is best effort: never fail a batch because of it


def note_batch_finished(owner_pid: int) -> None:
    """Remove this worker's note: a note left behind means it died mid-batch."""
    try:
        (heartbeat_dir(owner_pid) / str(os.getpid())).unlink()
    except OSError:
        pass


def note_batch_failed(owner_pid: int, message: str, user_error: type | None = None) -> None:
    """Record, from a worker process, that its batch failed with ``message`` (see :class:`BatchLoadError`)."""
    try:
        with open(heartbeat_dir(owner_pid) / f"{os.getpid()}.failed", "x", encoding="utf-8") as handle:
            # "x": the first failure is the one to report; the first line names the user's error class, if any
            handle.write(f"{user_error.__name__ if user_error else ''}\n{message}")
    except OSError:
        pass


def watch_worker_pools() -> None:
    """Start the watchdog thread of this process (once; idempotent)."""
    global _watchdog_thread
    with _watchdog_lock:
        if _watchdog_thread is not None and _watchdog_thread.is_alive():
            return
        directory = heartbeat_dir(os.getpid())
        directory.mkdir(parents=True, exist_ok=True)
        atexit.register(shutil.rmtree, directory, True)
        _watchdog_thread = threading.Thread(target=_watch, name="questlearn-worker-watchdog", daemon=True)
        _watchdog_thread.start()


def _watch() -> None:
    from keras.src.trainers.data_adapters import py_dataset_adapter

    records = weakref.WeakKeyDictionary()
    while True:
        time.sleep(POLL_SECONDS)
        with _held_lock:
            _held_pools.update(pool for pool in list(py_dataset_adapter._DATA_POOLS) if pool._state == "RUN")
            watched = list(_held_pools)
        for pool in watched:
            try:
                record = records.setdefault(pool, {"seen": {}, "initial": None, "failed": None,
                                                   "born": time.time() - POLL_SECONDS - 0.5})
                _check(pool, record)
            except Exception:  # pragma: no cover - a watchdog must never die
                continue


def _check(pool, record: dict) -> None:
    workers = list(pool._pool)
    for process in workers:
        record["seen"].setdefault(process.pid, process)
        _pooled_workers.add(process.pid)
    if record["initial"] is None and len(workers) == pool._processes:
        record["initial"] = {process.pid for process in workers}
    if record["failed"] is None and pool._state == "RUN":
        record["failed"] = _find_failure(record, workers)
    if record["failed"] is None:
        if pool._state != "RUN" and not record.get("forgotten"):
            _forget(list(record["seen"]))  # the pool closed normally
            _release(pool)
            record["forgotten"] = True
        return
    error, since = record["failed"]
    for result in list(pool._cache.values()):
        try:
            result._set(0, (False, error))
        except (KeyError, AttributeError):
            pass
    if time.monotonic() - since > TERMINATE_AFTER_SECONDS and not record.get("shutting_down"):
        record["shutting_down"] = True
        workers = list(record["seen"].values())
        threading.Thread(target=_shut_down, args=(pool, workers), name="questlearn-pool-shutdown",
                         daemon=True).start()


def _shut_down(pool, workers) -> None:
    """Terminate a failed pool, killing its workers if terminating hangs.

    Runs in a thread of its own, never in the watchdog's. ``Pool.terminate``
    first takes the pool's task-queue read lock (held for good by a worker
    killed while waiting for a task) and then writes to the result queue
    (whose write lock a killed worker may hold, and whose reader may have
    stopped). If it is not done after ``KILL_AFTER_SECONDS``, the workers are
    killed and those two locks released, which lets it finish; if it still
    cannot, this daemon thread is left waiting, harmlessly, with no worker
    process alive.
    """
    terminator = threading.Thread(target=_quietly, args=(pool.terminate,), name="questlearn-pool-terminate", daemon=True)
    terminator.start()
    terminator.join(KILL_AFTER_SECONDS)
    if terminator.is_alive():
        workers = list({process.pid: process for process in [*workers, *list(pool._pool)]}.values())
        for process in workers:
            if process.exitcode is None:
                _quietly(process.kill)
        for process in workers:
            _quietly(process.join, 1.0)
        for lock in (getattr(pool._inqueue, "_rlock", None), getattr(pool._outqueue, "_wlock", None)):
            if lock is not None:
                _quietly(lock.release)  # ValueError when nobody holds it: fine
        terminator.join(KILL_AFTER_SECONDS)
    # Terminating may have returned at once (another thread was terminating the pool) or failed half-way
    # (a dead result handler), and the pool may have replaced a dead worker since. Its worker handler starts
    # a replacement before it lists it in ``pool._pool``, so stop that thread first, then end whichever is left.
    _stop_replacing_workers(pool)
    workers = list({process.pid: process for process in [*workers, *list(pool._pool)]}.values())
    _end_processes(workers)
    _forget([process.pid for process in workers])
    _release(pool)


def _release(pool) -> None:
    """Stop holding a pool that has closed or been shut down."""
    with _held_lock:
        _held_pools.discard(pool)


def _end_processes(workers) -> None:
    """Terminate each worker still running, then kill those that outlive ``KILL_AFTER_SECONDS``, and wait
    (at most ``EXIT_WAIT_SECONDS``) until each has exited: a killed process on a busy machine takes a
    moment to end, and the caller promises that none is left."""
    for end, wait in (("terminate", KILL_AFTER_SECONDS), ("kill", EXIT_WAIT_SECONDS)):
        running = [process for process in workers if process.exitcode is None]
        for process in running:
            _quietly(getattr(process, end))
        deadline = time.monotonic() + wait
        for process in running:
            _quietly(process.join, max(deadline - time.monotonic(), 0.01))


def _stop_replacing_workers(pool) -> None:
    """Stop the pool's worker handler (which replaces dead workers) and wait, bounded, for it to end."""
    handler = getattr(pool, "_worker_handler", None)
    if handler is None or handler is threading.current_thread():
        return
    handler._state = multiprocessing.pool.TERMINATE
    notifier = getattr(pool, "_change_notifier", None)
    if notifier is not None:
        _quietly(notifier.put, None)  # wakes the handler from its wait on the workers' sentinels
    handler.join(EXIT_WAIT_SECONDS)  # ends as soon as a replacement it is starting (slow on a busy machine) is listed


def _quietly(function, *args) -> None:
    try:
        function(*args)
    except Exception:  # noqa: BLE001 - shutting down a broken pool is best effort
        pass


def _forget(pids) -> None:
    """Delete the notes of a pool's workers, so a recycled pid starts clean (a later pool's worker may be
    given one of these pids, and its own note must then count)."""
    owner = heartbeat_dir(os.getpid())
    for pid in pids:
        _pooled_workers.discard(pid)
        for name in (str(pid), f"{pid}.failed"):
            try:
                (owner / name).unlink()
            except OSError:
                pass


def _find_failure(record: dict, workers):
    owner = heartbeat_dir(os.getpid())
    for process in list(record["seen"].values()):
        failed = owner / f"{process.pid}.failed"
        if failed.exists():
            return _noted_failure(failed.read_text(encoding="utf-8")), time.monotonic()
        code = process.exitcode
        if code is not None and code != 0:
            return BatchLoadError(_death_message(process.pid, code, owner)), time.monotonic()
    current = {process.pid for process in workers}
    if record["initial"] is not None:
        newcomers = current - record["initial"]
        if newcomers:
            vanished = record["initial"] - current
            pid = min(vanished) if vanished else min(newcomers)
            return BatchLoadError(_death_message(pid, None, owner)), time.monotonic()
    # A worker that died before the watchdog first saw the pool: its note of the
    # batch it was loading (workers delete the note when a batch is done),
    # written since the pool started, outlives it. A note of a worker seen in
    # another pool (an earlier fit, whose shutdown may still be under way) is not this pool's.
    try:
        notes = [p for p in owner.iterdir()
                 if p.name.isdigit() and int(p.name) not in current and int(p.name) not in _pooled_workers]
    except OSError:
        notes = []
    for note in notes:
        try:
            recent = note.stat().st_mtime >= record["born"]
        except OSError:
            continue
        if recent and not _alive(int(note.name)):
            error = BatchLoadError(_death_message(int(note.name), None, owner))
            _forget([int(note.name)])  # this pool's now: a fit started next must not take it for its own
            return error, time.monotonic()
    return None


def _noted_failure(note: str) -> BatchLoadError:
    """The :class:`BatchLoadError` a worker noted with :func:`note_batch_failed`."""
    kind, _, message = note.partition("\n")
    user_error = getattr(errors, kind, None) if kind in errors.__all__ else None
    return BatchLoadError(message, user_error)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


def _death_message(pid: int, code, owner: Path) -> str:
    if code is not None and code < 0:
        try:
            how = f"was killed by signal {signal.Signals(-code).name}"
        except ValueError:
            how = f"was killed by signal {-code}"
        if code == -signal.SIGKILL:
            how += " (the OS out-of-memory killer does this: lower workers, max_queue_size or batch_size)"
    elif code is not None:
        how = f"exited with code {code}"
    else:
        how = "died (it was replaced by the pool)"
    try:
        doing = " while loading " + (owner / str(pid)).read_text(encoding="utf-8")
    except OSError:
        doing = ""
    return f"a data worker process (pid {pid}) {how}{doing}; stopping instead of waiting forever for its batch"
