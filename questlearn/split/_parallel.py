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
3. **Exact merge** (:mod:`questlearn.split._merge`). Counts add; means and variances combine by Chan et al.'s
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
   ``OUT/.parts`` is removed. Into an object store
   (:class:`~questlearn.io.outputs.RemoteOutput`), each task writes its part
   split to ``OUT/.parts/0000i/`` in the store (nodes share no local path),
   the merge downloads the parts into this machine's staging folder, and the
   merged shards are uploaded before the manifest. A re-run after a kill redoes only the parts
   without a finished manifest, then the whole (cheap, idempotent) merge.

Each part deals its rows into its own open shards, so a shard of a
parallel split is a random sample of one part file, not of the whole
source; use a sequential split (which uses every core too) when the part
files are stretches of time.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from dataclasses import asdict
from pathlib import Path

import numpy as np

from .._orphans import die_with_parent
from ..errors import InputFormatError, OptionError, OutputFolderError, QuestlearnError
from ..io.sources import ZipMember
from ..io.outputs import open_output, output_is_url
from ..manifest._files import MANIFEST_NAME, write_json_atomically
from ..schema.encoding import Encoding
from ..schema.infer import ColumnReport, InferredSchema
from ._merge import merge_parts
from ._output import create_output_folder, remove_created_folders
from ._params import SplitParameters
from ._plan import decide_schema
from ._record import report_end
from ._journal import own_name
from ._sequential import LOCK_NAME, MARKER_NAME, _exclusive_lock, _Splitter, split_sequential
from ._start import MARKER_TEXT, already_done, refuse_foreign_files

PARTS_DIR = ".parts"
PLAN_NAME = ".parallel-split.json"
#: What a part process imports, loaded once by the forkserver that forks them (no Keras).
SPLIT_WORKER_IMPORTS = "questlearn.split._worker_imports"


def part_seed(seed: int, index: int) -> int:
    """The seed of part ``index``'s train/validate draw: independent streams
    from one ``seed`` (numpy's ``SeedSequence`` spawn keys), the same every run."""
    return int(np.random.SeedSequence(int(seed), spawn_key=(int(index),)).generate_state(1, np.uint64)[0] >> 1)


