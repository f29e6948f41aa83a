"""Every process questlearn starts ends within about a second of its parent.

A worker left running after its parent was killed (``kill -9``, the
out-of-memory killer, a closed notebook kernel) goes on holding the
caller's stdout and stderr open, so a caller that reads the output to its
end (``subprocess.run(..., capture_output=True)``, a shell pipe, a CI job)
waits as long as the orphan lives; it also keeps files locked and memory
used. A worker blocked on its task queue lives forever: the queue's pipe
stays open in the worker itself, so it never sees the end of input.

:func:`die_with_parent`, called first thing in a child process (a pool's
``initializer``, or at start-up), makes the child end when its parent dies,
two ways:

* **Parent-death signal** (Linux only): ``prctl(PR_SET_PDEATHSIG,
  SIGKILL)``, through ``ctypes``. The kernel sends it when the *thread*
  that forked the child exits, not the whole process. It is therefore only
  asked for where the forking thread lives as long as the child: the thread
  that runs a ``ProcessPoolExecutor`` ``with`` block and submits its tasks,
  or the thread that waits for the processes of
  :func:`questlearn.train._launch.launch_local`. Keras starts its
  ``PyDataset`` workers from a thread that ends before the last batches
  are loaded; they rely on the watch below only.
* **Watch thread** (every platform and start method): a daemon thread
  checks every :data:`POLL_SECONDS` whether the process's parent changed
  (the orphan is adopted by init or a subreaper) or, where given, whether
  another process is gone (the program that owns the workers, when a
  ``forkserver`` stands between them: the server outlives its children,
  which hold its pipe), and then ends the process with ``os._exit``. A
  killed parent that nobody has reaped yet (a zombie) counts as gone.

A parent that died before the child got this far (a kill during the pool's
start-up, while the child still imported its modules) is caught at once:
the child is given its parent's pid and compares it with ``os.getppid()``.

The helper processes ``multiprocessing`` starts by itself need nothing: the
resource tracker ends when the last process holding its pipe (the parent
and every ``spawn``/``forkserver`` child) is gone, and the ``forkserver``
when its parent and its children are.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time

POLL_SECONDS = 0.5
ORPHAN_EXIT_CODE = 1
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
PARENT_ENVIRONMENT = "QUESTLEARN_DIE_WITH_PARENT"  # "PID" or "PID:signal" for a questlearn command started as a child

_guarded_pid = None  # the process whose watch thread runs (a forked child must start its own)


def die_with_parent(parent_pid: int | None = None, *, owner_pid: int | None = None, death_signal: bool = True) -> None:
    """End this process when its parent dies (call it first thing in a child process).

    Parameters
    ----------
    parent_pid : int, optional
        The pid the parent had when it started this process
        (``os.getpid()`` there); default the current ``os.getppid()``. If
        the parent is already gone, this process ends here.
    owner_pid : int, optional
        A further process whose end ends this one, for a parent that is not
        the owner (the ``forkserver``, which lives as long as its children).
        A zombie or, on Linux, a recycled pid counts as ended.
    death_signal : bool
        Ask Linux for ``SIGKILL`` when the parent exits. Only when the
        *thread* that started this process lives as long as it does (see
        the module notes); the watch thread runs either way.
    """
    global _guarded_pid
    if _guarded_pid == os.getpid():
        return
    expected = os.getppid() if parent_pid is None else int(parent_pid)
    owner = None if owner_pid is None else (int(owner_pid), _identity(int(owner_pid)))
    if death_signal:
        _ask_for_death_signal()
    if _orphaned(expected, owner):  # gone before the signal was asked for: nobody will send it
        os._exit(ORPHAN_EXIT_CODE)
    _guarded_pid = os.getpid()
    threading.Thread(target=_watch, args=(expected, owner), name="questlearn-parent-watch", daemon=True).start()


def child_environment(environment: dict | None = None, *, death_signal: bool = True) -> dict:
    """``environment`` (default ``os.environ``) plus what makes a ``python -m questlearn``
    child end with this process (see :func:`die_with_parent_from_environment`).

    ``death_signal``: the thread that starts the child waits for it to its end
    (the parent-death signal fires when that thread exits).
    """
    marker = f"{os.getpid()}:signal" if death_signal else str(os.getpid())
    return {**(os.environ if environment is None else environment), PARENT_ENVIRONMENT: marker}


def die_with_parent_from_environment() -> None:
    """In a questlearn command started with :func:`child_environment`: end with that parent.

    The variable is removed, so this command's own children do not inherit it.
    """
    marker = os.environ.pop(PARENT_ENVIRONMENT, "")
    pid, _, how = marker.partition(":")
    if pid.isdigit():
        die_with_parent(int(pid), death_signal=how == "signal")


def is_running(pid: int) -> bool:
    """Whether process ``pid`` runs (a zombie does not; on Windows, always True: not checked there)."""
    return _identity(pid) is not None


def _ask_for_death_signal() -> bool:
    """``prctl(PR_SET_PDEATHSIG, SIGKILL)`` on Linux; False where unavailable."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0) == 0
    except (OSError, AttributeError):  # no prctl in this C library
        return False


def _orphaned(parent_pid: int, owner: tuple | None) -> bool:
    return os.getppid() != parent_pid or (owner is not None and (owner[1] is None or _identity(owner[0]) != owner[1]))


def _identity(pid: int):
    """What tells process ``pid`` apart while it runs; ``None`` once it is dead (a zombie too).

    On Linux its start time (``/proc/PID/stat``), so a recycled pid is a
    different process; elsewhere whether ``os.kill(pid, 0)`` finds it.
    """
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            fields = handle.read().rpartition(b")")[2].split()  # after the command name, which may hold anything
        return None if fields[0] in (b"Z", b"X") else int(fields[19])  # state; start time (field 22)
    except FileNotFoundError:
        return None if os.path.isdir("/proc/self") else _exists(pid)
    except (OSError, IndexError, ValueError):
        return _exists(pid)


def _exists(pid: int):
    if os.name != "posix":  # on Windows, os.kill(pid, 0) would end that process: no owner check there
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except OSError:  # exists, owned by someone else
        return True
    return True


def _watch(parent_pid: int, owner: tuple | None) -> None:
    while not _orphaned(parent_pid, owner):
        time.sleep(POLL_SECONDS)
    os._exit(ORPHAN_EXIT_CODE)
