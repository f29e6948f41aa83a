"""The network for tabular quest logs, in two presets (:data:`MODELS`).

An MLP over two inputs, the blocks of the model-ready shards:

* ``numbers``: each first bounded to the range the split saw (below), then
  a ``Normalization`` set from the manifest's streamed mean
  and variance (a 100 GB log needs no extra pass to adapt it); in the
  ``"default"`` preset each number also enters through a piecewise-linear
  embedding over its sample quantiles (recorded in the manifest), which
  lets the network bend sharply where the data does; given
  ``day_columns`` (opt-in: ``train`` does not pass them), a datetime's
  elapsed days (``t.days``) also enter through an embedding of the day
  they fall in (bins a day wide, wider past :data:`DAY_BINS_MAX` days, see
  :func:`day_edges`), so the network resolves days where 48 quantile bins
  over a year are a week wide;
* ``codes``: each category code column is one-hot encoded when it takes at
  most :data:`ONE_HOT_MAX_CODES` codes (a vocabulary of up to 16 values
  with its missing and out-of-vocabulary codes, a datetime's hour, weekday
  and month), else embedded in :func:`embedding_size` dimensions (fast.ai's
  rule ``1.6 * n ** 0.56``, capped at 50 as PyTorch Tabular caps it). The
  one-hot columns enter the network as 0 and 1, not standardised. A codes
  column in ``left_out_codes`` does not enter at all (``train`` leaves out
  the weekday of a monthly series: :mod:`questlearn.train._calendar`).

The range of a number is the manifest's ``min`` and ``max`` of its column
over every row of the split (widened to take in its fill value): exact,
and known without an extra pass over the data, where sample quantiles
would miss the rarest values and cut rows that training saw. A value
beyond the range (a sensor glitch, a unit error, a sentinel like 999999)
scores like the nearest value seen, instead of extrapolating the network
linearly; a value inside it is unchanged. The bounds are constant
``maximum``/``minimum`` operations of the model, so ``model.keras``,
``inference.keras`` and the SavedModel all apply them. A column whose
manifest records no range (a split made before it recorded one) is not
bounded.

Softmax over the manifest's classes, sparse categorical cross-entropy,
accuracy and ROC AUC; or one linear output for regression. ``"default"``
trains with AdamW (weight decay) under a warm-up then cosine learning-rate
schedule; ``"small"`` is the plain 64-32 MLP with Adam, the cheapest on CPU.
"""

from __future__ import annotations

import numpy as np

from ..errors import OptionError, SchemaError
from ..quiet import keras
from ._embedding import EMBEDDING_MAX_SIZE, ONE_HOT_MAX_CODES, embedding_size  # noqa: F401 (imported from here too)


@keras.saving.register_keras_serializable(package="questlearn")
class SparseAUC(keras.metrics.AUC):
    """ROC AUC for integer labels and softmax outputs.

    Two classes: the AUC of the positive class's probability. More classes:
    the mean one-vs-rest AUC.
    """

    def __init__(self, num_classes: int = 2, name: str = "auc", **kwargs):
        kwargs.pop("multi_label", None)
        kwargs.pop("num_labels", None)
        self.num_classes = int(num_classes)
        multi = self.num_classes > 2
        super().__init__(name=name, multi_label=multi, num_labels=self.num_classes if multi else None, **kwargs)

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_true = keras.ops.reshape(keras.ops.cast(y_true, "int32"), (-1,))
        if self.num_classes == 2:
            return super().update_state(y_true, y_pred[:, 1], sample_weight)
        return super().update_state(keras.ops.one_hot(y_true, self.num_classes), y_pred, sample_weight)

    def get_config(self):
        config = super().get_config()
        config["num_classes"] = self.num_classes
        return config


@keras.saving.register_keras_serializable(package="questlearn")
class RowsSeen(keras.metrics.Sum):
    """Rows that went through the model: the sum of sample weights (rows with
    weight 0, such as the padding of equal shards, do not count). Under a
    data-parallel distribution the batch is global, so this is the global count."""

    def __init__(self, name: str = "rows_seen", dtype="int32", **kwargs):
        super().__init__(name=name, dtype=dtype, **kwargs)  # int32: exact to 2**31 rows; float32 would round past 2**24

    def update_state(self, y_true, y_pred, sample_weight=None):
        ones = keras.ops.ones((keras.ops.shape(y_pred)[0],), dtype=self.dtype)
        return super().update_state(ones if sample_weight is None else keras.ops.cast(sample_weight, self.dtype))


