"""Build the manifest of a finished split from the pass's final state.

The stage after the pass and before publishing: :func:`split_manifest`
gathers what the pass counted (rows, blank lines, column statistics, label
classes, shard waves) and the shards' final entries into the
``manifest.json`` record (:mod:`questlearn.manifest._files` writes and reads it;
:mod:`questlearn.manifest._validate` checks it). :func:`report_end` prints
what a user should know once the split is published.
"""

from __future__ import annotations

from ..manifest._files import FORMAT_VERSION, SUBSETS
from ..schema._columns import CATEGORICAL, CLASSIFICATION, NUMERIC, REGRESSION, NumericStats, class_order
from ._shards import NPY_HEADER_BYTES


def split_manifest(params, shards: dict, *, files: list, done_files: list, source_format: str, names: list,
                   records: int, blank_lines: int, empty_files: int, kinds: dict, dropped_labels: int = 0, inferred: list,
                   label_numeric: bool, encoding, numeric: dict, category_counts: dict, label_vocabulary,
                   label_stats: dict, estimated_rows: int, open_limit: int, subsets: dict) -> dict:
    """The manifest record of a finished split.

    Parameters
    ----------
    params : SplitParameters
        The split's parameters.
    shards : dict
        Subset name to its shard entries (:func:`questlearn.split._publish.finishing_plan`).
    files, done_files : list
        The source's :class:`~questlearn.io.sources.SourceFile` objects, and
        the record of each file read (name, bytes, sha256, rows, compression).
    source_format : str
        ``"csv"`` or ``"parquet"``.
    names, kinds, inferred, label_numeric, encoding
        The columns, their kinds, the inference record, whether the label is
        numeric, the :class:`~questlearn.schema.encoding.Encoding`.
    records, blank_lines, empty_files : int
        Data rows read, empty lines skipped, header-only files skipped.
    dropped_labels : int
        Rows read but left out for a missing label (``drop_missing_labels``;
        recorded as ``source.dropped_missing_labels``: the shards hold
        ``records - dropped_labels`` rows).
    numeric, category_counts, label_vocabulary, label_stats
        The statistics of the pass: per numeric column, per categorical
        column (counts, the last one out of vocabulary), the label classes
        (classification) and the label statistics per subset (regression).
    estimated_rows, open_limit : int
        The row estimate and the open-shard limit the pass dealt with.
    subsets : dict
        Subset name to its state (``"rows"``, ``"waves"``).

    Returns
    -------
    dict
        The manifest, as written to ``manifest.json``.
    """
    p = params
    label = p.label
    if p.task == CLASSIFICATION:
        values = label_vocabulary.values
        classes = class_order(values)
        codes = [classes.index(v) for v in values]
    else:
        classes, codes = [], []
    total_bytes = sum(f["bytes"] for f in done_files)
    source = {"files": done_files, "bytes": total_bytes, "rows": records, "format": source_format,
              "blank_lines_skipped": blank_lines, "empty_files_skipped": empty_files, "header": names}
    if p.drop_missing_labels:
        source["dropped_missing_labels"] = dropped_labels
    if len(files) == 1:
        source.update(path=str(files[0].path), sha256=done_files[0]["sha256"], mtime_ns=files[0].mtime_ns)
    stats = {n: s.summary() for n, s in numeric.items()}
    for name, counts in category_counts.items():
        values = encoding.vocabularies[name]
        present = int(counts.sum())
        stats[name] = {"count": present, "missing": records - dropped_labels - present,
                       "category_counts": dict(zip(values, counts[:-1].tolist())), "oov": int(counts[-1])}
    if p.task == REGRESSION:
        merged = NumericStats()
        for subset_stats in label_stats.values():
            merged.merge(subset_stats)
        stats[label] = merged.summary()
    else:
        vocabulary = label_vocabulary
        stats[label] = {"count": sum(vocabulary.counts), "missing": 0,
                        "category_counts": dict(zip(vocabulary.values, vocabulary.counts))}
    return {
        "format_version": FORMAT_VERSION,
        "complete": True,
        "source": source,
        "parameters": p.as_record(),
        "schema": {
            "task": p.task,
            "columns": [{"name": n, "kind": kinds[n]} for n in names],
            "inferred": inferred,
            "label": label,
            "label_numeric": label_numeric,
            "classes": classes,
            "label_codes": codes,
            "features": [n for n in names if kinds[n] in (NUMERIC, CATEGORICAL)],
            "categories": dict(encoding.vocabularies),
            "encoding": encoding.as_record(),
            "na_values": p.null_values if source_format == "csv" else [],
            "delimiter": p.delimiter,
        },
        "stats": stats,
        "scatter": {"estimated_rows": estimated_rows, "open_shard_limit": open_limit,
                    "waves": {n: s["waves"] for n, s in subsets.items()},
                    "npy_header_bytes": NPY_HEADER_BYTES},
        "subsets": {name: {"rows": subsets[name]["rows"], "shards": shards[name],
                           **({"label_stats": label_stats[name].summary()} if p.task == REGRESSION else {})}
                    for name in SUBSETS},
    }


def report_end(manifest: dict) -> None:
    """Print what to know about a published split: unseen categories, skipped files, dropped rows, the classes."""
    for name, entry in manifest["stats"].items():
        if entry.get("oov"):
            print(f"questlearn: column {name!r}: {entry['oov']} rows held values the sample had not shown, "
                  f"encoded as {name}=<other>", flush=True)
    if manifest["source"]["empty_files_skipped"]:
        print(f"questlearn: skipped {manifest['source']['empty_files_skipped']} header-only file(s)", flush=True)
    if "dropped_missing_labels" in manifest["source"]:
        print(f"questlearn: dropped {manifest['source']['dropped_missing_labels']} of {manifest['source']['rows']} rows "
              f"whose label {manifest['schema']['label']!r} is missing (--drop-missing-labels): they are in no shard",
              flush=True)
    if manifest["schema"]["task"] == CLASSIFICATION:
        print(f"questlearn: label {manifest['schema']['label']!r} classes: {manifest['schema']['classes']}", flush=True)
