"""Datetime columns: detect a text format, parse it, and derive the model's features.

What a datetime value becomes (binding: the split, the model and the serving
function all build on it):

* **Seconds.** A value is reduced to its *wall-clock time as written*, as an
  int64 count of seconds since 1970-01-01T00:00 (negative before 1970). A zone
  designator is read but not applied: ``2013-01-01T10:00:00-05:00``,
  ``2013-01-01T10:00:00Z`` and ``2013-01-01 10:00:00`` all give the seconds of
  2013-01-01 10:00:00. A date alone is midnight. Fractional seconds are dropped,
  which for a wall-clock time is the floor (the earlier second). Parquet
  timestamps with a time zone give their wall clock in that zone
  (:func:`from_arrow`).
* **Missing.** A null or empty (``""``) value is missing. Where one array of
  seconds must carry missing values on its own (inside a Keras model, from
  :func:`tf_parse`), a missing value is :data:`MISSING_SECONDS`, the smallest
  int64, which no four-digit year reaches.
* **Features** of seconds ``s`` (:func:`features`, :func:`keras_features`):
  ``days`` = ``s / 86400`` (NaN when missing); three integer codes with 0 for
  missing: ``hour`` = hour of day + 1 (1..24), ``weekday`` = Monday..Sunday ->
  1..7, ``month`` = 1..12. Their cardinalities (codes 0 included) are
  :data:`CODE_CARDINALITIES`: 25, 8 and 13.

The text formats (:data:`FORMATS`, tried in this order by :func:`detect_format`):

=================================  ==============================================
``YYYY-MM-DD``                     a date alone
``ISO 8601``                       ``YYYY-MM-DD`` then optionally ``T`` or a space,
                                   ``hh:mm``, ``:ss``, a fraction (``.`` or ``,``)
                                   and a zone: ``Z``, ``+hh:mm``, ``+hhmm``, ``-hh``
``YYYY-MM-DD hh:mm:ss UTC``        with an optional fraction before `` UTC``
``YYYY/MM/DD``                     then optionally `` hh:mm[:ss[.fff]]``
``DD.MM.YYYY``                     then optionally `` hh:mm[:ss[.fff]]``
``MM/DD/YYYY``, ``DD/MM/YYYY``     then optionally `` hh:mm[:ss[.fff]]``
=================================  ==============================================

In the last four, month, day and hour may have one digit (``3/4/2013 9:05``).
Spaces around a value are allowed. A value that matches but names no real time
(month 13, day 32, February 30 outside leap years, hour 24, minute or second 60)
does not parse. :func:`detect_format` can tolerate a few values that do not parse
(:func:`tolerated_unreadable`: 1 % of a sample), which :func:`unreadable` then finds.
Plain numbers (``2013``, ``20130101``, epoch seconds) are never datetimes.

Nothing here imports Keras or TensorFlow at module import: :func:`keras_features`
and :func:`tf_parse` import them when called. The calendar arithmetic (Howard
Hinnant's days-from-civil) is written once with operators and runs on numpy
arrays, TensorFlow tensors and Keras tensors alike, so :func:`parse` and
:func:`tf_parse`, :func:`features` and :func:`keras_features` agree exactly.
Formats that start ``YYYY-MM-DD`` are read at fixed byte positions once a regular
expression has checked the whole value (several million values a second); the
others through the expression's groups.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..errors import ManifestError

__all__ = ["DatetimeFormat", "FORMATS", "MISSING_SECONDS", "CODE_CARDINALITIES", "detect_format", "closest_format",
           "tolerated_unreadable", "unreadable", "why_unreadable", "parse",
           "from_arrow", "features", "keras_features", "tf_parse"]

MISSING_SECONDS = int(np.iinfo(np.int64).min)
"""The int64 seconds that stand for a missing value where no separate mask travels."""

CODE_CARDINALITIES = {"hour": 25, "weekday": 8, "month": 13}
"""How many codes each integer feature takes, code 0 (missing) included."""

SECONDS_PER_DAY = 86400
_FIELDS = ("year", "month", "day", "hour", "minute", "second")

_FRACTION = r"(?:[.,]\d+)?"
_ZONE = r"(?: ?(?:[Zz]|[+-]\d{2}(?::?\d{2})?))?"
_ISO_DATE = r"(?P<year>\d{4})-(?P<month>\d{2})-(?P<day>\d{2})"
_SHORT_TIME = r"(?: (?P<hour>\d{1,2}):(?P<minute>\d{2})(?::(?P<second>\d{2})" + _FRACTION + r")?)?"


def _whole(body: str) -> str:
    """A regular expression (RE2) that matches ``body`` as the whole value, spaces around allowed."""
    return r"^ *" + body + r" *$"


@dataclass(frozen=True)
class DatetimeFormat:
    """A text format of datetime values.

    Attributes
    ----------
    name : str
        What to call it in messages, e.g. ``"ISO 8601"``.
    pattern : str
        Its template, e.g. ``"MM/DD/YYYY[ hh:mm[:ss[.f]]]"``: what a manifest records
        (:meth:`as_record`) and :meth:`from_record` reads back.
    note : str or None
        A guess :func:`detect_format` made that the user must see (month first when
        day first would read the sample too), else None. Not part of the record, nor
        of equality.
    """

    name: str
    pattern: str
    note: str | None = field(default=None, compare=False)

    @property
    def regex(self) -> str:
        """The RE2 regular expression of a whole value; its named groups are the date and time fields."""
        return _REGEXES[self.pattern]

    @property
    def fields(self) -> tuple[str, ...]:
        """The named groups of :attr:`regex`, in their order (``"year"``, ``"month"``, ...)."""
        return _GROUPS[self.pattern]

    def as_record(self) -> str:
        """What a manifest stores for this format: its :attr:`pattern`."""
        return self.pattern

    @classmethod
    def from_record(cls, record) -> DatetimeFormat:
        """The format a manifest recorded with :meth:`as_record`.

        Raises
        ------
        ManifestError
            If ``record`` names no known format.
        """
        for known in FORMATS:
            if known.pattern == record:
                return known
        known_patterns = ", ".join(repr(known.pattern) for known in FORMATS)
        raise ManifestError(f"unknown datetime format {record!r} in the manifest; known formats: {known_patterns}")


_SPECS = (
    ("YYYY-MM-DD", "YYYY-MM-DD", _ISO_DATE, "1970-01-01"),
    ("ISO 8601", "YYYY-MM-DD[(T| )hh:mm[:ss[.f]][zone]]",
     _ISO_DATE + r"(?:[Tt ](?P<hour>\d{2}):(?P<minute>\d{2})(?::(?P<second>\d{2})" + _FRACTION + r")?" + _ZONE + r")?",
     "1970-01-01"),
    ("YYYY-MM-DD hh:mm:ss UTC", "YYYY-MM-DD hh:mm:ss[.f] UTC",
     _ISO_DATE + r" (?P<hour>\d{2}):(?P<minute>\d{2}):(?P<second>\d{2})" + _FRACTION + r" UTC",
     "1970-01-01 00:00:00 UTC"),
    ("YYYY/MM/DD", "YYYY/MM/DD[ hh:mm[:ss[.f]]]",
     r"(?P<year>\d{4})/(?P<month>\d{1,2})/(?P<day>\d{1,2})" + _SHORT_TIME, "1970/01/01"),
    ("DD.MM.YYYY", "DD.MM.YYYY[ hh:mm[:ss[.f]]]",
     r"(?P<day>\d{1,2})\.(?P<month>\d{1,2})\.(?P<year>\d{4})" + _SHORT_TIME, "01.01.1970"),
    ("MM/DD/YYYY", "MM/DD/YYYY[ hh:mm[:ss[.f]]]",
     r"(?P<month>\d{1,2})/(?P<day>\d{1,2})/(?P<year>\d{4})" + _SHORT_TIME, "01/01/1970"),
    ("DD/MM/YYYY", "DD/MM/YYYY[ hh:mm[:ss[.f]]]",
     r"(?P<day>\d{1,2})/(?P<month>\d{1,2})/(?P<year>\d{4})" + _SHORT_TIME, "01/01/1970"),
)
_REGEXES = {pattern: _whole(body) for _, pattern, body, _ in _SPECS}
_GROUPS = {pattern: tuple(sorted(re.compile(body).groupindex, key=re.compile(body).groupindex.get))
           for _, pattern, body, _ in _SPECS}
_SAMPLES = {pattern: sample for _, pattern, _, sample in _SPECS}  # a value that parses, for tf_parse
FORMATS = tuple(DatetimeFormat(name, pattern) for name, pattern, _, _ in _SPECS)
"""Every format, in the order :func:`detect_format` tries them."""
ISO_8601 = FORMATS[1]
"""The format of a datetime column whose sample holds no value (Parquet timestamps are carried as ISO-8601 text)."""
_MONTH_FIRST, _DAY_FIRST = FORMATS[-2], FORMATS[-1]
_AT_FIXED_PLACES = frozenset(pattern for _, pattern, body, _ in _SPECS if body.startswith(_ISO_DATE))


# --- calendar arithmetic written with operators only, so that numpy arrays, TensorFlow tensors and Keras
# --- tensors all run the same code (Howard Hinnant's days_from_civil and civil_from_days, proleptic Gregorian)

def _days_from_civil(year, month, day):
    """Days since 1970-01-01 of a date (month 1..12; other months give a meaningless number, no error)."""
    january_or_february = (14 - month) // 12
    year = year - january_or_february
    month_from_march = month + 12 * january_or_february - 3
    era = year // 400
    year_of_era = year - era * 400
    day_of_year = (153 * month_from_march + 2) // 5 + day - 1
    day_of_era = year_of_era * 365 + year_of_era // 4 - year_of_era // 100 + day_of_year
    return era * 146097 + day_of_era - 719468


def _month_from_days(days):
    """Month (1..12) of the date ``days`` days after 1970-01-01."""
    shifted = days + 719468
    era = shifted // 146097
    day_of_era = shifted - era * 146097
    year_of_era = (day_of_era - day_of_era // 1460 + day_of_era // 36524 - day_of_era // 146096) // 365
    day_of_year = day_of_era - (365 * year_of_era + year_of_era // 4 - year_of_era // 100)
    month_from_march = (5 * day_of_year + 2) // 153
    return month_from_march + 3 - 12 * (month_from_march // 10)


def _civil(year, month, day, hour, minute, second):
    """Days since 1970-01-01 and seconds into the day of the fields, and whether they name a real wall-clock
    time (month 1..12, a day of that month, hour 0..23, minute and second 0..59)."""
    first_of_month = _days_from_civil(year, month, 1)
    days_in_month = _days_from_civil(year + month // 12, month % 12 + 1, 1) - first_of_month
    valid = ((month >= 1) & (month <= 12) & (day >= 1) & (day <= days_in_month)
             & (hour <= 23) & (minute <= 59) & (second <= 59))
    return first_of_month + day - 1, hour * 3600 + minute * 60 + second, valid


def _codes(seconds):
    """Hour, weekday and month codes (1-based) of seconds that are not missing."""
    days = seconds // SECONDS_PER_DAY
    hour = (seconds % SECONDS_PER_DAY) // 3600 + 1
    weekday = (days + 3) % 7 + 1  # 1970-01-01 was a Thursday (code 4)
    return hour, weekday, _month_from_days(days)


# --- numpy / pyarrow

def _string_array(column) -> pa.Array:
    """``column`` as one string (or large string) array; TypeError for anything else."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks() if column.num_chunks else pa.array([], column.type)
    if not isinstance(column, pa.Array):
        raise TypeError(f"expected a pyarrow Array or ChunkedArray, got {type(column).__name__}")
    if pa.types.is_dictionary(column.type):
        column = column.dictionary_decode()
    if not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)):
        raise TypeError(f"expected strings, got a pyarrow array of {column.type}")
    return column


