"""``split --drop-missing-labels``: rows without a label are left out, counted and reported; without it, the error names it."""

import functools
import json

import numpy as np
import pandas as pd
import pytest
from helpers import run_questlearn

from questlearn.manifest._files import load_manifest
from questlearn.manifest._validate import validate_manifest
from questlearn.split import split_csv
from questlearn.synth import write_quest_log

OPTIONS = ["--rows-per-shard", "700", "--seed", "2", "--id-column", "attempt_id", "--no-progress"]


def unlabel(source, target, every: int, offset: int = 0) -> set:
    """Copy a quest log to ``target`` with the label of every ``every``-th row blank or ``NA``; returns those rows."""
    frame = pd.read_csv(source, dtype=str, keep_default_na=False)
    rows = set(range(offset, len(frame), every))
    frame["cleared"] = [("" if row % 2 else "NA") if row in rows else value for row, value in enumerate(frame["cleared"])]
    frame.to_csv(target, index=False)
    return rows


@pytest.fixture(scope="module")
def unlabelled(tmp_path_factory):
    """A quest log of 6000 rows (free text with quoting edge cases) whose label is missing in every 13th row."""
    root = tmp_path_factory.mktemp("unlabelled")
    log = write_quest_log(root / "full.csv", rows=6000, seed=5, nasty=True)
    missing = unlabel(log, root / "quests.csv", 13, offset=4)
    return root / "quests.csv", missing


def split_cli(*args):
    return run_questlearn("split", *args, timeout=720)


def shard_arrays(split_dir, part: str) -> np.ndarray:
    manifest = load_manifest(split_dir)
    arrays = [np.load(split_dir / shard["files"][part]["name"]) for subset in ("train", "validate")
              for shard in manifest["subsets"][subset]["shards"]]
    return np.concatenate(arrays)


@pytest.mark.timeout(900)
def test_split_drops_rows_without_a_label_counts_them_and_no_shard_holds_one(unlabelled, tmp_path):
    source, missing = unlabelled
    out = tmp_path / "split"
    result = split_cli(source, out, *OPTIONS, "--formats", "csv,npy", "--drop-missing-labels")
    assert result.returncode == 0, result.stderr[-3000:]
    dropped = len(missing)
    assert (f"questlearn: dropped {dropped} of 6000 rows whose label 'cleared' is missing (--drop-missing-labels): "
            "they are in no shard") in result.stdout
    assert f"split 6000 rows ({dropped} without a label dropped) of 1 file(s)" in result.stdout

    manifest = load_manifest(out)  # validated: shard rows + dropped = source rows
    assert manifest["source"]["rows"] == 6000 and manifest["source"]["dropped_missing_labels"] == dropped
    assert manifest["parameters"]["drop_missing_labels"] is True
    assert manifest["subsets"]["train"]["rows"] + manifest["subsets"]["validate"]["rows"] == 6000 - dropped
    rows = shard_arrays(out, "rows")  # source row numbers: every labelled row once, no unlabelled one
    assert sorted(rows.tolist()) == sorted(set(range(6000)) - missing)
    frame = pd.read_csv(source, dtype=str, keep_default_na=False)
    kept = [pd.read_csv(out / shard["files"]["csv"]["name"], dtype=str, keep_default_na=False)
            for subset in ("train", "validate") for shard in manifest["subsets"][subset]["shards"]]
    kept = pd.concat(kept)
    assert set(kept["cleared"]) == {"0", "1"}  # no shard holds an unlabelled row
    assert sorted(kept["attempt_id"].astype(int)) == sorted(frame["attempt_id"].astype(int)[sorted(set(range(6000)) - missing)])
    labels = shard_arrays(out, "labels")
    classes, codes = manifest["schema"]["classes"], manifest["schema"]["label_codes"]
    assert [classes[codes[code]] for code in labels[np.argsort(rows)]] == frame["cleared"].drop(sorted(missing)).tolist()


