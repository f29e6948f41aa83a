"""Measure a trained model on labelled rows: ``questlearn evaluate MODEL_DIR INPUT``.

``INPUT`` is a labelled source (read like ``questlearn predict`` reads it,
through ``inference.keras``) or a split directory (its held-out ``test``
subset when it has one, else its ``validate`` subset, or the one ``subset``
names; read from the shards through ``model.keras``). The validate subset
chose the best epoch, so its score is optimistic; the test subset's is not.
The report's ``source`` and ``subset`` say which was scored. Rows stream through in
blocks; loss, accuracy, MAE and RMSE are Keras's own metrics, updated
block by block, so they agree with ``model.evaluate`` on the same rows.

Classification: loss (cross-entropy), accuracy, ROC AUC, the majority
baseline (accuracy of always predicting the most frequent class of these
rows) and the confusion matrix (rows: true class, columns: predicted).
The ROC AUC is the exact one of the predicted probabilities (the
Mann–Whitney U statistic, ties counting one half; see ``_auc``), not
Keras's 200-threshold approximation that training reports: two classes,
the AUC of class 1's probability; more, the mean one-vs-rest AUC over the
classes present in the scored rows. ``auc_over`` says which (and
``auc_classes_absent`` names the classes left out; ``auc`` is null when
fewer than two classes are present). ``auc_max_error`` is 0 (exact) unless
the rows outgrew the exact buffer (16 million rows of a binary model), then
it is the computed bound of the histogram's error (2**-13 relative bins).
Regression: loss (MSE), MAE, RMSE and the predict-the-training-mean
baseline's MAE and RMSE.

``baseline="gbdt"`` (``--baseline gbdt``, a split directory only) adds
``baseline_gbdt``: scikit-learn's HistGradientBoosting trained on a bounded
random sample of the split's training shards and scored on the same
rows as the network (the same subset), with the gap to the network (see
``_baseline``). ``"lightgbm"`` and ``"catboost"`` add ``baseline_lightgbm``
and ``baseline_catboost`` the same way; several, comma-separated
(``"gbdt,lightgbm,catboost"``) or as a list, all train on one sample, the
same rows (see ``_boosters``; each library is its extra: ``baseline``
for scikit-learn, ``lightgbm``, ``catboost``, imported only then).

A split is evaluated only when it predicts what the model predicts (same
label, task and classes, in the same order) from the same encoded columns;
a damaged shard stops with the loader's message naming the file.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from ..errors import InputFormatError, OptionError, SchemaError
from ..io.csvscan import DEFAULT_BLOCK_SIZE
from ..data._shard_cache import holds_split, open_split
from ..manifest._files import SUBSETS
from ..schema._columns import label_strings
from ._auc import StreamingAUC

BASELINES = ("gbdt", "lightgbm", "catboost")


class _Tally:
    """Streaming metrics over ``(outputs, labels)`` blocks."""

    def __init__(self, spec: dict):
        from ..quiet import keras

        self.spec, self.rows = spec, 0
        self.regression = spec["task"] == "regression"
        if self.regression:
            self.metrics = {"loss": keras.metrics.MeanSquaredError(), "mae": keras.metrics.MeanAbsoluteError(),
                            "rmse": keras.metrics.RootMeanSquaredError()}
            self.mean = float(spec.get("label_mean") or 0.0)
            self.baseline_abs = self.baseline_sq = 0.0
        else:
            classes = len(spec["classes"])
            self.metrics = {"loss": keras.metrics.SparseCategoricalCrossentropy(),
                            "accuracy": keras.metrics.SparseCategoricalAccuracy()}
            self.confusion = np.zeros((classes, classes), np.int64)
            self.auc = StreamingAUC(classes)

    def update(self, outputs: np.ndarray, labels: np.ndarray) -> None:
        if not len(labels):
            return
        self.rows += len(labels)
        if self.regression:
            outputs = outputs.reshape(-1, 1)
            labels = labels.astype(np.float32).reshape(-1, 1)
            self.baseline_abs += float(np.abs(labels - self.mean).sum())
            self.baseline_sq += float(((labels - self.mean) ** 2).sum())
        else:
            np.add.at(self.confusion, (labels, outputs.argmax(axis=1)), 1)
            self.auc.update(outputs, labels)
        for metric in self.metrics.values():
            metric.update_state(labels, outputs)

    def result(self) -> dict:
        if not self.rows:
            raise InputFormatError("no rows to evaluate: the input holds no data rows")
        report = {name: float(metric.result()) for name, metric in self.metrics.items()}
        if not self.regression:
            counts = self.confusion.sum(axis=1)
            report.update(self._auc_report(counts))
        report["rows"] = self.rows
        if self.regression:
            report["baseline"] = {"predicts": "the training mean", "value": self.mean,
                                  "mae": self.baseline_abs / self.rows, "rmse": (self.baseline_sq / self.rows) ** 0.5}
        else:
            report["majority_baseline"] = float(counts.max() / counts.sum())
            report["majority_class"] = self.spec["classes"][int(counts.argmax())]
            report["classes"] = list(self.spec["classes"])
            report["confusion_matrix"] = self.confusion.tolist()
        return report

    def _auc_report(self, counts: np.ndarray) -> dict:
        """``auc`` over the classes with positive and negative rows, ``auc_over`` and ``auc_classes_absent``."""
        classes = list(self.spec["classes"])
        absent = [name for name, count in zip(classes, counts) if not count]
        present = [index for index, count in enumerate(counts) if 0 < count < self.rows]
        results = self.auc.result()
        if len(classes) == 2:
            used = [results[0]] if present else []
            over = f"the probability of class {classes[1]!r}"
        else:
            used = [results[index] for index in present]
            over = f"one-vs-rest over {len(present)} of {len(classes)} classes"
        if not used:
            over = f"undefined: the scored rows hold only class {classes[int(np.argmax(counts))]!r}"
        elif absent:
            over += "; absent from the scored rows: " + ", ".join(repr(name) for name in absent)
        return {"auc": float(np.mean([auc for auc, _ in used])) if used else None, "auc_over": over,
                "auc_classes_absent": absent,
                "auc_max_error": float(np.mean([error for _, error in used])) if used else 0.0}


def evaluate(model_dir, source, *, block_size: int = DEFAULT_BLOCK_SIZE, batch_size: int = 8192,
             progress: bool = False, baseline: str | list | None = None, baseline_rows: int = 200_000,
             baseline_bytes: int = 512 * 2 ** 20, baseline_seed: int = 0, subset: str | None = None) -> dict:
    """Metrics of the model in ``model_dir`` on the labelled rows of ``source``.

    Parameters
    ----------
    model_dir : str or Path
        A trained model directory.
    source : str or Path
        A labelled CSV source, or a split directory (or a split's URL in an object store, read through
        the shard cache: :mod:`questlearn.data._shard_cache`).
    block_size : int
        Bytes of input per step for a file source.
    batch_size : int
        Rows per model call for a split directory.
    progress : bool
        Show a progress bar.
    baseline : None, str or list of str
        Boosting models to train on one sample of the split's training shards
        and score on the same rows: ``"gbdt"`` (scikit-learn's
        HistGradientBoosting, the ``baseline`` extra), ``"lightgbm"``,
        ``"catboost"`` (their extras), several comma-separated or as a list
        (needs a split directory).
    baseline_rows, baseline_bytes : int
        Caps on that sample: rows, and bytes of float32 features; the smaller wins.
    baseline_seed : int
        Seeds the sample and the boosting model.
    subset : {None, "test", "validate"}
        The subset of a split directory to score; ``None``: its test subset
        when it has one, else validate.

    Returns
    -------
    dict
        See the module docstring; JSON-ready.
    """
    from tqdm import tqdm

    from ._input_rows import open_input
    from .predict import Predictor

    is_split = isinstance(source, (str, Path)) and holds_split(source)
    if subset not in (None, "test", "validate") or (subset is not None and not is_split):
        raise OptionError(f"subset must be 'test' or 'validate', and chooses among a split directory's subsets; got "
                          f"{subset!r} for {source}")
    names = _check_baseline(baseline, source, is_split) if baseline is not None else []
    if is_split:
        options = dict(names=names, max_rows=baseline_rows, max_bytes=baseline_bytes, seed=baseline_seed) if names else None
        return _evaluate_split(Path(model_dir), source, batch_size, progress, options, subset)
    predictor = Predictor(model_dir)
    spec = predictor.spec
    label = spec["label"]
    stream = open_input(source, spec["na_values"], block_size, spec.get("delimiter", ","))
    if label not in stream.names:
        raise SchemaError(f"the input {source} has no label column {label!r}, so there is nothing to evaluate against "
                          f"(use `questlearn predict` to score unlabelled rows)")
    tally = _Tally(spec)
    with tqdm(total=stream.total_bytes, unit="B", unit_scale=True, desc="evaluate", disable=not progress) as bar:
        for block in stream.blocks(predictor.column_types(stream.names)):
            labels = _label_values(block, label, spec)
            tally.update(predictor.raw_outputs(block.table), labels)
            bar.update(block.bytes_done - bar.n)
    for note in predictor.input_notes():  # unseen categories, missing and out-of-range numbers: never silent
        print(f"evaluate: {note}", file=sys.stderr)
    return {"source": str(source) if isinstance(source, (str, Path)) else [str(s) for s in source], **tally.result()}


def baseline_names(baseline) -> list:
    """The baselines named by ``baseline`` (``"gbdt,lightgbm"`` or a list), in order, each once; an unknown
    or empty one is refused."""
    parts = baseline.split(",") if isinstance(baseline, str) else list(baseline)
    names = [part.strip() if isinstance(part, str) else part for part in parts]
    unknown = [name for name in names if name not in BASELINES]
    if unknown or not names:
        raise OptionError(f"--baseline takes one or more of {', '.join(BASELINES)}, comma-separated "
                          f"(e.g. gbdt,lightgbm,catboost); got {baseline!r}")
    return list(dict.fromkeys(names))


def _check_baseline(baseline, source, is_split: bool) -> list:
    """The baselines to train; an unknown one, a source that is no split, or a missing library is refused
    before any work."""
    names = baseline_names(baseline)
    if not is_split:
        raise OptionError(f"--baseline {','.join(names)} trains on a split's training shards, and {source} is not a "
                          "split directory (no manifest.json): pass the split directory the model was trained on, "
                          "or leave out --baseline")
    from ._boosters import require

    for name in names:
        require(name)
    return names


def _label_values(block, label: str, spec: dict) -> np.ndarray:
    """Class indices (or float targets) of a block's labels; an unknown or empty one is located."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from ..io._rowchecks import check_numbers
    from ..split._prepare import float_values

    column = block.table[label]
    if spec["task"] == "regression":
        try:
            values = column.cast(pa.float64())
        except pa.ArrowInvalid as error:
            raise block.error(0, f"the label column {label!r} holds a value that is not a number: {error}") from None
        check_numbers(block.chunk, label, float_values(values), values)  # the split's rules for a numeric target
        codes = values
    else:
        if spec.get("label_numeric") and (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)):
            try:  # classes that are numbers are compared as numbers, as the split did: "1.0" is class "1"
                column = pc.cast(pc.utf8_trim_whitespace(column), pa.float64())
            except pa.ArrowInvalid as error:
                raise block.error(0, f"the label column {label!r} holds a value that is not a number, but the "
                                  f"model's classes are numbers: {error}") from None
        codes = pc.index_in(label_strings(column), value_set=pa.array(spec["classes"], pa.string()))
    bad = np.flatnonzero(codes.is_null().to_numpy(zero_copy_only=False))
    if len(bad):
        value = column[int(bad[0])].as_py()
        what = "is empty" if value is None else f"holds {value!r}, which is not one of the model's classes {spec['classes']}"
        raise block.error(int(bad[0]), f"the label column {label!r} {what}")
    return codes.to_numpy(zero_copy_only=False).astype(np.float32 if spec["task"] == "regression" else np.int32)


