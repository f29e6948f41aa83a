"""A model directory's files, checked and loaded behind one guard: :func:`load_model_files`.

``predict``, ``evaluate`` and ``export`` load ``inference.json`` and one
Keras file (``inference.keras``, ``model.keras`` or ``best.keras``) only
through it. A file that is missing, damaged, hand-edited or hostile stops
with a :class:`~questlearn.errors.ModelFileError` naming the file and the
reason, never a traceback:

* ``inference.json`` is checked by a few lines of code (types, required
  keys, a fill value or vocabulary per feature), not by a JSON Schema
  library, whose import alone would cost more than a second at start-up;
* the Keras file is loaded in Keras's safe mode, so no code from the file
  ever runs: a Python ``lambda`` is refused, and so is a configuration that
  names a class or function Keras does not know;
* the two must fit each other: the model's inputs are the features (or the
  ``numbers`` and ``codes`` blocks) ``inference.json`` names, and its
  output has one column per class (one for regression).
"""

from __future__ import annotations

import json
import math
import warnings
import zipfile
import zlib
from pathlib import Path

from ..errors import ModelFileError

INFERENCE_MODEL = "inference.keras"
INFERENCE_SPEC = "inference.json"
TRAINED_MODEL = "model.keras"
BEST_MODEL = "best.keras"
REWRITE_HINT = "restore it from a copy, or train the model again (`questlearn train` writes it)"
KINDS = ("numeric", "categorical", "datetime")
TASKS = ("classification", "regression")
# Keras's exceptions when a .keras file names what it cannot build (an unknown class or function, a lambda in
# safe mode, a config of the wrong shape); anything else is a bug and keeps its traceback.
LOAD_FAILURES = (ValueError, TypeError, KeyError, AttributeError, IndexError, ImportError, OSError)


def load_model_files(model_dir, model_name: str = INFERENCE_MODEL):
    """``MODEL_DIR/inference.json`` and the Keras file ``model_name``, each checked, and checked to fit each other.

    Parameters
    ----------
    model_dir : str or Path
        A directory written by ``questlearn train``.
    model_name : str
        ``inference.keras`` (raw columns in), ``model.keras`` or
        ``best.keras`` (the ``numbers`` and ``codes`` blocks in).

    Returns
    -------
    (dict, keras.Model)
        The checked ``inference.json`` and the loaded model.

    Raises
    ------
    ModelFileError
        A file missing, not JSON, of the wrong shape, damaged or truncated,
        holding code or naming an unknown class or function, or the two
        files not fitting; the message names the file and the reason.
    """
    model_dir = Path(model_dir)
    spec = read_inference_spec(model_dir)
    path = model_dir / model_name
    model = _load_keras_file(path)
    _check_fit(spec, model, model_dir / INFERENCE_SPEC, path, raw_columns=model_name == INFERENCE_MODEL)
    return spec, model


def read_inference_spec(model_dir) -> dict:
    """``MODEL_DIR/inference.json``, checked before anything trusts it (see :func:`check_inference_spec`)."""
    path = Path(model_dir) / INFERENCE_SPEC
    if not path.is_file():
        raise ModelFileError(f"{model_dir} holds no {INFERENCE_SPEC}: train a model there with `questlearn train` "
                             "(this questlearn version) first")
    try:
        spec = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as error:  # not UTF-8, or not JSON
        raise ModelFileError(f"{path} is not valid JSON ({error}): it was damaged or edited; {REWRITE_HINT}") from None
    check_inference_spec(spec, path)
    return spec


