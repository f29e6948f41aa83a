"""Split a CSV (through the command line or ``split_csv``) while a thread samples which C function
handles SIGINT, and print how many samples found a handler other than Python's.

Usage: sigint_owner.py cli|api SOURCE OUT. Prints ``SAMPLES n`` and ``FOREIGN n``. Linux (glibc) only.
"""

import ctypes
import signal
import sys
import threading
import time


class SigAction(ctypes.Structure):  # glibc's struct sigaction on Linux
    _fields_ = [("handler", ctypes.c_void_p), ("mask", ctypes.c_ulong * 16), ("flags", ctypes.c_int),
                ("restorer", ctypes.c_void_p)]


libc = ctypes.CDLL(None, use_errno=True)


def sigint_handler_address() -> int:
    current = SigAction()
    if libc.sigaction(signal.SIGINT, None, ctypes.byref(current)) != 0:
        raise OSError(ctypes.get_errno(), "sigaction")
    return current.handler or 0


python_handler = sigint_handler_address()
samples, foreign = 0, 0
done = threading.Event()


def sample():
    global samples, foreign
    while not done.is_set():
        samples += 1
        foreign += sigint_handler_address() != python_handler
        time.sleep(0.0002)  # leave the GIL to the split


mode, source, out = sys.argv[1:4]
sampler = threading.Thread(target=sample, daemon=True)
sampler.start()
try:
    if mode == "cli":
        from questlearn.cli import main

        code = main(["split", source, out, "--no-progress", "--block-size", "16384"])
        assert code == 0, code
    else:
        from questlearn.split import split_csv

        split_csv(source, out, block_size=16384, verbose=False)
finally:
    done.set()
    sampler.join()
print(f"SAMPLES {samples}")
print(f"FOREIGN {foreign}")
