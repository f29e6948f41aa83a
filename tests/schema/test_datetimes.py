"""Datetime columns: format detection, parsing to wall-clock seconds, and the features derived from them."""

import subprocess
import sys
from datetime import datetime, timedelta

import numpy as np
import pyarrow as pa
import pytest
from helpers import run_child, run_env

from questlearn.errors import ManifestError
from questlearn.schema.datetimes import (FORMATS, MISSING_SECONDS, DatetimeFormat, detect_format, features,
                                         from_arrow, parse)

BY_NAME = {fmt.name: fmt for fmt in FORMATS}
EPOCH = datetime(1970, 1, 1)

# (format, text, the wall-clock time it names): zones are read and not applied, fractions dropped
READABLE = [
    ("YYYY-MM-DD", "2013-01-01", datetime(2013, 1, 1)),
    ("YYYY-MM-DD", "2016-02-29", datetime(2016, 2, 29)),
    ("YYYY-MM-DD", "2000-02-29", datetime(2000, 2, 29)),
    ("YYYY-MM-DD", "1900-03-01", datetime(1900, 3, 1)),
    ("YYYY-MM-DD", "1969-12-31", datetime(1969, 12, 31)),
    ("YYYY-MM-DD", "0001-01-01", datetime(1, 1, 1)),
    ("YYYY-MM-DD", " 2013-06-15 ", datetime(2013, 6, 15)),
    ("ISO 8601", "2013-01-01T10:00:00-05:00", datetime(2013, 1, 1, 10)),
    ("ISO 8601", "2013-01-01T10:00:00Z", datetime(2013, 1, 1, 10)),
    ("ISO 8601", "2013-01-01 10:00:00+05:30", datetime(2013, 1, 1, 10)),
    ("ISO 8601", "2013-01-01T10:00:00-0800", datetime(2013, 1, 1, 10)),
    ("ISO 8601", "2013-01-01T10:00-08", datetime(2013, 1, 1, 10)),
    ("ISO 8601", "2013-01-01T10:00 +0000", datetime(2013, 1, 1, 10)),
    ("ISO 8601", "2013-01-01t10:00:00z", datetime(2013, 1, 1, 10)),
    ("ISO 8601", "2016-02-29T23:59:59.999999Z", datetime(2016, 2, 29, 23, 59, 59)),
    ("ISO 8601", "2013-01-01T10:00:00,5", datetime(2013, 1, 1, 10)),
    ("ISO 8601", "1969-12-31T23:59:59.5", datetime(1969, 12, 31, 23, 59, 59)),
    ("ISO 8601", "1969-07-20T20:17", datetime(1969, 7, 20, 20, 17)),
    ("ISO 8601", "2013-01-01", datetime(2013, 1, 1)),
    ("ISO 8601", "  2013-01-01T00:00:01  ", datetime(2013, 1, 1, 0, 0, 1)),
    ("YYYY-MM-DD hh:mm:ss UTC", "2013-01-01 10:00:00 UTC", datetime(2013, 1, 1, 10)),
    ("YYYY-MM-DD hh:mm:ss UTC", "1969-12-31 23:59:59.123 UTC", datetime(1969, 12, 31, 23, 59, 59)),
    ("YYYY/MM/DD", "2013/01/02", datetime(2013, 1, 2)),
    ("YYYY/MM/DD", "2013/1/2 3:04", datetime(2013, 1, 2, 3, 4)),
    ("YYYY/MM/DD", "2016/02/29 23:59:59.9", datetime(2016, 2, 29, 23, 59, 59)),
    ("DD.MM.YYYY", "31.12.2013", datetime(2013, 12, 31)),
    ("DD.MM.YYYY", "1.2.2013 10:00", datetime(2013, 2, 1, 10)),
    ("DD.MM.YYYY", "29.02.2016 07:08:09", datetime(2016, 2, 29, 7, 8, 9)),
    ("MM/DD/YYYY", "12/31/2013", datetime(2013, 12, 31)),
    ("MM/DD/YYYY", "3/4/2013 9:05", datetime(2013, 3, 4, 9, 5)),
    ("MM/DD/YYYY", "02/29/2016 00:00:01", datetime(2016, 2, 29, 0, 0, 1)),
    ("MM/DD/YYYY", "12/31/1969 23:00", datetime(1969, 12, 31, 23)),
    ("DD/MM/YYYY", "31/12/2013", datetime(2013, 12, 31)),
    ("DD/MM/YYYY", "4/3/2013 9:05", datetime(2013, 3, 4, 9, 5)),
    ("DD/MM/YYYY", "29/02/2016 00:00:01", datetime(2016, 2, 29, 0, 0, 1)),
]
# (format, text that matches it in shape or not at all, but names no real time or is not in it)
UNREADABLE = [
    ("YYYY-MM-DD", "2013-01-01T10:00"), ("YYYY-MM-DD", "2013-13-01"), ("YYYY-MM-DD", "2013-00-10"),
    ("YYYY-MM-DD", "2013-01-32"), ("YYYY-MM-DD", "2013-04-31"), ("YYYY-MM-DD", "2013-02-29"),
    ("YYYY-MM-DD", "2100-02-29"), ("YYYY-MM-DD", "2013-01-00"), ("YYYY-MM-DD", "2013-1-01"),
    ("ISO 8601", "2013-01-01T24:00"), ("ISO 8601", "2013-01-01T10:60"), ("ISO 8601", "2013-01-01T10:00:60"),
    ("ISO 8601", "2013-01-01X10:00"), ("ISO 8601", "2013-02-30T10:00:00Z"), ("ISO 8601", "2013-01-01T10:00+5"),
    ("ISO 8601", "2013-01-01T10"), ("ISO 8601", "hello"), ("ISO 8601", "  "), ("ISO 8601", "2013"),
    ("YYYY-MM-DD hh:mm:ss UTC", "2013-01-01 10:00:00"), ("YYYY/MM/DD", "2013/02/30"),
    ("DD.MM.YYYY", "31.04.2013"), ("MM/DD/YYYY", "13/01/2013"), ("DD/MM/YYYY", "01/13/2013"),
    ("MM/DD/YYYY", "01/01/2013 25:00"), ("DD/MM/YYYY", "1/1/13"),
]


