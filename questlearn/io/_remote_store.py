"""Objects in a store, read through a ``pyarrow.fs`` filesystem: listings, ranged reads and streams.

:func:`questlearn.io.storage.locate` hands a URL's scheme, host and options to
:func:`remote_store`, which makes one :class:`RemoteStore` per store and
options. A :class:`RemoteStore` answers what a :class:`~questlearn.io.storage.LocalStore`
answers for paths; :class:`ReadAhead` is its sequential stream, which fetches
blocks ahead in threads, so no object is downloaded whole or held in memory.
Failures become one-line :class:`~questlearn.errors.StorageError` messages
from which every credential is removed (:meth:`RemoteStore.error`).
"""

from __future__ import annotations

import concurrent.futures
import datetime
import fnmatch
import hashlib
import io
import os
import re
import threading
from collections import deque
from pathlib import Path

from ..errors import IntegrityError, MissingPackageError, OptionError, StorageError
from ._places import GLOB_CHARACTERS, URL, Stat, count_fetched

#: Ranged reads: a stream's first block, its largest, and the blocks fetched ahead of the one being read.
FIRST_BLOCK = 64 * 1024  # what a CSV header read asks for: a file opened to check its header holds nothing more
LARGEST_BLOCK = 8 << 20
BLOCKS_AHEAD = 4
FETCH_PIECE = 4 << 20  # a whole object fetched into a cache is read in pieces of this size
FETCH_THREADS = 16  # shared by every stream: many files open at once cost no thread each
#: How often a request is tried (throttling, transient faults) before it fails, and the seconds it may take.
ATTEMPTS = 5
CONNECT_TIMEOUT = 10
REQUEST_TIMEOUT = 60
#: Option names and environment variables whose values are credentials: never shown.
SECRET_WORDS = ("key", "secret", "token", "password", "credential", "sas", "signature")
ENDPOINT_ENVIRONMENT = ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL")  # boto3's; pyarrow does not read them
SECRET_ENVIRONMENT = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AZURE_STORAGE_ACCOUNT_KEY",
                      "AZURE_STORAGE_SAS_TOKEN", "AZURE_CLIENT_SECRET", "GOOGLE_APPLICATION_CREDENTIALS")

_STORES: dict = {}


def remote_store(scheme: str, rest: str, options: dict) -> "RemoteStore":
    """The store of ``scheme://rest`` with ``options`` (made once per scheme, host, options and environment)."""
    host = rest.split("/", 1)[0] if scheme == "hdfs" else ""
    environment = [os.environ.get(name) for name in ENDPOINT_ENVIRONMENT + SECRET_ENVIRONMENT + ("AWS_PROFILE",)]
    key = (scheme, host, repr(sorted(options.items())), repr(environment))
    if key not in _STORES:
        _STORES[key] = RemoteStore(scheme, host, options)
    return _STORES[key]


