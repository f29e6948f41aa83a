"""A boosting yardstick for ``questlearn evaluate --baseline gbdt``.

scikit-learn's ``HistGradientBoostingClassifier`` (or ``Regressor``) with
its default settings (``early_stopping="auto"``: on above 10,000 rows, on
a tenth of the *training sample* held out; ``random_state`` is the seed, so
a run repeats) is trained on a bounded random sample of the split's
training shards and scored on the rows ``evaluate`` scores (the test
subset when the split has one, else validate: the network's rows), so the network's metrics have a strong tabular model beside them.

The sample
    ``min(max_rows, max_bytes // (4 * columns))`` rows (features held as
    float32; scikit-learn copies them once more as float64 and bins them),
    drawn uniformly at random without replacement across all training
    shards: how many rows each shard gives is one multivariate
    hypergeometric draw over the shards' row counts, which rows a seeded
    choice inside the shard; they are taken from the memory-mapped
    ``numbers.npy``, ``codes.npy`` and ``labels.npy`` one shard at a time,
    so memory follows the sample, never the split.

The columns
    The model's inputs, numbers then codes. Code 0 (missing) becomes NaN,
    which the boosting model handles natively. Code columns with at most
    255 codes (HistGradientBoosting's native limit) are categorical
    features; larger ones enter as ordinal integers (their codes order
    the hash buckets first, then the vocabulary most frequent first).
    A numbers column with a missing-value indicator (``name.missing``, for
    columns missing in the split's sample) is NaN where it marks the value
    missing, and the indicator itself is left out; a column missing only
    after the sample keeps the split's fill value (the report names both).
"""

from __future__ import annotations

import math
import os
import sys
import time
from dataclasses import dataclass

import numpy as np

from ..data._batches import _open_map, check_code_range
from ..errors import InputFormatError, IntegrityError, MissingPackageError, OptionError
from ..manifest._files import resolve_inside

DEFAULT_ROWS = 200_000
DEFAULT_BYTES = 512 * 2 ** 20
NATIVE_CATEGORIES = 255  # HistGradientBoosting's max_bins: categories 0..254
EXTRA = "pip install 'questlearn[baseline]'"


def require_sklearn() -> str:
    """scikit-learn's version; a one-line ``MissingPackageError`` naming the extra when it is not installed."""
    try:
        import sklearn
    except ImportError:
        raise MissingPackageError(f"--baseline gbdt needs scikit-learn: {EXTRA}") from None
    return sklearn.__version__


@dataclass
class Sample:
    """Rows drawn from the training shards: ``x`` (float32, numbers then codes, code 0 as NaN) and ``labels``."""

    x: np.ndarray
    labels: np.ndarray
    cap: int
    capped_by: str
    available: int

    @property
    def capped(self) -> bool:
        """Whether the cap left training rows out (else every row was drawn)."""
        return self.available > self.cap

    def describe(self) -> str:
        """How many rows were drawn, and whether the cap applied (it did only when rows were left out)."""
        if self.capped:
            return f"{len(self.labels)} of {self.available} training rows drawn (cap {self.cap} rows, set by {self.capped_by})"
        return f"all {self.available} training rows drawn (fewer than the cap of {self.cap} rows: it did not apply)"


