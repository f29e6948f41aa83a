"""The exported model takes raw columns (numbers, category strings, timestamps) and needs no questlearn."""

import json

import numpy as np
import pandas as pd
import pytest

from helpers import run_child
from questlearn.data.dataset import QuestSequence
from questlearn.manifest import load_manifest
from questlearn.serve._model_files import TRAINED_MODEL, load_model_files
from questlearn.serve.predict import inference_inputs, predict_file, predict_frame
from questlearn.split import split_csv
from questlearn.train._fit import train

CITIES = ["oslo", "rome", "lima", "kyiv", "pune"]
ZONES = ["Z", "+05:30", "-08:00", "", "-0300"]


def raw_log(path, rows=3000, seed=0):
    """A log with a numeric column (some missing), a small and a large category, a timestamp with zones."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({
        "amount": np.where(rng.random(rows) < 0.1, np.nan, rng.normal(50, 20, rows).round(2)),
        "city": rng.choice(CITIES + [None], rows),
        "shop": [f"shop{v}" for v in rng.zipf(1.3, rows) % 400],
        "when": [None if rng.random() < 0.05 else
                 f"2021-{rng.integers(1, 13):02d}-{rng.integers(1, 29):02d}T{rng.integers(0, 24):02d}:"
                 f"{rng.integers(0, 60):02d}:00{ZONES[rng.integers(0, 5)]}" for _ in range(rows)],
    })
    hour = pd.Series([int(w[11:13]) if isinstance(w, str) else 12 for w in frame["when"]])
    score = (frame["amount"].fillna(50) - 50) / 20 + (frame["city"] == "rome") * 1.5 + (hour > 12) * 1.0
    frame["bought"] = (score + rng.normal(0, 0.5, rows) > 0.7).astype(int)
    frame.to_csv(path, index=False)
    return frame


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    root = tmp_path_factory.mktemp("served")
    raw_log(root / "log.csv")
    split_csv(root / "log.csv", root / "split", label="bought", max_categories=40, progress=False, verbose=False)
    train(root / "split", root / "model", epochs=2, batch_size=256, hidden=(16,), verbose=0)
    return root


def new_rows():
    """Raw rows with unseen categories, missing values of every kind, and timestamps in several zones."""
    return pd.DataFrame({
        "amount": [10.0, None, 75.5, 50.0, -3.0, 120.0],
        "city": ["rome", "atlantis", None, "oslo", "", "lima"],
        "shop": ["shop1", "shop399", "never-seen", "shop7", None, "another-new"],
        "when": ["2022-03-01T18:30:00Z", None, "2019-12-31T23:59:59+05:30", "2020-02-29T00:00:00-0800",
                 "2021-07-04 09:15:00", "1969-12-31T23:00:00-03:00"],
    })


def test_the_inference_model_agrees_with_predict_on_raw_rows_in_a_process_without_questlearn(served, tmp_path):
    frame = new_rows()
    expected = predict_frame(served / "model", frame)
    probabilities = expected[["p_0", "p_1"]].to_numpy()
    rows = {"columns": {c: [None if pd.isna(v) else v for v in frame[c]] for c in frame},
            "kinds": {"amount": "numeric", "city": "categorical", "shop": "categorical", "when": "datetime"}}
    (tmp_path / "rows.json").write_text(json.dumps(rows))
    result = run_child("serve_without_questlearn.py", served / "model", tmp_path / "rows.json", tmp_path / "out.json",
                       timeout=720, env={**__import__("helpers").run_env(), "PYTHONPATH": ""},
                       fresh=True)  # no questlearn module loaded at all
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads((tmp_path / "out.json").read_text())
    np.testing.assert_allclose(np.asarray(out["keras"]), probabilities, atol=1e-5)
    np.testing.assert_allclose(np.asarray(out["saved_model"]), probabilities, atol=1e-5)


def test_model_predict_takes_the_documented_inputs(served):
    import keras

    frame = new_rows()
    model = keras.saving.load_model(served / "model" / "inference.keras")
    outputs = model.predict(inference_inputs(frame, served / "model"), verbose=0)
    np.testing.assert_allclose(outputs, predict_frame(served / "model", frame)[["p_0", "p_1"]].to_numpy(), atol=1e-6)


def test_predict_on_the_source_agrees_with_the_training_path_on_every_validate_row(served, tmp_path):
    manifest = load_manifest(served / "split")
    assert manifest["stats"]["shop"]["oov"] > 0  # hashed values are among the rows compared
    data = QuestSequence(served / "split", "validate", batch_size=4096, shuffle=False)
    trained = load_model_files(served / "model", TRAINED_MODEL)[1]
    from_shards = np.concatenate([trained.predict_on_batch(data[i][0]) for i in range(len(data))])
    rows = np.concatenate([np.load(served / "split" / s["files"]["rows"]["name"])
                           for s in manifest["subsets"]["validate"]["shards"]])
    predict_file(served / "model", served / "log.csv", tmp_path / "scored.csv")
    scored = pd.read_csv(tmp_path / "scored.csv")
    np.testing.assert_allclose(scored[["p_0", "p_1"]].to_numpy()[rows], from_shards, atol=1e-5)


def test_a_timestamp_the_split_format_cannot_read_is_refused_naming_its_row(served):
    from questlearn.errors import InputFormatError

    frame = new_rows()
    frame.loc[3, "when"] = "next tuesday"
    with pytest.raises(InputFormatError, match=r"row 3.*'when'.*next tuesday"):
        predict_frame(served / "model", frame)