class RemoteStore:
    """Objects in a store, through a ``pyarrow.fs`` filesystem.

    A place is the object's URL; :meth:`path_in_store` is its path for the
    filesystem (``bucket/key``).
    """

    remote = True

    def __init__(self, scheme: str, host: str, options: dict):
        self.scheme, self.host, self.options = scheme, host, options
        self.root = f"{scheme}://{host}"
        self.endpoint = None
        self.filesystem = self._filesystem()

    # -- the filesystem ---------------------------------------------------
    def _filesystem(self):
        import pyarrow.fs as pafs

        options, scheme = dict(self.options), self.scheme
        try:
            if scheme in ("s3", "s3a"):
                endpoint = options.get("endpoint_override") or next(
                    (os.environ[name] for name in ENDPOINT_ENVIRONMENT if os.environ.get(name)), None)
                if endpoint:
                    found = URL.match(endpoint)
                    if found:  # pyarrow takes host:port and the scheme apart
                        options.setdefault("scheme", found.group(1))
                        endpoint = found.group(2).rstrip("/")
                    options["endpoint_override"] = self.endpoint = endpoint
                options.setdefault("retry_strategy", pafs.AwsStandardS3RetryStrategy(max_attempts=ATTEMPTS))
                options.setdefault("connect_timeout", CONNECT_TIMEOUT)
                options.setdefault("request_timeout", REQUEST_TIMEOUT)
                return pafs.S3FileSystem(**options)
            if scheme in ("gs", "gcs"):
                options.setdefault("retry_time_limit", REQUEST_TIMEOUT)
                self.endpoint = options.get("endpoint_override")
                return pafs.GcsFileSystem(**options)
            if scheme in ("abfs", "abfss", "az"):
                options.setdefault("account_name", os.environ.get("AZURE_STORAGE_ACCOUNT_NAME"))
                if not options["account_name"]:
                    raise OptionError(f"{scheme}:// needs the storage account: --storage-option account_name=NAME, "
                                      "the environment's AZURE_STORAGE_ACCOUNT_NAME, or abfs://container@ACCOUNT."
                                      "dfs.core.windows.net/path")
                return pafs.AzureFileSystem(**options)
            if scheme == "hdfs":
                host, _, port = self.host.partition(":")
                return pafs.HadoopFileSystem(host or "default", int(port or 0), **options)
            return pafs.PyFileSystem(pafs.FSSpecHandler(_fsspec_filesystem(scheme, options)))
        except (TypeError, ValueError) as error:
            if isinstance(error, (OptionError, MissingPackageError)):
                raise
            raise OptionError(f"{scheme}://: the storage options do not fit its filesystem: "
                              f"{self._redacted(str(error))}") from None
        except OSError as error:
            raise StorageError(f"{self.root}: cannot open the store: {self._redacted(_first_line(error))}") from None

    def path_in_store(self, rest: str) -> str:
        """The filesystem's path of ``scheme://rest``: ``bucket/key`` (HDFS: ``/path``), no trailing ``/``."""
        if self.scheme == "hdfs":
            return "/" + rest.split("/", 1)[1].strip("/") if "/" in rest else "/"
        return rest.rstrip("/")

    def url(self, path: str) -> str:
        return self.root + path

    def _path(self, url: str) -> str:
        return url[len(self.root):]

    # -- listing ----------------------------------------------------------
    def kind(self, url: str) -> str:
        """``"dir"`` (a prefix holding objects), ``"file"`` or ``"missing"``; a missing bucket is refused."""
        import pyarrow.fs as pafs

        info = self._call(url, lambda: self.filesystem.get_file_info(self._path(url)))
        if info.type == pafs.FileType.File:
            return "file"
        if info.type == pafs.FileType.Directory:
            return "dir"
        bucket = self._path(url).lstrip("/").split("/", 1)[0]
        if self.scheme != "hdfs" and bucket and not GLOB_CHARACTERS & set(bucket):
            found = self._call(url, lambda: self.filesystem.get_file_info(bucket))
            if found.type == pafs.FileType.NotFound:
                raise StorageError(f"{url}: the bucket {bucket!r} does not exist (or these credentials, from "
                                   f"{self.credential_source()}, cannot see it): check the URL")
        return "missing"

    def children(self, url: str) -> list:
        """``[(url, is_dir)]`` of the objects and prefixes right under a prefix, in name order."""
        import pyarrow.fs as pafs

        infos = self._call(url, lambda: self.filesystem.get_file_info(pafs.FileSelector(self._path(url))))
        return sorted(((self.url(i.path), i.type == pafs.FileType.Directory) for i in infos),
                      key=lambda entry: self.name(entry[0]))

    def glob(self, pattern: str) -> list:
        """The objects a pattern matches, in name order (``*`` and ``?`` do not cross a ``/``)."""
        import pyarrow.fs as pafs

        path = self._path(pattern)
        parts = path.split("/")
        fixed = next(i for i, part in enumerate(parts) if GLOB_CHARACTERS & set(part))
        if fixed == 0:
            raise OptionError(f"{pattern}: a pattern cannot match bucket names; name the bucket and match the "
                              "objects in it (s3://bucket/logs/*.csv)")
        base = "/".join(parts[:fixed])
        wanted = parts[fixed:]
        selector = pafs.FileSelector(base, recursive=len(wanted) > 1, allow_not_found=True)
        infos = self._call(pattern, lambda: self.filesystem.get_file_info(selector))
        matches = []
        for info in infos:
            relative = info.path[len(base):].lstrip("/").split("/")
            if info.type == pafs.FileType.File and len(relative) == len(wanted) and all(
                    fnmatch.fnmatchcase(part, want) for part, want in zip(relative, wanted)):
                matches.append(self.url(info.path))
        return sorted(matches)

    def name(self, url: str) -> str:
        return url.rstrip("/").rsplit("/", 1)[-1]

    def parent(self, url: str) -> str:
        return url.rstrip("/").rsplit("/", 1)[0]

    def relative(self, url: str, base: str) -> str:
        return url[len(base.rstrip("/")) + 1:]

    def common_base(self, urls: list) -> str:
        split = [self._path(u).split("/")[:-1] for u in urls]
        common = []
        for parts in zip(*split):
            if len(set(parts)) > 1:
                break
            common.append(parts[0])
        return self.url("/".join(common))

    # -- reading ------------------------------------------------------------
    def stat(self, url: str) -> Stat:
        """Size, modification time and ETag (or generation) of an object (one HEAD request)."""
        opened = self.open_random(url)
        modified = _metadata(opened).get("Last-Modified")
        if modified:
            mtime_ns = int(datetime.datetime.fromisoformat(modified.replace("Z", "+00:00")).timestamp()) * 10**9
        else:
            mtime_ns = self._call(url, lambda: self.filesystem.get_file_info(self._path(url))).mtime_ns or 0
        return Stat(url, opened.size(), mtime_ns, _identity(opened))

    def read_range(self, url: str, offset: int, size: int) -> bytes:
        opened = self.open_random(url)
        return self._call(url, lambda: opened.read_at(max(0, min(size, opened.size() - offset)), offset))

    def open_random(self, url: str):
        """A seekable file whose reads are ranged requests (``pyarrow.parquet`` and ``zipfile`` read it)."""
        return self._call(url, lambda: self.filesystem.open_input_file(self._path(url)))

    def open_stream(self, url: str, start: int, shown: str) -> "ReadAhead":
        return ReadAhead(self, url, start)

    def sha256(self, url: str) -> str:
        digest, stream = hashlib.sha256(), self.open_stream(url, 0, url)
        try:
            buffer = bytearray(1 << 20)
            while got := stream.readinto(buffer):
                digest.update(memoryview(buffer)[:got])
        finally:
            stream.close()
        return digest.hexdigest()

    def same_file(self, url: str, local: Path) -> bool:
        return False  # an object in a store is never a file on this disk

    def join(self, url: str, relative: str) -> str:
        return url.rstrip("/") + "/" + relative

    def read_small(self, url: str, most: int) -> bytes:
        """The whole of a small object (a manifest); more than ``most`` bytes is refused."""
        opened = self.open_random(url)
        size = opened.size()
        if size > most:
            raise StorageError(f"{url} has {size} bytes, more than the {most} such a file can have: check the URL")
        data = self._call(url, lambda: opened.read_at(size, 0))
        count_fetched(len(data))
        return data

    def fetch(self, url: str, target: Path, entry: dict) -> None:
        """Download the object ``url`` whole into the new local file ``target``, verified against ``entry``.

        ``entry`` is the object's manifest record (``bytes``, ``sha256`` and,
        for a ``.npy`` file, ``data_offset``: where the hashed bytes start).
        The bytes are hashed as they arrive; every byte counts in
        :func:`fetched_bytes`.

        Raises
        ------
        IntegrityError
            The object's size or SHA-256 is not the recorded one (``target`` is removed).
        StorageError
            The store failed (one line naming ``url``).
        """
        digest, offset, done = hashlib.sha256(), int(entry.get("data_offset", 0)), 0
        stream = self._call(url, lambda: self.filesystem.open_input_stream(self._path(url)))
        try:
            with open(target, "wb") as out:
                while True:
                    try:
                        chunk = stream.read(FETCH_PIECE)
                    except OSError as error:
                        raise self.error(url, error) from None
                    if not chunk:
                        break
                    out.write(chunk)
                    if done + len(chunk) > offset:
                        digest.update(memoryview(chunk)[max(0, offset - done):])
                    done += len(chunk)
                    count_fetched(len(chunk))
                    if done > entry["bytes"]:
                        break
        finally:
            stream.close()
        found = digest.hexdigest()
        if done != entry["bytes"] or found != entry["sha256"]:
            target.unlink(missing_ok=True)
            what = (f"has {done if done <= entry['bytes'] else 'more than ' + str(entry['bytes'])} bytes, the split's "
                    f"manifest says {entry['bytes']}") if done != entry["bytes"] else (
                f"does not match the SHA-256 recorded in the split's manifest (recorded {entry['sha256'][:16]}..., "
                f"found {found[:16]}...)")
            raise IntegrityError(f"shard {url} {what}: it was replaced or damaged in the store after the split; "
                                 "run the split again into a new prefix")

    # -- faults -------------------------------------------------------------
    def _call(self, url: str, action):
        """``action()``, its failures as one-line :class:`StorageError` messages naming ``url``."""
        try:
            return action()
        except FileNotFoundError:
            raise StorageError(f"{url} does not exist (no such object or prefix): check the URL") from None
        except OSError as error:
            raise self.error(url, error) from None

    def error(self, url: str, error: Exception) -> StorageError:
        """What went wrong with ``url``, in one line without any credential."""
        text = str(error)
        bucket = self._path(url).lstrip("/").split("/", 1)[0]
        if re.search(r"NETWORK_CONNECTION|curlCode|[Cc]ould not connect|[Cc]ouldn't connect|timed out|resolve host",
                     text):
            where = self.endpoint or f"the {self.scheme} service's default endpoint"
            return StorageError(f"{url}: cannot reach the object store at {where} "
                                f"({self._redacted(_first_line(error))[:160]}): check "
                                "the endpoint (--storage-option endpoint_override=HOST:PORT, AWS_ENDPOINT_URL_S3) and "
                                "the network")
        if re.search(r"ACCESS_DENIED|AccessDenied|InvalidAccessKeyId|SignatureDoesNotMatch|"
                     r"INVALID_ACCESS_KEY_ID|SIGNATURE_DOES_NOT_MATCH|HTTP (?:response code:|status) 40[13]|Forbidden|"
                     r"[Uu]nauthori[sz]ed|[Ee]xpired[Tt]oken", text):
            return StorageError(f"{url}: the store refused access to the bucket {bucket!r} with the credentials from "
                                f"{self.credential_source()}: check those credentials and their rights on the bucket")
        if re.search(r"NO_SUCH_BUCKET|NoSuchBucket", text):
            return StorageError(f"{url}: the bucket {bucket!r} does not exist: check the URL")
        if re.search(r"SLOW_DOWN|SlowDown|THROTTL|Throttl|SERVICE_UNAVAILABLE|ServiceUnavailable|"
                     r"HTTP (?:response code:|status) 5\d\d|INTERNAL_FAILURE|RequestLimitExceeded", text):
            return StorageError(f"{url}: the object store is throttling or failing the requests, still after "
                                f"{ATTEMPTS} attempts with backoff ({self._redacted(_first_line(error))[:160]}): "
                                "try again later, or read fewer files at a time")
        return StorageError(f"{url}: {self._redacted(_first_line(error))}")

    def credential_source(self) -> str:
        """Where the credentials come from, in words (never their values)."""
        given = [k for k in self.options if any(word in k.lower() for word in SECRET_WORDS)]
        if self.options.get("anonymous"):
            return "nowhere (anonymous access, --storage-option anonymous=true)"
        if given:
            return "the storage options " + ", ".join(sorted(given))
        if self.scheme in ("s3", "s3a"):
            if os.environ.get("AWS_ACCESS_KEY_ID"):
                return "the environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY)"
            if os.environ.get("AWS_PROFILE"):
                return f"the AWS profile {os.environ['AWS_PROFILE']!r}"
            return "the AWS default chain (~/.aws/credentials, ~/.aws/config, the machine's role)"
        return f"the {self.scheme} store's default credential chain"

    def _redacted(self, text: str) -> str:
        secrets = [str(v) for k, v in self.options.items() if any(w in k.lower() for w in SECRET_WORDS)]
        secrets += [os.environ[name] for name in SECRET_ENVIRONMENT if os.environ.get(name)]
        for secret in sorted(secrets, key=len, reverse=True):
            if len(secret) >= 4:
                text = text.replace(secret, "***")
        return text


