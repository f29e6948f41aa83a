"""Every Parquet column type is read or refused before the pass, and a damaged Parquet file is named."""

import datetime
import decimal
import zoneinfo
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import pytest

from questlearn.manifest._files import load_manifest
from questlearn.split import split_csv
from questlearn.split.inspection import inspect_source

ROWS = 120
START = datetime.datetime(2024, 5, 1, 12, 0, tzinfo=datetime.timezone.utc)
NEW_YORK = zoneinfo.ZoneInfo("America/New_York")


def typed_table(column: str, values: pa.Array, label=None) -> pa.Table:
    """``order`` (the row number, as a float), a 0/1 label and the column under test."""
    return pa.table({"order": pa.array([float(i) for i in range(ROWS)]),
                     "label": label if label is not None else pa.array([i % 2 for i in range(ROWS)]),
                     column: values})


def split_parquet(table: pa.Table, tmp_path: Path, **parameters):
    """Write ``table`` (row groups of 25 rows), split it; return the manifest and its per-row shards.

    The shards come back ordered by source row: ``numbers`` (float32),
    ``codes`` (category codes), ``labels`` (class names or numbers) and
    ``csv`` (every CSV copy's field as text).
    """
    source = tmp_path / "typed.parquet"
    pq.write_table(table, source, row_group_size=25)
    parameters.setdefault("formats", ("csv", "npy"))
    parameters.setdefault("label", "label")
    parameters.setdefault("verbose", False)
    split_csv(source, tmp_path / "out", rows_per_shard=50, **parameters)
    manifest = load_manifest(tmp_path / "out")
    root = Path(manifest["root"])
    rows, numbers, codes, labels, texts = [], [], [], [], []
    for subset in ("train", "validate"):
        for shard in manifest["subsets"][subset]["shards"]:
            rows.append(np.load(root / shard["files"]["rows"]["name"]))
            numbers.append(np.load(root / shard["files"]["numbers"]["name"]))
            codes.append(np.load(root / shard["files"]["codes"]["name"]))
            labels.append(np.load(root / shard["files"]["labels"]["name"]))
            if "csv" in shard["files"]:
                names = pa_csv.read_csv(root / shard["files"]["csv"]["name"]).column_names
                texts.append(pa_csv.read_csv(root / shard["files"]["csv"]["name"], convert_options=pa_csv.ConvertOptions(
                    column_types={n: pa.string() for n in names}, strings_can_be_null=False)))
    order = np.argsort(np.concatenate(rows))
    shards = {"numbers": np.concatenate(numbers)[order], "codes": np.concatenate(codes)[order],
              "labels": np.concatenate(labels)[order]}
    if texts:
        csv = pa.concat_tables(texts)
        shards["csv"] = {name: [csv[name][int(i)].as_py() for i in order] for name in csv.column_names}
    return manifest, shards


def kinds_of(manifest) -> dict:
    return {c["name"]: c["kind"] for c in manifest["schema"]["columns"]}


def feature(manifest, shards, name: str) -> np.ndarray:
    """A numbers column (``numbers``), or else a codes column, of every row."""
    encoding = manifest["schema"]["encoding"]
    if name in encoding["numeric"]:
        return shards["numbers"][:, encoding["numeric"].index(name)]
    return shards["codes"][:, encoding["code_columns"].index(name)]


def model_inputs(manifest) -> list:
    encoding = manifest["schema"]["encoding"]
    return encoding["numeric"] + encoding["code_columns"]


def moment(i: int) -> datetime.datetime:
    return START + datetime.timedelta(seconds=i)


def day(i: int) -> datetime.date:
    return datetime.date(2024, 1, 1) + datetime.timedelta(days=i)


# The wall-clock time of each datetime column's row i: a zoned timestamp's in its zone
WALL = {"timestamp": lambda i: moment(i).replace(tzinfo=None),
        "zoned_timestamp": lambda i: moment(3600 * i).astimezone(NEW_YORK).replace(tzinfo=None),  # hourly
        "date": lambda i: datetime.datetime.combine(day(i), datetime.time())}


def wall_days(type_name: str):
    return lambda i: (WALL[type_name](i) - datetime.datetime(1970, 1, 1)).total_seconds() / 86400


