"""The boosting libraries behind ``questlearn evaluate --baseline``: one small adapter each.

Every adapter fits its library's model, with the library's default
settings and a fixed seed, on the features of a ``_baseline.Sample``
(float32, numbers then code columns, code 0 as NaN) and scores a batch as
the network's outputs: the probability of every class, or the target.

``gbdt``
    scikit-learn's HistGradientBoosting (the ``baseline`` extra). Code
    columns of at most 255 codes are categorical features, larger ones
    ordinal integers (its categorical limit). Its own ``early_stopping=
    "auto"``: on above 10,000 rows, on a tenth of the sample held out,
    after 10 rounds without a better loss.
``lightgbm``
    LightGBM's ``lgb.train`` (the ``lightgbm`` extra): every code column is
    a ``categorical_feature`` at any cardinality (the codes are
    non-negative integers far below 2**31; NaN, code 0, is LightGBM's
    missing category), with LightGBM's defaults (100 rounds,
    ``max_cat_to_onehot=4``, ``max_cat_threshold=32``).
``catboost``
    CatBoost (the ``catboost`` extra): every code column is a
    ``cat_features`` column of integer codes (CatBoost hashes them as it
    does strings; code 0, missing, is a category of its own), with
    CatBoost's defaults (1,000 iterations, its automatic learning rate).

LightGBM and CatBoost stop early as gbdt does: on samples of more than
10,000 rows, a seeded tenth of the sample (stratified by class) is held out
and the fit stops after 10 rounds without a better loss there.
"""

from __future__ import annotations

import math
import os

import numpy as np

from ..errors import MissingPackageError

EARLY_STOPPING_ROWS = 10_000  # scikit-learn's early_stopping="auto" threshold
HELD_OUT = 0.1  # scikit-learn's validation_fraction
PATIENCE = 10  # scikit-learn's n_iter_no_change
PACKAGES = {"gbdt": ("sklearn", "scikit-learn", "baseline"), "lightgbm": ("lightgbm", "LightGBM", "lightgbm"),
            "catboost": ("catboost", "CatBoost", "catboost")}


def require(name: str) -> str:
    """The version of the library behind baseline ``name``; a one-line ``MissingPackageError`` naming the
    extra to install when it is not installed."""
    module, package, extra = PACKAGES[name]
    try:
        imported = __import__(module)
    except ImportError:
        raise MissingPackageError(f"--baseline {name} needs {package}: pip install 'questlearn[{extra}]'") from None
    return imported.__version__


