"""A split refuses, in one line and before it writes, what would harm its input or leave training without data."""


import pytest
from helpers import run_questlearn
from splits import rows_file

from questlearn.errors import SchemaError
from questlearn.io.csvscan import CsvFormatError
from questlearn.split import split_csv


def snapshot(folder):
    return {p: p.read_bytes() if p.is_file() else None for p in sorted(folder.rglob("*"))}


@pytest.fixture
def source(tmp_path):
    """A source folder of two part files, with a parent folder holding nothing else."""
    folder = tmp_path / "logs" / "quests"
    rows_file(folder / "a.csv", 30)
    rows_file(folder / "b.csv", 30)
    return folder


OVER_THE_SOURCE = {
    "the source file itself": (lambda s: s / "a.csv", lambda s: s / "a.csv", "is the source"),
    "the source folder itself": (lambda s: s, lambda s: s, "is the source"),
    "the folder holding the source file": (lambda s: s / "a.csv", lambda s: s, "holds the source"),
    "a parent of the source folder": (lambda s: s, lambda s: s.parent, "holds the source"),
    "inside the source folder": (lambda s: s, lambda s: s / "split", "inside the source folder"),
    "another file": (lambda s: s / "a.csv", lambda s: s / "b.csv", "is a file, not a folder"),
}


@pytest.mark.parametrize("case", OVER_THE_SOURCE)
def test_split_refuses_an_output_that_is_holds_or_lies_in_its_input(source, case):
    source_of, output_of, words = OVER_THE_SOURCE[case]
    before = snapshot(source.parent.parent)
    with pytest.raises(ValueError, match=words):
        split_csv(source_of(source), output_of(source), verbose=False)
    assert snapshot(source.parent.parent) == before  # nothing written, nothing created


def test_split_of_a_file_onto_itself_is_one_line_on_the_command_line(source):
    target = source / "a.csv"
    before = target.read_bytes()
    result = run_questlearn("split", target, target)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().count("\n") == 0 and "is the source" in result.stderr
    assert target.read_bytes() == before


def test_an_output_folder_inside_the_source_folder_is_refused_before_it_is_made(source, tmp_path):
    with pytest.raises(ValueError, match="inside the source folder"):
        split_csv(source, source / "splits" / "first", verbose=False)
    assert sorted(p.name for p in source.iterdir()) == ["a.csv", "b.csv"]
    split_csv(source, tmp_path / "elsewhere", verbose=False, val_fraction=0.3)  # the source is still a source


def test_a_refused_split_removes_the_folders_it_created_and_no_others(tmp_path):
    broken = rows_file(tmp_path / "broken.csv", 50, bad_row=40)
    (tmp_path / "kept").mkdir()
    with pytest.raises(CsvFormatError, match="ragged row"):
        split_csv(broken, tmp_path / "kept" / "new" / "deeper" / "out", verbose=False)
    assert (tmp_path / "kept").is_dir() and not any((tmp_path / "kept").iterdir())


@pytest.mark.parametrize("count", [1, 2])
def test_a_source_too_small_for_both_subsets_is_refused_before_writing(tmp_path, count):
    small = rows_file(tmp_path / "small.csv", count)
    out = tmp_path / "out"
    with pytest.raises(ValueError) as caught:
        split_csv(small, out, verbose=False)  # --val-fraction 0.2, --seed 0: no row drawn into validate
    message = str(caught.value)
    assert message.startswith(f"{small} has {count} row") and "validate" in message and "\n" not in message
    assert not out.exists()
    if count == 2:
        fraction = float(message.split("with this seed --val-fraction ")[1].split()[0])
        manifest = split_csv(small, out, verbose=False, val_fraction=fraction)
        assert [manifest["subsets"][s]["rows"] for s in ("train", "validate")] == [1, 1]


def test_a_split_whose_draw_left_a_subset_empty_is_refused_and_leaves_nothing(tmp_path):
    folder = tmp_path / "parts"
    rows_file(folder / "a.csv", 1)
    rows_file(folder / "b.csv", 1)  # two files: the rows are estimated, so the pass finds out
    out = tmp_path / "out"
    with pytest.raises(ValueError, match="none of its 2 rows was drawn into the validate subset"):
        split_csv(folder, out, verbose=False)
    assert not out.exists()


def test_val_fraction_zero_still_puts_every_row_in_train(tmp_path):
    manifest = split_csv(rows_file(tmp_path / "one.csv", 1), tmp_path / "out", verbose=False, val_fraction=0.0)
    assert [manifest["subsets"][s]["rows"] for s in ("train", "validate")] == [1, 0]


def test_a_source_without_a_feature_column_is_refused_before_writing(tmp_path):
    source = tmp_path / "ids.csv"
    source.write_text("attempt_id,cleared\n" + "".join(f"{i},{i % 2}\n" for i in range(50)))
    with pytest.raises(SchemaError, match="no column is a feature"):
        split_csv(source, tmp_path / "out", id_columns=["attempt_id"], verbose=False)
    assert not (tmp_path / "out").exists()


def test_hash_buckets_above_the_documented_maximum_are_refused_in_one_line(tmp_path):
    source = rows_file(tmp_path / "s.csv", 50)
    result = run_questlearn("split", source, tmp_path / "out", "--hash-buckets", "1048576")
    assert result.returncode == 2
    error = result.stderr.strip()
    assert error.count("\n") == 0 and "between 1 and 65,536" in error and "--max-categories" in error
    assert not (tmp_path / "out").exists()
