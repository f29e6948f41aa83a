"""Start child processes with Keras already imported: a test helper, not part of questlearn.

Usage: python zygote.py   (started by tests/support/zygote.py; reads requests on stdin)

Every child script and ``questlearn`` command a test runs would spend about 8
CPU-seconds importing Keras and TensorFlow before doing anything. This process
imports them once, through ``questlearn.data._worker_imports`` as the data
workers' forkserver does (the backend imported, not started: no device probe, no computation,
so no thread but BLAS's idle pools; pyarrow's allocator without its background
thread; questlearn's modules that start no backend), and then, for each request (one JSON line on stdin), forks:

- a *monitor*, which forks the *child* and records the child's pid, then its
  exit status (``-N`` when killed by signal N, as ``subprocess`` reports it);
- the *child*, which takes the request's working folder, environment and
  standard streams (stdin ``/dev/null``, stdout and stderr to files), runs the
  script or module as ``__main__`` with the request's ``argv``, and exits as
  Python does: non-daemon threads joined, ``atexit`` handlers run, streams
  flushed; an uncaught ``KeyboardInterrupt`` ends it by SIGINT.

The child is a real process of its own (its own pid, killed and signalled as
any), started by this process instead of by the test: tests that check
what only a fresh interpreter shows (its start-up log, ``-W`` options, another
Keras backend, its parent) start a fresh interpreter instead.

Ends when its stdin closes (the test process ended).
"""

import atexit
import json
import os
import runpy
import signal
import sys
import threading
import traceback

# What a data worker imports, as the forkserver preloads it: Keras and its backend (start-up log filtered, backend
# not started), numpy and pyarrow (no jemalloc background thread), the shard readers
import questlearn.data._worker_imports  # noqa: E402,F401

import keras  # noqa: E402  (loaded above; named here for the READY line)
import numpy  # noqa: E402,F401
import pandas  # noqa: E402,F401
import pyarrow.csv  # noqa: E402,F401
import pyarrow.parquet  # noqa: E402,F401

# questlearn's modules that start no backend (those importing questlearn.quiet probe TensorFlow's devices,
# which starts its thread pools: a child imports them itself), and jsonschema as the manifest check imports it
import questlearn.cli  # noqa: E402,F401
import questlearn.data._batches  # noqa: E402,F401
import questlearn.data._shard_cache  # noqa: E402,F401
import questlearn.split._parallel  # noqa: E402,F401
import questlearn.split._sequential  # noqa: E402,F401
import questlearn.synth  # noqa: E402,F401
from questlearn.manifest import _validate  # noqa: E402

_validate._jsonschema()
if "questlearn.quiet" in sys.modules:
    raise RuntimeError("a module imported above starts the Keras backend: a forked child would inherit its threads")


def write_atomically(path, text):
    with open(path + ".tmp", "w") as handle:
        handle.write(text)
    os.replace(path + ".tmp", path)


def run_child(request):
    """In the child: become the requested process, run it, exit as Python would. Never returns."""
    code = 1
    try:
        for fd, name in ((1, "stdout"), (2, "stderr")):
            target = os.open(os.path.join(request["folder"], name), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            os.dup2(target, fd)
            os.close(target)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.close(null)
        sys.stdin = open(os.devnull)  # not the zygote's buffered requests
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        argv = request["argv"]
        sys.argv = list(argv)
        sys.path.insert(0, request["cwd"] if request.get("module") else os.path.dirname(os.path.abspath(argv[0])))
        try:
            run_main(request.get("module"), argv)
            code = 0
        except SystemExit as stop:
            if stop.code is None:
                code = 0
            elif isinstance(stop.code, int):
                code = stop.code
            else:
                print(stop.code, file=sys.stderr)
                code = 1
        except KeyboardInterrupt:
            traceback.print_exc()
            code = -signal.SIGINT
        except BaseException:
            traceback.print_exc()
            code = 1
        threading._shutdown()
        atexit._run_exitfuncs()
    except BaseException:  # the set-up above failed: say why, as a real interpreter would
        traceback.print_exc()
        code = 1
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:
                pass
        if code < 0:
            signal.signal(-code, signal.SIG_DFL)
            os.kill(os.getpid(), -code)
        os._exit(code & 0xFF)


def run_main(module, argv):
    """Run the module (``python -m``) or the script ``argv[0]`` as ``__main__``."""
    if module:
        runpy.run_module(module, run_name="__main__", alter_sys=True)
    else:
        runpy.run_path(argv[0], run_name="__main__")


def monitor(request):
    """In the monitor: fork the child, record its pid and then how it ended. Never returns."""
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    child = os.fork()
    if child == 0:
        run_child(request)
    folder = request["folder"]
    write_atomically(os.path.join(folder, "pid"), str(child))
    _, status = os.waitpid(child, 0)
    returncode = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
    write_atomically(os.path.join(folder, "status"), str(returncode))
    os._exit(0)


def main():
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # monitors are reaped by the kernel
    print("READY", keras.backend.backend(), flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        if os.fork() == 0:
            monitor(request)


if __name__ == "__main__":
    main()
