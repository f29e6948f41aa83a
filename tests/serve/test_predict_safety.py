"""predict and evaluate protect the user's data and say what is wrong in one line.

An output that is an input (by any path or link) or a directory is refused;
numbers the split refuses are refused here too; a full disk leaves no
output; a damaged model file, inference.json or shard, and a split that
predicts something else than the model, each stop with one line.
"""

import errno
import json
import os
import shutil

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import pytest
from helpers import ID_COLUMNS
from splits import model_ready_split

from questlearn.cli import main
from questlearn.io.csvscan import CsvFormatError
from questlearn.serve import _output_file
from questlearn.serve._input_rows import open_input
from questlearn.serve.evaluate import _label_values, evaluate
from questlearn.serve.predict import predict_file, predict_frame


@pytest.fixture(scope="module")
def trained(small_model):
    return small_model


def run_cli(capsys, *args):
    """``questlearn ARGS`` in this process: ``(exit code, stderr)``."""
    capsys.readouterr()
    code = main([str(a) for a in args])
    return code, capsys.readouterr().err


def assert_one_line_error(code: int, stderr: str, *phrases: str) -> None:
    lines = stderr.strip().splitlines()
    assert code == 2 and len(lines) == 1 and "Traceback" not in stderr, stderr
    for phrase in phrases:
        assert phrase in lines[0], (phrase, lines[0])


def with_value(log, target, row: int, column: str, value: str):
    """Copy ``log`` with ``column`` of data row ``row`` set to ``value``; returns ``(line, byte)`` of that row."""
    lines = log.read_bytes().split(b"\n")
    position = lines[0].decode().split(",").index(column)
    fields = lines[row + 1].split(b",")
    fields[position] = value.encode()
    lines[row + 1] = b",".join(fields)
    target.write_bytes(b"\n".join(lines))
    return row + 2, sum(len(line) + 1 for line in lines[:row + 1])


def copy_model(result, target):
    shutil.copytree(result.model_dir, target)
    return target


# -- the output is never one of the inputs -----------------------------------------

@pytest.mark.timeout(900)
@pytest.mark.parametrize("how", ["same_path", "other_spelling", "symbolic_link", "hard_link"])
def test_predict_refuses_an_output_that_is_its_input(trained, tmp_path, capsys, monkeypatch, how):
    log, _, result = trained
    source = tmp_path / "in.csv"
    shutil.copyfile(log, source)
    output = {"same_path": source, "other_spelling": tmp_path / "sub" / ".." / "in.csv",
              "symbolic_link": tmp_path / "link.csv", "hard_link": tmp_path / "hard.csv"}[how]
    (tmp_path / "sub").mkdir()
    if how == "symbolic_link":
        output.symlink_to(source)
    elif how == "hard_link":
        os.link(source, output)
    code, stderr = run_cli(capsys, "predict", result.model_dir, source, output, "--no-progress")
    assert_one_line_error(code, stderr, f"cannot write {output}", "is the input file", "choose another output")
    assert source.read_bytes() == log.read_bytes(), "the input was changed"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["in.csv", "sub"] + ([output.name] if how in (
        "symbolic_link", "hard_link") else [])), "something was written"


@pytest.mark.timeout(900)
def test_predict_refuses_an_output_that_is_a_file_of_a_directory_input_or_of_the_model(trained, tmp_path):
    log, _, result = trained
    parts = tmp_path / "parts"
    parts.mkdir()
    shutil.copyfile(log, parts / "day1.csv")
    with pytest.raises(ValueError, match="is the input file"):
        predict_file(result.model_dir, parts, parts / "day1.csv")
    model = copy_model(result, tmp_path / "model")
    spec = (model / "inference.json").read_bytes()
    with pytest.raises(ValueError, match="is the input file"):
        predict_file(model, log, model / "inference.json")
    assert (parts / "day1.csv").read_bytes() == log.read_bytes() and (model / "inference.json").read_bytes() == spec


@pytest.mark.timeout(900)
def test_predict_refuses_a_directory_as_output_in_one_line(trained, tmp_path, capsys):
    log, _, result = trained
    (tmp_path / "out").mkdir()
    code, stderr = run_cli(capsys, "predict", result.model_dir, log, tmp_path / "out", "--no-progress")
    assert_one_line_error(code, stderr, "is a directory", "name the CSV file to write")
    assert list((tmp_path / "out").iterdir()) == [] and sorted(p.name for p in tmp_path.iterdir()) == ["out"]


# -- the split's number rules -----------------------------------------------------

@pytest.mark.timeout(900)
@pytest.mark.parametrize("value, said", [("inf", "an infinite value"), ("-inf", "an infinite value"),
                                         ("1e300", "1e\\+300, beyond float32's range")])
