"""Missing-value tokens, kinds from a spread sample, text columns, and the label policy."""


import numpy as np
import pandas as pd
import pytest
from helpers import ID_COLUMNS, run_questlearn

from questlearn.io.csvscan import CsvFormatError
from questlearn.manifest._files import load_manifest
from questlearn.schema.infer import SchemaError
from questlearn.split import split_csv
from questlearn.synth import write_quest_log


def kinds_of(manifest):
    return {c["name"]: c["kind"] for c in manifest["schema"]["columns"]}


def write_frame(frame: pd.DataFrame, path, tokens=None):
    """Write ``frame`` as CSV, then put ``tokens`` {(row, column): text} into given cells."""
    frame = frame.astype(object)
    for (row, column), text in (tokens or {}).items():
        frame.loc[row, column] = text
    frame.to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def big_frame(tmp_path_factory):
    """A quest log several sample pieces long (about 12 MB), as a DataFrame."""
    log = write_quest_log(tmp_path_factory.mktemp("tokens") / "quests.csv", rows=60_000, seed=17)
    return pd.read_csv(log)


def test_na_in_the_first_block_keeps_the_column_numeric(big_frame, tmp_path, capsys):
    source = write_frame(big_frame, tmp_path / "na.csv", {(row, "power"): "NA" for row in range(0, 400, 7)})
    split_csv(source, tmp_path / "out", id_columns=ID_COLUMNS)
    manifest = load_manifest(tmp_path / "out")
    assert kinds_of(manifest)["power"] == "numeric"
    assert manifest["stats"]["power"]["missing"] == len(range(0, 400, 7))
    printed = capsys.readouterr().out
    assert "power" in printed and "numeric" in printed and "'NA'" in printed  # the schema and tokens are shown
    assert manifest["schema"]["inferred"][4]["name"] == "power"


def test_a_default_token_first_seen_in_the_last_tenth_is_missing(big_frame, tmp_path):
    rows = len(big_frame)
    late = {(row, "difficulty"): "N/A" for row in range(int(rows * 0.93), rows, 997)}
    source = write_frame(big_frame, tmp_path / "late.csv", late)
    split_csv(source, tmp_path / "out", id_columns=ID_COLUMNS, rows_per_shard=20_000, verbose=False)
    manifest = load_manifest(tmp_path / "out")
    assert kinds_of(manifest)["difficulty"] == "numeric"
    assert manifest["stats"]["difficulty"]["missing"] == len(late)


def test_an_unknown_token_after_the_sample_names_line_byte_and_the_na_value_fix(big_frame, tmp_path):
    rows = len(big_frame)
    late_rows = list(range(rows - 300, rows, 50))
    source = write_frame(big_frame, tmp_path / "late.csv", {(row, "party_size"): "?" for row in late_rows})
    out = tmp_path / "out"
    with pytest.raises(CsvFormatError) as caught:
        split_csv(source, out, id_columns=ID_COLUMNS, rows_per_shard=100_000, verbose=False)
    error = caught.value
    assert error.line == late_rows[0] + 2  # header is line 1, data row 0 is line 2
    lines = source.read_bytes().split(b"\n")
    assert error.byte_offset == sum(len(line) + 1 for line in lines[: error.line - 1])
    assert "--na-value '?'" in str(error) and "party_size" in str(error)
    assert not out.exists()  # nothing final was written: the suggested command works as printed
    split_csv(source, out, id_columns=ID_COLUMNS, rows_per_shard=100_000, na_values=["?"], verbose=False)
    manifest = load_manifest(out)
    assert kinds_of(manifest)["party_size"] == "numeric"
    assert manifest["stats"]["party_size"]["missing"] == len(late_rows)
    assert "?" in manifest["schema"]["na_values"]


