"""The held-out test subset (``split --test-fraction``): drawn with the validate draw, dealt, journaled,
merged and checked like the other subsets, never read by ``train``, scored by ``evaluate``."""

import json
import math
import shutil

import numpy as np
import pytest
from helpers import ID_COLUMNS, check, run_questlearn
from splits import model_ready_split, write_parts
from test_split_resume import ARGS, assert_resumes_to, split_killed_at, tree

from questlearn.cli import main as cli_main
from questlearn.data.dataset import QuestSequence
from questlearn.errors import IntegrityError, ManifestError, OptionError
from questlearn.manifest._files import load_manifest
from questlearn.split import SplitParameters, split_csv
from questlearn.split._parallel import part_seed
from questlearn.synth import write_quest_log

ROWS = 6000
VAL, TEST = 0.2, 0.15


@pytest.fixture(scope="module")
def log(tmp_path_factory):
    return write_quest_log(tmp_path_factory.mktemp("testsubset") / "log.csv", rows=ROWS, seed=7, nasty=True)


@pytest.fixture(scope="module")
def held_out(log, tmp_path_factory):
    """A split with a test subset (CSV and npy shards, several shards and waves per subset)."""
    out = tmp_path_factory.mktemp("held") / "split"
    model_ready_split(log, out, rows_per_shard=300, max_open_shards=2, val_fraction=VAL, test_fraction=TEST, seed=3,
                      id_columns=ID_COLUMNS, block_size=8192)
    return out


def subset_rows(split_dir, subset) -> np.ndarray:
    """The source row numbers a subset's shards hold, in shard order."""
    manifest = load_manifest(split_dir, subsets=("train", "validate", "test"))
    return np.concatenate([np.load(split_dir / s["files"]["rows"]["name"]) for s in manifest["subsets"][subset]["shards"]])


def test_a_test_fraction_sends_each_row_by_the_validate_draw_to_exactly_one_of_three_subsets(held_out):
    manifest = load_manifest(held_out, subsets=("train", "validate", "test"))
    assert sorted(manifest["subsets"]) == ["test", "train", "validate"]
    assert manifest["parameters"]["test_fraction"] == TEST
    rows = {subset: subset_rows(held_out, subset) for subset in ("train", "validate", "test")}
    for subset, fraction in (("validate", VAL), ("test", TEST), ("train", 1 - VAL - TEST)):  # binomial bounds, 5 sigma
        assert abs(len(rows[subset]) - ROWS * fraction) < 5 * math.sqrt(ROWS * fraction * (1 - fraction)), subset
        assert manifest["subsets"][subset]["rows"] == len(rows[subset])
    every = np.concatenate(list(rows.values()))
    assert np.array_equal(np.sort(every), np.arange(ROWS))  # each row in exactly one subset
    assert manifest["source"]["rows"] == ROWS == sum(s["rows"] for s in manifest["subsets"].values())
    draws = np.random.Generator(np.random.PCG64(3)).random(ROWS)  # one number per row, in source order
    assert np.array_equal(np.sort(rows["validate"]), np.flatnonzero(draws < VAL))
    assert np.array_equal(np.sort(rows["test"]), np.flatnonzero((draws >= VAL) & (draws < VAL + TEST)))
    assert manifest["scatter"]["waves"]["test"] >= 2  # dealt in waves like the others
    assert len(manifest["subsets"]["test"]["shards"]) >= 2
    assert all(len(s["files"]) == 5 for s in manifest["subsets"]["test"]["shards"])  # numbers, codes, labels, rows, csv


def test_a_test_subset_leaves_the_validate_subset_as_it_was(log, held_out, tmp_path):
    plain = tmp_path / "plain"
    model_ready_split(log, plain, rows_per_shard=300, max_open_shards=2, val_fraction=VAL, seed=3,
                      id_columns=ID_COLUMNS, block_size=8192)
    assert np.array_equal(np.sort(subset_rows(plain, "validate")), np.sort(subset_rows(held_out, "validate")))
    assert not (plain / "test").exists()


def test_test_fraction_zero_is_byte_identical_to_a_split_without_the_option(log, tmp_path):
    options = {"rows_per_shard": 700, "val_fraction": VAL, "seed": 4, "id_columns": ID_COLUMNS, "block_size": 8192}
    model_ready_split(log, tmp_path / "without", **options)
    model_ready_split(log, tmp_path / "zero", test_fraction=0.0, **options)
    without, zero = tree(tmp_path / "without"), tree(tmp_path / "zero")
    assert sorted(without) == sorted(zero)
    assert all(without[name] == zero[name] for name in without)
    assert not any(name.startswith("test") for name in zero)
    assert "test_fraction" not in json.loads(zero["manifest.json"])["parameters"]


