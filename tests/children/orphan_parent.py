"""Start child processes guarded by :func:`questlearn._orphans.die_with_parent`, print their pids, wait.

Usage: python orphan_parent.py CASE [CASE ...]

Each CASE is ``START_METHOD:DEATH_SIGNAL:DELAY`` and starts one child. The
child waits DELAY seconds before it asks to die with its parent (a parent
killed while its child still starts), then sleeps. ``DEATH_SIGNAL`` is 1 to
ask Linux for the parent-death signal, 0 for the watch thread only. Under
``forkserver`` the child's parent is the server, so it is given this process
as its owner instead. Prints ``CHILD <pid> <case>`` per child.
"""

import multiprocessing
import os
import sys
import time

from questlearn._orphans import die_with_parent


def child(owner_pid: int, start_method: str, death_signal: bool, delay: float) -> None:
    time.sleep(delay)
    if start_method == "forkserver":
        die_with_parent(owner_pid=owner_pid, death_signal=death_signal)
    else:
        die_with_parent(owner_pid, death_signal=death_signal)
    time.sleep(600)


if __name__ == "__main__":
    for case in sys.argv[1:]:
        start_method, death_signal, delay = case.split(":")
        context = multiprocessing.get_context(start_method)
        process = context.Process(target=child, args=(os.getpid(), start_method, death_signal == "1", float(delay)),
                                  daemon=False)
        process.start()
        print(f"CHILD {process.pid} {case}", flush=True)
    time.sleep(600)
