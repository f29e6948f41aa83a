"""The split's journal: what a killed split needs to resume byte-identical.

Every checkpoint queues a :class:`WriteJournal` on the shard writer, after
the :class:`Append` and :class:`CloseShard` actions before it: it makes
those writes durable, then records the exact state (file, offset, random
state, statistics, open and closed shards with their sizes) in
``.split-journal.json``. At the end a finishing journal records the shards'
final names and the manifest before :mod:`questlearn.split._publish` renames and
writes them, so publishing resumes too.

Also here: the folder's bookkeeping names, the lock that keeps a second
split out of the folder, and the clean-up after a failure before any shard
was final.
"""

from __future__ import annotations

import contextlib
import shutil
from pathlib import Path

from ..errors import OutputFolderError
from ..manifest._files import ALL_SUBSETS, MANIFEST_NAME, write_json_atomically
from ._shards import ShardFiles, shard_name
from ._writer import sync_directory_file_system, sync_file_system

JOURNAL_NAME = ".split-journal.json"
#: The store's objects holding the bytes open shards gained at a checkpoint, named by the rows read before it.
PIECES_NAME = ".split-pieces-"
LOCK_NAME = ".split.lock"
MARKER_NAME = ".questlearn-split"


def discard_unfinished(out: Path, created: bool) -> None:
    """After a failure before any shard was final, remove what questlearn wrote
    (proved by its marker), so the command can be run again as printed."""
    if not (out / MARKER_NAME).exists() and not created:
        return
    for name in (*ALL_SUBSETS, JOURNAL_NAME, f".{JOURNAL_NAME}.tmp", MARKER_NAME, LOCK_NAME):
        path = out / name
        if path.is_dir():
            if all(p.name.startswith((".split_data_", ".shard_")) or p.name.endswith(".tmp") for p in path.iterdir()):
                shutil.rmtree(path)
        elif path.exists():
            path.unlink()
    if created and out.is_dir() and not any(out.iterdir()):
        out.rmdir()


def clear_unjournaled_start(out: Path) -> None:
    """Remove what a split killed before its first checkpoint left behind.

    Only when questlearn's marker file proves the folder is its own, and
    only files this module names (subset folders holding nothing but
    partial shard files, a journal being written); anything else makes
    a fresh split refuse the folder.
    """
    names = {p.name for p in out.iterdir()} - {LOCK_NAME}
    ours = {*ALL_SUBSETS, f".{JOURNAL_NAME}.tmp", MARKER_NAME}
    if MARKER_NAME not in names or not names <= ours:
        return
    for subset in ALL_SUBSETS:
        folder = out / subset
        if folder.is_dir() and not all(p.name.startswith(".shard_") and p.is_file() for p in folder.iterdir()):
            return
    for name in names - {MARKER_NAME}:
        path = out / name
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()


