"""Parallel split of part files: one task per part, merged exactly as a sequential split would count."""

import csv
import importlib.util
import signal
import subprocess
import sys
import time
from pathlib import Path

import farmhash
import numpy as np
import pytest
from helpers import run_env
from splits import PART_ROWS, SPLIT, assert_same_statistics, write_parts

from questlearn.manifest._files import load_manifest
from questlearn.schema._columns import missing_tokens
from questlearn.split import split_csv
from questlearn.split._parallel import PARTS_DIR, PLAN_NAME

OPTIONS = dict(rows_per_shard=350, val_fraction=0.25, seed=3, id_columns=("attempt_id",),
               categorical_columns=("player_id",), max_categories=1400, block_size=4096, formats=("csv", "npy"))
# player_id is nearly unique: the sample holds more than 1,400 values, so the encoding keeps the most
# frequent 1,400 and later rows of the others go to its hashed out-of-vocabulary buckets.


def read_csv(path):
    with open(path, newline="", encoding="utf-8-sig") as handle:
        rows = list(csv.reader(handle, strict=True))
    return rows[0], rows[1:]


def source_rows(folder: Path):
    """Every data row of the parts, in global source order."""
    rows = []
    for path in sorted(folder.glob("part-*.csv")):
        rows += [tuple(r) for r in read_csv(path)[1]]
    return rows


@pytest.fixture(scope="module")
def splits(tmp_path_factory):
    root = tmp_path_factory.mktemp("parallel")
    parts = write_parts(root / "parts")
    split_csv(parts, root / "sequential", verbose=False, **OPTIONS)
    split_csv(parts, root / "parallel", parallel=2, verbose=False, **OPTIONS)
    return parts, load_manifest(root / "sequential"), load_manifest(root / "parallel")


def shards_of(manifest):
    root = Path(manifest["root"])
    for subset in ("train", "validate"):
        for shard in manifest["subsets"][subset]["shards"]:
            yield {kind: root / entry["name"] for kind, entry in shard["files"].items()}, shard


def test_every_source_row_lands_in_exactly_one_shard_with_its_global_row_number(splits):
    parts, _, manifest = splits
    source = source_rows(parts)
    assert manifest["source"]["rows"] == len(source) == sum(PART_ROWS)
    seen_numbers, seen_rows = [], []
    for files, shard in shards_of(manifest):
        _, rows = read_csv(files["csv"])
        numbers = np.load(files["rows"])
        assert len(rows) == len(numbers) == shard["rows"]
        for number, row in zip(numbers.tolist(), rows):
            assert source[number] == tuple(row)  # the CSV row is the source row its .rows.npy number names
        seen_numbers += numbers.tolist()
        seen_rows += [tuple(r) for r in rows]
    assert sorted(seen_numbers) == list(range(len(source)))
    assert sorted(seen_rows) == sorted(source)  # whole rows as the identity: attempt ids repeat across parts
    assert not (Path(manifest["root"]) / PARTS_DIR).exists() and not (Path(manifest["root"]) / PLAN_NAME).exists()


def test_statistics_vocabularies_and_classes_equal_a_sequential_split(splits):
    _, sequential, parallel = splits
    assert parallel["schema"]["columns"] == sequential["schema"]["columns"]
    assert parallel["schema"]["categories"] == sequential["schema"]["categories"]  # same order: part, then first seen
    assert parallel["schema"]["classes"] == sequential["schema"]["classes"]
    assert parallel["schema"]["label_codes"] == sequential["schema"]["label_codes"]
    assert parallel["stats"]["player_id"]["oov"] > 0  # the union outgrew max_categories, as the sequential one did
    assert sorted(parallel["stats"]) == sorted(sequential["stats"])
    assert_same_statistics(parallel, sequential)

    def class_counts(manifest):
        counts = {}
        for subset in ("train", "validate"):
            for shard in manifest["subsets"][subset]["shards"]:
                for value, n in shard["label_counts"].items():
                    counts[value] = counts.get(value, 0) + n
        return counts

    assert class_counts(parallel) == class_counts(sequential)
    assert sum(parallel["subsets"][s]["rows"] for s in ("train", "validate")) == parallel["source"]["rows"]
    assert parallel["source"]["empty_files_skipped"] == sequential["source"]["empty_files_skipped"] == 1
    assert [f["name"] for f in parallel["source"]["files"]] == [f["name"] for f in sequential["source"]["files"]]
    record = parallel["parallel"]
    assert record["parts"] == len(PART_ROWS) and len(set(record["part_seeds"])) == len(PART_ROWS)
    assert record["part_rows"] == list(PART_ROWS) and record["engine"] == "processes"
    assert record["inexact_oov"] == []


