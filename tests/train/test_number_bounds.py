"""The network bounds each number to the range the split saw, before it is normalised and embedded."""

import json
import shutil

import numpy as np
import pytest
from splits import model_ready_split

from questlearn.data.dataset import QuestSequence
from questlearn.quiet import keras
from questlearn.synth import write_quest_log
from questlearn.train._fit import train
from questlearn.train.model import build_model

MEAN, VARIANCE = np.array([0.0, 10.0, 5.0], np.float32), np.array([1.0, 100.0, 4.0], np.float32)
QUANTILES = [np.linspace(-2, 2, 9).tolist(), np.linspace(0, 30, 9).tolist(), np.linspace(1, 9, 9).tolist()]
LOWER, UPPER = np.array([-3.0, 0.0, 1.0]), np.array([3.0, 40.0, 9.0])


def network(preset: str, bounds):
    keras.utils.set_random_seed(3)
    return build_model(MEAN, VARIANCE, 2, code_counts=[4], model=preset, quantiles=QUANTILES, bounds=bounds)


def scores(model, numbers):
    codes = np.arange(len(numbers), dtype=np.int32).reshape(-1, 1) % 4
    return model.predict({"numbers": np.asarray(numbers, np.float32), "codes": codes}, verbose=0)


@pytest.mark.parametrize("preset", ["small", "default"])
def test_a_number_beyond_the_range_scores_like_the_range_end_and_one_inside_as_unbounded(preset):
    bounded = network(preset, (LOWER, UPPER))
    unbounded = network(preset, None)
    unbounded.set_weights(bounded.get_weights())
    inside = np.random.default_rng(0).uniform(LOWER, UPPER, size=(64, 3))
    inside[:3] = [LOWER, UPPER, (LOWER + UPPER) / 2]  # the ends themselves are inside
    np.testing.assert_array_equal(scores(bounded, inside), scores(unbounded, inside))
    for end, far in ((UPPER, UPPER * 100 + 1), (LOWER, LOWER - 100 * np.abs(UPPER))):
        np.testing.assert_allclose(scores(bounded, [far] * 4), scores(bounded, [end] * 4), atol=1e-6, rtol=0)
        assert np.abs(scores(unbounded, [far] * 4) - scores(unbounded, [end] * 4)).max() > 1e-3  # it would move
    nan_row = np.array([[np.nan, 1.0, 2.0]])  # a NaN (no loader gives one) goes on as it did without bounds
    np.testing.assert_array_equal(scores(bounded, nan_row), scores(unbounded, nan_row))


def test_a_column_without_a_range_is_left_unbounded():
    model = network("small", (np.array([-3.0, np.nan, 1.0]), np.array([3.0, np.nan, 9.0])))
    far, end = scores(model, [[0.0, 4000.0, 5.0]]), scores(model, [[0.0, 40.0, 5.0]])
    assert np.abs(far - end).max() > 1e-3


def test_the_range_is_every_rows_min_and_max_widened_to_the_fill_value(id_split, tmp_path):
    copy = tmp_path / "split"
    shutil.copytree(id_split, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    stats = manifest["stats"]
    stats["party_size"].update(count=0, mean=None, min=None, max=None)  # a column without values
    del stats["difficulty"]["min"], stats["difficulty"]["max"]  # a manifest that records no range
    (copy / "manifest.json").write_text(json.dumps(manifest))
    data = QuestSequence(copy, "train", batch_size=None)
    names = data.input_names()["numbers"]
    lower, upper = (dict(zip(names, side)) for side in data.feature_bounds())
    assert data.reader.fill == "zero" and stats["stamina"]["missing"] and stats["stamina"]["min"] > 0
    assert (lower["stamina"], upper["stamina"]) == (0.0, stats["stamina"]["max"])  # a missing stamina enters as 0
    assert (lower["power"], upper["power"]) == (stats["power"]["min"], stats["power"]["max"])
    assert lower["party_size"] == upper["party_size"] == 0.0  # only the fill value was ever seen
    assert np.isnan(lower["difficulty"]) and np.isnan(upper["difficulty"])


@pytest.mark.timeout(900)
def test_training_says_which_columns_it_cannot_bound_and_bounds_the_others(tmp_path, capsys):
    log = write_quest_log(tmp_path / "quests.csv", rows=400, seed=4)
    split_dir = tmp_path / "split"
    model_ready_split(log, split_dir, rows_per_shard=400, val_fraction=0.25, seed=1)
    manifest = json.loads((split_dir / "manifest.json").read_text())
    highest = {column: manifest["stats"][column]["max"] for column in ("power", "stamina")}
    del manifest["stats"]["power"]["min"], manifest["stats"]["power"]["max"]  # as a split made before they were recorded
    (split_dir / "manifest.json").write_text(json.dumps(manifest))
    result = train(split_dir, tmp_path / "model", epochs=1, batch_size=64, workers=1, model="small", verbose=2,
                   saved_model=False)
    printed = capsys.readouterr().out
    x, _ = QuestSequence(split_dir, "validate", batch_size=None, shuffle=False)[0]
    names = QuestSequence(split_dir, "validate", batch_size=None).input_names()["numbers"]
    line = f"bounded numbers: {len(names) - 1} of {len(names)} numbers column(s) are clipped"
    assert line in printed and "records no min/max" in printed, printed
    assert printed.split("bounded numbers:")[1].splitlines()[0].endswith(": power")

    def moved(column: str) -> float:
        high = highest[column]
        at_end, far = x["numbers"][:4].copy(), x["numbers"][:4].copy()
        at_end[:, names.index(column)], far[:, names.index(column)] = high, 100 * high
        outputs = [result.model.predict({"numbers": n, "codes": x["codes"][:4]}, verbose=0) for n in (far, at_end)]
        return float(np.abs(outputs[0] - outputs[1]).max())

    assert moved("stamina") <= 1e-6 and moved("power") > 1e-4
