"""The shape of ``manifest.json``, checked on load before anything trusts it.

:data:`MANIFEST_SCHEMA` is a JSON Schema (draft 2020-12) of the manifest a
split writes: types, required keys, allowed values and size caps. It is the
one place to describe a new manifest field. Unknown keys are allowed
everywhere, so a newer split's additions do not break an older reader.
:func:`validate_manifest` applies it, then the checks a JSON Schema cannot
express (features that are columns, label codes inside the class list,
subset rows that add up to the source's rows less those dropped), and raises a :class:`~questlearn.errors.ManifestError` naming the field.
"""

from __future__ import annotations

import functools
import math
import sys

from .._limits import MAX_STRING_LENGTH
from ..errors import ManifestError

MAX_CATEGORIES = 1 << 24  # vocabulary values per column: an embedding table of 16 M rows is the most a split may ask for
MAX_CLASSES = 65_536
MAX_HASH_BUCKETS = 1 << 20
MAX_COLUMNS = 100_000
MAX_NAME_LENGTH = MAX_STRING_LENGTH
COLUMN_KINDS = ("numeric", "categorical", "datetime", "text", "id", "label")
TASKS = ("classification", "regression")

_count = {"type": "integer", "minimum": 0, "maximum": 2 ** 62}  # numpy int64 holds it
_name = {"type": "string", "minLength": 1, "maxLength": MAX_NAME_LENGTH}
_names = {"type": "array", "items": _name, "maxItems": MAX_COLUMNS}
_sha256 = {"type": "string", "pattern": "^[0-9a-f]{64}$"}
_file = {"type": "object", "required": ["name", "bytes", "sha256", "data_offset"],
         "properties": {"name": _name, "bytes": _count, "sha256": _sha256, "rows": _count,
                        "data_offset": _count}}  # the SHA-256 covers the bytes from data_offset on
_number_or_null = {"type": ["number", "null"]}
_strings = {"type": "array", "items": {"type": "string", "maxLength": MAX_NAME_LENGTH}}

_encoding = {  # questlearn.schema.encoding.Encoding.as_record: how the features became numbers and codes
    "type": "object",
    "required": ["fill", "numeric", "fill_values", "categorical", "vocabularies", "hash_buckets", "datetimes",
                 "code_columns", "code_counts", "code_dtype"],
    "properties": {
        "fill": {"enum": ["mean", "zero"]},
        "numeric": {**_names, "uniqueItems": True},
        "fill_values": {"type": "array", "items": {"type": "number"}, "maxItems": MAX_COLUMNS},
        "categorical": {**_names, "uniqueItems": True},
        "vocabularies": {"type": "object", "additionalProperties": {**_strings, "maxItems": MAX_CATEGORIES}},
        "hash_buckets": {"type": "object", "additionalProperties": {"type": "integer", "minimum": 1,
                                                                    "maximum": MAX_HASH_BUCKETS}},
        "datetimes": {"type": "object", "additionalProperties": {"type": "string", "maxLength": 200}},
        "code_columns": {**_names, "uniqueItems": True},
        "code_counts": {"type": "array", "items": {"type": "integer", "minimum": 1}, "maxItems": MAX_COLUMNS},
        "code_dtype": {"enum": ["uint8", "uint16", "int32"]},
        "indicators": {**_names, "uniqueItems": True},
        "quantiles": {"type": "object", "additionalProperties": {"type": "array", "items": {"type": "number"},
                                                                 "maxItems": 1024}},
    },
}

_scatter = {  # how rows were dealt into open shards (questlearn.split._scatter)
    "type": "object",
    "properties": {
        "estimated_rows": _count,
        "open_shard_limit": {"type": "integer", "minimum": 1},
        "waves": {"type": "object", "additionalProperties": _count},
        "npy_header_bytes": _count,
    },
}