def _present(strings: pa.Array) -> np.ndarray:
    """Where ``strings`` holds a value: neither null nor empty."""
    return pc.fill_null(pc.not_equal(strings, ""), False).to_numpy(zero_copy_only=False)


def _layout(strings: pa.Array):
    """The value offsets (n + 1, int64) and the data bytes of a string array, as numpy arrays."""
    _, offsets, data = strings.buffers()
    offset_type = np.int64 if pa.types.is_large_string(strings.type) else np.int32
    offsets = np.frombuffer(offsets, offset_type, count=len(strings) + 1,
                            offset=strings.offset * np.dtype(offset_type).itemsize)
    return offsets.astype(np.int64), np.frombuffer(data, np.uint8) if data is not None else np.zeros(0, np.uint8)


def _fields_at_fixed_places(strings: pa.Array, fmt: DatetimeFormat):
    """Fields of the formats that start ``YYYY-MM-DD``, read at their byte positions (several times faster
    than extracting regular-expression groups), and where the value matches the format."""
    if pc.any(pc.starts_with(strings, " ")).as_py():
        strings = pc.utf8_ltrim(strings, " ")
    matched = pc.fill_null(pc.match_substring_regex(strings, fmt.regex), False).to_numpy(zero_copy_only=False)
    offsets, data = _layout(strings)
    starts, lengths = offsets[:-1], np.diff(offsets)
    data = np.concatenate([data, np.zeros(19, np.uint8)])  # every value's first 19 bytes can be read

    def byte(position):  # the byte at ``position`` of every value (one of the next value's beyond its end)
        return data[starts + position]

    def number(position, width):
        value = byte(position).astype(np.int32) - 48
        for place in range(position + 1, position + width):
            value = value * 10 + (byte(place).astype(np.int32) - 48)
        return value

    has_time = (lengths > 13) & (byte(13) == ord(":"))  # "YYYY-MM-DD?hh:mm" (a match has no other ':' there)
    has_seconds = has_time & (lengths > 16) & (byte(16) == ord(":"))
    numbers = {"year": number(0, 4), "month": number(5, 2), "day": number(8, 2)}
    if "hour" in fmt.fields:
        numbers["hour"] = np.where(has_time, number(11, 2), 0)
        numbers["minute"] = np.where(has_time, number(14, 2), 0)
        numbers["second"] = np.where(has_seconds, number(17, 2), 0)
    return numbers, matched


