"""``split_csv``: the one entry point of a split, sequential or over part files in parallel."""

from __future__ import annotations

from .._interrupts import keep_interrupts_in_python
from ..errors import OptionError
from ._output import check_output_apart
from ._sequential import split_sequential


def split_csv(source, out_dir, *, progress: bool = False, verbose: bool = True, parallel: int | None = None,
              ray: str | None = None, schema=None, storage_options: dict | None = None, staging_dir=None,
              **parameters) -> dict:
    """Split ``source`` into model-ready shards under ``out_dir`` and return the manifest.

    Parameters
    ----------
    source : str, Path, or list of them
        A CSV file (UTF-8, RFC 4180 quoting; plain or gzip/bz2/xz/zstd
        compressed, detected by content), a Parquet file, a directory of part
        files, a glob, or a list of files: see
        :func:`questlearn.io.sources.resolve_sources`. All CSV files must have
        the same header. Each may be an object store's URL (``s3://bucket/logs/``,
        ``gs://...``; see :mod:`questlearn.io.storage`).
    out_dir : str or Path
        Output directory: empty, or holding this same split (finished, or
        interrupted and now resumed). Or a prefix in an object store
        (``s3://bucket/splits/2026/``), with the same rules: its shards are
        written in ``staging_dir`` one wave at a time, uploaded and checked,
        and ``manifest.json`` is uploaded last (docs/object-storage.md).
    progress : bool
        Show a progress bar (bytes of the source as stored, compressed or not).
    verbose : bool
        Print the inferred schema and encoding before the pass, and what to
        know at the end.
    **parameters
        Fields of :class:`SplitParameters`: ``rows_per_shard`` (the most
        rows a shard holds; shards are dealt rows at random and end about
        equal), ``val_fraction``, ``seed``, ``label``, ``id_columns``,
        ``categorical_columns``, ``formats`` (default ``("npy",)``; add
        ``"csv"`` for CSV copies of the rows), ``block_size``,
        ``max_categories``, ``na_values`` (extra missing-value tokens),
        ``keep_default_na`` (pandas' default tokens), ``delimiter``,
        ``task`` (``"classification"`` or ``"regression"``),
        ``max_classes``, ``fill`` (``"mean"``: a missing number becomes
        the sample mean; ``"zero"``), ``max_open_shards``,
        ``drop_missing_labels`` (rows whose label is empty or a missing-value
        token are left out of every shard and counted in the manifest's
        ``source.dropped_missing_labels``, instead of stopping the split),
        ``test_fraction`` (default 0: a held-out ``test/`` subset that
        training never reads, drawn with the same number per row as
        validate: a row goes to test when ``val_fraction <= r <
        val_fraction + test_fraction``), ``invalid`` (``"stop"``, the
        default: a value a numeric column reads as no number, or a datetime
        column as no date or time, stops the split with its column, file, line
        and byte; ``"missing"``: it is read as missing, filled like any
        missing value, and counted in its column's ``stats`` entry of the
        manifest as ``invalid``).
    parallel : int, optional
        Split each file of the source as its own task, this many at a time,
        and merge the results exactly (:mod:`questlearn.split._parallel`).
    ray : str, optional
        Run those tasks on Ray: ``"local"`` (a private Ray on 127.0.0.1) or
        a cluster address.
    schema : InferredSchema, optional
        Column kinds (and ``schema.encoding``) decided elsewhere (the
        parallel split's parent), used instead of sampling this source; a
        source with no data rows is then an empty part, not an error.
    storage_options : dict, optional
        Options of the object store's filesystem (``endpoint_override``,
        ``region``, ``anonymous``, ``scheme``...), for a source or an output
        given as a URL.
    staging_dir : str or Path, optional
        The local folder holding the current wave's shards of an output in an
        object store (default: ``~/.cache/questlearn/staging/<hash of the
        output URL>``, under ``$XDG_CACHE_HOME`` when set).

    Returns
    -------
    dict
        The manifest (also written to ``out_dir/manifest.json``).

    Raises
    ------
    CsvFormatError
        Malformed input, with file, line and byte offset.
    ValueError
        Bad parameters, a schema problem found in the sample, too little
        disk for the estimated output, a full disk, an output directory
        holding something else, or one that is, holds or lies inside the
        source; a train, validate or test subset left without rows
        (:mod:`questlearn.split._output`).

    Notes
    -----
    A split turns off pyarrow's own Ctrl-C handling for the process
    (:func:`questlearn._interrupts.keep_interrupts_in_python`), which can
    drop the signal: an interrupt then always stops the split.
    """
    keep_interrupts_in_python()
    for key in ("id_columns", "categorical_columns", "datetime_columns", "formats", "na_values"):
        if key in parameters:
            parameters[key] = tuple(parameters[key])
    check_output_apart(source, out_dir)
    if parallel is not None or ray is not None:
        if schema is not None:
            raise OptionError("a parallel split decides its schema itself; pass schema= or parallel=, not both")
        from ._parallel import split_parallel  # pools and Ray: only when asked for

        if staging_dir is not None:
            parameters["staging_dir"] = staging_dir

        return split_parallel(source, out_dir, parallel=parallel, ray=ray, progress=progress, verbose=verbose,
                              storage_options=storage_options, **parameters)
    return split_sequential(source, out_dir, progress=progress, verbose=verbose, schema=schema,
                            storage_options=storage_options, staging_dir=staging_dir, **parameters)
