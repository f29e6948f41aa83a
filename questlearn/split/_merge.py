"""The exact merge of a parallel split's parts (:mod:`questlearn.split._parallel`).

Counts add; means and variances combine by Chan et al.'s parallel formulas
(:meth:`~questlearn.schema._columns.NumericStats.merge`); label classes are
unioned in part order, then order of first appearance inside the part. Each
part shard becomes a merged shard: hard-linked as it is, or rewritten (label
codes remapped, row numbers made global). The manifest is built, as a
sequential split's, by :func:`~questlearn.split._record.split_manifest`, from
the :class:`~questlearn.split._state.SplitState` of the whole source the parts
add up to.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
from pathlib import Path
from typing import NamedTuple

import numpy as np

from ..errors import InputFormatError, SchemaError
from ..manifest._files import MANIFEST_NAME, fsync_directory, write_manifest
from ..schema._columns import CATEGORICAL, CLASSIFICATION, LABEL, NumericStats, Vocabulary
from ..schema.encoding import Encoding
from ._output import check_subsets_dealt
from ._params import SplitParameters
from ._record import split_manifest
from ._shards import NPY_HEADER_BYTES, npy_header
from ._state import SplitState, SubsetState


class MergedVocabulary(NamedTuple):
    """One vocabulary merged over the parts."""

    values: list  # in merged code order
    counts: list  # rows per value
    oov: int  # rows out of the vocabulary
    tables: list | None  # per part, its code -> merged code (last entry: its OOV code); None: codes kept
    inexact: list  # the parts whose OOV rows may differ from a sequential split's
    missing: int = 0  # rows without a value


def _union(params: SplitParameters, name: str, kind: str, parts: list) -> MergedVocabulary:
    """The merged vocabulary of the label (``kind`` LABEL) or of a categorical column, in part order."""
    limit = params.max_classes if kind == LABEL else params.max_categories
    values, index, counts, oov, tables, inexact = [], {}, [], 0, [], []
    for part in parts:
        part_values, part_counts, part_oov = _part_vocabulary(part, name, kind)
        if part_oov and not set(values) <= set(part_values):  # some of its OOV rows may hold an earlier part's value
            inexact.append({"column": name, "part": part["name"], "oov_rows": part_oov})
        table = []
        for value, count in zip(part_values, part_counts):
            if value not in index and len(values) < limit:
                index[value] = len(values)
                values.append(value)
                counts.append(0)
            if value in index:
                counts[index[value]] += count
                table.append(index[value])
            else:
                if kind == LABEL:
                    raise SchemaError(f"the label {name!r} has more than {params.max_classes} distinct values over "
                                      "the parts; raise --max-classes, or use --task regression for a numeric target")
                oov += count
                table.append(params.max_categories)
        oov += part_oov
        tables.append(np.array([*table, params.max_categories], dtype=np.float64))
    return MergedVocabulary(values, counts, oov, tables, inexact)


def _part_vocabulary(part: dict, name: str, kind: str) -> tuple[list, list, int]:
    """A part's values in its own code order (the manifest's JSON keys are sorted)."""
    stats = part["stats"][name]
    if kind == LABEL:
        schema = part["schema"]
        values = [schema["classes"][code] for code in schema["label_codes"]]
    else:
        values = part["schema"]["categories"][name]
    return values, [stats["category_counts"][v] for v in values], stats.get("oov", 0)


def merge_parts(out: Path, params: SplitParameters, plan: dict, files: list, parts: list, engine: dict) -> dict:
    """Merge the parts' shards into ``out`` and write the manifest (:func:`~questlearn.split._record.split_manifest`)."""
    kinds = plan["schema"]["kinds"]
    label = params.label
    for part, source_file in zip(parts, files):
        part["name"] = source_file.name  # as named in the source (the part's own manifest names the full path)
    coded = [n for n, k in kinds.items() if k == LABEL and params.task == CLASSIFICATION]
    vocabularies = {name: _union(params, name, kinds[name], parts) for name in coded}
    for name in [n for n, k in kinds.items() if k == CATEGORICAL]:  # one vocabulary, fixed before the parts ran
        values = plan["schema"]["encoding"]["vocabularies"][name]  # and hashed buckets: every part's codes agree
        counts = [sum(part["stats"][name]["category_counts"][v] for part in parts) for v in values]
        vocabularies[name] = MergedVocabulary(values, counts, sum(part["stats"][name].get("oov", 0) for part in parts),
                                              None, [], sum(part["stats"][name]["missing"] for part in parts))
    features = parts[0]["schema"]["features"]
    row_offsets = np.cumsum([0] + [p["source"]["rows"] for p in parts]).tolist()  # rows read: global row numbers
    if not row_offsets[-1]:
        raise InputFormatError(f"{files[0].shown}: the source has a header but no data rows")
    dropped = sum(p["source"].get("dropped_missing_labels", 0) for p in parts)
    if dropped == row_offsets[-1]:
        raise SchemaError(f"{files[0].shown}: the label {label!r} is missing in every one of the source's "
                          f"{dropped} rows: nothing to split; is it the right column? (--label NAME)")
    check_subsets_dealt({subset: sum(p["subsets"][subset]["rows"] for p in parts) for subset in params.subsets}, params,
                        files[0].shown if len(files) == 1 else f"the source ({len(files)} files)")
    shards = {name: [] for name in params.subsets}
    for subset in params.subsets:
        folder = out / subset
        folder.mkdir(exist_ok=True)
        for stale in folder.iterdir():  # an interrupted merge: everything here is rewritten
            stale.unlink()
        for number, part in enumerate(parts):
            tables = {n: v.tables[number] for n, v in vocabularies.items() if v.tables is not None}
            for entry in part["subsets"][subset]["shards"]:
                index = len(shards[subset])
                shards[subset].append(_merge_shard(out, Path(part["root"]), subset, index, entry, tables, features,
                                                   label, row_offsets[number], params))
        fsync_directory(folder)
    state = _merged_state(params, plan, files, parts, vocabularies, records=row_offsets[-1], dropped=dropped)
    manifest = split_manifest(state, shards, files=files, source_format=files[0].format,
                              names=parts[0]["source"]["header"],
                              parallel={"parts": len(parts), "part_seeds": plan["part_seeds"],
                                        "part_rows": [p["source"]["rows"] for p in parts],
                                        "inexact_oov": [entry for v in vocabularies.values() for entry in v.inexact],
                                        **engine})
    write_manifest(out / MANIFEST_NAME, manifest)
    return manifest