def test_the_test_subset_and_its_fraction_are_named_in_the_printed_summary(log, tmp_path, capsys):
    code = cli_main(["split", str(log), str(tmp_path / "out"), "--rows-per-shard", "1000", "--val-fraction", "0.2",
                     "--test-fraction", "0.1", "--id-column", "attempt_id", "--no-progress"])
    assert code in (0, None)
    manifest = load_manifest(tmp_path / "out")
    test = manifest["subsets"]["test"]
    assert f"test {test['rows']} rows in {len(test['shards'])} shards" in capsys.readouterr().out


@pytest.mark.timeout(2700)
def test_a_split_with_a_test_subset_killed_at_any_step_resumes_byte_identical(tmp_path):
    source = [write_quest_log(tmp_path / "log.csv", rows=5000, seed=9)]
    extra = ["--val-fraction", "0.2", "--test-fraction", "0.2"]
    clean = tmp_path / "clean"
    check(run_questlearn("split", *source, clean, *ARGS, "--formats", "csv,npy", *extra, module="questlearn.cli"))
    expected = tree(clean)
    assert any(name.startswith("test/") and name.endswith(".numbers.npy") for name in expected)
    result = split_killed_at("append", 0, tmp_path / "counts.json", source, tmp_path / "counted", "csv,npy", extra)
    assert result.returncode == 0, result.stderr
    counts = json.loads((tmp_path / "counts.json").read_text())
    assert counts["journal"] >= 6 and counts["close"] >= 6  # checkpoints and waves of all three subsets
    points = [("journal", counts["journal"] // 2), ("append", counts["append"] // 3), ("close", 2),
              ("after_close", counts["close"] - 1), ("replace", counts["replace"] - 1)]
    for point, nth in points:
        out = tmp_path / f"{point}-{nth}"
        killed = split_killed_at(point, nth, tmp_path / "unused.json", source, out, "csv,npy", extra)
        assert killed.returncode == -9, (point, nth, killed.stderr[-2000:])
        assert_resumes_to(expected, source, out, "csv,npy", (point, nth), extra)


@pytest.mark.timeout(1800)
def test_a_parallel_split_draws_and_merges_a_test_subset_part_by_part(tmp_path):
    parts = write_parts(tmp_path / "parts", rows=(900, 0, 1300, 600), nasty=False)
    manifest = split_csv(parts, tmp_path / "out", parallel=2, rows_per_shard=500, val_fraction=VAL,
                         test_fraction=TEST, seed=2, id_columns=("attempt_id",), verbose=False)
    loaded = load_manifest(tmp_path / "out", subsets=("train", "validate", "test"))
    assert loaded["subsets"]["test"]["rows"] == manifest["subsets"]["test"]["rows"] > 0
    assert sum(s["rows"] for s in loaded["subsets"].values()) == loaded["source"]["rows"] == 2800
    rows = {subset: subset_rows(tmp_path / "out", subset) for subset in ("train", "validate", "test")}
    assert np.array_equal(np.sort(np.concatenate(list(rows.values()))), np.arange(2800))
    expected, offset = [], 0
    for index, count in enumerate((900, 0, 1300, 600)):  # each part's own draw, rows made global
        draws = np.random.Generator(np.random.PCG64(part_seed(2, index))).random(count)
        expected.append(offset + np.flatnonzero((draws >= VAL) & (draws < VAL + TEST)))
        offset += count
    assert np.array_equal(np.sort(rows["test"]), np.concatenate(expected))
    assert not (tmp_path / "out" / ".parts").exists()


@pytest.mark.parametrize("val,test", [(0.2, -0.1), (0.5, 0.5), (0.6, 0.5), (0.2, float("nan"))])
def test_bad_test_fractions_are_refused_naming_both_fractions(val, test):
    with pytest.raises(OptionError, match="val_fraction.*test_fraction"):
        SplitParameters(val_fraction=val, test_fraction=test)


def test_the_command_line_refuses_fractions_that_leave_no_training_rows(log, tmp_path, capsys):
    code = cli_main(["split", str(log), str(tmp_path / "out"), "--val-fraction", "0.5", "--test-fraction", "0.5"])
    assert code == 2
    error = capsys.readouterr().err.strip()
    assert error.count("\n") == 0 and "--test-fraction" in error and "--val-fraction" in error
    assert not (tmp_path / "out").exists()


def test_a_test_subset_without_a_validate_subset_is_refused_up_front(log, tmp_path, capsys):
    code = cli_main(["split", str(log), str(tmp_path / "out"), "--val-fraction", "0", "--test-fraction", "0.2"])
    assert code == 2
    error = capsys.readouterr().err.strip()
    assert error.count("\n") == 0 and "validate empty" in error and "--val-fraction above 0" in error
    assert not (tmp_path / "out").exists()


def test_a_test_subset_the_draw_leaves_empty_is_refused_before_writing(tmp_path):
    source = write_quest_log(tmp_path / "small.csv", rows=20, seed=1)
    with pytest.raises(OptionError, match="test subset.*--test-fraction"):
        split_csv(source, tmp_path / "out", val_fraction=0.3, test_fraction=0.001, seed=0, verbose=False)
    assert not (tmp_path / "out").exists()


def test_a_split_without_a_test_subset_refuses_a_reader_of_test(held_out, log, tmp_path):
    plain = tmp_path / "plain"
    model_ready_split(log, plain, rows_per_shard=2000, id_columns=ID_COLUMNS)
    with pytest.raises(OptionError, match="no test subset.*--test-fraction"):
        QuestSequence(plain, "test")
    assert len(QuestSequence(held_out, "test", batch_size=64)) == math.ceil(len(subset_rows(held_out, "test")) / 64)


def test_a_manifest_with_a_test_subset_but_no_test_fraction_is_refused(held_out, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(held_out, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    del manifest["parameters"]["test_fraction"]
    (copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ManifestError, match="subsets.test"):
        load_manifest(copy)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A model trained on a split with a test subset, while that subset's shards were gone."""
    from questlearn.train._fit import train

    root = tmp_path_factory.mktemp("trained")
    log = write_quest_log(root / "quests.csv", rows=4000, seed=5)
    split = root / "split"
    model_ready_split(log, split, rows_per_shard=4000, val_fraction=0.25, test_fraction=0.2, seed=1,
                      id_columns=ID_COLUMNS)
    (split / "test").rename(root / "test-kept")
    (split / "test").mkdir()  # an empty folder: every test shard file is missing
    result = train(split, root / "model", epochs=2, batch_size=256, workers=1, verbose=0, saved_model=False)
    shutil.rmtree(split / "test")
    (root / "test-kept").rename(split / "test")
    return split, result


@pytest.mark.timeout(1800)
def test_train_never_opens_the_test_subset(trained, tmp_path):
    split, result = trained
    assert len(result.history["val_loss"]) == 2 and (result.model_dir / "model.keras").is_file()
    copy = tmp_path / "split"
    shutil.copytree(split, copy)
    for shard in (copy / "test").iterdir():
        shard.write_bytes(b"damaged")
    assert len(QuestSequence(copy, "train")) and len(QuestSequence(copy, "validate"))  # a reader of either loads
    with pytest.raises(IntegrityError, match="test/split_data_"):
        QuestSequence(copy, "test")  # the test subset's own reader checks its shards


@pytest.mark.timeout(1800)
def test_evaluate_scores_the_test_subset_and_says_so(trained):
    from questlearn.serve.evaluate import evaluate

    split, result = trained
    manifest = load_manifest(split, subsets=("train", "validate", "test"))
    report = evaluate(result.model_dir, split)
    assert report["subset"] == "test" and report["source"] == f"{split} (test subset)"
    assert report["rows"] == manifest["subsets"]["test"]["rows"] != manifest["subsets"]["validate"]["rows"]
    data = QuestSequence(split, "test", batch_size=256, shuffle=False)
    assert report["accuracy"] == pytest.approx(result.model.evaluate(data, verbose=0, return_dict=True)["accuracy"],
                                               abs=1e-4)


@pytest.mark.timeout(1800)
def test_evaluate_subset_validate_scores_the_validate_subset(trained, capsys):
    split, result = trained
    manifest = load_manifest(split)
    assert cli_main(["evaluate", str(result.model_dir), str(split), "--subset", "validate", "--no-progress"]) in (0, None)
    report = json.loads(capsys.readouterr().out)
    assert report["subset"] == "validate" and report["source"] == f"{split} (validate subset)"
    assert report["rows"] == manifest["subsets"]["validate"]["rows"]


@pytest.mark.timeout(1800)
def test_the_gbdt_baseline_is_scored_on_the_test_subset_with_the_network(trained):
    pytest.importorskip("sklearn")
    from questlearn.serve.evaluate import evaluate

    split, result = trained
    report = evaluate(result.model_dir, split, baseline="gbdt")
    assert report["subset"] == "test"
    assert report["baseline_gbdt"]["rows"] == report["rows"] == load_manifest(split)["subsets"]["test"]["rows"]
