"""Save a trained model so it can be used without questlearn.

:func:`export_models` writes, into a model directory:

* ``model.keras`` — the trained network (encoded float inputs), compiled
  with built-in Keras objects only, so ``keras.saving.load_model`` works in
  a process that never imports questlearn;
* ``inference.keras`` — the same network behind the preprocessing the
  loader does during training, built from the manifest with Keras layers
  (no ``adapt`` pass): one named input per feature column (numeric:
  float32, NaN for missing; categorical: string, ``""`` for missing) and
  the split's encoding (``schema.encoding``, :mod:`questlearn.schema.encoding`):
  the fill values, the one-hot vocabularies (an unseen value goes to the
  ``name=<other>`` column, a missing one is all zeros) and the column order
  of the model-ready shards. It shares the trained weights and gives the
  training model's output on the same rows;
* ``inference.json`` — what ``questlearn predict`` needs to read raw input:
  feature columns and kinds, id columns, label, classes, task, the
  missing-value tokens, and the encoding (fill values, vocabularies, the
  encoded column names).

``inference.keras`` has string inputs, so it runs with the TensorFlow
backend (Keras's ``StringLookup`` is TensorFlow-based).
"""

from __future__ import annotations

import json
import math
import sys
import zipfile
import zlib
from pathlib import Path

import numpy as np

from ..errors import ModelFileError
from ..quiet import import_tensorflow, keras

INFERENCE_MODEL = "inference.keras"
INFERENCE_SPEC = "inference.json"
TRAINED_MODEL = "model.keras"
OOV_TOKEN = "\x00questlearn-out-of-vocabulary"
NO_VALUE_TOKEN = "\x00questlearn-no-value"  # the lookup's placeholder vocabulary for a column with none
NA_VALUES_OF_UNRECORDED_SPLITS = [""]  # what splits made before ``schema.na_values`` was recorded treated as missing
REWRITE_HINT = "restore it from a copy, or train the model again (`questlearn train` writes it)"

