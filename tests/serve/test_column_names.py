"""Any column name a CSV header can hold goes through split, train, predict, evaluate and both exported models."""

import contextlib
import io

import numpy as np
import pandas as pd
import pytest

from questlearn.errors import SchemaError
from questlearn.serve.evaluate import evaluate
from questlearn.serve._model_files import read_inference_spec
from questlearn.serve.export import export_saved_model
from questlearn.serve.predict import inference_inputs, predict_file, predict_frame
from questlearn.split import split_csv
from questlearn.train._fit import train

# Python keywords and builtins, names TensorFlow gives its own arguments and operations, Unicode,
# spaces, punctuation, a leading digit, a slash, and two names that differ only in their case.
NUMERIC = ["class", "lambda", "self", "saver_filename", "cast", 'prix, "unitaire" (€)', "a/b", "价格"]
CATEGORICAL = ["from", "città", "Type", "questlearn_numbers"]
DATETIME = "2nd.visit-date"
LABEL = "is"


def awkward_log(path, rows=300, seed=0):
    """A labelled log whose feature columns are all named awkwardly (and an ``id`` column)."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({"id": [f"r{i}" for i in range(rows)]})
    for position, name in enumerate(NUMERIC):
        frame[name] = np.where(rng.random(rows) < 0.05, np.nan, rng.normal(position, 1, rows).round(3))
    for name in CATEGORICAL:
        frame[name] = rng.choice(["x", "y", "ü z", None], rows)
    frame[DATETIME] = [f"2021-{rng.integers(1, 13):02d}-{rng.integers(1, 29):02d}T{rng.integers(0, 24):02d}:00:00"
                       for _ in range(rows)]
    frame[LABEL] = ((frame["class"].fillna(0) + (frame["from"] == "x")) > 0.5).astype(int)
    frame.to_csv(path, index=False)
    return frame


@pytest.fixture(scope="module")
def awkward(tmp_path_factory):
    root = tmp_path_factory.mktemp("names")
    frame = awkward_log(root / "log.csv")
    split_csv(root / "log.csv", root / "split", label=LABEL, id_columns=["id"], categorical_columns=CATEGORICAL,
              datetime_columns=[DATETIME], progress=False, verbose=False)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        train(root / "split", root / "model", epochs=1, batch_size=64, hidden=(8,), workers=1, verbose=2)
    return root, frame, printed.getvalue()


def test_the_saved_models_signature_keeps_every_name_tensorflow_allows_and_records_the_others(awkward):
    import tensorflow as tf

    root, _, printed = awkward
    keys = read_inference_spec(root / "model")["signature_keys"]
    signature = tf.saved_model.load(str(root / "model" / "saved_model")).signatures["serving_default"]
    assert set(signature.structured_input_signature[1]) == set(keys.values())
    assert list(keys) == [f["name"] for f in read_inference_spec(root / "model")["features"]]
    assert keys["saver_filename"] == "saver_filename" and keys["cast"] == "cast" and keys["Type"] == "Type"
    assert keys["class"] == "class_" and keys["lambda"] == "lambda_" and keys["self"] == "self_"
    assert keys["a/b"] == "a_b" and keys[DATETIME] == "column_2nd_visit_date"
    assert keys["città"] == "citta" and keys['prix, "unitaire" (€)'] == "prix___unitaire___u20ac_"
    assert keys["价格"] == "u4ef7u683c"
    (said,) = [line for line in printed.splitlines() if "serving signature" in line]  # train says what it rewrote
    assert "'class' as 'class_'" in said and "'a/b' as 'a_b'" in said and "saver_filename" not in said


def test_inference_json_records_the_input_layer_of_each_column(awkward):
    import keras

    root, _, _ = awkward
    layers = read_inference_spec(root / "model")["input_layers"]
    model = keras.saving.load_model(root / "model" / "inference.keras")
    assert {column: tensor.name for column, tensor in model.input.items()} == layers
    assert all(layers[column] == column for column in ["class", "价格", 'prix, "unitaire" (€)', DATETIME])
    assert layers["a/b"] == "a_b" and layers["questlearn_numbers"] == "column_questlearn_numbers"


def test_both_exported_models_give_predict_frames_probabilities_on_the_real_column_names(awkward):
    import keras
    import tensorflow as tf

    root, frame, _ = awkward
    model_dir = root / "model"
    rows = frame.head(40)
    expected = predict_frame(model_dir, rows)[["p_0", "p_1"]].to_numpy()
    from_keras = keras.saving.load_model(model_dir / "inference.keras").predict(inference_inputs(rows, model_dir),
                                                                                  verbose=0)
    np.testing.assert_allclose(from_keras, expected, atol=1e-5)
    keys = read_inference_spec(model_dir)["signature_keys"]
    serving = {keys[name]: tf.constant(rows[name].to_numpy(np.float32)) for name in NUMERIC}
    serving.update({keys[name]: tf.constant(rows[name].fillna("").astype(str).to_numpy())
                    for name in CATEGORICAL + [DATETIME]})
    signature = tf.saved_model.load(str(model_dir / "saved_model")).signatures["serving_default"]
    np.testing.assert_allclose(signature(**serving)["probabilities"].numpy(), expected, atol=1e-5)


def test_predict_evaluate_and_export_read_the_awkward_names(awkward, tmp_path):
    root, frame, _ = awkward
    assert predict_file(root / "model", root / "log.csv", tmp_path / "scored.csv") == len(frame)
    scored = pd.read_csv(tmp_path / "scored.csv")
    assert list(scored.columns) == ["id", "p_0", "p_1", "predicted", LABEL]
    assert scored["id"].tolist() == frame["id"].tolist()
    assert evaluate(root / "model", root / "split")["rows"] > 0
    export_saved_model(root / "model", target=tmp_path / "exported")
    assert (tmp_path / "exported" / "saved_model.pb").is_file()


@pytest.mark.parametrize("first, second", [("a b", "a_b"), ("Price", "price"), ("é", "e")])
def test_two_columns_with_one_serving_key_are_refused_before_any_training(tmp_path, first, second):
    rng = np.random.default_rng(1)
    pd.DataFrame({first: rng.normal(size=60), second: rng.normal(size=60),
                  "cleared": rng.integers(0, 2, 60)}).to_csv(tmp_path / "log.csv", index=False)
    split_csv(tmp_path / "log.csv", tmp_path / "split", progress=False, verbose=False)
    with pytest.raises(SchemaError) as refused:
        train(tmp_path / "split", tmp_path / "model", epochs=1, batch_size=32, hidden=(4,), workers=1, verbose=0)
    message = str(refused.value)
    assert "\n" not in message and repr(first) in message and repr(second) in message
    assert not (tmp_path / "model").exists()  # nothing trained, nothing written