def _evaluate_split(model_dir: Path, split_dir, batch_size: int, progress: bool,
                    baseline: dict | None = None, subset: str | None = None) -> dict:
    """The test subset of a split (or validate: ``subset``, or the split has no test subset), through
    ``model.keras`` and the training loader; with ``baseline`` (the sample's options), the boosting model
    too, on the same batches."""
    from tqdm import tqdm

    from ..data.dataset import QuestSequence
    from ._model_files import TRAINED_MODEL, load_model_files

    spec, model = load_model_files(model_dir, TRAINED_MODEL)
    features = [f["name"] for f in spec["features"]]
    if subset is None:  # the held-out test subset when the split has one: validate chose the best epoch
        subset = "test" if "test" in open_split(split_dir, SUBSETS)[0]["subsets"] else "validate"
    data = QuestSequence(split_dir, subset, batch_size=batch_size, shuffle=False, features=features)
    _check_same_target(spec, data.reader, model_dir, split_dir)
    encoding, reader = data.reader.encoding, data.reader
    fill_values = {n: v for n, v in zip(encoding.numeric, encoding.fill_values) if n in spec["fill_values"]}
    if reader.features != features or data.feature_names != spec["columns"] or fill_values != spec["fill_values"] \
            or {n: encoding.vocabularies[n] for n in reader.categorical_features} != spec["categories"] \
            or {n: encoding.hash_buckets[n] for n in reader.categorical_features} != spec["hash_buckets"] \
            or {n: encoding.datetimes[n] for n in reader.datetime_features} != spec["datetimes"]:
        raise SchemaError(f"the split {split_dir} encodes other columns (features, categories or fill values) than "
                          f"the split the model in {model_dir} was trained on; evaluate it on that split, or on a "
                          "labelled source file (read through inference.keras)")
    boosters = _train_baselines(reader, **baseline) if baseline else []
    tally, boosting_tallies = _Tally(spec), [_Tally(spec) for _ in boosters]
    for index in tqdm(range(len(data)), desc="evaluate", unit="batch", disable=not progress):
        x, labels = _load_batch(data, index)
        tally.update(np.asarray(model.predict_on_batch(x), np.float32), labels)
        for boosting, boosting_tally in zip(boosters, boosting_tallies):
            boosting_tally.update(boosting.outputs(x), labels)
    report = {"source": f"{split_dir} ({subset} subset)", "subset": subset, **tally.result()}
    for boosting, boosting_tally in zip(boosters, boosting_tallies):
        report[f"baseline_{boosting.name}"] = boosting.report(boosting_tally.result(), report)
    return report