def test_predict_and_evaluate_refuse_numbers_the_split_refuses_with_line_and_byte(trained, tmp_path, value, said):
    log, _, result = trained
    line, byte = with_value(log, tmp_path / "bad.csv", 2345, "power", value)
    for run in (lambda: predict_file(result.model_dir, tmp_path / "bad.csv", tmp_path / "out.csv", block_size=16384),
                lambda: evaluate(result.model_dir, tmp_path / "bad.csv", block_size=16384)):
        with pytest.raises(CsvFormatError, match=f"column 'power' holds {said}") as caught:
            run()
        assert (caught.value.path, caught.value.line, caught.value.byte_offset) == (str(tmp_path / "bad.csv"), line, byte)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.csv"]


@pytest.mark.timeout(900)
def test_predict_refuses_an_infinity_in_a_parquet_input_naming_its_row(trained, tmp_path):
    log, _, result = trained
    table = pa_csv.read_csv(log)
    power = table["power"].to_numpy().copy()
    power[1234] = np.inf
    pq.write_table(table.set_column(table.schema.get_field_index("power"), "power", pa.array(power)),
                   tmp_path / "bad.parquet", row_group_size=1000)
    with pytest.raises(ValueError, match=r"bad.parquet: row 1235: column 'power' holds an infinite value"):
        predict_file(result.model_dir, tmp_path / "bad.parquet", tmp_path / "out.csv")
    assert not (tmp_path / "out.csv").exists()


@pytest.mark.timeout(900)
@pytest.mark.parametrize("value, said", [(np.inf, "an infinite value"), (-1e300, "-1e\\+300, beyond float32's range")])
def test_predict_frame_refuses_numbers_the_split_refuses_naming_column_and_row(trained, value, said):
    log, _, result = trained
    frame = pd.read_csv(log, nrows=6)
    frame.index = [f"r{i}" for i in range(6)]
    frame.loc["r4", "stamina"] = value
    with pytest.raises(ValueError, match=rf"row 4 \(index 'r4'\): column 'stamina' holds {said}"):
        predict_frame(result.model_dir, frame)
    columns = {name: frame[name].tolist() for name in frame.columns}
    with pytest.raises(ValueError, match=rf"row 4: column 'stamina' holds {said}"):
        predict_frame(result.model_dir, columns)


def test_evaluate_refuses_an_infinite_regression_target_with_line_and_byte(tmp_path):
    (tmp_path / "rows.csv").write_text("x,target\n1,2.5\n2,inf\n")
    (block,) = open_input(tmp_path / "rows.csv", [""]).blocks({"target": pa.string()})
    with pytest.raises(CsvFormatError, match="column 'target' holds an infinite value") as caught:
        _label_values(block, "target", {"task": "regression"})
    assert (caught.value.line, caught.value.byte_offset) == (3, len("x,target\n1,2.5\n"))


# -- a full disk --------------------------------------------------------------------

class _FillingFile:
    """A file that takes ``room`` bytes, then fails as a full disk does."""

    def __init__(self, handle, room: int):
        self.handle, self.room = handle, room

    def write(self, data) -> int:
        if len(data) > self.room:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self.room -= len(data)
        return self.handle.write(data)

    def __getattr__(self, name):
        return getattr(self.handle, name)

    def __enter__(self):
        return self

    def __exit__(self, *failure):
        self.handle.close()


@pytest.mark.timeout(900)
def test_a_full_disk_during_predict_leaves_no_output_and_says_so_in_one_line(trained, tmp_path, capsys, monkeypatch):
    log, _, result = trained
    opened = []

    def filling_open(path, mode="r", *args, **kwargs):
        opened.append(path)
        return _FillingFile(open(path, mode, *args, **kwargs), room=40_000)

    monkeypatch.setattr(_output_file, "open", filling_open, raising=False)
    code, stderr = run_cli(capsys, "predict", result.model_dir, log, tmp_path / "out.csv", "--block-size", 16384,
                           "--no-progress")
    assert_one_line_error(code, stderr, f"cannot write {tmp_path / 'out.csv'}", "No space left on device",
                          "nothing was written", "free some space")
    assert opened and list(tmp_path.iterdir()) == [], "an output or a temporary file was left behind"


# -- damaged model files and shards ---------------------------------------------------

@pytest.mark.timeout(900)
@pytest.mark.parametrize("damage, said", [
    (lambda spec: '{"features": [', "is not valid JSON"),
    (lambda spec: json.dumps({**spec, "classes": "01"}), "field classes must be of type array"),
    (lambda spec: json.dumps({**spec, "features": [{"name": "power", "kind": 3}]}), "field features[0].kind must be"),
    (lambda spec: json.dumps({k: v for k, v in spec.items() if k != "na_values"}), "lacks the required key 'na_values'"),
    (lambda spec: json.dumps({**spec, "fill_values": {}}), "has no finite fill value for the feature"),
], ids=["invalid_json", "wrong_type", "unknown_kind", "missing_key", "missing_fill_value"])
def test_a_tampered_inference_json_is_named_in_one_line(trained, tmp_path, capsys, damage, said):
    log, split_dir, result = trained
    model = copy_model(result, tmp_path / "model")
    spec_path = model / "inference.json"
    spec_path.write_text(damage(json.loads(spec_path.read_text())))
    for command in (("predict", model, log, tmp_path / "out.csv"), ("evaluate", model, split_dir)):
        code, stderr = run_cli(capsys, *command, "--no-progress")
        assert_one_line_error(code, stderr, str(spec_path), said, "train the model again")
    assert not (tmp_path / "out.csv").exists()


