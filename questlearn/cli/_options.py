"""Parsed arguments as the keyword options of the library: the schema's and the object store's.

Shared by the commands that read a source (``split``, ``inspect``) and those
that read or write an object store.
"""

from __future__ import annotations

DELIMITER_NAMES = {"comma": ",", "semicolon": ";", "tab": "\t", "\\t": "\t", "pipe": "|"}


def _schema_options(args) -> dict:
    """The options that shape the schema, shared by split and inspect.

    Parameters
    ----------
    args : argparse.Namespace
        The parsed command line, with the options of ``_add_schema_options``.

    Returns
    -------
    dict
        Keyword arguments of :func:`~questlearn.split.split_csv` and
        :func:`~questlearn.split.inspection.inspect_source`.
    """
    return dict(label=args.label, id_columns=args.id_column, categorical_columns=args.categorical_column,
                datetime_columns=args.datetime_column,
                na_values=args.na_value, keep_default_na=not args.no_default_na,
                delimiter=DELIMITER_NAMES.get(args.delimiter, args.delimiter), task=args.task,
                max_categories=args.max_categories, max_classes=args.max_classes, hash_buckets=args.hash_buckets,
                invalid=args.invalid)


def _storage_options(args) -> dict:
    """``--storage-option KEY=VALUE`` as the object store's options.

    Parameters
    ----------
    args : argparse.Namespace
        The parsed command line, with ``storage_option`` (a list of ``KEY=VALUE``).

    Returns
    -------
    dict
        The options of the object store, each value typed.
    """
    from ..io.storage import parse_storage_options

    return parse_storage_options(args.storage_option)
