"""Categories as integer codes, hashed out-of-vocabulary buckets, datetime features: what the shards hold."""

import datetime
import gzip
import json

import farmhash
import numpy as np
import pytest

from questlearn.io.csvscan import CsvFormatError
from questlearn.manifest import load_manifest
from questlearn.split import split_csv

EPOCH = datetime.datetime(1970, 1, 1)


def shard_rows(split_dir, part):
    """Every row of ``part`` (``numbers``, ``codes``) of both subsets, in source row order."""
    manifest = load_manifest(split_dir)
    blocks, numbers = [], []
    for subset in ("train", "validate"):
        for shard in manifest["subsets"][subset]["shards"]:
            blocks.append(np.load(split_dir / shard["files"][part]["name"]))
            numbers.append(np.load(split_dir / shard["files"]["rows"]["name"]))
    rows = np.concatenate(numbers)
    return np.concatenate(blocks)[np.argsort(rows)]


def column_of(split_dir, part, name):
    encoding = load_manifest(split_dir)["schema"]["encoding"]
    names = encoding["numeric"] if part == "numbers" else encoding["code_columns"]
    return shard_rows(split_dir, part)[:, names.index(name)]


def test_codes_follow_the_documented_layout_most_frequent_value_first(tmp_path):
    rows = ["colour,size,label"] + [f"{c},{i % 7},{i % 2}" for i, c in enumerate(["red"] * 5 + ["blue"] * 9 + ["", "green"] * 3)]
    (tmp_path / "s.csv").write_text("\n".join(rows) + "\n")
    split_csv(tmp_path / "s.csv", tmp_path / "split", label="label", val_fraction=0.3, progress=False, verbose=False)
    encoding = load_manifest(tmp_path / "split")["schema"]["encoding"]
    assert encoding["vocabularies"]["colour"] == ["blue", "red", "green"]  # 9, 5, 3 rows
    assert encoding["hash_buckets"]["colour"] == 1 and encoding["code_dtype"] == "uint8"
    codes = column_of(tmp_path / "split", "codes", "colour")
    expected = {"blue": 2, "red": 3, "green": 4, "": 0}  # 0 missing, 1 the one bucket, then the vocabulary
    assert codes.tolist() == [expected[c] for c in ["red"] * 5 + ["blue"] * 9 + ["", "green"] * 3]


def items_log(path, distinct, rows=80_000):
    """A log whose ``item`` column shows ``distinct`` values (every one of them; the file is all sample)."""
    rng = np.random.default_rng(0)
    items = rng.permutation(np.concatenate([np.arange(distinct), rng.integers(0, distinct, rows - distinct)]))
    with open(path, "w") as handle:
        handle.write("item,amount,bought\n")
        for item in items:
            handle.write(f"it{item:05d},{item % 97},{int(item % 3 == 0)}\n")
    assert path.stat().st_size < 3 << 20
    return path


def trained_report(tmp_path, name):
    from helpers import run_child

    result = run_child("train_and_report.py", tmp_path / name, timeout=840)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.timeout(1800)
def test_a_category_with_50000_sampled_values_splits_and_trains_with_bounded_memory(tmp_path):
    manifest = split_csv(items_log(tmp_path / "many.csv", 50_000), tmp_path / "many", label="bought",
                         progress=False, verbose=False)
    encoding = manifest["schema"]["encoding"]
    assert len(encoding["vocabularies"]["item"]) == 50_000
    assert encoding["code_counts"] == [1 + 64 + 50_000] and encoding["code_dtype"] == "uint16"
    shard = manifest["subsets"]["train"]["shards"][0]
    assert shard["files"]["codes"]["bytes"] == 128 + 2 * shard["rows"]  # two bytes a row, not 50,065 floats
    split_csv(items_log(tmp_path / "few.csv", 500), tmp_path / "few", label="bought", progress=False, verbose=False)
    many, few = trained_report(tmp_path, "many"), trained_report(tmp_path, "few")
    table = (1 + 64 + 50_000) * many["embedding_size"]
    assert many["embedding_parameters"] == table
    assert many["batch_bytes"] == few["batch_bytes"] == 1024 * (4 + 4)  # a float32 number and an int32 code a row
    # Beyond the small vocabulary's run, building the model adds the table (and the runtime's temporaries
    # while initialising it); training adds its two Adam slots and gradient, and nothing per batch: one-hot
    # batches of 50,065 float32 columns would add 200 MB each.
    assert many["build_growth_bytes"] - few["build_growth_bytes"] < 8 * 4 * table + (32 << 20)
    assert many["fit_growth_bytes"] - few["fit_growth_bytes"] < 4 * 4 * table + (32 << 20)


