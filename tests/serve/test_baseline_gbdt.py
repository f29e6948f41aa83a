"""``questlearn evaluate --baseline gbdt``: HistGradientBoosting on a bounded sample of the training shards,
scored on the rows evaluate scores."""

import json
import subprocess
import sys

import numpy as np
import pytest
from boosting import shard_blocks, trained_with_zone
from helpers import run_env
from splits import model_ready_split

from questlearn.cli import main
from questlearn.data._batches import ShardReader
from questlearn.manifest._files import load_manifest
from questlearn.serve import _baseline, _boosters
from questlearn.serve.evaluate import evaluate
from questlearn.train._fit import train

sklearn = pytest.importorskip("sklearn")
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor  # noqa: E402
from sklearn.metrics import roc_auc_score  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402


@pytest.fixture(autouse=True)
def one_openmp_thread():
    """The boosting models on one thread: OpenMP threads spin badly on a busy 2-core machine (results do not change)."""
    with threadpool_limits(limits=1, user_api="openmp"):
        yield


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """See ``boosting.trained_with_zone``."""
    return trained_with_zone(tmp_path_factory.mktemp("baseline_gbdt"))


@pytest.mark.timeout(1800)
def test_gbdt_baseline_is_a_boosting_model_of_the_training_rows_scored_on_the_validate_rows(trained):
    _, split, model_dir = trained
    report = evaluate(model_dir, split, baseline="gbdt")
    boosting = report["baseline_gbdt"]
    x_train, y_train, categorical = shard_blocks(split, "train")
    x_validate, y_validate, _ = shard_blocks(split, "validate")
    assert categorical[-2] and not categorical[-1]  # quest_type native, zone (465 codes) ordinal
    assert boosting["categorical_features"] == ["quest_type"] and boosting["ordinal_features"] == ["zone"]
    # Under the row cap, the sample is every training row: the same model, fitted here on the shards read directly.
    model = HistGradientBoostingClassifier(categorical_features=categorical, random_state=0).fit(x_train, y_train)
    probabilities = model.predict_proba(x_validate).astype(np.float32)
    predicted = probabilities.argmax(axis=1)
    assert boosting["training_rows"] == boosting["training_rows_available"] == len(y_train)
    assert boosting["rows"] == report["rows"] == len(y_validate)
    assert boosting["accuracy"] == pytest.approx(np.mean(predicted == y_validate), abs=1e-6)
    assert boosting["accuracy"] != pytest.approx(model.score(x_train, y_train), abs=1e-3)  # not the training rows'
    assert boosting["auc"] == pytest.approx(roc_auc_score(y_validate, probabilities[:, 1]), abs=1e-12)
    confusion = np.zeros((2, 2), int)
    np.add.at(confusion, (y_validate, predicted), 1)
    assert boosting["confusion_matrix"] == confusion.tolist()
    assert boosting["gap"]["accuracy_points"] == pytest.approx(100 * (report["accuracy"] - boosting["accuracy"]))
    assert boosting["gap"]["auc"] == pytest.approx(report["auc"] - boosting["auc"])
    assert "stamina" in boosting["missing_numbers"] and "NaN" in boosting["missing_numbers"]  # its indicator marks them
    assert report["majority_baseline"] > 0  # the majority baseline stays beside it


@pytest.mark.timeout(1800)
def test_gbdt_baseline_of_a_regression_model_reports_mae_rmse_and_the_rmse_ratio(tmp_path):
    from sklearn.datasets import load_diabetes

    frame = load_diabetes(as_frame=True, scaled=False).frame
    frame.to_csv(tmp_path / "diabetes.csv", index=False)
    split = tmp_path / "split"
    model_ready_split(tmp_path / "diabetes.csv", split, label="target", task="regression", rows_per_shard=100)
    result = train(split, tmp_path / "model", epochs=2, batch_size=32, workers=1, verbose=0, saved_model=False)
    report = evaluate(result.model_dir, split, baseline="gbdt")
    boosting = report["baseline_gbdt"]
    x_train, y_train, _ = shard_blocks(split, "train")
    x_validate, y_validate, _ = shard_blocks(split, "validate")
    predicted = HistGradientBoostingRegressor(random_state=0).fit(x_train, y_train).predict(x_validate).astype(np.float32)
    errors = predicted.astype(np.float64) - y_validate
    assert boosting["mae"] == pytest.approx(np.abs(errors).mean(), rel=1e-5)
    assert boosting["rmse"] == pytest.approx(np.sqrt((errors ** 2).mean()), rel=1e-5)
    assert boosting["gap"]["rmse_ratio_minus_1"] == pytest.approx(report["rmse"] / boosting["rmse"] - 1)
    assert "accuracy" not in boosting and report["baseline"]["predicts"] == "the training mean"


