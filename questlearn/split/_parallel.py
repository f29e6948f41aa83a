"""Split the part files of a source in parallel, one task per file, and merge exactly.

``questlearn split DIR OUT --parallel N`` (local processes) or
``--ray [ADDRESS]`` (Ray tasks). The stages:

1. **Schema, once.** The parent samples all parts (as a sequential split
   does), prints the schema and stops on its problems; every part is then
   split with these same column kinds.
2. **One task per part.** Part ``i`` is split by :func:`~questlearn.split.split_csv`
   into ``OUT/.parts/0000i/`` with its own journal (so a killed task resumes
   where it stopped) and its own seed, drawn deterministically from
   ``seed`` and ``i`` (:func:`part_seed`). Row assignment to train/validate
   therefore differs from a sequential split with the same seed; the set of
   rows, the statistics and the vocabularies do not.
3. **Exact merge.** Counts add; means and variances combine by Chan et al.'s
   parallel formulas (:meth:`~questlearn.schema._columns.NumericStats.merge`). The
   model-ready encoding (fill values, one-hot vocabularies) was fixed by the
   parent before any part ran, so every part's feature rows are already the
   merged ones and are hard-linked as they are. Label classes are unioned in
   part order, then order of first appearance inside the part, exactly the
   order a sequential pass finds them in; more than ``max_classes`` classes
   in the union stops the merge, as it stops a sequential split. Label codes
   are rewritten to the merged codes where they differ, and ``.rows.npy``
   holds global source row numbers (each part offset by the rows of the
   parts before it); the rewritten parts are written atomically, one shard
   in memory at a time. Shards are numbered in part order.
4. ``manifest.json`` is written last, in the format of a sequential split,
   plus a ``parallel`` record (parts, per-part seeds, engine); then
   ``OUT/.parts`` is removed. A re-run after a kill redoes only the parts
   without a finished manifest, then the whole (cheap, idempotent) merge.

Each part deals its rows into its own open shards, so a shard of a
parallel split is a random sample of one part file, not of the whole
source; use a sequential split (which uses every core too) when the part
files are stretches of time.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
from dataclasses import asdict
from pathlib import Path

import numpy as np

from .._orphans import die_with_parent
from ..manifest._files import MANIFEST_NAME, SUBSETS, fsync_directory, write_json_atomically
from ..schema._columns import CATEGORICAL, CLASSIFICATION, LABEL, REGRESSION, NumericStats, class_order
from ..schema.encoding import Encoding
from ..schema.infer import ColumnReport, InferredSchema
from ._output import create_output_folder, remove_created_folders
from ._params import SplitParameters
from ._plan import decide_schema
from ._record import report_end
from ._sequential import FORMAT_VERSION, LOCK_NAME, MARKER_NAME, _exclusive_lock, _Splitter, split_sequential
from ._shards import NPY_HEADER_BYTES, npy_header

PARTS_DIR = ".parts"
PLAN_NAME = ".parallel-split.json"


def part_seed(seed: int, index: int) -> int:
    """The seed of part ``index``'s train/validate draw: independent streams
    from one ``seed`` (numpy's ``SeedSequence`` spawn keys), the same every run."""
    return int(np.random.SeedSequence(int(seed), spawn_key=(int(index),)).generate_state(1, np.uint64)[0] >> 1)


def split_parallel(source, out_dir, *, parallel: int | None = None, ray: str | None = None, progress: bool = False,
                   verbose: bool = True, **parameters) -> dict:
    """Split each file of ``source`` as its own task and merge the results exactly.

    Parameters
    ----------
    source, out_dir, progress, verbose, **parameters
        As for :func:`questlearn.split.split_csv` (``progress`` is ignored:
        a line is printed as each part finishes).
    parallel : int, optional
        Tasks at a time (default: the CPU count, at most the number of parts).
    ray : str, optional
        ``"local"`` to run the tasks on a private Ray on 127.0.0.1, or the
        address of a Ray cluster (the source and ``out_dir`` must then be on
        storage every node reads at the same path).

    Returns
    -------
    dict
        The merged manifest (also written to ``out_dir/manifest.json``).
    """
    for key in ("id_columns", "categorical_columns", "formats", "na_values"):
        if key in parameters:
            parameters[key] = tuple(parameters[key])
    params = SplitParameters(**parameters)
    if parallel is not None and int(parallel) < 1:
        raise ValueError(f"--parallel must be at least 1, got {parallel}")
    out = Path(out_dir).resolve()  # tasks (Ray workers too) run in other working directories
    created = create_output_folder(out)
    try:
        return _split_parallel(source, out, params, parallel, ray, verbose)
    except Exception:
        if created and all(p.name == LOCK_NAME for p in out.iterdir()):  # failed before writing anything: leave nothing
            shutil.rmtree(out)
            remove_created_folders(created)
        raise


def _split_parallel(source, out: Path, params: SplitParameters, parallel, ray, verbose: bool) -> dict:
    with _exclusive_lock(out):
        parent = _Splitter(source, out, params, False, verbose)
        if (out / MANIFEST_NAME).exists():
            manifest = parent._already_done(out / MANIFEST_NAME)
            _remove_parts(out)
            return manifest
        plan = _load_or_make_plan(parent, out, params)
        files = parent.files
        tasks = [dict(path=str(f.path), shown=f.shown, out=str(out / PARTS_DIR / f"{i:05d}"), schema=plan["schema"],
                      parameters={**params.as_record(), "seed": plan["part_seeds"][i]})
                 for i, f in enumerate(files)]
        todo = [t for t in tasks if not (Path(t["out"]) / MANIFEST_NAME).exists()]
        if verbose and len(todo) < len(tasks):
            print(f"questlearn: resuming the parallel split in {out}: {len(tasks) - len(todo)} of {len(tasks)} parts "
                  "already done", flush=True)
        workers = min(int(parallel or os.cpu_count() or 1), len(tasks))
        engine = {"engine": "ray" if ray is not None else "processes", "tasks_at_a_time": workers}
        if todo:
            if ray is not None:
                engine["ray_nodes"] = _run_on_ray(todo, ray, workers, verbose)
            else:
                _run_in_processes(todo, workers, verbose)
        parts = []
        for task in tasks:
            part = json.loads((Path(task["out"]) / MANIFEST_NAME).read_text(encoding="utf-8"))
            part["root"] = task["out"]
            parts.append(part)
        manifest = _merge(out, params, plan, files, parts, engine)
        _remove_parts(out)
    if verbose:
        for entry in manifest["parallel"]["inexact_oov"]:
            print(f"questlearn: warning: part {entry['part']} alone holds more than --max-categories "
                  f"{params.max_categories} values of {entry['column']!r}; its {entry['oov_rows']} out-of-vocabulary rows "
                  "may include values an earlier part put in the vocabulary (a sequential split would code them); "
                  "raise --max-categories, or split without --parallel, for exact codes", flush=True)
        report_end(manifest)  # as a sequential split reports its end
    return manifest


def _load_or_make_plan(parent: _Splitter, out: Path, params: SplitParameters) -> dict:
    """The schema and seeds every part uses: decided once, kept in ``out`` until the merge is written."""
    path = out / PLAN_NAME
    if path.exists():
        plan = json.loads(path.read_text(encoding="utf-8"))
        if plan["parameters"] != params.as_record() or plan["source"] != parent.fingerprint:
            raise ValueError(f"{out} holds an unfinished parallel split of another source or with other parameters "
                             "(or the source changed since); delete it or choose another output directory")
        if parent.verbose:
            print(f"questlearn: resuming the interrupted parallel split in {out} (schema as inferred when it started)",
                  flush=True)
        return plan
    leftovers = [p.name for p in out.iterdir() if p.name not in (LOCK_NAME, MARKER_NAME)]
    if leftovers:
        raise ValueError(f"{out} is not empty ({sorted(leftovers)[:5]}) and holds no questlearn split; choose an empty directory")
    inferred = decide_schema(parent.reader, params, verbose=parent.verbose)  # printed here, once, for all parts
    (out / MARKER_NAME).write_text("written by questlearn split; the files beside it are its own\n", encoding="utf-8")
    plan = {"parameters": params.as_record(), "source": parent.fingerprint,
            "schema": {"kinds": inferred.kinds, "label_numeric": inferred.label_numeric,
                       "columns": [asdict(c) for c in inferred.columns], "sample_rows": inferred.sample_rows,
                       "sample_note": inferred.sample_note, "encoding": inferred.encoding.as_record()},
            "part_seeds": [part_seed(params.seed, i) for i in range(len(parent.files))]}
    write_json_atomically(path, plan)
    return plan


# -- running the part tasks ------------------------------------------------
def split_part(task: dict) -> int:
    """Split one part file with the shared schema (runs in a worker); returns its rows."""
    schema = task["schema"]
    given = InferredSchema(kinds=schema["kinds"], label_numeric=schema["label_numeric"],
                           columns=[ColumnReport(**c) for c in schema["columns"]], sample_rows=schema["sample_rows"],
                           sample_note=schema["sample_note"])
    given.encoding = Encoding.from_record(schema["encoding"])  # every part encodes rows the same way
    try:
        manifest = split_sequential(task["shown"] if Path(task["shown"]).exists() else task["path"], task["out"],
                             verbose=False, schema=given, **task["parameters"])
    except ValueError as error:  # CsvFormatError cannot be unpickled in the parent: keep its message
        raise ValueError(str(error)) from None
    return manifest["source"]["rows"]


def _run_in_processes(tasks: list, workers: int, verbose: bool) -> None:
    import multiprocessing
    from concurrent.futures import FIRST_EXCEPTION, ProcessPoolExecutor, wait
    from concurrent.futures.process import BrokenProcessPool

    context = multiprocessing.get_context("spawn")  # no fork of a parent holding pyarrow's threads
    # Workers end with this process, even when it is killed while they start (questlearn._orphans); they are
    # started by this thread, in submit(), and it waits for them to the end: the parent-death signal is safe.
    with ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=die_with_parent,
                             initargs=(os.getpid(),)) as pool:
        futures = {pool.submit(split_part, task): task for task in tasks}
        pending = set(futures)
        while pending:
            finished, pending = wait(pending, return_when=FIRST_EXCEPTION)
            for future in finished:
                error = future.exception()
                if error is not None:
                    for other in pending:
                        other.cancel()
                    if isinstance(error, BrokenProcessPool):
                        raise ValueError(f"the process splitting {futures[future]['shown']} died (killed, or out of "
                                         "memory); run the same command again: finished parts are kept") from None
                    raise error
                if verbose:
                    print(f"questlearn: part {futures[future]['shown']} split ({future.result()} rows)", flush=True)


