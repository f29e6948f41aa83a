"""Where a source's bytes live: this machine's disk or an object store, behind one interface.

:func:`locate` turns what the user passed (a local path, ``file://``,
``s3://``, ``gs://``, ``abfs://``/``az://``, ``hdfs://``, or any scheme an
installed fsspec package knows) into a store and a place in it. Both stores
offer what the readers need, and this module is the only one that tells
them apart:

- :class:`LocalStore`: paths, read with ``os`` and ``open`` as they always were;
- :class:`RemoteStore`: objects, through a ``pyarrow.fs`` filesystem:
  listings, ranged reads (``open_input_file``), and a sequential stream that
  fetches blocks ahead in threads (:class:`ReadAhead`), so no object is ever
  downloaded whole or held in memory.

A place is a :class:`~pathlib.Path` on this machine, or the object's URL
(``s3://bucket/key``) in a store. Options for a store's constructor come from
``storage_options`` (``--storage-option KEY=VALUE``); S3 also takes its
endpoint from ``AWS_ENDPOINT_URL_S3`` or ``AWS_ENDPOINT_URL``, which pyarrow
does not read itself. Credentials come from each store's own chain; their
values never appear in a message (:meth:`RemoteStore.error` removes them).
"""

from __future__ import annotations

import concurrent.futures
import datetime
import fnmatch
import glob
import hashlib
import io
import os
import re
import threading
from collections import deque
from dataclasses import dataclass
from pathlib import Path

from ..errors import InputFormatError, IntegrityError, MissingPackageError, OptionError, StorageError

URL = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://(.*)$", re.S)
GLOB_CHARACTERS = set("*?[")
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


@dataclass(frozen=True)
class Stat:
    """What a file or object is now: its resolved place, size, modification time and, in a store, its ETag
    (or GCS generation), which changes when the object is replaced."""

    where: object
    size: int
    mtime_ns: int
    etag: str | None = None


def locate(item, storage_options: dict | None = None):
    """``(store, place)`` of a path or URL (``storage_options`` are for a store; a local path has none).

    Raises
    ------
    OptionError
        An unknown scheme, or storage options its filesystem does not take.
    MissingPackageError
        A scheme whose fsspec package is not installed.
    """
    match = URL.match(str(item)) if isinstance(item, str) else None
    if match is None or match.group(1).lower() == "file":
        path = Path(match.group(2)) if match else Path(item)
        return LOCAL, path
    scheme, rest, options = match.group(1).lower(), match.group(2), dict(storage_options or {})
    first, slash, path = rest.partition("/")
    if scheme in ("abfs", "abfss") and "@" in first:  # abfs://container@ACCOUNT.dfs.core.windows.net/path
        container, _, account_host = first.partition("@")
        options.setdefault("account_name", account_host.split(".")[0])
        rest = container + slash + path
    store = _remote_store(scheme, rest, options)
    return store, store.url(store.path_in_store(rest))


def parse_storage_options(pairs) -> dict:
    """``{key: value}`` from ``KEY=VALUE`` texts (``--storage-option``): ``true``/``false`` and numbers as such."""
    options = {}
    for pair in pairs or ():
        key, equals, value = pair.partition("=")
        if not equals or not key.strip():
            raise OptionError(f"--storage-option takes KEY=VALUE (e.g. endpoint_override=127.0.0.1:9000), got "
                              f"{key.strip() or pair!r}")
        options[key.strip()] = _typed(value.strip())
    return options


def _typed(text: str):
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    for kind in (int, float):
        try:
            value = kind(text)
        except ValueError:
            continue
        if str(value) == text:  # "0123" or "1e3" stay text, as given
            return value
    return text


