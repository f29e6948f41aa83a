"""One reader per source format: the factory, the interface, and the named errors a source's mistakes raise."""

from __future__ import annotations

import gzip
import os

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from questlearn.errors import InputFormatError, IntegrityError, OptionError, OutputFolderError
from questlearn.io.readers import CsvReader, ParquetReader, reader_for
from questlearn.io.sources import check_unchanged, resolve_sources
from questlearn.serve._input_rows import open_input
from questlearn.serve._output_file import check_output
from questlearn.split import split_csv


def _csv(path, text: str):
    path.write_text(text)
    return path


def test_reader_for_picks_the_reader_of_the_sources_format_and_empty_files_hold_no_rows(tmp_path):
    _csv(tmp_path / "a.csv", "x,y\n1,2\n3,4\n")
    (tmp_path / "b.csv").write_bytes(b"")
    with gzip.open(tmp_path / "c.csv.gz", "wt") as handle:
        handle.write("x,y\n5,6\n")
    reader = reader_for(resolve_sources(tmp_path))
    assert isinstance(reader, CsvReader) and reader.names == ["x", "y"] and len(reader.files) == 3
    blocks = list(reader.blocks({"x": pa.float64()}, [""]))
    assert [v for b in blocks for v in b.table["x"].to_pylist()] == [1.0, 3.0, 5.0]
    pq.write_table(pa.table({"x": [1.0, 2.0], "y": ["a", "b"]}), tmp_path / "d.parquet")
    parquet = reader_for(resolve_sources(tmp_path / "d.parquet"))
    assert isinstance(parquet, ParquetReader) and parquet.names == ["x", "y"]
    assert parquet.estimate_rows() == (2, True) and parquet.missing_tokens(["NA"]) is None


def test_a_value_error_in_a_parquet_row_is_an_input_format_error_naming_file_and_row(tmp_path):
    values = [1.0] * 400
    values[299] = float("inf")
    pq.write_table(pa.table({"x": values, "label": ["a", "b"] * 200}), tmp_path / "rows.parquet")
    with pytest.raises(InputFormatError, match=r"rows\.parquet: row 300: column 'x' holds an infinite value"):
        split_csv(tmp_path / "rows.parquet", tmp_path / "out", label="label", verbose=False)


def test_predict_input_parquet_parts_with_different_schemas_are_refused_naming_the_fix(tmp_path):
    pq.write_table(pa.table({"x": [1.0]}), tmp_path / "a.parquet")
    pq.write_table(pa.table({"x": ["1"]}), tmp_path / "b.parquet")
    with pytest.raises(InputFormatError, match=r"b\.parquet: its Parquet schema differs from \S*a\.parquet's; every "
                                               "file of an input must have the same columns and types"):
        open_input(tmp_path, [""])


def test_source_mistakes_raise_the_named_input_error(tmp_path):
    (tmp_path / "parts").mkdir()
    _csv(tmp_path / "parts" / "a.csv", "x,label\n1,a\n")
    _csv(tmp_path / "parts" / "b.csv", "x,other\n1,a\n")
    with pytest.raises(InputFormatError, match="the header differs"):
        split_csv(tmp_path / "parts", tmp_path / "out", label="label", verbose=False)
    (tmp_path / "broken.parquet").write_bytes(b"PAR1" + b"\0" * 64)
    with pytest.raises(InputFormatError, match="not a readable Parquet file"):
        split_csv(tmp_path / "broken.parquet", tmp_path / "out2", label="label", verbose=False)
    packed = gzip.compress(b"x,label\n" + b"1,a\n" * 50_000)
    (tmp_path / "cut.csv.gz").write_bytes(packed[: len(packed) // 2])
    with pytest.raises(InputFormatError, match="the gzip data is corrupt or truncated"):
        split_csv(tmp_path / "cut.csv.gz", tmp_path / "out3", label="label", verbose=False)


def test_a_source_that_does_not_exist_is_an_option_error(tmp_path):
    with pytest.raises(OptionError, match="does not exist"):
        resolve_sources(tmp_path / "missing.csv")


def test_a_source_file_changed_while_read_is_an_integrity_error(tmp_path):
    (source,) = resolve_sources(_csv(tmp_path / "a.csv", "x,label\n1,a\n"))
    with open(source.path, "a") as handle:
        handle.write("2,b\n")
    with pytest.raises(IntegrityError, match="changed while questlearn read it"):
        check_unchanged(source)


def test_predict_refuses_an_output_that_is_its_input_with_an_output_folder_error(tmp_path):
    source = _csv(tmp_path / "rows.csv", "x\n1\n")
    with pytest.raises(OutputFolderError, match="it is the input file"):
        check_output(source, source, tmp_path / "model")
    link = tmp_path / "link.csv"
    os.symlink(source, link)
    with pytest.raises(OutputFolderError, match="it is the input file"):
        check_output(link, source, tmp_path / "model")
    with pytest.raises(OutputFolderError, match="it is a directory"):
        check_output(tmp_path, source, tmp_path / "model")
