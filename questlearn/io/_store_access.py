"""How questlearn reaches an object store, and what it says when the store fails.

:func:`open_filesystem` makes the ``pyarrow.fs`` filesystem of a scheme
(S3 and S3-compatible stores, GCS, Azure, HDFS built in; any other fsspec
scheme through ``pyarrow.fs.PyFileSystem``), with retries, timeouts and the
AWS SDK's endpoint variables, which pyarrow does not read by itself.
:func:`store_error` turns a store's failure into a one-line
:class:`~questlearn.errors.StorageError`; :func:`credential_source` says
where the credentials came from and :func:`redacted` removes their values:
no credential ever reaches a message.
"""

from __future__ import annotations

import os
import re

from ..errors import MissingPackageError, OptionError, StorageError, first_line
from ._places import URL

#: How often a request is tried (throttling, transient faults) before it fails, and the seconds it may take.
ATTEMPTS = 5
CONNECT_TIMEOUT = 10
REQUEST_TIMEOUT = 60
#: Option names and environment variables whose values are credentials: never shown.
SECRET_WORDS = ("key", "secret", "token", "password", "credential", "sas", "signature")
ENDPOINT_ENVIRONMENT = ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL")  # boto3's; pyarrow does not read them
SECRET_ENVIRONMENT = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AZURE_STORAGE_ACCOUNT_KEY",
                      "AZURE_STORAGE_SAS_TOKEN", "AZURE_CLIENT_SECRET", "GOOGLE_APPLICATION_CREDENTIALS")


def open_filesystem(scheme: str, host: str, options: dict) -> tuple:
    """The filesystem of ``scheme://host`` with ``options``, and the endpoint it talks to (``None``: the default).

    Raises
    ------
    OptionError
        The options do not fit the filesystem, or an Azure store names no account.
    MissingPackageError
        The scheme is read through fsspec, and its package is not installed.
    StorageError
        The store cannot be opened (one line, no credential).
    """
    import pyarrow.fs as pafs

    options, endpoint = dict(options), None
    try:
        if scheme in ("s3", "s3a"):
            endpoint = options.get("endpoint_override") or next(
                (os.environ[name] for name in ENDPOINT_ENVIRONMENT if os.environ.get(name)), None)
            if endpoint:
                found = URL.match(endpoint)
                if found:  # pyarrow takes host:port and the scheme apart
                    options.setdefault("scheme", found.group(1))
                    endpoint = found.group(2).rstrip("/")
                options["endpoint_override"] = endpoint
            options.setdefault("retry_strategy", pafs.AwsStandardS3RetryStrategy(max_attempts=ATTEMPTS))
            options.setdefault("connect_timeout", CONNECT_TIMEOUT)
            options.setdefault("request_timeout", REQUEST_TIMEOUT)
            return pafs.S3FileSystem(**options), endpoint
        if scheme in ("gs", "gcs"):
            options.setdefault("retry_time_limit", REQUEST_TIMEOUT)
            return pafs.GcsFileSystem(**options), options.get("endpoint_override")
        if scheme in ("abfs", "abfss", "az"):
            options.setdefault("account_name", os.environ.get("AZURE_STORAGE_ACCOUNT_NAME"))
            if not options["account_name"]:
                raise OptionError(f"{scheme}:// needs the storage account: --storage-option account_name=NAME, "
                                  "the environment's AZURE_STORAGE_ACCOUNT_NAME, or abfs://container@ACCOUNT."
                                  "dfs.core.windows.net/path")
            return pafs.AzureFileSystem(**options), None
        if scheme == "hdfs":
            name, _, port = host.partition(":")
            return pafs.HadoopFileSystem(name or "default", int(port or 0), **options), None
        return pafs.PyFileSystem(pafs.FSSpecHandler(_fsspec_filesystem(scheme, options))), None
    except (TypeError, ValueError) as error:
        if isinstance(error, (OptionError, MissingPackageError)):
            raise
        raise OptionError(f"{scheme}://: the storage options do not fit its filesystem: "
                          f"{redacted(str(error), options)}") from None
    except OSError as error:
        raise StorageError(f"{scheme}://{host}: cannot open the store: {redacted(first_line(error), options)}") from None


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
        hint = known_implementations.get(scheme, {}).get("err") or first_line(error)
        raise MissingPackageError(f"{scheme}:// is read through fsspec, and its filesystem needs a package that is "
                                  f"not installed ({hint}): pip install it") from None


