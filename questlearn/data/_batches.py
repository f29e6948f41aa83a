"""Which rows make up batch ``i`` of epoch ``e``, and how to read them.

This module holds the keras-free core of :class:`~questlearn.data.dataset.QuestSequence`:

* :class:`BatchPlan` maps a batch index to row positions inside shards. The
  epoch order is a seeded permutation of the shards and of the rows inside
  each shard, computed from ``(seed, epoch, shard)`` alone, so every worker
  process agrees on it without sharing state and each row appears exactly
  once per epoch. Memory is O(number of shards), never O(rows).
* :class:`ShardReader` reads rows of a shard as model inputs. The ``.npy``
  shards already hold the model-ready blocks (float32 numbers with missing
  values filled, integer category codes, per the manifest's
  ``schema.encoding``), so a batch is a ``take`` from two memory maps; CSV
  shards are parsed and encoded
  with the same :class:`~questlearn.schema.encoding.Encoding`, giving the same
  arrays. Labels are mapped to the manifest's classes. Each shard file is
  checked against the manifest's SHA-256 the first time a training run
  reads it (:mod:`questlearn.manifest.integrity`); shapes, dtypes and label codes
  are checked every time a shard is opened.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from pathlib import Path

import numpy as np

from ..errors import IntegrityError, OptionError
from ._shard_cache import LocalFiles
from ..schema.encoding import FILL_POLICIES, Encoding

LABEL_MODES = ("sparse", "one_hot")
SOURCES = ("npy", "csv")


class BatchPlan:
    """Batch index → row positions, for one epoch.

    Parameters
    ----------
    shard_rows : sequence of int
        Rows in each shard, in manifest order.
    batch_size : int or None
        Rows per batch; ``None`` means one batch per shard (the original
        recipe's one-file-one-batch mode).
    shuffle : bool
        Permute shard order and rows within shards, per epoch.
    seed, epoch : int
        Determine the permutation.
    """

    def __init__(self, shard_rows, batch_size, shuffle: bool, seed: int, epoch: int):
        self.shard_rows = np.asarray(shard_rows, dtype=np.int64)
        self.batch_size = batch_size
        self.shuffle, self.seed, self.epoch = shuffle, int(seed), int(epoch)
        shards = np.arange(len(self.shard_rows))
        if shuffle:
            shards = np.random.default_rng([self.seed, self.epoch]).permutation(shards)
        self.order = shards
        self.ends = np.cumsum(self.shard_rows[self.order])
        self.total_rows = int(self.ends[-1]) if len(self.ends) else 0
        self._permutations = OrderedDict()  # shard -> row order; a few, not all (memory)
        self._lock = threading.Lock()

    def __len__(self) -> int:
        if self.batch_size is None:
            return len(self.order)
        return -(-self.total_rows // self.batch_size)

    def rows_in_shard(self, shard: int) -> np.ndarray:
        """Row order inside ``shard`` for this epoch."""
        if not self.shuffle:
            return np.arange(self.shard_rows[shard])
        with self._lock:
            if shard in self._permutations:
                return self._permutations[shard]
        order = np.random.default_rng([self.seed, self.epoch, int(shard)]).permutation(int(self.shard_rows[shard]))
        with self._lock:
            self._permutations[shard] = order
            while len(self._permutations) > 8:
                self._permutations.popitem(last=False)
        return order

    def _rows(self, shard: int, begin: int, end: int) -> np.ndarray:
        """Positions ``begin:end`` of the epoch's row order inside ``shard``."""
        if not self.shuffle:
            return np.arange(begin, end)  # not the whole shard's arange, per batch
        return self.rows_in_shard(shard)[begin:end]

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_permutations"], state["_lock"] = OrderedDict(), None
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def segments(self, index: int) -> list[tuple[int, np.ndarray]]:
        """``[(shard, row positions), ...]`` that make up batch ``index``."""
        if not 0 <= index < len(self):
            raise IndexError(f"batch index {index} is out of range for {len(self)} batches")
        if self.batch_size is None:
            shard = int(self.order[index])
            return [(shard, self.rows_in_shard(shard))]
        first = index * self.batch_size
        return self.segments_between(first, min(first + self.batch_size, self.total_rows))

    def segments_between(self, first: int, last: int) -> list[tuple[int, np.ndarray]]:
        """``[(shard, row positions), ...]`` of positions ``first:last`` of the epoch's row order."""
        if not 0 <= first <= last <= self.total_rows:
            raise IndexError(f"rows {first}:{last} are out of range for {self.total_rows} rows")
        result = []
        position = int(np.searchsorted(self.ends, first, side="right"))
        while first < last:
            shard = int(self.order[position])
            shard_start = int(self.ends[position] - self.shard_rows[shard])
            stop = min(last, int(self.ends[position]))
            result.append((shard, self._rows(shard, first - shard_start, stop - shard_start)))
            first = stop
            position += 1
        return result


class EqualShards:
    """Split an epoch's rows into ``count`` ranges with equal batches, for data-parallel training.

    Synchronous data parallelism needs every process to run the same number
    of steps on batches of the same shape: a process with one batch more
    waits forever in the gradient all-reduce, and a ragged batch of a
    different size makes processes disagree about the global batch. So rows,
    not batches, are split: process ``index`` gets a contiguous range of the
    epoch's (seeded, shuffled) row order, the first ``total % count``
    processes one row more than the others. Those others pad their last
    batch with one copy of a row of their own range, given sample weight 0,
    so every process serves ``batches`` batches of identical shapes:
    ``batch_size`` rows each, the last one ``last_batch_rows``. Every row is
    still used exactly once per epoch across processes (padding rows carry
    no weight); at most ``count - 1`` padding rows are added per epoch.

    Parameters
    ----------
    total_rows, batch_size, count : int
        Rows in the epoch, rows per batch, number of processes.
    """

    def __init__(self, total_rows: int, batch_size: int, count: int):
        self.total_rows, self.batch_size, self.count = int(total_rows), int(batch_size), int(count)
        if self.count < 1 or self.batch_size < 1:
            raise OptionError(f"count and batch_size must be at least 1, got {count} and {batch_size}")
        if self.total_rows < self.count:
            raise OptionError(f"cannot split {total_rows} rows among {count} processes: each needs at least one row")
        self.rows_per_process = -(-self.total_rows // self.count)
        self.padding_rows = self.rows_per_process * self.count - self.total_rows
        self.batches = -(-self.rows_per_process // self.batch_size)
        self.last_batch_rows = self.rows_per_process - (self.batches - 1) * self.batch_size

    def rows(self, index: int) -> tuple[int, int]:
        """``(first, stop)``: the positions of the epoch's row order that process ``index`` owns."""
        if not 0 <= int(index) < self.count:
            raise OptionError(f"need 0 <= index < count, got index={index}, count={self.count}")
        full = self.count - self.padding_rows  # processes with rows_per_process rows; the rest have one fewer
        first = int(index) * (self.rows_per_process - 1) + min(int(index), full)
        return first, first + self.rows_per_process - (0 if index < full else 1)

    def batch(self, index: int, batch: int) -> tuple[int, int, int]:
        """``(first, stop, padding)``: positions of batch ``batch`` of process ``index``, and padding rows to add."""
        if not 0 <= int(batch) < self.batches:
            raise IndexError(f"batch index {batch} is out of range: each process has {self.batches} batches")
        own_first, own_stop = self.rows(index)
        first = min(own_first + batch * self.batch_size, own_stop)
        stop = min(first + self.batch_size, own_stop)
        shape = self.batch_size if batch < self.batches - 1 else self.last_batch_rows
        return first, stop, shape - (stop - first)


class ShardReader:
    """Read rows of a split's shards as model inputs.

    A batch's ``x`` is a dict: ``"numbers"`` (float32, the numbers block:
    numeric features with missing values filled, ``t.days`` per datetime
    feature) and ``"codes"`` (int32, one category code per categorical
    feature, then ``t.hour``, ``t.weekday``, ``t.month`` per datetime
    feature); a block without columns is left out.

    Parameters
    ----------
    manifest : dict
        From :func:`questlearn.manifest._files.load_manifest`.
    subset : str
        ``"train"``, ``"validate"``, or ``"test"`` when the split has a test subset.
    source : str
        ``"npy"`` (model-ready binary shards, memory-mapped) or ``"csv"``
        (parsed and encoded on load, to the same arrays).
    features : list of str, optional
        Source columns to use (all their inputs: a datetime column's four);
        default all features in the manifest.
    fill : str, optional
        The split chose how missing numbers are filled (``split --fill``,
        recorded as ``schema.encoding.fill``); ``None`` (default) accepts
        it, a different value is an error (re-split with that fill).
    label_mode : str
        ``"sparse"`` (int32 class index) or ``"one_hot"`` (float32).
    cache_shards : int
        How many shards each process keeps open (memory maps of the npy
        shards, whose pages the OS may drop; encoded arrays of CSV shards).
    verify : str
        ``"once"`` (default): compare each shard file with the manifest's
        SHA-256 the first time this training run reads it, so damaged or
        swapped shards stop loading with the file's name. ``"off"``: skip
        hashing (see ``benchmarks/bench_loader.py`` for the cost).
    files : optional
        Where the shard files are: :class:`~questlearn.data._shard_cache.LocalFiles` of the manifest's
        root (default), or a :class:`~questlearn.data._shard_cache.ShardCache` of a split in a store,
        which fetches and verifies each shard before it is opened (``verify`` applies to local files).
    """

    def __init__(self, manifest: dict, subset: str, source: str = "npy", features=None, fill: str | None = None,
                 label_mode: str = "sparse", cache_shards: int = 2, verify: str = "once", files=None):
        if subset == "test" and "test" not in manifest["subsets"]:
            raise OptionError(f"the split in {manifest.get('root', 'this directory')} has no test subset (it was split "
                              "without --test-fraction); read 'validate', or split again with --test-fraction")
        for name, value, allowed in (("subset", subset, ("train", "validate", "test")), ("source", source, SOURCES),
                                     ("label_mode", label_mode, LABEL_MODES)):
            if value not in allowed:
                raise OptionError(f"{name} must be one of {allowed}, got {value!r}")
        if int(cache_shards) < 1:
            raise OptionError(f"cache_shards must be at least 1, got {cache_shards}")
        formats = manifest["parameters"]["formats"]
        if source not in formats:
            raise OptionError(f"this split was written with formats {formats}; it has no {source!r} shards (re-split with formats including {source!r})")
        schema = manifest["schema"]
        self.encoding = Encoding.from_record(schema["encoding"])
        if fill is not None and fill != self.encoding.fill:
            if fill not in FILL_POLICIES:
                raise OptionError(f"fill must be one of {FILL_POLICIES} or None, got {fill!r}")
            raise OptionError(f"this split's shards hold numbers filled with fill={self.encoding.fill!r}, chosen when it "
                              f"was split; to train with fill={fill!r}, split again with `questlearn split --fill {fill}` "
                              f"(split_csv(..., fill={fill!r})), or leave fill unset to use the split's")
        self.manifest, self.subset, self.source = manifest, subset, source
        self.fill, self.label_mode = self.encoding.fill, label_mode
        self.cache_shards = int(cache_shards)
        self.files = files if files is not None else LocalFiles(Path(manifest["root"]), verify)
        self.all_features = list(schema["features"])
        self.features = list(features) if features is not None else self.all_features
        unknown = [f for f in self.features if f not in self.all_features]
        if unknown:
            raise OptionError(f"unknown feature columns {unknown}; this split has {self.all_features}")
        self.kinds = {c["name"]: c["kind"] for c in schema["columns"]}
        self.task = schema.get("task", "classification")
        if self.task == "regression" and label_mode != "sparse":
            raise OptionError("a regression split has a numeric target: label_mode must be 'sparse' (the value itself)")
        self.classes = list(schema["classes"])
        self.label_codes = np.asarray(schema["label_codes"], dtype=np.int32)
        self.numeric = [f for f in self.features if self.kinds[f] == "numeric"]
        self.categorical_features = [f for f in self.features if self.kinds[f] == "categorical"]
        self.datetime_features = [f for f in self.features if self.kinds[f] == "datetime"]
        chosen = set(self.features)
        numbers = [i for f in self.all_features if f in chosen for i in self.encoding.inputs_of(f)[0]]
        codes = [i for f in self.all_features if f in chosen for i in self.encoding.inputs_of(f)[1]]
        self._numbers, self._codes = sorted(numbers), sorted(codes)
        # Columns are taken only when a subset was asked for: all features are the stored blocks as they are.
        # (an empty choice is an integer index too: a block with no chosen column is left out of ``x``)
        self._take_numbers = None if self._numbers == list(range(len(self.encoding.numeric))) else np.asarray(self._numbers, np.intp)
        self._take_codes = None if self._codes == list(range(len(self.encoding.code_columns))) else np.asarray(self._codes, np.intp)
        self.shards = manifest["subsets"][subset]["shards"]
        self.root = Path(manifest["root"])
        self._cache = OrderedDict()
        self._ranges_checked = set()  # shards whose codes were checked against their columns' ranges
        self._lock = threading.Lock()

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_cache"] = OrderedDict()  # open files stay in the process that opened them
        state["_lock"] = None
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._lock = threading.Lock()

    # -- shapes and names ----------------------------------------------
    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def input_names(self) -> dict:
        """``{"numbers": [column names], "codes": [column names]}`` of the ``x`` blocks (empty blocks left out)."""
        names = {"numbers": [self.encoding.numeric[i] for i in self._numbers],
                 "codes": [self.encoding.code_columns[i] for i in self._codes]}
        return {block: columns for block, columns in names.items() if columns}

    def output_names(self) -> list[str]:
        """Names of the input columns: the numbers block's, then the codes block's."""
        return [name for columns in self.input_names().values() for name in columns]

    def code_counts(self) -> list[int]:
        """How many codes each codes column takes (the embedding or one-hot size)."""
        counts = self.encoding.code_counts
        return [counts[i] for i in self._codes]

    def output_quantiles(self):
        """Per numbers column, its sample quantiles (``schema.encoding.quantiles``); None when the split has none."""
        quantiles = self.encoding.quantiles
        names = [self.encoding.numeric[i] for i in self._numbers]
        if not all(name in quantiles for name in names):
            return None
        return [quantiles[name] for name in names]

    def output_day_columns(self) -> list[int]:
        """Positions in the numbers block of the columns that hold a datetime's elapsed days (``t.days``)."""
        days = {f"{name}.days" for name in self.encoding.datetimes}
        return [position for position, i in enumerate(self._numbers) if self.encoding.numeric[i] in days]

    def output_moments(self) -> tuple[np.ndarray, np.ndarray]:
        """Mean and variance of each numbers column, from the manifest statistics
        (:meth:`Encoding.moments`; no pass over the data). Used to set a Keras
        ``Normalization`` layer."""
        source = self.manifest["source"]
        mean, variance = self.encoding.moments(self.manifest["stats"], source["rows"] - source.get("dropped_missing_labels", 0))
        return mean[self._numbers], variance[self._numbers]

    def output_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """``(lower, upper)`` of each numbers column over the split, from the manifest statistics
        (:meth:`Encoding.bounds`; NaN where the manifest records no range)."""
        lower, upper = self.encoding.bounds(self.manifest["stats"])
        return lower[self._numbers], upper[self._numbers]

    def shard_name(self, shard: int) -> str:
        files = self.shards[shard]["files"]
        return files["csv" if self.source == "csv" else "numbers"]["name"]

    # -- reading -----------------------------------------------------------
    def read(self, segments) -> tuple[dict, np.ndarray]:
        """Model inputs and labels for ``[(shard, row positions), ...]``:
        ``take`` of those rows from each (memory-mapped) shard."""
        pieces = []
        for shard, rows in segments:
            numbers, codes, labels = self._load(shard)
            pieces.append((self._take(numbers, rows, self._take_numbers, np.float32),
                           self._take(codes, rows, self._take_codes, np.int32), labels[rows]))
        if len(pieces) == 1:
            numbers, codes, labels = pieces[0]
        else:
            numbers, codes, labels = (np.concatenate(block) for block in zip(*pieces))
        x = {block: array for block, array in (("numbers", numbers), ("codes", codes)) if array.shape[1]}
        if self.label_mode == "one_hot":
            return x, np.eye(self.num_classes, dtype=np.float32)[labels]
        return x, labels  # class codes, or regression targets

    def targets(self, shard: int) -> np.ndarray:
        """Class indices (or regression targets) of every row of ``shard``."""
        return self._load(shard)[2]

    @staticmethod
    def _take(block: np.ndarray, rows: np.ndarray, columns, dtype) -> np.ndarray:
        taken = np.take(block, rows, axis=0)
        if columns is not None:
            taken = taken[:, columns]
        return taken.astype(dtype, copy=False)

    def _load(self, shard: int):
        """``(x, labels)`` of a whole shard, from a small LRU cache.

        ``(numbers, codes, labels)``: for the npy source the memory-mapped
        blocks (nothing is read until a batch takes its rows) and the class
        indices; for the CSV source, the encoded shard. Thread workers share
        the cache; a shard being opened by one thread is waited for, not
        opened again. Shapes, dtypes and label codes are checked here, once
        per opening, not per batch.
        """
        with self._lock:
            entry = self._cache.get(shard)
            if entry is None:
                entry = self._cache[shard] = _Pending()
                owner = True
            else:
                self._cache.move_to_end(shard)
                owner = False
        if not owner:
            return entry.wait()
        try:
            loaded = self._read_csv(shard) if self.source == "csv" else self._open_npy(shard)
        except BaseException as error:
            with self._lock:
                self._cache.pop(shard, None)
            entry.fail(error)
            raise
        entry.set(loaded)
        with self._lock:
            while len(self._cache) > self.cache_shards:
                dropped, _ = self._cache.popitem(last=False)  # the memory map closes when its last batch is done
                if self.source == "npy":  # a CSV shard's file was released once parsed
                    self.files.release(self._entries(dropped))
        return loaded

    def _entries(self, shard: int) -> list:
        """The manifest records of the files of ``shard`` this reader reads."""
        files = self.shards[shard]["files"]
        return [files["csv"]] if self.source == "csv" else [files["numbers"], files["codes"], files["labels"]]

    def _open_npy(self, shard: int):
        rows = self.shards[shard]["rows"]
        numbers_path, codes_path, labels_path = self.files.acquire(self._entries(shard))
        try:
            return self._open_maps(shard, rows, numbers_path, codes_path, labels_path)
        except BaseException:
            self.files.release(self._entries(shard))
            raise

    def _open_maps(self, shard: int, rows: int, numbers_path: Path, codes_path: Path, labels_path: Path):
        blocks = []
        for part, dtype, width, path in (("numbers", np.dtype(np.float32), len(self.encoding.numeric), numbers_path),
                                         ("codes", self.encoding.code_dtype, len(self.encoding.code_columns), codes_path)):
            block = _open_map(path)
            if block.dtype != dtype or block.shape != (rows, width):
                raise IntegrityError(f"shard file {path} holds {block.dtype} values of shape {block.shape}, the manifest "
                                     f"says {dtype} of shape ({rows}, {width}) (rows, {part} columns): it was changed "
                                     "after the split, or belongs to another split")
            blocks.append(block)
        if len(self.encoding.code_columns) and rows and shard not in self._ranges_checked:
            check_code_range(blocks[1], self.encoding.code_counts, self.encoding.code_columns, codes_path)
            self._ranges_checked.add(shard)  # once per shard and run, like the SHA-256: the files do not change
        labels = _open_map(labels_path)
        if labels.shape != (rows,):
            raise IntegrityError(f"shard file {labels_path} holds labels of shape {labels.shape}, the manifest says ({rows},)")
        return blocks[0], blocks[1], self._labels(labels, labels_path)

    def _labels(self, stored: np.ndarray, path: Path) -> np.ndarray:
        """Stored labels -> class indices (checked codes mapped through
        ``label_codes``) or float32 regression targets."""
        if self.task == "regression":
            if stored.dtype != np.float32:
                raise IntegrityError(f"shard file {path} holds {stored.dtype} values, not float32 regression targets")
            return np.array(stored)
        if not np.issubdtype(stored.dtype, np.integer):
            raise IntegrityError(f"shard file {path} holds {stored.dtype} values, not integer label codes")
        codes = np.asarray(stored)
        if len(codes):
            low, high = int(codes.min()), int(codes.max())
            if low < 0 or high >= len(self.label_codes):  # numpy would read -1 as the last class
                bad = low if low < 0 else high
                raise IntegrityError(f"shard file {path} holds the label code {bad}, outside 0..{len(self.label_codes) - 1} "
                                     "(the label values in the manifest): the file is damaged")
        return self.label_codes[codes]

    def _read_csv(self, shard: int):
        """A CSV shard parsed with the manifest's schema and encoded with its encoding."""
        (path,) = self.files.acquire(self._entries(shard))
        try:
            return self._parse_csv(shard, path)
        finally:
            self.files.release(self._entries(shard))  # parsed into memory: the file is no longer needed

    def _parse_csv(self, shard: int, path: Path):
        import pyarrow as pa
        import pyarrow.compute as pc
        import pyarrow.csv as pa_csv

        from ..schema._columns import arrow_types, label_strings

        schema = self.manifest["schema"]
        label = schema["label"]
        wanted = self.all_features + [label]
        types = arrow_types({n: self.kinds[n] for n in wanted}, schema.get("label_numeric", False))
        try:
            table = pa_csv.read_csv(
                path,
                parse_options=pa_csv.ParseOptions(delimiter=schema.get("delimiter", ","), newlines_in_values=True),
                convert_options=pa_csv.ConvertOptions(column_types=types, include_columns=wanted,
                                                      null_values=schema.get("na_values", [""]),
                                                      strings_can_be_null=True, quoted_strings_can_be_null=True),
            )
        except pa.ArrowInvalid as error:  # the split wrote this file, so a parse failure means it was changed
            raise IntegrityError(f"shard file {path} no longer reads as the CSV the split wrote ({error}): it was "
                                 "changed after the split; run the split again into a new directory") from None
        expected = self.shards[shard]["rows"]
        if table.num_rows != expected:
            raise IntegrityError(f"shard file {path} has {table.num_rows} rows, the manifest says {expected}: the file was changed")
        numbers = {n: table[n].to_numpy().astype(np.float64) for n in self.all_features if self.kinds[n] == "numeric"}
        strings = {n: table[n].combine_chunks() for n in self.encoding.categorical}
        parts = {}
        for name in self.encoding.datetimes:
            numbers[f"{name}.days"], codes, bad = self.encoding.datetime_inputs(name, table[name])
            if bad is not None:
                raise IntegrityError(f"shard file {path} holds a {name!r} value the split could read no more: the file was changed")
            parts.update(codes)
        x, codes, _ = self.encoding.encode(numbers, strings, parts)
        if self.task == "regression":
            return x, codes, table[label].to_numpy().astype(np.float32)
        labels = pc.index_in(label_strings(table[label]), value_set=pa.array(self.classes, pa.string()))
        if labels.null_count:
            raise IntegrityError(f"{path} has a label outside the manifest classes {self.classes} (or an empty one)")
        return x, codes, labels.to_numpy(zero_copy_only=False).astype(np.int32)


def check_code_range(codes: np.ndarray, counts, names: list, path, rows=None) -> None:
    """Every code inside its column's range: an embedding lookup would read past its table otherwise.

    ``codes`` are rows of a shard's codes file (``rows``: their positions in it, when they are not all of
    it); ``counts`` and ``names`` are the encoding's code counts and code columns.
    """
    limits = np.asarray(counts, np.int64)
    outside = codes.max(axis=0).astype(np.int64) >= limits
    if codes.dtype.kind == "i":
        outside |= codes.min(axis=0) < 0
    if outside.any():
        column = int(np.flatnonzero(outside)[0])
        values = np.asarray(codes[:, column], np.int64)
        row = int(np.flatnonzero((values < 0) | (values >= limits[column]))[0])
        raise IntegrityError(f"shard file {path} holds the code {values[row]} in row {row if rows is None else int(rows[row])}, "
                             f"outside the range of {names[column]} (0..{limits[column] - 1}): the file is damaged; "
                             "run the split again into a new directory")


def _open_map(path: Path) -> np.ndarray:
    """A ``.npy`` file memory-mapped read-only, as a plain ndarray over the map.

    A C-ordered array is required: a header edited to Fortran order would
    keep shape and dtype yet scramble the rows.
    """
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except ValueError as error:
        raise IntegrityError(f"shard file {path} is not a readable .npy array ({error}): it was damaged") from None
    if array.ndim > 1 and not array.flags.c_contiguous:
        raise IntegrityError(f"shard file {path} holds a Fortran-ordered array; questlearn shards are C-ordered (row after row)")
    return np.asarray(array)


class _Pending:
    """A shard load in progress: other threads wait for its result."""

    def __init__(self):
        self._done = threading.Event()
        self._value = self._error = None

    def set(self, value):
        self._value = value
        self._done.set()

    def fail(self, error):
        self._error = error
        self._done.set()

    def wait(self):
        self._done.wait()
        if self._error is not None:
            raise self._error
        return self._value