MODELS = {
    # the plain MLP questlearn started with: the cheapest on CPU
    "small": {"hidden": (64, 32), "dropout": 0.1, "numeric_embedding": 0, "weight_decay": 0.0, "schedule": False},
    # numbers also enter through piecewise-linear embeddings of their sample quantiles (Gorishniy et al. 2022),
    # a wider network, AdamW with weight decay, and a warm-up then cosine learning-rate schedule
    "default": {"hidden": (256, 256), "dropout": 0.1, "numeric_embedding": 8, "weight_decay": 1e-4, "schedule": True},
}
DAY_BINS_MAX = 512  # bins of a datetime's elapsed-days embedding: one a day over 512 days, wider over a longer range
WARMUP_SHARE = 0.05  # of the planned steps, at most WARMUP_MAX_STEPS
WARMUP_MAX_STEPS = 1000


def build_model(mean, variance, num_classes: int, *, code_counts, hidden=None, dropout: float | None = None,
                learning_rate: float = 1e-3, task: str = "classification", target_mean: float = 0.0,
                target_std: float = 1.0, extra_metrics=(), model: str = "default",
                quantiles=None, total_steps: int | None = None, bounds=None, day_columns=(),
                left_out_codes=()) -> keras.Model:
    """Build and compile the network.

    Parameters
    ----------
    mean, variance : array-like
        Per numbers column, e.g. ``QuestSequence.feature_moments()``.
    num_classes : int
        Number of label classes (from the manifest).
    hidden : sequence of int, optional
        Units of the hidden ``Dense`` layers (default: the preset's).
    dropout : float, optional
        Dropout after each hidden layer (default: the preset's).
    learning_rate : float
        Peak learning rate (Adam for ``"small"``, AdamW for ``"default"``).
    task : str
        ``"classification"`` (softmax over ``num_classes``) or ``"regression"``
        (one linear output; ``num_classes`` is ignored).
    target_mean, target_std : float
        Regression: the training target's moments (from the manifest). The
        network predicts a standardised value that a ``Rescaling`` layer
        turns back into the target's units, so training starts at the mean.
    extra_metrics : sequence of keras.metrics.Metric
        Compiled after the standard ones (e.g. :class:`RowsSeen`).
    code_counts : sequence of int
        Required: codes of each codes column, ``QuestSequence.code_counts()``
        (empty for a split without categories or datetimes). A model built
        without the data's code columns would take its codes as numbers.
    model : str
        A preset of :data:`MODELS`: ``"default"`` or ``"small"``.
    quantiles : list of lists, optional
        Per numbers column, its sample quantiles (``QuestSequence.feature_quantiles()``):
        the bin edges of the piecewise-linear embedding. Without them the
        numbers enter normalised only.
    total_steps : int, optional
        Optimizer steps planned (epochs x batches): the length of the
        schedule (``"default"``); without it the rate stays constant.
    bounds : (array-like, array-like), optional
        ``(lower, upper)`` per numbers column, its range over the split
        (``QuestSequence.feature_bounds()``): each number is clipped to it
        before it is normalised and embedded; NaN leaves a side of a column
        unbounded. Without them the numbers enter as they are.
    day_columns : sequence of int
        Positions in the numbers block of the columns that hold a datetime's
        elapsed days (``QuestSequence.day_columns()``). With an embedding
        (``"default"`` and ``quantiles``), each also enters through an
        embedding of its day, in bins a day wide over its range (:func:`day_edges`).
        Opt-in (empty by default, and ``train`` passes none): on the dated
        tables of ``benchmarks/bench_quality.py`` it helps where the label
        moves from day to day (hourly weather) and loses where it is smooth
        in time (``benchmarks/results/datetime_features.json``).
    left_out_codes : sequence of int
        Positions in the codes block of columns the network does not take
        (``train`` leaves out the weekday of a monthly series, see
        :mod:`questlearn.train._calendar`): the ``codes`` input still holds
        them, so the model's inputs are the split's.

    Returns
    -------
    keras.Model
        Classification: compiled with sparse categorical cross-entropy,
        ``accuracy`` and ``auc``. Regression: mean squared error, ``mae``
        and ``rmse``. Metrics are weighted: rows of sample weight 0 (the
        padding of equal shards) count in none.
    """
    if model not in MODELS:
        raise OptionError(f"model must be one of {sorted(MODELS)}, got {model!r}")
    preset = MODELS[model]
    hidden = preset["hidden"] if hidden is None else tuple(hidden)
    dropout = preset["dropout"] if dropout is None else dropout
    embedding = preset["numeric_embedding"] if quantiles is not None else 0
    optimizer = _optimizer(preset, learning_rate, total_steps)
    if task == "regression":
        inputs, x = _hidden_layers(mean, variance, code_counts, hidden, dropout, quantiles, embedding, bounds, day_columns,
                                   left_out_codes)
        standardised = keras.layers.Dense(1, name="standardised_target")(x)
        scale = float(target_std) if target_std and target_std > 0 else 1.0
        outputs = keras.layers.Rescaling(scale=scale, offset=float(target_mean), name="prediction")(standardised)
        network = keras.Model(inputs, outputs, name="quest_mlp_regressor")
        network.compile(optimizer=optimizer, loss=keras.losses.MeanSquaredError(),
                        weighted_metrics=[keras.metrics.MeanAbsoluteError(name="mae"),
                                          keras.metrics.RootMeanSquaredError(name="rmse"), *extra_metrics])
        return _with_built_optimizer(network)
    if num_classes < 2:
        raise SchemaError(f"a classifier needs at least 2 classes, the manifest has {num_classes}: "
                          "the label column holds one value in the training rows")
    inputs, x = _hidden_layers(mean, variance, code_counts, hidden, dropout, quantiles, embedding, bounds, day_columns,
                               left_out_codes)
    outputs = keras.layers.Dense(num_classes, activation="softmax", name="class_probabilities")(x)
    network = keras.Model(inputs, outputs, name="quest_mlp")
    network.compile(
        optimizer=optimizer,
        loss=keras.losses.SparseCategoricalCrossentropy(),
        # weighted: rows with sample weight 0 (padding of equal shards) count in no metric; the same without weights
        weighted_metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy"), SparseAUC(num_classes), *extra_metrics],
    )
    return _with_built_optimizer(network)


