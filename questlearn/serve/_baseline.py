"""Boosting yardsticks for ``questlearn evaluate --baseline gbdt,lightgbm,catboost``: the sample and the report.

Each baseline named (``_boosters``: scikit-learn's HistGradientBoosting,
LightGBM, CatBoost; default settings, the seed fixed, so a run repeats) is
trained on one bounded random sample of the split's training shards, the
same rows for all, and scored on the rows ``evaluate`` scores (the test
subset when the split has one, else validate: the network's rows), so the
network's metrics have strong tabular models beside them.

The sample
    ``min(max_rows, max_bytes // (4 * columns))`` rows (features held as
    float32; the libraries copy them once more and bin them), drawn
    uniformly at random without replacement across all training shards:
    how many rows each shard gives is one multivariate hypergeometric draw
    over the shards' row counts, which rows a seeded choice inside the
    shard; they are taken from the memory-mapped ``numbers.npy``,
    ``codes.npy`` and ``labels.npy`` one shard at a time, so memory follows
    the sample, never the split.

The columns
    The model's inputs, numbers then codes. Code 0 (missing) becomes NaN,
    which boosting handles natively. Which code columns are categorical
    features is the library's (``_boosters``): all for LightGBM and
    CatBoost; for HistGradientBoosting those of at most 255 codes, larger
    ones entering as ordinal integers (their codes order the hash buckets
    first, then the vocabulary most frequent first). A numbers column with
    a missing-value indicator (``name.missing``, for columns missing in the
    split's sample) is NaN where it marks the value missing, and the
    indicator itself is left out; a column missing only after the sample
    keeps the split's fill value (the report names both).
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass

import numpy as np

from ..data._batches import _open_map, check_code_range
from ..errors import InputFormatError, IntegrityError, OptionError
from ..manifest._files import resolve_inside
from ._boosters import boosting_threads

DEFAULT_ROWS = 200_000
DEFAULT_BYTES = 512 * 2 ** 20


@dataclass
class Sample:
    """Rows drawn from the training shards: ``x`` (float32, numbers then codes, code 0 as NaN) and ``labels``."""

    x: np.ndarray
    labels: np.ndarray
    cap: int
    capped_by: str
    available: int
    seconds: float = 0.0

    @property
    def capped(self) -> bool:
        """Whether the cap left training rows out (else every row was drawn)."""
        return self.available > self.cap

    def describe(self) -> str:
        """How many rows were drawn, and whether the cap applied (it did only when rows were left out)."""
        if self.capped:
            return f"{len(self.labels)} of {self.available} training rows drawn (cap {self.cap} rows, set by {self.capped_by})"
        return f"all {self.available} training rows drawn (fewer than the cap of {self.cap} rows: it did not apply)"


def sample_cap(columns: int, max_rows: int, max_bytes: int) -> tuple[int, str]:
    """Rows the sample may hold and what set the limit (``max_rows`` or ``max_bytes`` of float32 features)."""
    for name, value in (("baseline_rows", max_rows), ("baseline_bytes", max_bytes)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise OptionError(f"{name} must be a positive whole number, got {value!r}")
    by_memory = int(max_bytes) // (4 * max(columns, 1))
    if by_memory < 1:
        raise OptionError(f"baseline_bytes={max_bytes} holds not one row of {columns} float32 features")
    if by_memory < max_rows:
        return by_memory, f"the memory cap (--baseline-memory-mib: {max_bytes / 2 ** 20:g} MiB of float32 features, {columns} columns)"
    return int(max_rows), "the row cap (--baseline-rows)"


def draw_positions(shard_rows: list[int], count: int, seed: int) -> list[np.ndarray]:
    """Sorted row positions per shard: ``count`` rows uniformly at random without replacement over all shards."""
    rng = np.random.default_rng(seed)
    shard_rows = np.asarray(shard_rows, np.int64)
    total = int(shard_rows.sum())
    if total < 10 ** 9:  # numpy's exact multivariate hypergeometric draw ("marginals") holds below 10**9 items
        per_shard = rng.multivariate_hypergeometric(shard_rows, count)
        return [np.sort(rng.choice(rows, size=int(take), replace=False)) for rows, take in zip(shard_rows, per_shard)]
    chosen = np.zeros(0, np.int64)  # beyond: distinct global positions by rejection (count <= the cap, far below total)
    while len(chosen) < count:
        chosen = np.unique(np.concatenate([chosen, rng.integers(0, total, count - len(chosen))]))
    starts = np.concatenate([[0], np.cumsum(shard_rows)])
    shard = np.searchsorted(starts, chosen, side="right") - 1
    return [chosen[shard == index] - starts[index] for index in range(len(shard_rows))]


def sample_training_rows(reader, max_rows: int = DEFAULT_ROWS, max_bytes: int = DEFAULT_BYTES, seed: int = 0) -> Sample:
    """A bounded uniform sample of the training shards of ``reader``'s split, in ``reader``'s columns.

    Parameters
    ----------
    reader : questlearn.data._batches.ShardReader
        A reader of the split (any subset): its manifest, encoding, label
        codes and chosen input columns are used.
    max_rows, max_bytes : int
        Caps on the sample: rows, and bytes of float32 features.
    seed : int
        Seeds which rows are drawn.
    """
    manifest, encoding = reader.manifest, reader.encoding
    if "npy" not in manifest["parameters"]["formats"]:
        raise OptionError("--baseline reads the training rows from the .npy shards, and this split has none "
                          "(re-split with formats including 'npy')")
    names = reader.input_names()
    numbers = [encoding.numeric.index(n) for n in names.get("numbers", [])]
    codes = [encoding.code_columns.index(n) for n in names.get("codes", [])]
    width = len(numbers) + len([n for n in names.get("codes", []) if not _indicator_of(n, names.get("numbers", []))])
    cap, capped_by = sample_cap(width, max_rows, max_bytes)
    shards = manifest["subsets"]["train"]["shards"]
    available = sum(int(s["rows"]) for s in shards)
    if not available:
        raise InputFormatError("the split's train subset holds no rows, so there is nothing to train the boosting baseline on")
    positions = draw_positions([int(s["rows"]) for s in shards], min(cap, available), seed)
    root = reader.root
    x = np.empty((min(cap, available), width), np.float32)
    labels, start = [], 0
    for shard, rows in zip(shards, positions):
        if not len(rows):
            continue
        stop = start + len(rows)
        taken_numbers = take_rows(root, shard, "numbers", rows, len(encoding.numeric), np.float32)[:, numbers]
        taken = take_rows(root, shard, "codes", rows, len(encoding.code_columns), encoding.code_dtype)
        check_code_range(taken, encoding.code_counts, encoding.code_columns,
                         resolve_inside(root, shard["files"]["codes"]["name"]), rows)
        x[start:stop] = boosting_features(taken_numbers, taken[:, codes], names.get("numbers", []), names.get("codes", []))
        labels.append(_labels(reader, take_rows(root, shard, "labels", rows, None, None), root, shard))
        start = stop
    return Sample(x, np.concatenate(labels), cap, capped_by, available)


def _indicator_of(code_name: str, number_names: list):
    """The numbers column a ``name.missing`` code column marks, or None."""
    base = code_name.removesuffix(".missing")
    return base if base != code_name and base in number_names else None


def boosting_features(numbers: np.ndarray, codes: np.ndarray, number_names: list, code_names: list) -> np.ndarray:
    """The boosting model's float32 features: the numbers, NaN where a missing-value indicator marks them
    (boosting handles missingness natively), then the other code columns with code 0 (missing) as NaN."""
    numbers = np.array(numbers, np.float32)
    kept = []
    for position, name in enumerate(code_names):
        marked = _indicator_of(name, number_names)
        if marked is None:
            kept.append(position)
        else:
            numbers[codes[:, position] == 1, number_names.index(marked)] = np.nan
    block = codes[:, kept].astype(np.float32) if kept else np.empty((len(numbers), 0), np.float32)
    block[block == 0] = np.nan
    return np.concatenate([numbers, block], axis=1)


def take_rows(root, shard: dict, part: str, rows: np.ndarray, width, dtype) -> np.ndarray:
    """Rows ``rows`` (sorted positions) of one shard file, taken from its memory map (shape and dtype checked)."""
    path = resolve_inside(root, shard["files"][part]["name"])
    block = _open_map(path)
    shape = (shard["rows"],) if width is None else (shard["rows"], width)
    if block.shape != shape or (dtype is not None and block.dtype != np.dtype(dtype)):
        raise IntegrityError(f"shard file {path} holds {block.dtype} values of shape {block.shape}, the manifest says "
                             f"{'labels' if dtype is None else np.dtype(dtype)} of shape {shape}: it was changed after "
                             "the split, or belongs to another split")
    return np.take(block, rows, axis=0)


def _labels(reader, stored: np.ndarray, root, shard: dict) -> np.ndarray:
    """Drawn stored labels -> class indices (codes checked) or float32 targets."""
    path = resolve_inside(root, shard["files"]["labels"]["name"])
    if reader.task == "regression":
        if stored.dtype != np.float32:
            raise IntegrityError(f"shard file {path} holds {stored.dtype} values, not float32 regression targets")
        return stored
    if not np.issubdtype(stored.dtype, np.integer) or (len(stored) and (stored.min() < 0 or stored.max() >= len(reader.label_codes))):
        raise IntegrityError(f"shard file {path} holds a label code outside 0..{len(reader.label_codes) - 1} "
                             "(the label values in the manifest): the file is damaged")
    return reader.label_codes[stored]


class BoostingBaseline:
    """One boosting library's model trained on a shared :class:`Sample`; :meth:`outputs` scores a batch like
    the network's outputs.

    Parameters
    ----------
    reader : questlearn.data._batches.ShardReader
        The reader of the subset ``evaluate`` scores the network on (test or validate).
    sample : Sample
        The training rows drawn (:func:`draw_sample`): every baseline of one run fits the same rows.
    name : {"gbdt", "lightgbm", "catboost"}
        The library (``_boosters.BOOSTERS``).
    seed : int
        Seeds the model (and the rows LightGBM and CatBoost hold out for early stopping).
    """

    def __init__(self, reader, sample: Sample, name: str, seed: int = 0):
        from ._boosters import BOOSTERS

        self.name, self.sample = name, sample
        self.regression = reader.task == "regression"
        names = reader.input_names()
        self.number_names, self.code_names = names.get("numbers", []), names.get("codes", [])
        pairs = [(n, c) for n, c in zip(self.code_names, reader.code_counts()) if not _indicator_of(n, self.number_names)]
        self.threads, why = boosting_threads()
        self.booster = BOOSTERS[name](self.regression, len(reader.classes), seed, self.threads)
        limit = self.booster.max_categories
        native = [limit is None or count <= limit for _, count in pairs]
        self.categorical = [n for (n, _), keep in zip(pairs, native) if keep]
        self.ordinal = [n for (n, _), keep in zip(pairs, native) if not keep]
        mask = np.zeros(sample.x.shape[1], bool)
        mask[len(self.number_names):] = native
        _say(name, f"fitting {self.booster.title} on {len(sample.labels)} rows of {sample.x.shape[1]} columns with "
                   f"{self.threads} thread(s) ({why}) ...")
        began = time.perf_counter()
        self.booster.fit(sample.x, sample.labels, mask)
        self.seconds = time.perf_counter() - began
        _say(name, f"fitted in {self.seconds:.1f} s ({self.booster.iterations} boosting iterations)")
        self.missing_numbers = _filled_columns(reader)

    def outputs(self, x: dict) -> np.ndarray:
        """Predictions for a batch ``x`` (``{"numbers", "codes"}``): probabilities of every class, or targets."""
        rows = len(next(iter(x.values())))
        features = boosting_features(x.get("numbers", np.empty((rows, 0), np.float32)),
                                     x.get("codes", np.empty((rows, 0), np.int32)), self.number_names, self.code_names)
        return self.booster.outputs(features)

    def ordinal_note(self) -> str | None:
        """Why some code columns are not categorical features (``None`` when all are)."""
        if not self.ordinal:
            return None
        return (f"{', '.join(self.ordinal)}: more than {self.booster.max_categories} codes (HistGradientBoosting's "
                "categorical limit), so they enter as ordinal integers (hash buckets, then the vocabulary most "
                "frequent first)")

    def report(self, scored: dict, network: dict) -> dict:
        """The ``baseline_<name>`` entry: ``scored`` (its ``_Tally`` result), the sample and the gap to ``network``."""
        keys = ("mae", "rmse") if self.regression else ("accuracy", "auc", "auc_over", "auc_max_error", "confusion_matrix")
        sample = self.sample
        entry = {"model": self.booster.description, **{key: scored[key] for key in keys}, "rows": scored["rows"],
                 "training_rows": len(sample.labels), "training_rows_available": sample.available,
                 "sample_cap": sample.cap, "sample_capped": sample.capped,
                 "sample_capped_by": sample.capped_by if sample.capped else None,
                 "sample": "uniform at random without replacement over the training shards (memory-mapped), "
                           "the same rows for every baseline",
                 "seconds": self.seconds, "sample_seconds": sample.seconds,
                 "iterations": self.booster.iterations, "threads": self.threads,
                 "early_stopping": self.booster.early_stopping,
                 "categorical_features": self.categorical,
                 "ordinal_features": self.ordinal,
                 "ordinal_note": self.ordinal_note(),
                 "missing_numbers": self.missing_numbers}
        entry["gap"] = gap(network, scored, self.regression)
        return entry


def draw_sample(reader, names: list, max_rows: int = DEFAULT_ROWS, max_bytes: int = DEFAULT_BYTES,
                seed: int = 0) -> Sample:
    """The sample every baseline in ``names`` trains on (see :func:`sample_training_rows`), its progress printed;
    a sample of one class is refused for classification."""
    label = ",".join(names)
    _say(label, "drawing a random sample of the training shards ...")
    began = time.perf_counter()
    sample = sample_training_rows(reader, max_rows, max_bytes, seed)
    sample.seconds = time.perf_counter() - began
    if reader.task != "regression" and len(np.unique(sample.labels)) < 2:
        raise InputFormatError(f"the {len(sample.labels)} training rows drawn for the boosting baseline hold only "
                               f"class {reader.classes[int(sample.labels[0])]!r}: it needs two classes (raise "
                               "--baseline-rows, or check the split's train subset)")
    _say(label, sample.describe())
    return sample


def gap(network: dict, boosting: dict, regression: bool) -> dict:
    """The network against the boosting model, on every metric both report.

    Regression: ``mae_ratio_minus_1`` and ``rmse_ratio_minus_1`` (network /
    boosting - 1: above 0, the network is worse). Classification:
    ``accuracy_points`` and ``auc`` (network minus boosting: below 0, the
    network is worse; ``auc`` null where either is undefined).
    """
    if regression:
        return {**{f"{metric}_ratio_minus_1": network[metric] / boosting[metric] - 1 if boosting[metric] else None
                   for metric in ("mae", "rmse")},
                "meaning": "network error / boosting error - 1, for MAE and RMSE: above 0, the network is worse"}
    auc = None if network["auc"] is None or boosting["auc"] is None else network["auc"] - boosting["auc"]
    return {"accuracy_points": 100 * (network["accuracy"] - boosting["accuracy"]), "auc": auc,
            "meaning": "network minus boosting, for accuracy (in points) and AUC: below 0, the network is worse"}


def _say(name: str, line: str) -> None:
    """A progress line of the boosting baseline(s) ``name``, on stderr (stdout holds evaluate's JSON)."""
    print(f"baseline {name}: {line}", file=sys.stderr, flush=True)


def _filled_columns(reader) -> str:
    """What the boosting model sees for a missing number (the shards keep only the filled value)."""
    stats = reader.manifest.get("stats", {})
    names = reader.input_names().get("numbers", [])
    fill = "sample mean" if reader.encoding.fill == "mean" else "value 0"
    missing = [n for n in names if (stats.get(n) or stats.get(n.removesuffix(".days")) or {}).get("missing")]
    marked = set(reader.encoding.indicators)
    unmarked = [n for n in missing if n not in marked]
    if not missing:
        return "no numbers column had missing values"
    said = [f"missing values are NaN for the boosting model (the split's missing-value indicators): "
            f"{', '.join(n for n in missing if n in marked)}"] if len(unmarked) < len(missing) else []
    if unmarked:
        said.append(f"the split marked no missingness for these (missing only after its sample, or a datetime's "
                    f"days), so the boosting model sees the split's fill value ({fill}): {', '.join(unmarked)}")
    return "; ".join(said)
