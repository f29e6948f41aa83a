"""A datetime's elapsed days enter the network through bins a day wide, so it resolves day-to-day changes."""

import numpy as np
import pytest

from questlearn.quiet import keras
from questlearn.schema.encoding import QUANTILE_BINS
from questlearn.train.model import DAY_BINS_MAX, build_model, day_edges

DAYS = 120


def hourly_rows(days: int = DAYS, seed: int = 0):
    """Hourly rows over ``days`` days from 2021-01-01; the label is a random value drawn once a day."""
    rng = np.random.default_rng(seed)
    elapsed = 18628 + np.arange(days * 24, dtype=np.float64) / 24  # days since 1970 of each hour
    label = rng.normal(0.0, 1.0, days)[np.floor(elapsed - 18628).astype(int)]
    return elapsed.astype(np.float32).reshape(-1, 1), label.astype(np.float32)


def trained_loss(day_columns) -> float:
    """Mean squared error on the training rows after a short fit, with or without day bins for the days column."""
    days, label = hourly_rows()
    quantiles = [np.quantile(days, np.linspace(0, 1, QUANTILE_BINS + 1)).tolist()]
    bounds = (days.min(axis=0), days.max(axis=0))
    keras.utils.set_random_seed(0)
    model = build_model(days.mean(axis=0), days.var(axis=0), 1, code_counts=(), task="regression", hidden=(32,),
                        dropout=0.0, learning_rate=3e-3, quantiles=quantiles, bounds=bounds, day_columns=day_columns,
                        target_std=float(label.std()))
    model.fit({"numbers": days}, label, batch_size=64, epochs=6, verbose=0, shuffle=True)
    return float(model.evaluate({"numbers": days}, label, batch_size=1024, verbose=0, return_dict=True)["loss"])


def test_a_label_that_changes_every_day_is_fitted_with_day_bins_and_not_with_quantile_bins_alone():
    by_day, by_quantile = trained_loss([0]), trained_loss([])
    assert by_quantile > 0.5  # 48 quantile bins over 120 days: 2.5 days a bin, the daily values out of reach
    assert by_day < 0.25 * by_quantile


def test_day_bins_start_at_midnight_one_a_day_and_widen_by_whole_days_past_the_cap():
    edges = day_edges(18628.25, 18628 + 364.5)
    assert edges[0] == 18628 and edges[-1] == 18628 + 365 and np.all(np.diff(edges) == 1)
    long = day_edges(0.0, 3652.0)  # ten years
    assert len(long) - 1 <= DAY_BINS_MAX and np.all(np.diff(long) == np.diff(long)[0]) and np.diff(long)[0] == 8
    assert long[-1] >= 3652.0
    assert len(day_edges(5.5, 5.5)) == 2  # a single value: one bin


def test_a_saved_model_loads_and_scores_each_day_through_its_own_vector(tmp_path):
    days, _ = hourly_rows(days=30)
    quantiles = [np.quantile(days, np.linspace(0, 1, QUANTILE_BINS + 1)).tolist()]
    keras.utils.set_random_seed(0)
    model = build_model(days.mean(axis=0), days.var(axis=0), 2, code_counts=(), hidden=(8,), quantiles=quantiles,
                        bounds=(days.min(axis=0), days.max(axis=0)), day_columns=[0])
    model.save(tmp_path / "model.keras")
    loaded = keras.saving.load_model(tmp_path / "model.keras", compile=False)
    rows = {"numbers": np.array([[18628.5], [18640.25], [18657.9], [18500.0], [19000.0]], np.float32)}  # last two clipped
    np.testing.assert_allclose(loaded.predict(rows, verbose=0), model.predict(rows, verbose=0), atol=1e-6)
    layer = loaded.get_layer("days_embedding_0")
    assert layer.input_dim == 30  # a vector for each of the 30 days
    before = loaded.predict(rows, verbose=0)
    weights = layer.get_weights()[0]
    weights[12] += 5.0  # 2021-01-13's vector moves: its row's score alone moves
    layer.set_weights([weights])
    moved = np.abs(loaded.predict(rows, verbose=0) - before).max(axis=1) > 1e-4
    assert moved.tolist() == [False, True, False, False, False]


def test_the_split_names_the_numbers_columns_that_hold_a_datetimes_days(tmp_path):
    import pandas as pd

    from questlearn.data.dataset import QuestSequence
    from questlearn.split import split_csv

    rng = np.random.default_rng(0)
    rows = 300
    pd.DataFrame({"amount": rng.normal(size=rows).round(3),
                  "when": [f"2021-{m:02d}-{d:02d}T{h:02d}:00:00" for m, d, h in
                           zip(rng.integers(1, 13, rows), rng.integers(1, 29, rows), rng.integers(0, 24, rows))],
                  "size": rng.integers(0, 50, rows),
                  "label": rng.integers(0, 2, rows)}).to_csv(tmp_path / "log.csv", index=False)
    split_csv(tmp_path / "log.csv", tmp_path / "split", label="label", progress=False, verbose=False)
    data = QuestSequence(tmp_path / "split", "train", batch_size=None)
    names = data.input_names()["numbers"]
    assert [names[i] for i in data.day_columns()] == ["when.days"]