def seconds_of(moment):
    return (moment - EPOCH) // timedelta(seconds=1)


def test_parse_reads_each_format_as_wall_clock_seconds():
    for fmt in FORMATS:
        rows = [(text, moment) for name, text, moment in READABLE if name == fmt.name]
        column = pa.array([None, ""] + [text for text, _ in rows])
        seconds, missing, bad = parse(column, fmt)
        assert bad is None, (fmt.name, column[bad])
        assert missing.tolist() == [True, True] + [False] * len(rows)
        assert seconds.tolist() == [MISSING_SECONDS] * 2 + [seconds_of(moment) for _, moment in rows], fmt.name


def test_parse_reads_chunked_large_and_sliced_columns():
    texts = ["2013-01-01T10:00:00Z", None, "1969-12-31 23:59:59", "2016-02-29"]
    expected = [1357034400, MISSING_SECONDS, -1, 1456704000]
    iso = BY_NAME["ISO 8601"]
    assert parse(pa.chunked_array([texts[:2], texts[2:]]), iso)[0].tolist() == expected
    assert parse(pa.array(texts, pa.large_string()), iso)[0].tolist() == expected
    assert parse(pa.array(["x"] + texts).slice(1), iso)[0].tolist() == expected
    assert parse(pa.array(texts).dictionary_encode(), iso)[0].tolist() == expected
    slashes = pa.array(["x", "12/31/2013", "3/4/2013 9:05"]).slice(1)
    assert parse(slashes, BY_NAME["MM/DD/YYYY"])[0].tolist() == [1388448000, 1362387900]


@pytest.mark.parametrize("name, text", UNREADABLE)
def test_parse_names_the_first_value_that_does_not_parse(name, text):
    good = next(good_text for format_name, good_text, _ in READABLE if format_name == name)
    seconds, missing, bad = parse(pa.array([good, None, text, good, text]), BY_NAME[name])
    assert bad == 2
    assert missing.tolist() == [False, True, True, False, True]
    assert seconds[2] == MISSING_SECONDS


def test_features_agree_with_pythons_datetime():
    rng = np.random.default_rng(7)
    seconds = np.concatenate([rng.integers(-3_000_000_000, 4_000_000_000, 2000),
                              [0, -1, 86399, 86400, -86400, seconds_of(datetime(2016, 2, 29, 12)),
                               seconds_of(datetime(2000, 3, 1)), seconds_of(datetime(1900, 2, 28, 23, 59, 59)),
                               seconds_of(datetime(1, 1, 1)), seconds_of(datetime(9999, 12, 31, 23, 59, 59))]])
    missing = np.zeros(len(seconds), bool)
    missing[[3, 11]] = True
    result = features(seconds, missing)
    for position, value in enumerate(seconds.tolist()):
        moment = EPOCH + timedelta(seconds=value)
        if missing[position]:
            expected = (np.nan, 0, 0, 0)
        else:
            expected = (value / 86400, moment.hour + 1, moment.isoweekday(), moment.month)
        got = tuple(result[name][position] for name in ("days", "hour", "weekday", "month"))
        np.testing.assert_equal(got, expected, err_msg=str(moment))
    assert result["days"].dtype == np.float64
    assert {result[name].dtype for name in ("hour", "weekday", "month")} == {np.dtype(np.int32)}


