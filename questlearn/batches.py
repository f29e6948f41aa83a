"""Which rows make up batch ``i`` of epoch ``e``, and how to read them.

This module holds the keras-free core of :class:`~questlearn.dataset.QuestSequence`:

* :class:`BatchPlan` maps a batch index to row positions inside shards. The
  epoch order is a seeded permutation of the shards and of the rows inside
  each shard, computed from ``(seed, epoch, shard)`` alone, so every worker
  process agrees on it without sharing state and each row appears exactly
  once per epoch. Memory is O(number of shards), never O(rows).
* :class:`ShardReader` loads a shard (``.npy``, or CSV parsed with the
  manifest's fixed schema) and turns its rows into model inputs:
  missing values filled, categories one-hot encoded with the manifest
  vocabulary, labels mapped to the manifest's classes, float32 out.
  Each shard file is checked against the manifest's SHA-256 the first time
  a training run reads it (:mod:`questlearn.integrity`), and label codes
  are range-checked on every read.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from pathlib import Path

import numpy as np

from .integrity import ShardVerifier
from .manifest import resolve_inside

FILL_POLICIES = ("zero", "mean")
CATEGORICAL_ENCODINGS = ("one_hot", "code")
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
            raise ValueError(f"count and batch_size must be at least 1, got {count} and {batch_size}")
        if self.total_rows < self.count:
            raise ValueError(f"cannot split {total_rows} rows among {count} processes: each needs at least one row")
        self.rows_per_process = -(-self.total_rows // self.count)
        self.padding_rows = self.rows_per_process * self.count - self.total_rows
        self.batches = -(-self.rows_per_process // self.batch_size)
        self.last_batch_rows = self.rows_per_process - (self.batches - 1) * self.batch_size

    def rows(self, index: int) -> tuple[int, int]:
        """``(first, stop)``: the positions of the epoch's row order that process ``index`` owns."""
        if not 0 <= int(index) < self.count:
            raise ValueError(f"need 0 <= index < count, got index={index}, count={self.count}")
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
    """Read rows of a split's shards as model-ready float32 arrays.

    Parameters
    ----------
    manifest : dict
        From :func:`questlearn.manifest.load_manifest`.
    subset : str
        ``"train"`` or ``"validate"``.
    source : str
        ``"npy"`` (binary shards) or ``"csv"``.
    features : list of str, optional
        Feature columns to use; default all features in the manifest.
    fill : str
        Missing numeric values become ``0`` (``"zero"``, as in the original
        recipe) or the column mean from the manifest (``"mean"``).
    categorical : str
        ``"one_hot"`` (one column per category in the manifest vocabulary;
        a missing category is all zeros) or ``"code"`` (the category's
        index as a number; missing becomes -1).
    label_mode : str
        ``"sparse"`` (int32 class index) or ``"one_hot"`` (float32).
    cache_shards : int
        How many encoded shards each process keeps (memory bound:
        ``cache_shards * rows_per_shard * inputs * 4`` bytes).
    verify : str
        ``"once"`` (default): compare each shard file with the manifest's
        SHA-256 the first time this training run reads it, so damaged or
        swapped shards stop loading with the file's name. ``"off"``: skip
        hashing (see ``benchmarks/bench_loader.py`` for the cost).
    """

    def __init__(self, manifest: dict, subset: str, source: str = "npy", features=None, fill: str = "zero",
                 categorical: str = "one_hot", label_mode: str = "sparse", cache_shards: int = 2,
                 verify: str = "once"):
        for name, value, allowed in (("subset", subset, ("train", "validate")), ("source", source, SOURCES),
                                     ("fill", fill, FILL_POLICIES), ("categorical", categorical, CATEGORICAL_ENCODINGS),
                                     ("label_mode", label_mode, LABEL_MODES)):
            if value not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {value!r}")
        if int(cache_shards) < 1:
            raise ValueError(f"cache_shards must be at least 1, got {cache_shards}")
        formats = manifest["parameters"]["formats"]
        if source not in formats:
            raise ValueError(f"this split was written with formats {formats}; it has no {source!r} shards (re-split with formats including {source!r})")
        self.manifest, self.subset, self.source = manifest, subset, source
        self.fill, self.categorical, self.label_mode = fill, categorical, label_mode
        self.cache_shards = int(cache_shards)
        self.verifier = ShardVerifier(verify)
        schema = manifest["schema"]
        self.all_features = list(schema["features"])
        self.features = list(features) if features is not None else self.all_features
        unknown = [f for f in self.features if f not in self.all_features]
        if unknown:
            raise ValueError(f"unknown feature columns {unknown}; this split has {self.all_features}")
        self.kinds = {c["name"]: c["kind"] for c in schema["columns"]}
        self.task = schema.get("task", "classification")
        if self.task == "regression" and label_mode != "sparse":
            raise ValueError("a regression split has a numeric target: label_mode must be 'sparse' (the value itself)")
        self.classes = list(schema["classes"])
        self.label_codes = np.asarray(schema["label_codes"], dtype=np.int32)
        self.numeric = [f for f in self.features if self.kinds[f] == "numeric"]
        self.categorical_features = [f for f in self.features if self.kinds[f] == "categorical"]
        self._numeric_positions = np.asarray([self.all_features.index(f) for f in self.numeric], dtype=np.int64)
        stats = manifest["stats"]
        self._fill_values = np.asarray(
            [0.0 if fill == "zero" else (stats[f]["mean"] or 0.0) for f in self.numeric], dtype=np.float32)
        self.shards = manifest["subsets"][subset]["shards"]
        self.root = Path(manifest["root"])
        self._cache = OrderedDict()
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

    def vocabulary_width(self, feature: str) -> int:
        """One-hot columns of a categorical feature: its vocabulary, plus one
        out-of-vocabulary column when the split saw values past
        ``max_categories``."""
        extra = 1 if self.manifest["stats"][feature].get("oov", 0) else 0
        return len(self.manifest["schema"]["categories"][feature]) + extra

    def output_names(self) -> list[str]:
        """Names of the columns of the ``x`` arrays: numeric features in
        order, then each categorical feature (one column per category when
        one-hot encoded, ``name=<other>`` for out-of-vocabulary values)."""
        names = list(self.numeric)
        for feature in self.categorical_features:
            if self.categorical == "one_hot":
                values = self.manifest["schema"]["categories"][feature]
                names += [f"{feature}={value}" for value in values]
                names += [f"{feature}=<other>"] * (self.vocabulary_width(feature) - len(values))
            else:
                names.append(feature)
        return names

    def output_moments(self) -> tuple[np.ndarray, np.ndarray]:
        """Mean and variance of each ``x`` column, from the manifest statistics.

        Used to set a Keras ``Normalization`` layer without another pass
        over the data. Numeric moments account for the fill policy; one-hot
        columns get the category frequency ``p`` and ``p * (1 - p)``.
        """
        stats = self.manifest["stats"]
        rows = self.manifest["source"]["rows"]
        means, variances = [], []
        for feature, filled in zip(self.numeric, self._fill_values.tolist()):
            entry = stats[feature]
            mean = entry["mean"] or 0.0
            missing = entry["missing"] / rows
            total_mean = (1 - missing) * mean + missing * filled
            second = (1 - missing) * (entry["variance"] + mean * mean) + missing * filled * filled
            means.append(total_mean)
            variances.append(max(second - total_mean * total_mean, 0.0))
        for feature in self.categorical_features:
            counts = list(stats[feature]["category_counts"].values())
            counts += [stats[feature].get("oov", 0)] * (self.vocabulary_width(feature) - len(counts))
            counts = np.asarray(counts, dtype=np.float64)
            if self.categorical == "one_hot":
                frequency = counts / rows
                means += frequency.tolist()
                variances += (frequency * (1 - frequency)).tolist()
            else:
                codes = np.arange(len(counts))
                total = max(counts.sum(), 1.0)
                mean = float((codes * counts).sum() / total)
                means.append(mean)
                variances.append(float(((codes - mean) ** 2 * counts).sum() / total))
        return np.asarray(means, np.float32), np.asarray(variances, np.float32)

    def shard_name(self, shard: int) -> str:
        files = self.shards[shard]["files"]
        return files["csv" if self.source == "csv" else "features"]["name"]

    # -- reading -----------------------------------------------------------
    def read(self, segments) -> tuple[np.ndarray, np.ndarray]:
        """Model inputs and labels for ``[(shard, row positions), ...]``."""
        parts = []
        for shard, rows in segments:
            x, labels = self._load(shard)
            parts.append((np.take(x, rows, axis=0), labels[rows]))
        x = np.concatenate([p[0] for p in parts]) if len(parts) > 1 else parts[0][0]
        labels = np.concatenate([p[1] for p in parts]) if len(parts) > 1 else parts[0][1]
        if self.label_mode == "one_hot":
            return x, np.eye(self.num_classes, dtype=np.float32)[labels]
        return x, labels  # class codes, or regression targets

    def _load(self, shard: int):
        """Encoded inputs and class labels of a whole shard, from a small cache.

        A shard is read and encoded once and kept while its batches are
        served (the epoch order walks the shards one after the other), so a
        batch is two ``take`` calls. Thread workers share the cache; a shard
        being loaded by one thread is waited for, not loaded again. Memory:
        ``cache_shards * rows_per_shard * inputs * 4`` bytes per process.
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
            features, labels = self._read_shard(shard)
            expected = self.shards[shard]["rows"]
            if len(labels) != expected or len(features) != expected:
                raise ValueError(f"shard {self.shard_name(shard)} has {len(labels)} rows, the manifest says {expected}: the file was changed")
            loaded = (self._encode(features), labels)
        except BaseException as error:
            with self._lock:
                self._cache.pop(shard, None)
            entry.fail(error)
            raise
        entry.set(loaded)
        with self._lock:
            while len(self._cache) > self.cache_shards:
                self._cache.popitem(last=False)
        return loaded

    def _read_shard(self, shard: int):
        files = self.shards[shard]["files"]
        if self.source == "csv":
            path = resolve_inside(self.root, files["csv"]["name"])
            self.verifier.check(path, files["csv"])
            return self._parse_csv(path)
        features_path = resolve_inside(self.root, files["features"]["name"])
        labels_path = resolve_inside(self.root, files["labels"]["name"])
        self.verifier.check(features_path, files["features"])
        self.verifier.check(labels_path, files["labels"])
        features = np.load(features_path, allow_pickle=False)
        labels = np.load(labels_path, allow_pickle=False)
        if features.ndim != 2 or features.shape[1] != len(self.all_features):
            raise ValueError(f"shard file {features_path} holds an array of shape {features.shape}, "
                             f"not (rows, {len(self.all_features)}) as the manifest's features need")
        if self.task == "regression":
            if labels.ndim != 1 or labels.dtype != np.float32:
                raise ValueError(f"shard file {labels_path} holds {labels.dtype} values of shape {labels.shape}, "
                                 "not float32 regression targets")
            return features, labels
        return features, self.label_codes[self._checked_codes(labels, labels_path)]

    def _checked_codes(self, codes: np.ndarray, path: Path) -> np.ndarray:
        """Label codes, refused unless integers in ``0 .. len(label_codes) - 1``
        (numpy would read -1 as the last class)."""
        if codes.ndim != 1 or not np.issubdtype(codes.dtype, np.integer):
            raise ValueError(f"shard file {path} holds {codes.dtype} values of shape {codes.shape}, not integer label codes")
        if len(codes):
            low, high = int(codes.min()), int(codes.max())
            if low < 0 or high >= len(self.label_codes):
                bad = low if low < 0 else high
                raise ValueError(f"shard file {path} holds the label code {bad}, outside 0..{len(self.label_codes) - 1} "
                                 "(the label values in the manifest): the file is damaged")
        return codes

    def _parse_csv(self, path: Path):
        import pyarrow as pa
        import pyarrow.compute as pc
        import pyarrow.csv as pa_csv

        from .schema import arrow_types, label_strings

        schema = self.manifest["schema"]
        label = schema["label"]
        wanted = self.all_features + [label]
        types = arrow_types({n: self.kinds[n] for n in wanted}, schema.get("label_numeric", False))
        table = pa_csv.read_csv(
            path,
            parse_options=pa_csv.ParseOptions(delimiter=schema.get("delimiter", ","), newlines_in_values=True),
            convert_options=pa_csv.ConvertOptions(column_types=types, include_columns=wanted,
                                                  null_values=schema.get("na_values", [""]),
                                                  strings_can_be_null=True, quoted_strings_can_be_null=True),
        )
        columns = []
        for name in self.all_features:
            if self.kinds[name] == "numeric":
                columns.append(table[name].to_numpy().astype(np.float32))
            else:
                vocabulary = schema["categories"][name]
                codes = pc.index_in(table[name], value_set=pa.array(vocabulary, pa.string()))
                codes = codes.to_numpy(zero_copy_only=False).astype(np.float32)
                unseen = np.isnan(codes) & ~table[name].is_null().to_numpy(zero_copy_only=False)
                codes[unseen] = len(vocabulary)  # out of vocabulary, as the split encoded it
                columns.append(codes)
        features = np.column_stack(columns) if columns else np.empty((table.num_rows, 0), np.float32)
        if self.task == "regression":
            return features, table[label].to_numpy().astype(np.float32)
        labels = pc.index_in(label_strings(table[label]), value_set=pa.array(self.classes, pa.string()))
        if labels.null_count:
            raise ValueError(f"{path} has a label outside the manifest classes {self.classes} (or an empty one)")
        return features, labels.to_numpy(zero_copy_only=False).astype(np.int32)

    def _encode(self, raw: np.ndarray) -> np.ndarray:
        """Stored features (NaN = missing, categories as codes) -> float32 model inputs."""
        x = np.empty((len(raw), len(self.output_names())), np.float32)
        width = len(self.numeric)
        numeric = x[:, :width]
        for source, target, length in _runs(self._numeric_positions):
            numeric[:, target:target + length] = raw[:, source:source + length]  # slices: 10x faster than fancy indexing
        missing = np.isnan(numeric)
        if missing.any():
            np.copyto(numeric, np.broadcast_to(self._fill_values, numeric.shape), where=missing)
        for feature in self.categorical_features:
            column = raw[:, self.all_features.index(feature)]
            present = np.flatnonzero(~np.isnan(column))
            if self.categorical == "one_hot":
                size = self.vocabulary_width(feature)
                block = x[:, width:width + size]
                block[...] = 0.0
                block[present, column[present].astype(np.intp)] = 1.0
                width += size
            else:
                x[:, width] = -1.0
                x[present, width] = column[present]
                width += 1
        return x


def _runs(positions: np.ndarray):
    """``(source start, target start, length)`` of each run of consecutive positions."""
    if not len(positions):
        return []
    breaks = np.flatnonzero(np.diff(positions) != 1) + 1
    starts = np.concatenate(([0], breaks))
    lengths = np.diff(np.concatenate((starts, [len(positions)])))
    return [(int(positions[a]), int(a), int(n)) for a, n in zip(starts, lengths)]


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
