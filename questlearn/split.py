"""Split a CSV file larger than memory into train and validation shards.

One sequential pass over the source (:class:`~questlearn.csvscan.CsvScanner`)
assigns every record, by a seeded random draw, to ``train/`` or
``validate/`` and appends it to the current shard of that subset:

* CSV shards ``split_data_00000.csv`` hold the source rows byte for byte,
  after a copy of the header;
* binary shards (``.features.npy`` float32, ``.labels.npy`` int32,
  ``.rows.npy`` int64 source row numbers) hold the same rows parsed once,
  so training never parses CSV again.

Shards grow in hidden ``.partial`` files and are renamed into place when
full. After every block a journal records the exact state (source offset,
random state, statistics, partial file sizes), so a killed split resumes
where the last block ended and finishes byte-identical to a clean run.
``manifest.json`` is written last, atomically.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv

from .csvscan import DEFAULT_BLOCK_SIZE, CsvFormatError, CsvScanner, RecordBlock
from .manifest import FORMAT_VERSION, MANIFEST_NAME, SUBSETS, fsync_directory, sha256_of, write_json_atomically
from .schema import CATEGORICAL, IDENTIFIER, LABEL, NUMERIC, NumericStats, Vocabulary, arrow_types, class_order, infer_kinds

JOURNAL_NAME = ".split-journal.json"
SHARD_LOG_NAME = ".split-shards.jsonl"
LOCK_NAME = ".split.lock"
FORMATS = ("csv", "npy")
BINARY_PARTS = {"features": np.float32, "labels": np.int32, "rows": np.int64}


@dataclass(frozen=True)
class SplitParameters:
    """Everything that decides the output of a split (recorded in the manifest)."""

    rows_per_shard: int = 100_000
    val_fraction: float = 0.2
    seed: int = 0
    label: str = "cleared"
    id_columns: tuple = ()
    categorical_columns: tuple = ()
    formats: tuple = FORMATS
    block_size: int = DEFAULT_BLOCK_SIZE
    max_categories: int = 1000

    def __post_init__(self):
        if int(self.rows_per_shard) < 1:
            raise ValueError(f"rows_per_shard must be at least 1, got {self.rows_per_shard}")
        if not 0.0 <= float(self.val_fraction) < 1.0:
            raise ValueError(f"val_fraction must be in [0, 1), got {self.val_fraction}")
        unknown = set(self.formats) - set(FORMATS)
        if unknown or not self.formats:
            raise ValueError(f"formats must be a non-empty subset of {FORMATS}, got {self.formats}")
        if self.block_size < 1024:
            raise ValueError(f"block_size must be at least 1024 bytes, got {self.block_size}")

    def as_record(self) -> dict:
        record = asdict(self)
        for key in ("id_columns", "categorical_columns", "formats"):
            record[key] = list(record[key])
        return record


def split_csv(source, out_dir, *, progress: bool = False, **parameters) -> dict:
    """Split ``source`` into shards under ``out_dir`` and return the manifest.

    Parameters
    ----------
    source : str or Path
        UTF-8 CSV file with a header row (RFC 4180 quoting; LF or CRLF).
    out_dir : str or Path
        Output directory: empty, or holding this same split (finished, or
        interrupted and now resumed).
    progress : bool
        Show a tqdm progress bar (bytes of the source).
    **parameters
        Fields of :class:`SplitParameters`: ``rows_per_shard``,
        ``val_fraction``, ``seed``, ``label``, ``id_columns``,
        ``categorical_columns``, ``formats`` (``("csv", "npy")``),
        ``block_size``, ``max_categories``.

    Returns
    -------
    dict
        The manifest (also written to ``out_dir/manifest.json``).

    Raises
    ------
    CsvFormatError
        Malformed input, with file, line and byte offset.
    ValueError
        Bad parameters, or an output directory holding something else.
    """
    for key in ("id_columns", "categorical_columns", "formats"):
        if key in parameters:
            parameters[key] = tuple(parameters[key])
    params = SplitParameters(**parameters)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with _exclusive_lock(out):
        return _Splitter(Path(source), out, params, progress).run()


@contextlib.contextmanager
def _exclusive_lock(out: Path):
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: no advisory locks
        yield
        return
    with open(out / LOCK_NAME, "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ValueError(f"another questlearn split is writing to {out}; wait for it or choose another directory") from None
        yield


@dataclass
class _Subset:
    """Progress of one subset (train or validate)."""

    name: str
    shard_index: int = 0
    partial_rows: int = 0
    partial_label_counts: dict = field(default_factory=dict)
    rows: int = 0
    partial_sizes: dict = field(default_factory=dict)


class _Splitter:
    def __init__(self, source: Path, out: Path, params: SplitParameters, progress: bool):
        if not source.is_file():
            raise ValueError(f"source {source} does not exist or is not a file")
        self.source, self.out, self.params, self.progress = source, out, params, progress
        self.scanner = CsvScanner(source, block_size=params.block_size)
        self.names = self.scanner.header.names
        self._check_header()
        stat = source.stat()
        self.fingerprint = {"path": str(source.resolve()), "bytes": stat.st_size, "mtime_ns": stat.st_mtime_ns}

    # -- set-up ---------------------------------------------------------
    def _check_header(self):
        header_offset = 3 if self.scanner.header.bom else 0
        seen = set()
        for name in self.names:
            if not name.strip():
                raise CsvFormatError(self.source, 1, header_offset, f"the header has an empty column name (columns: {self.names})")
            if name in seen:
                raise CsvFormatError(self.source, 1, header_offset, f"the header names column {name!r} twice; column names must be unique")
            seen.add(name)
        label = self.params.label
        if label not in seen:
            raise CsvFormatError(self.source, 1, header_offset, f"label column {label!r} is missing from the header (columns: {self.names})")
        for declared in (*self.params.id_columns, *self.params.categorical_columns):
            if declared not in seen:
                raise ValueError(f"column {declared!r} was declared but is not in the header of {self.source} (columns: {self.names})")
        if label in self.params.id_columns or label in self.params.categorical_columns:
            raise ValueError(f"the label {label!r} cannot also be an id or categorical feature column")

    def run(self) -> dict:
        manifest_path = self.out / MANIFEST_NAME
        if manifest_path.exists():
            return self._already_done(manifest_path)
        journal_path = self.out / JOURNAL_NAME
        if journal_path.exists():
            self._resume(json.loads(journal_path.read_text(encoding="utf-8")))
        else:
            self._fresh_start()
        self._split()
        return self._finish()

    def _already_done(self, manifest_path: Path) -> dict:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        same_params = manifest.get("parameters") == self.params.as_record()
        recorded = manifest.get("source", {})
        same_source = recorded.get("bytes") == self.fingerprint["bytes"] and (
            recorded.get("mtime_ns") == self.fingerprint["mtime_ns"] or recorded.get("sha256") == sha256_of(self.source)
        )
        if not (same_params and same_source):
            raise ValueError(
                f"{self.out} already holds a finished split of another source or with other parameters; "
                "delete it or choose another output directory"
            )
        self._remove_bookkeeping()
        return manifest

    def _fresh_start(self):
        self._clear_unjournaled_start()
        leftovers = [p.name for p in self.out.iterdir() if p.name != LOCK_NAME]
        if leftovers:
            raise ValueError(f"{self.out} is not empty ({sorted(leftovers)[:5]}) and holds no questlearn split; choose an empty directory")
        for subset in SUBSETS:
            (self.out / subset).mkdir()
        self.subsets = {name: _Subset(name) for name in SUBSETS}
        self.offset, self.line = self.scanner.data_start
        self.read_to = None
        self.records = 0
        self.blank_lines = 0
        self.rng = np.random.Generator(np.random.PCG64(self.params.seed))
        self.kinds = None
        self.numeric, self.vocabularies = {}, {}
        self.digest = hashlib.sha256()
        with open(self.source, "rb") as handle:
            self.digest.update(handle.read(self.offset))
        (self.out / SHARD_LOG_NAME).write_bytes(b"")
        self.shard_log_size = 0
        self.garbage = []

    def _clear_unjournaled_start(self):
        """Remove what a split killed before its first checkpoint left behind.

        Only files this module names are removed (subset folders holding
        nothing but ``split_data_*`` files, the shard log, a journal being
        written); anything else makes :meth:`_fresh_start` refuse the folder.
        """
        names = {p.name for p in self.out.iterdir()} - {LOCK_NAME}
        ours = {*SUBSETS, SHARD_LOG_NAME, f".{JOURNAL_NAME}.tmp"}
        if not names or not names <= ours:
            return
        for subset in SUBSETS:
            folder = self.out / subset
            if folder.is_dir() and not all(_shard_index(p.name) is not None and p.is_file() for p in folder.iterdir()):
                return
        for name in names:
            path = self.out / name
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink()

    def _resume(self, journal: dict):
        if journal["parameters"] != self.params.as_record() or journal["source"] != self.fingerprint:
            raise ValueError(
                f"{self.out} holds an unfinished split of another source or with other parameters "
                "(or the source changed since); delete it or choose another output directory"
            )
        self.subsets = {name: _Subset(**state) for name, state in journal["subsets"].items()}
        self.offset, self.line, self.read_to = journal["offset"], journal["line"], journal["read_to"]
        self.records, self.blank_lines = journal["records"], journal["blank_lines"]
        self.rng = np.random.Generator(np.random.PCG64())
        self.rng.bit_generator.state = journal["rng"]
        self.kinds = journal["kinds"]
        self.numeric = {name: NumericStats(**state) for name, state in journal["numeric"].items()}
        self.vocabularies = {name: Vocabulary(name, self.params.max_categories, **state) for name, state in journal["vocabularies"].items()}
        self.digest = hashlib.sha256()
        with open(self.source, "rb") as handle:
            remaining = self.offset
            while remaining:
                chunk = handle.read(min(remaining, 1 << 20))
                self.digest.update(chunk)
                remaining -= len(chunk)
        if self.digest.hexdigest() != journal["prefix_sha256"]:
            raise ValueError(f"{self.source} changed since the interrupted split in {self.out} started; delete {self.out} and split again")
        # Undo whatever happened after the last checkpoint.
        self.shard_log_size = journal["shard_log_size"]
        with open(self.out / SHARD_LOG_NAME, "r+b") as handle:
            handle.truncate(self.shard_log_size)
        self.garbage = []
        for subset in self.subsets.values():
            keep = {self._partial_path(subset, part).name for part in subset.partial_sizes}
            for path in (self.out / subset.name).iterdir():
                index = _shard_index(path.name)
                stale_shard = index is not None and index >= subset.shard_index and not path.name.startswith(".")
                stale_partial = path.name.endswith(".partial") and path.name not in keep
                if stale_shard or stale_partial or path.name.endswith(".tmp"):
                    path.unlink()
            for part, size in subset.partial_sizes.items():
                partial = self._partial_path(subset, part)
                if not partial.exists() or partial.stat().st_size < size:
                    raise ValueError(f"{partial} is missing or shorter than the journal says; delete {self.out} and split again")
                with open(partial, "r+b") as handle:
                    handle.truncate(size)

    # -- the pass -------------------------------------------------------
    def _split(self):
        from tqdm import tqdm

        total = self.fingerprint["bytes"]
        with tqdm(total=total, initial=self.offset, unit="B", unit_scale=True, desc="split", disable=not self.progress) as bar:
            for block in _read_ahead(self.scanner.blocks(self.offset, self.line, self.read_to)):
                end = block.offset + len(block.data)
                self.digest.update(block.data[: len(block.data) - max(0, end - total)])
                if len(block):
                    self._process(block)
                self.blank_lines += block.blank_lines
                self.offset, self.line = min(end, total), block.line_of(len(block.data))
                self.read_to = block.read_to
                self._checkpoint()
                bar.update(min(end, total) - bar.n)
        if self.records == 0:
            raise CsvFormatError(self.source, self.scanner.data_start[1], self.scanner.data_start[0],
                                 "the file has a header but no data rows")

    def _parse(self, block: RecordBlock, types=None) -> pa.Table:
        include = [n for n in self.names if n not in self.params.id_columns]
        return pa_csv.read_csv(
            io.BytesIO(block.data),
            read_options=pa_csv.ReadOptions(column_names=self.names, block_size=max(len(block.data) + 1, 1 << 20)),
            parse_options=pa_csv.ParseOptions(newlines_in_values=True),
            convert_options=pa_csv.ConvertOptions(
                column_types=types or {}, include_columns=include, null_values=[""],
                strings_can_be_null=True, quoted_strings_can_be_null=True,
            ),
        )

    def _process(self, block: RecordBlock):
        if self.kinds is None:
            inferred = infer_kinds(self._parse(block), self.params.label, self.params.id_columns, self.params.categorical_columns)
            self.kinds = {n: inferred.get(n, IDENTIFIER) for n in self.names}
            for name, kind in self.kinds.items():
                if kind == NUMERIC:
                    self.numeric[name] = NumericStats()
                elif kind in (CATEGORICAL, LABEL):
                    self.vocabularies[name] = Vocabulary(name, self.params.max_categories)
        try:
            table = self._parse(block, arrow_types(self.kinds))
        except pa.ArrowInvalid as error:
            self._explain_conversion_error(block, error)
            raise
        if table.num_rows != len(block):
            raise RuntimeError(f"internal error: parsed {table.num_rows} rows but scanned {len(block)} near byte {block.offset}")
        columns = {}
        for name in table.column_names:
            kind = self.kinds[name]
            if kind == NUMERIC:
                values = table[name].to_numpy().astype(np.float64, copy=False)
                infinite = np.flatnonzero(np.isinf(values))
                if len(infinite):
                    line, byte = block.locate(int(infinite[0]))
                    raise CsvFormatError(self.source, line, byte, f"column {name!r} holds an infinite value; questlearn accepts finite numbers or an empty field for missing")
                self.numeric[name].update(values)
            else:
                if kind == LABEL:
                    missing = np.flatnonzero(table[name].is_null().to_numpy(zero_copy_only=False))
                    if len(missing):
                        line, byte = block.locate(int(missing[0]))
                        raise CsvFormatError(self.source, line, byte, f"missing label: column {name!r} is empty in this row")
                try:
                    values = self.vocabularies[name].encode(table[name])
                except OverflowError:
                    what = "the label has" if kind == LABEL else f"categorical column {name!r} has"
                    raise CsvFormatError(
                        self.source, *block.locate(0),
                        f"{what} more than {self.params.max_categories} distinct values in the rows up to this block; "
                        + ("questlearn trains classifiers, so the label must be a class" if kind == LABEL
                           else f"declare it with id_columns=[{name!r}] (CLI: --id-column {name}) or raise max_categories"),
                    ) from None
            columns[name] = values
        self._route(block, columns)
        self.records += len(block)

    def _explain_conversion_error(self, block: RecordBlock, error: Exception):
        """Turn pyarrow's location-free conversion error into one with a line."""
        table = self._parse(block, {n: pa.string() for n in self.names})
        for name, kind in self.kinds.items():
            if kind != NUMERIC:
                continue
            for row, value in enumerate(table[name].to_pylist()):
                if value is None:
                    continue
                try:
                    float(value)
                except ValueError:
                    line, byte = block.locate(row)
                    raise CsvFormatError(
                        self.source, line, byte,
                        f"column {name!r} holds {value!r}, which is not a number, but the first rows made it numeric; "
                        f"declare it with categorical_columns=[{name!r}] (CLI: --categorical-column {name}) if it is a category",
                    ) from error

    # -- writing shards -----------------------------------------------
    @property
    def feature_names(self) -> list[str]:
        return [n for n in self.names if self.kinds[n] in (NUMERIC, CATEGORICAL)]

    def _partial_path(self, subset: _Subset, part: str) -> Path:
        return self.out / subset.name / f".split_data_{subset.shard_index:05d}.{part}.partial"

    def _final_name(self, subset: _Subset, part: str) -> str:
        suffix = "csv" if part == "csv" else f"{part}.npy"
        return f"{subset.name}/split_data_{subset.shard_index:05d}.{suffix}"

    def _route(self, block: RecordBlock, columns: dict):
        to_validation = self.rng.random(len(block)) < self.params.val_fraction
        label_values = self.vocabularies[self.params.label].values
        label_codes = columns[self.params.label].astype(np.int32)
        if "npy" in self.params.formats:
            features = np.empty((len(block), len(self.feature_names)), np.float32)
            for position, name in enumerate(self.feature_names):
                features[:, position] = columns[name]
            row_numbers = self.records + np.arange(len(block), dtype=np.int64)
        memory = memoryview(block.data)
        for subset, selected in (("train", ~to_validation), ("validate", to_validation)):
            state = self.subsets[subset]
            indices = np.flatnonzero(selected)
            while len(indices):
                room = self.params.rows_per_shard - state.partial_rows
                take, indices = indices[:room], indices[room:]
                if "csv" in self.params.formats:
                    self._append(state, "csv", _gather_records(memory, block.starts[take], block.stops[take]))
                if "npy" in self.params.formats:
                    self._append(state, "features", features[take].tobytes())
                    self._append(state, "labels", label_codes[take].tobytes())
                    self._append(state, "rows", row_numbers[take].tobytes())
                counts = np.bincount(label_codes[take], minlength=len(label_values))
                for value, count in zip(label_values, counts.tolist()):
                    if count:
                        state.partial_label_counts[value] = state.partial_label_counts.get(value, 0) + count
                state.partial_rows += len(take)
                state.rows += len(take)
                if state.partial_rows == self.params.rows_per_shard:
                    self._finalize(state)

    def _append(self, subset: _Subset, part: str, payload) -> None:
        path = self._partial_path(subset, part)
        if part not in subset.partial_sizes:
            with open(path, "wb") as handle:
                if part == "csv":
                    handle.write(self.scanner.header.raw)
            subset.partial_sizes[part] = path.stat().st_size
        with open(path, "ab") as handle:
            if isinstance(payload, list):
                handle.writelines(payload)
            else:
                handle.write(payload)
        subset.partial_sizes[part] = path.stat().st_size

    def _finalize(self, subset: _Subset) -> None:
        """Turn the partial files of a full (or final) shard into a shard."""
        files = {}
        for part in list(subset.partial_sizes):
            partial = self._partial_path(subset, part)
            final = self.out / self._final_name(subset, part)
            temporary = final.with_name(final.name + ".tmp")
            if part == "csv":
                with open(partial, "rb+") as handle:
                    os.fsync(handle.fileno())
                try:
                    os.link(partial, temporary)  # the partial name is dropped after the next checkpoint
                except OSError:  # no hard links on this file system
                    shutil.copyfile(partial, temporary)
            else:
                array = np.fromfile(partial, dtype=BINARY_PARTS[part])
                if part == "features":
                    array = array.reshape(subset.partial_rows, len(self.feature_names))
                with open(temporary, "wb") as handle:
                    np.save(handle, array, allow_pickle=False)
                    handle.flush()
                    os.fsync(handle.fileno())
            os.replace(temporary, final)
            # The partial file goes only after the next checkpoint: until then
            # a resume may need it.
            self.garbage.append(partial)
            files[part] = {"name": self._final_name(subset, part), "bytes": final.stat().st_size, "sha256": sha256_of(final)}
        entry = {"subset": subset.name, "index": subset.shard_index, "rows": subset.partial_rows, "files": files,
                 "label_counts": dict(sorted(subset.partial_label_counts.items()))}
        with open(self.out / SHARD_LOG_NAME, "ab") as handle:
            handle.write(json.dumps(entry, sort_keys=True).encode() + b"\n")
            handle.flush()
            os.fsync(handle.fileno())
        self.shard_log_size = (self.out / SHARD_LOG_NAME).stat().st_size
        subset.shard_index += 1
        subset.partial_rows = 0
        subset.partial_sizes = {}
        subset.partial_label_counts = {}

    def _checkpoint(self) -> None:
        for subset in self.subsets.values():
            for part in subset.partial_sizes:
                with open(self._partial_path(subset, part), "rb+") as handle:
                    os.fsync(handle.fileno())
            fsync_directory(self.out / subset.name)
        journal = {
            "parameters": self.params.as_record(),
            "source": self.fingerprint,
            "offset": self.offset,
            "line": self.line,
            "read_to": self.read_to,
            "records": self.records,
            "blank_lines": self.blank_lines,
            "rng": self.rng.bit_generator.state,
            "kinds": self.kinds,
            "numeric": {n: s.state() for n, s in self.numeric.items()},
            "vocabularies": {n: v.state() for n, v in self.vocabularies.items()},
            "prefix_sha256": self.digest.hexdigest(),
            "shard_log_size": self.shard_log_size,
            "subsets": {n: asdict(s) for n, s in self.subsets.items()},
        }
        write_json_atomically(self.out / JOURNAL_NAME, journal)
        for path in self.garbage:
            path.unlink()
        self.garbage = []

    # -- the end ----------------------------------------------------------
    def _finish(self) -> dict:
        for subset in self.subsets.values():
            if subset.partial_rows:
                self._finalize(subset)
        shards = {name: [] for name in SUBSETS}
        for line in (self.out / SHARD_LOG_NAME).read_text(encoding="utf-8").splitlines():
            entry = json.loads(line)
            shards[entry.pop("subset")].append(entry)
        label = self.params.label
        vocabulary = self.vocabularies[label]
        classes = class_order(vocabulary.values)
        manifest = {
            "format_version": FORMAT_VERSION,
            "complete": True,
            "source": {**self.fingerprint, "sha256": self.digest.hexdigest(), "rows": self.records,
                       "blank_lines_skipped": self.blank_lines, "header": self.names},
            "parameters": self.params.as_record(),
            "schema": {
                "columns": [{"name": n, "kind": self.kinds[n]} for n in self.names],
                "label": label,
                "classes": classes,
                "label_codes": [classes.index(v) for v in vocabulary.values],
                "features": self.feature_names,
                "categories": {n: v.values for n, v in self.vocabularies.items() if n != label},
            },
            "stats": {
                **{n: s.summary() for n, s in self.numeric.items()},
                **{n: {"count": sum(v.counts), "missing": self.records - sum(v.counts),
                       "category_counts": dict(zip(v.values, v.counts))} for n, v in self.vocabularies.items()},
            },
            "subsets": {name: {"rows": self.subsets[name].rows, "shards": shards[name]} for name in SUBSETS},
        }
        write_json_atomically(self.out / MANIFEST_NAME, manifest)
        self._remove_bookkeeping()
        return manifest

    def _remove_bookkeeping(self):
        """Delete the journal, shard log and partial files of a finished split."""
        leftovers = [self.out / JOURNAL_NAME, self.out / SHARD_LOG_NAME]
        for subset in SUBSETS:
            if (self.out / subset).is_dir():
                leftovers += [p for p in (self.out / subset).iterdir() if p.name.endswith((".partial", ".tmp"))]
        for path in leftovers:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()


