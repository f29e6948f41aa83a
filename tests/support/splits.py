"""Model-ready (format 2) splits for the loader tests.

:func:`model_ready_split` is :func:`questlearn.split.split_csv` with the CSV
shards kept (the loader's CSV path is compared with the ``.npy`` one) and the
fill named; :func:`demote_to_other` rewrites a split as if one category had
first appeared after the sample, to test the ``<other>`` column.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from questlearn.manifest import _files as manifest_module
from questlearn.schema.encoding import Encoding
from questlearn.split import split_csv

# The options of the id_split fixtures (conftest.py), for tests that make a variant of them.
ID_SPLIT_OPTIONS = dict(rows_per_shard=300, val_fraction=0.2, seed=5, id_columns=("player_id",), block_size=4096)


def model_ready_split(source, out_dir, *, fill: str = "mean", formats=("csv", "npy"), **parameters) -> dict:
    """Split ``source`` into ``out_dir`` as model-ready shards; returns the manifest (as ``split_csv`` does)."""
    parameters.setdefault("verbose", False)
    return split_csv(source, Path(out_dir), fill=fill, formats=formats, **parameters)


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
