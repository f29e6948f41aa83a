"""Split a log larger than memory into model-ready train and validation shards.

The pipeline, one stage per module:

1. :mod:`~questlearn.io.sources` — which files (one, a directory, a glob, a
   list; plain, gzip/bz2/xz/zstd, or Parquet);
2. :mod:`~questlearn.split._plan` — the split decided before the pass: the
   columns checked, a sample spread over the source
   (:mod:`~questlearn.schema._sampling`) deciding every column's kind
   (:mod:`~questlearn.schema.infer`) and the model-ready encoding (fill values,
   one-hot vocabularies, :mod:`~questlearn.schema.encoding`), printed; the rows
   to expect, the disk they need, the shards open at once;
3. :mod:`~questlearn.io.readers` — one pass over each file, by the reader of
   its format: runs of whole records cut at C speed
   (:mod:`~questlearn.io._fastscan`) and parsed by pyarrow on every core
   (:mod:`~questlearn.io._parse`), or Parquet batches, each a chunk with its
   journal position; :mod:`~questlearn.io.csvscan`
   rescans a run only to locate a problem (:mod:`~questlearn.io._rowchecks`
   names the fix);
4. :mod:`~questlearn.split._prepare` — each chunk's values checked and its rows
   encoded, in source order;
5. this module — each row goes, by a seeded random draw, to ``train/`` or
   ``validate/`` and is dealt into one of the subset's open shards
   (:mod:`~questlearn.split._scatter`), as its encoded float32 row;
6. :mod:`~questlearn.split._shards` and :mod:`~questlearn.split._writer` —
   shard files written once and hashed while written, in a background
   thread that also writes the checkpoints of :mod:`~questlearn.split._journal`;
7. :mod:`~questlearn.split._record` — the manifest record, from the
   pass's final state;
8. :mod:`~questlearn.split._publish` — the shards' final names, then
   ``manifest.json`` (:mod:`~questlearn.manifest._files`), written last,
   atomically.

Shard parts: ``.features.npy`` (float32, the model-ready matrix, columns
``schema.encoding.columns``), ``.labels.npy`` (int32 class codes or float32
regression targets), ``.rows.npy`` (int64 source row numbers) and, when
asked (``formats=("csv", "npy")``), ``.csv`` (the source rows byte for byte).

Every ``checkpoint_bytes`` of source a journal records the exact state
(file, offset, random state, statistics, shard sizes) after the writes
before it are on disk, so a killed split resumes there and finishes
byte-identical to a clean run.
"""

from __future__ import annotations

import errno
import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..io._chunks import read_ahead as _read_ahead
from ..io._parse import Chunk
from ..io.csvscan import CsvFormatError
from ..io.sources import check_unchanged, resolve_sources
from ..manifest._files import FORMAT_VERSION, MANIFEST_NAME, SUBSETS, sha256_of  # noqa: F401 - FORMAT_VERSION: re-exported
from ..schema._columns import CLASSIFICATION, NUMERIC, REGRESSION, NumericStats, Vocabulary, label_strings
from ..schema.encoding import Encoding
from ._journal import (  # noqa: F401
    JOURNAL_NAME,
    LOCK_NAME,
    MARKER_NAME,
    checkpoint_snapshot,
    clear_unjournaled_start,
    write_finishing_journal,  # JOURNAL_NAME: re-exported
)
from ._journal import Append as _Append
from ._journal import CloseShard as _CloseShard
from ._journal import WriteJournal as _WriteJournal
from ._journal import discard_unfinished as _discard_unfinished
from ._journal import exclusive_lock as _exclusive_lock
from ._output import check_subsets_dealt, check_subsets_filled, create_output_folder, remove_created_folders
from ._params import SplitParameters
from ._plan import open_shard_limit, plan_split, read_columns
from ._prepare import PreparedChunk, prepare_chunk
from ._publish import finishing_plan, publish, remove_bookkeeping
from ._record import split_manifest
from ._scatter import ShardDealer, dealer_generator, rows_by_shard, shards_for
from ._shards import ShardFiles
from ._writer import ShardWriter, sync_directory_file_system

CHECKPOINT_BYTES = 128 * 1024 * 1024


