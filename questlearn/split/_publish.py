"""Publish a finished split: final shard names, then ``manifest.json``.

The last stage of the split. :func:`finishing_plan` turns the closed
shards into the publishing plan (renames of the partial files to
``split_data_NNNNN.*``, empty shards to delete); the splitter records it in
the finishing journal (:func:`questlearn.split._journal.write_finishing_journal`)
before :func:`publish` carries it out, so a split killed while publishing
resumes here. The manifest is written last, atomically; then the journal
and any leftover partial files go (:func:`remove_bookkeeping`).
"""

from __future__ import annotations

import contextlib
from pathlib import Path

from ..manifest._files import ALL_SUBSETS, MANIFEST_NAME, fsync_directory, write_json_atomically, write_manifest
from ._journal import JOURNAL_NAME, own_name
from ._record import report_end
from ._shards import shard_name


def finishing_plan(subsets: dict) -> dict:
    """The shards' final names and entries, the renames, the files to discard.

    ``subsets`` maps a subset to its :class:`~questlearn.split._state.SubsetState`
    (``closed``: the records of :class:`questlearn.split._journal.CloseShard`); the plan's ``"manifest"`` is
    left for the caller to fill in.
    """
    finishing = {"shards": {}, "manifest": None, "renames": [], "discard": []}
    for subset, state in subsets.items():
        entries, index = [], 0
        for closed in sorted(state.closed, key=lambda e: e["index"]):
            if closed["rows"] == 0:  # removed once the finishing journal is on disk
                finishing["discard"] += [f"{subset}/{name}" for name in closed["partial_names"]]
                continue
            files = {}
            for part, record in closed["files"].items():
                files[part] = {"name": shard_name(subset, index, part),
                               **{k: record[k] for k in ("bytes", "sha256", "data_offset")}}
                finishing["renames"].append([f"{subset}/{record['partial']}", files[part]["name"]])
            entries.append({"index": index, "rows": closed["rows"], "files": files,
                            "label_counts": dict(sorted(closed["label_counts"].items()))})
            index += 1
        finishing["shards"][subset] = entries
    return finishing


def publish(out: Path, finishing: dict, verbose: bool, output, part: bool = False) -> dict:
    """Give the closed shards their final names, then write the manifest (resumable).

    ``output`` (:func:`questlearn.io.outputs.open_output`) renames the files
    in ``out``, or uploads them to the store, and publishes the manifest last.
    The manifest is checked as its readers check it before it is written
    (:func:`~questlearn.manifest._files.write_manifest`), except a ``part``'s
    of a parallel split: that one only the merge reads (an empty part's has
    no classes), and the merged manifest is checked in its turn.
    """
    for name in finishing["discard"]:
        (out / name).unlink(missing_ok=True)
    for partial_name, final_name in finishing["renames"]:
        output.publish_file(out / partial_name, final_name)
    for subset in finishing["shards"]:
        fsync_directory(out / subset)
    manifest = finishing["manifest"]
    (write_json_atomically if part else write_manifest)(out / MANIFEST_NAME, manifest)
    output.publish_manifest(out / MANIFEST_NAME)
    remove_bookkeeping(out)
    tidy_store(output, manifest)
    if verbose:
        report_end(manifest)
    return manifest


def tidy_store(output, manifest: dict) -> None:
    """Delete from an output's store the split's bookkeeping (journal, marker, pieces of open shards) and
    any shard object the manifest does not list (uploaded by a run that was killed); others' objects stay."""
    stored = output.stored_names()
    if stored is None:
        return
    listed = {entry["name"] for subset in manifest["subsets"].values() for shard in subset["shards"]
              for entry in shard["files"].values()}
    output.delete([name for name in stored if name not in listed and own_name(name) and name != MANIFEST_NAME])


def remove_bookkeeping(out: Path):
    """Delete the journal and partial files of a finished split."""
    leftovers = [out / JOURNAL_NAME]
    for subset in ALL_SUBSETS:
        if (out / subset).is_dir():
            leftovers += [p for p in (out / subset).iterdir() if p.name.endswith((".partial", ".tmp"))]
    for path in leftovers:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