def _metadata(opened) -> dict:
    """``{name: text}`` of the metadata an opened object's HEAD request returned (empty where there is none)."""
    try:
        metadata = opened.metadata() or {}
    except (OSError, NotImplementedError):
        return {}
    return {str(k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else str(v))
            for k, v in metadata.items()}


def _identity(opened) -> str | None:
    """An object's ETag (S3, Azure) or generation (GCS): it changes whenever the object is written again."""
    metadata = _metadata(opened)
    value = next((metadata[k] for k in ("ETag", "Etag", "etag", "generation", "x-goog-generation") if metadata.get(k)),
                 None)
    return value.strip('"') if value else None


def _fsspec_filesystem(scheme: str, options: dict):
    """fsspec's filesystem for ``scheme``; a missing package is named."""
    try:
        import fsspec
        from fsspec.registry import known_implementations
    except ImportError:
        raise MissingPackageError(f"{scheme}:// is read through fsspec, which is not installed: pip install fsspec "
                                  f"(and the package for {scheme}://)") from None
    if scheme not in known_implementations and scheme not in fsspec.available_protocols():
        raise OptionError(f"{scheme}:// is not a storage scheme questlearn or fsspec knows: use s3://, gs://, abfs://, "
                          "hdfs://, file:// or a local path")
    try:
        return fsspec.filesystem(scheme, **options)
    except ImportError as error:
        hint = known_implementations.get(scheme, {}).get("err") or _first_line(error)
        raise MissingPackageError(f"{scheme}:// is read through fsspec, and its filesystem needs a package that is "
                                  f"not installed ({hint}): pip install it") from None


