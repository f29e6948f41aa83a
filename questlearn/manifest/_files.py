"""Reading and writing ``manifest.json``, the record of a finished split.

The manifest is written last and atomically (temporary file, fsync,
rename, fsync of the directory), so a directory either holds a complete
split or none. :func:`load_manifest` checks the manifest against its schema
(:mod:`questlearn.manifest._validate`) and that every shard it names lies
inside the split directory and exists with the recorded size; the shard
readers check the recorded SHA-256 (:class:`ShardVerifier`).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from ..errors import IntegrityError, ManifestError
from ._validate import validate_manifest

MANIFEST_NAME = "manifest.json"
FORMAT_VERSION = 3
SUBSETS = ("train", "validate")  # every split has these two (validate may be empty: val_fraction 0)
TEST_SUBSET = "test"  # the held-out subset, only in a split made with test_fraction > 0
ALL_SUBSETS = (*SUBSETS, TEST_SUBSET)
MAX_MANIFEST_BYTES = 256 * 1024 * 1024  # a 100 GB split's manifest is a few MB
# SHA-256 digests of the manifests that passed validate_manifest in this process: a run loads the same
# manifest for each subset, the model and the evaluation, and checking its schema is the costly part.
_VALID_MANIFESTS: set = set()
MAX_REMEMBERED_MANIFESTS = 256


def sha256_of(path: str | Path, offset: int = 0, chunk_size: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's bytes from ``offset`` to the end, read in bounded chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        handle.seek(offset)
        while chunk := handle.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def fsync_directory(path: str | Path) -> None:
    """Make renames inside ``path`` durable (no-op where unsupported)."""
    try:
        descriptor = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


def write_json_atomically(path: str | Path, payload: dict) -> None:
    """Write ``payload`` as JSON so readers see the old or the new file, never half."""
    path = Path(path)
    temporary = path.with_name(f".{path.name}.tmp")
    with open(temporary, "w", encoding="utf-8") as handle:
        json.dump(payload, handle, indent=1, sort_keys=True)
        handle.write("\n")
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)
    fsync_directory(path.parent)


def write_manifest(path: str | Path, manifest: dict) -> None:
    """Publish a split's manifest: check it as every reader will (:func:`validate_manifest` on its JSON),
    then write it atomically.

    A manifest the split itself made that its readers would refuse is a bug
    in the split, not the user's mistake: it raises ``RuntimeError`` (with
    its traceback and the validator's reason), and nothing is written at
    ``path``.
    """
    path = Path(path)
    as_read = json.loads(json.dumps(manifest))  # what a reader gets back: tuples as lists, keys as strings
    try:
        validate_manifest(as_read, str(path))
    except ManifestError as error:
        raise RuntimeError(f"internal error: the split made a manifest its readers refuse; {error}") from error
    write_json_atomically(path, manifest)


def resolve_inside(root: Path, relative: str) -> Path:
    """Resolve a shard path from a manifest, refusing anything outside ``root``.

    Raises
    ------
    ManifestError, IntegrityError
        For absolute paths, ``..`` escapes and symbolic links.
    """
    if os.path.isabs(relative) or ".." in Path(relative).parts:
        raise ManifestError(f"manifest in {root} names {relative!r}, which is not a path inside the split directory")
    candidate = root / relative
    if candidate.is_symlink():
        raise IntegrityError(f"shard {candidate} is a symbolic link; questlearn only reads regular files inside the split directory")
    resolved = candidate.resolve()
    if not resolved.is_relative_to(root.resolve()):
        raise ManifestError(f"manifest in {root} names {relative!r}, which resolves outside the split directory")
    return resolved


def load_manifest(split_dir: str | Path, subsets: tuple = SUBSETS, check_files: bool = True) -> dict:
    """Load and check the manifest of a finished split.

    Parameters
    ----------
    split_dir : str or Path
        The output directory of :func:`questlearn.split.split_csv`.
    subsets : tuple of str
        The subsets whose shard files are checked (exist, recorded size);
        default train and validate, so that a reader of those never opens
        the held-out test subset. A subset the split lacks is skipped.
    check_files : bool
        ``False`` for a manifest fetched from a store into a shard cache
        (:mod:`questlearn.data._shard_cache`), whose shard files are checked as they are fetched.

    Returns
    -------
    dict
        The manifest, with ``"root"`` set to the absolute directory.

    Raises
    ------
    ManifestError, IntegrityError
        If the manifest is missing, incomplete or does not fit its schema
        (the message names the field), or a shard it names is missing, has
        the wrong size, or lies outside the directory.
    """
    root = Path(split_dir).resolve()
    path = root / MANIFEST_NAME
    if not path.is_file():
        raise ManifestError(f"{root} holds no {MANIFEST_NAME}: run `questlearn split` first, or let an interrupted split finish")
    if path.stat().st_size > MAX_MANIFEST_BYTES:
        raise ManifestError(f"{path} has {path.stat().st_size} bytes, more than a questlearn manifest can ({MAX_MANIFEST_BYTES})")
    data = path.read_bytes()
    try:
        manifest = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ManifestError(f"{path} is not valid JSON ({error}): it was damaged or edited") from None
    if isinstance(manifest, dict) and manifest.get("format_version") != FORMAT_VERSION:
        older = isinstance(manifest.get("format_version"), int) and manifest["format_version"] < FORMAT_VERSION
        raise ManifestError(f"{path} is a manifest of format version {manifest.get('format_version')!r}; this questlearn "
                            f"reads version {FORMAT_VERSION}" + ("; its shards hold categories as one-hot floats, not "
                            "codes: run `questlearn split` again into a new directory" if older else ""))
    digest = hashlib.sha256(data).digest()
    if digest not in _VALID_MANIFESTS:  # the same bytes give the same verdict: check them once per process
        validate_manifest(manifest, str(path))
        if len(_VALID_MANIFESTS) >= MAX_REMEMBERED_MANIFESTS:
            _VALID_MANIFESTS.clear()
        _VALID_MANIFESTS.add(digest)
    for subset in subsets if check_files else ():
        for shard in manifest["subsets"].get(subset, {"shards": ()})["shards"]:
            for entry in shard["files"].values():
                file_path = resolve_inside(root, entry["name"])
                if not file_path.is_file():
                    raise IntegrityError(f"shard file {file_path} named in {path} is missing")
                if file_path.stat().st_size != entry["bytes"]:
                    raise IntegrityError(f"shard file {file_path} has {file_path.stat().st_size} bytes, the manifest says {entry['bytes']}: it was changed or truncated")
    manifest["root"] = str(root)
    return manifest