@pytest.mark.parametrize("values, name", [
    (["2013-01-01", None, "", "1969-12-31"], "YYYY-MM-DD"),
    (["2013-01-01", "2013-01-01T10:00:00Z", "2013-01-01 10:00+05:30"], "ISO 8601"),
    (["2013-01-01 10:00:00 UTC", "2013-01-01 10:00:00.5 UTC"], "YYYY-MM-DD hh:mm:ss UTC"),
    (["2013/01/01", "2013/1/2 10:00"], "YYYY/MM/DD"),
    (["31.12.2013", "01.02.2013 10:00:00"], "DD.MM.YYYY"),
    (["01/13/2013", "01/02/2013"], "MM/DD/YYYY"),
    (["13/01/2013", "01/02/2013 10:00"], "DD/MM/YYYY"),
])
def test_detect_format_picks_the_format_of_every_value(values, name):
    fmt = detect_format(pa.array(values))
    assert fmt is not None and fmt.name == name and fmt.note is None


@pytest.mark.parametrize("values", [
    pytest.param(["hello", "world"], id="free text"),
    pytest.param(["2013", "20130101", "1356998400", "2013.5"], id="plain numbers"),
    pytest.param(["2013-01-01", "2013-01-02", "soon", "2013-01-03"], id="one non-date"),
    pytest.param(["2013-01-01", "2013-02-30"], id="one impossible date"),
    pytest.param(["2013-01-01", "01/02/2013"], id="two formats"),
    pytest.param(["13/01/2013", "01/13/2013"], id="neither day nor month first"),
    pytest.param([None, "", None], id="nothing present"),
    pytest.param([], id="empty"),
])
def test_detect_format_finds_no_format_where_a_value_is_no_date(values):
    assert detect_format(pa.array(values, pa.string())) is None


def test_detect_format_finds_no_format_in_a_column_that_is_not_text():
    assert detect_format(pa.array([20130101, 20130102])) is None


def test_ambiguous_slashed_dates_read_month_first_and_say_so():
    values = pa.array(["05/05/2013", "03/04/2013 10:00", None])
    fmt = detect_format(values)
    assert fmt.name == "MM/DD/YYYY"
    assert "'03/04/2013'" in fmt.note and "month first" in fmt.note and "March 4" in fmt.note
    assert "DD/MM/YYYY" in fmt.note
    assert parse(values, fmt)[0][1] == seconds_of(datetime(2013, 3, 4, 10))


def test_format_round_trips_through_its_manifest_record():
    for fmt in FORMATS:
        assert DatetimeFormat.from_record(fmt.as_record()) == fmt
    noted = detect_format(pa.array(["03/04/2013"]))
    assert DatetimeFormat.from_record(noted.as_record()) == noted
    with pytest.raises(ManifestError, match="unknown datetime format 'YYYYMMDD'"):
        DatetimeFormat.from_record("YYYYMMDD")


@pytest.mark.parametrize("unit", ["s", "ms", "us", "ns"])
def test_from_arrow_gives_the_wall_clock_of_a_zoned_timestamp(unit):
    per_second = {"s": 1, "ms": 10**3, "us": 10**6, "ns": 10**9}[unit]
    utc = [seconds_of(datetime(2013, 1, 1, 15)), seconds_of(datetime(2013, 7, 1, 14, 30))]  # EST, then EDT
    column = pa.array([utc[0] * per_second, None, utc[1] * per_second], pa.timestamp(unit, tz="America/New_York"))
    seconds, missing = from_arrow(column)
    assert seconds.tolist() == [seconds_of(datetime(2013, 1, 1, 10)), MISSING_SECONDS,
                                seconds_of(datetime(2013, 7, 1, 10, 30))]
    assert missing.tolist() == [False, True, False]
    assert features(seconds, missing)["hour"].tolist() == [11, 0, 11]


def test_from_arrow_reads_naive_timestamps_and_dates():
    naive = pa.chunked_array([pa.array([-1500, 0, 1999], pa.timestamp("ms"))])
    assert from_arrow(naive)[0].tolist() == [-2, 0, 1]  # sub-second parts floored
    assert from_arrow(pa.array([-1, 0, None], pa.date32()))[0].tolist() == [-86400, 0, MISSING_SECONDS]
    assert from_arrow(pa.array([86_400_000, None], pa.date64()))[0].tolist() == [86400, MISSING_SECONDS]
    with pytest.raises(TypeError, match="timestamp or date"):
        from_arrow(pa.array(["2013-01-01"]))