_shard = {
    "type": "object",
    "required": ["files", "rows"],
    "properties": {
        "index": _count,
        "rows": _count,
        "files": {"type": "object", "minProperties": 1, "additionalProperties": _file},
        "label_counts": {"type": "object", "additionalProperties": _count},
    },
}

_subset = {
    "type": "object",
    "required": ["rows", "shards"],
    "properties": {"rows": _count, "shards": {"type": "array", "items": _shard}},
}

_stats_entry = {
    "type": "object",
    "properties": {
        "count": _count, "missing": _count, "oov": _count,
        "invalid": _count,  # only after `split --invalid missing`: unreadable values read as missing (in "missing")
        "mean": _number_or_null, "variance": _number_or_null, "std": _number_or_null,
        "min": _number_or_null, "max": _number_or_null,
        "category_counts": {"type": "object", "maxProperties": MAX_CATEGORIES, "additionalProperties": _count},
    },
}

MANIFEST_SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "required": ["format_version", "complete", "source", "parameters", "schema", "stats", "subsets"],
    "properties": {
        "format_version": {"const": 3},
        "complete": {"const": True},
        "source": {
            "type": "object",
            "required": ["rows"],
            "properties": {
                "rows": _count,  # rows read, dropped_missing_labels included
                "dropped_missing_labels": _count,  # only after `split --drop-missing-labels`: in no shard
                "bytes": _count,
                "sha256": _sha256,
                "header": _names,
                "files": {"type": "array", "items": {
                    "type": "object", "required": ["name", "bytes", "sha256"],
                    "properties": {"name": _name, "bytes": _count, "sha256": _sha256, "rows": _count}}},
            },
        },
        "parameters": {  # extra keys allowed: the split's options grow
            "type": "object",
            "required": ["formats"],
            "properties": {
                "formats": {"type": "array", "minItems": 1, "uniqueItems": True, "items": {"enum": ["csv", "npy"]}},
                "max_categories": {"type": "integer", "minimum": 1, "maximum": MAX_CATEGORIES},
                "rows_per_shard": {"type": "integer", "minimum": 1},
                "test_fraction": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1},  # only when > 0
                "label": _name,
            },
        },
        "schema": {
            "type": "object",
            "required": ["columns", "label", "classes", "label_codes", "features", "categories", "encoding"],
            "properties": {
                "task": {"enum": list(TASKS)},
                "columns": {"type": "array", "minItems": 1, "maxItems": MAX_COLUMNS, "items": {
                    "type": "object", "required": ["name", "kind"],
                    "properties": {"name": _name, "kind": {"enum": list(COLUMN_KINDS)}}}},
                "label": _name,
                "classes": {"type": "array", "items": {"type": "string", "maxLength": MAX_NAME_LENGTH},
                            "maxItems": MAX_CLASSES, "uniqueItems": True},
                "label_codes": {"type": "array", "items": _count, "maxItems": MAX_CLASSES},
                "features": {**_names, "uniqueItems": True},
                "categories": {"type": "object", "additionalProperties": {
                    "type": "array", "maxItems": MAX_CATEGORIES,
                    "items": {"type": "string", "maxLength": MAX_NAME_LENGTH}}},
                "encoding": _encoding,
                "na_values": {"type": "array", "items": {"type": "string", "maxLength": MAX_NAME_LENGTH}},
                "delimiter": {"type": "string", "minLength": 1, "maxLength": 1},
            },
            "if": {"properties": {"task": {"const": "regression"}}, "required": ["task"]},
            "then": {"properties": {"classes": {"maxItems": 0}, "label_codes": {"maxItems": 0}}},
            "else": {"properties": {"classes": {"minItems": 1}, "label_codes": {"minItems": 1}}},
        },
        "stats": {"type": "object", "additionalProperties": _stats_entry},
        "scatter": _scatter,
        "parallel": {  # only after `split --parallel/--ray` (questlearn.split._parallel)
            "type": "object",
            "required": ["parts", "part_seeds", "engine"],
            "properties": {
                "parts": {"type": "integer", "minimum": 1},
                "part_seeds": {"type": "array", "items": {"type": "integer", "minimum": 0}},
                "part_rows": {"type": "array", "items": _count},
                "engine": {"enum": ["processes", "ray"]},
                "inexact_oov": {"type": "array", "items": {"type": "object", "required": ["column", "part", "oov_rows"]}},
            },
        },
        "subsets": {
            "type": "object",
            "required": ["train", "validate"],
            "properties": {"train": _subset, "validate": _subset, "test": _subset},  # test: only with test_fraction
        },
    },
}

