"""inference.keras: same probabilities as the training model, loads without questlearn."""

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from helpers import run_env
from trained import saved_model_scores

from questlearn.data.dataset import QuestSequence
from questlearn.schema.encoding import Encoding
from questlearn.serve._input_rows import open_input
from questlearn.serve.predict import Predictor, predict_frame


@pytest.fixture(scope="module")
def trained(small_model):
    return small_model


def validate_rows(split_dir):
    """The validate subset as raw parsed columns (its CSV shard) and as the training loader encodes it."""
    manifest = json.loads((split_dir / "manifest.json").read_text())
    (shard,) = manifest["subsets"]["validate"]["shards"]
    data = QuestSequence(split_dir, "validate", batch_size=None, shuffle=False)
    assert data.reader.fill == "mean"
    x, labels = data[0]
    return split_dir / shard["files"]["csv"]["name"], x, labels


@pytest.mark.timeout(900)
def test_inference_model_gives_the_training_models_probabilities(trained):
    _, split_dir, result = trained
    csv_shard, x, _ = validate_rows(split_dir)
    predictor = Predictor(result.model_dir)
    stream = open_input(csv_shard, predictor.spec["na_values"])
    tables = [block.table for block in stream.blocks(predictor.column_types(stream.names))]
    raw = np.concatenate([predictor.raw_outputs(t) for t in tables])
    expected = result.model.predict(x, verbose=0)
    assert raw.shape == expected.shape and len(raw) > 900
    assert sum(int(t["stamina"].null_count) for t in tables) > 10  # missing values were filled inside the model
    np.testing.assert_allclose(raw, expected, atol=1e-5)


@pytest.mark.timeout(900)
def test_unseen_and_missing_categories_are_encoded_as_in_training(trained):
    log, split_dir, result = trained
    rows = pd.read_csv(log, nrows=3)
    unseen, missing = rows.copy(), rows.copy()
    unseen["quest_type"] = "never-seen-before"
    missing["quest_type"] = None
    missing.loc[0, "stamina"] = np.nan
    unseen.loc[0, "stamina"] = np.nan
    spec = json.loads((result.model_dir / "inference.json").read_text())
    encoding = Encoding.from_record(json.loads((split_dir / "manifest.json").read_text())["schema"]["encoding"])
    assert (spec["numbers"], spec["codes"]) == (encoding.numeric, encoding.code_columns)
    assert spec["columns"] == encoding.numeric + encoding.code_columns and spec["code_counts"] == encoding.code_counts
    assert spec["fill_values"] == dict(zip(encoding.numeric, encoding.fill_values))
    assert spec["hash_buckets"] == {"quest_type": 1}
    for frame in (unseen, missing):  # unseen: the out-of-vocabulary code 1; missing: code 0; stamina: the fill
        numbers, codes, _ = encoding.encode({n: frame[n].to_numpy(np.float64) for n in encoding.numeric},
                                            {n: pa.array(frame[n], pa.string()) for n in encoding.categorical})
        assert np.all(codes[:, encoding.code_columns.index("quest_type")] == (1 if frame is unseen else 0))
        assert numbers[0, encoding.numeric.index("stamina")] == np.float32(spec["fill_values"]["stamina"])
        np.testing.assert_allclose(predict_frame(result.model_dir, frame)[["p_0", "p_1"]].to_numpy(),
                                   result.model.predict({"numbers": numbers, "codes": codes.astype(np.int32)}, verbose=0),
                                   atol=1e-5)