@pytest.mark.timeout(900)
def test_moments_of_a_split_with_dropped_rows_are_those_of_its_shards(unlabelled, tmp_path):
    from questlearn.data._batches import ShardReader

    source, _ = unlabelled
    split_csv(source, tmp_path / "split", rows_per_shard=700, id_columns=("attempt_id",), drop_missing_labels=True,
              verbose=False)
    manifest = load_manifest(tmp_path / "split")
    mean, variance = ShardReader(manifest, "train").output_moments()
    x = shard_arrays(tmp_path / "split", "numbers").astype(np.float64)
    np.testing.assert_allclose(mean, x.mean(axis=0), rtol=1e-4, atol=1e-5)
    spread = x.var(axis=0)
    np.testing.assert_allclose(variance[spread > 0], spread[spread > 0], rtol=1e-3, atol=1e-5)


@pytest.mark.timeout(900)
def test_split_without_the_option_stops_at_a_missing_label_and_suggests_it(unlabelled, tmp_path):
    source, _ = unlabelled
    result = split_cli(source, tmp_path / "refused", *OPTIONS)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "the label 'cleared' is missing in" in result.stderr and "add --drop-missing-labels" in result.stderr
    assert not (tmp_path / "refused").exists()


@pytest.mark.timeout(900)
def test_a_missing_label_the_sample_did_not_see_stops_the_pass_suggesting_the_option(tmp_path, monkeypatch):
    from questlearn.io.csvscan import CsvFormatError
    from questlearn.schema import _sampling

    log = write_quest_log(tmp_path / "full.csv", rows=3000, seed=7)
    unlabel(log, tmp_path / "late.csv", 10_000, offset=2900)  # one row, past the sampled first block
    monkeypatch.setattr(_sampling, "sample_csv",
                        functools.partial(_sampling.sample_csv, first_bytes=50_000, pieces=1, piece_bytes=2000))
    with pytest.raises(CsvFormatError, match="missing label: column 'cleared'.*add --drop-missing-labels") as caught:
        split_csv(tmp_path / "late.csv", tmp_path / "refused", verbose=False)
    assert caught.value.line == 2902  # the header, then row 2900 counted from 0
    manifest = split_csv(tmp_path / "late.csv", tmp_path / "kept", drop_missing_labels=True, verbose=False)
    assert manifest["source"]["dropped_missing_labels"] == 1


def test_a_manifest_whose_shards_and_dropped_rows_do_not_make_the_source_rows_is_refused(unlabelled, tmp_path):
    source, missing = unlabelled
    manifest = split_csv(source, tmp_path / "split", rows_per_shard=700, id_columns=("attempt_id",),
                         drop_missing_labels=True, verbose=False)
    validate_manifest(json.loads(json.dumps(manifest)), "manifest.json")
    manifest["source"]["dropped_missing_labels"] = len(missing) - 1
    with pytest.raises(ValueError, match=f"source.rows is 6000, but the shards hold {6000 - len(missing)} rows and "
                                         f"{len(missing) - 1} were dropped for a missing label"):
        validate_manifest(manifest, "manifest.json")


@pytest.mark.timeout(1800)
def test_a_parallel_split_drops_the_same_rows_as_a_sequential_one(tmp_path):
    from splits import assert_same_statistics

    parts = tmp_path / "parts"
    parts.mkdir()
    missing = 0
    for index in range(3):
        log = write_quest_log(tmp_path / f"full-{index}.csv", rows=1500, seed=30 + index)
        missing += len(unlabel(log, parts / f"log-{index}.csv", 7 + index))
    options = dict(rows_per_shard=500, seed=1, id_columns=("attempt_id",), drop_missing_labels=True, verbose=False)
    sequential = split_csv(parts, tmp_path / "sequential", **options)
    parallel = split_csv(parts, tmp_path / "parallel", parallel=2, **options)
    load_manifest(tmp_path / "parallel")  # validated
    for manifest in (sequential, parallel):
        assert manifest["source"]["rows"] == 4500 and manifest["source"]["dropped_missing_labels"] == missing
    assert_same_statistics(parallel, sequential)
    assert sorted(shard_arrays(tmp_path / "parallel", "rows").tolist()) == \
        sorted(shard_arrays(tmp_path / "sequential", "rows").tolist())


def test_every_label_missing_is_refused_naming_the_label(tmp_path):
    log = write_quest_log(tmp_path / "full.csv", rows=200, seed=1)
    unlabel(log, tmp_path / "none.csv", 1)
    with pytest.raises(ValueError, match="the label 'cleared' is missing in all 200 sampled rows"):
        split_csv(tmp_path / "none.csv", tmp_path / "out", drop_missing_labels=True, verbose=False)
