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
from ..errors import DiskFullError, OptionError, SchemaError
from ..io.csvscan import CsvFormatError
from ..io.readers import SourceReader, reader_for
from ..schema.encoding import Encoding
from ..schema.infer import infer_schema
from ..train._embedding import describe_embeddings

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


def plan_split(reader: SourceReader, out: Path, params, output=None, *, schema=None, verbose: bool = True) -> SplitPlan:
    """Decide the kinds, the encoding and the expected size of a split of a source into ``out``.

    Parameters
    ----------
    reader : SourceReader
        The source (:func:`read_columns`: its columns already checked).
    out : Path
        The folder the shards are written in (its disk is checked).
    params : SplitParameters
        The split's parameters.
    output : LocalOutput or RemoteOutput, optional
        Where the split goes (:func:`questlearn.io.outputs.open_output`):
        ``out`` itself (the default), or a store's prefix, ``out`` then
        its staging folder, which holds one wave of shards at a time.
    schema : InferredSchema, optional
        Kinds and encoding decided elsewhere (a parallel split's parent):
        used as they are, nothing is sampled.
    verbose : bool
        Print the schema, the encoding and the estimate.

    Raises
    ------
    SchemaError, DiskFullError
        A schema problem found in the sample, or too little disk.
    """
    inferred = schema if schema is not None else decide_schema(reader, params, verbose=verbose)
    estimated_rows, exact = reader.estimate_rows(inferred.extent)
    estimated_bytes = check_disk(reader.files, out, params, inferred.encoding, estimated_rows, verbose=verbose,
                                 output=output)
    return SplitPlan(kinds=inferred.kinds, label_numeric=inferred.label_numeric,
                     inferred=[asdict(c) for c in inferred.columns], encoding=inferred.encoding,
                     estimated_rows=estimated_rows, estimated_bytes=estimated_bytes, exact=exact)


# -- the columns ------------------------------------------------------------
def read_columns(files, params) -> tuple[SourceReader, list]:
    """The source's reader and the column names a split of it carries.

    Every file must have the same header (CSV) or schema (Parquet), holding
    the label and every declared id or categorical column. Empty (0-byte)
    files are skipped like header-only ones. A Parquet source's names are
    those it carries (:func:`~questlearn.io._parquet_columns.parquet_columns`
    refuses or leaves out the others).
    """
    reader = reader_for(files, delimiter=params.delimiter, block_size=params.block_size)
    _check_columns(reader.names, params, reader.readable[0].shown)  # an id column may be one left out
    return reader, reader.columns(params)


def _check_columns(names: list, params, where: str) -> None:
    label = params.label
    if label is not None and label not in names:  # None: inspect without --label
        raise CsvFormatError(where, 1, 0, f"label column {label!r} is missing from the header (columns: {names}); "
                             "name the label with --label (Python: label=...)")
    for declared in (*params.id_columns, *params.categorical_columns, *params.datetime_columns):
        if declared not in names:
            raise SchemaError(f"column {declared!r} was declared but is not in the header of {where} (columns: {names})")
    if label in (*params.id_columns, *params.categorical_columns, *params.datetime_columns):
        raise OptionError(f"the label {label!r} cannot also be an id, categorical or datetime feature column")
    declared = [*params.id_columns, *params.categorical_columns, *params.datetime_columns]
    twice = sorted({name for name in declared if declared.count(name) > 1})
    if twice:
        raise OptionError(f"column {twice[0]!r} is declared as two kinds (--id-column, --categorical-column, "
                          "--datetime-column): name it once")


