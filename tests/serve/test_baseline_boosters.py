"""``questlearn evaluate --baseline gbdt,lightgbm,catboost``: LightGBM and CatBoost beside HistGradientBoosting,
all trained on one bounded sample of the training shards and scored on the rows evaluate scores."""

import importlib
import json
import sys

import numpy as np
import pytest
from boosting import shard_blocks, trained_with_zone
from splits import model_ready_split

from questlearn.cli import main
from questlearn.errors import MissingPackageError, OptionError
from questlearn.manifest._files import load_manifest
from questlearn.serve import _baseline, _boosters
from questlearn.serve.evaluate import baseline_names, evaluate
from questlearn.train._fit import train

evaluate_module = importlib.import_module("questlearn.serve.evaluate")  # the package exports the function by that name

pytest.importorskip("sklearn")
lgb = pytest.importorskip("lightgbm")
pytest.importorskip("catboost")


@pytest.fixture(autouse=True)
def one_thread(monkeypatch):
    """Every boosting library on one thread (``boosting_threads`` follows OMP_NUM_THREADS): a busy 2-core machine."""
    monkeypatch.setenv("OMP_NUM_THREADS", "1")


@pytest.fixture(autouse=True)
def fewer_catboost_trees(monkeypatch):
    """CatBoost fits 200 trees instead of its default 1,000: the tests check which rows and features each
    library gets and what is reported, not how far CatBoost gets (its 1,000 trees cost over a minute here)."""
    monkeypatch.setattr(_boosters, "CATBOOST_ITERATIONS", 200)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """See ``boosting.trained_with_zone``: ``zone`` has 465 codes, past HistGradientBoosting's 255."""
    return trained_with_zone(tmp_path_factory.mktemp("baseline_boosters"))


def spy_on_fits(monkeypatch):
    """Record every sample drawn and every adapter's fit inputs: ``(draws, fits)``, fits as (name, x, labels, mask)."""
    draws, fits = [], []
    original_sample = _baseline.sample_training_rows

    def counting_sample(*args, **kwargs):
        draws.append(original_sample(*args, **kwargs))
        return draws[-1]

    monkeypatch.setattr(_baseline, "sample_training_rows", counting_sample)
    for name, kind in _boosters.BOOSTERS.items():
        def recording_fit(self, x, labels, categorical, _original=kind.fit):
            fits.append((self.name, x, labels, categorical))
            return _original(self, x, labels, categorical)
        monkeypatch.setattr(kind, "fit", recording_fit)
    return draws, fits


@pytest.mark.timeout(1800)
def test_every_baseline_trains_on_the_same_bounded_sample_and_reports_every_gap(trained, monkeypatch, capsys):
    _, split, model_dir = trained
    draws, fits = spy_on_fits(monkeypatch)
    trained_baselines = []
    original_train = evaluate_module._train_baselines
    monkeypatch.setattr(evaluate_module, "_train_baselines",
                        lambda *a, **k: trained_baselines.extend(original_train(*a, **k)) or trained_baselines)
    code = main(["evaluate", str(model_dir), str(split), "--baseline", "gbdt,lightgbm,catboost",
                 "--baseline-rows", "1500", "--no-progress"])
    out = capsys.readouterr()
    report = json.loads(out.out)
    assert code == 0 and len(draws) == 1  # one sample for all three
    assert [name for name, *_ in fits] == ["gbdt", "lightgbm", "catboost"]
    x_train, y_train, _ = shard_blocks(split, "train")
    train_shards = load_manifest(split)["subsets"]["train"]["shards"]
    positions = _baseline.draw_positions([s["rows"] for s in train_shards], 1500, 0)
    starts = np.cumsum([0] + [s["rows"] for s in train_shards])
    rows = np.concatenate([start + p for start, p in zip(starts, positions)])
    for _, x, labels, _ in fits:  # the same rows, drawn by the same positions gbdt's sample has always used
        np.testing.assert_array_equal(x, x_train[rows])
        np.testing.assert_array_equal(labels, y_train[rows])
    x_validate, y_validate, _ = shard_blocks(split, "validate")
    for baseline in trained_baselines:
        entry = report[f"baseline_{baseline.name}"]
        assert entry["training_rows"] == entry["sample_cap"] == 1500 and entry["sample_capped"] is True
        assert entry["rows"] == report["rows"] == len(y_validate)
        predicted = baseline.booster.outputs(x_validate).argmax(axis=1)
        assert entry["accuracy"] == pytest.approx(np.mean(predicted == y_validate), abs=1e-6)
        assert entry["gap"]["accuracy_points"] == pytest.approx(100 * (report["accuracy"] - entry["accuracy"]))
        assert entry["gap"]["auc"] == pytest.approx(report["auc"] - entry["auc"])
        assert entry["iterations"] >= 1 and entry["early_stopping"] is False  # 1,500 rows: no early stopping
    assert report["baseline_gbdt"]["ordinal_features"] == ["zone"]
    for name in ("lightgbm", "catboost"):  # native categories at any cardinality: zone (465 codes) is one
        assert report[f"baseline_{name}"]["categorical_features"] == ["quest_type", "zone"]
        assert report[f"baseline_{name}"]["ordinal_features"] == [] and report[f"baseline_{name}"]["ordinal_note"] is None
        assert any(line.startswith(f"baseline {name}: fitting ") for line in out.err.splitlines())
        assert any(line.startswith(f"baseline {name}: fitted in ") for line in out.err.splitlines())
    assert "baseline gbdt,lightgbm,catboost: 1500 of 2989 training rows drawn" in out.err
    zone_mask = fits[1][3]
    assert zone_mask[-2:].tolist() == [True, True] and not zone_mask[:-2].any()  # only the code columns categorical
    lightgbm = next(b for b in trained_baselines if b.name == "lightgbm").booster.model
    zone_info = lightgbm.dump_model()["feature_infos"][f"Column_{x_train.shape[1] - 1}"]
    assert len(zone_info["values"]) > 255  # LightGBM saw zone's codes as categories