# (column values, kind, the feature per row or None, the CSV copy's text per row); a datetime's feature is
# its days since 1970 (wall clock), its hour, weekday and month codes are checked apart
TYPED = {
    "timestamp": (pa.array([moment(i) for i in range(ROWS)], pa.timestamp("us", tz="UTC")), "datetime",
                  wall_days("timestamp"), lambda i: moment(i).strftime("%Y-%m-%dT%H:%M:%S.%fZ")),
    "zoned_timestamp": (pa.array([moment(3600 * i) for i in range(ROWS)], pa.timestamp("us", tz="America/New_York")),
                        "datetime", wall_days("zoned_timestamp"), None),
    "date": (pa.array([day(i) for i in range(ROWS)], pa.date32()), "datetime", wall_days("date"),
             lambda i: day(i).isoformat()),
    "decimal": (pa.array([decimal.Decimal(i) / 4 for i in range(ROWS)], pa.decimal128(10, 2)),
                "numeric", lambda i: i / 4, lambda i: f"{decimal.Decimal(i) / 4:.2f}"),
    "duration": (pa.array([i * 1500 for i in range(ROWS)], pa.duration("ms")),
                 "numeric", lambda i: i * 1.5, None),
    "dictionary_numbers": (pa.array([float(i % 5) for i in range(ROWS)]).dictionary_encode(),
                           "numeric", lambda i: float(i % 5), None),
    "uint64_past_2_53": (pa.array([2 ** 60 + i for i in range(ROWS)], pa.uint64()),
                         "numeric", lambda i: float(2 ** 60 + i), lambda i: str(2 ** 60 + i)),
}


@pytest.mark.timeout(900)
@pytest.mark.parametrize("type_name", list(TYPED))
def test_parquet_typed_columns_split_into_the_right_values_per_row(type_name, tmp_path):
    values, kind, number, text = TYPED[type_name]
    manifest, shards = split_parquet(typed_table("typed", values), tmp_path)
    assert kinds_of(manifest)["typed"] == kind
    assert feature(manifest, shards, "order").tolist() == list(range(ROWS))  # rows are in source order
    name = "typed.days" if kind == "datetime" else "typed"
    if number is not None:
        expected = np.array([number(i) for i in range(ROWS)], np.float32)
        assert np.array_equal(feature(manifest, shards, name), expected)
    else:
        assert not [n for n in model_inputs(manifest) if n.startswith("typed")]
    if kind == "datetime":
        wall = [WALL[type_name](i) for i in range(ROWS)]
        assert feature(manifest, shards, "typed.hour").tolist() == [t.hour + 1 for t in wall]
        assert feature(manifest, shards, "typed.weekday").tolist() == [t.isoweekday() for t in wall]
        assert feature(manifest, shards, "typed.month").tolist() == [t.month for t in wall]
    if text is not None:
        assert shards["csv"]["typed"] == [text(i) for i in range(ROWS)]


@pytest.mark.timeout(900)
def test_a_dictionary_encoded_string_feature_is_categorical_like_plain_strings(tmp_path):
    colours = ["red", "green", "blue"]
    values = pa.array([colours[i % 3] for i in range(ROWS)]).dictionary_encode()
    manifest, shards = split_parquet(typed_table("colour", values), tmp_path)
    assert kinds_of(manifest)["colour"] == "categorical"
    vocabulary = manifest["schema"]["encoding"]["vocabularies"]["colour"]
    assert vocabulary == ["blue", "green", "red"]  # as many rows each: the smaller value first
    # code 0 is missing, 1 the one out-of-vocabulary code, then the vocabulary
    assert feature(manifest, shards, "colour").tolist() == [2 + vocabulary.index(colours[i % 3]) for i in range(ROWS)]
    assert shards["csv"]["colour"] == [colours[i % 3] for i in range(ROWS)]


@pytest.mark.timeout(900)
def test_a_dictionary_encoded_string_label_is_a_label_like_plain_strings(tmp_path):
    label = pa.array([["no", "yes"][i % 2] for i in range(ROWS)]).dictionary_encode()
    manifest, shards = split_parquet(typed_table("other", pa.array(range(ROWS)), label=label), tmp_path)
    assert kinds_of(manifest)["label"] == "label" and manifest["schema"]["classes"] == ["no", "yes"]
    assert shards["labels"].tolist() == [i % 2 for i in range(ROWS)]