def test_a_question_mark_token_in_the_sample_stops_before_the_pass(big_frame, tmp_path):
    source = write_frame(big_frame.head(5000), tmp_path / "uci.csv", {(row, "stamina"): "?" for row in range(3, 900, 11)})
    with pytest.raises(SchemaError) as caught:
        split_csv(source, tmp_path / "out", id_columns=ID_COLUMNS, verbose=False)
    message = str(caught.value)
    assert "column 'stamina' is numeric except for '?'" in message and "--na-value '?'" in message
    assert "--categorical-column stamina" in message
    assert "line 5" in message  # row 3 of the data: where the token was first seen
    assert not (tmp_path / "out").exists()
    split_csv(source, tmp_path / "ok", id_columns=ID_COLUMNS, na_values=["?"], verbose=False)
    manifest = load_manifest(tmp_path / "ok")
    assert kinds_of(manifest)["stamina"] == "numeric"
    assert manifest["stats"]["stamina"]["missing"] >= len(range(3, 900, 11))


def test_no_default_na_keeps_NA_as_a_value(tmp_path):
    frame = pd.DataFrame({"country": ["NA", "DE", "FR", "NA", "US"] * 40, "score": [1.5, "", 2.0, 3.0, 4.0] * 40,
                          "cleared": [0, 1, 0, 1, 1] * 40})
    source = tmp_path / "countries.csv"
    frame.to_csv(source, index=False)
    split_csv(source, tmp_path / "default", verbose=False)
    default = load_manifest(tmp_path / "default")
    assert "NA" not in default["schema"]["categories"]["country"]
    assert default["stats"]["country"]["missing"] == 80
    split_csv(source, tmp_path / "strict", keep_default_na=False, verbose=False)
    strict = load_manifest(tmp_path / "strict")
    assert "NA" in strict["schema"]["categories"]["country"]
    assert strict["stats"]["country"]["missing"] == 0
    assert strict["stats"]["score"]["missing"] == 40  # the empty field is always missing
    assert strict["schema"]["na_values"] == [""]


def test_a_real_word_late_in_a_numeric_column_suggests_a_categorical_column(big_frame, tmp_path):
    rows = len(big_frame)
    source = write_frame(big_frame, tmp_path / "city.csv", {(rows - 5, "player_level"): "Hamburg Altona"})
    with pytest.raises(CsvFormatError) as caught:
        split_csv(source, tmp_path / "out", id_columns=ID_COLUMNS, verbose=False)
    message = str(caught.value)
    assert "'Hamburg Altona'" in message and "--categorical-column player_level" in message
    assert "--na-value" not in message
    assert caught.value.line == rows - 5 + 2


def test_digit_separators_are_located_and_explained(tmp_path):
    source = tmp_path / "sep.csv"
    source.write_text("gold,cleared\n" + "".join(f"{i},{i % 2}\n" for i in range(3000)) + '"1_000",1\n')
    with pytest.raises(CsvFormatError) as caught:
        split_csv(source, tmp_path / "out", block_size=1024, verbose=False)
    assert caught.value.line == 3002 and "'1_000'" in str(caught.value)