# -- the schema -------------------------------------------------------------
def decide_schema(reader: SourceReader, params, *, verbose: bool = True):
    """Sample the source, decide the column kinds and the encoding (printed; problems raise)."""
    inferred = sample_schema(reader, params)
    tokens = reader.missing_tokens(params.null_values)
    if verbose:
        print(inferred.describe(tokens), flush=True)
    inferred.raise_problems()
    inferred.encoding = Encoding.from_sample(inferred.sample, inferred.kinds, params.fill, tokens or (),
                                             max_categories=params.max_categories, hash_buckets=params.hash_buckets,
                                             datetime_formats=inferred.datetime_formats)
    if verbose:
        print(inferred.encoding.describe(), flush=True)
        print(describe_embeddings(inferred.encoding.code_counts), flush=True)
    if not inferred.encoding.features:
        raise SchemaError(f"{reader.files[0].shown}: no column is a feature (the label {params.label!r}, ids and free "
                          "text are not): a model needs at least one; a numeric-looking id that is a real feature "
                          "is not an --id-column, and a string column becomes one with --categorical-column NAME")
    return inferred


def sample_schema(reader: SourceReader, params):
    """The :class:`~questlearn.schema.infer.InferredSchema` of a sample spread over the source (problems listed, not raised)."""
    p = params
    sample = reader.sample(p)
    table, locate = sample.table, sample.locate
    if p.drop_missing_labels:  # the kinds and fills of the rows the shards will hold
        table, locate = _labelled_rows(table, p.label, locate)
    inferred = infer_schema(table, label=p.label, task=p.task, id_columns=p.id_columns,
                            categorical_columns=p.categorical_columns, datetime_columns=p.datetime_columns,
                            max_categories=p.max_categories,
                            max_classes=p.max_classes, native_types=sample.native_types, sample_note=sample.note,
                            locate=locate, invalid=p.invalid)
    inferred.sample, inferred.extent, inferred.notes = table, sample.extent, sample.notes
    return inferred


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
COMPRESSION_GUESS = 4  # decoded bytes per stored byte of a compressed file that records no uncompressed size


def check_disk(files, out: Path, params, encoding: Encoding, estimated_rows: int, *, verbose: bool = True,
               output=None) -> int:
    """Refuse before the pass when the disk of ``out`` cannot hold the shards it must hold at once (all of
    them; for a store's output, one wave: :meth:`~questlearn.io.outputs.RemoteOutput.disk_need`); return
    the bytes of all the shards."""
    per_row = encoding.row_bytes() + 4 + 8
    if "csv" in params.formats:  # the CSV copies hold the decoded records: a compressed file's guessed at 4x
        per_row += sum(f.decoded_bytes(COMPRESSION_GUESS) for f in files) / max(estimated_rows, 1)
    total = estimated_rows * per_row * DISK_MARGIN + (2 << 20)
    wave_rows = sum(min(estimated_rows * params.share(s) * ESTIMATE_MARGIN + 1,
                        params.max_open_shards * params.rows_per_shard) for s in params.subsets)
    one_wave = wave_rows * per_row * DISK_MARGIN + (2 << 20)
    needed = output.disk_need(total, one_wave) if output is not None else total
    free = shutil.disk_usage(out).free
    if verbose:
        where = output.disk_note(needed, free) if output is not None else f"{human_size(free)} free in {out}"
        print(f"questlearn: about {estimated_rows:,} rows, about {human_size(total)} of shards "
              f"({per_row:.0f} bytes a row; {where})", flush=True)
    if needed > free:
        raise DiskFullError(
            f"not enough disk for this split: about {estimated_rows:,} rows x {per_row:.0f} bytes "
            f"({len(encoding.numeric)} float32 numbers + {len(encoding.code_columns)} codes + label + row number"
            f"{' + the CSV copy' if 'csv' in params.formats else ''}) = about {human_size(needed)} "
            f"of shards{'' if needed == total else f', one wave of them, about {human_size(needed)}, staged at a time'}"
            f", but the disk holding {out} has {human_size(free)} free; free space, write to "
            f"another disk{'' if needed == total else ' (--staging-dir)'}"
            + (", or drop the CSV copies (formats=('npy',))" if "csv" in params.formats else "")
            )
    return int(total)


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
