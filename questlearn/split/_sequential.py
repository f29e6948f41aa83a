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
4. :mod:`~questlearn.split._start` — a fresh split marks its output folder,
   a killed one is resumed from its journal
   (:class:`~questlearn.split._state.SplitState`);
5. :mod:`~questlearn.split._prepare` — each chunk's values checked and its rows
   encoded, in source order;
6. this module — each row goes, by a seeded random draw, to ``train/``,
   ``validate/`` or (with ``test_fraction``) the held-out ``test/``, and is dealt into one of the subset's open shards
   (:mod:`~questlearn.split._scatter`), as its encoded float32 row;
7. :mod:`~questlearn.split._shards` and :mod:`~questlearn.split._writer` —
   shard files written once and hashed while written, in a background
   thread that also writes the checkpoints of :mod:`~questlearn.split._journal`;
8. :mod:`~questlearn.split._record` — the manifest record, from the
   pass's final state;
9. :mod:`~questlearn.split._publish` — the shards' final names, then
   ``manifest.json`` (:mod:`~questlearn.manifest._files`), written last,
   atomically.

Shard parts: ``.numbers.npy`` (float32, columns ``schema.encoding.numeric``),
``.codes.npy`` (category codes, columns ``schema.encoding.code_columns``), ``.labels.npy`` (int32 class codes or float32
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

from ..errors import DiskFullError, SchemaError, StorageError
from ..io._chunks import read_ahead as _read_ahead
from ..io.csvscan import CsvFormatError
from ..io.sources import check_unchanged, resolve_sources
from ..io.outputs import open_output
from ..manifest._files import FORMAT_VERSION, MANIFEST_NAME  # noqa: F401 - FORMAT_VERSION: re-exported
from ..schema._columns import CLASSIFICATION, REGRESSION
from ._journal import JOURNAL_NAME, LOCK_NAME, MARKER_NAME, checkpoint, write_finishing_journal  # noqa: F401 - names re-exported
from ._journal import Append as _Append
from ._journal import CloseShard as _CloseShard
from ._journal import discard_unfinished as _discard_unfinished
from ._journal import exclusive_lock as _exclusive_lock
from ._journal import own_name
from ._output import check_subsets_dealt, create_output_folder, remove_created_folders
from ._params import SplitParameters
from ._plan import read_columns
from ._prepare import PreparedChunk, label_codes, prepare_chunk
from ._publish import finishing_plan, publish
from ._record import split_manifest
from ._scatter import rows_by_shard, shards_for
from ._shards import ShardFiles
from ._start import already_done, fresh_state, open_limit, reopen_subsets, restore_from_store, resumed_state, shard_parts
from ._state import SplitState, start_position
from ._writer import ShardWriter, sync_directory_file_system

CHECKPOINT_BYTES = 128 * 1024 * 1024


def split_sequential(source, out_dir, *, progress: bool = False, verbose: bool = True, schema=None,
                     storage_options: dict | None = None, staging_dir=None, **parameters) -> dict:
    """Split ``source`` in this process: :func:`questlearn.split.split_csv` without ``parallel``.

    ``out_dir`` is a folder, or a prefix in an object store whose shards are
    written first in ``staging_dir`` (:func:`questlearn.io.outputs.open_output`).
    """
    params = SplitParameters(**parameters)
    output = open_output(out_dir, storage_options, staging_dir)
    out = output.folder
    splitter = _Splitter(source, out, params, progress, verbose, schema, storage_options, output)  # the source's refusals: before out exists
    created = create_output_folder(out)
    try:
        with _exclusive_lock(out):
            manifest = splitter.run()
        output.clear_staging(own_name)
        remove_created_folders(created)
        return manifest
    except StorageError:
        raise  # the store failed, not the data: the same command resumes from the last checkpoint
    except OSError as error:
        free = shutil.disk_usage(out).free if out.exists() else None
        if error.errno == errno.ENOSPC or (free is not None and free < (64 << 20)):
            raise DiskFullError(f"the disk holding {out} is full ({(free or 0) / 1e6:.0f} MB free): free some space "
                                "and run the same command again; the split resumes where it stopped") from None
        raise
    except Exception:
        # A data or schema error cannot be resumed past (it recurs at the same
        # place): remove what this split wrote, so the command with the fix
        # the message names runs as printed.
        if splitter.writing or created:
            splitter.close()  # the writer thread stops before its files are removed
            _discard_unfinished(out, bool(created))
            splitter.discard_stored()
            remove_created_folders(created)  # the folders this split made, if still empty
        raise
    finally:
        splitter.close()


class _Splitter:
    """One sequential split of a source into ``out``: started or resumed (:mod:`questlearn.split._start`),
    the pass over the source, the end (manifest, publishing)."""

    def __init__(self, source, out: Path, params: SplitParameters, progress: bool, verbose: bool, schema=None,
                 storage_options: dict | None = None, output=None):
        self.out, self.params, self.progress, self.verbose = out, params, progress, verbose
        self.output = output if output is not None else open_output(out)
        self.output.check_apart(source)
        self.started = False  # this run wrote the store's marker, or resumed its split: a data error removes it
        self.wave_closed = False  # a wave closed since the last checkpoint
        self.given_schema = schema  # kinds decided by a parallel split's parent, shared by all its parts
        self.files = resolve_sources(source, storage_options)
        self.reader, self.names = read_columns(self.files, params)
        self.format = self.reader.format
        self.fingerprint = {"files": [f.fingerprint() for f in self.files]}
        self.state: SplitState | None = None  # set by run(), started or resumed
        self.parts: dict = {}  # every shard's parts (:func:`~questlearn.split._start.shard_parts`)
        self.writing = False  # run() may write into out (a failure then removes what it wrote)
        self.writer: ShardWriter | None = None

    # -- run ------------------------------------------------------------
    def run(self) -> dict:
        restore_from_store(self.output)
        manifest_path = self.out / MANIFEST_NAME
        if manifest_path.exists():
            return already_done(self.out, manifest_path, self.files, self.params, self.output)
        journal_path = self.out / JOURNAL_NAME
        self.writing = True
        if journal_path.exists():
            journal = json.loads(journal_path.read_text(encoding="utf-8"))
            self.state = resumed_state(self.output.shown, journal, self.params, self.fingerprint, self.verbose)
            self.started = True
            if journal.get("finishing"):
                return publish(self.out, journal["finishing"], self.verbose, self.output, part=self.given_schema is not None)
            self._set_parts()
            reopen_subsets(self.out, self.state, journal["subsets"], self.parts, self.output)
        else:
            self.started = True
            self.state, first_wave = fresh_state(self.out, self.reader, self.params, self.fingerprint,
                                                 schema=self.given_schema, verbose=self.verbose,
                                                 where=self._source_name(), output=self.output)
            self._set_parts()
            for subset in self.params.subsets:
                self._open_wave(subset, first_wave(self._share(subset)))
        self.writer = ShardWriter()
        self._split()
        return self._finish()

    def discard_stored(self) -> None:
        """After a data error: delete what this split put in its output's store (nothing for a local output)."""
        stored = self.output.stored_names() if self.started else None
        if stored and MARKER_NAME in stored:
            self.output.delete([name for name in stored if own_name(name)])

    def close(self) -> None:
        if self.writer is not None:
            self.writer.abandon()
            self.writer = None
        for subset in self.state.subsets.values() if self.state is not None else ():
            for shard in subset.open:
                for handle in shard.handles.values():
                    handle.close()
                shard.handles = {}

    def _set_parts(self) -> None:
        header = self.reader.header_bytes(self.names)
        self.parts = shard_parts(self.params, self.state.encoding, header)
        self.state.open_limit = open_limit(self.params, self.parts)

    def _share(self, subset: str) -> float:
        return self.params.share(subset)

    def _open_wave(self, subset: str, rows: float) -> None:
        """Open the shards that will share the next ``rows`` rows of ``subset``."""
        state = self.state.subsets[subset]
        count = shards_for(rows, self.params.rows_per_shard, self.state.open_limit)
        shards = [ShardFiles(self.out / subset, state.next_index + i, self.parts) for i in range(count)]
        for shard in shards:
            shard.open()
        state.next_index += count
        state.open = shards
        state.dealer.new_wave(np.full(count, self.params.rows_per_shard, np.int64))
        state.label_counts = [{} for _ in shards]
        state.waves += 1

    # -- the pass -------------------------------------------------------
    def _split(self):
        from tqdm.auto import tqdm

        state = self.state
        total = sum(f.bytes for f in self.files)
        done = sum(f.bytes for f in self.files[: state.position["file"]])
        since_checkpoint = 0
        with tqdm(total=total, initial=done, unit="B", unit_scale=True, desc="split", disable=not self.progress) as bar:
            while state.position["file"] < len(self.files):
                source_file = self.files[state.position["file"]]
                chunks = self.reader.chunks(source_file, state.position, state.kinds, state.label_numeric, self.params)
                stages = _read_ahead(self._prepared(_read_ahead(chunks)))
                for prepared, position, read, size, blank_lines in stages:
                    if prepared is not None:
                        self._process(prepared)
                        state.file_rows += len(prepared.chunk) + prepared.dropped
                    state.position.update(position)
                    state.blank_lines += blank_lines  # counted with the position it belongs to (journaled together)
                    since_checkpoint += size
                    if since_checkpoint >= CHECKPOINT_BYTES or (self.wave_closed and self.output.checkpoint_each_wave):
                        self._checkpoint()
                        since_checkpoint = 0
                    bar.update(done + read - bar.n)
                check_unchanged(source_file)
                if state.file_rows == 0:
                    state.empty_files += 1
                state.done_files.append({"name": source_file.name, "bytes": source_file.bytes,
                                         "sha256": self.reader.sha256, "rows": state.file_rows,
                                         "compression": source_file.compression, **source_file.member_record()})
                done += source_file.bytes
                state.file_rows = 0
                state.position = start_position(state.position["file"] + 1)
                self._checkpoint()
                since_checkpoint = 0
        if state.records == 0 and self.given_schema is None:  # a part of a parallel split may be empty
            first = self.files[0]
            raise CsvFormatError(first.shown, 2, 0, "the source has a header but no data rows")
        if state.records and state.records == state.dropped_labels and self.given_schema is None:
            raise SchemaError(f"{self.files[0].shown}: the label {self.params.label!r} is missing in every one of its "
                              f"{state.records} rows: nothing to split; is it the right column? (--label NAME)")

    def _prepared(self, items):
        """Each read chunk checked and encoded (:func:`~questlearn.split._prepare.prepare_chunk`), in a stage of its own."""
        p = self.params
        try:
            for chunk, *rest in items:
                prepared = prepare_chunk(chunk, kinds=self.state.kinds, label=p.label, task=p.task,
                                         encoding=self.state.encoding,
                                         drop_missing_labels=p.drop_missing_labels,
                                         invalid=p.invalid) if len(chunk) else None
                yield (prepared, *rest)
        finally:
            items.close()

    def _process(self, prepared: PreparedChunk):
        """Deal one prepared chunk's rows, merge its statistics, queue the writes in dealt order."""
        p, state = self.params, self.state
        chunk = prepared.chunk
        state.dropped_labels += prepared.dropped
        if not len(chunk):  # every row of the chunk dropped for a missing label
            state.records += prepared.dropped
            return
        plan = self._deal(len(chunk))
        for name, block in prepared.numeric_stats.items():
            state.numeric[name].merge(block)
        for name, added in prepared.category_counts.items():
            state.category_counts[name] += added
        labels = label_codes(chunk, state.label_vocabulary, p, state.label_numeric) \
            if p.task == CLASSIFICATION else prepared.targets
        order = np.concatenate([rows for _, _, rows, _ in plan]) if plan else np.empty(0, np.int64)
        x = prepared.numbers.take(order, axis=0)
        codes = prepared.codes.take(order, axis=0)
        row_numbers = state.records + chunk.read_position(order)
        labels = labels[order]
        actions, begin = [], 0
        for subset, dealt, rows, closing in plan:
            end = begin + len(rows)
            actions += closing  # a full wave closes after its last writes, before the next wave's
            actions += self._writes(subset, chunk, rows, dealt, x[begin:end], codes[begin:end], labels[begin:end],
                                    row_numbers[begin:end])
            begin = end
        self.writer.submit(actions)
        state.records += len(chunk) + prepared.dropped

    def _deal(self, count: int):
        """Send each of ``count`` rows to a subset, then deal it into one of the subset's open shards.

        Returns ``[(subset, (open shards, rows per shard, label counts), row
        positions in dealt order, writer actions to run first), ...]``; those
        actions close a full wave before rows go to the next one.
        """
        draws = self.state.rng.random(count)
        to_validation = draws < self.params.val_fraction
        chosen = [("train", ~to_validation), ("validate", to_validation)]
        if self.params.test_fraction:  # val_fraction <= draw < val_fraction + test_fraction: held out
            to_test = ~to_validation & (draws < self.params.val_fraction + self.params.test_fraction)
            chosen = [("train", ~(to_validation | to_test)), ("validate", to_validation), ("test", to_test)]
        plan = []
        for subset, selected in chosen:
            rows = np.flatnonzero(selected)
            closing = []
            state = self.state.subsets[subset]
            while len(rows):
                if state.dealer.wave_full:
                    closing += self._close_wave(subset)
                    continue
                assignment = state.dealer.take(len(rows))
                here, rows = rows[:len(assignment)], rows[len(assignment):]
                order = rows_by_shard(assignment, len(state.open))
                per_shard = np.bincount(assignment, minlength=len(state.open))
                plan.append((subset, (state.open, per_shard, state.label_counts), here[order], closing))
                closing = []
        return plan

    def _writes(self, subset, chunk, rows, dealt, x, codes, labels, row_numbers) -> list:
        """The writes of rows dealt to shards of ``subset`` (rows grouped by shard, in order)."""
        shards, per_shard, label_counts = dealt
        p = self.params
        self.state.subsets[subset].rows += len(rows)
        if p.task == REGRESSION:
            self.state.label_stats[subset].update(labels.astype(np.float64))
        parts = {"numbers": x, "codes": codes, "labels": labels, "rows": row_numbers} if "npy" in p.formats else {}
        values = self.state.label_vocabulary.values if p.task == CLASSIFICATION else None
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
        state = self.state
        closing = list(zip(state.subsets[subset].open, state.subsets[subset].label_counts))
        consumed = max(state.position.get("offset") or 0, 1)
        total = sum(f.bytes for f in self.files)
        remaining = max(state.estimated_rows - state.records, state.records * (total / consumed - 1), 1)
        self._open_wave(subset, remaining * self._share(subset))
        self.wave_closed = True
        return [_CloseShard(state.subsets[subset].closed, shard, counts) for shard, counts in closing]

    def _checkpoint(self) -> None:
        """Queue a journal write after the writes queued so far."""
        self.writer.submit([checkpoint(self.out, self.state, self.output)])
        self.wave_closed = False

    def _source_name(self) -> str:
        return self.files[0].shown if len(self.files) == 1 else f"the source ({len(self.files)} files)"

    # -- the end ----------------------------------------------------------
    def _finish(self) -> dict:
        subsets = self.state.subsets
        if self.given_schema is None:
            check_subsets_dealt({s: subset.rows for s, subset in subsets.items()}, self.params, self._source_name())
        actions = []
        for subset in subsets.values():
            actions += [_CloseShard(subset.closed, shard, counts) for shard, counts in zip(subset.open, subset.label_counts)]
            subset.open = []
        self.writer.submit(actions)
        self.writer.finish()
        self.writer = None
        sync_directory_file_system(self.out)
        finishing = finishing_plan(subsets)
        finishing["manifest"] = split_manifest(self.state, finishing["shards"], files=self.files,
                                               source_format=self.format, names=self.names)
        write_finishing_journal(self.out, self.state, finishing)
        return publish(self.out, finishing, self.verbose, self.output, part=self.given_schema is not None)

