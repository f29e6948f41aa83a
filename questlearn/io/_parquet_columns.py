"""How each column of a Parquet source is read: decided from its type, before the pass.

Every Arrow type a Parquet file can hold is either read in a known way or
refused here, with the column and the reason, before a row is dealt:

* numbers (integers, floats, booleans, decimals) are numeric. Decimals are
  read as float64; 64-bit integers past 2**53, which float64 cannot hold
  exactly, are read with that precision loss, stated in the printed schema
  (the CSV copies keep their digits);
* durations are numeric, in seconds;
* strings, dictionary-encoded or not, are decided as a CSV column is
  (numeric, categorical, text, or the label); a dictionary of numbers is
  numeric;
* dates and timestamps are carried as ISO-8601 text (``2024-05-01T12:00:00.000000Z``;
  a timestamp with a time zone as its wall clock there, with the offset:
  ``2024-05-01T08:00:00.000000-0400``), which the split reads as a datetime
  feature; times of day are kept as text;
* binary, list, struct, map and other nested columns can be neither a
  feature nor a field of a CSV copy. They are left out (with a printed
  note), and refused when CSV copies are requested or when one is named as
  the label or a categorical column.

:func:`open_parquet` and :func:`read_batches` turn a damaged file's pyarrow
error into a one-line message naming the file, row group and column.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc

from ..errors import InputFormatError, SchemaError, first_line

NUMBER, DURATION, STRING, DATETIME, NESTED = "number", "duration", "string", "datetime", "nested"
UTC_NAMES = ("UTC", "utc", "Etc/UTC", "Z", "+00:00", "GMT", "Etc/GMT")
EXACT_INTEGERS = 2 ** 53  # float64 holds every integer up to this one
SECONDS_PER_UNIT = {"s": 1, "ms": 1e3, "us": 1e6, "ns": 1e9}


class ParquetFormatError(InputFormatError):
    """A Parquet file cannot be read (damaged, truncated, not Parquet, a schema unlike the other files'), or a
    value in it cannot be used; the message names the file (and the row group, column or row)."""


def reading_of(arrow_type: pa.DataType) -> str:
    """How a column of ``arrow_type`` is read (``number``, ``duration``, ``string``, ``datetime`` or ``nested``)."""
    if pa.types.is_dictionary(arrow_type):
        return reading_of(arrow_type.value_type)
    t = pa.types
    if t.is_integer(arrow_type) or t.is_floating(arrow_type) or t.is_boolean(arrow_type) or t.is_decimal(arrow_type):
        return NUMBER
    if t.is_duration(arrow_type):
        return DURATION
    if t.is_string(arrow_type) or t.is_large_string(arrow_type) or t.is_null(arrow_type) \
            or arrow_type == getattr(pa, "string_view", lambda: None)():
        return STRING
    if t.is_timestamp(arrow_type) or t.is_date(arrow_type) or t.is_time(arrow_type):
        return DATETIME
    return NESTED  # binary, lists, structs, maps, unions, intervals, extension types


def readings_of(schema: pa.Schema) -> dict:
    """``{column: reading}`` of the columns a split carries (nested ones are left out)."""
    return {name: reading for name, reading in ((f.name, reading_of(f.type)) for f in schema) if reading != NESTED}


def carried_column(column, reading: str):
    """A Parquet column as the split carries it: dictionaries decoded, dates
    and times as ISO-8601 strings, durations as float64 seconds, strings as
    ``string``; numbers keep their type (the CSV copies write them exactly)."""
    if pa.types.is_dictionary(column.type):
        column = column.cast(column.type.value_type)
    kind = column.type
    if reading == DATETIME:
        if pa.types.is_timestamp(kind):
            if kind.tz is None:
                return pc.strftime(column, format="%Y-%m-%dT%H:%M:%S")
            if kind.tz in UTC_NAMES:
                return pc.strftime(column.cast(pa.timestamp(kind.unit, "UTC")), format="%Y-%m-%dT%H:%M:%SZ")
            return pc.strftime(column, format="%Y-%m-%dT%H:%M:%S%z")  # the wall clock in its zone, with the offset
        return column.cast(pa.string())
    if reading == DURATION:
        return pc.divide(column.cast(pa.int64()).cast(pa.float64()), SECONDS_PER_UNIT[kind.unit])
    if reading == STRING and kind != pa.string():
        return column.cast(pa.string())
    return column


def carried_table(table: pa.Table, readings: dict) -> pa.Table:
    """The columns of ``table`` named in ``readings``, as carried (:func:`carried_column`)."""
    return pa.table({name: carried_column(table[name], reading) for name, reading in readings.items()})


def as_float(column):
    """A carried numeric column as float64 (integers past 2**53 rounded, as the plan noted)."""
    if pa.types.is_integer(column.type):
        return column.cast(pa.float64(), safe=False)
    return column.cast(pa.float64())


def native_types(schema: pa.Schema) -> dict:
    """The type of each carried column for the schema inference: numbers,
    durations, dates and times in their own type, strings ``string``."""
    types = {}
    for name, reading in readings_of(schema).items():
        kind = schema.field(name).type
        kind = kind.value_type if pa.types.is_dictionary(kind) else kind
        types[name] = pa.string() if reading == STRING else kind
    return types


@dataclass
class ParquetColumns:
    """What the Parquet schema decides before the pass.

    Attributes
    ----------
    readings : dict
        ``{column: reading}`` of the carried columns, in schema order.
    left_out : dict
        ``{column: type}`` of the nested columns left out.
    largest : dict
        ``{column: largest magnitude}`` of 64-bit integer columns whose
        file statistics show values past 2**53.
    """

    readings: dict
    left_out: dict = field(default_factory=dict)
    largest: dict = field(default_factory=dict)


def parquet_columns(files, params) -> ParquetColumns:
    """Decide how every column of a Parquet source is read; refuse what cannot be.

    Raises
    ------
    SchemaError
        A nested column named as the label or a categorical column, or
        present while CSV copies are requested; a date or time label.
    """
    schema = open_parquet(files[0]).schema_arrow
    readings = readings_of(schema)
    left_out = {f.name: str(f.type) for f in schema if f.name not in readings}
    for name, kind in left_out.items():
        if name == params.label or name in params.categorical_columns:
            role = "the label" if name == params.label else "a categorical column"
            raise SchemaError(f"{files[0].shown}: column {name!r} holds {kind} values, which cannot be {role}: "
                             "questlearn reads numbers, strings, dates and times; name another column")
        if "csv" in params.formats:
            raise SchemaError(f"{files[0].shown}: column {name!r} holds {kind} values, which cannot be written into "
                             "the CSV copies: split without them (--formats npy), or write the Parquet file without "
                             "that column")
    if readings.get(params.label) == DATETIME:
        raise SchemaError(f"{files[0].shown}: the label {params.label!r} holds {schema.field(params.label).type} "
                         "values; a label must be a number or a string")
    wide = [n for n in readings if pa.types.is_integer(_value_type(schema.field(n).type))
            and _value_type(schema.field(n).type).bit_width == 64]
    return ParquetColumns(readings, left_out, _largest_integers(files, wide) if wide else {})


def _value_type(kind: pa.DataType) -> pa.DataType:
    return kind.value_type if pa.types.is_dictionary(kind) else kind


def _largest_integers(files, names) -> dict:
    """``{column: largest magnitude}`` past 2**53 that the row groups' statistics show."""
    largest = {}
    for source_file in files:
        if not source_file.bytes:
            continue
        metadata = open_parquet(source_file).metadata
        positions = {metadata.schema.column(i).path: i for i in range(metadata.num_columns)}
        for group in range(metadata.num_row_groups):
            for name in names:
                if name not in positions:
                    continue
                stats = metadata.row_group(group).column(positions[name]).statistics
                if stats is None or not stats.has_min_max:
                    continue
                top = max(abs(int(stats.min)), abs(int(stats.max)))
                if top > EXACT_INTEGERS and top > largest.get(name, 0):
                    largest[name] = top
    return largest


def precision_notes(largest: dict) -> list:
    """One line per integer column that float64 reads with precision loss."""
    return [f"column {name!r} holds integers up to {top:,}, past 2**53: read as numbers they lose precision "
            f"(float64 keeps about 16 digits); the CSV copies keep them exact; declare it --id-column if it "
            "is an identifier" for name, top in largest.items()]


def left_out_notes(left_out: dict) -> list:
    """One line per nested column left out of the split."""
    return [f"column {name!r} ({kind}) is left out: questlearn reads numbers, strings, dates and times; this type "
            "can be neither a feature nor written into CSV copies" for name, kind in left_out.items()]


# -- damaged files -------------------------------------------------------------
def open_parquet(source_file):
    """``pyarrow.parquet.ParquetFile`` of ``source_file``; a file pyarrow cannot open is a :class:`ParquetFormatError`."""
    import pyarrow.parquet as pq

    try:
        return pq.ParquetFile(source_file.store.open_random(source_file.path))  # a store: footer and groups by ranges
    except (pa.ArrowException, OSError) as error:
        raise ParquetFormatError(f"{source_file.shown}: not a readable Parquet file ({first_line(error)[:200]}); "
                                 "the file is damaged or truncated: copy or write it again") from None


def read_batches(parquet, source_file, group: int, columns: list, batch_size: int):
    """The batches of row group ``group``; a damaged row group is a :class:`ParquetFormatError` naming the column."""
    try:
        yield from parquet.iter_batches(batch_size=batch_size, row_groups=[group], columns=columns)
    except (pa.ArrowException, OSError) as error:
        raise ParquetFormatError(f"{source_file.shown}: row group {group}{_damaged_column(parquet, group, columns)}: "
                                 f"the data is damaged ({first_line(error)[:200]}); copy or write the file again") from None


def _damaged_column(parquet, group: int, columns: list) -> str:
    """``", column 'x'"`` for the first column of ``group`` that cannot be read, or ``""``."""
    for name in columns:
        try:
            parquet.read_row_group(group, columns=[name])
        except (pa.ArrowException, OSError):
            return f", column {name!r}"
    return ""