def test_a_value_first_met_after_the_sample_lands_in_a_hash_bucket_and_is_counted(tmp_path):
    source = tmp_path / "log.csv.gz"
    values = [f"shop{i % 40}" for i in range(400_000)]  # 40 values: more than 16, so 64 hashed buckets
    late = {380_000 + 7 * i: f"new{i % 3}" for i in range(50)}  # past the sample of a compressed file's start
    for row, value in late.items():
        values[row] = value
    with gzip.open(source, "wt") as handle:
        handle.write("shop,amount,label\n")
        for row, value in enumerate(values):
            handle.write(f"{value},{row % 11}.25 ,{row % 2}\n")
    manifest = split_csv(source, tmp_path / "split", label="label", progress=False, verbose=False)
    encoding = manifest["schema"]["encoding"]
    assert not any(v.startswith("new") for v in encoding["vocabularies"]["shop"])
    buckets = encoding["hash_buckets"]["shop"]
    assert buckets == 64
    assert manifest["stats"]["shop"]["oov"] == len(late)
    codes = column_of(tmp_path / "split", "codes", "shop")
    for row, value in late.items():
        assert codes[row] == 1 + farmhash.fingerprint64(value) % buckets
    assert sorted(set(codes[sorted(late)])) == sorted({1 + farmhash.fingerprint64(f"new{i}") % buckets for i in range(3)})


def wall_clock_days(text):
    """Days since 1970 of the wall clock as written (zone offset not applied), by Python's datetime."""
    moment = datetime.datetime.fromisoformat(text).replace(tzinfo=None)
    return (moment - EPOCH).total_seconds() / 86400, moment


def test_a_timestamp_column_becomes_days_hour_weekday_and_month_time_zones_included(tmp_path):
    stamps = ["2013-01-01T10:00:00Z", "2016-02-29T23:59:59+05:30", "1969-12-31T23:00:00-08:00", "",
              "2024-07-14T00:30:00", "2020-03-08 02:15:00-0500"]
    rows = ["when,amount,label"] + [f"{stamps[i % len(stamps)]},{i},{i % 2}" for i in range(60)]
    (tmp_path / "t.csv").write_text("\n".join(rows) + "\n")
    manifest = split_csv(tmp_path / "t.csv", tmp_path / "split", label="label", progress=False, verbose=False)
    kinds = {c["name"]: c["kind"] for c in manifest["schema"]["columns"]}
    assert kinds["when"] == "datetime"
    encoding = manifest["schema"]["encoding"]
    assert encoding["code_columns"] == ["when.hour", "when.weekday", "when.month"]
    days = column_of(tmp_path / "split", "numbers", "when.days")
    hour, weekday, month = (column_of(tmp_path / "split", "codes", f"when.{p}") for p in ("hour", "weekday", "month"))
    fill = encoding["fill_values"][encoding["numeric"].index("when.days")]
    for row in range(12):
        text = stamps[row % len(stamps)]
        if not text:
            assert days[row] == np.float32(fill) and hour[row] == weekday[row] == month[row] == 0
            continue
        expected, moment = wall_clock_days(text)
        assert days[row] == pytest.approx(expected, abs=1e-5 * max(1, abs(expected)))
        assert (hour[row], weekday[row], month[row]) == (moment.hour + 1, moment.weekday() + 1, moment.month), text
    # by hand: 2016-02-29 23:59:59 is a Monday in February, hour 23; 1969-12-31 23:00 a Wednesday
    assert (hour[1], weekday[1], month[1]) == (24, 1, 2)
    assert (hour[2], weekday[2], month[2]) == (24, 3, 12) and days[2] == pytest.approx(-1 / 24, abs=1e-6)


