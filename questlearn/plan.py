"""Decide the split before the pass: stage 2 of :mod:`questlearn.split`.

Before a row is dealt, the splitter settles, from the header and a sample
spread over the source:

* the columns: every file has the same header (CSV) or schema (Parquet),
  holding the label and every declared column;
* every column's kind and the model-ready encoding
  (:mod:`~questlearn.sampling`, :mod:`~questlearn.infer`,
  :mod:`~questlearn.encoding`), printed, problems raised;
* the rows to expect (exact for Parquet, estimated for CSV), which size the
  first wave of shards (:mod:`~questlearn.scatter`);
* the disk the shards need: a split that cannot fit is refused before
  anything is written;
* how many shards may be open at once (the open-file limit).

A resumed split takes all of these from its journal except the open-file
limit, which belongs to the process and is decided again.
"""

from __future__ import annotations

import contextlib
import math
import resource
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

from .csvscan import CsvFormatError, CsvScanner
from .encoding import Encoding
from .infer import infer_schema
from .sampling import sample_csv, sample_parquet

DISK_MARGIN = 1.05


@dataclass
class SplitPlan:
    """What a split decides before its pass (all of it journaled, for a resume).

    Attributes
    ----------
    kinds : dict
        Column name -> kind (:mod:`questlearn.schema`).
    label_numeric : bool
        Whether the label's sampled values are all numbers.
    inferred : list of dict
        The column reports (the manifest's ``schema.columns``).
    encoding : Encoding
        The model-ready encoding of every row.
    estimated_rows : int
        Rows expected in the source.
    estimated_bytes : int
        Bytes of shards expected (the disk check's figure).
    """

    kinds: dict
    label_numeric: bool
    inferred: list
    encoding: Encoding
    estimated_rows: int
    estimated_bytes: int


def plan_split(files, out: Path, params, *, schema=None, verbose: bool = True) -> SplitPlan:
    """Decide the kinds, the encoding and the expected size of a split of ``files`` into ``out``.

    Parameters
    ----------
    files : list of SourceFile
        The source (:func:`questlearn.sources.resolve_sources`), its
        columns already checked (:func:`read_columns`).
    out : Path
        The output directory (its disk is checked).
    params : SplitParameters
        The split's parameters.
    schema : InferredSchema, optional
        Kinds and encoding decided elsewhere (a parallel split's parent):
        used as they are, nothing is sampled.
    verbose : bool
        Print the schema, the encoding and the estimate.

    Raises
    ------
    ValueError
        A schema problem found in the sample, or too little disk.
    """
    inferred = schema if schema is not None else decide_schema(files, params, verbose=verbose)
    estimated_rows = estimate_rows(files, params)
    estimated_bytes = check_disk(files, out, params, inferred.encoding, estimated_rows, verbose=verbose)
    return SplitPlan(kinds=inferred.kinds, label_numeric=inferred.label_numeric,
                     inferred=[asdict(c) for c in inferred.columns], encoding=inferred.encoding,
                     estimated_rows=estimated_rows, estimated_bytes=estimated_bytes)


# -- the columns ------------------------------------------------------------
def read_columns(files, params) -> tuple[CsvScanner | None, list]:
    """The first file's scanner (CSV; None for Parquet) and the source's column names.

    Every file must have the same header (CSV) or schema (Parquet), holding
    the label and every declared id or categorical column.
    """
    scanner = None
    if files[0].format == "csv":
        scanner = csv_scanner(files[0], params)
        scanner.check_names()
        names = scanner.header.names
        for other in files[1:]:
            found = csv_scanner(other, params).header.names
            if found != names:
                raise CsvFormatError(other.shown, 1, 0, f"the header differs from {files[0].shown}'s "
                                     f"(expected {names}, found {found}); every file of a source must have the same columns")
    else:
        names = _parquet_names(files)
    _check_columns(names, params, files[0].shown)
    return scanner, names


def csv_scanner(source_file, params) -> CsvScanner:
    """The strict scanner of one CSV file of the source, with the split's block size and delimiter."""
    return CsvScanner(source_file, block_size=params.block_size, delimiter=params.delimiter)


def _parquet_names(files) -> list:
    import pyarrow.parquet as pq

    schema = pq.ParquetFile(files[0].path).schema_arrow
    for other in files[1:]:
        if not pq.ParquetFile(other.path).schema_arrow.equals(schema):
            raise ValueError(f"{other.shown}: its Parquet schema differs from {files[0].shown}'s; "
                             "every file of a source must have the same columns and types")
    return list(schema.names)