def _fields_by_regex(strings: pa.Array, fmt: DatetimeFormat):
    """Fields of any format, from its regular expression's groups, and where the value matches it."""
    matches = pc.extract_regex(strings, fmt.regex)
    numbers = {}
    for name, digits in zip(matches.type.names, matches.flatten()):
        digits = pc.utf8_lpad(digits, width=1, padding="0")  # an optional group that did not take part: 0
        numbers[name] = pc.fill_null(pc.cast(digits, pa.int32()), 0).to_numpy(zero_copy_only=False)
    return numbers, matches.is_valid().to_numpy(zero_copy_only=False)


def parse(column, fmt: DatetimeFormat):
    """Parse datetime text written in ``fmt``.

    Parameters
    ----------
    column : pyarrow.Array or pyarrow.ChunkedArray
        Strings; null and empty values are missing.
    fmt : DatetimeFormat
        Their format (:data:`FORMATS`, usually from :func:`detect_format`).

    Returns
    -------
    seconds : numpy.ndarray of int64
        Wall-clock seconds since 1970-01-01T00:00; :data:`MISSING_SECONDS` where missing.
    missing : numpy.ndarray of bool
        Missing values, and values that do not parse.
    bad : int or None
        Position of the first value that is present but does not parse (does not match
        the format, or names no real time such as February 30), else None.
    """
    strings = _string_array(column)
    present = _present(strings)
    read = _fields_at_fixed_places if fmt.pattern in _AT_FIXED_PLACES else _fields_by_regex
    numbers, matched = read(strings, fmt) if len(strings) else ({}, np.zeros(0, bool))
    zeros = np.zeros(len(strings), np.int32)
    days, second_of_day, valid = _civil(*(numbers.get(name, zeros) for name in _FIELDS))
    parsed = matched & valid
    unparsed = present & ~parsed
    bad = int(np.argmax(unparsed)) if unparsed.any() else None
    missing = ~(present & parsed)
    seconds = days.astype(np.int64) * SECONDS_PER_DAY + second_of_day
    return np.where(missing, MISSING_SECONDS, seconds).astype(np.int64), missing, bad