def test_high_cardinality_strings_are_text_and_later_overflow_goes_out_of_vocabulary(tmp_path, capsys):
    rng = np.random.default_rng(0)
    rows = 6000
    frame = pd.DataFrame({
        "comment": [f"free text about the quest, number {i}" for i in range(rows)],  # long, spaced, distinct: text
        "guild": [f"g{i % 8}" if i < 5000 else f"late{i}" for i in range(rows)],  # outgrows late
        "level": rng.integers(1, 60, rows),
        "cleared": rng.integers(0, 2, rows),
    })
    source = tmp_path / "text.csv"
    frame.to_csv(source, index=False)
    # guild is declared: its 58 distinct values in the sample exceed 50, the 50 most frequent are its vocabulary
    split_csv(source, tmp_path / "out", max_categories=50, block_size=16_384, categorical_columns=["guild"], verbose=True,
              formats=("csv", "npy"))
    printed = capsys.readouterr().out
    manifest = load_manifest(tmp_path / "out")
    kinds = kinds_of(manifest)
    assert kinds["comment"] == "text" and "comment" not in manifest["schema"]["features"]
    assert kinds["guild"] == "categorical"
    vocabulary = manifest["schema"]["categories"]["guild"]
    assert len(vocabulary) == 50 and vocabulary[:8] == [f"g{i}" for i in range(8)]  # most frequent first
    oov = rows - 5000 - (50 - 8)
    assert manifest["stats"]["guild"]["oov"] == oov
    assert "the 50 most frequent kept, the others hashed" in printed
    assert f"column 'guild': {oov} rows held values outside its vocabulary (past --max-categories" in printed
    from questlearn.data._batches import ShardReader

    buckets = manifest["schema"]["encoding"]["hash_buckets"]["guild"]
    codes = []
    for subset in ("train", "validate"):
        reader = ShardReader(manifest, subset)
        assert reader.output_names()[-1] == "guild" and reader.code_counts()[-1] == 1 + buckets + 50
        x, _ = reader.read([(s, np.arange(r["rows"])) for s, r in enumerate(reader.shards)])
        codes.append(x["codes"][:, -1])
    codes = np.concatenate(codes)
    assert codes.min() >= 1 and codes.max() <= buckets + 50  # no guild missing; every code inside its range
    assert (codes <= buckets).sum() == oov  # every row: a vocabulary value or a hashed bucket
    header = (tmp_path / "out" / manifest["subsets"]["train"]["shards"][0]["files"]["csv"]["name"]).read_text().splitlines()[0]
    assert "comment" in header  # text stays in the CSV shards


def test_a_numeric_label_with_many_values_is_refused_early_suggesting_regression(tmp_path):
    frame = pd.DataFrame({"x": np.arange(2000) % 17, "hours": (np.arange(2000) * 37) % 98})
    source = tmp_path / "hours.csv"
    frame.to_csv(source, index=False)
    with pytest.raises(SchemaError, match="more than --max-classes 50: it looks like a quantity: use --task regression"):
        split_csv(source, tmp_path / "out", label="hours", verbose=False)
    assert not (tmp_path / "out").exists()
    split_csv(source, tmp_path / "reg", label="hours", task="regression", verbose=False)
    manifest = load_manifest(tmp_path / "reg")
    assert manifest["schema"]["task"] == "regression" and manifest["schema"]["classes"] == []
    assert manifest["stats"]["hours"]["mean"] == pytest.approx(frame["hours"].mean())
    labels = np.concatenate([np.load(tmp_path / "reg" / s["files"]["labels"]["name"])
                             for sub in ("train", "validate") for s in manifest["subsets"][sub]["shards"]])
    assert labels.dtype == np.float32 and sorted(labels.tolist()) == sorted(frame["hours"].astype(float).tolist())


def test_label_spellings_of_one_number_are_one_class(tmp_path):
    source = tmp_path / "spell.csv"
    spellings = ["1", "1.0", " 1", "0", "0.0", "+1"]
    source.write_text("x,cleared\n" + "".join(f"{i},{spellings[i % 6]}\n" for i in range(600)))
    split_csv(source, tmp_path / "out", verbose=False)
    manifest = load_manifest(tmp_path / "out")
    assert manifest["schema"]["classes"] == ["0", "1"]
    counts = {}
    for sub in ("train", "validate"):
        for shard in manifest["subsets"][sub]["shards"]:
            for name, n in shard["label_counts"].items():
                counts[name] = counts.get(name, 0) + n
    assert counts == {"0": 200, "1": 400}


def test_values_beyond_float32_are_refused_with_a_location(tmp_path):
    source = tmp_path / "huge.csv"
    source.write_text("x,cleared\n" + "".join(f"{i},{i % 2}\n" for i in range(50)) + "1e300,1\n")
    with pytest.raises(CsvFormatError, match="beyond float32's range") as caught:
        split_csv(source, tmp_path / "out", verbose=False)
    assert caught.value.line == 52


