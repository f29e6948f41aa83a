"""Save a trained model so it can be used without questlearn.

:func:`export_models` writes, into a model directory:

* ``model.keras`` — the trained network (the ``numbers`` and ``codes``
  blocks of the shards as inputs), compiled with built-in Keras objects
  only, so ``keras.saving.load_model`` works in a process that never
  imports questlearn;
* ``inference.keras`` — the same network behind the encoding the split
  did (``schema.encoding``, :mod:`questlearn.schema.encoding`), built from
  the manifest with built-in Keras layers and operations (no ``adapt``
  pass). One named input per source column, each of shape ``(rows, 1)``:

  - numeric: float32, NaN for missing (filled with the split's fill value);
  - categorical: string, ``""`` for missing; ``StringLookup`` gives the
    split's codes, out-of-vocabulary values hashed into the same buckets;
  - datetime: int64, the wall-clock seconds since 1970-01-01T00:00
    (:func:`questlearn.schema.datetimes.parse`; its ``MISSING_SECONDS``
    for missing), expanded into days, hour, weekday and month inside the
    model.

  :func:`questlearn.serve.predict.inference_inputs` turns a DataFrame of raw
  columns into exactly these inputs (``model.predict(inference_inputs(frame,
  model_dir))``);
* ``inference.json`` — what ``questlearn predict`` needs to read raw input:
  feature columns and kinds, id columns, label, classes, task, the
  missing-value tokens, and the encoding (fill values, vocabularies, hash
  buckets, datetime formats, the input block column names);
* ``saved_model/`` (:func:`export_saved_model`, when TensorFlow is
  present) — a TensorFlow SavedModel whose ``serving_default`` signature
  takes the raw columns by name as 1-D tensors: numbers as float32,
  categories and datetimes as strings (parsed in the graph with the
  split's datetime format). A column name TensorFlow does not take as a
  signature input (``class``, ``a b``, ``città``) is rewritten
  (:mod:`questlearn.serve._column_names`); ``inference.json``'s
  ``signature_keys`` maps every feature column to its input.

``inference.keras`` has string inputs, so it runs with the TensorFlow
backend (Keras's ``StringLookup`` is TensorFlow-based).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import warnings
from pathlib import Path

import numpy as np

from ..errors import MissingPackageError, OptionError, OutputFolderError
from ..quiet import import_tensorflow, keras
from ._column_names import signature_keys
from ._model_files import INFERENCE_MODEL, INFERENCE_SPEC, TRAINED_MODEL, load_model_files

SAVED_MODEL = "saved_model"
OOV_TOKEN = "\x00questlearn-out-of-vocabulary"
NO_VALUE_TOKEN = "\x00questlearn-no-value"  # the lookup's placeholder vocabulary for a column with none
NA_VALUES_OF_UNRECORDED_SPLITS = [""]  # what splits made before ``schema.na_values`` was recorded treated as missing


def inference_spec(reader) -> dict:
    """The description of the raw input that ``inference.keras`` takes.

    Parameters
    ----------
    reader : questlearn.data._batches.ShardReader
        The reader that fed training (its features, encoding, manifest).

    Returns
    -------
    dict
        JSON-ready: ``features`` (``[{"name", "kind"}]`` in input order),
        ``id_columns``, ``label``, ``task``, ``classes``, ``na_values``,
        ``fill``, ``fill_values`` (per numbers column: numeric features and
        each datetime's ``t.days``), ``bounds`` (per numbers column, ``[min, max]``
        that the model clips it to, or null where the split recorded no
        range), ``categories`` (vocabularies, most
        frequent first), ``hash_buckets``, ``datetimes`` (format records),
        ``numbers`` and ``codes`` (the column names of ``model.keras``'s two
        inputs), ``code_counts``, ``label_mean``, ``signature_keys`` (each
        feature column's input in the SavedModel's ``serving_default``).

    Raises
    ------
    SchemaError
        Two feature columns would be one input of the SavedModel.
    """
    manifest = reader.manifest
    schema = manifest["schema"]
    kinds = {c["name"]: c["kind"] for c in schema["columns"]}
    stats = manifest["stats"]
    encoding = reader.encoding
    fill_values = dict(zip(encoding.numeric, encoding.fill_values))
    task = schema.get("task", "classification")
    label_stats = stats.get(schema["label"], {})
    names = reader.input_names()
    lower, upper = reader.output_bounds()
    return {
        "features": [{"name": n, "kind": kinds[n]} for n in reader.features],
        "id_columns": [c["name"] for c in schema["columns"] if c["kind"] == "id"],
        "label": schema["label"],
        "task": task,
        "classes": list(schema["classes"]),
        "label_numeric": bool(schema.get("label_numeric", False)),
        "na_values": list(schema.get("na_values", NA_VALUES_OF_UNRECORDED_SPLITS)),
        "fill": encoding.fill,
        "fill_values": {n: float(fill_values[n]) for n in names.get("numbers", [])},
        "bounds": {n: None if np.isnan(low) or np.isnan(high) else [float(low), float(high)]
                   for n, low, high in zip(names.get("numbers", []), lower, upper)},
        "categories": {n: list(encoding.vocabularies[n]) for n in reader.categorical_features},
        "hash_buckets": {n: int(encoding.hash_buckets[n]) for n in reader.categorical_features},
        "datetimes": {n: encoding.datetimes[n] for n in reader.datetime_features},
        "numbers": names.get("numbers", []),
        "codes": names.get("codes", []),
        "code_counts": reader.code_counts(),
        "columns": reader.output_names(),
        "delimiter": schema.get("delimiter", ","),
        "label_mean": (manifest["subsets"]["train"].get("label_stats", label_stats).get("mean")
                       if task == "regression" else None),  # the training subset's mean: the baseline's prediction
        "column_kinds": kinds,
        "signature_keys": signature_keys(reader.features),
    }


OWN_LAYERS = "questlearn_"  # how the names of the inference model's own layers start


def input_names(columns, taken=()) -> dict:
    """``{column: name of its keras.Input}`` in ``inference.keras``: the column name where Keras allows it.

    Keras forbids ``/`` in a name (it becomes ``_``), and the model's names
    must be unique: a column named like one of the model's own layers
    (``questlearn_...``, or one of ``taken``) gets ``column_`` before it, and
    a name taken twice a number after it. The model's inputs are a dict
    keyed by the column names themselves, whatever their layers' names.
    """
    names, used = {}, set(taken)
    for column in columns:
        name = column.replace("/", "_") or "column"
        if name.startswith(OWN_LAYERS) or name in taken:
            name = f"column_{name}"
        candidate, number = name, 1
        while candidate in used:
            number += 1
            candidate = f"{name}_{number}"
        used.add(candidate)
        names[column] = candidate
    return names


def build_inference_model(trained: keras.Model, spec: dict) -> keras.Model:
    """Raw named columns -> the trained network, with built-in layers and operations only.

    Parameters
    ----------
    trained : keras.Model
        The trained network; it is called as a layer, so weights are shared.
    spec : dict
        From :func:`inference_spec`.

    Returns
    -------
    keras.Model
        Inputs: a dict ``{column: (batch, 1) tensor}`` (see the module
        docstring for each kind's dtype). Output: the trained network's
        output (class probabilities, or the regression value).
    """
    layers = input_names([f["name"] for f in spec["features"]], taken={trained.name})
    inputs, numbers, codes = {}, {}, {}
    for feature in spec["features"]:
        name, kind = feature["name"], feature["kind"]
        if kind == "numeric":
            inputs[name] = numbers[name] = keras.Input(shape=(1,), dtype="float32", name=layers[name])
            if f"{name}.missing" in spec["codes"]:
                codes[f"{name}.missing"] = _missing_indicator(inputs[name], len(codes))
        elif kind == "categorical":
            inputs[name] = keras.Input(shape=(1,), dtype="string", name=layers[name])
            codes[name] = _codes_of(inputs[name], spec["categories"][name], spec["hash_buckets"][name], len(codes))
        else:
            inputs[name] = keras.Input(shape=(1,), dtype="int64", name=layers[name])
            parts = _datetime_parts(inputs[name], len(codes))
            numbers[f"{name}.days"] = parts["days"]
            codes.update({f"{name}.{part}": parts[part] for part in ("hour", "weekday", "month")})
    if not inputs:
        raise RuntimeError("the model has no feature columns to take as inputs")
    blocks = {}
    if spec["numbers"]:
        columns = [numbers[n] for n in spec["numbers"]]
        values = columns[0] if len(columns) == 1 else keras.layers.Concatenate(name="questlearn_numbers")(columns)
        blocks["numbers"] = _fill_missing(values, np.asarray([spec["fill_values"][n] for n in spec["numbers"]], np.float32))
    if spec["codes"]:
        columns = [_as_int32(codes[n], f"questlearn_code_{position}") for position, n in enumerate(spec["codes"])]
        blocks["codes"] = columns[0] if len(columns) == 1 else keras.layers.Concatenate(name="questlearn_codes")(columns)
    with warnings.catch_warnings():  # a column whose input is named otherwise (``a/b``) is still keyed by its name
        warnings.filterwarnings("ignore", message="When providing `inputs` as a dict", category=UserWarning)
        return keras.Model(inputs, trained(blocks), name="quest_inference")


def _datetime_parts(seconds, number: int) -> dict:
    """:func:`~questlearn.schema.datetimes.keras_features` of an input, inside a model of their own.

    Their operations are named automatically (``cast``, ``where``, ...): in a
    nested model those names cannot clash with a feature column's.
    """
    from ..schema.datetimes import keras_features

    column = keras.Input(shape=(1,), dtype="int64", name="seconds")
    return keras.Model(column, keras_features(column), name=f"{OWN_LAYERS}datetime_{number}")(seconds)


def _codes_of(column, vocabulary: list, buckets: int, number: int):
    """A string column -> its codes, as :meth:`~questlearn.schema.encoding.Encoding.codes_of` computes them.

    ``StringLookup(vocabulary, num_oov_indices=buckets, mask_token="")``
    is the encoding's code layout itself: ``""`` (missing) is 0, an
    out-of-vocabulary value ``1 + FarmHash64(value) % buckets``, the
    vocabulary follows. A column whose vocabulary is empty looks up a
    placeholder no data holds (its code is past the range, so it is
    clipped to the last bucket; no value ever reaches it).
    """
    known = vocabulary or [NO_VALUE_TOKEN]
    lookup = keras.layers.StringLookup(vocabulary=known, num_oov_indices=int(buckets), mask_token="",
                                       output_mode="int", name=f"questlearn_vocabulary_{number}")
    codes = lookup(column)
    if not vocabulary:
        from keras.src.ops.numpy import Minimum

        codes = Minimum(name=f"questlearn_no_vocabulary_{number}").symbolic_call(codes, int(buckets))
    return codes


def _missing_indicator(column, number: int):
    """``isnan(column)`` as 0/1 codes: the ``name.missing`` code the split wrote."""
    try:
        from keras.src.ops.numpy import Isnan
    except ImportError:  # pragma: no cover - another Keras layout: automatic names
        return keras.ops.isnan(column)
    return Isnan(name=f"questlearn_is_missing_{number}").symbolic_call(column)


def _as_int32(tensor, name: str):
    """``cast(tensor, "int32")`` as a named graph operation."""
    try:
        from keras.src.ops.core import Cast
    except ImportError:  # pragma: no cover - another Keras layout: automatic names
        return keras.ops.cast(tensor, "int32")
    return Cast("int32", name=name).symbolic_call(tensor)


def _fill_missing(values, fill: np.ndarray):
    """``where(isnan(values), fill, values)`` as named graph operations.

    Named, so that a feature column called ``where`` or ``isnan`` cannot
    clash with an automatically named operation. The classes are the ones
    ``keras.ops.where``/``isnan`` create (and a saved model names anyway).
    """
    try:
        from keras.src.ops.numpy import Isnan, Where
    except ImportError:  # pragma: no cover - another Keras layout: automatic names
        return keras.ops.where(keras.ops.isnan(values), fill, values)
    missing = Isnan(name="questlearn_missing").symbolic_call(values)
    return Where(name="questlearn_fill_missing").symbolic_call(missing, fill, values)


def portable_copy(trained: keras.Model, task: str = "classification") -> keras.Model:
    """The trained network, compiled with built-in loss and metrics only."""
    copy = keras.models.clone_model(trained)
    copy.set_weights(trained.get_weights())
    if task == "regression":
        loss = keras.losses.MeanSquaredError()
        metrics = [keras.metrics.MeanAbsoluteError(name="mae"), keras.metrics.RootMeanSquaredError(name="rmse")]
    else:
        loss = keras.losses.SparseCategoricalCrossentropy()
        metrics = [keras.metrics.SparseCategoricalAccuracy(name="accuracy")]
    learning_rate = float(keras.ops.convert_to_numpy(trained.optimizer.learning_rate)) if trained.optimizer else 1e-3
    copy.compile(optimizer=keras.optimizers.Adam(learning_rate), loss=loss, metrics=metrics)
    copy.optimizer.build(copy.trainable_variables)  # saved with its slots: loads without a warning
    return copy


def export_models(trained: keras.Model, reader, model_dir, *, saved_model: bool = True) -> Path:
    """Write ``model.keras``, ``inference.keras``, ``inference.json`` and, with TensorFlow, ``saved_model/``.

    ``inference.json`` also records ``input_layers``: the name of each
    feature column's input layer in ``inference.keras`` (:func:`input_names`).

    Parameters
    ----------
    trained : keras.Model
        The trained network.
    reader : questlearn.data._batches.ShardReader
        The training data's reader (e.g. ``QuestSequence.reader``).
    model_dir : str or Path
        Destination directory.
    saved_model : bool
        Also write ``saved_model/`` (on the TensorFlow backend). ``False`` skips it (about a second
        or two of a small table's run); ``questlearn export`` writes it later from ``inference.keras``.
        Either way a ``saved_model/`` of an earlier run in ``model_dir`` is removed, never left beside
        this run's models.

    Returns
    -------
    Path or None
        The path of ``inference.keras``; None where TensorFlow is missing
        (a note says so on stderr).
    """
    model_dir = Path(model_dir)
    spec = inference_spec(reader)
    portable = portable_copy(trained, spec["task"])  # nested below too: no custom object in either file
    portable.save(model_dir / TRAINED_MODEL)
    spec["input_layers"] = input_names([f["name"] for f in spec["features"]], taken={portable.name})
    path = model_dir / INFERENCE_MODEL
    with open(model_dir / INFERENCE_SPEC, "w", encoding="utf-8") as handle:
        json.dump(spec, handle, indent=1)
    try:
        import_tensorflow()  # StringLookup and string inputs are TensorFlow-based
    except ImportError:
        print(f"questlearn: {path.name} and saved_model/ not written: their string inputs need TensorFlow, which is "
              f"not installed here; {TRAINED_MODEL} (encoded inputs) was written", file=sys.stderr)
        return None
    inference = build_inference_model(portable, spec)
    inference.save(path)
    shutil.rmtree(model_dir / SAVED_MODEL, ignore_errors=True)  # an earlier run's: never beside this run's models
    if saved_model and keras.backend.backend() == "tensorflow":
        export_saved_model(model_dir, model=inference, spec=spec)
    return path


def _lookup_tables(model: keras.Model) -> list:
    """The lookup tables of ``model``'s ``StringLookup`` layers, nested ones included."""
    tables, layers = [], list(model.layers)
    while layers:
        layer = layers.pop()
        layers.extend(getattr(layer, "layers", ()))
        if getattr(layer, "lookup_table", None) is not None:
            tables.append(layer.lookup_table)
    return tables


def export_saved_model(model_dir, *, model=None, spec=None, target=None) -> Path:
    """Write ``MODEL_DIR/saved_model``: a TensorFlow SavedModel serving raw columns.

    Its ``serving_default`` signature takes one 1-D tensor per feature
    column, by its name, or by the key ``inference.json``'s
    ``signature_keys`` gives it where TensorFlow does not take the name
    (:mod:`questlearn.serve._column_names`): float32 for numeric columns
    (NaN for missing), strings for categorical and datetime columns (``""``
    for missing; datetimes in the split's format, parsed in the graph). It returns
    ``{"probabilities": (rows, classes)}`` or ``{"prediction": (rows, 1)}``.

    Parameters
    ----------
    model_dir : str or Path
        A directory written by ``questlearn train``.
    model, spec : optional
        ``inference.keras`` and ``inference.json``, when already loaded.
    target : str or Path, optional
        The directory to create (default ``MODEL_DIR/saved_model``); one
        that exists is refused, never replaced.

    Returns
    -------
    Path
        The SavedModel's directory.
    """
    try:
        tf = import_tensorflow()
    except ImportError:
        raise MissingPackageError("a SavedModel needs TensorFlow: pip install 'questlearn[tensorflow]'") from None
    if keras.backend.backend() != "tensorflow":
        raise OptionError(f"a SavedModel is written with the TensorFlow backend; the Keras backend here is "
                          f"{keras.backend.backend()!r} (set KERAS_BACKEND=tensorflow)")
    from ..schema.datetimes import DatetimeFormat, tf_parse

    model_dir = Path(model_dir)
    target = Path(target) if target is not None else model_dir / SAVED_MODEL
    if target.exists():
        raise OutputFolderError(f"{target} already exists: remove it, or write the SavedModel elsewhere (--output DIR)")
    if model is None or spec is None:
        spec, model = load_model_files(model_dir, INFERENCE_MODEL)
    kinds = {f["name"]: f["kind"] for f in spec["features"]}
    formats = {n: DatetimeFormat.from_record(r) for n, r in spec["datetimes"].items()}
    keys = spec.get("signature_keys") or signature_keys(kinds)  # an inference.json written before it recorded them
    signature = {keys[n]: tf.TensorSpec([None], tf.float32 if k == "numeric" else tf.string, name=keys[n])
                 for n, k in kinds.items()}
    output = "prediction" if spec["task"] == "regression" else "probabilities"

    @tf.autograph.experimental.do_not_convert  # its loop and branches run over Python values: nothing to rewrite
    def serve(columns):
        inputs = {}
        for name, kind in kinds.items():
            column = columns[keys[name]]
            if kind == "datetime":
                column = tf_parse(column, formats[name])
            inputs[name] = tf.reshape(column, [-1, 1])
        return {output: model(inputs, training=False)}

    # Keras's ExportArchive keeps the variables the serving function uses and the lookup tables, not the
    # model's layers: TensorFlow then traces the serving function alone, not every layer's call as well
    archive = keras.export.ExportArchive()
    for table in _lookup_tables(model):
        archive.track(table)
    archive.add_endpoint("serving_default", serve, input_signature=[signature])
    partial = target.with_name(f".{target.name}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    logger = tf.get_logger()
    level = logger.level
    logger.setLevel("ERROR")  # not TensorFlow's "Assets written to ..." line on every training run
    try:
        archive.write_out(str(partial), verbose=False)
    finally:
        logger.setLevel(level)
    os.replace(partial, target)  # complete, or not there
    return target