def test_importing_datetimes_loads_no_keras_or_tensorflow():
    code = ("import sys, questlearn.schema.datetimes; "
            "print(sorted(m for m in ('keras', 'tensorflow', 'jax', 'pandas') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=run_env(), timeout=900)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def tensorflow_backend():
    pytest.importorskip("tensorflow")
    keras = pytest.importorskip("keras")
    if keras.backend.backend() != "tensorflow":
        pytest.skip("keras_features and tf_parse need the TensorFlow backend")
    return keras


@pytest.mark.timeout(900)
def test_keras_features_load_without_questlearn_and_equal_features(tmp_path):
    keras = tensorflow_backend()
    from questlearn.schema.datetimes import keras_features

    seconds_input = keras.Input(shape=(1,), dtype="int64")
    model = keras.Model(seconds_input, keras_features(seconds_input))
    model.save(tmp_path / "features.keras")
    rng = np.random.default_rng(3)
    seconds = np.concatenate([rng.integers(-3_000_000_000, 4_000_000_000, 500),
                              [0, -1, 86399, seconds_of(datetime(2016, 2, 29, 23, 59, 59)),
                               seconds_of(datetime(1, 1, 1)), seconds_of(datetime(9999, 12, 31, 23, 59, 59)),
                               MISSING_SECONDS]]).astype(np.int64)
    np.save(tmp_path / "seconds.npy", seconds.reshape(-1, 1))
    env = run_env()
    env["PYTHONPATH"] = ""
    env["KERAS_BACKEND"] = "tensorflow"
    child = run_child("datetime_features_child.py", tmp_path / "features.keras", tmp_path / "seconds.npy",
                      tmp_path / "out.npz", env=env, timeout=720, fresh=True)  # no questlearn module loaded at all
    assert child.returncode == 0, child.stderr[-3000:]
    loaded = np.load(tmp_path / "out.npz")
    expected = features(seconds, seconds == MISSING_SECONDS)
    assert loaded["days"].dtype == np.float32 and loaded["days"].shape == (len(seconds), 1)
    np.testing.assert_array_equal(loaded["days"][:, 0], expected["days"].astype(np.float32))
    for name in ("hour", "weekday", "month"):
        assert loaded[name].dtype == np.int32 and loaded[name].shape == (len(seconds), 1)
        np.testing.assert_array_equal(loaded[name][:, 0], expected[name], err_msg=name)


@pytest.mark.timeout(900)
def test_tf_parse_agrees_with_parse_on_every_format():
    tensorflow_backend()
    import tensorflow as tf

    from questlearn.schema.datetimes import tf_parse

    for fmt in FORMATS:
        texts = ["", None] + [text for _, text, _ in READABLE] + [text for _, text in UNREADABLE]
        seconds, missing, _ = parse(pa.array(texts), fmt)
        serving = tf.function(lambda strings, fmt=fmt: tf_parse(strings, fmt),
                              input_signature=[tf.TensorSpec([None], tf.string)])
        got = serving(tf.constant(["" if text is None else text for text in texts])).numpy()
        assert got.dtype == np.int64
        np.testing.assert_array_equal(got, seconds, err_msg=fmt.name)
        assert (~missing).sum() >= sum(name == fmt.name for name, _, _ in READABLE)  # not all missing


def _timestamps(count: int) -> list:
    start = datetime(2023, 1, 1)
    return [(start + timedelta(minutes=37 * i)).strftime("%Y-%m-%d %H:%M:%S") for i in range(count)]


@pytest.mark.parametrize("bad", ["2023-02-30 10:00:00", "2023-06-30 23:59:60", "2023/03/01 10:00:00"],
                         ids=["february 30", "leap second", "second spelling"])
def test_detect_format_tolerates_one_unreadable_value_and_unreadable_finds_it(bad):
    from questlearn.schema.datetimes import tolerated_unreadable, unreadable

    values = _timestamps(40)
    values[5] = bad
    assert detect_format(pa.array(values)) is None  # every value, as before
    fmt = detect_format(pa.array(values), tolerate=True)
    assert fmt.name == "ISO 8601"
    assert unreadable(pa.array(values), fmt).tolist() == [5]
    assert tolerated_unreadable(40) == 1 and tolerated_unreadable(19) == 0 and tolerated_unreadable(1000) == 10


def test_detect_format_tolerates_no_more_than_its_share():
    values = _timestamps(40)
    values[5], values[9] = "2023-02-30 10:00:00", "2023-02-31 10:00:00"  # 2 of 40: more than 1 %, and more than one
    assert detect_format(pa.array(values), tolerate=True) is None
    few = _timestamps(10)
    few[3] = "2023-02-30 10:00:00"  # below 20 values, none is tolerated
    assert detect_format(pa.array(few), tolerate=True) is None
