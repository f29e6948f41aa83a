"""The split's cheaper reading gives exactly what the careful reading gives.

Speed-ups in the split's pass that must never change a value:

* :class:`questlearn.io._parse.RecordParser` parses a run first with only the
  missing-value tokens a number parser accepts (and the empty field), then
  looks for the other tokens in the string columns and for NaN in the
  numeric ones, and parses again with every token when it finds one;
* a block is read with its carried-over prefix in one ``pread``
  (:meth:`questlearn.io.sources.DecodedStream.read_after`);
* rows are grouped by shard with a radix sort (:func:`questlearn.split._scatter.rows_by_shard`).
"""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pytest

from questlearn.io._parse import RecordParser, parse_records
from questlearn.io.sources import open_decoded, resolve_sources
from questlearn.schema._columns import missing_tokens
from questlearn.split import split_csv
from questlearn.split._scatter import rows_by_shard

NAMES = ["level", "power", "quest", "cleared"]
TYPES = {"level": pa.float64(), "power": pa.float64(), "quest": pa.string(), "cleared": pa.string()}
TOKENS = missing_tokens(["-999", "missing"])


def careful(data: bytes) -> pa.Table:
    return parse_records(data, NAMES, types=TYPES, include=list(TYPES), null_values=TOKENS)


def test_only_tokens_that_read_as_numbers_other_than_nan_are_kept_for_the_first_parse():
    parser = RecordParser(NAMES, TYPES, delimiter=",", null_values=TOKENS)
    assert parser.quick_null_values == ["", "-999"]
    assert not parser.all_tokens


@pytest.mark.parametrize("rows", [
    b"1,2.5,raid,1\n2,3.5,escort,0\n",                 # no token at all
    b"1,2.5,NA,1\n2,3.5,escort,0\n",                   # a token in a string column
    b'1,2.5,"NULL",1\n2,3.5,escort,0\n',               # quoted
    b"1,nan,raid,1\n2,-NaN,escort,0\n",                 # NaN spellings in a numeric column
    b"1,NA,raid,1\n2,N/A,escort,NA\n",                  # tokens in a numeric column and the label
    b"-999,2.5,raid,1\n2,missing,escort,0\n",           # the user's tokens
    b'1,2.5,"two\nlines",1\n2,3.5,escort,0\n',          # a newline inside a quoted value
    b"1,2.5,,1\n,,escort,0\n",                          # empty fields
])
def test_the_quick_parse_gives_the_careful_table(rows):
    parser = RecordParser(NAMES, TYPES, delimiter=",", null_values=TOKENS)
    table = parser.parse(rows)
    assert table.equals(careful(rows))
    assert table.schema == careful(rows).schema


def test_after_a_run_needed_every_token_later_runs_use_them_at_once():
    parser = RecordParser(NAMES, TYPES, delimiter=",", null_values=TOKENS)
    parser.parse(b"1,2.5,raid,1\n")
    assert not parser.all_tokens
    parser.parse(b"1,2.5,NA,1\n")
    assert parser.all_tokens


@pytest.mark.parametrize("rows", [b"1,abc,raid,1\n", b"1,NAN,raid,1\n"])
def test_a_bad_value_fails_as_with_every_token(rows):
    parser = RecordParser(NAMES, TYPES, delimiter=",", null_values=TOKENS)
    if rows == b"1,NAN,raid,1\n":  # read as a number NaN either way; the split then refuses it with its line
        assert np.isnan(parser.parse(rows)["power"][0].as_py())
        return
    with pytest.raises(pa.ArrowInvalid) as quick:
        parser.parse(rows)
    with pytest.raises(pa.ArrowInvalid) as full:
        careful(rows)
    assert str(quick.value) == str(full.value)


def test_tokens_met_only_late_in_a_split_are_missing_values(tmp_path):
    rng = np.random.default_rng(0)
    rows, late = 20_000, 15_000
    level = rng.integers(1, 60, rows).astype(str).astype(object)
    quest = rng.choice(["raid", "escort", "gather"], rows).astype(object)
    cleared = rng.integers(0, 2, rows)
    level[late::97] = "NA"
    level[late + 1::89] = "nan"
    quest[late + 2::83] = "NULL"
    lines = [f"{a},{b},{c}\n" for a, b, c in zip(level, quest, cleared)]
    log = tmp_path / "log.csv"
    log.write_text("level,quest,cleared\n" + "".join(lines))
    out = tmp_path / "out"
    split_csv(log, out, block_size=64 * 1024, rows_per_shard=5_000, verbose=False)
    stats = json.loads((out / "manifest.json").read_text())["stats"]
    assert stats["level"]["missing"] == int(np.isin(level, ["NA", "nan"]).sum())
    assert stats["quest"]["missing"] == int((quest == "NULL").sum())
    assert set(stats["quest"]["category_counts"]) == {"escort", "gather", "raid"}


def test_a_block_and_its_prefix_are_read_in_one_piece_and_a_changed_prefix_is_refused(tmp_path):
    path = tmp_path / "log.csv"
    path.write_bytes(bytes(range(256)) * 64)
    source = resolve_sources(path)[0]
    stream = open_decoded(source)
    first = stream.read(1000)
    data = stream.read_after(first[-100:], 3000)
    assert data == path.read_bytes()[900:4000] and stream.position == 4000
    tail = stream.read_after(data[-10:], 1 << 20)
    assert tail == path.read_bytes()[3990:]
    assert stream.finish() == __import__("hashlib").sha256(path.read_bytes()).hexdigest()
    stream.close()

    stream = open_decoded(source)
    first = stream.read(1000)
    with open(path, "r+b") as handle:  # the bytes carried over change on disk
        handle.seek(950)
        handle.write(b"\xff" * 10)
    with pytest.raises(ValueError, match="changed while it was being read"):
        stream.read_after(first[-100:], 3000)
    stream.close()


@pytest.mark.parametrize("shards", [1, 7, 256, 70_000])
def test_rows_are_grouped_by_shard_in_order(shards):
    assignment = np.random.default_rng(shards).integers(0, shards, 50_000)
    assert np.array_equal(rows_by_shard(assignment, shards), np.argsort(assignment, kind="stable"))