def check_inference_spec(spec, path) -> None:
    """Refuse an ``inference.json`` a reader could not trust: a missing key, a value of the wrong type.

    Unknown keys are allowed (newer exports add some). The message names the
    field as ``features[0].kind``.
    """
    def wrong(field: str, problem: str):
        return ModelFileError(f"{path}: field {field} {problem}: it was damaged or edited; {REWRITE_HINT}")

    if not isinstance(spec, dict):
        raise wrong("(the top level)", f"must be of type object, not {_type_name(spec)}")
    for key in ("features", "id_columns", "label", "task", "classes", "na_values", "fill_values", "categories",
                "hash_buckets", "datetimes", "numbers", "codes", "code_counts"):
        if key not in spec:
            raise wrong("(the top level)", f"lacks the required key {key!r}")
    _expect(spec["features"], list, "features", wrong)
    if not spec["features"]:
        raise wrong("features", "has 0 entries, at least 1 needed")
    for position, feature in enumerate(spec["features"]):
        _expect(feature, dict, f"features[{position}]", wrong)
        for key in ("name", "kind"):
            if key not in feature:
                raise wrong(f"features[{position}]", f"lacks the required key {key!r}")
        _expect(feature["name"], str, f"features[{position}].name", wrong, non_empty=True)
        if feature["kind"] not in KINDS:
            raise wrong(f"features[{position}].kind", f"must be {' or '.join(map(repr, KINDS))}, not {feature['kind']!r}")
    for key in ("id_columns", "classes", "na_values", "numbers", "codes") + (("columns",) if "columns" in spec else ()):
        _expect_strings(spec[key], key, wrong)
    _expect(spec["label"], str, "label", wrong, non_empty=True)
    if spec["task"] not in TASKS:
        raise wrong("task", f"must be {' or '.join(map(repr, TASKS))}, not {spec['task']!r}")
    if len(set(spec["classes"])) != len(spec["classes"]):
        raise wrong("classes", "holds the same entry twice")
    if (spec["task"] == "regression") != (not spec["classes"]):
        raise wrong("classes", "must be empty for regression" if spec["task"] == "regression" else
                    "has 0 entries, at least 1 needed for classification")
    for key, check in (("fill_values", _is_number), ("hash_buckets", _is_count), ("datetimes", _is_string),
                       ("categories", None)):
        _expect(spec[key], dict, key, wrong)
        for name, value in spec[key].items():
            if check is None:
                _expect_strings(value, f"{key}.{name}", wrong)
            elif not check(value):
                raise wrong(f"{key}.{name}", f"must be {check.__doc__}, not {_type_name(value)} ({_short(value)})")
    _expect(spec["code_counts"], list, "code_counts", wrong)
    if not all(_is_count(count) for count in spec["code_counts"]) or len(spec["code_counts"]) != len(spec["codes"]):
        raise wrong("code_counts", f"must hold one whole number of at least 1 per code column ({len(spec['codes'])})")
    for key, check in (("label_numeric", lambda v: isinstance(v, bool)), ("label_mean", lambda v: v is None or _is_number(v)),
                       ("delimiter", lambda v: isinstance(v, str) and len(v) == 1)):
        if key in spec and not check(spec[key]):
            raise wrong(key, f"holds {_short(spec[key])}, of the wrong type")
    if "bounds" in spec:  # {numbers column: [min, max] the model clips it to, or null}; older files lack it
        _expect(spec["bounds"], dict, "bounds", wrong)
        for name, value in spec["bounds"].items():
            if value is not None and not (isinstance(value, list) and len(value) == 2 and all(map(_is_number, value))):
                raise wrong(f"bounds.{name}", f"must be null or [min, max], not {_short(value)}")
    for key in ("signature_keys", "input_layers"):  # {column: its SavedModel key / its inference.keras input}
        if key in spec:
            _expect(spec[key], dict, key, wrong)
            for name, value in spec[key].items():
                _expect(value, str, f"{key}.{name}", wrong, non_empty=True)
    _check_features_encoded(spec, wrong)


def _check_features_encoded(spec: dict, wrong) -> None:
    """Every feature has what reading it needs: a finite fill value, or a vocabulary and buckets, or a known format."""
    from ..errors import ManifestError
    from ..schema.datetimes import DatetimeFormat

    for feature in spec["features"]:
        name, kind = feature["name"], feature["kind"]
        table, key = {"numeric": ("fill_values", name), "datetime": ("fill_values", f"{name}.days"),
                      "categorical": ("categories", name)}[kind]
        if key not in spec[table] or (table == "fill_values" and not math.isfinite(spec[table][key])) \
                or (kind == "categorical" and name not in spec["hash_buckets"]) \
                or (kind == "datetime" and name not in spec["datetimes"]):
            raise wrong(table, f"has no {'finite fill value' if table == 'fill_values' else 'vocabulary'} for the "
                        f"feature {name!r}")
        if kind == "datetime":
            try:
                DatetimeFormat.from_record(spec["datetimes"][name])
            except ManifestError:
                raise wrong(f"datetimes.{name}", f"names no datetime format questlearn knows "
                            f"({_short(spec['datetimes'][name])})") from None
    made = {"numbers": set(), "codes": set()}  # the block columns the features make, as the export built them
    for feature in spec["features"]:
        name, kind = feature["name"], feature["kind"]
        if kind == "numeric":
            made["numbers"].add(name)
            made["codes"].add(f"{name}.missing")  # present only where the split marked missingness
        elif kind == "categorical":
            made["codes"].add(name)
        else:
            made["numbers"].add(f"{name}.days")
            made["codes"].update(f"{name}.{part}" for part in ("hour", "weekday", "month"))
    for block in ("numbers", "codes"):
        unmade = [column for column in spec[block] if column not in made[block]]
        if unmade:
            raise wrong(block, f"names {unmade[0]!r}, which no entry of field features makes (a feature removed?)")