_strings = {"type": "array", "items": {"type": "string"}}
INFERENCE_SCHEMA = {  # what readers of inference.json rely on; unknown keys are allowed (newer exports add some)
    "type": "object",
    "required": ["features", "id_columns", "label", "task", "classes", "na_values", "fill_values", "categories"],
    "properties": {
        "features": {"type": "array", "minItems": 1, "items": {
            "type": "object", "required": ["name", "kind"],
            "properties": {"name": {"type": "string", "minLength": 1}, "kind": {"enum": ["numeric", "categorical"]}}}},
        "id_columns": _strings,
        "label": {"type": "string", "minLength": 1},
        "task": {"enum": ["classification", "regression"]},
        "classes": {**_strings, "uniqueItems": True},
        "label_numeric": {"type": "boolean"},
        "na_values": _strings,
        "fill_values": {"type": "object", "additionalProperties": {"type": "number"}},
        "categories": {"type": "object", "additionalProperties": _strings},
        "columns": _strings,
        "delimiter": {"type": "string", "minLength": 1, "maxLength": 1},
        "label_mean": {"type": ["number", "null"]},
    },
    "if": {"properties": {"task": {"const": "regression"}}, "required": ["task"]},
    "then": {"properties": {"classes": {"maxItems": 0}}},
    "else": {"properties": {"classes": {"minItems": 1}}},
}


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
        ``fill``, ``fill_values``, ``categories`` (the one-hot vocabularies,
        each followed by its ``<other>`` column), ``columns`` (the encoded
        inputs of ``model.keras``), ``label_mean``.
    """
    manifest = reader.manifest
    schema = manifest["schema"]
    kinds = {c["name"]: c["kind"] for c in schema["columns"]}
    stats = manifest["stats"]
    encoding = reader.encoding
    fill_values = dict(zip(encoding.numeric, encoding.fill_values))
    task = schema.get("task", "classification")
    label_stats = stats.get(schema["label"], {})
    return {
        "features": [{"name": n, "kind": "numeric"} for n in reader.numeric]
        + [{"name": n, "kind": "categorical"} for n in reader.categorical_features],
        "id_columns": [c["name"] for c in schema["columns"] if c["kind"] == "id"],
        "label": schema["label"],
        "task": task,
        "classes": list(schema["classes"]),
        "label_numeric": bool(schema.get("label_numeric", False)),
        "na_values": list(schema.get("na_values", NA_VALUES_OF_UNRECORDED_SPLITS)),
        "fill": encoding.fill,
        "fill_values": {n: float(fill_values[n]) for n in reader.numeric},
        "categories": {n: list(encoding.vocabularies[n]) for n in reader.categorical_features},
        "columns": reader.output_names(),
        "delimiter": schema.get("delimiter", ","),
        "label_mean": (manifest["subsets"]["train"].get("label_stats", label_stats).get("mean")
                       if task == "regression" else None),  # the training subset's mean: the baseline's prediction
        "column_kinds": kinds,
    }


def read_inference_spec(model_dir) -> dict:
    """``MODEL_DIR/inference.json``, checked before anything trusts it.

    Raises
    ------
    ModelFileError
        The file is missing, is not JSON, or lacks a key or holds a value of
        the wrong type (the message names the file and the field).
    """
    import jsonschema

    from ..manifest._validate import _explain, _field

    path = Path(model_dir) / INFERENCE_SPEC
    if not path.is_file():
        raise ModelFileError(f"{model_dir} holds no {INFERENCE_SPEC}: train a model there with `questlearn train` "
                             "(this questlearn version) first")
    try:
        spec = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as error:  # not UTF-8, or not JSON
        raise ModelFileError(f"{path} is not valid JSON ({error}): it was damaged or edited; {REWRITE_HINT}") from None
    problem = jsonschema.exceptions.best_match(jsonschema.Draft202012Validator(INFERENCE_SCHEMA).iter_errors(spec))
    if problem is not None:
        raise ModelFileError(f"{path}: field {_field(problem.absolute_path)} {_explain(problem)}: it was damaged or "
                             f"edited; {REWRITE_HINT}")
    for feature in spec["features"]:
        name, table = feature["name"], "fill_values" if feature["kind"] == "numeric" else "categories"
        if name not in spec[table] or (table == "fill_values" and not math.isfinite(spec[table][name])):
            raise ModelFileError(f"{path}: field {table} has no {'finite fill value' if table == 'fill_values' else 'vocabulary'} "
                                 f"for the feature {name!r}: it was damaged or edited; {REWRITE_HINT}")
    return spec


def load_saved_model(path: Path) -> keras.Model:
    """``keras.saving.load_model(path)``; a missing, truncated or damaged file is refused naming it.

    A ``.keras`` file is a zip archive: one whose entries cannot all be read
    back with their checksums is damaged (Keras itself calls it "not found").
    """
    if not path.is_file():
        raise ModelFileError(f"{path} does not exist: {REWRITE_HINT}")
    try:
        with zipfile.ZipFile(path) as archive:
            entry = archive.testzip()  # the first entry whose checksum fails, or None
        damaged = None if entry is None else f"its entry {entry} fails its checksum"
    except (zipfile.BadZipFile, EOFError, zlib.error) as error:
        damaged = f"not a complete zip archive: {error}"
    if damaged is not None:
        raise ModelFileError(f"{path} is damaged or truncated ({damaged}): {REWRITE_HINT}")
    return keras.saving.load_model(path)


def layer_name(column: str, used: set) -> str:
    """The input's name: the column name (Keras forbids only ``/``), unique."""
    name = column.replace("/", "_") or "column"
    candidate, number = name, 1
    while candidate in used:
        number += 1
        candidate = f"{name}_{number}"
    used.add(candidate)
    return candidate