@pytest.mark.timeout(1800)
def test_gbdt_baseline_draws_a_bounded_sample_from_the_memory_maps(trained, monkeypatch, capsys):
    _, split, model_dir = trained
    taken = []
    original_take, original_open = _baseline.take_rows, _baseline._open_map

    def counting_take(root, shard, part, rows, width, dtype):
        taken.append((shard["index"], part, len(rows), shard["rows"]))
        return original_take(root, shard, part, rows, width, dtype)

    def checked_open(path):
        block = original_open(path)
        assert isinstance(block.base, np.memmap), path  # a memory map, not the file read into memory
        return block

    monkeypatch.setattr(_baseline, "take_rows", counting_take)
    monkeypatch.setattr(_baseline, "_open_map", checked_open)
    code = main(["evaluate", str(model_dir), str(split), "--baseline", "gbdt", "--baseline-rows", "300", "--no-progress"])
    out = capsys.readouterr()
    boosting = json.loads(out.out)["baseline_gbdt"]
    assert code == 0 and boosting["training_rows"] == boosting["sample_cap"] == 300
    assert "300 of 2989 training rows drawn (cap 300 rows" in out.err
    train_shards = load_manifest(split)["subsets"]["train"]["shards"]
    for part in ("numbers", "codes", "labels"):
        per_shard = {index: count for index, name, count, _ in taken if name == part}
        assert sum(per_shard.values()) == 300  # rows read from the maps: the cap, not the split
        assert len(per_shard) == len(train_shards)  # drawn across every shard
    assert all(count < rows for *_, count, rows in taken)

    # The memory cap: 100 rows of 27 float32 features, whichever cap is smaller; the rows are the shards' own.
    taken.clear()
    reader = ShardReader(load_manifest(split), "validate")
    sample = _baseline.sample_training_rows(reader, max_rows=300, max_bytes=100 * 27 * 4, seed=3)
    assert sample.x.shape == (100, 27) and sample.cap == 100 and sample.capped_by.startswith("the memory cap")
    assert sum(count for _, part, count, _ in taken if part == "numbers") == 100
    x_train, y_train, _ = shard_blocks(split, "train")
    positions = _baseline.draw_positions([s["rows"] for s in train_shards], 100, 3)
    starts = np.cumsum([0] + [s["rows"] for s in train_shards])
    rows = np.concatenate([start + p for start, p in zip(starts, positions)])
    np.testing.assert_array_equal(sample.x, x_train[rows])
    np.testing.assert_array_equal(sample.labels, y_train[rows])
    again = _baseline.sample_training_rows(reader, max_rows=300, max_bytes=100 * 27 * 4, seed=4)
    assert not np.array_equal(again.labels, sample.labels) or not np.array_equal(again.x, sample.x, equal_nan=True)


@pytest.mark.timeout(900)
def test_gbdt_baseline_without_scikit_learn_names_the_extra_to_install(trained):
    _, split, model_dir = trained
    code = ("import sys\n"
            "import questlearn.cli, questlearn.serve.evaluate\n"
            "assert 'sklearn' not in sys.modules, 'evaluate imported scikit-learn'\n"
            "sys.modules['sklearn'] = None\n"
            "from questlearn.errors import MissingPackageError\n"
            "try:\n"
            f"    questlearn.serve.evaluate.evaluate({str(model_dir)!r}, {str(split)!r}, baseline='gbdt')\n"
            "except MissingPackageError:\n"
            "    print('raised MissingPackageError')\n"
            f"sys.exit(questlearn.cli.main(['evaluate', {str(model_dir)!r}, {str(split)!r}, '--baseline', 'gbdt', '--no-progress']))\n")
    child = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=run_env(), timeout=720)
    lines = child.stderr.strip().splitlines()
    assert child.returncode == 2 and len(lines) == 1 and "Traceback" not in child.stderr, child.stderr
    assert child.stdout.strip() == "raised MissingPackageError"
    assert "MissingPackage" not in lines[0] and "needs scikit-learn: pip install 'questlearn[baseline]'" in lines[0]


