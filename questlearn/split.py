"""Split a log larger than memory into train and validation shards.

The pipeline, one stage per module:

1. :mod:`~questlearn.sources` — which files (one, a directory, a glob, a
   list; plain, gzip/bz2/xz/zstd, or Parquet);
2. :mod:`~questlearn.sampling` and :mod:`~questlearn.infer` — a sample
   spread over the source decides every column's kind, printed before the
   pass (problems such as an unknown missing-value token stop it here);
3. :mod:`~questlearn.csvscan` and :mod:`~questlearn.reading` — one
   sequential pass of strict record scanning and typed parsing;
4. this module — every record goes, by a seeded random draw, to ``train/``
   or ``validate/``, is encoded (:mod:`~questlearn.schema`) and appended to
   the current shard of that subset:

   * CSV shards ``split_data_00000.csv`` hold the source rows byte for byte
     (for Parquet sources, rows written by pyarrow) after the header;
   * binary shards (``.features.npy`` float32, ``.labels.npy`` int32 class
     codes or float32 regression targets, ``.rows.npy`` int64 source row
     numbers) hold the same rows parsed once;
5. :mod:`~questlearn.manifest` — ``manifest.json``, written last, atomically.

Shards grow in hidden ``.partial`` files and are renamed into place when
full. After every block a journal records the exact state (file, offset,
random state, statistics, partial file sizes), so a killed split resumes
where the last block ended and finishes byte-identical to a clean run.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa

from .csvscan import DEFAULT_BLOCK_SIZE, CsvFormatError, CsvScanner
from .infer import infer_schema
from .manifest import FORMAT_VERSION, MANIFEST_NAME, SUBSETS, fsync_directory, sha256_of, write_json_atomically
from .reading import Chunk, parse_records
from .sampling import sample_csv, sample_parquet
from .schema import (CATEGORICAL, CLASSIFICATION, LABEL, NUMERIC, REGRESSION, TASKS, NumericStats, Vocabulary,
                     arrow_types, class_order, label_strings, looks_like_token, missing_tokens)
from .sources import check_unchanged, resolve_sources

JOURNAL_NAME = ".split-journal.json"
SHARD_LOG_NAME = ".split-shards.jsonl"
LOCK_NAME = ".split.lock"
MARKER_NAME = ".questlearn-split"
FORMATS = ("csv", "npy")
BINARY_PARTS = {"features": np.float32, "labels": np.int32, "rows": np.int64}
FLOAT32_MAX = float(np.finfo(np.float32).max)
PARQUET_BATCH_ROWS = 65_536


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
    na_values: tuple = ()
    keep_default_na: bool = True
    delimiter: str = ","
    task: str = CLASSIFICATION
    max_classes: int = 50

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
        if self.task not in TASKS:
            raise ValueError(f"task must be one of {TASKS}, got {self.task!r}")
        if int(self.max_categories) < 1 or int(self.max_classes) < 2:
            raise ValueError(f"max_categories must be >= 1 and max_classes >= 2, got {self.max_categories}, {self.max_classes}")

    def as_record(self) -> dict:
        record = asdict(self)
        for key in ("id_columns", "categorical_columns", "formats", "na_values"):
            record[key] = list(record[key])
        return record

    @property
    def null_values(self) -> list:
        return missing_tokens(self.na_values, self.keep_default_na)


def split_csv(source, out_dir, *, progress: bool = False, verbose: bool = True, parallel: int | None = None,
              ray: str | None = None, schema=None, **parameters) -> dict:
    """Split ``source`` into shards under ``out_dir`` and return the manifest.

    Parameters
    ----------
    source : str, Path, or list of them
        A CSV file (UTF-8, RFC 4180 quoting; plain or gzip/bz2/xz/zstd
        compressed, detected by content), a Parquet file, a directory of part
        files, a glob, or a list of files: see
        :func:`questlearn.sources.resolve_sources`. All CSV files must have
        the same header.
    out_dir : str or Path
        Output directory: empty, or holding this same split (finished, or
        interrupted and now resumed).
    progress : bool
        Show a progress bar (bytes of the source as stored, compressed or not).
    verbose : bool
        Print the inferred schema before the pass, and what to know at the end.
    **parameters
        Fields of :class:`SplitParameters`: ``rows_per_shard``,
        ``val_fraction``, ``seed``, ``label``, ``id_columns``,
        ``categorical_columns``, ``formats`` (``("csv", "npy")``),
        ``block_size``, ``max_categories``, ``na_values`` (extra
        missing-value tokens), ``keep_default_na`` (pandas' default tokens),
        ``delimiter``, ``task`` (``"classification"`` or ``"regression"``),
        ``max_classes``.
    parallel : int, optional
        Split each file of the source as its own task, this many at a time,
        and merge the results exactly (:mod:`questlearn.parallel_split`).
    ray : str, optional
        Run those tasks on Ray: ``"local"`` (a private Ray on 127.0.0.1) or
        a cluster address.
    schema : InferredSchema, optional
        Column kinds decided elsewhere (the parallel split's parent), used
        instead of sampling this source; a source with no data rows is then
        an empty part, not an error.

    Returns
    -------
    dict
        The manifest (also written to ``out_dir/manifest.json``).

    Raises
    ------
    CsvFormatError
        Malformed input, with file, line and byte offset.
    ValueError
        Bad parameters, a schema problem found in the sample, a full disk,
        or an output directory holding something else.
    """
    for key in ("id_columns", "categorical_columns", "formats", "na_values"):
        if key in parameters:
            parameters[key] = tuple(parameters[key])
    if parallel is not None or ray is not None:
        if schema is not None:
            raise ValueError("a parallel split decides its schema itself; pass schema= or parallel=, not both")
        from .parallel_split import split_parallel

        return split_parallel(source, out_dir, parallel=parallel, ray=ray, progress=progress, verbose=verbose, **parameters)
    params = SplitParameters(**parameters)
    out = Path(out_dir)
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    splitter = None
    try:
        with _exclusive_lock(out):
            splitter = _Splitter(source, out, params, progress, verbose, schema)
            return splitter.run()
    except OSError as error:
        free = shutil.disk_usage(out).free if out.exists() else None
        if error.errno == errno.ENOSPC or (free is not None and free < (64 << 20)):
            raise ValueError(f"the disk holding {out} is full ({(free or 0) / 1e6:.0f} MB free): free some space and "
                             "run the same command again; the split resumes where it stopped") from None
        raise
    except Exception:
        if splitter is None or (splitter.writing and not splitter.any_shard_final()):
            _discard_unfinished(out, created)
        raise


def _discard_unfinished(out: Path, created: bool) -> None:
    """After a failure before any shard was final, remove what questlearn wrote
    (proved by its marker), so the command can be run again as printed."""
    if not (out / MARKER_NAME).exists() and not created:
        return
    for name in (*SUBSETS, JOURNAL_NAME, f".{JOURNAL_NAME}.tmp", SHARD_LOG_NAME, MARKER_NAME, LOCK_NAME):
        path = out / name
        if path.is_dir():
            if all(p.name.startswith(".split_data_") or p.name.endswith(".tmp") for p in path.iterdir()):
                shutil.rmtree(path)
        elif path.exists():
            path.unlink()
    if created and out.is_dir() and not any(out.iterdir()):
        out.rmdir()


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
    def __init__(self, source, out: Path, params: SplitParameters, progress: bool, verbose: bool, schema=None):
        self.out, self.params, self.progress, self.verbose = out, params, progress, verbose
        self.given_schema = schema  # kinds decided by a parallel split's parent, shared by all its parts
        self.writing = False
        self.files = resolve_sources(source)
        self.format = self.files[0].format
        if self.format == "csv":
            self.scanner = CsvScanner(self.files[0], block_size=params.block_size, delimiter=params.delimiter)
            self.scanner.check_names()
            self.names = self.scanner.header.names
            for other in self.files[1:]:
                names = CsvScanner(other, block_size=params.block_size, delimiter=params.delimiter).header.names
                if names != self.names:
                    raise CsvFormatError(other.shown, 1, 0, f"the header differs from {self.files[0].shown}'s "
                                         f"(expected {self.names}, found {names}); every file of a source must have the same columns")
        else:
            self._check_parquet_schemas()
        self._check_columns()
        self.fingerprint = {"files": [f.fingerprint() for f in self.files]}

    # -- set-up ---------------------------------------------------------
    def _check_parquet_schemas(self):
        import pyarrow.parquet as pq

        schema = pq.ParquetFile(self.files[0].path).schema_arrow
        for other in self.files[1:]:
            if not pq.ParquetFile(other.path).schema_arrow.equals(schema):
                raise ValueError(f"{other.shown}: its Parquet schema differs from {self.files[0].shown}'s; "
                                 "every file of a source must have the same columns and types")
        self.names = list(schema.names)

    def _check_columns(self):
        label = self.params.label
        where = self.files[0].shown
        if label not in self.names:
            raise CsvFormatError(where, 1, 0, f"label column {label!r} is missing from the header (columns: {self.names}); "
                                 "name the label with --label (Python: label=...)")
        for declared in (*self.params.id_columns, *self.params.categorical_columns):
            if declared not in self.names:
                raise ValueError(f"column {declared!r} was declared but is not in the header of {where} (columns: {self.names})")
        if label in self.params.id_columns or label in self.params.categorical_columns:
            raise ValueError(f"the label {label!r} cannot also be an id or categorical feature column")

    def infer(self):
        """Sample the source and decide the column kinds (printed; problems raise)."""
        if self.given_schema is not None:
            return self.given_schema
        inferred = self.sample_schema()
        if self.verbose:
            print(inferred.describe(self.params.null_values if self.format == "csv" else None), flush=True)
        inferred.raise_problems()
        return inferred

    def sample_schema(self):
        """The :class:`~questlearn.infer.InferredSchema` of a sample spread over the source."""
        p = self.params
        if self.format == "csv":
            sample, note, locate = sample_csv(self.files, delimiter=p.delimiter, null_values=p.null_values)
            native = None
        else:
            sample, note = sample_parquet(self.files)
            native, locate = dict(zip(sample.schema.names, sample.schema.types)), None
        inferred = infer_schema(sample, label=p.label, task=p.task, id_columns=p.id_columns,
                                categorical_columns=p.categorical_columns, max_categories=p.max_categories,
                                max_classes=p.max_classes, native_types=native, sample_note=note, locate=locate)
        inferred.sample = sample
        return inferred

    def any_shard_final(self) -> bool:
        log = self.out / SHARD_LOG_NAME
        return log.exists() and log.stat().st_size > 0

    def run(self) -> dict:
        manifest_path = self.out / MANIFEST_NAME
        if manifest_path.exists():
            return self._already_done(manifest_path)
        journal_path = self.out / JOURNAL_NAME
        self.writing = True
        if journal_path.exists():
            self._resume(json.loads(journal_path.read_text(encoding="utf-8")))
        else:
            self._fresh_start()
        self._split()
        return self._finish()

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
        self._remove_bookkeeping()
        return manifest

    def _fresh_start(self):
        self._clear_unjournaled_start()
        leftovers = [p.name for p in self.out.iterdir() if p.name not in (LOCK_NAME, MARKER_NAME)]
        if leftovers:
            raise ValueError(f"{self.out} is not empty ({sorted(leftovers)[:5]}) and holds no questlearn split; choose an empty directory")
        inferred = self.infer()
        (self.out / MARKER_NAME).write_text("written by questlearn split; the files beside it are its own\n", encoding="utf-8")
        for subset in SUBSETS:
            (self.out / subset).mkdir()
        self.subsets = {name: _Subset(name) for name in SUBSETS}
        self.kinds, self.label_numeric = inferred.kinds, inferred.label_numeric
        self.inferred = [asdict(c) for c in inferred.columns]
        self.position = {"file": 0, "offset": None, "line": None, "read_to": None, "expect": None, "batch": 0}
        self.done_files = []
        self.file_rows = 0
        self.records = 0
        self.blank_lines = 0
        self.empty_files = 0
        self.rng = np.random.Generator(np.random.PCG64(self.params.seed))
        self._init_statistics()
        (self.out / SHARD_LOG_NAME).write_bytes(b"")
        self.shard_log_size = 0
        self.garbage = []

    def _init_statistics(self, numeric=None, vocabularies=None, label_stats=None):
        p = self.params
        self.numeric = {n: NumericStats(**(numeric or {}).get(n, {})) for n, k in self.kinds.items() if k == NUMERIC}
        self.vocabularies = {}
        for name, kind in self.kinds.items():
            if kind == CATEGORICAL or (kind == LABEL and p.task == CLASSIFICATION):
                limit, overflow = (p.max_classes, "error") if kind == LABEL else (p.max_categories, "oov")
                self.vocabularies[name] = Vocabulary(name, limit, overflow=overflow, **(vocabularies or {}).get(name, {}))
        self.label_stats = {s: NumericStats(**(label_stats or {}).get(s, {})) for s in SUBSETS} if p.task == REGRESSION else {}

    def _clear_unjournaled_start(self):
        """Remove what a split killed before its first checkpoint left behind.

        Only when questlearn's marker file proves the folder is its own, and
        only files this module names (subset folders holding nothing but
        ``split_data_*`` files, the shard log, a journal being written);
        anything else makes :meth:`_fresh_start` refuse the folder.
        """
        names = {p.name for p in self.out.iterdir()} - {LOCK_NAME}
        ours = {*SUBSETS, SHARD_LOG_NAME, f".{JOURNAL_NAME}.tmp", MARKER_NAME}
        if MARKER_NAME not in names or not names <= ours:
            return
        for subset in SUBSETS:
            folder = self.out / subset
            if folder.is_dir() and not all(_shard_index(p.name) is not None and p.is_file() for p in folder.iterdir()):
                return
        for name in names - {MARKER_NAME}:
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
        if self.verbose:
            print(f"questlearn: resuming the interrupted split in {self.out} (schema as inferred when it started)", flush=True)
        self.subsets = {name: _Subset(**state) for name, state in journal["subsets"].items()}
        self.position = journal["position"]
        self.done_files, self.file_rows = journal["done_files"], journal["file_rows"]
        self.records, self.blank_lines, self.empty_files = journal["records"], journal["blank_lines"], journal["empty_files"]
        self.rng = np.random.Generator(np.random.PCG64())
        self.rng.bit_generator.state = journal["rng"]
        self.kinds, self.label_numeric, self.inferred = journal["kinds"], journal["label_numeric"], journal["inferred"]
        self._init_statistics(journal["numeric"], journal["vocabularies"], journal["label_stats"])
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
        from tqdm.auto import tqdm

        total = sum(f.bytes for f in self.files)
        done = sum(f.bytes for f in self.files[: self.position["file"]])
        with tqdm(total=total, initial=done, unit="B", unit_scale=True, desc="split", disable=not self.progress) as bar:
            while self.position["file"] < len(self.files):
                source_file = self.files[self.position["file"]]
                reader = self._csv_chunks if self.format == "csv" else self._parquet_chunks
                for chunk, position, read in _read_ahead(reader(source_file)):
                    if len(chunk):
                        self._process(chunk)
                        self.file_rows += len(chunk)
                    self.position.update(position)
                    self._checkpoint()
                    bar.update(done + read - bar.n)
                check_unchanged(source_file)
                if self.file_rows == 0:
                    self.empty_files += 1
                self.done_files.append({"name": source_file.name, "bytes": source_file.bytes,
                                        "sha256": self._file_sha256, "rows": self.file_rows,
                                        "compression": source_file.compression})
                done += source_file.bytes
                self.file_rows = 0
                self.position = {"file": self.position["file"] + 1, "offset": None, "line": None,
                                 "read_to": None, "expect": None, "batch": 0}
                self._checkpoint()
        if self.records == 0 and self.given_schema is None:  # a part of a parallel split may be empty
            first = self.files[0]
            raise CsvFormatError(first.shown, 2, 0, "the source has a header but no data rows")

    def _csv_chunks(self, source_file):
        """``(chunk, journal position, raw bytes read)`` for each block of a CSV file."""
        p = self.params
        scanner = self.scanner if source_file is self.files[0] else CsvScanner(
            source_file, block_size=p.block_size, delimiter=p.delimiter)
        types = arrow_types(self.kinds, self.label_numeric)
        position = self.position
        expect = tuple(position["expect"]) if position["expect"] else None
        for block in scanner.blocks(position["offset"], position["line"], position["read_to"], expect):
            self.blank_lines += block.blank_lines
            try:
                table = parse_records(block.data, self.names, delimiter=p.delimiter, types=types,
                                      include=list(types), null_values=p.null_values) if len(block) else pa.table({})
            except pa.ArrowInvalid as error:
                self.explain_conversion_error(block, error, source_file.shown)
                raise
            chunk = Chunk(table, source_file.shown, block)
            if len(block) and table.num_rows != len(block):
                raise RuntimeError(f"internal error: parsed {table.num_rows} rows but scanned {len(block)} near byte {block.offset}")
            yield chunk, {"offset": block.offset + len(block.data), "line": block.line_of(len(block.data)),
                          "read_to": block.read_to, "expect": [block.raw_position, block.raw_sha256]}, block.raw_position
        self._file_sha256 = scanner.sha256

    def _parquet_chunks(self, source_file):
        """``(chunk, journal position, bytes read)`` for each batch of a Parquet file."""
        import pyarrow.parquet as pq

        parquet = pq.ParquetFile(source_file.path)
        total_rows = max(parquet.metadata.num_rows, 1)
        wanted = [n for n, t in arrow_types(self.kinds, self.label_numeric).items()]
        first, row, index = self.position["batch"], 0, 0
        for group in range(parquet.metadata.num_row_groups):  # one row group at a time: memory is one group's
            for batch in parquet.iter_batches(batch_size=PARQUET_BATCH_ROWS, row_groups=[group]):
                if index >= first:
                    table = pa.Table.from_batches([batch])
                    try:
                        columns = {n: _cast_column(table[n], self.kinds[n], self.label_numeric) for n in wanted}
                    except pa.ArrowInvalid as error:
                        raise ValueError(f"{source_file.shown}: rows {row + 1}-{row + len(table)}: {error} (the sample "
                                         "made this column numeric)") from None
                    chunk = Chunk(pa.table(columns), source_file.shown, None, row, full_table=table)
                    yield chunk, {"batch": index + 1}, source_file.bytes * (row + len(table)) // total_rows
                row += batch.num_rows
                index += 1
        self._file_sha256 = sha256_of(source_file.path)

    def _process(self, chunk: Chunk):
        columns = {}
        for name in chunk.table.column_names:
            kind = self.kinds[name]
            column = chunk.table[name]
            if kind == NUMERIC or (kind == LABEL and self.params.task == REGRESSION):
                if kind == LABEL:
                    self._check_label_present(chunk, name, column)
                values = column.to_numpy().astype(np.float64, copy=False)
                self._check_numbers(chunk, name, values, column)
                if kind == NUMERIC:
                    self.numeric[name].update(values)
            else:
                if kind == LABEL:
                    self._check_label_present(chunk, name, column)
                    column = label_strings(column)
                try:
                    values = self.vocabularies[name].encode(column)
                except OverflowError:
                    raise chunk.error(0, f"the label {name!r} has more than {self.params.max_classes} distinct values "
                                      "in the rows up to this block; " + ("use --task regression for a numeric target, or "
                                      if self.label_numeric else "") + "raise --max-classes") from None
            columns[name] = values
        self._route(chunk, columns)
        self.records += len(chunk)

    def _check_label_present(self, chunk: Chunk, name: str, column) -> None:
        missing = np.flatnonzero(column.is_null().to_numpy(zero_copy_only=False))
        if len(missing):
            raise chunk.error(int(missing[0]), f"missing label: column {name!r} is empty or a missing-value token in "
                              "this row; remove such rows, or choose the missing-value tokens with --na-value / "
                              "--no-default-na")

    def _check_numbers(self, chunk: Chunk, name: str, values: np.ndarray, column) -> None:
        """Refuse infinities, NaN written as a number (in CSV), and values float32 cannot hold."""
        nan_written = np.isnan(values) & ~column.is_null().to_numpy(zero_copy_only=False)
        if nan_written.any() and chunk.block is not None:
            row = int(np.flatnonzero(nan_written)[0])
            raise chunk.error(row, f"column {name!r} holds NaN written as a value; add it as a missing-value token "
                              "(--na-value) or leave the field empty")
        too_large = np.abs(values) > FLOAT32_MAX
        if too_large.any():
            row = int(np.flatnonzero(too_large)[0])
            what = "an infinite value" if np.isinf(values[row]) else f"{values[row]:g}, beyond float32's range (±3.4e38)"
            raise chunk.error(row, f"column {name!r} holds {what}; questlearn accepts finite numbers within float32's "
                              "range, or a missing value")

    def explain_conversion_error(self, block, error: Exception, path: str):
        """Turn pyarrow's conversion error into one with a line and the right fix."""
        p = self.params
        message = str(error)
        marker = "invalid value '"
        value = message[message.index(marker) + len(marker): message.rindex("'")] if marker in message else None
        strings = parse_records(block.data, self.names, delimiter=p.delimiter,
                                types={n: pa.string() for n in self.names}, null_values=p.null_values)
        for name, numeric in arrow_types(self.kinds, self.label_numeric).items():
            if numeric != pa.float64():
                continue
            column = strings[name]
            rows = [i for i, v in enumerate(column.to_pylist()) if v is not None and (v == value if value is not None else False)]
            if not rows:
                continue
            line, byte = block.locate(rows[0])
            if self.kinds[name] == LABEL:
                fix = ("the label's sampled values were all numbers; if this marks a missing label, remove the row or "
                       f"add --na-value {value!r}")
            elif looks_like_token(value):
                fix = (f"if {value!r} marks a missing value, add --na-value {value!r} (Python: na_values=[{value!r}]); "
                       f"if the column is a category, declare --categorical-column {name}")
            else:
                fix = (f"write numbers without digit separators, units or spaces; if the column is a category, declare "
                       f"--categorical-column {name} (Python: categorical_columns=[{name!r}])")
            raise CsvFormatError(path, line, byte,
                                 f"column {name!r} holds {value!r}, which is not a number, but the sample made it "
                                 f"numeric; {fix}") from error
        raise error

    # -- writing shards -----------------------------------------------
    @property
    def feature_names(self) -> list[str]:
        return [n for n in self.names if self.kinds[n] in (NUMERIC, CATEGORICAL)]

    def _partial_path(self, subset: _Subset, part: str) -> Path:
        return self.out / subset.name / f".split_data_{subset.shard_index:05d}.{part}.partial"

    def _final_name(self, subset: _Subset, part: str) -> str:
        suffix = "csv" if part == "csv" else f"{part}.npy"
        return f"{subset.name}/split_data_{subset.shard_index:05d}.{suffix}"

    def _route(self, chunk: Chunk, columns: dict):
        count = len(chunk)
        to_validation = self.rng.random(count) < self.params.val_fraction
        regression = self.params.task == REGRESSION
        label = columns[self.params.label]
        labels = label.astype(np.float32) if regression else label.astype(np.int32)
        label_values = [] if regression else self.vocabularies[self.params.label].values
        if "npy" in self.params.formats:
            features = np.empty((count, len(self.feature_names)), np.float32)
            for position, name in enumerate(self.feature_names):
                features[:, position] = columns[name]
            row_numbers = self.records + np.arange(count, dtype=np.int64)
        for subset, selected in (("train", ~to_validation), ("validate", to_validation)):
            state = self.subsets[subset]
            indices = np.flatnonzero(selected)
            while len(indices):
                room = self.params.rows_per_shard - state.partial_rows
                take, indices = indices[:room], indices[room:]
                if "csv" in self.params.formats:
                    self._append(state, "csv", chunk.record_bytes(take, self.params.delimiter))
                if "npy" in self.params.formats:
                    self._append(state, "features", features[take].tobytes())
                    self._append(state, "labels", labels[take].tobytes())
                    self._append(state, "rows", row_numbers[take].tobytes())
                if regression:
                    self.label_stats[subset].update(labels[take].astype(np.float64))
                else:
                    counts = np.bincount(labels[take], minlength=len(label_values))
                    for value, n in zip(label_values, counts.tolist()):
                        if n:
                            state.partial_label_counts[value] = state.partial_label_counts.get(value, 0) + n
                state.partial_rows += len(take)
                state.rows += len(take)
                if state.partial_rows == self.params.rows_per_shard:
                    self._finalize(state)

    def _header_bytes(self) -> bytes:
        if self.format == "csv":
            return self.scanner.header.raw
        return (self.params.delimiter.join(_csv_field(n, self.params.delimiter) for n in self.names) + "\n").encode()

    def _append(self, subset: _Subset, part: str, payload) -> None:
        path = self._partial_path(subset, part)
        if part not in subset.partial_sizes:
            with open(path, "wb") as handle:
                if part == "csv":
                    handle.write(self._header_bytes())
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
                dtype = np.float32 if part == "labels" and self.params.task == REGRESSION else BINARY_PARTS[part]
                array = np.fromfile(partial, dtype=dtype)
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
            "position": self.position,
            "done_files": self.done_files,
            "file_rows": self.file_rows,
            "records": self.records,
            "blank_lines": self.blank_lines,
            "empty_files": self.empty_files,
            "rng": self.rng.bit_generator.state,
            "kinds": self.kinds,
            "label_numeric": self.label_numeric,
            "inferred": self.inferred,
            "numeric": {n: s.state() for n, s in self.numeric.items()},
            "vocabularies": {n: v.state() for n, v in self.vocabularies.items()},
            "label_stats": {n: s.state() for n, s in self.label_stats.items()},
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
        p = self.params
        label = p.label
        if p.task == CLASSIFICATION:
            vocabulary = self.vocabularies[label]
            classes = class_order(vocabulary.values)
            codes = [classes.index(v) for v in vocabulary.values]
        else:
            classes, codes = [], []
        total_bytes = sum(f["bytes"] for f in self.done_files)
        source = {"files": self.done_files, "bytes": total_bytes, "rows": self.records, "format": self.format,
                  "blank_lines_skipped": self.blank_lines, "empty_files_skipped": self.empty_files, "header": self.names}
        if len(self.files) == 1:
            source.update(path=str(self.files[0].path), sha256=self.done_files[0]["sha256"], mtime_ns=self.files[0].mtime_ns)
        stats = {n: s.summary() for n, s in self.numeric.items()}
        for name, vocabulary in self.vocabularies.items():
            stats[name] = {"count": sum(vocabulary.counts) + vocabulary.oov, "missing": self.records - sum(vocabulary.counts) - vocabulary.oov,
                           "category_counts": dict(zip(vocabulary.values, vocabulary.counts)), "oov": vocabulary.oov}
        if p.task == REGRESSION:
            merged = NumericStats()
            for subset_stats in self.label_stats.values():
                merged.merge(subset_stats)
            stats[label] = merged.summary()
        manifest = {
            "format_version": FORMAT_VERSION,
            "complete": True,
            "source": source,
            "parameters": p.as_record(),
            "schema": {
                "task": p.task,
                "columns": [{"name": n, "kind": self.kinds[n]} for n in self.names],
                "inferred": self.inferred,
                "label": label,
                "label_numeric": self.label_numeric,
                "classes": classes,
                "label_codes": codes,
                "features": self.feature_names,
                "categories": {n: v.values for n, v in self.vocabularies.items() if n != label},
                "na_values": p.null_values if self.format == "csv" else [],
                "delimiter": p.delimiter,
            },
            "stats": stats,
            "subsets": {name: {"rows": self.subsets[name].rows, "shards": shards[name],
                               **({"label_stats": self.label_stats[name].summary()} if p.task == REGRESSION else {})}
                        for name in SUBSETS},
        }
        write_json_atomically(self.out / MANIFEST_NAME, manifest)
        self._remove_bookkeeping()
        if self.verbose:
            self._report_end(manifest)
        return manifest

    def _report_end(self, manifest: dict) -> None:
        for name, vocabulary in self.vocabularies.items():
            if vocabulary.oov:
                print(f"questlearn: column {name!r} outgrew --max-categories {self.params.max_categories}: "
                      f"{vocabulary.oov} rows hold later values, mapped to one out-of-vocabulary code", flush=True)
        if self.empty_files:
            print(f"questlearn: skipped {self.empty_files} header-only file(s)", flush=True)
        if manifest["schema"]["task"] == CLASSIFICATION:
            print(f"questlearn: label {self.params.label!r} classes: {manifest['schema']['classes']}", flush=True)

    def _remove_bookkeeping(self):
        """Delete the journal, shard log and partial files of a finished split."""
        leftovers = [self.out / JOURNAL_NAME, self.out / SHARD_LOG_NAME]
        for subset in SUBSETS:
            if (self.out / subset).is_dir():
                leftovers += [p for p in (self.out / subset).iterdir() if p.name.endswith((".partial", ".tmp"))]
        for path in leftovers:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()


def _cast_column(column, kind: str, label_numeric: bool):
    """A Parquet column in the type the pass reads it as."""
    if kind == NUMERIC or (kind == LABEL and label_numeric):
        return column.cast(pa.float64())
    return column.cast(pa.string())


def _csv_field(text: str, delimiter: str) -> str:
    if any(c in text for c in (delimiter, '"', "\n", "\r")):
        return '"' + text.replace('"', '""') + '"'
    return text


def _read_ahead(items):
    """Produce the next item in a background thread while this one is processed.

    numpy and pyarrow release the GIL, so scanning and parsing overlap on two
    cores. At most two items are in memory at once; an error in the
    producer is raised here, in order.

    The producing thread never outlives the split into interpreter shutdown:
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
            for item in items:
                while not stop.is_set():
                    try:
                        handoff.put(item, timeout=0.1)
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
        items.close()


def _shard_index(file_name: str):
    """Shard number in ``split_data_00012.csv`` style names, else None."""
    stem = file_name.lstrip(".")
    if not stem.startswith("split_data_"):
        return None
    digits = stem[len("split_data_"):].split(".", 1)[0]
    return int(digits) if digits.isdigit() else None