def _train_baselines(reader, names: list, max_rows: int, max_bytes: int, seed: int) -> list:
    """The boosting baselines, each trained on the same sample of the training shards; the sample, each fit
    and the notes are printed."""
    from ._baseline import BoostingBaseline, draw_sample

    sample = draw_sample(reader, names, max_rows, max_bytes, seed)  # prints the rows drawn
    boosters = []
    for name in names:
        boosting = BoostingBaseline(reader, sample, name, seed)  # prints the fit's start and end
        for note in (boosting.ordinal_note(), boosting.missing_numbers if name == names[0] else None):
            if note:
                print(f"baseline {name}: {note}", file=sys.stderr)
        boosters.append(boosting)
    return boosters


def _check_same_target(spec: dict, reader, model_dir: Path, split_dir: Path) -> None:
    """Refuse a split whose label, task or classes (in order: class i is output i) are not the model's."""
    def target(label, task, classes):
        return f"{label!r} ({task}" + (f", classes {classes})" if task == "classification" else ")")

    model = (spec["label"], spec["task"], list(spec["classes"]))
    split = (reader.manifest["schema"]["label"], reader.task, list(reader.classes))
    if split != model:
        raise SchemaError(f"the split {split_dir} has the label {target(*split)}, but the model in {model_dir} was "
                          f"trained on the label {target(*model)}; evaluate the model on the split it was trained on, "
                          "or on a split with the same label, task and classes")


def _load_batch(data, index: int):
    """``data[index]``; a shard the loader refuses (damaged, changed since the split) is the user's to fix, so
    its message is raised as the named error (an ``IntegrityError``), and any other failure keeps its traceback."""
    from ..data._supervision import batch_refusals_as_user_errors

    with batch_refusals_as_user_errors():
        return data[index]