class LocalStore:
    """Files on this machine's disk."""

    remote = False

    def kind(self, path: Path) -> str:
        """``"dir"``, ``"file"`` (a dangling link too: :meth:`stat` names it) or ``"missing"``."""
        if path.is_dir():
            return "dir"
        return "file" if path.is_file() or _dangling(path) else "missing"

    def children(self, folder: Path) -> list:
        """``[(path, is_dir)]`` of a folder's entries, in name order."""
        return [(p, p.is_dir()) for p in sorted(folder.iterdir(), key=lambda p: p.name)]

    def glob(self, pattern: Path) -> list:
        """The files (and dangling links) a pattern matches, in name order."""
        return [Path(m) for m in sorted(glob.glob(str(pattern))) if Path(m).is_file() or _dangling(Path(m))]

    def name(self, path: Path) -> str:
        return path.name

    def parent(self, path: Path) -> Path:
        return path.parent

    def relative(self, path: Path, base: Path) -> str:
        return str(path.relative_to(base))

    def common_base(self, paths: list) -> Path:
        return Path(os.path.commonpath([str(p) for p in paths]))

    def stat(self, path: Path) -> Stat:
        """The file's resolved path, size and modification time.

        Raises
        ------
        InputFormatError
            A dangling symbolic link, or not a regular file.
        """
        if _dangling(path):
            raise InputFormatError(f"{path} is a symbolic link to {os.readlink(path)!r}, which does not exist: "
                                   "fix or remove the link")
        if not path.is_file():
            raise InputFormatError(f"{path} is not a regular file (a device, socket or pipe?): pass data files only")
        resolved = Path(path).resolve()
        stat = resolved.stat()
        return Stat(resolved, stat.st_size, stat.st_mtime_ns)

    def read_range(self, path: Path, offset: int, size: int) -> bytes:
        with open(path, "rb") as handle:
            handle.seek(offset)
            return handle.read(size)

    def open_random(self, path: Path):
        """What ``pyarrow.parquet.ParquetFile`` and ``zipfile.ZipFile`` open: the path itself."""
        return str(path)

    def open_stream(self, path: Path, start: int, shown: str) -> "LocalStream":
        return LocalStream(path, start, shown)

    def sha256(self, path: Path) -> str:
        from ..manifest._files import sha256_of

        return sha256_of(path)

    def same_file(self, path: Path, local: Path) -> bool:
        """Whether ``path`` is the file ``local`` (reached by any path or link)."""
        return os.path.samefile(local, path)

    def join(self, path: Path, relative: str) -> Path:
        return Path(path) / relative


def _dangling(path: Path) -> bool:
    """Whether ``path`` is a symbolic link to nothing."""
    return path.is_symlink() and not path.exists()


class LocalStream:
    """A local file read from ``start`` on."""

    def __init__(self, path: Path, start: int, shown: str):
        self.handle, self.shown = open(path, "rb"), shown
        self.handle.seek(start)

    def readinto(self, view) -> int:
        return self.handle.readinto(view) or 0

    def read_after(self, prefix: bytes, size: int) -> bytes:
        """``prefix`` (the bytes just read) and up to ``size`` more, in one read: ``prefix`` is read again
        rather than copied in front of the new bytes."""
        start = self.handle.tell() - len(prefix)
        data = os.pread(self.handle.fileno(), len(prefix) + size, start)
        if len(data) < len(prefix) or data[:len(prefix)] != prefix:
            raise IntegrityError(f"{self.shown} changed while it was being read; split again")
        self.handle.seek(start + len(data))
        return data

    def close(self) -> None:
        self.handle.close()


LOCAL = LocalStore()
_STORES: dict = {}


def _remote_store(scheme: str, rest: str, options: dict) -> "RemoteStore":
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
        _count_fetched(len(data))
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
                    _count_fetched(len(chunk))
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
_FETCHED = [0]
_FETCHED_LOCK = threading.Lock()


def _count_fetched(size: int) -> None:
    with _FETCHED_LOCK:
        _FETCHED[0] += size


def fetched_bytes() -> int:
    """Bytes this process has downloaded whole from stores (shards and manifests fetched into a cache)."""
    return _FETCHED[0]


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


# -- outputs ------------------------------------------------------------------
#: Bytes read or sent at a time while uploading a file or reading an object back.
TRANSFER_BLOCK = 8 << 20