def test_blank_lines_before_the_header_and_a_last_row_without_newline(tmp_path):
    source = tmp_path / "spectrum.csv"
    source.write_bytes(b"\n\r\nname,score,cleared\nanna,1.5,1\nbob,2,0\nzoe,x,1")  # no trailing newline
    with pytest.raises(SchemaError, match="'x'"):  # the last row is in the sample: the kind is not decided without it
        split_csv(source, tmp_path / "out", verbose=False)
    source.write_bytes(b"\n\r\nname,score,cleared\nanna,1.5,1\nbob,2,0\nzoe,3,1")
    split_csv(source, tmp_path / "ok", verbose=False)
    assert load_manifest(tmp_path / "ok")["source"]["rows"] == 3


def test_inspect_prints_the_schema_and_rows_and_writes_nothing(big_frame, tmp_path):
    source = write_frame(big_frame.head(3000), tmp_path / "q.csv", {(2, "power"): "?"})
    before = sorted(p.name for p in tmp_path.iterdir())
    result = run_questlearn("inspect", source, "--id-column", "attempt_id", "--rows", "3", cwd=tmp_path)
    assert result.returncode == 1, result.stderr  # a problem to settle: the exit code says so
    out = result.stdout
    assert "power" in out and "numeric except '?'" in out and "--na-value '?'" in out
    assert "first 3 rows as parsed" in out and "Traceback" not in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    ok = run_questlearn("inspect", source, "--na-value", "?", cwd=tmp_path)
    assert ok.returncode == 0 and "problems" not in ok.stdout


def _timestamp_sample(count: int, bad: dict) -> "pa.Table":
    import pyarrow as pa
    from datetime import datetime, timedelta

    start = datetime(2023, 1, 1)
    times = [(start + timedelta(minutes=37 * i)).strftime("%Y-%m-%d %H:%M:%S") for i in range(count)]
    for row, value in bad.items():
        times[row] = value
    return pa.table({"t": times, "x": [str(i % 7) for i in range(count)],
                     "cleared": [str(i % 2) for i in range(count)]})


def _locate(row):
    return "log.csv", row + 2, 40 * row  # the header is line 1


@pytest.mark.parametrize("bad", ["2023-02-30 10:00:00", "2023-06-30 23:59:60"], ids=["february 30", "leap second"])
def test_one_impossible_timestamp_in_the_sample_keeps_the_column_datetime_and_is_named(bad):
    from questlearn.schema.infer import infer_schema

    sample = _timestamp_sample(300, {7: bad})  # mostly distinct values: once typed "id"
    inferred = infer_schema(sample, label="cleared", locate=_locate)
    assert inferred.kinds["t"] == "datetime" and inferred.datetime_formats["t"].name == "ISO 8601"
    report = next(c for c in inferred.columns if c.name == "t")
    assert f"unreadable in the sample: {bad!r} (line 9)" in report.note
    assert len(inferred.problems) == 1 and f"column 't' holds {bad!r}" in inferred.problems[0]
    assert "--invalid missing" in inferred.problems[0] and inferred.location == _locate(7)
    assert f"{bad!r} (line 9)" in inferred.describe()
    tolerant = infer_schema(sample, label="cleared", locate=_locate, invalid="missing")
    assert tolerant.kinds["t"] == "datetime" and not tolerant.problems
    assert "read as missing" in next(c for c in tolerant.columns if c.name == "t").note


def test_a_refused_datetime_column_quotes_the_values_that_do_not_parse():
    from questlearn.schema.infer import infer_schema

    sample = _timestamp_sample(40, {3: "soon", 11: "2023-13-01 10:00:00", 20: "later"})
    inferred = infer_schema(sample, label="cleared", datetime_columns=("t",))
    assert len(inferred.problems) == 1
    problem = inferred.problems[0]
    assert "['soon', '2023-13-01 10:00:00', 'later']" in problem
    assert "2023-01-01 00:00:00" not in problem  # a valid value is no example of one that fails