def _check_columns(names: list, params, where: str) -> None:
    label = params.label
    if label not in names:
        raise CsvFormatError(where, 1, 0, f"label column {label!r} is missing from the header (columns: {names}); "
                             "name the label with --label (Python: label=...)")
    for declared in (*params.id_columns, *params.categorical_columns):
        if declared not in names:
            raise ValueError(f"column {declared!r} was declared but is not in the header of {where} (columns: {names})")
    if label in params.id_columns or label in params.categorical_columns:
        raise ValueError(f"the label {label!r} cannot also be an id or categorical feature column")


# -- the schema -------------------------------------------------------------
def decide_schema(files, params, *, verbose: bool = True):
    """Sample the source, decide the column kinds and the encoding (printed; problems raise)."""
    csv = files[0].format == "csv"
    inferred = sample_schema(files, params)
    if verbose:
        print(inferred.describe(params.null_values if csv else None), flush=True)
    inferred.raise_problems()
    inferred.encoding = Encoding.from_sample(inferred.sample, inferred.kinds, params.fill,
                                             params.null_values if csv else (), max_categories=params.max_categories)
    if verbose:
        print(inferred.encoding.describe(), flush=True)
    return inferred


def sample_schema(files, params):
    """The :class:`~questlearn.infer.InferredSchema` of a sample spread over the source (problems listed, not raised)."""
    p = params
    if files[0].format == "csv":
        sample, note, locate = sample_csv(files, delimiter=p.delimiter, null_values=p.null_values)
        native = None
    else:
        sample, note = sample_parquet(files)
        native, locate = dict(zip(sample.schema.names, sample.schema.types)), None
    inferred = infer_schema(sample, label=p.label, task=p.task, id_columns=p.id_columns,
                            categorical_columns=p.categorical_columns, max_categories=p.max_categories,
                            max_classes=p.max_classes, native_types=native, sample_note=note, locate=locate)
    inferred.sample = sample
    return inferred


# -- the size -----------------------------------------------------------------
def estimate_rows(files, params) -> int:
    """Rows in the source, estimated from its first block (exact for Parquet)."""
    if files[0].format == "parquet":
        import pyarrow.parquet as pq

        return sum(pq.ParquetFile(f.path).metadata.num_rows for f in files)
    scanner = CsvScanner(files[0], block_size=4 << 20, delimiter=params.delimiter)
    blocks = scanner.blocks()
    try:
        block = next(blocks, None)
    finally:
        blocks.close()
    if block is None or not len(block):
        return 0
    decoded_per_raw = block.read_to / max(block.raw_position, 1)
    total = sum(f.bytes for f in files) * decoded_per_raw
    return int(math.ceil(total * len(block) / len(block.data)))


def check_disk(files, out: Path, params, encoding: Encoding, estimated_rows: int, *, verbose: bool = True) -> int:
    """Refuse before the pass when the output's disk cannot hold the estimated shards; return their bytes."""
    per_row = 4 * encoding.width + 4 + 8
    if "csv" in params.formats:
        per_row += sum(f.bytes for f in files) / max(estimated_rows, 1) * (
            1 if all(f.compression is None for f in files) else 4)
    needed = estimated_rows * per_row * DISK_MARGIN + (2 << 20)
    free = shutil.disk_usage(out).free
    if verbose:
        print(f"questlearn: about {estimated_rows:,} rows, about {needed / 1e9:.2f} GB of shards "
              f"({per_row:.0f} bytes a row; {free / 1e9:.1f} GB free in {out})", flush=True)
    if needed > free:
        raise ValueError(
            f"not enough disk for this split: about {estimated_rows:,} rows x {per_row:.0f} bytes "
            f"({encoding.width} float32 features + label + row number"
            f"{' + the CSV copy' if 'csv' in params.formats else ''}) = about {needed / 1e9:.2f} GB "
            f"of shards, but the disk holding {out} has {free / 1e9:.2f} GB free; free space, write to "
            "another disk"
            + (", or drop the CSV copies (formats=('npy',))" if "csv" in params.formats else "")
            + (", or lower --max-categories" if encoding.categorical else ""))
    return int(needed)


def open_shard_limit(max_open_shards: int, parts: int) -> int:
    """Shards that may be open at once, each with ``parts`` files: raise the
    soft descriptor limit to make room for ``max_open_shards``, or open fewer."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 2 * max_open_shards * parts + 256
    if soft != resource.RLIM_INFINITY and soft < wanted:
        target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if soft == resource.RLIM_INFINITY:
        return max_open_shards
    return max(1, min(max_open_shards, (soft - 256) // (2 * parts)))