def _merged_state(params: SplitParameters, plan: dict, files: list, parts: list, vocabularies: dict, *,
                  records: int, dropped: int) -> SplitState:
    """The :class:`SplitState` of the whole source, from the parts' manifests: counts added, statistics merged."""
    schema = plan["schema"]
    state = SplitState(params, plan["source"], schema["kinds"], schema["label_numeric"], schema["columns"],
                       Encoding.from_record(schema["encoding"]), estimated_rows=0, records=records,
                       dropped_labels=dropped,
                       blank_lines=sum(p["source"]["blank_lines_skipped"] for p in parts),
                       empty_files=sum(p["source"]["empty_files_skipped"] for p in parts))
    for part, source_file in zip(parts, files):
        record = dict(part["source"]["files"][0])
        record["name"] = source_file.name
        state.done_files.append(record)
    for name in state.encoding.numeric:
        state.numeric[name] = _merged_numeric(part["stats"][name] for part in parts)
    for name in state.encoding.categorical:  # rows per code: missing, the buckets (their total in the first), the values
        merged = vocabularies[name]
        buckets = state.encoding.hash_buckets[name]
        state.category_counts[name] = np.asarray([merged.missing, merged.oov, *[0] * (buckets - 1), *merged.counts],
                                                 np.int64)
    if params.task == CLASSIFICATION:
        merged = vocabularies[params.label]
        state.label_vocabulary = Vocabulary(params.label, params.max_classes, merged.values, merged.counts,
                                            overflow="error")
    else:
        state.label_stats = {subset: _merged_numeric(part["subsets"][subset]["label_stats"] for part in parts)
                             for subset in params.subsets}
        state.label_overall = _merged_numeric(part["stats"][params.label] for part in parts)
    state.subsets = {subset: SubsetState(None, rows=sum(p["subsets"][subset]["rows"] for p in parts))
                     for subset in params.subsets}
    return state


def _merged_numeric(summaries) -> NumericStats:
    """The statistics of the rows of several manifest summaries together."""
    merged = NumericStats()
    for summary in summaries:
        merged.merge(_numeric(summary))
    return merged


def _numeric(summary: dict) -> NumericStats:
    """A :class:`NumericStats` back from its manifest summary (m2 = variance × count)."""
    return NumericStats(summary["count"], summary["missing"], summary["mean"] or 0.0, summary["variance"] * summary["count"],
                        summary["min"], summary["max"], summary.get("invalid", 0))


def _merge_shard(out: Path, part_root: Path, subset: str, index: int, entry: dict, tables: dict, features: list,
                 label: str, row_offset: int, params: SplitParameters) -> dict:
    """Place one part shard as merged shard ``index``: codes remapped, row numbers made global."""
    files = {}
    for kind, record in entry["files"].items():
        source = part_root / record["name"]
        suffix = "csv" if kind == "csv" else f"{kind}.npy"
        name = f"{subset}/split_data_{index:05d}.{suffix}"
        target = out / name
        array = None
        if kind == "labels" and label in tables and not _identity(tables[label]):
            array = tables[label][np.load(source, allow_pickle=False)].astype(np.int32)
        elif kind == "rows" and row_offset:
            array = np.load(source, allow_pickle=False) + np.int64(row_offset)
        temporary = target.with_name(target.name + ".tmp")
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()
        if array is None:  # model-ready numbers and codes are the same in every part: linked as they are
            try:
                os.link(source, temporary)
            except OSError:  # no hard links on this file system
                shutil.copyfile(source, temporary)
            files[kind] = {k: v for k, v in record.items() if k != "name"}
        else:
            files[kind] = _write_npy(temporary, array)
        os.replace(temporary, target)
        files[kind]["name"] = name
    return {"index": index, "rows": entry["rows"], "files": files, "label_counts": entry["label_counts"]}


def _write_npy(path: Path, array: np.ndarray) -> dict:
    """Write ``array`` as a shard part (fixed-size header), durably; return its manifest record."""
    data = np.ascontiguousarray(array).tobytes()
    with open(path, "wb") as handle:
        handle.write(npy_header(array.dtype, array.shape))
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    return {"bytes": NPY_HEADER_BYTES + len(data), "sha256": hashlib.sha256(data).hexdigest(),
            "data_offset": NPY_HEADER_BYTES}


def _identity(table: np.ndarray) -> bool:
    """Whether a part's code table changes nothing (its codes are the merged codes)."""
    return bool(np.array_equal(table[:-1], np.arange(len(table) - 1)))
