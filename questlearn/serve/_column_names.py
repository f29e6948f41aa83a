"""The names a SavedModel's ``serving_default`` signature gives its feature columns.

A signature key must pass what TensorFlow checks when it saves and calls a
signature (TensorFlow 2.x, ``tf.saved_model.save``):

* it is a Python parameter name (``inspect.Parameter``): an identifier and no
  keyword (``class``, ``lambda``, ``from``, ``None``, ...);
* it is left as it is by TensorFlow's own renaming of function arguments,
  which turns every character but a letter, digit or ``_`` into ``_`` and
  puts ``arg_`` before a name that does not start with a letter;
* it is a graph operation name (``[A-Za-z0-9.][A-Za-z0-9_.\\/>-]*``): ASCII;
* it is not ``self`` (the signature's own call takes ``self``);
* no two keys differ only in case: the graph keeps its names unique ignoring
  case.

So a key is ``[A-Za-z][A-Za-z0-9_]*``, not a Python keyword nor ``self``,
unique ignoring case. A column name that is such a key is its own key;
another is rewritten (:func:`signature_key`), and two columns with one key
are refused.
"""

from __future__ import annotations

import keyword
import re
import unicodedata

from ..errors import SchemaError

_KEY = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
_RESERVED = frozenset({"self"})
COLUMN_PREFIX = "column_"  # before a rewritten name that does not start with a letter


def is_signature_key(name: str) -> bool:
    """Whether ``name`` can be a ``serving_default`` input as it is (see the module docstring)."""
    return bool(_KEY.fullmatch(name)) and not keyword.iskeyword(name) and name not in _RESERVED


def signature_key(column: str) -> str:
    """The ``serving_default`` input of a feature column: its name where TensorFlow allows it, else rewritten.

    The rewriting, the same on every run: accents are dropped (``città`` ->
    ``citta``); an ASCII character other than a letter, digit or ``_``
    becomes ``_`` (``a/b c`` -> ``a_b_c``); another character becomes ``u``
    and its 4-digit hexadecimal code point (``€`` -> ``u20ac``); a key that
    does not start with a letter gets ``column_`` before it (``2nd`` ->
    ``column_2nd``); a Python keyword or ``self`` gets ``_`` after it
    (``class`` -> ``class_``).
    """
    if is_signature_key(column):
        return column
    parts = []
    for character in unicodedata.normalize("NFKD", column):
        if unicodedata.combining(character):
            continue  # the accent of a decomposed letter
        if character.isascii():
            parts.append(character if character.isalnum() or character == "_" else "_")
        else:
            parts.append(f"u{ord(character):04x}")
    key = "".join(parts)
    if not _KEY.fullmatch(key):
        key = COLUMN_PREFIX + key
    return key + "_" if keyword.iskeyword(key) or key in _RESERVED else key


def signature_keys(columns) -> dict:
    """``{column: signature key}`` of the feature columns, in their order.

    Raises
    ------
    SchemaError
        Two columns have one key (ignoring case, as TensorFlow does); the
        message names both.
    """
    keys, owners = {}, {}
    for column in columns:
        key = signature_key(column)
        other = owners.setdefault(key.lower(), column)
        if other != column:
            named = repr(key) if keys[other] == key else f"{keys[other]!r} and {key!r}: one name, ignoring case"
            raise SchemaError(
                f"the feature columns {other!r} and {column!r} would be one input of the SavedModel's serving "
                f"signature ({named}; its inputs hold only letters, digits and '_'): rename one of the two in the "
                f"source and split it again")
        keys[column] = key
    return keys


def describe_rewritten(keys: dict) -> str | None:
    """One line naming the columns whose signature key is not their name, or None when there are none."""
    rewritten = [f"{column!r} as {key!r}" for column, key in keys.items() if column != key]
    if not rewritten:
        return None
    return (f"questlearn: the SavedModel's serving signature takes {', '.join(rewritten)} (TensorFlow's rules for "
            f"its input names; inference.json's signature_keys records them)")
