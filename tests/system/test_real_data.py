"""Real public tables shipped inside installed packages, split with only --label and trained."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers import zero_inputs
from splits import model_ready_split

from questlearn.manifest._files import load_manifest
from questlearn.train._fit import train


def penguins_csv() -> Path:
    """Palmer penguins (palmerpenguins package): missing values are written ``NA``."""
    palmerpenguins = pytest.importorskip("palmerpenguins")
    return Path(palmerpenguins.__file__).parent / "data" / "penguins.csv"


def shard_frame(manifest, subset) -> pd.DataFrame:
    root = Path(manifest["root"])
    return pd.concat([pd.read_csv(root / s["files"]["csv"]["name"]) for s in manifest["subsets"][subset]["shards"]])


@pytest.mark.timeout(1800)
def test_penguins_with_NA_tokens_split_with_only_a_label_and_train_like_sklearn(tmp_path):
    from sklearn.compose import make_column_transformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    source = penguins_csv()
    assert b",NA," in source.read_bytes()  # the real file writes missing values as a token
    model_ready_split(source, tmp_path / "split", label="species", rows_per_shard=100, seed=0, verbose=False)
    manifest = load_manifest(tmp_path / "split")
    kinds = {c["name"]: c["kind"] for c in manifest["schema"]["columns"]}
    for column in ("bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g", "year"):
        assert kinds[column] == "numeric", column
    assert kinds["island"] == kinds["sex"] == "categorical"
    assert manifest["stats"]["bill_length_mm"]["missing"] == 2
    assert manifest["stats"]["sex"]["missing"] == 11
    assert len(manifest["schema"]["features"]) == 7

    result = train(tmp_path / "split", tmp_path / "model", epochs=60, batch_size=16, learning_rate=1e-2,
                   patience=60, workers=1, verbose=0, saved_model=False)
    numeric = ["bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g", "year"]
    prepare = make_column_transformer(
        (make_pipeline(SimpleImputer(), StandardScaler()), numeric),
        (make_pipeline(SimpleImputer(strategy="most_frequent"), OneHotEncoder(handle_unknown="ignore")), ["island", "sex"]),
    )
    baseline = make_pipeline(prepare, LogisticRegression(max_iter=2000))
    train_rows, validation_rows = shard_frame(manifest, "train"), shard_frame(manifest, "validate")
    baseline.fit(train_rows.drop(columns="species"), train_rows["species"])
    sklearn_accuracy = baseline.score(validation_rows.drop(columns="species"), validation_rows["species"])
    assert result.best_val_accuracy >= sklearn_accuracy - 0.04, (result.best_val_accuracy, sklearn_accuracy)
    assert result.best_val_accuracy > result.majority_baseline + 0.3


@pytest.mark.timeout(1800)
def test_regression_on_a_real_table_clearly_beats_predicting_the_mean(tmp_path):
    from sklearn.datasets import load_diabetes

    frame = load_diabetes(as_frame=True, scaled=False).frame  # bundled with scikit-learn: 442 patients
    source = tmp_path / "diabetes.csv"
    frame.to_csv(source, index=False)
    model_ready_split(source, tmp_path / "split", label="target", task="regression", rows_per_shard=100, seed=1, verbose=False)
    result = train(tmp_path / "split", tmp_path / "model", epochs=80, batch_size=32, learning_rate=3e-3,
                   patience=20, workers=1, verbose=0, saved_model=False)
    summary = result.summary()
    assert summary["best_val_rmse"] < 0.85 * summary["mean_baseline_rmse"], summary
    assert summary["best_val_mae"] < 0.85 * summary["mean_baseline_mae"], summary
    assert "best_val_accuracy" not in summary
    x = zero_inputs(result.model, 2)
    assert x["numbers"].shape == (2, len(load_manifest(tmp_path / "split")["schema"]["features"]))
    predictions = result.model.predict(x, verbose=0)
    assert predictions.shape == (2, 1)


def test_the_csv_loader_reads_tokens_exactly_as_the_split_did(tmp_path):
    from questlearn.data._batches import ShardReader

    model_ready_split(penguins_csv(), tmp_path / "split", label="species", rows_per_shard=100, verbose=False)
    manifest = load_manifest(tmp_path / "split")
    for subset in ("train", "validate"):
        from_npy, from_csv = ShardReader(manifest, subset, "npy"), ShardReader(manifest, subset, "csv")
        for shard in range(len(from_npy.shards)):
            rows = np.arange(from_npy.shards[shard]["rows"])
            x_npy, y_npy = from_npy.read([(shard, rows)])
            x_csv, y_csv = from_csv.read([(shard, rows)])
            assert sorted(x_npy) == sorted(x_csv) == ["codes", "numbers"]
            for block in x_npy:
                np.testing.assert_array_equal(x_npy[block], x_csv[block])
            np.testing.assert_array_equal(y_npy, y_csv)