TOLERATED_SHARE = 0.01
"""The share of a sample's present values that may fail to parse in the format :func:`detect_format` picks."""
TOLERANCE_MIN_VALUES = 20
"""Fewer present sampled values than this tolerate none; from this many on, at least one is tolerated."""


def tolerated_unreadable(present: int) -> int:
    """How many of ``present`` sampled values may fail to parse in a detected format: 1 % of them (rounded
    down), and at least one once :data:`TOLERANCE_MIN_VALUES` are present (none below that)."""
    if present < TOLERANCE_MIN_VALUES:
        return 0
    return max(1, int(present * TOLERATED_SHARE))


def unreadable(column, fmt: DatetimeFormat) -> np.ndarray:
    """Positions of the values of ``column`` that are present (neither null nor empty) but that ``fmt``
    does not read: written otherwise, or naming no real time (February 30, second 60)."""
    strings = _string_array(column)
    _, missing, _ = parse(strings, fmt)
    return np.flatnonzero(missing & _present(strings))


def why_unreadable(value: str, fmt: DatetimeFormat) -> str:
    """Why ``fmt`` does not read ``value``, in words for a message."""
    if re.match(fmt.regex, value) is None:
        return f"is not written like the sampled values ({fmt.name})"
    return "names no real date or time (such as February 30, hour 24, minute or second 60)"