def output_is_url(out) -> bool:
    """Whether ``out`` names a place in a store (a URL other than ``file://``), not a path on this machine."""
    match = URL.match(out) if isinstance(out, str) else None
    return bool(match) and match.group(1).lower() != "file"


def open_output(out, storage_options: dict | None = None, staging_dir=None):
    """Where a split writes: a :class:`LocalOutput` (a folder on this disk) or a :class:`RemoteOutput`
    (a prefix in an object store, its shards written first in a local staging folder).

    ``staging_dir`` is the staging folder of a store's output (default:
    ``$XDG_CACHE_HOME``, else ``~/.cache``, then ``questlearn/staging/`` and
    a hash of the output's URL); a local output takes none.
    """
    store, place = locate(str(out) if isinstance(out, Path) else out, storage_options)
    if not store.remote:
        if staging_dir is not None:
            raise OptionError("--staging-dir is for an output in an object store (s3://...); a local output folder "
                              "is written in place: leave it out")
        return LocalOutput(Path(out))
    if staging_dir is None:
        cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        staging_dir = Path(cache) / "questlearn" / "staging" / hashlib.sha256(place.encode()).hexdigest()[:16]
    return RemoteOutput(store, place, Path(staging_dir))


class LocalOutput:
    """A split written in place, in a folder of this disk: nothing to upload, every hook a no-op."""

    checkpoint_each_wave = False  # a local checkpoint costs a sync: made every so many bytes of source only
    remote = False

    def __init__(self, folder: Path):
        self.folder, self.shown = Path(folder), str(folder)

    def check_apart(self, sources) -> None:
        """Paths are checked by :func:`questlearn.split._output.check_output_apart`."""

    def disk_need(self, total: int, one_wave: int) -> int:
        """Bytes this disk must hold: every shard."""
        return total

    def disk_note(self, needed: int, free: int) -> str:
        from .._sizes import human_size

        return f"{human_size(free)} free in {self.folder}"

    def stored_names(self):
        """None: the folder is the output itself."""
        return None

    def place(self, name: str) -> str:
        """The path of ``name`` in the output."""
        return str(self.folder / name)

    def exists(self, name: str) -> bool:
        return (self.folder / name).exists()

    def fetch_prefix(self, prefix: str) -> None:
        """Nothing to fetch: the folder is the output."""

    def fetch(self, name: str) -> None:
        """Nothing to fetch: the folder is the output."""

    def save(self, path: Path, name: str) -> None:
        """Nothing to upload: the file is in the output already."""

    def move(self, path: Path, name: str) -> None:
        """Nothing to do now: a local shard gets its final name when the split is published."""

    def save_pieces(self, name: str, ranges: list) -> bool:
        """False: a local shard needs no copies of its pieces (it is resumed from its own file)."""
        return False

    def fetch_pieces(self, path: Path, pieces: list) -> None:
        """Nothing to fetch: the shard's file is here."""

    def publish_file(self, partial: Path, name: str) -> None:
        """Give a closed shard's file its final name ``name`` (resumable: done already if it is there)."""
        final = self.folder / name
        if partial.exists():
            os.replace(partial, final)
        elif not final.exists():
            from ..errors import OutputFolderError

            raise OutputFolderError(f"{final} is missing; delete {self.folder} and split again")

    def publish_manifest(self, path: Path) -> None:
        """The manifest was written in place, atomically: published."""

    def delete(self, names) -> None:
        """Nothing in a store to delete."""

    def clear_staging(self, own, keep=()) -> None:
        """No staging folder."""


