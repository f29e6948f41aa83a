"""Values a numeric or datetime column cannot read: the split stops at them (column, file, line, byte and the
fix), or with ``invalid="missing"`` (``--invalid missing``) reads them as missing and counts them per column."""

import functools
import json
from datetime import datetime, timedelta

import pytest
from helpers import run_questlearn

from questlearn.errors import OptionError
from questlearn.io.csvscan import CsvFormatError
from questlearn.manifest._files import load_manifest
from questlearn.manifest._validate import validate_manifest
from questlearn.split import split_csv

ROWS = 3000


def write_log(path, times=None, numbers=None):
    """A CSV of ``ROWS`` rows ``t`` (a timestamp), ``x`` (a number), ``cleared``, with the ``{row: text}``
    of ``times`` and ``numbers`` put in their cells; returns the path."""
    start = datetime(2023, 1, 1)
    lines = ["t,x,cleared\n"]
    for row in range(ROWS):
        t = (times or {}).get(row, (start + timedelta(minutes=37 * row)).strftime("%Y-%m-%d %H:%M:%S"))
        x = (numbers or {}).get(row, str(row % 7))
        lines.append(f"{t},{x},{row % 2}\n")
    path.write_text("".join(lines))
    return path


def line_start(path, line: int) -> int:
    """The byte offset of line ``line`` (1-based) of ``path``."""
    return sum(len(text) for text in path.read_bytes().splitlines(keepends=True)[:line - 1])


@pytest.fixture
def small_sample(monkeypatch):
    """Sample the first 20 kB (about 800 rows) and one 2 kB piece: rows past 2000 are after the sample."""
    from questlearn.schema import _sampling

    monkeypatch.setattr(_sampling, "sample_csv",
                        functools.partial(_sampling.sample_csv, first_bytes=20_000, pieces=1, piece_bytes=2000))


def split_cli(*args):
    return run_questlearn("split", *args, "--no-progress", timeout=900)


@pytest.mark.parametrize("bad", ["2023-02-30 10:00:00", "2023-06-30 23:59:60"], ids=["february 30", "leap second"])
def test_an_impossible_timestamp_in_the_sample_is_named_and_stops_the_split_where_it_is(tmp_path, bad):
    source = write_log(tmp_path / "log.csv", times={5: bad})
    result = split_cli(source, tmp_path / "out")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    schema_row = next(line for line in result.stdout.splitlines() if line.lstrip().startswith("t "))
    assert " datetime " in schema_row and f"unreadable in the sample: {bad!r} (line 7)" in schema_row
    error = result.stderr.strip()
    assert f"{source}: line 7, byte offset {line_start(source, 7)}:" in error
    assert f"column 't' holds {bad!r}" in error and "--invalid missing" in error
    assert not (tmp_path / "out").exists()


def test_an_impossible_timestamp_after_the_sample_stops_naming_column_file_line_and_byte(tmp_path, small_sample):
    source = write_log(tmp_path / "log.csv", times={2500: "2023-02-30 10:00:00"})
    with pytest.raises(CsvFormatError) as caught:
        split_csv(source, tmp_path / "out", verbose=False)
    error = caught.value
    assert (error.path, error.line, error.byte_offset) == (str(source), 2502, line_start(source, 2502))
    assert "column 't' holds '2023-02-30 10:00:00', which names no real date or time" in str(error)
    assert "--invalid missing" in str(error)


def test_a_number_after_the_sample_that_is_no_number_stops_suggesting_the_option(tmp_path, small_sample):
    source = write_log(tmp_path / "log.csv", numbers={2700: "12abc"})
    with pytest.raises(CsvFormatError) as caught:
        split_csv(source, tmp_path / "out", verbose=False)
    assert (caught.value.line, caught.value.byte_offset) == (2702, line_start(source, 2702))
    assert "column 'x' holds '12abc'" in str(caught.value) and "--invalid missing" in str(caught.value)


def test_invalid_missing_reads_unreadable_values_as_missing_and_counts_them(tmp_path, small_sample, capsys):
    times = {5: "2023-02-30 10:00:00", 2500: "2023-06-30 23:59:60", 2600: "2023/03/01 10:00:00"}  # 1 sampled, 2 not
    source = write_log(tmp_path / "log.csv", times=times, numbers={2700: "12abc", 2800: "?"})
    manifest = split_csv(source, tmp_path / "out", invalid="missing")
    stats = manifest["stats"]
    assert (stats["t.days"]["invalid"], stats["t.days"]["missing"], stats["t.days"]["count"]) == (3, 3, ROWS - 3)
    assert (stats["x"]["invalid"], stats["x"]["missing"], stats["x"]["count"]) == (2, 2, ROWS - 2)
    assert manifest["parameters"]["invalid"] == "missing"
    assert sum(manifest["subsets"][s]["rows"] for s in ("train", "validate")) == ROWS  # no row lost
    validate_manifest(json.loads(json.dumps(manifest)), "manifest.json")
    assert load_manifest(tmp_path / "out")["stats"]["x"]["invalid"] == 2
    printed = capsys.readouterr().out
    assert "column 't': 3 values that are not dates or times were read as missing (--invalid missing)" in printed
    assert "column 'x': 2 values that are not numbers were read as missing (--invalid missing)" in printed
    assert "'2023-02-30 10:00:00' (line 7)" in printed  # the sampled one, named in the schema


def test_invalid_missing_counts_a_bad_number_in_the_sample_instead_of_refusing_it(tmp_path):
    source = write_log(tmp_path / "log.csv", numbers={4: "12abc"})
    result = split_cli(source, tmp_path / "out", "--invalid", "missing")
    assert result.returncode == 0, result.stderr
    assert "column 'x': 1 values that are not numbers were read as missing" in result.stdout
    assert json.loads((tmp_path / "out" / "manifest.json").read_text())["stats"]["x"]["invalid"] == 1
    refused = split_cli(source, tmp_path / "refused")
    assert refused.returncode == 2 and "column 'x' is numeric except for '12abc'" in refused.stderr
    assert "add --invalid missing" in refused.stderr


def test_a_split_without_the_option_records_no_count_and_an_unknown_policy_is_refused(tmp_path):
    manifest = split_csv(write_log(tmp_path / "log.csv"), tmp_path / "out", verbose=False)
    assert "invalid" not in manifest["parameters"] and "invalid" not in manifest["stats"]["x"]
    with pytest.raises(OptionError, match="invalid must be one of"):
        split_csv(tmp_path / "log.csv", tmp_path / "other", invalid="skip", verbose=False)


@pytest.mark.timeout(900)
def test_a_parallel_split_counts_the_values_read_as_missing_like_a_sequential_one(tmp_path):
    parts = tmp_path / "parts"
    parts.mkdir()
    write_log(parts / "a.csv", times={5: "2023-02-30 10:00:00", 2000: "2023-06-30 23:59:60"}, numbers={2700: "12abc"})
    write_log(parts / "b.csv", numbers={10: "?"})
    sequential = split_csv(parts, tmp_path / "sequential", invalid="missing", verbose=False)
    parallel = split_csv(parts, tmp_path / "parallel", invalid="missing", verbose=False, parallel=2)
    for manifest in (sequential, parallel):
        assert (manifest["stats"]["x"]["invalid"], manifest["stats"]["t.days"]["invalid"]) == (2, 2)