def detect_format(values, *, tolerate: bool = False) -> DatetimeFormat | None:
    """The first format of :data:`FORMATS` that parses every present value of a sample.

    Parameters
    ----------
    values : pyarrow.Array or pyarrow.ChunkedArray
        Sampled values of one column; null and empty values are ignored. A column
        that is not text gives None.
    tolerate : bool
        Also accept a format that fails on up to :func:`tolerated_unreadable` of
        the present values (the one that fails on the fewest; :func:`unreadable`
        finds them), when none reads every value.

    Returns
    -------
    DatetimeFormat or None
        None when no format parses every present value (or all but the tolerated
        few), or none is present. When both ``MM/DD/YYYY`` and ``DD/MM/YYYY`` read
        every value, month first wins and its :attr:`~DatetimeFormat.note` says so,
        for the user to see.
    """
    try:
        strings = _string_array(values)
    except TypeError:
        return None
    strings = strings.filter(pa.array(_present(strings)))
    if len(strings) == 0:
        return None
    tolerated = tolerated_unreadable(len(strings)) if tolerate else 0
    failures = {}
    for fmt in FORMATS:
        failed = _failures(strings, fmt, tolerated)
        if failed is not None:
            failures[fmt] = failed
        if failed == 0 and fmt not in (_MONTH_FIRST, _DAY_FIRST):
            return fmt
    if not failures:
        return None
    fewest = min(failures.values())
    best = next(fmt for fmt in FORMATS if failures.get(fmt) == fewest)
    if best is _MONTH_FIRST and failures.get(_DAY_FIRST) == fewest:
        month, day, year = _first_mixed_up(strings)
        note = (f"dates such as '{month:02d}/{day:02d}/{year}' are read month first ({_MONTH_FIRST.name}: "
                f"{_MONTH_NAMES[month - 1]} {day}), since no sampled value has a first number above 12 to show "
                f"that days come first; if they do ({_DAY_FIRST.name}), every date with both numbers up to 12 "
                f"is read wrongly")
        return DatetimeFormat(_MONTH_FIRST.name, _MONTH_FIRST.pattern, note)
    return best


