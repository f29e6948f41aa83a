"""Splits the tests make and read back.

:func:`model_ready_split` is :func:`questlearn.split.split_csv` with the CSV
shards kept (the loader's CSV path is compared with the ``.npy`` one) and the
fill named; :func:`demote_to_other` rewrites a split as if one category had
first appeared after the sample, to test the out-of-vocabulary codes;
:func:`ids_in_shard_order` and :func:`expected_ids` read which rows a subset
holds; :func:`write_parts` writes a folder of part files (as Spark does) and
:func:`assert_same_statistics` compares a parallel split's statistics with a
sequential one's.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from questlearn.manifest import _files as manifest_module
from questlearn.manifest._files import load_manifest
from questlearn.schema.encoding import Encoding, fingerprint_buckets
from questlearn.split import split_csv
from questlearn.synth import write_quest_log

# The options of the id_split fixtures (tests/conftest.py), for tests that make a variant of them.
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
    met after the sample: it leaves the vocabulary, its rows take the
    out-of-vocabulary bucket it hashes to and the later vocabulary codes move
    down by one (npy shards, encoding and statistics; CSV shards need no
    change: the loader encodes them with the new vocabulary)."""
    path = split_dir / manifest_module.MANIFEST_NAME
    manifest = json.loads(path.read_text(encoding="utf-8"))
    encoding = Encoding.from_record(manifest["schema"]["encoding"])
    position = encoding.categorical.index(column)
    buckets = encoding.hash_buckets[column]
    moved = 1 + buckets + encoding.vocabularies[column].index(value)
    bucket = 1 + int(fingerprint_buckets([value], buckets)[0])
    encoding.vocabularies[column].remove(value)
    encoding = dataclasses.replace(encoding)  # its derived code counts and value sets follow the shorter vocabulary
    for subset in manifest["subsets"].values():
        for shard in subset["shards"]:
            files = shard["files"]
            if "codes" not in files:
                continue
            codes_path = split_dir / files["codes"]["name"]
            codes = np.load(codes_path).astype(np.int64)
            codes_of_column = codes[:, position]
            demoted = codes_of_column == moved  # before the later codes move down onto its code
            codes_of_column[codes_of_column > moved] -= 1
            codes_of_column[demoted] = bucket
            np.save(codes_path, codes.astype(encoding.code_dtype))
            files["codes"] = file_entry(split_dir, files["codes"]["name"])
    manifest["schema"]["encoding"] = encoding.as_record()
    manifest["schema"]["categories"][column] = list(encoding.vocabularies[column])
    stats = manifest["stats"][column]
    stats["oov"] = stats.get("oov", 0) + stats["category_counts"].pop(value)
    manifest_module.write_json_atomically(path, manifest)


def ids_in_shard_order(split_dir, subset):
    """attempt_id of every row of a subset in shard order (an unshuffled epoch's order), from the
    binary shards' row numbers (attempt_id equals the 0-based source row in synthetic logs)."""
    manifest = load_manifest(split_dir)
    rows = [np.load(f"{manifest['root']}/{s['files']['rows']['name']}") for s in manifest["subsets"][subset]["shards"]]
    return np.concatenate(rows)


def expected_ids(split_dir, subset):
    """attempt_id of every row of a subset, sorted."""
    return np.sort(ids_in_shard_order(split_dir, subset))


PART_ROWS = (900, 0, 1300, 600)  # uneven, with a header-only part
# The parallel split of part files, on the command line (add --parallel, the source and the output).
SPLIT = [sys.executable, "-m", "questlearn", "split", "--rows-per-shard", "500", "--id-column", "attempt_id",
         "--block-size", "1024", "--no-progress"]
REL = 1e-9


def write_parts(folder: Path, rows=PART_ROWS, nasty=True) -> Path:
    """Part files from different seeds (so vocabularies appear in different orders), plus Spark's _SUCCESS."""
    folder.mkdir(parents=True)
    for index, count in enumerate(rows):
        write_quest_log(folder / f"part-{index:05d}.csv", rows=count, seed=100 + index, nasty=nasty)
    (folder / "_SUCCESS").write_bytes(b"")
    return folder


def assert_same_statistics(parallel, sequential):
    """Category counts identical; count and missing exact; moments to relative ``REL``."""
    for name, expected in sequential["stats"].items():
        got = parallel["stats"][name]
        if "category_counts" in expected:
            assert got == expected, name
            continue
        assert (got["count"], got["missing"]) == (expected["count"], expected["missing"]), name
        for key in ("mean", "variance", "min", "max"):
            assert got[key] == pytest.approx(expected[key], rel=REL, abs=1e-12), (name, key)


SMALL_HEADER = "level,power,cleared\n"


def rows_file(path, count, bad_row=None):
    """A small CSV source of ``count`` rows (row ``bad_row`` ragged)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [f"{i % 5},{i * 0.5},{i % 2}\n" if i != bad_row else "1,2\n" for i in range(count)]
    path.write_text(SMALL_HEADER + "".join(lines))
    return path