@pytest.mark.timeout(900)
@pytest.mark.parametrize("damage", ["truncated", "flipped_byte"])
def test_a_damaged_keras_file_is_reported_as_damaged_not_as_missing(trained, tmp_path, capsys, damage):
    log, split_dir, result = trained
    model = copy_model(result, tmp_path / "model")
    for name in ("inference.keras", "model.keras"):
        path = model / name
        data = bytearray(path.read_bytes())
        if damage == "truncated":
            data = data[: len(data) // 2]
        else:
            data[len(data) // 2] ^= 0xFF
        path.write_bytes(bytes(data))
    for command, name in ((("predict", model, log, tmp_path / "out.csv"), "inference.keras"),
                          (("evaluate", model, split_dir), "model.keras")):
        code, stderr = run_cli(capsys, *command, "--no-progress")
        assert_one_line_error(code, stderr, str(model / name), "is damaged or truncated", "train the model again")
        assert "not found" not in stderr.lower()


@pytest.mark.timeout(900)
@pytest.mark.parametrize("part", ["numbers", "codes"])
def test_evaluate_refuses_a_shard_whose_sha256_does_not_match_in_one_line(trained, tmp_path, capsys, part):
    _, split_dir, result = trained
    copy = tmp_path / "split"
    shutil.copytree(split_dir, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    features = copy / manifest["subsets"]["validate"]["shards"][0]["files"][part]["name"]
    data = bytearray(features.read_bytes())
    data[-5] ^= 0x01  # same size: only the hash can tell
    features.write_bytes(bytes(data))
    code, stderr = run_cli(capsys, "evaluate", result.model_dir, copy, "--no-progress")
    assert_one_line_error(code, stderr, str(features), "does not match the SHA-256", "run the split again")


# -- evaluate: the split must predict what the model predicts --------------------------

@pytest.mark.timeout(900)
def test_evaluate_refuses_a_split_whose_classes_differ_from_the_models(trained, tmp_path, capsys):
    log, _, result = trained
    frame = pd.read_csv(log)
    frame.loc[::7, "cleared"] = 2
    frame.to_csv(tmp_path / "three.csv", index=False)
    model_ready_split(tmp_path / "three.csv", tmp_path / "split", rows_per_shard=4000, val_fraction=0.25, seed=1,
                      id_columns=ID_COLUMNS)
    code, stderr = run_cli(capsys, "evaluate", result.model_dir, tmp_path / "split", "--no-progress")
    assert_one_line_error(code, stderr, "classes ['0', '1', '2']", "classes ['0', '1']", str(result.model_dir))


@pytest.mark.timeout(900)
def test_evaluate_refuses_a_regression_split_for_a_classification_model(trained, tmp_path, capsys):
    log, _, result = trained
    model_ready_split(log, tmp_path / "split", task="regression", rows_per_shard=4000, val_fraction=0.25, seed=1,
                      id_columns=ID_COLUMNS)
    code, stderr = run_cli(capsys, "evaluate", result.model_dir, tmp_path / "split", "--no-progress")
    assert_one_line_error(code, stderr, "'cleared' (regression)", "'cleared' (classification, classes ['0', '1'])")


@pytest.mark.timeout(900)
def test_predict_refuses_a_new_output_inside_an_input_folder(trained, tmp_path):
    log, _, result = trained
    parts = tmp_path / "parts"
    parts.mkdir()
    shutil.copyfile(log, parts / "day1.csv")
    with pytest.raises(ValueError, match="lies inside the input folder"):
        predict_file(result.model_dir, parts, parts / "scored.csv")
    assert sorted(p.name for p in parts.iterdir()) == ["day1.csv"]


@pytest.mark.timeout(900)
def test_predict_removes_the_partial_files_earlier_runs_of_the_same_output_left_and_nothing_else(trained, tmp_path,
                                                                                                   capsys):
    import fcntl

    log, _, result = trained
    stale = [tmp_path / ".out.csv.deadbeef.partial", tmp_path / ".out.csv.0123abcd.partial"]
    kept = [tmp_path / name for name in (".other.csv.deadbeef.partial", ".out.csv.notes.partial", "out.csv.deadbeef.partial",
                                         ".out.csv.deadbeef.partial.bak", ".out.csv.DEADBEEF.partial", "notes.txt")]
    live = tmp_path / ".out.csv.feedf00d.partial"  # a run still writing holds a lock on its file
    for path in stale + kept + [live]:
        path.write_text("left over")
    with open(live, "rb") as held:
        fcntl.flock(held.fileno(), fcntl.LOCK_EX)
        code, stderr = run_cli(capsys, "predict", result.model_dir, log, tmp_path / "out.csv", "--no-progress")
    assert code == 0, stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([p.name for p in kept] + [live.name, "out.csv"])
    assert "removed 2 partial file(s)" in stderr and ".out.csv.deadbeef.partial" in stderr
