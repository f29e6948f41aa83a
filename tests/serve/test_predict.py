"""predict and evaluate: streaming, order, ids, missing columns, bad rows, agreement with model.evaluate."""

import json

import numpy as np
import pandas as pd
import pytest
from helpers import ID_COLUMNS
from splits import model_ready_split

from questlearn.data.dataset import QuestSequence
from questlearn.io.csvscan import CsvFormatError
from questlearn.serve.evaluate import evaluate
from questlearn.serve.predict import predict_file, predict_frame
from questlearn.synth import corrupt, write_quest_log


@pytest.fixture(scope="module")
def trained(small_model):
    return small_model


@pytest.mark.timeout(900)
def test_predict_streams_every_row_in_order_with_ids_and_label(trained, tmp_path):
    _, _, result = trained
    # The nasty log: BOM, quoted commas/quotes/newlines in an extra (ignored) column, many small blocks.
    log = write_quest_log(tmp_path / "nasty.csv", rows=2500, seed=9, nasty=True)
    rows = predict_file(result.model_dir, log, tmp_path / "out.csv", block_size=16 * 1024)
    source = pd.read_csv(log, encoding="utf-8-sig")
    out = pd.read_csv(tmp_path / "out.csv")
    assert rows == len(out) == len(source) == 2500
    assert list(out.columns) == ["attempt_id", "player_id", "p_0", "p_1", "predicted", "cleared"]
    assert (out["attempt_id"] == source["attempt_id"]).all() and (out["player_id"] == source["player_id"]).all()
    assert (out["cleared"] == source["cleared"]).all()
    np.testing.assert_allclose(out["p_0"] + out["p_1"], 1.0, atol=1e-5)
    assert (out["predicted"] == out[["p_0", "p_1"]].to_numpy().argmax(axis=1)).all()
    # The same rows through the DataFrame entry point give the same probabilities.
    frame = predict_frame(result.model_dir, source)
    np.testing.assert_allclose(frame[["p_0", "p_1"]].to_numpy(), out[["p_0", "p_1"]].to_numpy(), atol=1e-5)
    assert (accuracy := (out["predicted"] == out["cleared"]).mean()) > 0.6, accuracy


@pytest.mark.timeout(900)
def test_dict_input_missing_values_tokens_and_unseen_categories(trained):
    log, _, result = trained
    rows = pd.read_csv(log, nrows=4)
    columns = {name: rows[name].tolist() for name in rows.columns if name != "cleared"}
    columns["quest_type"] = ["fetch", "unheard-of", None, ""]
    columns["stamina"] = [1.0, None, float("nan"), 50.0]
    scored = predict_frame(result.model_dir, columns)
    assert set(scored) == {"attempt_id", "player_id", "p_0", "p_1", "predicted"}
    assert scored["attempt_id"].tolist() == rows["attempt_id"].tolist()
    p = np.stack([scored["p_0"], scored["p_1"]], axis=1)
    assert np.isfinite(p).all()
    # None and the "" token are missing (all zeros); an unseen value takes the quest_type=<other> column.
    same = {name: [columns[name][1]] * 4 for name in columns}
    same["quest_type"] = [None, "", "unheard-of", "never-either"]
    q = predict_frame(result.model_dir, same)["p_1"]
    np.testing.assert_allclose(q[1], q[0], atol=1e-6)
    np.testing.assert_allclose(q[3], q[2], atol=1e-6)


@pytest.mark.timeout(900)
def test_a_missing_feature_column_is_named(trained, tmp_path):
    log, _, result = trained
    pd.read_csv(log, nrows=10).drop(columns=["power"]).to_csv(tmp_path / "no_power.csv", index=False)
    with pytest.raises(ValueError, match="no column 'power'"):
        predict_file(result.model_dir, tmp_path / "no_power.csv", tmp_path / "out.csv")
    with pytest.raises(ValueError, match="no column 'power'"):
        predict_frame(result.model_dir, pd.read_csv(tmp_path / "no_power.csv"))
    assert not (tmp_path / "out.csv").exists()


@pytest.mark.timeout(900)
@pytest.mark.parametrize("kind", ["ragged_row", "not_a_number", "unterminated_quote"])
def test_malformed_rows_stop_with_file_line_and_byte(trained, tmp_path, kind):
    log, _, result = trained
    line, byte = corrupt(log, tmp_path / "bad.csv", kind, row=1700)
    with pytest.raises(CsvFormatError) as caught:
        predict_file(result.model_dir, tmp_path / "bad.csv", tmp_path / "out.csv", block_size=8192)
    assert (caught.value.path, caught.value.line) == (str(tmp_path / "bad.csv"), line)
    if kind != "not_a_number":  # conversion errors are located at the row's start
        assert caught.value.byte_offset == byte
    assert not (tmp_path / "out.csv").exists() and not list(tmp_path.glob(".out.csv*"))


