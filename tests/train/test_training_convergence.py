"""The plan trains until the validation loss stops improving, where the old step budget stopped it still learning."""

import json

import numpy as np
import pandas as pd
import pytest
from splits import model_ready_split

import questlearn.train._defaults as defaults
from questlearn.train._fit import train


@pytest.fixture
def slow_regression(tmp_path):
    """1,000 rows of a smooth target with noise: a 64-64 network keeps improving for a few hundred steps."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(1000, 4))
    y = np.sin(2 * x[:, 0]) + 0.5 * x[:, 1] * x[:, 2] + 0.3 * rng.normal(size=1000)
    pd.DataFrame({"a": x[:, 0], "b": x[:, 1], "c": x[:, 2], "d": x[:, 3], "y": y}).to_csv(tmp_path / "table.csv", index=False)
    model_ready_split(tmp_path / "table.csv", tmp_path / "split", label="y", task="regression", progress=False)
    return tmp_path / "split"


@pytest.mark.timeout(900)
def test_a_table_in_memory_trains_until_early_stopping_ends_it_and_ends_lower(slow_regression, tmp_path, monkeypatch):
    # Both budgets a fiftieth of the real ones (300 and 1,200 steps, 25 steps an epoch), so the test stays short.
    monkeypatch.setattr(defaults, "TARGET_STEPS", 300)
    monkeypatch.setattr(defaults, "IN_MEMORY_TARGET_STEPS", 1200)
    arguments = dict(verbose=0, hidden=(64, 64), seed=0, saved_model=False)
    old = train(slow_regression, tmp_path / "old", in_memory=False, **arguments)  # the fixed step budget of before
    new = train(slow_regression, tmp_path / "new", **arguments)
    old_record = json.loads((tmp_path / "old" / "history.json").read_text())
    new_record = json.loads((tmp_path / "new" / "history.json").read_text())
    assert not old_record["in_memory"] and new_record["in_memory"]
    assert len(old.history["epoch"]) == old_record["planned_epochs"]  # the epoch cap ended it
    assert len(new.history["epoch"]) < new_record["planned_epochs"]  # early stopping ended it
    assert new.best("val_loss") < 0.8 * old.best("val_loss")