def test_a_small_max_categories_gives_the_sequential_vocabulary_and_other_counts_exactly(splits, tmp_path):
    """The encoding is fixed once from the sample, before any part runs, so no part can
    code a value differently from a sequential split (the old per-part limit is gone)."""
    parts, _, _ = splits
    options = {**OPTIONS, "max_categories": 40}
    sequential = split_csv(parts, tmp_path / "sequential", verbose=False, **options)
    parallel = split_csv(parts, tmp_path / "parallel", parallel=2, verbose=False, **options)
    assert parallel["schema"]["categories"] == sequential["schema"]["categories"]
    assert parallel["schema"]["encoding"] == sequential["schema"]["encoding"]
    assert parallel["stats"]["player_id"] == sequential["stats"]["player_id"]
    assert parallel["stats"]["player_id"]["oov"] > 0 and parallel["parallel"]["inexact_oov"] == []


def test_category_codes_and_label_codes_in_npy_shards_decode_to_the_csv_values(splits):
    _, _, manifest = splits
    schema = manifest["schema"]
    encoding = schema["encoding"]
    classes = [schema["classes"][code] for code in schema["label_codes"]]
    checked_other = 0
    for files, _ in shards_of(manifest):
        header, rows = read_csv(files["csv"])
        codes, labels = np.load(files["codes"]), np.load(files["labels"])
        assert codes.dtype == np.dtype(encoding["code_dtype"])
        for name, values in schema["categories"].items():
            buckets = encoding["hash_buckets"][name]
            column = [row[header.index(name)] for row in rows]
            for code, text in zip(codes[:, encoding["code_columns"].index(name)].tolist(), column):
                if code == 0:  # missing
                    assert text in missing_tokens()
                elif code <= buckets:  # outside the vocabulary: the bucket its value hashes to
                    assert text not in values and code == 1 + farmhash.fingerprint64(text) % buckets
                    checked_other += 1
                else:
                    assert values[code - 1 - buckets] == text
        label_column = [row[header.index(schema["label"])] for row in rows]
        assert [classes[code] for code in labels.tolist()] == [str(int(float(v))) for v in label_column]
    assert checked_other > 0


def test_a_finished_parallel_split_is_a_no_op_and_other_parameters_are_refused(splits, tmp_path):
    parts, _, manifest = splits
    again = split_csv(parts, manifest["root"], parallel=2, verbose=False, **OPTIONS)
    assert again["subsets"] == manifest["subsets"]
    with pytest.raises(ValueError, match="other parameters"):
        split_csv(parts, manifest["root"], parallel=2, verbose=False, **{**OPTIONS, "seed": 4})


def test_a_bad_row_in_one_part_names_that_file_line_and_byte(tmp_path):
    parts = write_parts(tmp_path / "parts", rows=(200, 300), nasty=False)
    bad = parts / "part-00001.csv"
    lines = bad.read_bytes().splitlines(keepends=True)
    fields = lines[120].split(b",")
    fields[4] = b"12 kg"
    lines[120] = b",".join(fields)
    bad.write_bytes(b"".join(lines))
    with pytest.raises(ValueError, match=r"part-00001\.csv.*line 121.*byte"):
        split_csv(parts, tmp_path / "out", parallel=2, verbose=False, rows_per_shard=100, id_columns=("attempt_id",))


