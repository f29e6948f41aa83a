"""Build a model-ready (format 2) split for the loader tests, with or without the new splitter.

:func:`model_ready_split` calls :func:`questlearn.split.split_csv`. When that
splitter already writes model-ready shards (it takes ``fill``), its output is
used as it is. Otherwise the older splitter's output (``.features.npy`` holding
raw values: NaN for missing, categories as vocabulary codes) is rewritten into
the issue-10 format directly: the shards' ``.features.npy`` become the float32
matrix of :class:`questlearn.encoding.Encoding`, every ``.npy`` entry gets its
``data_offset`` (the end of the header) and a SHA-256 of the bytes after it,
and the manifest gains ``schema.encoding`` and ``parameters.fill``.

The rewrite encodes from the stored codes, not from the CSV shards, so the
loader's CSV path (parse + ``Encoding.encode``) is compared with an
independent route.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import numpy as np

from questlearn import manifest as manifest_module
from questlearn.encoding import Encoding
from questlearn.split import SplitParameters, split_csv


def splitter_writes_model_ready_shards() -> bool:
    """True once ``split_csv`` takes ``fill`` (the issue-10 splitter)."""
    return "fill" in {f.name for f in dataclasses.fields(SplitParameters)}


def model_ready_split(source, out_dir, *, fill: str = "mean", formats=("csv", "npy"), **parameters) -> dict:
    """Split ``source`` into ``out_dir`` as model-ready shards; returns the manifest (as ``split_csv`` does)."""
    out_dir = Path(out_dir)
    parameters.setdefault("verbose", False)
    if splitter_writes_model_ready_shards():
        return split_csv(source, out_dir, fill=fill, formats=formats, **parameters)
    split_csv(source, out_dir, formats=tuple(sorted(set(formats) | {"npy"})), **parameters)
    rewrite_as_model_ready(out_dir, fill, formats)
    return json.loads((out_dir / manifest_module.MANIFEST_NAME).read_text(encoding="utf-8"))


def npy_data_offset(path: Path) -> int:
    """Bytes of a ``.npy`` file's header (where its data start)."""
    with open(path, "rb") as handle:
        version = np.lib.format.read_magic(handle)
        reader = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        reader(handle)
        return handle.tell()


def sha256_from(path: Path, offset: int) -> str:
    with open(path, "rb") as handle:
        handle.seek(offset)
        return hashlib.sha256(handle.read()).hexdigest()


def file_entry(root: Path, name: str) -> dict:
    path = root / name
    offset = npy_data_offset(path) if name.endswith(".npy") else 0
    return {"name": name, "bytes": path.stat().st_size, "sha256": sha256_from(path, offset), "data_offset": offset}


def encoding_of(manifest: dict, fill: str) -> Encoding:
    """The encoding an issue-10 split would record, from an older manifest
    (vocabularies: the manifest's; fill values: the statistics' means)."""
    schema, stats = manifest["schema"], manifest["stats"]
    kinds = {c["name"]: c["kind"] for c in schema["columns"]}
    numeric = [f for f in schema["features"] if kinds[f] == "numeric"]
    categorical = [f for f in schema["features"] if kinds[f] == "categorical"]
    fill_values = [float(stats[f]["mean"] or 0.0) if fill == "mean" else 0.0 for f in numeric]
    return Encoding(fill, numeric, fill_values, categorical, {f: list(schema["categories"][f]) for f in categorical})


def encode_stored(raw: np.ndarray, features: list, encoding: Encoding) -> np.ndarray:
    """Older shards' raw features (NaN = missing, categories as codes, the
    vocabulary size = out of vocabulary) -> the model-ready matrix."""
    x = np.zeros((len(raw), encoding.width), np.float32)
    for position, (name, fill) in enumerate(zip(encoding.numeric, encoding.fill_values)):
        column = raw[:, features.index(name)].astype(np.float32)
        x[:, position] = np.where(np.isnan(column), np.float32(fill), column)
    offset = len(encoding.numeric)
    for name in encoding.categorical:
        codes = raw[:, features.index(name)]
        present = np.flatnonzero(~np.isnan(codes))
        x[present, offset + codes[present].astype(np.int64)] = 1.0
        offset += len(encoding.vocabularies[name]) + 1
    return x


def rewrite_as_model_ready(split_dir: Path, fill: str, formats=("csv", "npy")) -> None:
    """Rewrite an older split in place as a model-ready one (see the module docstring)."""
    path = split_dir / manifest_module.MANIFEST_NAME
    manifest = json.loads(path.read_text(encoding="utf-8"))
    encoding = encoding_of(manifest, fill)
    features = list(manifest["schema"]["features"])
    keep_npy = "npy" in formats
    for subset in manifest["subsets"].values():
        for shard in subset["shards"]:
            files = shard["files"]
            if keep_npy:
                features_path = split_dir / files["features"]["name"]
                np.save(features_path, encode_stored(np.load(features_path), features, encoding))
            else:
                for part in ("features", "labels", "rows"):
                    (split_dir / files.pop(part)["name"]).unlink()
            shard["files"] = {part: file_entry(split_dir, entry["name"]) for part, entry in files.items()}
    manifest["schema"]["encoding"] = encoding.as_record()
    manifest["parameters"]["fill"] = fill
    manifest["parameters"]["formats"] = list(formats)
    manifest["format_version"] = manifest_module.FORMAT_VERSION  # what this checkout's load_manifest reads
    manifest_module.write_json_atomically(path, manifest)


def demote_to_other(split_dir: Path, column: str, value: str) -> None:
    """Rewrite a model-ready split as if ``value`` of ``column`` had been first
    met after the sample: its rows move to ``column=<other>`` (npy shards and
    statistics; CSV shards need no change: the loader encodes them with the
    new vocabulary)."""
    path = split_dir / manifest_module.MANIFEST_NAME
    manifest = json.loads(path.read_text(encoding="utf-8"))
    encoding = Encoding.from_record(manifest["schema"]["encoding"])
    names = encoding.columns()
    moved, other = names.index(f"{column}={value}"), names.index(f"{column}=<other>")
    for subset in manifest["subsets"].values():
        for shard in subset["shards"]:
            files = shard["files"]
            if "features" not in files:
                continue
            features_path = split_dir / files["features"]["name"]
            x = np.load(features_path)
            x[:, other] += x[:, moved]
            np.save(features_path, np.delete(x, moved, axis=1))
            files["features"] = file_entry(split_dir, files["features"]["name"])
    encoding.vocabularies[column].remove(value)
    encoding = Encoding(encoding.fill, encoding.numeric, encoding.fill_values, encoding.categorical, encoding.vocabularies)
    manifest["schema"]["encoding"] = encoding.as_record()
    manifest["schema"]["categories"][column] = list(encoding.vocabularies[column])
    stats = manifest["stats"][column]
    stats["oov"] = stats.get("oov", 0) + stats["category_counts"].pop(value)
    manifest_module.write_json_atomically(path, manifest)