def _run_on_ray(tasks: list, address: str, workers: int, verbose: bool) -> list:
    """Run the part tasks as Ray tasks; returns the addresses of the Ray nodes."""
    from .._ray_session import import_ray, ray_session

    ray = import_ray(address)
    env_vars = {"PYTHONPATH": os.environ["PYTHONPATH"]} if os.environ.get("PYTHONPATH") else {}
    with ray_session(address, env_vars, num_cpus=workers, log_to_driver=False) as nodes:
        remote = ray.remote(num_cpus=1, max_retries=0)(split_part)
        pending = {remote.remote(task): task for task in tasks}
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            task = pending.pop(done[0])
            try:
                rows = ray.get(done[0])
            except ray.exceptions.RayTaskError as error:
                raise ValueError(f"the Ray task splitting {task['shown']} failed: {error.cause}") from None
            if verbose:
                print(f"questlearn: part {task['shown']} split on Ray ({rows} rows)", flush=True)
    return nodes


# -- the merge ---------------------------------------------------------------
def _union(params: SplitParameters, name: str, kind: str, parts: list) -> tuple[list, list, int, list, list]:
    """Merged values, counts and out-of-vocabulary rows of one vocabulary,
    each part's code → merged code table (last entry: the part's OOV code),
    and the parts whose OOV rows may differ from a sequential split's."""
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
                    raise ValueError(f"the label {name!r} has more than {params.max_classes} distinct values over the "
                                     "parts; raise --max-classes, or use --task regression for a numeric target")
                oov += count
                table.append(params.max_categories)
        oov += part_oov
        tables.append(np.array([*table, params.max_categories], dtype=np.float64))
    return values, counts, oov, tables, inexact