@pytest.mark.timeout(900)
def test_integers_past_2_53_are_numeric_with_a_printed_precision_note(tmp_path, capsys):
    values = pa.array([2 ** 60 + i for i in range(ROWS)], pa.int64())
    source = tmp_path / "big.parquet"
    pq.write_table(typed_table("big", values), source, row_group_size=25, write_statistics=False)  # the sample tells
    split_csv(source, tmp_path / "out", label="label")
    printed = capsys.readouterr().out
    notes = [line for line in printed.splitlines() if "past 2**53" in line]
    assert len(notes) == 1 and "'big'" in notes[0] and "lose precision" in notes[0]


@pytest.mark.timeout(900)
def test_every_parquet_type_is_reported_by_inspect(tmp_path):
    table = pa.table({"label": pa.array([["no", "yes"][i % 2] for i in range(ROWS)]).dictionary_encode(),
                      **{name: TYPED[name][0] for name in TYPED},
                      "colour": pa.array([["red", "blue"][i % 2] for i in range(ROWS)]).dictionary_encode(),
                      "blob": pa.array([bytes([i % 256]) for i in range(ROWS)], pa.binary()),
                      "items": pa.array([[i, i + 1] for i in range(ROWS)], pa.list_(pa.int32()))})
    source = tmp_path / "typed.parquet"
    pq.write_table(table, source, row_group_size=25)
    lines = []
    inferred = inspect_source(source, label="label", print_to=lines.append)
    report = "\n".join(lines)
    assert inferred.kinds == {"label": "label", "timestamp": "datetime", "zoned_timestamp": "datetime",
                              "date": "datetime", "decimal": "numeric", "duration": "numeric",
                              "dictionary_numbers": "numeric", "uint64_past_2_53": "numeric", "colour": "categorical"}
    assert "datetime (ISO 8601, timestamp[us, tz=UTC]): days, hour, weekday, month" in report
    assert "datetime (YYYY-MM-DD, date32[day]): days, hour, weekday, month" in report and "read as seconds" in report
    assert "'blob' (binary) is left out" in report and "'items' (list<element: int32>) is left out" in report
    assert "'uint64_past_2_53' holds integers up to" in report
    assert "2024-05-01T12:00:00" in report  # the first rows as parsed: ISO-8601 text


NESTED = {
    "binary": pa.array([bytes([i % 256, 0]) for i in range(ROWS)], pa.binary()),
    "list": pa.array([[i, i + 1] for i in range(ROWS)], pa.list_(pa.int32())),
    "struct": pa.array([{"a": i, "b": str(i)} for i in range(ROWS)], pa.struct([("a", pa.int32()), ("b", pa.string())])),
    "map": pa.array([[("k", i)] for i in range(ROWS)], pa.map_(pa.string(), pa.int64())),
}


@pytest.mark.timeout(900)
@pytest.mark.parametrize("type_name", list(NESTED))
def test_nested_parquet_columns_are_left_out_with_a_note_without_csv_copies(type_name, tmp_path, capsys):
    manifest, shards = split_parquet(typed_table("nested", NESTED[type_name]), tmp_path, formats=("npy",),
                                     verbose=True)
    assert "nested" not in kinds_of(manifest)
    assert model_inputs(manifest) == ["order"]
    assert feature(manifest, shards, "order").tolist() == list(range(ROWS))
    assert "column 'nested'" in capsys.readouterr().out


@pytest.mark.timeout(900)
@pytest.mark.parametrize("type_name", list(NESTED))
@pytest.mark.parametrize("role", ["csv copies", "label", "categorical column"])
def test_nested_parquet_columns_are_refused_before_the_pass_when_needed(type_name, role, tmp_path):
    source = tmp_path / "nested.parquet"
    pq.write_table(typed_table("nested", NESTED[type_name]), source, row_group_size=25)
    parameters = {"csv copies": {"label": "label", "formats": ("csv", "npy")},
                  "label": {"label": "nested", "formats": ("npy",)},
                  "categorical column": {"label": "label", "categorical_columns": ("nested",), "formats": ("npy",)}}[role]
    with pytest.raises(ValueError) as caught:
        split_csv(source, tmp_path / "out", verbose=False, **parameters)
    message = str(caught.value)
    assert "\n" not in message and "'nested'" in message and "nested.parquet" in message
    assert str(NESTED[type_name].type).split("<")[0] in message
    if role == "csv copies":
        assert "--formats npy" in message
    assert not list((tmp_path / "out").glob("**/*.npy"))  # refused before the pass


