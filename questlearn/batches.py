"""Which rows make up batch ``i`` of epoch ``e``, and how to read them.

This module holds the keras-free core of :class:`~questlearn.dataset.QuestSequence`:

* :class:`BatchPlan` maps a batch index to row positions inside shards. The
  epoch order is a seeded permutation of the shards and of the rows inside
  each shard, computed from ``(seed, epoch, shard)`` alone, so every worker
  process agrees on it without sharing state and each row appears exactly
  once per epoch. Memory is O(number of shards), never O(rows).
* :class:`ShardReader` loads a shard (memory-mapped ``.npy`` or CSV parsed
  with the manifest's fixed schema) and turns rows into model inputs:
  missing values filled, categories one-hot encoded with the manifest
  vocabulary, labels mapped to the manifest's classes, float32 out.
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

import numpy as np

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

    def __len__(self) -> int:
        if self.batch_size is None:
            return len(self.order)
        return -(-self.total_rows // self.batch_size)

    def rows_in_shard(self, shard: int) -> np.ndarray:
        """Row order inside ``shard`` for this epoch."""
        if not self.shuffle:
            return np.arange(self.shard_rows[shard])
        return np.random.default_rng([self.seed, self.epoch, int(shard)]).permutation(int(self.shard_rows[shard]))

    def segments(self, index: int) -> list[tuple[int, np.ndarray]]:
        """``[(shard, row positions), ...]`` that make up batch ``index``."""
        if not 0 <= index < len(self):
            raise IndexError(f"batch index {index} is out of range for {len(self)} batches")
        if self.batch_size is None:
            shard = int(self.order[index])
            return [(shard, self.rows_in_shard(shard))]
        first = index * self.batch_size
        last = min(first + self.batch_size, self.total_rows)
        result = []
        position = int(np.searchsorted(self.ends, first, side="right"))
        while first < last:
            shard = int(self.order[position])
            shard_start = int(self.ends[position] - self.shard_rows[shard])
            stop = min(last, int(self.ends[position]))
            result.append((shard, self.rows_in_shard(shard)[first - shard_start : stop - shard_start]))
            first = stop
            position += 1
        return result


class ShardReader:
    """Read rows of a split's shards as model-ready float32 arrays.

    Parameters
    ----------
    manifest : dict
        From :func:`questlearn.manifest.load_manifest`.
    subset : str
        ``"train"`` or ``"validate"``.
    source : str
        ``"npy"`` (binary shards, memory-mapped) or ``"csv"``.
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
        How many parsed CSV shards each process keeps (memory bound:
        ``cache_shards * rows_per_shard * features * 4`` bytes).
    """

    def __init__(self, manifest: dict, subset: str, source: str = "npy", features=None, fill: str = "zero",
                 categorical: str = "one_hot", label_mode: str = "sparse", cache_shards: int = 2):
        for name, value, allowed in (("subset", subset, ("train", "validate")), ("source", source, SOURCES),
                                     ("fill", fill, FILL_POLICIES), ("categorical", categorical, CATEGORICAL_ENCODINGS),
                                     ("label_mode", label_mode, LABEL_MODES)):
            if value not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {value!r}")
        formats = manifest["parameters"]["formats"]
        if source not in formats:
            raise ValueError(f"this split was written with formats {formats}; it has no {source!r} shards (re-split with formats including {source!r})")
        self.manifest, self.subset, self.source = manifest, subset, source
        self.fill, self.categorical, self.label_mode = fill, categorical, label_mode
        self.cache_shards = int(cache_shards)
        schema = manifest["schema"]
        self.all_features = list(schema["features"])
        self.features = list(features) if features is not None else self.all_features
        unknown = [f for f in self.features if f not in self.all_features]
        if unknown:
            raise ValueError(f"unknown feature columns {unknown}; this split has {self.all_features}")
        self.kinds = {c["name"]: c["kind"] for c in schema["columns"]}
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

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_cache"] = OrderedDict()  # open files stay in the process that opened them
        return state

    # -- shapes and names ----------------------------------------------
    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def output_names(self) -> list[str]:
        """Names of the columns of the ``x`` arrays: numeric features in
        order, then each categorical feature (one column per category when
        one-hot encoded)."""
        names = list(self.numeric)
        for feature in self.categorical_features:
            if self.categorical == "one_hot":
                names += [f"{feature}={value}" for value in self.manifest["schema"]["categories"][feature]]
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
            counts = np.asarray(list(stats[feature]["category_counts"].values()), dtype=np.float64)
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
        parts = [self._raw_rows(shard, rows) for shard, rows in segments]
        raw = np.concatenate([p[0] for p in parts]) if len(parts) > 1 else parts[0][0]
        labels = np.concatenate([p[1] for p in parts]) if len(parts) > 1 else parts[0][1]
        x = self._encode(raw)
        if self.label_mode == "one_hot":
            return x, np.eye(self.num_classes, dtype=np.float32)[labels]
        return x, labels

    def _raw_rows(self, shard: int, rows: np.ndarray):
        features, labels = self._load(shard)
        expected = self.shards[shard]["rows"]
        if len(labels) != expected:
            raise ValueError(f"shard {self.shard_name(shard)} has {len(labels)} rows, the manifest says {expected}: the file was changed")
        if self.source == "npy" and len(rows) > 1:
            order = np.argsort(rows, kind="stable")  # read the memory map front to back
            picked = np.empty((len(rows), features.shape[1]), np.float32)
            picked[order] = features[rows[order]]
            return picked, labels[rows]
        return features[rows], labels[rows]

    def _load(self, shard: int):
        if shard in self._cache:
            self._cache.move_to_end(shard)
            return self._cache[shard]
        files = self.shards[shard]["files"]
        if self.source == "npy":
            features = np.load(resolve_inside(self.root, files["features"]["name"]), mmap_mode="r", allow_pickle=False)
            labels = self.label_codes[np.load(resolve_inside(self.root, files["labels"]["name"]), allow_pickle=False)]
            keep = 64
        else:
            features, labels = self._parse_csv(resolve_inside(self.root, files["csv"]["name"]))
            keep = self.cache_shards
        self._cache[shard] = (features, labels)
        while len(self._cache) > keep:
            self._cache.popitem(last=False)
        return features, labels

    def _parse_csv(self, path: Path):
        import pyarrow as pa
        import pyarrow.compute as pc
        import pyarrow.csv as pa_csv

        schema = self.manifest["schema"]
        label = schema["label"]
        wanted = self.all_features + [label]
        types = {n: pa.float64() if self.kinds[n] == "numeric" else pa.string() for n in wanted}
        table = pa_csv.read_csv(
            path,
            parse_options=pa_csv.ParseOptions(newlines_in_values=True),
            convert_options=pa_csv.ConvertOptions(column_types=types, include_columns=wanted, null_values=[""],
                                                  strings_can_be_null=True, quoted_strings_can_be_null=True),
        )
        columns = []
        for name in self.all_features:
            if self.kinds[name] == "numeric":
                columns.append(table[name].to_numpy().astype(np.float32))
            else:
                codes = pc.index_in(table[name], value_set=pa.array(schema["categories"][name], pa.string()))
                columns.append(codes.to_numpy(zero_copy_only=False).astype(np.float32))
        features = np.column_stack(columns) if columns else np.empty((table.num_rows, 0), np.float32)
        labels = pc.index_in(table[label], value_set=pa.array(self.classes, pa.string()))
        if labels.null_count:
            raise ValueError(f"{path} has a label outside the manifest classes {self.classes} (or an empty one)")
        return features, labels.to_numpy(zero_copy_only=False).astype(np.int32)

    def _encode(self, raw: np.ndarray) -> np.ndarray:
        numeric = raw[:, self._numeric_positions]
        blocks = [np.where(np.isnan(numeric), self._fill_values, numeric).astype(np.float32, copy=False)]
        for feature in self.categorical_features:
            column = raw[:, self.all_features.index(feature)]
            missing = np.isnan(column)
            if self.categorical == "one_hot":
                hot = np.zeros((len(column), len(self.manifest["schema"]["categories"][feature])), np.float32)
                present = np.flatnonzero(~missing)
                hot[present, column[present].astype(np.int64)] = 1.0
                blocks.append(hot)
            else:
                blocks.append(np.where(missing, np.float32(-1.0), column)[:, None].astype(np.float32))
        return np.concatenate(blocks, axis=1) if len(blocks) > 1 else blocks[0]
