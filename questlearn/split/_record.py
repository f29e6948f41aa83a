"""Build the manifest of a finished split from the pass's final state.

The stage after the pass and before publishing: :func:`split_manifest`
gathers what the pass counted (rows, blank lines, column statistics, label
classes, shard waves) and the shards' final entries into the
``manifest.json`` record (:mod:`questlearn.manifest._files` writes and reads it;
:mod:`questlearn.manifest._validate` checks it). :func:`report_end` prints
what a user should know once the split is published.
"""

from __future__ import annotations

from ..manifest._files import FORMAT_VERSION
from ..schema._columns import CATEGORICAL, CLASSIFICATION, DATETIME, NUMERIC, REGRESSION, NumericStats, class_order
from ._shards import NPY_HEADER_BYTES


def split_manifest(state, shards: dict, *, files: list, source_format: str, names: list,
                   parallel: dict | None = None) -> dict:
    """The manifest record of a finished split.

    Parameters
    ----------
    state : SplitState
        The pass's final state (:class:`~questlearn.split._state.SplitState`):
        parameters, what was read (``done_files``, ``records``,
        ``blank_lines``, ``empty_files``, ``dropped_labels``, recorded as
        ``source.dropped_missing_labels`` when ``drop_missing_labels``: the
        shards hold ``records - dropped_labels`` rows), the schema (kinds,
        inference record, encoding), the statistics (numeric columns,
        categorical counts with the out-of-vocabulary rows last, the label
        classes or the label statistics per subset) and each subset's rows
        and shard waves.
    shards : dict
        Subset name to its shard entries (:func:`questlearn.split._publish.finishing_plan`).
    files : list
        The source's :class:`~questlearn.io.sources.SourceFile` objects.
    source_format : str
        ``"csv"`` or ``"parquet"``.
    names : list
        The source's columns.
    parallel : dict, optional
        The ``parallel`` record of a merged parallel split (parts, their
        seeds and rows, the engine); such a manifest has no ``scatter``
        record (its parts dealt the rows).

    Returns
    -------
    dict
        The manifest, as written to ``manifest.json``.
    """
    p = state.params
    label = p.label
    if p.task == CLASSIFICATION:
        values = state.label_vocabulary.values
        classes = class_order(values)
        codes = [classes.index(v) for v in values]
    else:
        classes, codes = [], []
    done_files = state.done_files
    source = {"files": done_files, "bytes": sum(f["bytes"] for f in done_files), "rows": state.records,
              "format": source_format, "blank_lines_skipped": state.blank_lines,
              "empty_files_skipped": state.empty_files, "header": names}
    if p.drop_missing_labels:
        source["dropped_missing_labels"] = state.dropped_labels
    if len(files) == 1:
        source.update(path=str(files[0].path), sha256=done_files[0]["sha256"], mtime_ns=files[0].mtime_ns,
                      **({} if files[0].member is None else {"member": files[0].member}))
    manifest = {
        "format_version": FORMAT_VERSION,
        "complete": True,
        "source": source,
        "parameters": p.as_record(),
        "schema": {
            "task": p.task,
            "columns": [{"name": n, "kind": state.kinds[n]} for n in names],
            "inferred": state.inferred,
            "label": label,
            "label_numeric": state.label_numeric,
            "classes": classes,
            "label_codes": codes,
            "features": [n for n in names if state.kinds[n] in (NUMERIC, CATEGORICAL, DATETIME)],
            "categories": dict(state.encoding.vocabularies),
            "encoding": state.encoding.as_record(),
            "na_values": p.null_values if source_format == "csv" else [],
            "delimiter": p.delimiter,
        },
        "stats": _statistics(state),
        "subsets": {name: {"rows": state.subsets[name].rows, "shards": shards[name],
                           **({"label_stats": state.label_stats[name].summary()} if p.task == REGRESSION else {})}
                    for name in p.subsets},
    }
    if parallel is None:
        manifest["scatter"] = {"estimated_rows": state.estimated_rows, "open_shard_limit": state.open_limit,
                               "waves": {n: s.waves for n, s in state.subsets.items()},
                               "npy_header_bytes": NPY_HEADER_BYTES}
    else:
        manifest["parallel"] = parallel
    return manifest


def _statistics(state) -> dict:
    """The manifest's ``stats``: per column, from the pass's statistics."""
    p = state.params
    stats = {n: s.summary() for n, s in state.numeric.items()}
    if p.invalid == "missing":  # unreadable values read as missing (counted in "missing" too); a datetime t's in t.days
        for name, numeric in state.numeric.items():
            stats[name]["invalid"] = numeric.invalid
    for name, counts in state.category_counts.items():
        values, buckets = state.encoding.vocabularies[name], state.encoding.hash_buckets[name]
        stats[name] = {"count": int(counts[1:].sum()), "missing": int(counts[0]),
                       "category_counts": dict(zip(values, counts[1 + buckets:].tolist())),
                       "oov": int(counts[1:1 + buckets].sum())}
    if p.task == REGRESSION:
        merged = state.label_overall
        if merged is None:
            merged = NumericStats()
            for subset_stats in state.label_stats.values():
                merged.merge(subset_stats)
        stats[p.label] = merged.summary()
    else:
        vocabulary = state.label_vocabulary
        stats[p.label] = {"count": sum(vocabulary.counts), "missing": 0,
                          "category_counts": dict(zip(vocabulary.values, vocabulary.counts))}
    return stats


def report_end(manifest: dict) -> None:
    """Print what to know about a published split: unreadable values read as missing, unseen categories,
    skipped files, dropped rows, the classes."""
    kinds = {column["name"]: column["kind"] for column in manifest["schema"]["columns"]}
    for name, entry in manifest["stats"].items():
        if entry.get("invalid"):
            dated = name.endswith(".days") and kinds.get(name[:-len(".days")]) == DATETIME
            column, what = (name[:-len(".days")], "dates or times") if dated else (name, "numbers")
            print(f"questlearn: column {column!r}: {entry['invalid']} values that are not {what} were read as missing "
                  f"(--invalid missing) and filled like any missing value (manifest: stats.{name}.invalid)", flush=True)
    for name, entry in manifest["stats"].items():
        if entry.get("oov"):
            print(f"questlearn: column {name!r}: {entry['oov']} rows held values outside its vocabulary (past "
                  "--max-categories, or first met after the sample): they went to its out-of-vocabulary codes",
                  flush=True)
    if manifest["source"]["empty_files_skipped"]:
        print(f"questlearn: skipped {manifest['source']['empty_files_skipped']} empty or header-only file(s)", flush=True)
    if "dropped_missing_labels" in manifest["source"]:
        print(f"questlearn: dropped {manifest['source']['dropped_missing_labels']} of {manifest['source']['rows']} rows "
              f"whose label {manifest['schema']['label']!r} is missing (--drop-missing-labels): they are in no shard",
              flush=True)
    if manifest["schema"]["task"] == CLASSIFICATION:
        print(f"questlearn: label {manifest['schema']['label']!r} classes: {manifest['schema']['classes']}", flush=True)
