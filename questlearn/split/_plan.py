"""Decide the split before the pass: stage 2 of :mod:`questlearn.split._sequential`.

Before a row is dealt, the splitter settles, from the header and a sample
spread over the source:

* the columns: every file has the same header (CSV) or schema (Parquet),
  holding the label and every declared column;
* every column's kind and the model-ready encoding
  (:mod:`~questlearn.schema._sampling`, :mod:`~questlearn.schema.infer`,
  :mod:`~questlearn.schema.encoding`), printed, problems raised;
* the rows to expect (exact for Parquet, estimated for CSV), which size the
  first wave of shards (:mod:`~questlearn.split._scatter`);
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

import numpy as np
import pyarrow.compute as pc

from .._sizes import human_size
from ..io._parquet_columns import (
    EXACT_INTEGERS,
    as_float,
    left_out_notes,
    native_types,
    open_parquet,
    parquet_columns,
    precision_notes,
)
from ..io.csvscan import CsvFormatError, CsvScanner
from ..schema._sampling import measure_csv, sample_csv, sample_parquet
from ..schema.encoding import Encoding
from ..schema.infer import SchemaError, infer_schema

DISK_MARGIN = 1.05
#: The first wave of shards is opened for this many times the estimated rows
#: (:meth:`SplitPlan.first_wave_rows`). Cost: when the estimate is exact,
#: shards end about 5 % below ``rows_per_shard``. Gain: an estimate up to 5 %
#: short still deals every row in one wave, so every shard samples the whole
#: source (rows beyond the places would go to a last wave of shards that
#: sample only the source's tail).
ESTIMATE_MARGIN = 1.05
#: Standard deviations of a subset's random size allowed for in the first wave.
SUBSET_SPREAD = 4


@dataclass
class SplitPlan:
    """What a split decides before its pass (all of it journaled, for a resume).

    Attributes
    ----------
    kinds : dict
        Column name -> kind (:mod:`questlearn.schema._columns`).
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
    exact : bool
        Whether ``estimated_rows`` is a count (Parquet metadata, or a
        one-file CSV source the sample read whole), not an extrapolation.
    """

    kinds: dict
    label_numeric: bool
    inferred: list
    encoding: Encoding
    estimated_rows: int
    estimated_bytes: int
    exact: bool = False

    def first_wave_rows(self, share: float) -> float:
        """Rows to open the first wave of a subset's shards for, the subset
        taking ``share`` of the rows by a random draw.

        The estimate, times :data:`ESTIMATE_MARGIN` unless exact, plus
        :data:`SUBSET_SPREAD` standard deviations of the subset's binomial
        size, so that one wave holds every row of the subset.
        """
        rows = self.estimated_rows * share
        margin = 1.0 if self.exact else ESTIMATE_MARGIN
        return rows * margin + SUBSET_SPREAD * math.sqrt(rows * (1 - share))


def plan_split(files, out: Path, params, *, schema=None, verbose: bool = True) -> SplitPlan:
    """Decide the kinds, the encoding and the expected size of a split of ``files`` into ``out``.

    Parameters
    ----------
    files : list of SourceFile
        The source (:func:`questlearn.io.sources.resolve_sources`), its
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
    estimated_rows, exact = estimate_rows(files, params, inferred.extent)
    estimated_bytes = check_disk(files, out, params, inferred.encoding, estimated_rows, verbose=verbose)
    return SplitPlan(kinds=inferred.kinds, label_numeric=inferred.label_numeric,
                     inferred=[asdict(c) for c in inferred.columns], encoding=inferred.encoding,
                     estimated_rows=estimated_rows, estimated_bytes=estimated_bytes, exact=exact)


# -- the columns ------------------------------------------------------------
def read_columns(files, params) -> tuple[CsvScanner | None, list]:
    """The first file's scanner (CSV; None for Parquet) and the source's column names.

    Every file must have the same header (CSV) or schema (Parquet), holding
    the label and every declared id or categorical column. Empty (0-byte)
    files are skipped like header-only ones. A Parquet source's names are
    those it carries (:func:`~questlearn.io._parquet_columns.parquet_columns`
    refuses or leaves out the others).
    """
    scanner = None
    files = with_bytes(files)
    if files[0].format == "csv":
        scanner = csv_scanner(files[0], params)
        scanner.check_names()
        names = scanner.header.names
        for other in files[1:]:
            found = csv_scanner(other, params).header.names
            if found != names:
                raise CsvFormatError(other.shown, 1, 0, f"the header differs from {files[0].shown}'s: "
                                     f"{header_difference(names, found)}; every file of a source must have the "
                                     "same columns")
        _check_columns(names, params, files[0].shown)
    else:
        _check_columns(_parquet_names(files), params, files[0].shown)  # an id column may be one left out
        names = list(parquet_columns(files, params).readings)
    return scanner, names


def with_bytes(files) -> list:
    """The files that are not empty (0 bytes), or all of them when all are (the reader then says the file is empty)."""
    return [f for f in files if f.bytes] or list(files)


def header_difference(expected: list, found: list) -> str:
    """How a header differs, without echoing the file: the counts, or the first differing column."""
    if len(found) != len(expected):
        return f"{len(found)} column{'s' if len(found) != 1 else ''} where {len(expected)} are expected"
    position = next(i for i, (a, b) in enumerate(zip(expected, found)) if a != b)
    shown = found[position] if len(found[position]) <= 40 else found[position][:39] + "…"
    return f"column {position + 1} is {shown!r} where {expected[position]!r} is expected"


def csv_scanner(source_file, params) -> CsvScanner:
    """The strict scanner of one CSV file of the source, with the split's block size and delimiter."""
    return CsvScanner(source_file, block_size=params.block_size, delimiter=params.delimiter)