@pytest.mark.timeout(900)
def test_a_date_label_is_refused_before_the_pass(tmp_path):
    source = tmp_path / "dated.parquet"
    pq.write_table(typed_table("other", pa.array(range(ROWS)), label=TYPED["date"][0]), source)
    with pytest.raises(ValueError, match="the label 'label' holds date32"):
        split_csv(source, tmp_path / "out", label="label", verbose=False)


@pytest.mark.timeout(900)
def test_a_parquet_string_column_that_stops_being_numeric_names_the_column_and_row_or_reads_it_as_missing(tmp_path):
    rows = 2000
    scores = [str(i) for i in range(rows)]
    scores[150] = "red"  # in the second of 20 row groups: the sample reads 9 of them, the first and last among them
    table = pa.table({"label": pa.array([i % 2 for i in range(rows)]), "score": pa.array(scores)})
    source = tmp_path / "late.parquet"
    pq.write_table(table, source, row_group_size=100)
    with pytest.raises(ValueError) as caught:
        split_csv(source, tmp_path / "out", label="label", verbose=False)
    message = str(caught.value)
    assert "late.parquet: row 151: column 'score' holds 'red'" in message and "--invalid missing" in message
    manifest = split_csv(source, tmp_path / "kept", label="label", invalid="missing", verbose=False)
    assert (manifest["stats"]["score"]["invalid"], manifest["stats"]["score"]["missing"]) == (1, 1)


# -- damaged files ---------------------------------------------------------------
@pytest.fixture
def good_parquet(tmp_path):
    table = pa.table({"x": pa.array([float(i) for i in range(4000)]), "label": pa.array([i % 2 for i in range(4000)]),
                      "note": pa.array([f"n{i % 9}" for i in range(4000)])})
    path = tmp_path / "good.parquet"
    pq.write_table(table, path, row_group_size=200, compression="none")  # 20 row groups
    return path


def _one_line_error(source, out) -> str:
    with pytest.raises(ValueError) as caught:
        split_csv(source, out, label="label", verbose=False)
    message = str(caught.value)
    assert "\n" not in message
    return message


@pytest.mark.timeout(900)
def test_a_truncated_parquet_file_is_named_in_one_line(good_parquet, tmp_path):
    truncated = tmp_path / "truncated.parquet"
    truncated.write_bytes(good_parquet.read_bytes()[:3000])
    message = _one_line_error(truncated, tmp_path / "out")
    assert "truncated.parquet" in message and "damaged or truncated" in message
    lines = []
    with pytest.raises(ValueError, match="truncated.parquet"):
        inspect_source(truncated, label="label", print_to=lines.append)


@pytest.mark.timeout(900)
def test_a_damaged_parquet_footer_is_named_in_one_line(good_parquet, tmp_path):
    data = bytearray(good_parquet.read_bytes())
    data[-40:-8] = b"\xff" * 32  # the footer's metadata, before its length and magic
    damaged = tmp_path / "footer.parquet"
    damaged.write_bytes(bytes(data))
    assert "footer.parquet: not a readable Parquet file" in _one_line_error(damaged, tmp_path / "out")


@pytest.mark.timeout(900)
def test_a_damaged_parquet_data_page_names_file_row_group_and_column(good_parquet, tmp_path):
    data = bytearray(good_parquet.read_bytes())
    chunk = pq.ParquetFile(good_parquet).metadata.row_group(19).column(2)  # the last: read by the pass, not the sample
    data[chunk.data_page_offset:chunk.data_page_offset + 16] = b"\xff" * 16  # the page header
    damaged = tmp_path / "page.parquet"
    damaged.write_bytes(bytes(data))
    message = _one_line_error(damaged, tmp_path / "out")
    assert message.startswith(f"{damaged}: row group 19, column 'note': the data is damaged")