@functools.cache
def _validator():
    """The compiled schema; jsonschema is imported here, on the first manifest checked, not at start-up."""
    return _jsonschema().Draft202012Validator(MANIFEST_SCHEMA)


def _jsonschema():
    """The ``jsonschema`` module, imported without the optional IRI format checker.

    Importing jsonschema registers a format checker for every optional
    package it finds. One of them, ``rfc3987_syntax`` (which JupyterLab's
    ``jupyter-events`` installs), compiles an Earley grammar at import: 1.2 s
    of CPU in every ``split``, ``train`` and ``evaluate`` that checks a
    manifest. :data:`MANIFEST_SCHEMA` uses no ``format`` keyword, so that
    package is hidden while jsonschema is first imported; once jsonschema is
    loaded (by questlearn or anyone before it) it is used as it is.
    """
    if "jsonschema" in sys.modules or "rfc3987_syntax" in sys.modules:
        import jsonschema

        return jsonschema
    sys.modules["rfc3987_syntax"] = None  # an import of it raises ImportError, which jsonschema skips
    try:
        import jsonschema
    finally:
        if sys.modules.get("rfc3987_syntax", 0) is None:
            del sys.modules["rfc3987_syntax"]
    return jsonschema


def validate_manifest(manifest, where: str) -> None:
    """Check a loaded manifest against :data:`MANIFEST_SCHEMA` and its own consistency.

    Parameters
    ----------
    manifest : object
        The parsed JSON.
    where : str
        The manifest's path, for messages.

    Raises
    ------
    ManifestError
        Naming the first wrong field (``schema.classes``, ``subsets.train.shards[3].rows``...) and why.
    """
    error = _jsonschema().exceptions.best_match(_validator().iter_errors(manifest))
    if error is not None:
        raise ManifestError(f"{where}: field {_field(error.absolute_path)} {_explain(error)}")
    _check_consistency(manifest, where)


def _field(path) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(the top level)"


def _explain(error) -> str:
    """What is wrong, without quoting a huge value back."""
    keyword, expected, value = error.validator, error.validator_value, error.instance
    if keyword == "type":
        return f"must be of type {expected}, not {type(value).__name__} ({_short(value)})"
    if keyword in ("const", "enum"):
        allowed = expected if keyword == "enum" else [expected]
        return f"must be {' or '.join(map(repr, allowed))}, not {_short(value)}"
    if keyword == "maxItems":
        return f"has {len(value)} entries, more than the {expected} allowed"
    if keyword == "minItems":
        return f"has {len(value)} entries, at least {expected} needed"
    if keyword == "maxProperties":
        return f"has {len(value)} entries, more than the {expected} allowed"
    if keyword == "required":
        missing = [key for key in expected if key not in value]
        return f"lacks the required key {missing[0]!r}" if missing else error.message
    if keyword in ("minimum", "maximum"):
        return f"must be {'at least' if keyword == 'minimum' else 'at most'} {expected}, not {_short(value)}"
    if keyword == "uniqueItems":
        return "holds the same entry twice"
    if keyword == "maxLength":
        return f"is a string of {len(value)} characters, more than the {expected} allowed ({_short(value)})"
    if keyword == "minLength":
        return f"is a string of {len(value)} characters, at least {expected} needed"
    # jsonschema's message quotes the value first and says why after it: shorten the value, never the why
    return error.message.replace(repr(value), _short(value), 1)


