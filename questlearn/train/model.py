"""A small, sensible model for tabular quest logs.

An MLP over two inputs, the blocks of the model-ready shards:

* ``numbers``: a ``Normalization`` set from the manifest's streamed mean
  and variance (a 100 GB log needs no extra pass to adapt it);
* ``codes``: each category code column is one-hot encoded when it takes at
  most :data:`ONE_HOT_MAX_CODES` codes (a vocabulary of up to 16 values
  with its missing and out-of-vocabulary codes, a datetime's hour, weekday
  and month), else embedded in :func:`embedding_size` dimensions (fast.ai's
  rule ``1.6 * n ** 0.56``, capped at 50 as PyTorch Tabular caps it). The
  one-hot columns enter the network as 0 and 1, not standardised.

Softmax over the manifest's classes, sparse categorical cross-entropy,
accuracy and ROC AUC; or one linear output for regression.
"""

from __future__ import annotations

from ..errors import OptionError, SchemaError
from ..quiet import keras

ONE_HOT_MAX_CODES = 32
EMBEDDING_MAX_SIZE = 50


def embedding_size(codes: int) -> int:
    """Dimensions of the embedding of a column of ``codes`` codes: ``min(50, round(1.6 * codes ** 0.56))``."""
    return int(min(EMBEDDING_MAX_SIZE, max(2, round(1.6 * codes ** 0.56))))


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


def build_model(mean, variance, num_classes: int, hidden=(64, 32), dropout: float = 0.1,
                learning_rate: float = 1e-3, task: str = "classification", target_mean: float = 0.0,
                target_std: float = 1.0, extra_metrics=(), code_counts=()) -> keras.Model:
    """Build and compile the MLP.

    Parameters
    ----------
    mean, variance : array-like
        Per numbers column, e.g. ``QuestSequence.feature_moments()``.
    code_counts : sequence of int
        Codes of each codes column, e.g. ``QuestSequence.code_counts()``.
    num_classes : int
        Number of label classes (from the manifest).
    hidden : sequence of int
        Units of the hidden ``Dense`` layers.
    dropout : float
        Dropout after each hidden layer.
    learning_rate : float
        Adam learning rate.
    task : str
        ``"classification"`` (softmax over ``num_classes``) or ``"regression"``
        (one linear output; ``num_classes`` is ignored).
    target_mean, target_std : float
        Regression: the training target's moments (from the manifest). The
        network predicts a standardised value that a ``Rescaling`` layer
        turns back into the target's units, so training starts at the mean.
    extra_metrics : sequence of keras.metrics.Metric
        Compiled after the standard ones (e.g. :class:`RowsSeen`).

    Returns
    -------
    keras.Model
        Classification: compiled with sparse categorical cross-entropy,
        ``accuracy`` and ``auc``. Regression: mean squared error, ``mae``
        and ``rmse``. Metrics are weighted: rows of sample weight 0 (the
        padding of equal shards) count in none.
    """
    if task == "regression":
        return _build_regressor(mean, variance, code_counts, hidden, dropout, learning_rate, target_mean, target_std,
                                extra_metrics)
    if num_classes < 2:
        raise SchemaError(f"a classifier needs at least 2 classes, the manifest has {num_classes}: "
                          "the label column holds one value in the training rows")
    inputs, x = _hidden_layers(mean, variance, code_counts, hidden, dropout)
    outputs = keras.layers.Dense(num_classes, activation="softmax", name="class_probabilities")(x)
    model = keras.Model(inputs, outputs, name="quest_mlp")
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss=keras.losses.SparseCategoricalCrossentropy(),
        # weighted: rows with sample weight 0 (padding of equal shards) count in no metric; the same without weights
        weighted_metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy"), SparseAUC(num_classes), *extra_metrics],
    )
    return model


def _hidden_layers(mean, variance, code_counts, hidden, dropout):
    if not 0.0 <= dropout < 1.0:
        raise OptionError(f"dropout must be in [0, 1), got {dropout}")
    inputs, parts = {}, []
    if len(mean):
        inputs["numbers"] = keras.Input(shape=(len(mean),), name="numbers")
        parts.append(keras.layers.Normalization(mean=mean, variance=variance, name="normalize_from_manifest")(inputs["numbers"]))
    if len(code_counts):
        inputs["codes"] = codes = keras.Input(shape=(len(code_counts),), dtype="int32", name="codes")
        for position, count in enumerate(code_counts):
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


def _build_regressor(mean, variance, code_counts, hidden, dropout, learning_rate, target_mean, target_std,
                     extra_metrics=()) -> keras.Model:
    inputs, x = _hidden_layers(mean, variance, code_counts, hidden, dropout)
    standardised = keras.layers.Dense(1, name="standardised_target")(x)
    scale = float(target_std) if target_std and target_std > 0 else 1.0
    outputs = keras.layers.Rescaling(scale=scale, offset=float(target_mean), name="prediction")(standardised)
    model = keras.Model(inputs, outputs, name="quest_mlp_regressor")
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss=keras.losses.MeanSquaredError(),
        weighted_metrics=[keras.metrics.MeanAbsoluteError(name="mae"), keras.metrics.RootMeanSquaredError(name="rmse"),
                          *extra_metrics],
    )
    return model