@pytest.mark.timeout(900)
def test_both_models_load_and_predict_where_questlearn_cannot_be_imported(trained, tmp_path):
    log, split_dir, result = trained
    _, x, _ = validate_rows(split_dir)
    rows = pd.read_csv(log, nrows=5)
    expected_inference = predict_frame(result.model_dir, rows)[["p_0", "p_1"]].to_numpy()
    np.savez(tmp_path / "x.npz", **{block: values[:5] for block, values in x.items()})
    code = (
        "import sys, json\n"
        "sys.modules['questlearn'] = None  # any import of questlearn now fails\n"
        "import numpy as np, pandas as pd, keras, tensorflow as tf\n"
        "model_dir, log, x = sys.argv[1:4]\n"
        "x = dict(np.load(x))  # the numbers and codes blocks\n"
        "inference = keras.saving.load_model(model_dir + '/inference.keras')\n"
        "spec = json.load(open(model_dir + '/inference.json'))\n"
        "rows = pd.read_csv(log, nrows=5)\n"
        "inputs = {f['name']: tf.constant(rows[f['name']].to_numpy('float32').reshape(-1, 1)) if f['kind'] == 'numeric'\n"
        "          else tf.constant(rows[f['name']].fillna('').astype(str).to_numpy(object).reshape(-1, 1)) for f in spec['features']}\n"
        "trained = keras.saving.load_model(model_dir + '/model.keras')\n"
        "print('RESULT', json.dumps({'inference': np.asarray(inference.predict(inputs, verbose=0)).tolist(),\n"
        "                            'trained': trained.predict(x, verbose=0).tolist(),\n"
        "                            'metrics': trained.metrics_names}))\n"
    )
    done = subprocess.run([sys.executable, "-c", code, str(result.model_dir), str(log), str(tmp_path / "x.npz")],
                          capture_output=True, text=True, env=run_env(), timeout=720, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Traceback" not in done.stderr and "Skipping variable loading" not in done.stderr, done.stderr[-2000:]
    got = json.loads(done.stdout.split("RESULT ", 1)[1])
    np.testing.assert_allclose(got["inference"], expected_inference, atol=1e-5)
    np.testing.assert_allclose(got["trained"], result.model.predict({b: v[:5] for b, v in x.items()}, verbose=0), atol=1e-5)


def test_columns_named_like_graph_operations_and_with_slashes(tmp_path):
    import keras
    import tensorflow as tf

    from questlearn.schema.encoding import fingerprint_buckets
    from questlearn.serve.export import build_inference_model

    spec = {"features": [{"name": "where", "kind": "numeric"}, {"name": "isnan", "kind": "numeric"},
                         {"name": "cast", "kind": "numeric"},
                         {"name": "get_item", "kind": "categorical"}, {"name": "a/b c", "kind": "categorical"},
                         {"name": "never_seen", "kind": "categorical"}, {"name": "string_lookup", "kind": "categorical"}],
            "fill_values": {"where": 1.0, "isnan": 2.0, "cast": 3.0},
            "categories": {"get_item": ["x", "y"], "a/b c": ["u"], "never_seen": [], "string_lookup": ["p", "q"]},
            "hash_buckets": {"get_item": 1, "a/b c": 1, "never_seen": 1, "string_lookup": 64},
            "numbers": ["where", "isnan", "cast"], "codes": ["get_item", "a/b c", "never_seen", "string_lookup"],
            "code_counts": [4, 3, 2, 67], "datetimes": {}}
    blocks = {"numbers": keras.Input((3,), name="numbers"), "codes": keras.Input((4,), dtype="int32", name="codes")}
    joined = keras.layers.Concatenate()([blocks["numbers"], keras.ops.cast(blocks["codes"], "float32")])
    identity = keras.Model(blocks, joined, name="quest_mlp")  # the blocks the trained network would get, side by side
    build_inference_model(identity, spec).save(tmp_path / "m.keras")
    model = keras.saving.load_model(tmp_path / "m.keras")
    rows = {"where": tf.constant([[np.nan], [5.0]]), "isnan": tf.constant([[1.0], [np.nan]]),
            "cast": tf.constant([[np.nan], [7.0]]),
            "get_item": tf.constant([["y"], ["unseen"]]), "a/b c": tf.constant([["u"], [""]]),
            "never_seen": tf.constant([["v"], [""]]), "string_lookup": tf.constant([["q"], ["a value hashed"]])}
    # Codes: 0 missing (""), 1..H the hashed out-of-vocabulary buckets, then the vocabulary.
    hashed = 1 + int(fingerprint_buckets(["a value hashed"], 64)[0])
    np.testing.assert_array_equal(model.predict(rows, verbose=0), [[1, 1, 3, 3, 2, 1, 66], [5, 2, 7, 1, 0, 0, hashed]])


@pytest.mark.timeout(900)
def test_without_a_saved_model_train_removes_the_last_runs_and_export_writes_one_later(trained, tmp_path):
    """``saved_model=False`` (``--no-saved-model``) writes every other model file and no ``saved_model/``, removes
    one left by an earlier run in the same folder, and ``questlearn export`` writes it afterwards."""
    import tensorflow as tf

    from questlearn.cli import main
    from questlearn.cli._parser import build_parser
    from questlearn.train._fit import train

    log, split_dir, _ = trained
    model_dir = tmp_path / "model"
    train(split_dir, model_dir, epochs=1, batch_size=256, workers=1, verbose=0)
    assert (model_dir / "saved_model" / "saved_model.pb").exists()
    result = train(split_dir, model_dir, epochs=1, batch_size=256, workers=1, verbose=0, saved_model=False)
    assert {"model.keras", "inference.keras", "inference.json", "best.keras", "history.json"} <= {
        path.name for path in model_dir.iterdir()}
    assert not (model_dir / "saved_model").exists()  # the first run's would not match this run's models
    command = ["train", str(split_dir), "--model-dir", str(model_dir)]
    assert build_parser().parse_args([*command, "--no-saved-model"]).saved_model is False
    assert build_parser().parse_args(command).saved_model is True
    assert main(["export", str(model_dir), "--no-progress"]) in (0, None)
    serve = tf.saved_model.load(str(model_dir / "saved_model")).signatures["serving_default"]
    spec = json.loads((model_dir / "inference.json").read_text())
    rows = pd.read_csv(log, nrows=5)
    np.testing.assert_allclose(saved_model_scores(serve, spec, rows),
                               predict_frame(result.model_dir, rows)[["p_0", "p_1"]].to_numpy(), atol=1e-5)