def build_inference_model(trained: keras.Model, spec: dict) -> keras.Model:
    """Raw named columns -> the trained network, with built-in layers only.

    Parameters
    ----------
    trained : keras.Model
        The trained network; it is called as a layer, so weights are shared.
    spec : dict
        From :func:`inference_spec`.

    Returns
    -------
    keras.Model
        Inputs: a dict ``{column: (batch, 1) tensor}``. Output: the trained
        network's output (class probabilities, or the regression value).
    """
    used = {trained.name}
    inputs, parts = {}, []
    numeric = [f["name"] for f in spec["features"] if f["kind"] == "numeric"]
    categorical = [f["name"] for f in spec["features"] if f["kind"] == "categorical"]
    if numeric:
        columns = []
        for name in numeric:
            inputs[name] = keras.Input(shape=(1,), dtype="float32", name=layer_name(name, used))
            columns.append(inputs[name])
        values = columns[0] if len(columns) == 1 else keras.layers.Concatenate(name="questlearn_numeric_columns")(columns)
        fill = np.asarray([spec["fill_values"][n] for n in numeric], np.float32)
        parts.append(_fill_missing(values, fill))
    for name in categorical:
        inputs[name] = keras.Input(shape=(1,), dtype="string", name=layer_name(name, used))
        parts.append(_one_hot_block(inputs[name], spec["categories"][name], len(parts)))
    if not parts:
        raise RuntimeError("the model has no feature columns to take as inputs")
    encoded = parts[0] if len(parts) == 1 else keras.layers.Concatenate(name="questlearn_encoded_features")(parts)
    return keras.Model(inputs, trained(encoded), name="quest_inference")


def _one_hot_block(column, vocabulary: list, number: int):
    """A string column -> its one-hot block, as :class:`~questlearn.schema.encoding.Encoding` encodes it.

    ``StringLookup`` gives index 0 to out-of-vocabulary values and treats
    ``""`` (missing) as the mask token, all zeros; index 0 then moves last,
    to the ``name=<other>`` column. A column whose vocabulary is empty (no
    value in the split's sample) looks up a placeholder no data holds and
    keeps only the ``<other>`` column.
    """
    known = vocabulary or [NO_VALUE_TOKEN]
    lookup = keras.layers.StringLookup(vocabulary=known, num_oov_indices=1, oov_token=OOV_TOKEN, mask_token="",
                                       output_mode="one_hot", name=f"questlearn_vocabulary_{number}")
    one_hot = keras.layers.Reshape((len(known) + 1, 1), name=f"questlearn_columns_{number}")(lookup(column))
    other = keras.layers.Cropping1D((0, len(known)), name=f"questlearn_other_{number}")(one_hot)
    if vocabulary:
        values = keras.layers.Cropping1D((1, 0), name=f"questlearn_drop_oov_{number}")(one_hot)
        other = keras.layers.Concatenate(axis=1, name=f"questlearn_other_last_{number}")([values, other])
    return keras.layers.Reshape((len(vocabulary) + 1,), name=f"questlearn_one_hot_{number}")(other)


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


def export_models(trained: keras.Model, reader, model_dir) -> Path:
    """Write ``model.keras``, ``inference.keras`` and ``inference.json``.

    Parameters
    ----------
    trained : keras.Model
        The trained network.
    reader : questlearn.data._batches.ShardReader
        The training data's reader (e.g. ``QuestSequence.reader``).
    model_dir : str or Path
        Destination directory.

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
    path = model_dir / INFERENCE_MODEL
    try:
        import_tensorflow()  # StringLookup and string inputs are TensorFlow-based
        build_inference_model(portable, spec).save(path)
    except ImportError:
        print(f"questlearn: {path.name} not written: its string inputs need TensorFlow, which is not installed here; "
              f"{TRAINED_MODEL} (encoded inputs) was written", file=sys.stderr)
        path = None
    with open(model_dir / INFERENCE_SPEC, "w", encoding="utf-8") as handle:
        json.dump(spec, handle, indent=1)
    return path
