"""Produce the next item of a pipeline stage in a background thread while the current one is used.

The split's pass reads a file as chunks (:meth:`questlearn.io._reader.SourceReader.chunks`):
:func:`read_ahead` cuts the next run while this one is parsed, and the pass
runs one stage ahead of the writes.
"""

from __future__ import annotations


def read_ahead(items):
    """Produce the next item in a background thread while this one is processed.

    numpy and pyarrow release the GIL, so scanning and parsing overlap on two
    cores. At most two items are in memory at once; an error in the
    producer is raised here, in order.

    The producing thread never outlives the split into interpreter shutdown:
    it stops when this generator is closed, and, should an error leave the
    generator suspended (held by a traceback until the garbage collector
    runs), an ``atexit`` hook stops and joins it. A daemon thread still
    inside numpy or pyarrow when the interpreter finalizes is ended by
    ``pthread_exit``, whose unwinding through C++ frames aborts the process
    (``terminate called without an active exception``; apache/arrow#45017).
    """
    import atexit
    import queue
    import threading

    handoff = queue.Queue(maxsize=1)
    stop = threading.Event()
    done = object()

    def produce():
        try:
            for item in items:
                while not stop.is_set():
                    try:
                        handoff.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            handoff.put(done)
        except BaseException as error:  # noqa: BLE001 - handed to the consumer
            handoff.put(error)

    def stop_and_join():
        stop.set()
        while thread.is_alive():
            try:
                handoff.get(timeout=0.1)  # unblocks a final put of ``done`` or an error
            except queue.Empty:
                pass

    thread = threading.Thread(target=produce, name="questlearn-scan-ahead", daemon=True)
    thread.start()
    atexit.register(stop_and_join)
    try:
        while True:
            try:
                item = handoff.get(timeout=0.1)
            except queue.Empty:
                # A producer stopped from outside (an exit hook; a nested
                # read-ahead's hooks run inner first) hands over nothing more.
                if not thread.is_alive() and handoff.empty():
                    raise RuntimeError("the read-ahead thread stopped before the end of its input") from None
                continue
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop_and_join()
        atexit.unregister(stop_and_join)
        items.close()
