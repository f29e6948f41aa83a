"""A number beyond the range the split saw scores like the nearest end of it, in every saved form; predict counts it."""

import json

import numpy as np
import pandas as pd
import pytest
from trained import saved_model_scores

from questlearn.data.dataset import QuestSequence
from questlearn.quiet import import_tensorflow, keras
from questlearn.serve.predict import inference_inputs, predict_file


@pytest.fixture(scope="module")
def trained(small_model):
    log, split_dir, result = small_model
    spec = json.loads((result.model_dir / "inference.json").read_text())
    stats = json.loads((split_dir / "manifest.json").read_text())["stats"]
    spec["range"] = {name: (stats[name]["min"], stats[name]["max"]) for name in numeric_features(spec)}  # every row's
    return log, split_dir, result.model_dir, spec


def numeric_features(spec) -> list[str]:
    return [f["name"] for f in spec["features"] if f["kind"] == "numeric"]


def beyond(spec, side: str) -> dict:
    """Per numeric feature: a value 100 times its range's size past the range's ``side`` end, and that end."""
    values = {}
    for name in numeric_features(spec):
        low, high = spec["range"][name]
        far = 100 * max(abs(low), abs(high), 1.0)
        values[name] = (high + far, high) if side == "above" else (low - far, low)
    return values


def raw_rows(log, values: dict, which: int) -> pd.DataFrame:
    """Four rows of the log, every numeric feature set to ``values[name][which]``."""
    rows = pd.read_csv(log, nrows=4)
    for name, pair in values.items():
        rows[name] = pair[which]
    return rows


@pytest.mark.timeout(900)
@pytest.mark.parametrize("side", ["above", "below"])
def test_model_keras_scores_a_number_beyond_the_range_like_the_range_end(trained, side):
    _, split_dir, model_dir, spec = trained
    x, _ = QuestSequence(split_dir, "validate", batch_size=None, shuffle=False)[0]
    model = keras.saving.load_model(model_dir / "model.keras")
    values = beyond(spec, side)
    outputs = []
    for which in (0, 1):
        numbers = x["numbers"][:4].copy()
        for name, pair in values.items():
            numbers[:, spec["numbers"].index(name)] = pair[which]
        outputs.append(model.predict({"numbers": numbers, "codes": x["codes"][:4]}, verbose=0))
    np.testing.assert_allclose(outputs[0], outputs[1], atol=1e-6, rtol=0)


@pytest.mark.timeout(900)
@pytest.mark.parametrize("side", ["above", "below"])
def test_inference_keras_scores_a_number_beyond_the_range_like_the_range_end(trained, side):
    log, _, model_dir, spec = trained
    model = keras.saving.load_model(model_dir / "inference.keras")
    values = beyond(spec, side)
    far, end = (model.predict(inference_inputs(raw_rows(log, values, which), model_dir), verbose=0) for which in (0, 1))
    np.testing.assert_allclose(far, end, atol=1e-6, rtol=0)


@pytest.mark.timeout(900)
@pytest.mark.parametrize("side", ["above", "below"])
def test_saved_model_scores_a_number_beyond_the_range_like_the_range_end(trained, side):
    tf = import_tensorflow()
    log, _, model_dir, spec = trained
    serve = tf.saved_model.load(str(model_dir / "saved_model")).signatures["serving_default"]
    values = beyond(spec, side)
    np.testing.assert_allclose(saved_model_scores(serve, spec, raw_rows(log, values, 0)),
                               saved_model_scores(serve, spec, raw_rows(log, values, 1)), atol=1e-6, rtol=0)


@pytest.mark.timeout(900)
def test_predict_counts_the_values_outside_the_training_range_per_column(trained, tmp_path, capsys):
    log, _, model_dir, spec = trained
    rows = pd.read_csv(log, nrows=20)
    (power_low, power_high), (stamina_low, _) = spec["range"]["power"], spec["range"]["stamina"]
    rows.loc[[1, 4, 7], "power"] = 50 * power_high  # a glitch far above the range
    rows.loc[9, "power"] = power_high  # the range's end itself is inside it
    rows.loc[[2, 3], "stamina"] = stamina_low - 999999  # a sentinel below it
    rows.to_csv(tmp_path / "rows.csv", index=False)
    capsys.readouterr()
    assert predict_file(model_dir, tmp_path / "rows.csv", tmp_path / "out.csv") == 20
    printed = capsys.readouterr().err
    assert f"power: 3 values outside the training range [{power_low:.6g}, {power_high:.6g}]" in printed, printed
    assert "stamina: 2 values outside the training range" in printed, printed
    assert "player_level: " not in printed and "difficulty: " not in printed, printed