def _short(value, limit: int = 80) -> str:
    text = value if isinstance(value, str) and limit > 80 else repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _check_consistency(manifest: dict, where: str) -> None:
    schema = manifest["schema"]
    kinds = {column["name"]: column["kind"] for column in schema["columns"]}

    def wrong(field, why):
        raise ManifestError(f"{where}: field {field} {why}")

    if len(kinds) != len(schema["columns"]):
        wrong("schema.columns", "names the same column twice")
    if kinds.get(schema["label"]) != "label":
        wrong("schema.label", f"names {schema['label']!r}, which is not a column of kind 'label'")
    for position, feature in enumerate(schema["features"]):
        if kinds.get(feature) not in ("numeric", "categorical", "datetime"):
            wrong(f"schema.features[{position}]", f"names {feature!r}, which is not a numeric, categorical or datetime column")
        if kinds[feature] == "categorical" and feature not in schema["categories"]:
            wrong("schema.categories", f"has no category list for the categorical feature {feature!r}")
        if kinds[feature] == "numeric" and not isinstance(manifest["stats"].get(feature), dict):
            wrong("stats", f"has no statistics for the numeric feature {feature!r}")
    cap = manifest["parameters"].get("max_categories", MAX_CATEGORIES)
    for name, values in schema["categories"].items():
        if len(values) > cap:
            wrong(f"schema.categories.{name}", f"has {len(values)} categories, more than the split's max_categories {cap}")
    classes = len(schema["classes"])
    for position, code in enumerate(schema["label_codes"]):
        if code >= classes:
            wrong(f"schema.label_codes[{position}]", f"is {code}, not a class index (there are {classes} classes)")
    for name, entry in manifest["stats"].items():
        for key in ("mean", "variance"):
            value = entry.get(key)
            if isinstance(value, float) and not math.isfinite(value):
                wrong(f"stats.{name}.{key}", f"is {value}, not a finite number")
    _check_encoding(manifest, wrong)
    total = 0
    cap = manifest["parameters"].get("rows_per_shard")
    has_test = "test" in manifest["subsets"]
    if has_test != ("test_fraction" in manifest["parameters"]):
        wrong("subsets.test" if has_test else "parameters.test_fraction",
              "is present, but " + ("parameters.test_fraction is not: a split without test_fraction has no test subset"
                                    if has_test else "subsets.test is not: a split with test_fraction has a test subset"))
    for subset in ("train", "validate", "test") if has_test else ("train", "validate"):
        record = manifest["subsets"][subset]
        rows = sum(shard["rows"] for shard in record["shards"])
        if rows != record["rows"]:
            wrong(f"subsets.{subset}.rows", f"is {record['rows']}, but its shards hold {rows} rows")
        total += rows
        needed = {"csv": ("csv",), "npy": ("numbers", "codes", "labels", "rows")}
        for position, shard in enumerate(record["shards"]):
            if cap is not None and shard["rows"] > cap:
                wrong(f"subsets.{subset}.shards[{position}].rows", f"is {shard['rows']}, more than rows_per_shard {cap}")
            for part, entry in shard["files"].items():
                if entry["data_offset"] > entry["bytes"]:
                    wrong(f"subsets.{subset}.shards[{position}].files.{part}.data_offset",
                          f"is {entry['data_offset']}, past the file's {entry['bytes']} bytes")
            for form in manifest["parameters"]["formats"]:
                for part in needed[form]:
                    if part not in shard["files"]:
                        wrong(f"subsets.{subset}.shards[{position}].files", f"lacks {part!r} (the split has {form} shards)")
    dropped = manifest["source"].get("dropped_missing_labels", 0)
    if total + dropped != manifest["source"]["rows"]:
        wrong("source.rows", f"is {manifest['source']['rows']}, but the shards hold {total} rows"
              + (f" and {dropped} were dropped for a missing label" if dropped else ""))