def boosting_threads() -> tuple[int, str]:
    """The OpenMP threads the boosting model may use, and why that many.

    HistGradientBoosting runs many short OpenMP loops, and OpenMP threads
    spin while they wait for each other; on cores other processes keep busy,
    every loop waits for its slowest thread, so more threads than idle cores
    makes the fit many times slower, not faster. So: ``OMP_NUM_THREADS`` when
    the user set it; else the cores this process may run on
    (``os.sched_getaffinity``: a container's or ``taskset``'s share, not the
    machine's), less those the last minute's load average kept busy (plus
    one: this process itself), at least one.
    """
    chosen = os.environ.get("OMP_NUM_THREADS", "").split(",")[0].strip()
    if chosen.isdigit() and int(chosen) > 0:
        return int(chosen), "OMP_NUM_THREADS"
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    try:
        busy = os.getloadavg()[0]
    except (AttributeError, OSError):  # no load average on this system
        return cores, f"the {cores} cores this process may use"
    idle = (os.cpu_count() or cores) - math.floor(busy + 0.5) + 1
    threads = max(1, min(cores, idle))
    if threads < cores:
        return threads, f"of the {cores} cores this process may use, the load average {busy:.1f} leaves {threads} idle"
    return threads, f"the {cores} cores this process may use"


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
        raise OptionError("--baseline gbdt reads the training rows from the .npy shards, and this split has none "
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
    """The boosting model trained on a :class:`Sample`; :meth:`outputs` scores a batch like the network's outputs.

    Parameters
    ----------
    reader : questlearn.data._batches.ShardReader
        The reader of the subset ``evaluate`` scores the network on (test or validate).
    max_rows, max_bytes, seed : int
        See :func:`sample_training_rows`.
    """

    def __init__(self, reader, max_rows: int = DEFAULT_ROWS, max_bytes: int = DEFAULT_BYTES, seed: int = 0):
        version = require_sklearn()
        from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

        _say("drawing a random sample of the training shards ...")
        began = time.perf_counter()
        self.sample = sample_training_rows(reader, max_rows, max_bytes, seed)
        self.sample_seconds = time.perf_counter() - began
        self.regression = reader.task == "regression"
        self.num_classes = len(reader.classes)
        names = reader.input_names()
        self.number_names, self.code_names = names.get("numbers", []), names.get("codes", [])
        pairs = [(n, c) for n, c in zip(self.code_names, reader.code_counts()) if not _indicator_of(n, self.number_names)]
        code_names, counts = [n for n, _ in pairs], [c for _, c in pairs]
        self.categorical = [n for n, c in zip(code_names, counts) if c <= NATIVE_CATEGORIES]
        self.ordinal = [n for n, c in zip(code_names, counts) if c > NATIVE_CATEGORIES]
        first_code = len(names.get("numbers", []))
        mask = np.zeros(self.sample.x.shape[1], bool)
        mask[[first_code + i for i, c in enumerate(counts) if c <= NATIVE_CATEGORIES]] = True
        if not self.regression and len(np.unique(self.sample.labels)) < 2:
            raise InputFormatError(f"the {len(self.sample.labels)} training rows drawn for the boosting baseline hold only "
                                   f"class {reader.classes[int(self.sample.labels[0])]!r}: it needs two classes (raise "
                                   "--baseline-rows, or check the split's train subset)")
        kind = HistGradientBoostingRegressor if self.regression else HistGradientBoostingClassifier
        self.model = kind(categorical_features=mask if mask.any() else None, random_state=seed)
        self.description = f"{kind.__name__} (scikit-learn {version}; default settings, early_stopping='auto', random_state={seed})"
        self.threads, why = boosting_threads()
        _say(self.sample.describe())
        _say(f"fitting {kind.__name__} on {len(self.sample.labels)} rows of {self.sample.x.shape[1]} columns with "
             f"{self.threads} thread(s) ({why}) ...")
        began = time.perf_counter()
        with self._limited_threads():
            self.model.fit(self.sample.x, self.sample.labels)
        self.seconds = time.perf_counter() - began
        _say(f"fitted in {self.seconds:.1f} s ({int(self.model.n_iter_)} boosting iterations)")
        self.missing_numbers = _filled_columns(reader)

    def outputs(self, x: dict) -> np.ndarray:
        """Predictions for a batch ``x`` (``{"numbers", "codes"}``): probabilities of every class, or targets."""
        rows = len(next(iter(x.values())))
        features = boosting_features(x.get("numbers", np.empty((rows, 0), np.float32)),
                                     x.get("codes", np.empty((rows, 0), np.int32)), self.number_names, self.code_names)
        with self._limited_threads():
            if self.regression:
                return self.model.predict(features).astype(np.float32)
            probabilities = np.zeros((len(features), self.num_classes), np.float32)
            probabilities[:, self.model.classes_.astype(np.intp)] = self.model.predict_proba(features)
        return probabilities

    def _limited_threads(self):
        """OpenMP (scikit-learn's threads) limited to :attr:`threads` while the boosting model runs."""
        from threadpoolctl import threadpool_limits

        return threadpool_limits(limits=self.threads, user_api="openmp")

    def ordinal_note(self) -> str | None:
        """Why some code columns are not categorical features (``None`` when all are)."""
        if not self.ordinal:
            return None
        return (f"{', '.join(self.ordinal)}: more than {NATIVE_CATEGORIES} codes (HistGradientBoosting's categorical "
                "limit), so they enter as ordinal integers (hash buckets, then the vocabulary most frequent first)")

    def report(self, scored: dict, network: dict) -> dict:
        """The ``baseline_gbdt`` entry: ``scored`` (its ``_Tally`` result), the sample and the gap to ``network``."""
        keys = ("mae", "rmse") if self.regression else ("accuracy", "auc", "auc_over", "auc_max_error", "confusion_matrix")
        entry = {"model": self.description, **{key: scored[key] for key in keys}, "rows": scored["rows"],
                 "training_rows": len(self.sample.labels), "training_rows_available": self.sample.available,
                 "sample_cap": self.sample.cap, "sample_capped": self.sample.capped,
                 "sample_capped_by": self.sample.capped_by if self.sample.capped else None,
                 "sample": "uniform at random without replacement over the training shards (memory-mapped)",
                 "seconds": self.seconds, "sample_seconds": self.sample_seconds,
                 "iterations": int(self.model.n_iter_), "threads": self.threads,
                 "early_stopping": bool(getattr(self.model, "do_early_stopping_", False)),
                 "categorical_features": self.categorical,
                 "ordinal_features": self.ordinal,
                 "ordinal_note": self.ordinal_note(),
                 "missing_numbers": self.missing_numbers}
        entry["gap"] = gap(network, scored, self.regression)
        return entry


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


def _say(line: str) -> None:
    """A progress line of the boosting baseline, on stderr (stdout holds evaluate's JSON)."""
    print(f"baseline gbdt: {line}", file=sys.stderr, flush=True)


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
