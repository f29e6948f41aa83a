"""Scatter: every shard is a random sample of the whole source.

Real logs are written in time order. These tests build a time-sorted log
whose positive rate drifts from 20 % at the first row to 80 % at the last
and check that the split's shards do not inherit the drift, and that a
model trained on the sorted log is as good as one trained on the same rows
shuffled.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from questlearn.split import split_csv

ROWS = 200_000


def drifting_log(path: Path, rows: int = ROWS, seed: int = 0, shuffled: bool = False) -> Path:
    """A log sorted by time whose positive rate drifts linearly from 20 % to 80 %.

    The label depends on the features the same way at every time; only the
    base rate (the intercept) drifts, and time is not a column.
    """
    rng = np.random.default_rng(seed)
    time = np.linspace(0.0, 1.0, rows)
    features = rng.normal(size=(rows, 3))
    signal = 1.2 * features[:, 0] - 0.8 * features[:, 1]
    # intercept chosen so that the average positive rate at time t is about 0.2 + 0.6 t
    target = 0.2 + 0.6 * time
    intercept = np.log(target / (1 - target)) * 1.45
    label = (rng.random(rows) < 1 / (1 + np.exp(-(signal + intercept)))).astype(int)
    frame = pd.DataFrame({"f0": features[:, 0].round(4), "f1": features[:, 1].round(4),
                          "f2": features[:, 2].round(4), "cleared": label})
    if shuffled:
        frame = frame.iloc[rng.permutation(rows)]
    frame.to_csv(path, index=False)
    return path


def positive_rates(split_dir: Path, subset: str) -> tuple[list, float]:
    manifest = json.loads((split_dir / "manifest.json").read_text())
    rates, positives, total = [], 0, 0
    for shard in manifest["subsets"][subset]["shards"]:
        counts = shard["label_counts"]
        rows = sum(counts.values())
        rates.append(counts.get("1", 0) / rows)
        positives += counts.get("1", 0)
        total += rows
    return rates, positives / total


def test_the_drifting_log_really_drifts(tmp_path):
    frame = pd.read_csv(drifting_log(tmp_path / "log.csv"))
    first, last = frame["cleared"][: ROWS // 10].mean(), frame["cleared"][-ROWS // 10:].mean()
    assert first < 0.3 and last > 0.7


def test_every_shard_of_a_time_sorted_log_has_the_positive_rate_of_its_subset(tmp_path):
    source = drifting_log(tmp_path / "sorted.csv")
    split_dir = tmp_path / "split"
    manifest = split_csv(source, split_dir, rows_per_shard=10_000, val_fraction=0.2, seed=3, verbose=False)
    for subset in ("train", "validate"):
        rates, overall = positive_rates(split_dir, subset)
        assert len(rates) >= (16 if subset == "train" else 4)
        worst = max(abs(rate - overall) for rate in rates)
        assert worst < 0.02, f"{subset}: a shard's positive rate is {worst:.3f} away from the subset's {overall:.3f}"
    # and each shard spans the whole log: its rows come from its first to its last tenth
    for shard in manifest["subsets"]["train"]["shards"]:
        rows = np.load(split_dir / shard["files"]["rows"]["name"])
        assert rows.min() < ROWS // 10 and rows.max() > ROWS - ROWS // 10
        assert np.all(np.diff(rows) > 0), "rows keep their source order inside a shard"
    assert manifest["scatter"]["waves"] == {"train": 1, "validate": 1}


def test_without_room_for_every_shard_at_once_shards_sample_their_wave(tmp_path):
    """With max_open_shards below what the subset needs, shards are filled in waves;
    every row still lands exactly once, and no shard holds more than rows_per_shard."""
    source = drifting_log(tmp_path / "sorted.csv", rows=60_000)
    split_dir = tmp_path / "split"
    manifest = split_csv(source, split_dir, rows_per_shard=5_000, val_fraction=0.2, seed=3, verbose=False,
                         max_open_shards=3)
    assert manifest["scatter"]["waves"]["train"] >= 3
    rows = np.concatenate([np.load(split_dir / shard["files"]["rows"]["name"])
                           for subset in ("train", "validate") for shard in manifest["subsets"][subset]["shards"]])
    assert np.array_equal(np.sort(rows), np.arange(60_000))
    assert max(s["rows"] for s in manifest["subsets"]["train"]["shards"]) <= 5_000


def test_a_log_whose_rows_get_shorter_is_dealt_in_one_wave_over_the_whole_log(tmp_path):
    """Long rows first, short rows after: the first block alone would estimate
    far too few rows (and leave the rest to shards of the tail only); the
    sample spread over the log estimates them all."""
    rows, long_rows = 200_000, 50_000
    rng = np.random.default_rng(5)
    values = rng.normal(size=(rows, 2)).round(3)
    labels = rng.integers(0, 2, rows)
    detail = [f"{v:.100f}" for v in rng.random(long_rows)] + [f"{v:.1f}" for v in rng.random(rows - long_rows)]
    source = tmp_path / "shrinking.csv"
    with open(source, "w") as handle:
        handle.write("f0,f1,detail,cleared\n")
        handle.writelines(f"{a},{b},{d},{c}\n" for (a, b), d, c in zip(values.tolist(), detail, labels.tolist()))
    first_block_estimate = source.stat().st_size / (len(f"{1.0:.100f}") + 20)  # what 4 MB of long rows extrapolate to
    assert first_block_estimate < 0.9 * rows and source.stat().st_size > 8 << 20
    split_dir = tmp_path / "split"
    manifest = split_csv(source, split_dir, rows_per_shard=10_000, val_fraction=0.2, seed=3, verbose=False)
    assert abs(manifest["scatter"]["estimated_rows"] - rows) / rows < 0.05, manifest["scatter"]
    assert manifest["scatter"]["waves"] == {"train": 1, "validate": 1}
    for subset in ("train", "validate"):
        for shard in manifest["subsets"][subset]["shards"]:
            numbers = np.load(split_dir / shard["files"]["rows"]["name"])
            assert numbers.min() < rows // 10 and numbers.max() > rows - rows // 10, (subset, shard["rows"])


@pytest.mark.timeout(2700)
def test_a_model_trained_on_the_sorted_log_is_as_good_as_one_trained_on_it_shuffled(tmp_path):
    from questlearn.serve.predict import predict_frame
    from questlearn.train._fit import train

    held_out = pd.read_csv(drifting_log(tmp_path / "held_out.csv", rows=100_000, seed=1, shuffled=True))
    accuracy = {}
    for name, shuffled in (("sorted", False), ("shuffled", True)):
        source = drifting_log(tmp_path / f"{name}.csv", shuffled=shuffled)
        split_csv(source, tmp_path / f"split_{name}", rows_per_shard=10_000, val_fraction=0.2, seed=0, verbose=False)
        # the small preset: what is compared is where the rows went, not the network
        train(tmp_path / f"split_{name}", tmp_path / f"model_{name}", epochs=3, batch_size=1024, workers=1,
              model="small", hidden=(16,), learning_rate=3e-3, seed=0, verbose=0, saved_model=False)
        scored = predict_frame(tmp_path / f"model_{name}", held_out[["f0", "f1", "f2"]])
        accuracy[name] = float((scored["predicted"].astype(int).to_numpy() == held_out["cleared"].to_numpy()).mean())
        shutil.rmtree(tmp_path / f"split_{name}")
    assert accuracy["shuffled"] > 0.65, accuracy  # the models learned something (the base rate is about 0.5)
    assert abs(accuracy["sorted"] - accuracy["shuffled"]) <= 0.005, accuracy