def _parquet_names(files) -> list:
    schema = open_parquet(files[0]).schema_arrow
    for other in files[1:]:
        if not open_parquet(other).schema_arrow.equals(schema):
            raise ValueError(f"{other.shown}: its Parquet schema differs from {files[0].shown}'s; "
                             "every file of a source must have the same columns and types")
    return list(schema.names)


def _check_columns(names: list, params, where: str) -> None:
    label = params.label
    if label is not None and label not in names:  # None: inspect without --label
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
    """The :class:`~questlearn.schema.infer.InferredSchema` of a sample spread over the source (problems listed, not raised)."""
    p = params
    files, notes = with_bytes(files), []
    if files[0].format == "csv":
        sample, note, locate, extent = sample_csv(files, delimiter=p.delimiter, null_values=p.null_values)
        native = None
    else:
        columns = parquet_columns(files, p)
        sample, note = sample_parquet(files, columns.readings)
        sample, largest = _numbers_as_read(sample, columns.largest)
        native, locate, extent = native_types(open_parquet(files[0]).schema_arrow), None, None
        notes = precision_notes(largest) + left_out_notes(columns.left_out)
    if p.drop_missing_labels:  # the kinds and fills of the rows the shards will hold
        sample, locate = _labelled_rows(sample, p.label, locate)
    inferred = infer_schema(sample, label=p.label, task=p.task, id_columns=p.id_columns,
                            categorical_columns=p.categorical_columns, max_categories=p.max_categories,
                            max_classes=p.max_classes, native_types=native, sample_note=note, locate=locate)
    inferred.extent, inferred.notes = extent, notes
    return inferred


def _numbers_as_read(sample, largest: dict):
    """The Parquet sample with decimals, and integers past 2**53, as the float64 the pass reads them as;
    and ``{column: largest magnitude}`` of those integers (statistics or sample)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    largest, columns = dict(largest), {}
    for name in sample.column_names:
        column = sample[name]
        if pa.types.is_integer(column.type) and column.null_count < len(column):
            extremes = pc.min_max(column).as_py()
            top = max(abs(extremes["min"]), abs(extremes["max"]))
            if top > EXACT_INTEGERS:
                largest[name] = max(top, largest.get(name, 0))
        if pa.types.is_decimal(column.type) or name in largest:
            column = as_float(column)
        columns[name] = column
    return pa.table(columns), largest


def _labelled_rows(sample, label: str, locate):
    """The sample's rows that have a label, and ``locate`` for their new positions."""
    present = pc.is_valid(sample[label])
    kept = np.flatnonzero(present.to_numpy(zero_copy_only=False))
    if sample.num_rows and not len(kept):
        raise SchemaError(f"the label {label!r} is missing in all {sample.num_rows} sampled rows: there is nothing "
                          "to learn from; is it the right column? (--label NAME)")
    if locate is None or len(kept) == sample.num_rows:
        return sample.filter(present), locate
    return sample.filter(present), lambda row: locate(int(kept[row]))


# -- the size -----------------------------------------------------------------
def estimate_rows(files, params, extent=None) -> tuple[int, bool]:
    """Rows in the source and whether that is a count (Parquet: always).

    A CSV source's rows: those counted in the sample's first stretch, plus
    the rest of the (decoded) bytes at the pieces' records per byte. The
    pieces are spread over the whole source, so a log whose rows change
    length along the way is estimated from all of it, not its first block.
    Compressed files count as their size times the decoded-per-stored
    ratio of the first compressed block sampled. ``extent`` is the
    sample's :class:`~questlearn.schema._sampling.SampleExtent` (measured here
    when the schema was decided elsewhere).
    """
    files = with_bytes(files)
    if files[0].format == "parquet":
        return sum(open_parquet(f).metadata.num_rows for f in files), True
    if extent is None:
        extent = measure_csv(files, delimiter=params.delimiter)
    if len(files) == 1 and extent.first_whole:
        return extent.first_records, True
    ratio = extent.decoded_per_raw or 1.0
    decoded = sum(f.bytes if f.compression is None else f.bytes * ratio for f in files)
    rest = max(decoded - extent.first_end, 0)
    if extent.piece_records:
        per_byte = extent.piece_records / extent.piece_bytes
    elif extent.first_records:
        per_byte = extent.first_records / max(extent.first_end, 1)
    else:
        return 0, False
    return int(math.ceil(extent.first_records + rest * per_byte)), False


def check_disk(files, out: Path, params, encoding: Encoding, estimated_rows: int, *, verbose: bool = True) -> int:
    """Refuse before the pass when the output's disk cannot hold the estimated shards; return their bytes."""
    per_row = 4 * encoding.width + 4 + 8
    if "csv" in params.formats:
        per_row += sum(f.bytes for f in files) / max(estimated_rows, 1) * (
            1 if all(f.compression is None for f in files) else 4)
    needed = estimated_rows * per_row * DISK_MARGIN + (2 << 20)
    free = shutil.disk_usage(out).free
    if verbose:
        print(f"questlearn: about {estimated_rows:,} rows, about {human_size(needed)} of shards "
              f"({per_row:.0f} bytes a row; {human_size(free)} free in {out})", flush=True)
    if needed > free:
        raise ValueError(
            f"not enough disk for this split: about {estimated_rows:,} rows x {per_row:.0f} bytes "
            f"({encoding.width} float32 features + label + row number"
            f"{' + the CSV copy' if 'csv' in params.formats else ''}) = about {human_size(needed)} "
            f"of shards, but the disk holding {out} has {human_size(free)} free; free space, write to "
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