def _with_built_optimizer(network: keras.Model) -> keras.Model:
    """``network`` with its optimizer's variables created now, not inside the first traced training step.

    On TensorFlow, a ``tf.function`` that creates variables in its first trace is traced a second
    time before its next call: a whole second trace of the training step (a second or more per ``fit``
    of this network on 2 cores).
    """
    network.optimizer.build(network.trainable_variables)
    return network


def _optimizer(preset: dict, learning_rate: float, total_steps: int | None):
    """Adam (``"small"``), or AdamW with a linear warm-up and a cosine decay over the planned steps."""
    if not preset["schedule"]:
        return keras.optimizers.Adam(learning_rate)
    rate = learning_rate
    if total_steps:
        warmup = warmup_steps(total_steps)
        rate = keras.optimizers.schedules.CosineDecay(learning_rate / 10, decay_steps=max(int(total_steps) - warmup, 1),
                                                      alpha=0.01, warmup_target=learning_rate, warmup_steps=warmup)
    return keras.optimizers.AdamW(rate, weight_decay=preset["weight_decay"])


def warmup_steps(total_steps: int) -> int:
    """Steps of the ``"default"`` preset's linear warm-up in a plan of ``total_steps``: a
    :data:`WARMUP_SHARE` of them, at least 1, at most :data:`WARMUP_MAX_STEPS`."""
    return int(min(WARMUP_MAX_STEPS, max(1, WARMUP_SHARE * total_steps)))


def _piecewise_linear(numbers, quantiles, size: int):
    """Each number's piecewise-linear encoding over its quantile bins, then a per-column linear map and ReLU.

    Bin ``t`` of a column with edges ``b`` holds ``clip((x - b[t]) / (b[t+1] - b[t]), 0, 1)``: 0 below the
    bin, 1 above it, linear inside (Gorishniy et al. 2022, "On Embeddings for Numerical Features"). Built
    from Keras operations and ``EinsumDense``, so the saved model loads without questlearn.
    """
    columns = len(quantiles)
    edges = [np.unique(np.asarray(q, np.float64)) for q in quantiles]
    bins = max(max((len(e) - 1 for e in edges), default=1), 1)
    lower = np.zeros((columns, bins), np.float32)
    width = np.full((columns, bins), 1e30, np.float32)  # a bin a column does not have: always 0
    for column, e in enumerate(edges):
        for t in range(len(e) - 1):
            lower[column, t], width[column, t] = e[t], max(e[t + 1] - e[t], 1e-12)
    expanded = keras.layers.Reshape((columns, 1), name="numbers_as_columns")(numbers)
    encoded = keras.ops.clip((expanded - lower) / width, 0.0, 1.0)
    embedded = keras.layers.EinsumDense("bnt,ntd->bnd", output_shape=(columns, size), bias_axes="nd",
                                        activation="relu", name="numeric_embedding")(encoded)
    return keras.layers.Flatten(name="numeric_embedding_flat")(embedded)


def day_edges(lower: float, upper: float) -> np.ndarray:
    """Bin edges for a datetime's elapsed days between ``lower`` and ``upper``: one bin a day, from midnight.

    A range longer than :data:`DAY_BINS_MAX` days gets at most that many equal bins, each a whole number of days
    wide, so the embedding's size stays bounded (a year of hourly rows: 366 bins of a day; ten years:
    457 bins of 8 days).
    """
    start, end = np.floor(lower), np.ceil(upper)
    days = max(end - start, 1.0)
    width = max(1.0, np.ceil(days / DAY_BINS_MAX))
    return start + width * np.arange(int(np.ceil(days / width)) + 1)