def closest_format(values) -> DatetimeFormat:
    """The format of :data:`FORMATS` that reads the most present values of ``values`` (text), the first
    on a tie: the one whose :func:`unreadable` values are worth showing when no format reads a column."""
    strings = _string_array(values)
    strings = strings.filter(pa.array(_present(strings)))
    failures = [_failures(strings, fmt, len(strings)) for fmt in FORMATS]
    return FORMATS[failures.index(min(failures))]


def _failures(strings: pa.Array, fmt: DatetimeFormat, tolerated: int) -> int | None:
    """How many of ``strings`` (all present) ``fmt`` does not read; None as soon as more than ``tolerated``
    do not even match its pattern (the cheap test, before parsing)."""
    matched = pc.sum(pc.cast(pc.match_substring_regex(strings, fmt.regex), pa.int64())).as_py() or 0
    if len(strings) - matched > tolerated:
        return None
    failed = int(parse(strings, fmt)[1].sum())
    return failed if failed <= tolerated else None


_MONTH_NAMES = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
                "November", "December")


def _first_mixed_up(strings: pa.Array):
    """(month, day, year) of the first ``MM/DD/YYYY`` value that reads differently day first (or the first)."""
    numbers, _ = _fields_by_regex(strings, _MONTH_FIRST)
    differ = numbers["month"] != numbers["day"]
    first = int(np.argmax(differ)) if differ.any() else 0
    return tuple(int(numbers[name][first]) for name in ("month", "day", "year"))


_TICKS_PER_SECOND = {"s": 1, "ms": 1000, "us": 1000_000, "ns": 1000_000_000}


def from_arrow(column):
    """Seconds of a typed Arrow column (Parquet's timestamps and dates).

    Parameters
    ----------
    column : pyarrow.Array or pyarrow.ChunkedArray
        Of type timestamp (any unit; one with a time zone gives its wall clock in
        that zone), date32 or date64. Nulls are missing.

    Returns
    -------
    seconds : numpy.ndarray of int64
        Wall-clock seconds since 1970-01-01T00:00, sub-second parts floored;
        :data:`MISSING_SECONDS` where missing.
    missing : numpy.ndarray of bool
    """
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks() if column.num_chunks else pa.array([], column.type)
    kind = column.type
    if pa.types.is_timestamp(kind):
        if kind.tz is not None:
            column = pc.local_timestamp(column)
        to_seconds = _TICKS_PER_SECOND[kind.unit], 1
    elif pa.types.is_date32(kind):
        to_seconds = 1, SECONDS_PER_DAY  # days
    elif pa.types.is_date64(kind):
        to_seconds = 1000, 1  # milliseconds
    else:
        raise TypeError(f"expected a timestamp or date column, got {kind}")
    missing = column.is_null().to_numpy(zero_copy_only=False)
    storage = pa.int32() if pa.types.is_date32(kind) else pa.int64()
    ticks = pc.fill_null(column.view(storage), 0).to_numpy(zero_copy_only=False).astype(np.int64)
    ticks_per_unit, seconds_per_unit = to_seconds
    seconds = ticks // ticks_per_unit * seconds_per_unit
    return np.where(missing, MISSING_SECONDS, seconds).astype(np.int64), missing