class RemoteOutput:
    """A split written to a prefix of an object store, through a local staging folder.

    A store cannot append to an object, and every shard of a wave grows until
    the wave closes, so the shards are written in the staging folder exactly
    as a local split writes them; a closed shard is uploaded, checked and
    deleted from the folder (:meth:`move`), so the folder holds one wave at a
    time. At each checkpoint the bytes the open shards gained since the
    last one are uploaded, all in one object (:meth:`save_pieces`), then the
    journal (:meth:`save`), so another machine resumes from the store alone.
    ``manifest.json`` is uploaded last (:meth:`publish_manifest`): a store
    has no rename, and the manifest is the commit point; readers ignore
    objects it does not list.

    Every upload is read back and its SHA-256 compared with the one computed
    while the file was sent (:meth:`_upload`). The store's own checksum is not
    used: pyarrow neither asks for nor returns S3's ``x-amz-checksum-sha256``,
    an ETag is an MD5 only for single-part uploads without KMS, and GCS and
    Azure report other digests, so reading back is the one check that holds
    for every store; it costs one download of what was uploaded.
    """

    checkpoint_each_wave = True  # a wave's shards are safe only once uploaded: a checkpoint as each closes
    remote = True

    def __init__(self, store: RemoteStore, url: str, staging: Path):
        self.store, self.url, self.folder = store, url.rstrip("/"), Path(staging)
        self.shown = self.url

    def place(self, name: str) -> str:
        return f"{self.url}/{name}"

    def check_apart(self, sources) -> None:
        """Refuse an output prefix that is, holds or lies inside an object of the source."""
        from ..errors import OutputFolderError

        for item in sources if isinstance(sources, (list, tuple)) else [sources]:
            match = URL.match(str(item))
            if not match or not self.url.startswith(self.store.root) or not str(item).startswith(self.store.root):
                continue
            source = str(item).rstrip("/")
            fixed = re.split(r"[*?\[]", source, maxsplit=1)[0].rstrip("/")  # a glob: the prefix before its pattern
            if self.url == source or self.url.startswith(fixed + "/") or source.startswith(self.url + "/"):
                raise OutputFolderError(f"the output {self.url} overlaps the source {item}; split never writes over "
                                        "or among its input: name a new prefix for the shards")

    def disk_need(self, total: int, one_wave: int) -> int:
        """Bytes the staging folder's disk must hold: one wave of shards (all of them, if fewer)."""
        return min(total, one_wave)

    def disk_note(self, needed: int, free: int) -> str:
        from .._sizes import human_size

        return (f"uploaded to {self.url}; the staging folder {self.folder} holds one wave of them at a time, about "
                f"{human_size(needed)}: {human_size(free)} free there")

    # -- listing and fetching ------------------------------------------------
    def stored_names(self) -> list:
        """The names (relative to the prefix) of every object under it."""
        import pyarrow.fs as pafs

        path = self.store._path(self.url)
        selector = pafs.FileSelector(path, recursive=True, allow_not_found=True)
        infos = self.store._call(self.url, lambda: self.store.filesystem.get_file_info(selector))
        return sorted(i.path[len(path):].lstrip("/") for i in infos if i.type == pafs.FileType.File)

    def exists(self, name: str) -> bool:
        return self.store.kind(self.place(name)) == "file"

    def fetch_prefix(self, prefix: str) -> None:
        """Download every object under ``prefix`` to the same names in the staging folder."""
        for name in self.stored_names():
            if name.startswith(prefix.rstrip("/") + "/"):
                self.fetch(name)

    def fetch(self, name: str) -> None:
        """Download the object ``name`` to the same name in the staging folder."""
        target = self.folder / name
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(target, "wb") as handle:
            self._download(self.place(name), handle)

    def fetch_pieces(self, path: Path, pieces: list) -> None:
        """Rebuild an open shard's staged file from its pieces ``[(object name, offset in it, start, end)]``."""
        from ..errors import OutputFolderError

        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as handle:
            for name, offset, start, end in pieces:
                url = self.place(name)
                opened = self.open_piece(url)
                if handle.tell() != start or opened.size() < offset + end - start:
                    raise OutputFolderError(f"{url} does not hold the piece of {path.name} the split's journal "
                                            f"records; delete {self.url} and split again")
                for at in range(offset, offset + end - start, TRANSFER_BLOCK):
                    size = min(TRANSFER_BLOCK, offset + end - start - at)
                    handle.write(self.store._call(url, lambda: opened.read_at(size, at)))

    def open_piece(self, url: str):
        return self.store.open_random(url)
    def _download(self, url: str, handle) -> int:
        stream = self.store.open_stream(url, 0, url)
        try:
            buffer, total = bytearray(TRANSFER_BLOCK), 0
            while got := stream.readinto(buffer):
                handle.write(memoryview(buffer)[:got])
                total += got
        finally:
            stream.close()
        return total

    # -- uploading -------------------------------------------------------------
    def save(self, path: Path, name: str) -> None:
        """Upload the file ``path`` as ``name``, checked (the staged file stays)."""
        self._upload([(path, 0, path.stat().st_size)], name)

    def move(self, path: Path, name: str) -> None:
        """Upload a closed shard's file as ``name``, checked, then delete it from the staging folder."""
        self.save(path, name)
        path.unlink()

    def save_pieces(self, name: str, ranges: list) -> bool:
        """Upload bytes ``start:end`` of each ``(path, start, end)`` of ``ranges``, one after the other, as the
        one object ``name``, checked (one request for all the open shards' new bytes of a checkpoint)."""
        self._upload(ranges, name)
        return True

    def publish_file(self, partial: Path, name: str) -> None:
        """Upload a closed shard still in the staging folder as ``name``; one moved earlier must be in the store."""
        if partial.exists():
            self.move(partial, name)
        elif self.store.kind(self.place(name)) != "file":
            from ..errors import OutputFolderError

            raise OutputFolderError(f"{self.place(name)} is missing; delete {self.url} and split again")

    def publish_manifest(self, path: Path) -> None:
        """Upload ``manifest.json`` (the commit point: after every shard it names is in the store)."""
        self.save(path, path.name)

    def _upload(self, ranges: list, name: str) -> None:
        """Send bytes ``start:end`` of each ``(path, start, end)`` as the object ``name``, then read it back
        and compare SHA-256s."""
        url = self.place(name)
        sent = hashlib.sha256()

        def send():
            with self.store.filesystem.open_output_stream(self.store._path(url), compression=None) as target:
                for path, start, end in ranges:
                    with open(path, "rb") as source:
                        source.seek(start)
                        left = end - start
                        while left:
                            piece = source.read(min(TRANSFER_BLOCK, left))
                            if not piece:
                                raise OSError(f"{path} ended {left} bytes early")
                            sent.update(piece)
                            target.write(piece)
                            left -= len(piece)

        self.store._call(url, send)
        back = self.store.sha256(url)
        if back != sent.hexdigest():
            raise IntegrityError(f"{url} does not read back as uploaded (SHA-256 {back[:12]}..., sent "
                                 f"{sent.hexdigest()[:12]}...): the upload was damaged; run the same command again")

    def delete(self, names) -> None:
        """Delete the objects ``names`` (relative to the prefix); missing ones are fine."""
        for name in names:
            url = self.place(name)
            try:
                self.store._call(url, lambda: self.store.filesystem.delete_file(self.store._path(url)))
            except StorageError:
                if self.store.kind(url) != "missing":
                    raise

    def clear_staging(self, own, keep=()) -> None:
        """Empty the staging folder of what ``own(relative name)`` says is the split's (but the names in
        ``keep``); refuse anything else."""
        from ..errors import OutputFolderError

        if not self.folder.is_dir():
            return
        entries = [p for p in self.folder.rglob("*") if p.is_file()]
        foreign = [str(p.relative_to(self.folder)) for p in entries if not own(str(p.relative_to(self.folder)))]
        if foreign:
            raise OutputFolderError(f"the staging folder {self.folder} holds other files ({sorted(foreign)[:3]}); "
                                    "name an empty or new folder with --staging-dir")
        for path in entries:
            if str(path.relative_to(self.folder)) not in keep:
                path.unlink()
        for folder in sorted((p for p in self.folder.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
            if not any(folder.iterdir()):
                folder.rmdir()