def store_error(url: str, bucket: str, error: Exception, *, scheme: str, endpoint: str | None,
                options: dict) -> StorageError:
    """What went wrong with ``url`` (in ``bucket``), in one line without any credential."""
    text = str(error)
    if re.search(r"NETWORK_CONNECTION|curlCode|[Cc]ould not connect|[Cc]ouldn't connect|timed out|resolve host", text):
        where = endpoint or f"the {scheme} service's default endpoint"
        return StorageError(f"{url}: cannot reach the object store at {where} "
                            f"({redacted(first_line(error), options)[:160]}): check "
                            "the endpoint (--storage-option endpoint_override=HOST:PORT, AWS_ENDPOINT_URL_S3) and "
                            "the network")
    if re.search(r"ACCESS_DENIED|AccessDenied|InvalidAccessKeyId|SignatureDoesNotMatch|"
                 r"INVALID_ACCESS_KEY_ID|SIGNATURE_DOES_NOT_MATCH|HTTP (?:response code:|status) 40[13]|Forbidden|"
                 r"[Uu]nauthori[sz]ed|[Ee]xpired[Tt]oken", text):
        return StorageError(f"{url}: the store refused access to the bucket {bucket!r} with the credentials from "
                            f"{credential_source(scheme, options)}: check those credentials and their rights on the "
                            "bucket")
    if re.search(r"NO_SUCH_BUCKET|NoSuchBucket", text):
        return StorageError(f"{url}: the bucket {bucket!r} does not exist: check the URL")
    if re.search(r"SLOW_DOWN|SlowDown|THROTTL|Throttl|SERVICE_UNAVAILABLE|ServiceUnavailable|"
                 r"HTTP (?:response code:|status) 5\d\d|INTERNAL_FAILURE|RequestLimitExceeded", text):
        return StorageError(f"{url}: the object store is throttling or failing the requests, still after "
                            f"{ATTEMPTS} attempts with backoff ({redacted(first_line(error), options)[:160]}): "
                            "try again later, or read fewer files at a time")
    return StorageError(f"{url}: {redacted(first_line(error), options)}")


def credential_source(scheme: str, options: dict) -> str:
    """Where the credentials of a store come from, in words (never their values)."""
    given = [k for k in options if any(word in k.lower() for word in SECRET_WORDS)]
    if options.get("anonymous"):
        return "nowhere (anonymous access, --storage-option anonymous=true)"
    if given:
        return "the storage options " + ", ".join(sorted(given))
    if scheme in ("s3", "s3a"):
        if os.environ.get("AWS_ACCESS_KEY_ID"):
            return "the environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY)"
        if os.environ.get("AWS_PROFILE"):
            return f"the AWS profile {os.environ['AWS_PROFILE']!r}"
        return "the AWS default chain (~/.aws/credentials, ~/.aws/config, the machine's role)"
    return f"the {scheme} store's default credential chain"


def redacted(text: str, options: dict) -> str:
    """``text`` with every credential among ``options`` and the environment's credential variables as ``***``."""
    secrets = [str(v) for k, v in options.items() if any(w in k.lower() for w in SECRET_WORDS)]
    secrets += [os.environ[name] for name in SECRET_ENVIRONMENT if os.environ.get(name)]
    for secret in sorted(secrets, key=len, reverse=True):
        if len(secret) >= 4:
            text = text.replace(secret, "***")
    return text