def features(seconds, missing) -> dict:
    """The model's features of datetime values.

    Parameters
    ----------
    seconds : numpy.ndarray of int64
        Wall-clock seconds since 1970-01-01T00:00 (values where ``missing`` are ignored).
    missing : numpy.ndarray of bool

    Returns
    -------
    dict of numpy.ndarray
        ``days`` (float64, ``seconds / 86400``, NaN where missing) and the int32 codes
        ``hour`` (1..24), ``weekday`` (Monday 1 .. Sunday 7), ``month`` (1..12), 0 where missing.
    """
    seconds = np.asarray(seconds, np.int64)
    missing = np.asarray(missing, bool)
    known = np.where(missing, 0, seconds)
    result = {"days": np.where(missing, np.nan, known / SECONDS_PER_DAY)}
    for name, code in zip(("hour", "weekday", "month"), _codes(known)):
        result[name] = np.where(missing, 0, code).astype(np.int32)
    return result


# --- Keras and TensorFlow (imported only here)

def keras_features(seconds) -> dict:
    """:func:`features` of an int64 Keras tensor, inside a functional model.

    Built from ``keras.ops`` alone, so a model saved to ``.keras`` loads without
    questlearn. Missing values are :data:`MISSING_SECONDS`. Needs a backend with
    int64 and float64 (TensorFlow; JAX only with ``jax_enable_x64``). The result is
    exact under XLA too (``jit_compile=True``).

    Parameters
    ----------
    seconds : keras tensor of int64, shape (B,) or (B, 1)

    Returns
    -------
    dict of keras tensors, each of shape (B, 1)
        ``days`` (float32: ``seconds / 86400`` computed in float64 then rounded, so it
        equals :func:`features`' ``days`` as float32; NaN where missing) and the int32
        codes ``hour``, ``weekday``, ``month`` (0 where missing).
    """
    from keras import ops

    seconds = ops.reshape(ops.cast(seconds, "int64"), (-1, 1))
    missing = ops.equal(seconds, ops.full_like(seconds, MISSING_SECONDS))
    known = ops.where(missing, ops.zeros_like(seconds), seconds)
    days = ops.cast(ops.divide(ops.cast(known, "float64"), float(SECONDS_PER_DAY)), "float32")
    result = {"days": ops.where(missing, ops.full_like(days, float("nan")), days)}
    for name, code in zip(("hour", "weekday", "month"), _codes(known)):
        result[name] = ops.cast(ops.where(missing, ops.zeros_like(code), code), "int32")
    return result


def tf_parse(strings, fmt: DatetimeFormat):
    """:func:`parse` in TensorFlow, for a SavedModel's serving function.

    Parameters
    ----------
    strings : tf.Tensor of tf.string
        Any shape.
    fmt : DatetimeFormat

    Returns
    -------
    tf.Tensor of tf.int64, same shape
        Wall-clock seconds; :data:`MISSING_SECONDS` for empty values and for values
        that do not parse (serving has no one to stop for).
    """
    import tensorflow as tf

    strings = tf.convert_to_tensor(strings, tf.string)
    matched = tf.strings.regex_full_match(strings, fmt.regex)
    readable = tf.where(matched, strings, tf.fill(tf.shape(strings), _SAMPLES[fmt.pattern]))

    def number(name):
        if name not in fmt.fields:
            return tf.zeros(tf.shape(strings), tf.int64)
        group = fmt.fields.index(name) + 1  # "0" first: an optional group that did not take part reads 0
        return tf.strings.to_number(tf.strings.regex_replace(readable, fmt.regex, f"0\\{group}"), tf.int64)

    days, second_of_day, valid = _civil(*(number(name) for name in _FIELDS))
    seconds = days * SECONDS_PER_DAY + second_of_day
    parsed = matched & valid & tf.not_equal(strings, "")
    return tf.where(parsed, seconds, tf.constant(MISSING_SECONDS, tf.int64))