def _day_embeddings(numbers, quantiles, size: int, bounds, day_columns) -> list:
    """Per datetime's elapsed-days column: the embedding of the day it falls in, among :func:`day_edges` bins.

    The bin is ``clip(floor((days - first edge) / width), 0, bins - 1)`` over the column's range in the split
    (its quantiles' ends where the manifest records no range), then an ``Embedding`` of ``size``: each day
    learns its own vector, which the quantile bins (a week wide over a year) cannot. Keras operations and a
    built-in layer only, so the saved model loads without questlearn.
    """
    unknown = np.full(len(quantiles), np.nan)
    lower, upper = (unknown, unknown) if bounds is None else (np.asarray(side, np.float64) for side in bounds)
    parts = []
    for column in sorted(set(int(c) for c in day_columns)):
        low = lower[column] if np.isfinite(lower[column]) else min(quantiles[column])
        high = upper[column] if np.isfinite(upper[column]) else max(quantiles[column])
        edges = day_edges(low, high)
        bins, start, width = len(edges) - 1, float(edges[0]), float(edges[1] - edges[0])
        day = keras.ops.clip(keras.ops.floor((numbers[:, column] - start) / width), 0.0, float(bins - 1))
        parts.append(keras.layers.Embedding(bins, size, name=f"days_embedding_{column}")(keras.ops.cast(day, "int32")))
    return parts


def describe_bounds(names, bounds) -> str:
    """One line: how many numbers columns the model bounds to their range in the split, and which it cannot."""
    if not len(names):
        return "questlearn: bounded numbers: none (no numbers columns)"
    lower, upper = (np.asarray(side, np.float64) for side in bounds)
    unbounded = [name for name, low, high in zip(names, lower, upper) if np.isnan(low) or np.isnan(high)]
    line = (f"questlearn: bounded numbers: {len(names) - len(unbounded)} of {len(names)} numbers column(s) are clipped "
            "to their min and max over the split's rows, so a value beyond scores like the nearest value seen")
    if unbounded:
        shown = ", ".join(unbounded[:6]) + (f", ... ({len(unbounded)} in all)" if len(unbounded) > 6 else "")
        line += (f"; not bounded, their range unknown (the split's manifest records no min/max for them: split "
                 f"again with this questlearn to bound them): {shown}")
    return line


def _bounded(numbers, bounds):
    """``minimum(maximum(numbers, lower), upper)`` per column, with the bounds as float32 constants.

    float32 rounding keeps order, so a value the shards hold (the float32 of a
    value within the float64 range) is never moved. A NaN bound is no bound
    (the largest float32); a NaN number stays NaN.
    """
    largest = np.finfo(np.float32).max
    lower, upper = (np.asarray(side, np.float64) for side in bounds)
    lower = np.where(np.isnan(lower), -largest, lower).astype(np.float32)
    upper = np.where(np.isnan(upper), largest, upper).astype(np.float32)
    return keras.ops.minimum(keras.ops.maximum(numbers, lower), upper)


def _hidden_layers(mean, variance, code_counts, hidden, dropout, quantiles=None, embedding: int = 0, bounds=None,
                   day_columns=(), left_out_codes=()):
    if not 0.0 <= dropout < 1.0:
        raise OptionError(f"dropout must be in [0, 1), got {dropout}")
    inputs, parts = {}, []
    if len(mean):
        inputs["numbers"] = keras.Input(shape=(len(mean),), name="numbers")
        numbers = inputs["numbers"] if bounds is None else _bounded(inputs["numbers"], bounds)
        parts.append(keras.layers.Normalization(mean=mean, variance=variance, name="normalize_from_manifest")(numbers))
        if embedding:
            parts.append(_piecewise_linear(numbers, quantiles, embedding))
            parts.extend(_day_embeddings(numbers, quantiles, embedding, bounds, day_columns))
    if len(code_counts):
        inputs["codes"] = codes = keras.Input(shape=(len(code_counts),), dtype="int32", name="codes")
        left_out = {int(position) for position in left_out_codes}
        for position, count in enumerate(code_counts):
            if position in left_out:
                continue
            column = codes[:, position]
            if count <= ONE_HOT_MAX_CODES:
                parts.append(keras.layers.CategoryEncoding(int(count), output_mode="one_hot",
                                                           name=f"one_hot_{position}")(column))
            else:
                parts.append(keras.layers.Embedding(int(count), embedding_size(count), name=f"embedding_{position}")(column))
    if not parts:
        raise SchemaError("the model has no inputs: the split has no feature columns")
    x = parts[0] if len(parts) == 1 else keras.layers.Concatenate(name="inputs")(parts)
    for units in hidden:
        x = keras.layers.Dense(units, activation="relu")(x)
        if dropout:
            x = keras.layers.Dropout(dropout)(x)
    return inputs, x