def _first_line(error: Exception) -> str:
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__


_POOL: list = []
_POOL_LOCK = threading.Lock()
def _fetch_pool() -> concurrent.futures.ThreadPoolExecutor:
    """The threads that fetch blocks ahead, made on first use."""
    with _POOL_LOCK:
        if not _POOL:
            _POOL.append(concurrent.futures.ThreadPoolExecutor(FETCH_THREADS,
                                                               thread_name_prefix="questlearn-read-ahead"))
        return _POOL[0]


class ReadAhead(io.RawIOBase):
    """An object read in order from ``start``: ranged reads, several in flight ahead of the reader.

    Blocks start at :data:`FIRST_BLOCK` bytes and double up to
    :data:`LARGEST_BLOCK`; the first is fetched when asked for, and the
    blocks fetched ahead grow by one per block read, to
    :data:`BLOCKS_AHEAD`: a file whose header alone is read costs one small
    request, and memory stays bounded.
    """

    def __init__(self, store: RemoteStore, url: str, start: int):
        self.store, self.url = store, url
        self.file = store.open_random(url)
        self.size = self.file.size()
        self.next_offset, self.block = start, FIRST_BLOCK
        self.pending: deque = deque()
        self.ahead, self.used = 1, 0  # blocks to hold in flight, blocks read
        self.buffer = memoryview(b"")

    def readable(self) -> bool:
        return True

    def _fetch(self) -> None:
        while len(self.pending) < self.ahead and self.next_offset < self.size:
            size = min(self.block, self.size - self.next_offset)
            self.pending.append(_fetch_pool().submit(self.file.read_at, size, self.next_offset))
            self.next_offset += size
            self.block = min(self.block * 2, LARGEST_BLOCK)

    def readinto(self, buffer) -> int:
        """Fill ``buffer`` (less only at the object's end)."""
        view, filled = memoryview(buffer).cast("B"), 0
        while filled < len(view):
            if not self.buffer:
                self._fetch()
                if not self.pending:
                    break
                try:
                    self.buffer = memoryview(self.pending.popleft().result())
                except OSError as error:
                    raise self.store.error(self.url, error) from None
                self.used += 1
                self.ahead = min(self.used - 1, BLOCKS_AHEAD)
                self._fetch()  # the next blocks are fetched while this one is used
                self.ahead = max(self.ahead, 1)  # the next block is fetched when asked for, at least
            count = min(len(view) - filled, len(self.buffer))
            view[filled:filled + count] = self.buffer[:count]
            self.buffer = self.buffer[count:]
            filled += count
        return filled

    def read_after(self, prefix: bytes, size: int) -> bytes:
        """``prefix`` followed by up to ``size`` more bytes."""
        data = bytearray(len(prefix) + size)
        data[:len(prefix)] = prefix
        got = self.readinto(memoryview(data)[len(prefix):])
        return bytes(memoryview(data)[:len(prefix) + got])

    def close(self) -> None:
        for future in self.pending:
            future.cancel()
        concurrent.futures.wait(self.pending)  # none still reads from the file being closed
        self.pending.clear()
        self.buffer = memoryview(b"")
        super().close()