def _check_encoding(manifest: dict, wrong) -> None:
    """``schema.encoding`` must describe exactly the features and categories of the schema."""
    from ..schema.datetimes import FORMATS
    from ..schema.encoding import DATETIME_PARTS, code_dtype

    schema = manifest["schema"]
    encoding = schema["encoding"]
    kinds = {column["name"]: column["kind"] for column in schema["columns"]}
    datetimes = [f for f in schema["features"] if kinds.get(f) == "datetime"]
    numbers = [f for f in schema["features"] if kinds.get(f) == "numeric" or kinds.get(f) == "datetime"]
    numbers = [f"{f}.days" if kinds[f] == "datetime" else f for f in numbers]
    categorical = [f for f in schema["features"] if kinds.get(f) == "categorical"]
    if encoding["numeric"] != numbers:
        wrong("schema.encoding.numeric", f"is {_short(encoding['numeric'])}, but the numeric features (and t.days of "
              f"each datetime t) are {_short(numbers)}")
    if encoding["categorical"] != categorical:
        wrong("schema.encoding.categorical",
              f"is {_short(encoding['categorical'])}, but the categorical features are {_short(categorical)}")
    if sorted(encoding["datetimes"]) != sorted(datetimes):
        wrong("schema.encoding.datetimes", f"names {_short(sorted(encoding['datetimes']))}, but the datetime features "
              f"are {_short(datetimes)}")
    known_formats = [fmt.pattern for fmt in FORMATS]
    for name, record in encoding["datetimes"].items():
        if record not in known_formats:
            wrong(f"schema.encoding.datetimes.{name}", f"is {_short(record)}, not a datetime format questlearn reads "
                  f"({', '.join(map(repr, known_formats))})")
    for name in numbers:  # the normalisation moments of the numbers block come from these
        entry = manifest["stats"].get(name)
        if not isinstance(entry, dict) or not {"missing", "mean", "variance"} <= set(entry) or entry["variance"] is None:
            wrong("stats", f"has no statistics (missing, mean, variance) for the numbers column {name!r}")
    if len(encoding["fill_values"]) != len(numbers):
        wrong("schema.encoding.fill_values", f"has {len(encoding['fill_values'])} entries for {len(numbers)} numbers columns")
    for position, value in enumerate(encoding["fill_values"]):
        if not math.isfinite(value):
            wrong(f"schema.encoding.fill_values[{position}]", f"is {value}, not a finite number")
    if sorted(encoding["vocabularies"]) != sorted(categorical) or sorted(encoding["hash_buckets"]) != sorted(categorical):
        wrong("schema.encoding.vocabularies", "must hold one vocabulary (and hash_buckets one count) per categorical feature")
    counts = []
    for name in categorical:
        if encoding["vocabularies"][name] != schema["categories"].get(name):
            wrong(f"schema.encoding.vocabularies.{name}", f"differs from schema.categories.{name}")
        counts.append(1 + encoding["hash_buckets"][name] + len(encoding["vocabularies"][name]))
    indicators = encoding.get("indicators", [])
    if any(name not in numbers for name in indicators):
        wrong("schema.encoding.indicators", f"names {_short(indicators)}, not all of them numbers columns")
    columns = categorical + [f"{t}.{part}" for t in encoding["datetimes"] for part in DATETIME_PARTS]
    columns += [f"{name}.missing" for name in indicators]
    counts += [count for _ in encoding["datetimes"] for count in DATETIME_PARTS.values()] + [2] * len(indicators)
    if encoding["code_columns"] != columns or encoding["code_counts"] != counts:
        wrong("schema.encoding.code_columns", f"are {_short(encoding['code_columns'])} with {_short(encoding['code_counts'])} "
              f"codes; the encoding makes {_short(columns)} with {_short(counts)}")
    if encoding["code_dtype"] != code_dtype(max(counts, default=1)).name:
        wrong("schema.encoding.code_dtype", f"is {encoding['code_dtype']!r}, not the narrowest type of codes up to {max(counts, default=1)}")