def _part_vocabulary(part: dict, name: str, kind: str) -> tuple[list, list, int]:
    """A part's values in its own code order (the manifest's JSON keys are sorted)."""
    stats = part["stats"][name]
    if kind == LABEL:
        schema = part["schema"]
        values = [schema["classes"][code] for code in schema["label_codes"]]
    else:
        values = part["schema"]["categories"][name]
    return values, [stats["category_counts"][v] for v in values], stats.get("oov", 0)


def _merge(out: Path, params: SplitParameters, plan: dict, files: list, parts: list, engine: dict) -> dict:
    kinds = plan["schema"]["kinds"]
    label = params.label
    for part, source_file in zip(parts, files):
        part["name"] = source_file.name  # as named in the source (the part's own manifest names the full path)
    coded = [n for n, k in kinds.items() if k == LABEL and params.task == CLASSIFICATION]
    vocabularies = {name: _union(params, name, kinds[name], parts) for name in coded}
    for name in [n for n, k in kinds.items() if k == CATEGORICAL]:  # one vocabulary, fixed before the parts ran
        values = plan["schema"]["encoding"]["vocabularies"][name]
        counts = [sum(part["stats"][name]["category_counts"][v] for part in parts) for v in values]
        vocabularies[name] = (values, counts, sum(part["stats"][name].get("oov", 0) for part in parts), None, [])
    features = parts[0]["schema"]["features"]
    row_offsets = np.cumsum([0] + [p["source"]["rows"] for p in parts]).tolist()  # rows read: global row numbers
    if not row_offsets[-1]:
        raise ValueError(f"{files[0].shown}: the source has a header but no data rows")
    dropped = sum(p["source"].get("dropped_missing_labels", 0) for p in parts)
    if dropped == row_offsets[-1]:
        raise ValueError(f"{files[0].shown}: the label {label!r} is missing in every one of the source's "
                         f"{dropped} rows: nothing to split; is it the right column? (--label NAME)")
    shards = {name: [] for name in SUBSETS}
    for subset in SUBSETS:
        folder = out / subset
        folder.mkdir(exist_ok=True)
        for stale in folder.iterdir():  # an interrupted merge: everything here is rewritten
            stale.unlink()
        for number, part in enumerate(parts):
            tables = {n: v[3][number] for n, v in vocabularies.items() if v[3] is not None}
            for entry in part["subsets"][subset]["shards"]:
                index = len(shards[subset])
                shards[subset].append(_merge_shard(out, Path(part["root"]), subset, index, entry, tables, features,
                                                   label, row_offsets[number], params))
        fsync_directory(folder)
    stats = {}
    for name, kind in kinds.items():
        if name in vocabularies:
            values, counts, oov = vocabularies[name][:3]
            count = sum(counts) + oov
            stats[name] = {"count": count, "missing": row_offsets[-1] - dropped - count,
                           "category_counts": dict(zip(values, counts)), **({} if kind == LABEL else {"oov": oov})}
        elif name in parts[0]["stats"]:  # numeric, or a regression label
            merged = NumericStats()
            for part in parts:
                merged.merge(_numeric(part["stats"][name]))
            stats[name] = merged.summary()
    label_stats = {}
    if params.task == REGRESSION:
        for subset in SUBSETS:
            label_stats[subset] = NumericStats()
            for part in parts:
                label_stats[subset].merge(_numeric(part["subsets"][subset]["label_stats"]))
    if params.task == CLASSIFICATION:
        label_values = vocabularies[label][0]
        classes = class_order(label_values)
        codes = [classes.index(v) for v in label_values]
    else:
        classes, codes = [], []
    done_files = []
    for part, source_file in zip(parts, files):
        record = dict(part["source"]["files"][0])
        record["name"] = source_file.name
        done_files.append(record)
    source = {"files": done_files, "bytes": sum(f["bytes"] for f in done_files), "rows": row_offsets[-1],
              "format": files[0].format, "header": parts[0]["source"]["header"],
              "blank_lines_skipped": sum(p["source"]["blank_lines_skipped"] for p in parts),
              "empty_files_skipped": sum(p["source"]["empty_files_skipped"] for p in parts)}
    if params.drop_missing_labels:
        source["dropped_missing_labels"] = dropped
    if len(files) == 1:
        source.update(path=str(files[0].path), sha256=done_files[0]["sha256"], mtime_ns=files[0].mtime_ns)
    schema = dict(parts[0]["schema"])
    schema.update(inferred=plan["schema"]["columns"], classes=classes, label_codes=codes,
                  categories={n: v[0] for n, v in vocabularies.items() if n != label})
    manifest = {
        "format_version": FORMAT_VERSION,
        "complete": True,
        "source": source,
        "parameters": params.as_record(),
        "schema": schema,
        "stats": stats,
        "subsets": {name: {"rows": sum(p["subsets"][name]["rows"] for p in parts), "shards": shards[name],
                           **({"label_stats": label_stats[name].summary()} if params.task == REGRESSION else {})}
                    for name in SUBSETS},
        "parallel": {"parts": len(parts), "part_seeds": plan["part_seeds"],
                     "part_rows": [p["source"]["rows"] for p in parts],
                     "inexact_oov": [entry for v in vocabularies.values() for entry in v[4]], **engine},
    }
    write_json_atomically(out / MANIFEST_NAME, manifest)
    return manifest


def _numeric(summary: dict) -> NumericStats:
    """A :class:`NumericStats` back from its manifest summary (m2 = variance × count)."""
    return NumericStats(summary["count"], summary["missing"], summary["mean"] or 0.0, summary["variance"] * summary["count"],
                        summary["min"], summary["max"])


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
        if array is None:  # model-ready features are the same in every part: linked as they are
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


def _remove_parts(out: Path) -> None:
    """Drop the per-part work and the plan once the merged manifest is written."""
    if (out / PARTS_DIR).is_dir():
        shutil.rmtree(out / PARTS_DIR)
    with contextlib.suppress(FileNotFoundError):
        (out / PLAN_NAME).unlink()