def split_parallel(source, out_dir, *, parallel: int | None = None, ray: str | None = None, progress: bool = False,
                   verbose: bool = True, storage_options: dict | None = None, staging_dir=None,
                   **parameters) -> dict:
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
        storage every node reads at the same path, or in an object store).
    staging_dir : str or Path, optional
        For ``out_dir`` in an object store: this machine's folder for the
        plan and the merge (each part task stages its shards in its own
        node's default folder). Each task writes its part split to the store,
        under ``out_dir/.parts/``; the merge downloads them, so no local
        path is shared by the nodes.

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
        raise OptionError(f"--parallel must be at least 1, got {parallel}")
    output = open_output(out_dir if output_is_url(out_dir) else Path(out_dir).resolve(),  # tasks (Ray workers too)
                         storage_options, staging_dir)  # run in other working directories
    out = output.folder
    created = create_output_folder(out)
    try:
        manifest = _split_parallel(source, output, params, parallel, ray, verbose, storage_options)
        output.clear_staging(own_name)
        remove_created_folders(created)
        return manifest
    except Exception:
        if created and all(p.name == LOCK_NAME for p in out.iterdir()):  # failed before writing anything: leave nothing
            shutil.rmtree(out)
            remove_created_folders(created)
        raise


def _split_parallel(source, output, params: SplitParameters, parallel, ray, verbose: bool,
                    storage_options: dict | None) -> dict:
    out = output.folder
    with _exclusive_lock(out):
        parent = _Splitter(source, out, params, False, verbose, storage_options=storage_options, output=output)
        _restore_plan(output)
        if (out / MANIFEST_NAME).exists():
            manifest = already_done(out, out / MANIFEST_NAME, parent.files, params, parent.output)
            _remove_parts(out, output)
            return manifest
        plan = _load_or_make_plan(parent, out, params)
        files = parent.files
        tasks = [dict(path=str(f.path), shown=f.shown, member=f.member, out=output.place(f"{PARTS_DIR}/{i:05d}"),
                      schema=plan["schema"], parameters={**params.as_record(), "seed": plan["part_seeds"][i]},
                      storage_options=storage_options)  # passed to the task, never written
                 for i, f in enumerate(files)]
        todo = [t for i, t in enumerate(tasks) if not output.exists(f"{PARTS_DIR}/{i:05d}/{MANIFEST_NAME}")]
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
        for index in range(len(tasks)):
            root = out / PARTS_DIR / f"{index:05d}"
            output.fetch_prefix(f"{PARTS_DIR}/{index:05d}")  # a store's part split: downloaded for the merge
            part = json.loads((root / MANIFEST_NAME).read_text(encoding="utf-8"))
            part["root"] = str(root)
            parts.append(part)
        manifest = merge_parts(out, params, plan, files, parts, engine)
        for subset in manifest["subsets"].values():  # a store's output: the merged shards uploaded, then the manifest
            for shard in subset["shards"]:
                for entry in shard["files"].values():
                    output.publish_file(out / entry["name"], entry["name"])
        output.publish_manifest(out / MANIFEST_NAME)
        _remove_parts(out, output)
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
            raise OutputFolderError(f"{out} holds an unfinished parallel split of another source or with other "
                                    "parameters (or the source changed since); delete it or choose another output "
                                    "directory")
        if parent.verbose:
            print(f"questlearn: resuming the interrupted parallel split in {out} (schema as inferred when it started)",
                  flush=True)
        return plan
    refuse_foreign_files(out)
    inferred = decide_schema(parent.reader, params, verbose=parent.verbose)  # printed here, once, for all parts
    (out / MARKER_NAME).write_text(MARKER_TEXT, encoding="utf-8")
    plan = {"parameters": params.as_record(), "source": parent.fingerprint,
            "schema": {"kinds": inferred.kinds, "label_numeric": inferred.label_numeric,
                       "columns": [asdict(c) for c in inferred.columns], "sample_rows": inferred.sample_rows,
                       "sample_note": inferred.sample_note, "encoding": inferred.encoding.as_record()},
            "part_seeds": [part_seed(params.seed, i) for i in range(len(parent.files))]}
    write_json_atomically(path, plan)
    parent.output.save(out / MARKER_NAME, MARKER_NAME)
    parent.output.save(path, PLAN_NAME)  # a store's output: another machine resumes from it
    return plan


# -- running the part tasks ------------------------------------------------
def split_part(task: dict) -> int:
    """Split one part file with the shared schema (runs in a worker); returns its rows."""
    schema = task["schema"]
    given = InferredSchema(kinds=schema["kinds"], label_numeric=schema["label_numeric"],
                           columns=[ColumnReport(**c) for c in schema["columns"]], sample_rows=schema["sample_rows"],
                           sample_note=schema["sample_note"],
                           encoding=Encoding.from_record(schema["encoding"]))  # every part encodes rows the same way
    source = task["shown"] if Path(task["shown"]).exists() else task["path"]
    if task.get("member") is not None:  # a ZIP member: the archive as the user named it, and the member
        archive = task["shown"][: -len(task["member"]) - 1]
        source = ZipMember(archive if Path(archive).exists() else task["path"], task["member"])
    try:
        manifest = split_sequential(source, task["out"], verbose=False, schema=given,
                                    storage_options=task.get("storage_options"), **task["parameters"])
    except ValueError as error:  # CsvFormatError cannot be unpickled in the parent: keep its message
        raise _as_named_error(error) from None
    return manifest["source"]["rows"]


def _as_named_error(error: ValueError) -> ValueError:
    """``error`` as the class of :mod:`questlearn.errors` it is (a CSV problem: an
    :class:`~questlearn.errors.InputFormatError`), made of its message alone, so that it
    crosses a process boundary; any other ``ValueError`` as a plain one."""
    from ..io.csvscan import CsvFormatError

    if isinstance(error, CsvFormatError) and not isinstance(error, QuestlearnError):
        return InputFormatError(str(error))
    named = next((c for c in type(error).__mro__ if c.__module__ == QuestlearnError.__module__), ValueError)
    return named(str(error))


def part_process_context():
    """The ``multiprocessing`` context of the part processes: ``forkserver`` with the splitter preloaded.

    Never ``fork`` of this process, which holds pyarrow's threads. The
    forkserver imports :mod:`questlearn.split._worker_imports` once and
    forks every part process from there (``spawn``, where the platform
    has no forkserver, starts each in a fresh interpreter). Where this
    process uses Keras, the server preloads the data workers' imports too
    (:func:`questlearn.data._start_method.preload_worker_imports`): one
    forkserver serves a process's every pool, and it keeps the modules it
    started with.
    """
    import multiprocessing
    import sys

    from ..data._start_method import add_forkserver_preload, preload_worker_imports

    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    add_forkserver_preload(SPLIT_WORKER_IMPORTS)
    if "keras" in sys.modules:
        preload_worker_imports()
    return multiprocessing.get_context("forkserver")


def _end_with_owner(owner_pid: int) -> None:
    """A part process's initializer: end when the splitting process ends (:mod:`questlearn._orphans`).

    A ``spawn`` child is the owner's own, started by the thread that runs
    the pool to its end: the parent-death signal is safe. A ``forkserver``
    child's parent is the server, which outlives its children: the owner is
    watched instead.
    """
    if os.getppid() == owner_pid:
        die_with_parent(owner_pid)
    else:
        die_with_parent(owner_pid=owner_pid, death_signal=False)


def _run_in_processes(tasks: list, workers: int, verbose: bool) -> None:
    from concurrent.futures import FIRST_EXCEPTION, ProcessPoolExecutor, wait
    from concurrent.futures.process import BrokenProcessPool

    # Workers end with this process, even when it is killed while they start (questlearn._orphans).
    with ProcessPoolExecutor(max_workers=workers, mp_context=part_process_context(),
                             initializer=_end_with_owner, initargs=(os.getpid(),)) as pool:
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
                        raise QuestlearnError(f"the process splitting {futures[future]['shown']} died (killed, or out of "
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
                if isinstance(error.cause, QuestlearnError):
                    raise _as_named_error(error.cause) from None
                raise RuntimeError(f"the Ray task splitting {task['shown']} failed") from error  # a bug: its traceback
            if verbose:
                print(f"questlearn: part {task['shown']} split on Ray ({rows} rows)", flush=True)
    return nodes


def _remove_parts(out: Path, output) -> None:
    """Drop the per-part work and the plan once the merged manifest is written (from an output's store too)."""
    if (out / PARTS_DIR).is_dir():
        shutil.rmtree(out / PARTS_DIR)
    with contextlib.suppress(FileNotFoundError):
        (out / PLAN_NAME).unlink()
    stored = output.stored_names()
    if stored is not None:
        output.delete([name for name in stored if name.startswith(f"{PARTS_DIR}/") or name in (PLAN_NAME, MARKER_NAME)])


def _restore_plan(output) -> None:
    """Bring a store's manifest or plan of this parallel split into the staging folder; refuse a prefix
    holding anything else (nothing happens for a local output)."""
    stored = output.stored_names()
    if stored is None:
        return
    output.clear_staging(lambda name: own_name(name) or name == PLAN_NAME or name.startswith(f"{PARTS_DIR}/"),
                         keep=(LOCK_NAME,))
    if MANIFEST_NAME in stored:
        output.fetch(MANIFEST_NAME)
    elif PLAN_NAME in stored:
        output.fetch(PLAN_NAME)
    elif stored:
        raise OutputFolderError(f"{output.shown} is not empty ({stored[:5]}) and holds no questlearn split; "
                                "name an empty or new prefix")