def boosting_threads() -> tuple[int, str]:
    """The threads a boosting model may use (each library is told: OpenMP's limit, ``num_threads``,
    ``thread_count``), and why that many.

    Boosting runs many short parallel loops (HistGradientBoosting's in OpenMP), and OpenMP threads
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


def held_out(labels: np.ndarray, seed: int, regression: bool) -> np.ndarray | None:
    """Positions of the sample held out for early stopping (a seeded tenth, stratified by class), or None
    at 10,000 rows or fewer (no early stopping, as scikit-learn's ``early_stopping="auto"``)."""
    if len(labels) <= EARLY_STOPPING_ROWS:
        return None
    rng = np.random.default_rng(seed)
    groups = [np.arange(len(labels))] if regression else [np.flatnonzero(labels == c) for c in np.unique(labels)]
    return np.sort(np.concatenate([rng.permutation(g)[:round(len(g) * HELD_OUT)] for g in groups]))


def _parts(x: np.ndarray, labels: np.ndarray, held: np.ndarray | None):
    """(x_fit, labels_fit, x_held, labels_held); the held parts None without early stopping."""
    if held is None:
        return x, labels, None, None
    kept = np.ones(len(labels), bool)
    kept[held] = False
    return x[kept], labels[kept], x[held], labels[held]


class Booster:
    """One library's model. Subclasses set ``name``, ``max_categories`` (None: any) and implement
    :meth:`fit` and :meth:`outputs`; after ``fit``, ``iterations`` and ``early_stopping`` say what it did."""

    name = ""
    max_categories: int | None = None

    def __init__(self, regression: bool, num_classes: int, seed: int, threads: int):
        self.regression, self.num_classes, self.seed, self.threads = regression, num_classes, seed, threads
        self.version = require(self.name)
        self.iterations, self.early_stopping = 0, False
        self.title = self._title()

    def _title(self) -> str:
        """The model's name in progress lines."""
        return self.name

    def _full(self, probabilities: np.ndarray, classes) -> np.ndarray:
        """Probabilities of the classes the model saw, spread over all ``num_classes`` columns."""
        full = np.zeros((len(probabilities), self.num_classes), np.float32)
        full[:, np.asarray(classes).astype(np.intp)] = probabilities
        return full


class HistGradientBoosting(Booster):
    """scikit-learn's HistGradientBoostingClassifier / Regressor (OpenMP threads limited by threadpoolctl)."""

    name, max_categories = "gbdt", 255  # max_bins: categories 0..254

    def _title(self) -> str:
        return f"HistGradientBoosting{'Regressor' if self.regression else 'Classifier'}"

    def fit(self, x, labels, categorical: np.ndarray) -> None:
        from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

        kind = HistGradientBoostingRegressor if self.regression else HistGradientBoostingClassifier
        self.model = kind(categorical_features=categorical if categorical.any() else None, random_state=self.seed)
        self.description = (f"{kind.__name__} (scikit-learn {self.version}; default settings, early_stopping='auto', "
                            f"random_state={self.seed})")
        with self._limited_threads():
            self.model.fit(x, labels)
        self.iterations = int(self.model.n_iter_)
        self.early_stopping = bool(getattr(self.model, "do_early_stopping_", False))

    def outputs(self, features: np.ndarray) -> np.ndarray:
        with self._limited_threads():
            if self.regression:
                return self.model.predict(features).astype(np.float32)
            return self._full(self.model.predict_proba(features), self.model.classes_)

    def _limited_threads(self):
        from threadpoolctl import threadpool_limits

        return threadpool_limits(limits=self.threads, user_api="openmp")


class LightGBM(Booster):
    """LightGBM's native ``lgb.train``: regression, binary or multiclass objective, every code column categorical."""

    name = "lightgbm"

    def _title(self) -> str:
        return f"LightGBM ({self._objective()})"

    def _objective(self) -> str:
        return "regression" if self.regression else "binary" if self.num_classes == 2 else "multiclass"

    def fit(self, x, labels, categorical: np.ndarray) -> None:
        import lightgbm as lgb

        objective = self._objective()
        params = {"objective": objective, "seed": self.seed, "num_threads": self.threads, "verbosity": -1,
                  "deterministic": True}
        if objective == "multiclass":
            params["num_class"] = self.num_classes
        held = held_out(labels, self.seed, self.regression)
        x_fit, y_fit, x_held, y_held = _parts(x, labels, held)
        columns = [int(i) for i in np.flatnonzero(categorical)]
        data = lgb.Dataset(x_fit, y_fit.astype(np.float64), categorical_feature=columns or "auto", free_raw_data=False)
        options = {}
        if held is not None:
            options = {"valid_sets": [lgb.Dataset(x_held, y_held.astype(np.float64), reference=data)],
                       "callbacks": [lgb.early_stopping(PATIENCE, verbose=False)]}
        self.model = lgb.train(params, data, **options)
        self.early_stopping = held is not None
        self.iterations = int(self.model.best_iteration or self.model.current_iteration())
        self.description = (f"LightGBM {objective} ({'lightgbm ' + self.version}; default settings, every code column "
                            f"a categorical_feature, seed={self.seed})")

    def outputs(self, features: np.ndarray) -> np.ndarray:
        predicted = self.model.predict(features, num_iteration=self.iterations, num_threads=self.threads)
        if self.regression:
            return predicted.astype(np.float32)
        if self.num_classes == 2:
            return np.column_stack([1 - predicted, predicted]).astype(np.float32)
        return predicted.astype(np.float32)


CATBOOST_ITERATIONS = 1000  # CatBoost's own default, named so a test can fit fewer


class CatBoost(Booster):
    """CatBoostClassifier / Regressor with every code column in ``cat_features`` as integer codes."""

    name = "catboost"

    def _title(self) -> str:
        return f"CatBoost{'Regressor' if self.regression else 'Classifier'}"

    def fit(self, x, labels, categorical: np.ndarray) -> None:
        import catboost

        kind = catboost.CatBoostRegressor if self.regression else catboost.CatBoostClassifier
        options = {"loss_function": "MultiClass"} if not self.regression and self.num_classes > 2 else {}
        self.categorical = categorical
        self.model = kind(iterations=CATBOOST_ITERATIONS, random_seed=self.seed, thread_count=self.threads,
                          allow_writing_files=False, logging_level="Silent", **options)
        held = held_out(labels, self.seed, self.regression)
        x_fit, y_fit, x_held, y_held = _parts(x, labels, held)
        fit = {"eval_set": self._pool(x_held, y_held), "early_stopping_rounds": PATIENCE} if held is not None else {}
        self.model.fit(self._pool(x_fit, y_fit), **fit)
        self.early_stopping = held is not None
        self.iterations = int(self.model.tree_count_)
        self.description = (f"{kind.__name__} (catboost {self.version}; default settings, every code column in "
                            f"cat_features, random_seed={self.seed})")

    def _pool(self, x: np.ndarray, labels=None):
        """A CatBoost Pool: numbers as float32 (NaN missing), code columns as int64 codes (code 0: missing)."""
        import catboost
        import pandas as pd

        columns = {}
        for position in range(x.shape[1]):
            values = x[:, position]
            columns[f"f{position}"] = (np.nan_to_num(values, nan=0.0).astype(np.int64) if self.categorical[position]
                                       else values)
        return catboost.Pool(pd.DataFrame(columns), labels, cat_features=[int(i) for i in np.flatnonzero(self.categorical)])

    def outputs(self, features: np.ndarray) -> np.ndarray:
        if self.regression:
            return self.model.predict(self._pool(features), thread_count=self.threads).astype(np.float32)
        return self._full(self.model.predict_proba(self._pool(features), thread_count=self.threads), self.model.classes_)


BOOSTERS = {kind.name: kind for kind in (HistGradientBoosting, LightGBM, CatBoost)}
