"""Records up to the documented 16 MiB split (the parse grows for their run); a longer one is refused where it starts."""

import pytest

from questlearn.io.csvscan import DEFAULT_MAX_RECORD_BYTES, CsvFormatError
from questlearn.manifest import load_manifest
from questlearn.split import split_csv


def log_with_a_long_field(path, length, rows=40, long_rows=(10,)):
    """``rows`` rows of ``note,x,label``, the notes of ``long_rows`` (row r: line r + 2) ``length`` characters long."""
    with open(path, "w") as handle:
        handle.write("note,x,label\n")
        for row in range(rows):
            handle.write(f"{'N' * length if row in long_rows else 'abc'[row % 3]},{row},{row % 2}\n")
    return path


@pytest.mark.parametrize("length, long_rows", [(6_000_000, (10,)), (1_500_000, range(10, 16))])
def test_a_multi_megabyte_field_splits(tmp_path, length, long_rows):
    rows = 40
    source = log_with_a_long_field(tmp_path / "s.csv", length, rows=rows, long_rows=long_rows)
    split_csv(source, tmp_path / "split", label="label", formats=("csv", "npy"), progress=False, verbose=False)
    manifest = load_manifest(tmp_path / "split")
    assert manifest["source"]["rows"] == rows
    shards = [tmp_path / "split" / shard["files"]["csv"]["name"]
              for subset in ("train", "validate") for shard in manifest["subsets"][subset]["shards"]]
    held = sum(path.read_bytes().count(("N" * length).encode()) for path in shards)
    assert held == len(long_rows)  # each long record, whole


def test_a_record_over_16_mib_is_refused_with_file_line_and_byte(tmp_path):
    source = log_with_a_long_field(tmp_path / "s.csv", DEFAULT_MAX_RECORD_BYTES + (1 << 20), rows=20)
    try:
        with pytest.raises(CsvFormatError) as refused:
            split_csv(source, tmp_path / "split", label="label", progress=False, verbose=False)
    finally:
        source.unlink()
    error = refused.value
    assert (error.path, error.line, error.byte_offset) == (str(source), 12, 13 + 10 * len("a,0,0\n"))
    assert "more than the 16777216 bytes (16 MiB) questlearn reads as one record" in str(error)
    assert "\n" not in str(error)
