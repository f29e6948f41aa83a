"""How a sequential split starts: fresh, resumed from its journal, or already done.

The stage before the pass (:mod:`questlearn.split._sequential`): a fresh
split plans (:func:`~questlearn.split._plan.plan_split`: the schema printed,
the disk checked) and marks the output folder as its own; a resumed one
checks that its journal belongs to the same source and parameters, rebuilds
the :class:`~questlearn.split._state.SplitState` from it and reopens the open
shards, cut to the journal's sizes; a finished one is returned as it is.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..errors import OutputFolderError
from ..io.sources import stored_sha256
from ..schema._columns import REGRESSION
from ..manifest._files import MANIFEST_NAME
from ._journal import JOURNAL_NAME, LOCK_NAME, MARKER_NAME, clear_unjournaled_start, own_name
from ._output import check_subsets_filled
from ._params import SplitParameters
from ._plan import open_shard_limit, plan_split
from ._publish import remove_bookkeeping, tidy_store
from ._shards import ShardFiles
from ._state import SplitState, SubsetState

MARKER_TEXT = "written by questlearn split; the files beside it are its own\n"


def already_done(out: Path, manifest_path: Path, files: list, params: SplitParameters, output) -> dict:
    """The manifest of the finished split in ``out``, if it is of the same source and parameters (else refused)."""
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    same_params = manifest.get("parameters") == params.as_record()
    recorded = manifest.get("source", {}).get("files", [])
    same_source = len(recorded) == len(files) and all(
        r.get("bytes") == f.bytes and (r.get("mtime_ns") == f.mtime_ns or r.get("sha256") == stored_sha256(f))
        for r, f in zip(recorded, files))
    if not (same_params and same_source):
        raise OutputFolderError(f"{out} already holds a finished split of another source or with other parameters; "
                                "delete it or choose another output directory")
    remove_bookkeeping(out)
    tidy_store(output, manifest)
    return manifest


def refuse_foreign_files(out: Path) -> None:
    """Refuse an output folder holding anything but questlearn's lock and marker."""
    leftovers = [p.name for p in out.iterdir() if p.name not in (LOCK_NAME, MARKER_NAME)]
    if leftovers:
        raise OutputFolderError(f"{out} is not empty ({sorted(leftovers)[:5]}) and holds no questlearn split; "
                                "choose an empty directory")


def shard_parts(params: SplitParameters, encoding, csv_header: bytes) -> dict:
    """The parts of every shard (:class:`~questlearn.split._shards.ShardFiles`): ``.npy`` dtypes and widths, the CSV header."""
    parts = {}
    if "npy" in params.formats:
        labels = np.float32 if params.task == REGRESSION else np.int32
        parts = {"numbers": (np.float32, len(encoding.numeric)), "codes": (encoding.code_dtype, len(encoding.code_columns)),
                 "labels": (labels, None), "rows": (np.int64, None)}
    if "csv" in params.formats:
        parts["csv"] = csv_header
    return parts


def fresh_state(out: Path, reader, params: SplitParameters, fingerprint: dict, *, schema, verbose: bool,
                where: str, output):
    """Plan a new split in the empty ``out`` and mark the folder as questlearn's.

    Returns the :class:`SplitState` before any row (its subsets without
    shards) and ``first_wave(share)``, the rows to size a subset's first
    shards for. ``schema`` is the kinds and encoding a parallel split's parent
    decided (then nothing is sampled); ``where`` names the source in messages.
    """
    clear_unjournaled_start(out)
    refuse_foreign_files(out)
    plan = plan_split(reader, out, params, output, schema=schema, verbose=verbose)
    if plan.exact and schema is None:  # a part of a parallel split may leave a subset empty
        check_subsets_filled(plan.estimated_rows, params, where)
    (out / MARKER_NAME).write_text(MARKER_TEXT, encoding="utf-8")
    output.save(out / MARKER_NAME, MARKER_NAME)  # a store's prefix is the split's from now on
    for subset in params.subsets:
        (out / subset).mkdir()
    state = SplitState(params, fingerprint, plan.kinds, plan.label_numeric, plan.inferred, plan.encoding,
                       plan.estimated_rows)
    state.start_statistics()
    state.subsets = {subset: SubsetState.fresh(params.seed, number) for number, subset in enumerate(params.subsets)}
    return state, plan.first_wave_rows


def resumed_state(out: Path, journal: dict, params: SplitParameters, fingerprint: dict, verbose: bool) -> SplitState:
    """The state the journal in ``out`` records, its subsets not yet reopened (:func:`reopen_subsets`)."""
    if journal["parameters"] != params.as_record() or journal["source"] != fingerprint:
        raise OutputFolderError(f"{out} holds an unfinished split of another source or with other parameters "
                                "(or the source changed since); delete it or choose another output directory")
    if verbose:
        print(f"questlearn: resuming the interrupted split in {out} (schema as inferred when it started)", flush=True)
    return SplitState.from_journal(journal, params, fingerprint)


def restore_from_store(output) -> None:
    """Bring what an output's store holds of this split into its (emptied) staging folder: the manifest
    of a finished split, or the journal of an unfinished one; a prefix holding anything else is refused.
    Nothing happens for a local output."""
    stored = output.stored_names()
    if stored is None:
        return
    output.clear_staging(own_name, keep=(LOCK_NAME,))
    if MANIFEST_NAME in stored:
        output.fetch(MANIFEST_NAME)
    elif JOURNAL_NAME in stored:
        output.fetch(JOURNAL_NAME)
    elif stored:
        if MARKER_NAME not in stored or not all(own_name(name) for name in stored):
            raise OutputFolderError(f"{output.shown} is not empty ({stored[:5]}) and holds no questlearn split; "
                                    "name an empty or new prefix")
        output.delete(stored)  # a split killed before its first checkpoint: nothing to resume from


def reopen_subsets(out: Path, state: SplitState, saved: dict, parts: dict, output) -> None:
    """Reopen each subset's open shards as the journal's ``saved`` subsets record them (an output's store
    gives back their pieces first); remove the files written after the checkpoint, by a wave the journal
    does not know."""
    for subset, entry in saved.items():
        for shard in entry["open"]:
            for part, pieces in shard.get("pieces", {}).items():
                path = ShardFiles(out / subset, shard["index"], parts).partial_path(part)
                output.fetch_pieces(path, pieces)
        state.subsets[subset] = SubsetState.from_journal(entry, out / subset, parts)
        keep = state.subsets[subset].partial_names()
        for path in (out / subset).iterdir():
            if path.name not in keep:
                path.unlink()


def open_limit(params: SplitParameters, parts: dict) -> int:
    """Shards of ``parts`` open at once (the descriptor limit raised for them where it can be)."""
    return open_shard_limit(params.max_open_shards, len(parts))
