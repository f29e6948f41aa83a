"""Child processes started from a process that has imported Keras once (tests/children/zygote.py).

:func:`start` returns a :class:`ZygoteProcess`, which answers like a
``subprocess.Popen`` with text output (``pid``, ``poll``, ``wait``,
``communicate``, ``send_signal``, ``kill``, ``returncode``); :func:`usable`
says whether a request can go to the zygote (same interpreter, no interpreter
options, the zygote's Keras backend and ``PYTHONPATH``). One zygote per test process, started on
first use; it ends when the test process does.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import weakref
from pathlib import Path

CHILDREN = Path(__file__).resolve().parents[1] / "children"
# Read as an interpreter starts (PYTHONPATH) or as Keras is imported (KERAS_BACKEND): fixed in the zygote, to the
# values the test process had when this module was imported (a test may change its own environment later).
FIXED = {"KERAS_BACKEND": os.environ.get("KERAS_BACKEND") or "tensorflow", "PYTHONPATH": os.environ.get("PYTHONPATH", "")}
_lock = threading.Lock()
_server = None


def _zygote():
    """The running zygote (started on first use): ``(Popen, backend)``."""
    global _server
    with _lock:
        if _server is None or _server[0].poll() is not None:
            env = {**os.environ, **FIXED, "PYTHONUNBUFFERED": "1"}
            env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
            process = subprocess.Popen([sys.executable, str(CHILDREN / "zygote.py")], stdin=subprocess.PIPE,
                                       stdout=subprocess.PIPE, text=True, env=env, cwd=CHILDREN)
            ready = process.stdout.readline().split()
            if ready[:1] != ["READY"]:
                raise RuntimeError(f"the test zygote did not start: {ready}")
            _server = (process, ready[1])
        return _server


def usable(python=sys.executable, python_options=(), env=None) -> bool:
    """True when a child with these settings can be forked from the zygote instead of started fresh."""
    if python != sys.executable or python_options:
        return False
    env = os.environ if env is None else env
    return (env.get("KERAS_BACKEND") or "tensorflow") == FIXED["KERAS_BACKEND"] \
        and env.get("PYTHONPATH", "") == FIXED["PYTHONPATH"]


class ZygoteProcess:
    """A child forked by the zygote, seen from the test: a ``Popen`` with text stdout and stderr.

    Its monitor reaps it as it ends, so, unlike a ``Popen``'s child, its pid may be given to another
    process once :meth:`poll` has reported it ended: signal it only while it runs (``send_signal`` checks).
    """

    def __init__(self, argv, *, cwd, env, module=None):
        self.args = list(argv)
        self.returncode = None
        self._folder = tempfile.mkdtemp(prefix="zygote-")
        weakref.finalize(self, shutil.rmtree, self._folder, True)  # removed with this object, however it ends
        for name in ("stdout", "stderr"):
            open(os.path.join(self._folder, name), "w").close()
        # read ends, as Popen's pipes are (the child writes the files these open)
        self.stdout, self.stderr = (open(os.path.join(self._folder, name), encoding="utf-8", errors="replace")
                                    for name in ("stdout", "stderr"))
        request = {"argv": [str(a) for a in argv], "cwd": str(cwd), "env": dict(env), "module": module,
                   "folder": self._folder}
        server, _ = _zygote()
        with _lock:
            server.stdin.write(json.dumps(request) + "\n")
            server.stdin.flush()
        deadline = time.monotonic() + 300
        pid_file = os.path.join(self._folder, "pid")
        while not os.path.exists(pid_file):
            if time.monotonic() > deadline or server.poll() is not None:
                raise RuntimeError("the test zygote did not start the child")
            time.sleep(0.002)
        with open(pid_file) as handle:
            self.pid = int(handle.read())

    def poll(self):
        if self.returncode is None:
            status = os.path.join(self._folder, "status")
            if os.path.exists(status):
                with open(status) as handle:
                    self.returncode = int(handle.read())
        return self.returncode

    def wait(self, timeout=None):
        deadline = None if timeout is None else time.monotonic() + timeout
        pause = 0.002
        while self.poll() is None:
            if deadline is not None and time.monotonic() > deadline:
                raise subprocess.TimeoutExpired(self.args, timeout)
            time.sleep(pause)
            pause = min(pause * 1.5, 0.05)
        return self.returncode

    def communicate(self, timeout=None):
        try:
            self.wait(timeout)
        except subprocess.TimeoutExpired as late:
            late.stdout, late.stderr = self._output()  # what it printed so far, as subprocess.run attaches it
            raise
        output = self._output()
        for stream in (self.stdout, self.stderr):
            stream.close()
        return output

    def _output(self):
        texts = []
        for stream in (self.stdout, self.stderr):
            stream.seek(0)
            texts.append(stream.read())
        return tuple(texts)

    def send_signal(self, signum):
        if self.poll() is None:
            os.kill(self.pid, signum)

    def kill(self):
        self.send_signal(signal.SIGKILL)

    def terminate(self):
        self.send_signal(signal.SIGTERM)


def start(argv, *, cwd, env, module=None) -> ZygoteProcess:
    """Fork ``argv`` (a script path and its arguments; or, with ``module``, the module's argv) from the zygote."""
    return ZygoteProcess(argv, cwd=cwd, env=env, module=module)


def run(argv, *, cwd, env, timeout, module=None) -> subprocess.CompletedProcess:
    """:func:`start` and wait, as ``subprocess.run(..., capture_output=True, text=True, timeout=...)`` does
    (the child is killed when the timeout passes)."""
    process = start(argv, cwd=cwd, env=env, module=module)
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired as late:
        process.kill()
        process.wait()
        late.stdout, late.stderr = process._output()
        raise
    return subprocess.CompletedProcess(argv, process.returncode, stdout, stderr)