@pytest.mark.timeout(900)
def test_a_killed_parallel_split_resumes_to_the_same_output(tmp_path):
    parts = write_parts(tmp_path / "parts", rows=(3000, 2500, 3000, 2000), nasty=True)
    clean = tmp_path / "clean"
    subprocess.run([*SPLIT, "--parallel", "2", str(parts), str(clean)], check=True, env=run_env(), capture_output=True)
    killed = tmp_path / "killed"
    process = subprocess.Popen([*SPLIT, "--parallel", "2", str(parts), str(killed)], env=run_env(),
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 360
    while process.poll() is None and time.monotonic() < deadline:  # kill once the first part is finished
        if list((killed / PARTS_DIR).glob("*/manifest.json")):
            break
        time.sleep(0.02)
    assert process.poll() is None, "the parallel split finished before it could be killed; make the input bigger"
    process.send_signal(signal.SIGKILL)
    process.communicate()
    assert not (killed / "manifest.json").exists()
    rerun = subprocess.run([*SPLIT, "--parallel", "2", str(parts), str(killed)], env=run_env(),
                           capture_output=True, text=True, timeout=720)
    assert rerun.returncode == 0, rerun.stderr
    assert "resuming" in rerun.stdout and "already done" in rerun.stdout

    def tree(root):
        return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
                if p.is_file() and p.name != ".split.lock"}

    clean_files, resumed_files = tree(clean), tree(killed)
    assert sorted(clean_files) == sorted(resumed_files)
    for name in clean_files:
        assert clean_files[name] == resumed_files[name], name
    manifest = load_manifest(killed)
    assert manifest["source"]["rows"] == 10_500
    numbers = np.concatenate([np.load(files["rows"]) for files, _ in shards_of(manifest)])
    assert np.array_equal(np.sort(numbers), np.arange(10_500))


@pytest.mark.xdist_group("ray")  # one local Ray cluster at a time
@pytest.mark.timeout(900)
@pytest.mark.skipif(importlib.util.find_spec("ray") is None, reason="Ray is not installed (pip install 'questlearn[ray]')")
def test_ray_runs_the_part_tasks_on_127_0_0_1_and_merges_the_same_split(splits, tmp_path):
    parts, _, processes = splits
    out = tmp_path / "ray"
    options = [f"--{k.replace('_', '-')}={','.join(v) if isinstance(v, tuple) else v}"
               for k, v in OPTIONS.items() if k not in ("id_columns", "categorical_columns")]
    command = [sys.executable, "-m", "questlearn", "split", str(parts), str(out), "--ray", "--parallel", "2",
               "--id-column", "attempt_id", "--categorical-column", "player_id", "--no-progress", *options]
    result = subprocess.run(command, env=run_env(), capture_output=True, text=True, timeout=840)
    assert result.returncode == 0, result.stderr[-3000:]
    manifest = load_manifest(out)
    assert manifest["parallel"]["engine"] == "ray"
    assert manifest["parallel"]["ray_nodes"] == ["127.0.0.1"]
    assert manifest["subsets"] == processes["subsets"]  # same seeds, same merge: the same shards
    assert manifest["stats"] == processes["stats"]


def test_a_regression_target_merges_to_the_sequential_statistics(splits, tmp_path):
    parts, _, _ = splits
    options = dict(rows_per_shard=500, seed=1, label="power", task="regression", id_columns=("attempt_id", "player_id"))
    sequential = split_csv(parts, tmp_path / "sequential", verbose=False, **options)
    parallel = split_csv(parts, tmp_path / "parallel", parallel=2, verbose=False, **options)
    assert_same_statistics(parallel, sequential)
    for subset in ("train", "validate"):  # each subset's target statistics agree with its own rows
        targets = np.concatenate([np.load(files["labels"]) for files, shard in shards_of(load_manifest(tmp_path / "parallel"))
                                  if Path(files["labels"]).parent.name == subset]).astype(np.float64)
        summary = parallel["subsets"][subset]["label_stats"]
        assert summary["count"] == len(targets) == parallel["subsets"][subset]["rows"]
        assert summary["mean"] == pytest.approx(targets.mean(), rel=1e-6)


def test_an_interrupted_merge_is_redone_from_the_finished_parts(splits, tmp_path, monkeypatch):
    import questlearn.split._merge as merge

    parts, _, clean = splits
    place = merge._merge_shard
    calls = []

    def dies_on_the_third_shard(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise OSError("killed during the merge")
        return place(*args, **kwargs)

    monkeypatch.setattr(merge, "_merge_shard", dies_on_the_third_shard)
    with pytest.raises(OSError, match="during the merge"):
        split_csv(parts, tmp_path / "out", parallel=2, verbose=False, **OPTIONS)
    assert len(list((tmp_path / "out" / PARTS_DIR).glob("*/manifest.json"))) == len(PART_ROWS)
    monkeypatch.setattr(merge, "_merge_shard", place)
    again = split_csv(parts, tmp_path / "out", parallel=2, verbose=False, **OPTIONS)
    assert again["subsets"] == clean["subsets"] and again["stats"] == clean["stats"]
    load_manifest(tmp_path / "out")
    assert not (tmp_path / "out" / PARTS_DIR).exists()