@contextlib.contextmanager
def exclusive_lock(out: Path):
    """Hold ``out``'s lock file for the split (another split there is refused)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: no advisory locks
        yield
        return
    with open(out / LOCK_NAME, "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise OutputFolderError(f"another questlearn split is writing to {out}; wait for it or choose another directory") from None
        yield


def own_name(name: str) -> bool:
    """Whether ``name`` (relative to the output) is one a split writes: its bookkeeping, or a shard's file
    (partial, a piece of one, or final) in a subset folder."""
    if name in (JOURNAL_NAME, f".{JOURNAL_NAME}.tmp", MARKER_NAME, LOCK_NAME, MANIFEST_NAME, f".{MANIFEST_NAME}.tmp"):
        return True
    if name.startswith(PIECES_NAME) and name[len(PIECES_NAME):].isdigit():
        return True
    subset, slash, rest = name.partition("/")
    return bool(slash) and subset in ALL_SUBSETS and "/" not in rest and rest.startswith((".shard_", "split_data_"))


def checkpoint(out: Path, state, output) -> WriteJournal:
    """The writer action that journals the :class:`~questlearn.split._state.SplitState` ``state`` as it is now,
    once the writes queued before it are on disk (and, for a store's output, uploaded)."""
    return WriteJournal(out, state.to_journal(), [shard for subset in state.subsets.values() for shard in subset.open],
                        output)


def write_finishing_journal(out: Path, state, finishing: dict) -> None:
    """Record the publishing plan ``finishing`` (:func:`questlearn.split._publish.finishing_plan`) of the
    :class:`~questlearn.split._state.SplitState` ``state``."""
    write_json_atomically(out / JOURNAL_NAME, state.to_finishing_journal(finishing))


class Append:
    """Writer action: append rows to one part of a shard."""

    def __init__(self, shard: ShardFiles, part: str, payload):
        self.shard, self.part, self.payload = shard, part, payload

    def __call__(self):
        self.shard.append(self.part, self.payload if isinstance(self.payload, list) else memoryview(self.payload))


class CloseShard:
    """Writer action: finish a shard's files and record it among the closed ones."""

    def __init__(self, closed: list, shard: ShardFiles, label_counts: dict):
        self.closed, self.shard, self.label_counts = closed, shard, label_counts

    def __call__(self):
        names = {part: self.shard.partial_path(part).name for part in self.shard.parts}
        files = self.shard.close()
        for part, record in files.items():
            record["partial"] = names[part]
        self.closed.append({"index": self.shard.index, "rows": self.shard.rows, "files": files,
                            "label_counts": dict(self.label_counts), "partial_names": sorted(names.values())})


class WriteJournal:
    """Writer action: make the writes so far durable, then record the state.

    For an output in an object store (:class:`questlearn.io.outputs.RemoteOutput`)
    the checkpoint also makes the writes safe in the store, in this order:
    the closed shards still in the staging folder are uploaded (and leave
    it), then the bytes every open shard gained since the last checkpoint,
    one after the other in one object (``.split-pieces-RECORDS``; the
    journal lists, for each shard file, its pieces: object, offset in it,
    and the bytes of the file it holds), then the journal. A resume on any machine, its
    staging folder empty, downloads the journal and the open shards' pieces
    and goes on from this checkpoint, so no wave is written twice.
    """

    def __init__(self, out: Path, snapshot: dict, open_shards: list, output):
        self.out, self.snapshot, self.open_shards, self.output = out, snapshot, open_shards, output

    def __call__(self):
        handles = [h for shard in self.open_shards for h in shard.handles.values()]
        if handles:
            sync_file_system(handles[0].fileno(), [h.fileno() for h in handles])
        else:
            sync_directory_file_system(self.out)
        for name, state in self.snapshot["subsets"].items():
            state["closed"] = [dict(c) for c in state["closed"]]
            for closed in state["closed"]:
                for part, record in closed["files"].items():
                    partial = self.out / name / record["partial"]
                    if closed["rows"] and partial.exists():  # a full wave's shard: its final name is its index
                        self.output.move(partial, shard_name(name, closed["index"], part))
        self._save_pieces()
        for name, state in self.snapshot["subsets"].items():
            by_index = {shard.index: shard for shard in self.open_shards if shard.folder.name == name}
            for entry in state["open"]:
                shard = by_index[entry["index"]]
                entry["sizes"] = shard.sizes()
                entry["pieces"] = {part: [list(piece) for piece in pieces] for part, pieces in shard.pieces.items()}
        write_json_atomically(self.out / JOURNAL_NAME, self.snapshot)
        self.output.save(self.out / JOURNAL_NAME, JOURNAL_NAME)

    def _save_pieces(self) -> None:
        """Copy to the output's store, as one object, the bytes each open shard gained since the last checkpoint."""
        ranges, added, offset = [], [], 0
        name = f"{PIECES_NAME}{self.snapshot['records']:012d}"
        for shard in self.open_shards:
            for part, size in shard.sizes().items():
                pieces = shard.pieces.setdefault(part, [])
                start = pieces[-1][3] if pieces else 0
                if size > start:
                    ranges.append((shard.partial_path(part), start, size))
                    added.append((pieces, [name, offset, start, size]))
                    offset += size - start
        if ranges and self.output.save_pieces(name, ranges):
            for pieces, piece in added:
                pieces.append(piece)
