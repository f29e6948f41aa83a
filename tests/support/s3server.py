"""An S3 protocol server on 127.0.0.1 for the object-storage tests, and endpoints that fail on purpose.

:class:`S3Server` is moto's threaded server (a real S3 HTTP endpoint, its
objects in memory); :class:`FaultyEndpoint` answers every request with one
S3 error (403 InvalidAccessKeyId, 503 SlowDown...) and counts the requests;
:class:`CountingProxy` relays to a server and counts the bytes it sends
back. All of them listen on 127.0.0.1 only.
"""

import logging
import socket
import socketserver
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

#: Fake credentials for the tests' environment; the secret is recognisable, to look for it in every output.
ACCESS_KEY_ID = "testing-access-key-id"
SECRET_ACCESS_KEY = "sEcReT-tEsT-vAlUe-0123456789"


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class S3Server:
    """moto's S3 server on 127.0.0.1 (:attr:`endpoint` is ``http://127.0.0.1:PORT``)."""

    def __init__(self):
        from moto.server import ThreadedMotoServer

        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no line per request
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)

    def start(self) -> "S3Server":
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop()


def s3_filesystem(endpoint: str):
    """A pyarrow S3 filesystem on ``endpoint`` that may create buckets (the tests' own uploads)."""
    import pyarrow.fs as pafs

    return pafs.S3FileSystem(access_key=ACCESS_KEY_ID, secret_key=SECRET_ACCESS_KEY, region="us-east-1",
                             scheme="http", endpoint_override=endpoint.split("://", 1)[1],
                             allow_bucket_creation=True)


def upload(filesystem, local_path, key: str) -> None:
    """Copy a local file to ``key`` (``bucket/path``), in bounded pieces."""
    with open(local_path, "rb") as source, filesystem.open_output_stream(key, compression=None) as target:
        while piece := source.read(1 << 20):
            target.write(piece)


def put_files(s3, folder, prefix: str) -> None:
    """Every file of ``folder`` as an object under ``prefix`` of the ``s3`` fixture's bucket."""
    for path in sorted(folder.iterdir()):
        upload(s3.fs, path, f"{s3.bucket}/{prefix}/{path.name}")


def stored_objects(s3, prefix: str) -> dict:
    """``{name under prefix: bytes}`` of every object under ``prefix`` (directory markers left out)."""
    import pyarrow.fs as pafs

    base = f"{s3.bucket}/{prefix}"
    objects = {}
    for info in s3.fs.get_file_info(pafs.FileSelector(base, recursive=True, allow_not_found=True)):
        if info.type == pafs.FileType.File:
            with s3.fs.open_input_stream(info.path) as handle:
                objects[info.path[len(base) + 1:]] = handle.read()
    return objects


def gzip_part_files(folder, rows=(1000, 700, 900), seed=60):
    """Gzip part files of a finished Spark job (``_SUCCESS`` beside them) in the new folder ``folder``."""
    import gzip

    from questlearn.synth import write_quest_log

    folder.mkdir(parents=True)
    for index, count in enumerate(rows):
        plain = write_quest_log(folder / f"part-{index:05d}.csv", rows=count, seed=seed + index)
        (folder / f"part-{index:05d}.csv.gz").write_bytes(gzip.compress(plain.read_bytes()))
        plain.unlink()
    (folder / "_SUCCESS").write_bytes(b"")
    return folder


class _ServedOnLoopback:
    """A ``socketserver`` server (``self._server``) served by a thread (``self._thread``) while in a
    ``with`` block, on 127.0.0.1; shut down and closed at its end."""

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()


class FaultyEndpoint(_ServedOnLoopback):
    """An HTTP endpoint answering every request with ``status`` and the S3 error ``code``."""

    def __init__(self, status: int, code: str):
        endpoint = self
        self.requests = 0

        class Handler(BaseHTTPRequestHandler):
            def _answer(self):
                endpoint.requests += 1
                body = (f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{code}</Code>'
                        f"<Message>{code}</Message><RequestId>1</RequestId></Error>").encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/xml")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            do_GET = do_HEAD = do_PUT = do_POST = _answer

            def log_message(self, *args):
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.endpoint = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)


class CountingProxy(_ServedOnLoopback):
    """A TCP relay on 127.0.0.1 to ``target_port``; :attr:`bytes_back` counts what the server sent back.

    :meth:`cut` drops every connection and refuses new ones (the server looks down, its objects kept);
    :meth:`restore` relays again.
    """

    def __init__(self, target_port: int):
        proxy = self
        self.bytes_back = 0
        self.is_cut = False
        self._lock = threading.Lock()
        self._connections = set()

        class Relay(socketserver.BaseRequestHandler):
            def handle(self):
                if proxy.is_cut:
                    self.request.close()
                    return
                with socket.create_connection(("127.0.0.1", target_port)) as upstream:
                    for end in (self.request, upstream):  # no Nagle delay on each relayed request
                        end.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                    with proxy._lock:
                        proxy._connections.update((self.request, upstream))
                    up = threading.Thread(target=_pump, args=(self.request, upstream, None), daemon=True)
                    up.start()
                    _pump(upstream, self.request, proxy)
                    up.join(timeout=5)

        socketserver.ThreadingTCPServer.allow_reuse_address = True
        self._server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Relay)
        self._server.daemon_threads = True
        self.endpoint = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def cut(self) -> None:
        """Drop every open connection; new ones are closed at once until :meth:`restore`."""
        with self._lock:
            self.is_cut = True
            connections, self._connections = self._connections, set()
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def restore(self) -> None:
        self.is_cut = False

    def count(self, size: int) -> None:
        with self._lock:
            self.bytes_back += size



def _pump(source, target, counter) -> None:
    """Copy bytes from one socket to the other until either closes."""
    try:
        while data := source.recv(1 << 16):
            target.sendall(data)
            if counter is not None:
                counter.count(len(data))
    except OSError:
        pass
    finally:
        try:
            target.shutdown(socket.SHUT_WR)
        except OSError:
            pass