@pytest.mark.timeout(1800)
def test_lightgbm_and_catboost_baselines_of_a_regression_model_report_mae_rmse_and_their_ratios(tmp_path):
    from sklearn.datasets import load_diabetes

    load_diabetes(as_frame=True, scaled=False).frame.to_csv(tmp_path / "diabetes.csv", index=False)
    split = tmp_path / "split"
    model_ready_split(tmp_path / "diabetes.csv", split, label="target", task="regression", rows_per_shard=100)
    result = train(split, tmp_path / "model", epochs=2, batch_size=32, workers=1, verbose=0, saved_model=False)
    report = evaluate(result.model_dir, split, baseline=["lightgbm", "catboost"])
    assert "baseline_gbdt" not in report
    for name in ("lightgbm", "catboost"):
        entry = report[f"baseline_{name}"]
        assert entry["training_rows"] == entry["training_rows_available"] and "accuracy" not in entry
        assert 0 < entry["mae"] <= entry["rmse"]
        assert entry["gap"]["rmse_ratio_minus_1"] == pytest.approx(report["rmse"] / entry["rmse"] - 1)
        assert entry["gap"]["mae_ratio_minus_1"] == pytest.approx(report["mae"] / entry["mae"] - 1)
    assert report["baseline_lightgbm"]["mae"] != report["baseline_catboost"]["mae"]


@pytest.mark.parametrize("name", ["gbdt", "lightgbm", "catboost"])
def test_each_adapter_scores_every_class_of_a_multiclass_label_and_stops_early_past_10000_rows(name):
    rng = np.random.default_rng(0)
    rows = 10_500
    codes = rng.integers(1, 600, rows).astype(np.float32)  # 600 categories: past HistGradientBoosting's 255
    numbers = rng.normal(size=rows).astype(np.float32)
    labels = (codes % 3).astype(np.int64)  # class 3 of 4 never appears; the category decides the class
    x = np.column_stack([numbers, codes])
    booster = _boosters.BOOSTERS[name](regression=False, num_classes=4, seed=0, threads=1)
    booster.fit(x, labels, np.array([False, name != "gbdt"]))
    probabilities = booster.outputs(x[:500])
    assert probabilities.shape == (500, 4) and probabilities.dtype == np.float32
    np.testing.assert_allclose(probabilities.sum(axis=1), 1, atol=1e-5)
    if name != "gbdt":  # native categories learn the mapping from the codes
        assert np.mean(probabilities.argmax(axis=1) == labels[:500]) > 0.95
    assert booster.early_stopping is True and booster.iterations >= 1


def test_the_rows_held_out_for_early_stopping_are_a_seeded_stratified_tenth():
    labels = np.repeat([0, 1, 2], [9000, 2000, 1000])
    held = _boosters.held_out(labels, seed=0, regression=False)
    assert np.bincount(labels[held]).tolist() == [900, 200, 100] and len(np.unique(held)) == 1200
    np.testing.assert_array_equal(held, _boosters.held_out(labels, seed=0, regression=False))
    assert _boosters.held_out(labels[:10_000], seed=0, regression=False) is None  # scikit-learn's "auto": above 10,000


@pytest.mark.parametrize("name, package, extra", [("lightgbm", "lightgbm", "lightgbm"),
                                                   ("catboost", "catboost", "catboost"),
                                                   ("gbdt", "sklearn", "baseline")])
def test_a_missing_library_names_its_extra_in_one_line_before_any_work(trained, monkeypatch, capsys, name, package, extra):
    _, split, model_dir = trained
    monkeypatch.setitem(sys.modules, package, None)  # `import package` now raises ImportError
    with pytest.raises(MissingPackageError, match=rf"--baseline {name} needs .*: pip install 'questlearn\[{extra}\]'"):
        _boosters.require(name)
    monkeypatch.setattr(evaluate_module, "_evaluate_split", lambda *a, **k: pytest.fail("work began"))
    code = main(["evaluate", str(model_dir), str(split), "--baseline", "gbdt,lightgbm,catboost", "--no-progress"])
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and f"pip install 'questlearn[{extra}]'" in lines[0], lines


def test_baseline_names_take_a_comma_separated_list_or_a_sequence_and_refuse_unknown_ones(trained, capsys):
    assert baseline_names("gbdt, lightgbm,catboost") == ["gbdt", "lightgbm", "catboost"]
    assert baseline_names(["catboost", "gbdt", "catboost"]) == ["catboost", "gbdt"]
    with pytest.raises(OptionError, match="one or more of gbdt, lightgbm, catboost"):
        baseline_names("gbdt,xgboost")
    _, split, model_dir = trained
    code = main(["evaluate", str(model_dir), str(split), "--baseline", "lightgbm,xgboost", "--no-progress"])
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and "'lightgbm,xgboost'" in lines[0] and "comma-separated" in lines[0], lines