@pytest.mark.timeout(900)
def test_gbdt_baseline_refuses_a_csv_source_and_names_the_split_directory(trained, capsys):
    root, _, model_dir = trained
    code = main(["evaluate", str(model_dir), str(root / "quests.csv"), "--baseline", "gbdt", "--no-progress"])
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(lines) == 1, lines
    assert "is not a split directory" in lines[0] and "pass the split directory the model was trained on" in lines[0]


def test_the_gap_covers_every_metric_both_models_report():
    regression = _baseline.gap({"mae": 3.0, "rmse": 5.0}, {"mae": 2.0, "rmse": 4.0}, regression=True)
    assert regression["mae_ratio_minus_1"] == pytest.approx(0.5) and regression["rmse_ratio_minus_1"] == pytest.approx(0.25)
    assert "MAE and RMSE" in regression["meaning"]
    classification = _baseline.gap({"accuracy": 0.8, "auc": 0.9}, {"accuracy": 0.75, "auc": 0.85}, regression=False)
    assert classification["accuracy_points"] == pytest.approx(5.0) and classification["auc"] == pytest.approx(0.05)
    assert _baseline.gap({"accuracy": 0.8, "auc": None}, {"accuracy": 0.75, "auc": 0.85}, regression=False)["auc"] is None


def test_the_sample_says_the_cap_applied_only_when_it_left_rows_out():
    every = _baseline.Sample(np.zeros((50, 2), np.float32), np.zeros(50), cap=200, capped_by="the row cap (--baseline-rows)",
                             available=50)
    assert not every.capped and "all 50 training rows drawn" in every.describe() and "set by" not in every.describe()
    capped = _baseline.Sample(np.zeros((20, 2), np.float32), np.zeros(20), cap=20, capped_by="the row cap (--baseline-rows)",
                              available=50)
    assert capped.capped and capped.describe() == "20 of 50 training rows drawn (cap 20 rows, set by the row cap (--baseline-rows))"


def test_boosting_threads_follow_omp_num_threads_else_the_idle_cores_this_process_may_use(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert _boosters.boosting_threads() == (3, "OMP_NUM_THREADS")
    monkeypatch.delenv("OMP_NUM_THREADS")
    monkeypatch.setattr(_boosters.os, "sched_getaffinity", lambda pid: {0, 1, 2, 3}, raising=False)
    monkeypatch.setattr(_boosters.os, "cpu_count", lambda: 8)
    monkeypatch.setattr(_boosters.os, "getloadavg", lambda: (0.2, 0.0, 0.0))
    assert _boosters.boosting_threads()[0] == 4  # the affinity's 4 cores, not the machine's 8
    monkeypatch.setattr(_boosters.os, "getloadavg", lambda: (7.6, 0.0, 0.0))
    threads, why = _boosters.boosting_threads()
    assert threads == 1 and "load average 7.6" in why  # 8 busy cores of 8, this process among them


@pytest.mark.timeout(1800)
def test_gbdt_baseline_prints_its_progress_and_reports_the_uncapped_sample_and_every_gap(trained, capsys):
    _, split, model_dir = trained
    code = main(["evaluate", str(model_dir), str(split), "--baseline", "gbdt", "--no-progress"])
    out = capsys.readouterr()
    boosting = json.loads(out.out)["baseline_gbdt"]
    lines = [line for line in out.err.splitlines() if line.startswith("baseline gbdt:")]
    fitting = next(i for i, line in enumerate(lines) if "fitting HistGradientBoostingClassifier on 2989 rows" in line)
    assert code == 0 and any("fitted in" in line and " s " in line for line in lines[fitting + 1:]), out.err
    assert any("all 2989 training rows drawn" in line for line in lines[:fitting]) and "cap 200000 rows, set by" not in out.err
    assert boosting["sample_capped"] is False and boosting["sample_capped_by"] is None and boosting["threads"] >= 1
    assert {"accuracy_points", "auc"} <= set(boosting["gap"])