def _load_keras_file(path: Path):
    """``keras.saving.load_model(path, safe_mode=True)``; what the file cannot give is a ``ModelFileError``.

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
    from ..quiet import keras

    if path.name == BEST_MODEL:
        from ..train import model as _registered  # noqa: F401  questlearn's own layers, which best.keras names
    try:
        with warnings.catch_warnings():  # inference.keras: a column whose input layer is named otherwise (``a/b``)
            warnings.filterwarnings("ignore", message="When providing `inputs` as a dict", category=UserWarning)
            return keras.saving.load_model(path, safe_mode=True)  # safe mode: no code from the file ever runs
    except LOAD_FAILURES as error:
        raise ModelFileError(f"{path} cannot be loaded: {_load_reason(error)}; it was edited, or not written by "
                             f"questlearn: {REWRITE_HINT}") from None


def _load_reason(error: Exception) -> str:
    """Keras's reason for refusing a file, in one short line."""
    text = str(error)
    if "lambda" in text.lower() and "safe_mode" in text:
        return ("it holds Python code (a Lambda layer's lambda), which questlearn never runs (Keras's safe mode "
                "refuses it)")
    innermost = [part.strip() for part in text.split("Exception encountered:") if part.strip()]
    reason = innermost[-1].splitlines()[0] if innermost else type(error).__name__
    return _short(reason.split(". Make sure")[0].rstrip("."), 200)


def _check_fit(spec: dict, model, spec_path: Path, path: Path, raw_columns: bool) -> None:
    """Refuse a model whose inputs or output width are not those ``inference.json`` describes."""
    width = 1 if spec["task"] == "regression" else len(spec["classes"])
    outputs = model.output.shape[-1] if hasattr(model.output, "shape") else None
    inputs = model.input if isinstance(model.input, dict) else {}
    if raw_columns:
        expected = {feature["name"]: 1 for feature in spec["features"]}
    else:
        expected = {block: len(spec[block]) for block in ("numbers", "codes") if spec[block]}
    given = {name: tensor.shape[-1] for name, tensor in inputs.items()}
    if given != expected:
        unnamed, untaken = sorted(set(given) - set(expected)), sorted(set(expected) - set(given))
        what = "features" if raw_columns else "numbers and codes"
        parts = ([f"it takes {unnamed}, which {INFERENCE_SPEC} does not name"] if unnamed else []) \
            + ([f"it does not take {untaken}"] if untaken else [])
        detail = "; ".join(parts) or f"their widths differ: {given} against {expected}"
        raise ModelFileError(f"{spec_path} does not fit {path}: the model's inputs are not the {what} {INFERENCE_SPEC} "
                             f"names ({detail}); one of the two was edited: {REWRITE_HINT}")
    if outputs != width:
        said = "1 (regression)" if spec["task"] == "regression" else f"{width}, one per class in field classes"
        raise ModelFileError(f"{spec_path} does not fit {path}: the model gives {outputs} outputs a row, {INFERENCE_SPEC} "
                             f"expects {said}; one of the two was edited: {REWRITE_HINT}")


def _expect(value, kind: type, field: str, wrong, non_empty: bool = False) -> None:
    if not isinstance(value, kind):
        raise wrong(field, f"must be of type {_JSON_TYPES[kind]}, not {_type_name(value)} ({_short(value)})")
    if non_empty and not value:
        raise wrong(field, "must not be empty")


def _expect_strings(value, field: str, wrong) -> None:
    _expect(value, list, field, wrong)
    for position, item in enumerate(value):
        _expect(item, str, f"{field}[{position}]", wrong)


def _is_number(value) -> bool:
    """a number"""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_count(value) -> bool:
    """a whole number of at least 1"""
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def _is_string(value) -> bool:
    """a string"""
    return isinstance(value, str)


_JSON_TYPES = {list: "array", dict: "object", str: "string"}


def _type_name(value) -> str:
    return {dict: "object", list: "array", str: "string", bool: "boolean", int: "integer", float: "number",
            type(None): "null"}.get(type(value), type(value).__name__)


def _short(value, limit: int = 80) -> str:
    text = value if isinstance(value, str) and limit > 80 else repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