def test_a_timestamp_that_does_not_parse_after_the_sample_stops_with_its_location(tmp_path):
    source = tmp_path / "log.csv.gz"
    with gzip.open(source, "wt") as handle:
        handle.write("when,amount,label\n")
        for row in range(200_000):
            stamp = "2013-02-30T10:00:00" if row == 190_000 else f"2013-01-{row % 28 + 1:02d}T10:00:00"
            handle.write(f"{stamp},{row % 5},{row % 2}\n")
    with pytest.raises(CsvFormatError) as caught:
        split_csv(source, tmp_path / "split", label="label", progress=False, verbose=False)
    message = str(caught.value)
    assert "log.csv.gz" in message and "line 190002" in message and "byte" in message and "'when'" in message
    assert "2013-02-30T10:00:00" in message
    assert not (tmp_path / "split").exists()


def test_a_mostly_distinct_string_column_is_an_identifier_unless_named_a_category(tmp_path):
    rows = ["session,city,label"] + [f"s{i:06d},{['oslo', 'rome', 'lima'][i % 3]},{i % 2}" for i in range(300)]
    (tmp_path / "s.csv").write_text("\n".join(rows) + "\n")
    manifest = split_csv(tmp_path / "s.csv", tmp_path / "a", label="label", progress=False, verbose=False)
    kinds = {c["name"]: c["kind"] for c in manifest["schema"]["columns"]}
    assert kinds["session"] == "id" and "session" not in manifest["schema"]["features"]
    manifest = split_csv(tmp_path / "s.csv", tmp_path / "b", label="label", categorical_columns=["session"],
                         progress=False, verbose=False)
    assert manifest["schema"]["encoding"]["hash_buckets"]["session"] == 64
    assert len(manifest["schema"]["encoding"]["vocabularies"]["session"]) == 300


def test_a_value_longer_than_a_manifest_string_goes_to_the_buckets_and_the_split_trains(tmp_path, capsys):
    long_value = "L" * 5000
    values = [long_value if i % 3 == 0 else "abc"[i % 2] for i in range(120)]
    rows = ["colour,size,label"] + [f"{c},{i % 7},{i % 2}" for i, c in enumerate(values)]
    (tmp_path / "s.csv").write_text("\n".join(rows) + "\n")
    split_csv(tmp_path / "s.csv", tmp_path / "split", label="label", progress=False, verbose=True)
    assert "colour: 1 value of the sample longer than 4096 characters goes to the out-of-vocabulary" in capsys.readouterr().out
    manifest = load_manifest(tmp_path / "split")  # what train reads
    assert manifest["schema"]["encoding"]["vocabularies"]["colour"] == ["a", "b"]
    assert manifest["stats"]["colour"]["oov"] == 40
    codes = column_of(tmp_path / "split", "codes", "colour")
    assert codes.tolist() == [1 if v == long_value else {"a": 2, "b": 3}[v] for v in values]  # 0 missing, 1 the bucket


def test_a_label_value_longer_than_a_manifest_string_stops_the_split_at_its_row(tmp_path):
    rows = "".join(f"{i},{'L' * 5000 if i == 7 else i % 2}\n" for i in range(50))
    (tmp_path / "s.csv").write_text("x,label\n" + rows)
    with pytest.raises(CsvFormatError) as refused:
        split_csv(tmp_path / "s.csv", tmp_path / "split", label="label", progress=False, verbose=False)
    assert (refused.value.line, refused.value.byte_offset) == (9, len("x,label\n") + 7 * len("0,0\n"))
    assert "the label 'label' holds a value of 5000 characters, more than the 4096 a class may have" in str(refused.value)