@pytest.mark.timeout(900)
def test_evaluate_agrees_with_model_evaluate_and_its_auc_is_exact(trained):
    _, split_dir, result = trained
    data = QuestSequence(split_dir, "validate", batch_size=256, shuffle=False)
    expected = result.model.evaluate(data, verbose=0, return_dict=True)
    p1 = result.model.predict(data, verbose=0)[:, 1].astype(np.float64)
    labels = np.concatenate([data[i][1] for i in range(len(data))]).reshape(-1)
    pairs = p1[labels == 1][:, None] - p1[labels == 0][None, :]
    exact_auc = ((pairs > 0).sum() + 0.5 * (pairs == 0).sum()) / pairs.size  # the definition, pair by pair
    manifest = json.loads((split_dir / "manifest.json").read_text())
    (shard,) = manifest["subsets"]["validate"]["shards"]
    for source in (split_dir, split_dir / shard["files"]["csv"]["name"]):
        report = evaluate(result.model_dir, source, block_size=16 * 1024)
        assert report["rows"] == manifest["subsets"]["validate"]["rows"]
        for key in ("loss", "accuracy"):
            assert report[key] == pytest.approx(expected[key], abs=1e-4), (source, key)
        assert report["auc"] == pytest.approx(exact_auc, abs=1e-4), source  # the file is read through inference.keras
        assert report["auc_max_error"] == 0.0 and report["auc_classes_absent"] == []
        matrix = np.asarray(report["confusion_matrix"])
        assert matrix.sum() == report["rows"]
        assert np.trace(matrix) / matrix.sum() == pytest.approx(report["accuracy"], abs=1e-6)
        counts = [shard["label_counts"].get(c, 0) for c in report["classes"]]
        assert matrix.sum(axis=1).tolist() == counts
        assert report["majority_baseline"] == pytest.approx(max(counts) / sum(counts))


@pytest.mark.timeout(900)
def test_evaluate_gives_no_auc_for_rows_of_one_class_and_names_the_absent_one(trained, tmp_path):
    log, _, result = trained
    rows = pd.read_csv(log, nrows=400)
    rows[rows["cleared"] == 1].to_csv(tmp_path / "cleared_only.csv", index=False)
    report = evaluate(result.model_dir, tmp_path / "cleared_only.csv")
    assert report["auc"] is None and report["auc_classes_absent"] == ["0"]
    assert report["auc_over"] == "undefined: the scored rows hold only class '1'"
    assert report["rows"] == (rows["cleared"] == 1).sum()


@pytest.mark.timeout(900)
def test_evaluate_needs_the_label(trained, tmp_path):
    log, _, result = trained
    pd.read_csv(log, nrows=10).drop(columns=["cleared"]).to_csv(tmp_path / "unlabelled.csv", index=False)
    with pytest.raises(ValueError, match="no label column 'cleared'"):
        evaluate(result.model_dir, tmp_path / "unlabelled.csv")


@pytest.mark.timeout(900)
def test_evaluate_refuses_a_split_encoded_otherwise_than_the_models(trained, tmp_path):
    log, _, result = trained
    other = tmp_path / "zero_filled"
    model_ready_split(log, other, fill="zero", rows_per_shard=4000, val_fraction=0.25, seed=1, id_columns=ID_COLUMNS)
    with pytest.raises(ValueError, match="encodes other columns .*than the split the model .* was trained on"):
        evaluate(result.model_dir, other)


@pytest.mark.timeout(900)
def test_predict_counts_unseen_categories_and_missing_numbers_per_column_and_prints_them(trained, tmp_path, capsys):
    from questlearn.cli import main

    log, _, result = trained
    frame = pd.read_csv(log).head(300)
    frame.loc[:11, "quest_type"] = [f"brand-new-{i}" for i in range(12)]  # 12 values training never saw
    frame.loc[100:139, "power"] = np.nan  # 40 missing powers
    frame.to_csv(tmp_path / "new.csv", index=False)
    missing_stamina = int(frame["stamina"].isna().sum())
    capsys.readouterr()
    assert main(["predict", str(result.model_dir), str(tmp_path / "new.csv"), str(tmp_path / "out.csv"), "--no-progress"]) == 0
    notes = [line for line in capsys.readouterr().err.splitlines() if line.startswith("predict: ")]
    assert "predict: quest_type: 12 values not seen in training (hashed into its" in "\n".join(notes)
    power = next(line for line in notes if line.startswith("predict: power:"))
    assert power.startswith("predict: power: 40 missing, filled with the training mean (")
    assert missing_stamina and any(line.startswith(f"predict: stamina: {missing_stamina} missing") for line in notes)
    assert not any(line.startswith(("predict: difficulty:", "predict: player_level:")) for line in notes)


@pytest.mark.timeout(900)
def test_predict_says_what_it_does_first_and_never_imports_jsonschema(trained, tmp_path):
    import subprocess
    import sys

    from helpers import REPO, run_env

    log, _, result = trained
    done = subprocess.run([sys.executable, "-X", "importtime", "-m", "questlearn", "predict", str(result.model_dir),
                           str(log), str(tmp_path / "out.csv")], capture_output=True, text=True, timeout=720,
                          env=run_env(), cwd=REPO)
    assert done.returncode == 0, done.stderr[-3000:]
    imports = [line for line in done.stderr.splitlines() if line.startswith("import time:")]
    said = [line for line in done.stderr.splitlines() if line.strip() and not line.startswith("import time:")]
    assert said[0] == f"questlearn predict: loading the model in {result.model_dir}, then scoring {log} into " \
                      f"{tmp_path / 'out.csv'} ..."
    before = done.stderr[:done.stderr.index(said[0])]
    assert "keras" not in before and "tensorflow" not in before  # said before the slow imports
    assert imports and not any(line.split("|")[-1].strip().startswith("jsonschema") for line in imports)