def split_sequential(source, out_dir, *, progress: bool = False, verbose: bool = True, schema=None,
                     **parameters) -> dict:
    """Split ``source`` in this process: :func:`questlearn.split.split_csv` without ``parallel``."""
    params = SplitParameters(**parameters)
    out = Path(out_dir)
    splitter = _Splitter(source, out, params, progress, verbose, schema)  # the source's refusals: before out exists
    created = create_output_folder(out)
    try:
        with _exclusive_lock(out):
            return splitter.run()
    except OSError as error:
        free = shutil.disk_usage(out).free if out.exists() else None
        if error.errno == errno.ENOSPC or (free is not None and free < (64 << 20)):
            raise ValueError(f"the disk holding {out} is full ({(free or 0) / 1e6:.0f} MB free): free some space and "
                             "run the same command again; the split resumes where it stopped") from None
        raise
    except Exception:
        # A data or schema error cannot be resumed past (it recurs at the same
        # place): remove what this split wrote, so the command with the fix
        # the message names runs as printed.
        if splitter.writing or created:
            splitter.close()  # the writer thread stops before its files are removed
            _discard_unfinished(out, bool(created))
            remove_created_folders(created)  # the folders this split made, if still empty
        raise
    finally:
        splitter.close()


class _Splitter:
    def __init__(self, source, out: Path, params: SplitParameters, progress: bool, verbose: bool, schema=None):
        self.out, self.params, self.progress, self.verbose = out, params, progress, verbose
        self.given_schema = schema  # kinds decided by a parallel split's parent, shared by all its parts
        self.writing = False
        self.writer = None
        self.files = resolve_sources(source)
        self.reader, self.names = read_columns(self.files, params)
        self.format = self.reader.format
        self.fingerprint = {"files": [f.fingerprint() for f in self.files]}

    # -- run ------------------------------------------------------------
    def run(self) -> dict:
        manifest_path = self.out / MANIFEST_NAME
        if manifest_path.exists():
            return self._already_done(manifest_path)
        journal_path = self.out / JOURNAL_NAME
        self.writing = True
        if journal_path.exists():
            journal = json.loads(journal_path.read_text(encoding="utf-8"))
            self._resume(journal)
            if journal.get("finishing"):
                return publish(self.out, journal["finishing"], self.verbose)
        else:
            self._fresh_start()
        self.writer = ShardWriter()
        self._split()
        return self._finish()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.abandon()
            self.writer = None
        for state in getattr(self, "subsets", {}).values():
            for shard in state["open"]:
                for handle in shard.handles.values():
                    handle.close()
                shard.handles = {}

    def _already_done(self, manifest_path: Path) -> dict:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        same_params = manifest.get("parameters") == self.params.as_record()
        recorded = manifest.get("source", {}).get("files", [])
        same_source = len(recorded) == len(self.files) and all(
            r.get("bytes") == f.bytes and (r.get("mtime_ns") == f.mtime_ns or r.get("sha256") == sha256_of(f.path))
            for r, f in zip(recorded, self.files))
        if not (same_params and same_source):
            raise ValueError(
                f"{self.out} already holds a finished split of another source or with other parameters; "
                "delete it or choose another output directory"
            )
        remove_bookkeeping(self.out)
        return manifest

    def _fresh_start(self):
        clear_unjournaled_start(self.out)
        leftovers = [p.name for p in self.out.iterdir() if p.name not in (LOCK_NAME, MARKER_NAME)]
        if leftovers:
            raise ValueError(f"{self.out} is not empty ({sorted(leftovers)[:5]}) and holds no questlearn split; choose an empty directory")
        plan = plan_split(self.reader, self.out, self.params, schema=self.given_schema, verbose=self.verbose)
        self.kinds, self.label_numeric, self.inferred = plan.kinds, plan.label_numeric, plan.inferred
        self.encoding, self.estimated_rows = plan.encoding, plan.estimated_rows
        if plan.exact and self.given_schema is None:  # a part of a parallel split may leave a subset empty
            check_subsets_filled(plan.estimated_rows, self.params, self._source_name())
        first_wave = plan.first_wave_rows
        (self.out / MARKER_NAME).write_text("written by questlearn split; the files beside it are its own\n", encoding="utf-8")
        for subset in SUBSETS:
            (self.out / subset).mkdir()
        self.position = {"file": 0, "offset": None, "line": None, "read_to": None, "expect": None, "batch": 0}
        self.done_files, self.file_rows, self.records, self.blank_lines, self.empty_files = [], 0, 0, 0, 0
        self.dropped_labels = 0
        self.rng = np.random.Generator(np.random.PCG64(self.params.seed))
        self._init_statistics()
        self.open_limit = open_shard_limit(self.params.max_open_shards, len(self._parts()))
        self.subsets = {}
        for number, (subset, share) in enumerate((("train", 1 - self.params.val_fraction),
                                                  ("validate", self.params.val_fraction))):
            self.subsets[subset] = {"open": [], "label_counts": [], "closed": [], "next_index": 0, "rows": 0, "waves": 0,
                                    "dealer": ShardDealer(dealer_generator(self.params.seed, number), [])}
            self._open_wave(subset, first_wave(share))

    def _init_statistics(self, numeric=None, vocabularies=None, label_stats=None):
        p = self.params
        self.numeric = {n: NumericStats(**(numeric or {}).get(n, {})) for n, k in self.kinds.items() if k == NUMERIC}
        self.category_counts = {n: np.asarray((vocabularies or {}).get(n, [0] * (len(v) + 1)), np.int64)
                                for n, v in self.encoding.vocabularies.items()}
        self.label_vocabulary = None
        if p.task == CLASSIFICATION:
            self.label_vocabulary = Vocabulary(p.label, p.max_classes, overflow="error",
                                               **(vocabularies or {}).get("__label__", {}))
        self.label_stats = {s: NumericStats(**(label_stats or {}).get(s, {})) for s in SUBSETS} if p.task == REGRESSION else {}

    def _parts(self) -> dict:
        parts = {}
        if "npy" in self.params.formats:
            labels = np.float32 if self.params.task == REGRESSION else np.int32
            parts = {"features": (np.float32, self.encoding.width), "labels": (labels, None), "rows": (np.int64, None)}
        if "csv" in self.params.formats:
            parts["csv"] = self._header_bytes()
        return parts

    def _header_bytes(self) -> bytes:
        return self.reader.header_bytes(self.names)

    def _open_wave(self, subset: str, rows: float) -> None:
        """Open the shards that will share the next ``rows`` rows of ``subset``."""
        state = self.subsets[subset]
        count = shards_for(rows, self.params.rows_per_shard, self.open_limit)
        shards = [ShardFiles(self.out / subset, state["next_index"] + i, self._parts()) for i in range(count)]
        for shard in shards:
            shard.open()
        state["next_index"] += count
        state["open"] = shards
        state["dealer"].new_wave(np.full(count, self.params.rows_per_shard, np.int64))
        state["label_counts"] = [{} for _ in shards]
        state["waves"] += 1

    def _resume(self, journal: dict):
        if journal["parameters"] != self.params.as_record() or journal["source"] != self.fingerprint:
            raise ValueError(
                f"{self.out} holds an unfinished split of another source or with other parameters "
                "(or the source changed since); delete it or choose another output directory"
            )
        if self.verbose:
            print(f"questlearn: resuming the interrupted split in {self.out} (schema as inferred when it started)", flush=True)
        self.position = journal["position"]
        self.done_files, self.file_rows = journal["done_files"], journal["file_rows"]
        self.records, self.blank_lines, self.empty_files = journal["records"], journal["blank_lines"], journal["empty_files"]
        self.dropped_labels = journal.get("dropped_labels", 0)
        self.rng = np.random.Generator(np.random.PCG64())
        self.rng.bit_generator.state = journal["rng"]
        self.kinds, self.label_numeric, self.inferred = journal["kinds"], journal["label_numeric"], journal["inferred"]
        self.encoding = Encoding.from_record(journal["encoding"])
        self.estimated_rows = journal["estimated_rows"]
        self._init_statistics(journal["numeric"], journal["vocabularies"], journal["label_stats"])
        self.open_limit = open_shard_limit(self.params.max_open_shards, len(self._parts()))
        self.subsets = {}
        if journal.get("finishing"):
            return
        for subset, saved in journal["subsets"].items():
            shards, keep = [], set()
            for entry in saved["open"]:
                shard = ShardFiles(self.out / subset, entry["index"], self._parts())
                shard.reopen(entry["rows"], entry["sizes"])
                shards.append(shard)
                keep |= {shard.partial_path(part).name for part in shard.parts}
            keep |= {name for closed in saved["closed"] for name in closed["partial_names"]}
            for path in (self.out / subset).iterdir():
                if path.name not in keep:
                    path.unlink()  # written after the checkpoint, by a wave that it does not know
            self.subsets[subset] = {"open": shards, "dealer": ShardDealer.restore(saved["dealer"]),
                                    "label_counts": [e["label_counts"] for e in saved["open"]],
                                    "closed": saved["closed"], "next_index": saved["next_index"],
                                    "rows": saved["rows"], "waves": saved["waves"]}

    # -- the pass -------------------------------------------------------
    def _split(self):
        from tqdm.auto import tqdm

        total = sum(f.bytes for f in self.files)
        done = sum(f.bytes for f in self.files[: self.position["file"]])
        since_checkpoint = 0
        with tqdm(total=total, initial=done, unit="B", unit_scale=True, desc="split", disable=not self.progress) as bar:
            while self.position["file"] < len(self.files):
                source_file = self.files[self.position["file"]]
                chunks = self.reader.chunks(source_file, self.position, self.kinds, self.label_numeric, self.params)
                stages = _read_ahead(self._prepared(_read_ahead(chunks)))
                for prepared, position, read, size, blank_lines in stages:
                    if prepared is not None:
                        self._process(prepared)
                        self.file_rows += len(prepared.chunk) + prepared.dropped
                    self.position.update(position)
                    self.blank_lines += blank_lines  # counted with the position it belongs to (journaled together)
                    since_checkpoint += size
                    if since_checkpoint >= CHECKPOINT_BYTES:
                        self._checkpoint()
                        since_checkpoint = 0
                    bar.update(done + read - bar.n)
                check_unchanged(source_file)
                if self.file_rows == 0:
                    self.empty_files += 1
                self.done_files.append({"name": source_file.name, "bytes": source_file.bytes,
                                        "sha256": self.reader.sha256, "rows": self.file_rows,
                                        "compression": source_file.compression})
                done += source_file.bytes
                self.file_rows = 0
                self.position = {"file": self.position["file"] + 1, "offset": None, "line": None,
                                 "read_to": None, "expect": None, "batch": 0}
                self._checkpoint()
                since_checkpoint = 0
        if self.records == 0 and self.given_schema is None:  # a part of a parallel split may be empty
            first = self.files[0]
            raise CsvFormatError(first.shown, 2, 0, "the source has a header but no data rows")
        if self.records and self.records == self.dropped_labels and self.given_schema is None:
            raise ValueError(f"{self.files[0].shown}: the label {self.params.label!r} is missing in every one of its "
                             f"{self.records} rows: nothing to split; is it the right column? (--label NAME)")

    def _prepared(self, items):
        """Each read chunk checked and encoded (:func:`~questlearn.split._prepare.prepare_chunk`), in a stage of its own."""
        p = self.params
        try:
            for chunk, *rest in items:
                prepared = prepare_chunk(chunk, kinds=self.kinds, label=p.label, task=p.task, encoding=self.encoding,
                                         drop_missing_labels=p.drop_missing_labels) if len(chunk) else None
                yield (prepared, *rest)
        finally:
            items.close()

    def _process(self, prepared: PreparedChunk):
        """Deal one prepared chunk's rows, merge its statistics, queue the writes in dealt order."""
        p = self.params
        chunk = prepared.chunk
        self.dropped_labels += prepared.dropped
        if not len(chunk):  # every row of the chunk dropped for a missing label
            self.records += prepared.dropped
            return
        plan = self._deal(len(chunk))
        for name, block in prepared.numeric_stats.items():
            self.numeric[name].merge(block)
        for name, added in prepared.category_counts.items():
            self.category_counts[name] += added
        labels = self._label_codes(chunk, chunk.table[p.label]) if p.task == CLASSIFICATION else prepared.targets
        order = np.concatenate([rows for _, _, rows, _ in plan]) if plan else np.empty(0, np.int64)
        x = prepared.features.take(order, axis=0)
        row_numbers = self.records + chunk.read_position(order)
        labels = labels[order]
        actions, begin = [], 0
        for subset, dealt, rows, closing in plan:
            end = begin + len(rows)
            actions += closing  # a full wave closes after its last writes, before the next wave's
            actions += self._writes(subset, chunk, rows, dealt, x[begin:end], labels[begin:end], row_numbers[begin:end])
            begin = end
        self.writer.submit(actions)
        self.records += len(chunk) + prepared.dropped

    def _label_codes(self, chunk: Chunk, column) -> np.ndarray:
        """Class codes of a label column (its distinct values are named and looked up once)."""
        p = self.params
        encoded = pc.dictionary_encode(column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column)
        indices = encoded.indices.to_numpy(zero_copy_only=False)
        repeats = np.bincount(indices, minlength=len(encoded.dictionary))
        try:
            codes = self.label_vocabulary.encode(label_strings(pa.chunked_array([encoded.dictionary])), repeats)
        except OverflowError:
            raise chunk.error(0, f"the label {p.label!r} has more than {p.max_classes} distinct values "
                              "in the rows up to this block; " + ("use --task regression for a numeric target, or "
                              if self.label_numeric else "") + "raise --max-classes") from None
        return codes.astype(np.int32)[indices]

    def _deal(self, count: int):
        """Send each of ``count`` rows to a subset, then deal it into one of the subset's open shards.

        Returns ``[(subset, (open shards, rows per shard, label counts), row
        positions in dealt order, writer actions to run first), ...]``; those
        actions close a full wave before rows go to the next one.
        """
        to_validation = self.rng.random(count) < self.params.val_fraction
        plan = []
        for subset, selected in (("train", ~to_validation), ("validate", to_validation)):
            rows = np.flatnonzero(selected)
            closing = []
            state = self.subsets[subset]
            while len(rows):
                if state["dealer"].wave_full:
                    closing += self._close_wave(subset)
                    continue
                assignment = state["dealer"].take(len(rows))
                here, rows = rows[:len(assignment)], rows[len(assignment):]
                order = rows_by_shard(assignment, len(state["open"]))
                per_shard = np.bincount(assignment, minlength=len(state["open"]))
                plan.append((subset, (state["open"], per_shard, state["label_counts"]), here[order], closing))
                closing = []
        return plan

    def _writes(self, subset, chunk, rows, dealt, x, labels, row_numbers) -> list:
        """The writes of rows dealt to shards of ``subset`` (rows grouped by shard, in order)."""
        shards, per_shard, label_counts = dealt
        state = self.subsets[subset]
        p = self.params
        state["rows"] += len(rows)
        if p.task == REGRESSION:
            self.label_stats[subset].update(labels.astype(np.float64))
        parts = {"features": x, "labels": labels, "rows": row_numbers} if "npy" in p.formats else {}
        values = self.label_vocabulary.values if p.task == CLASSIFICATION else None
        if values is not None:
            shard_of_row = np.repeat(np.arange(len(per_shard)), per_shard)
            tally = np.bincount(shard_of_row * len(values) + labels, minlength=len(per_shard) * len(values))
            tally = tally.reshape(len(per_shard), len(values))
        actions, begin = [], 0
        for position in np.flatnonzero(per_shard).tolist():
            end = begin + int(per_shard[position])
            shard = shards[position]
            for part, array in parts.items():
                actions.append(_Append(shard, part, array[begin:end]))
            if "csv" in p.formats:
                actions.append(_Append(shard, "csv", chunk.record_bytes(rows[begin:end], p.delimiter)))
            shard.rows += end - begin
            if values is not None:
                counts = label_counts[position]
                for code in np.flatnonzero(tally[position]).tolist():
                    counts[values[code]] = counts.get(values[code], 0) + int(tally[position, code])
            begin = end
        return actions

    def _close_wave(self, subset: str) -> list:
        """All places of the open shards are taken: close them, open the next wave."""
        state = self.subsets[subset]
        closing = list(zip(state["open"], state["label_counts"]))
        consumed = max(self.position.get("offset") or 0, 1)
        total = sum(f.bytes for f in self.files)
        remaining = max(self.estimated_rows - self.records, self.records * (total / consumed - 1), 1)
        share = self.params.val_fraction if subset == "validate" else 1 - self.params.val_fraction
        self._open_wave(subset, remaining * share)
        return [_CloseShard(state["closed"], shard, counts) for shard, counts in closing]

    def _checkpoint(self) -> None:
        """Queue a journal write after the writes queued so far."""
        snapshot = checkpoint_snapshot(self)
        self.writer.submit([_WriteJournal(self.out, snapshot, [sh for s in self.subsets.values() for sh in s["open"]])])

    def _source_name(self) -> str:
        return self.files[0].shown if len(self.files) == 1 else f"the source ({len(self.files)} files)"

    # -- the end ----------------------------------------------------------
    def _finish(self) -> dict:
        if self.given_schema is None:
            check_subsets_dealt({s: state["rows"] for s, state in self.subsets.items()}, self.params,
                                self._source_name())
        actions = []
        for subset, state in self.subsets.items():
            actions += [_CloseShard(state["closed"], shard, counts) for shard, counts in zip(state["open"], state["label_counts"])]
            state["open"] = []
        self.writer.submit(actions)
        self.writer.finish()
        self.writer = None
        sync_directory_file_system(self.out)
        finishing = finishing_plan(self.subsets)
        finishing["manifest"] = split_manifest(
            self.params, finishing["shards"], files=self.files, done_files=self.done_files, source_format=self.format,
            names=self.names, records=self.records, blank_lines=self.blank_lines, empty_files=self.empty_files,
            dropped_labels=self.dropped_labels,
            kinds=self.kinds, inferred=self.inferred, label_numeric=self.label_numeric, encoding=self.encoding,
            numeric=self.numeric, category_counts=self.category_counts, label_vocabulary=self.label_vocabulary,
            label_stats=self.label_stats, estimated_rows=self.estimated_rows, open_limit=self.open_limit,
            subsets=self.subsets)
        write_finishing_journal(self, finishing)
        return publish(self.out, finishing, self.verbose)