def _read_ahead(blocks):
    """Scan the next block in a background thread while this one is processed.

    numpy and pyarrow release the GIL, so scanning and parsing overlap on two
    cores. At most two blocks are in memory at once; an error in the scanner
    is raised here, in order.

    The scanning thread never outlives the split into interpreter shutdown:
    it stops when this generator is closed, and, should an error leave the
    generator suspended (held by a traceback until the garbage collector
    runs), an ``atexit`` hook stops and joins it. A daemon thread still
    inside numpy or pyarrow when the interpreter finalizes is ended by
    ``pthread_exit``, whose unwinding through C++ frames aborts the process
    (``terminate called without an active exception``; apache/arrow#45017).
    """
    import atexit
    import queue
    import threading

    handoff = queue.Queue(maxsize=1)
    stop = threading.Event()
    done = object()

    def produce():
        try:
            for block in blocks:
                while not stop.is_set():
                    try:
                        handoff.put(block, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            handoff.put(done)
        except BaseException as error:  # noqa: BLE001 - handed to the consumer
            handoff.put(error)

    def stop_and_join():
        stop.set()
        while thread.is_alive():
            try:
                handoff.get(timeout=0.1)  # unblocks a final put of ``done`` or an error
            except queue.Empty:
                pass

    thread = threading.Thread(target=produce, name="questlearn-scan-ahead", daemon=True)
    thread.start()
    atexit.register(stop_and_join)
    try:
        while True:
            item = handoff.get()
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop_and_join()
        atexit.unregister(stop_and_join)
        blocks.close()


def _shard_index(file_name: str):
    """Shard number in ``split_data_00012.csv`` style names, else None."""
    stem = file_name.lstrip(".")
    if not stem.startswith("split_data_"):
        return None
    digits = stem[len("split_data_"):].split(".", 1)[0]
    return int(digits) if digits.isdigit() else None


def _gather_records(memory: memoryview, starts: np.ndarray, stops: np.ndarray) -> list:
    """Raw bytes of the given records, merging runs of adjacent records."""
    if not len(starts):
        return []
    breaks = np.flatnonzero(starts[1:] != stops[:-1]) + 1
    run_starts = starts[np.concatenate(([0], breaks))].tolist()
    run_stops = stops[np.concatenate((breaks - 1, [len(starts) - 1]))].tolist()
    return [memory[a:b] for a, b in zip(run_starts, run_stops)]

