"""Training: beats the baseline, resumes after interruption, works on real data and other backends."""

import json
import subprocess
import sys

import keras
import numpy as np
import pandas as pd
import pytest
from helpers import ID_COLUMNS, run_env, zero_inputs
from splits import model_ready_split

from questlearn.cli import main
from questlearn.synth import write_quest_log
from questlearn.train._fit import read_history_csv, train
from questlearn.train.plots import plot_history


@pytest.fixture(scope="module")
def quest_split(tmp_path_factory):
    root = tmp_path_factory.mktemp("train")
    log = write_quest_log(root / "quests.csv", rows=12_000, seed=21)
    model_ready_split(log, root / "split", rows_per_shard=2000, seed=0, id_columns=ID_COLUMNS)
    return root / "split"


@pytest.mark.timeout(900)
def test_model_clearly_beats_the_majority_baseline(quest_split, tmp_path):
    result = train(quest_split, tmp_path / "model", epochs=4, batch_size=256, workers=2, verbose=0, saved_model=False)
    assert 0.5 < result.majority_baseline < 0.65
    assert result.best_val_accuracy > result.majority_baseline + 0.1
    assert result.history["val_auc"][-1] > 0.75
    assert (tmp_path / "model" / "best.keras").exists() and (tmp_path / "model" / "model.keras").exists()
    reloaded = keras.saving.load_model(tmp_path / "model" / "model.keras")
    x = zero_inputs(reloaded, 3)
    assert sorted(x) == ["codes", "numbers"]
    np.testing.assert_allclose(reloaded.predict(x, verbose=0), result.model.predict(x, verbose=0), rtol=1e-5)


class StopAfterEpoch(keras.callbacks.Callback):
    """Simulates a crash after a given epoch finished (and was backed up)."""

    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch

    def on_epoch_end(self, epoch, logs=None):
        if epoch == self.epoch:
            raise RuntimeError("simulated crash")


class RecordEpochs(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.epochs = []

    def on_epoch_begin(self, epoch, logs=None):
        self.epochs.append(epoch)


@pytest.mark.timeout(900)
def test_interrupted_training_resumes_the_remaining_epochs(quest_split, tmp_path):
    model_dir = tmp_path / "model"
    with pytest.raises(RuntimeError, match="simulated crash"):
        train(quest_split, model_dir, epochs=4, batch_size=512, verbose=0, patience=10, extra_callbacks=[StopAfterEpoch(1)],
              saved_model=False)
    assert read_history_csv(model_dir / "history.csv")["epoch"] == [0, 1]
    recorder = RecordEpochs()
    result = train(quest_split, model_dir, epochs=4, batch_size=512, verbose=0, patience=10, extra_callbacks=[recorder],
                   saved_model=False)
    # saved after epoch 0 only (epoch 1 ended within 30 s of that save): epoch 1 again, then the remaining ones,
    # and epoch 1's row of the crashed run is not left twice in the history
    assert recorder.epochs == [1, 2, 3]
    assert result.history["epoch"] == [0, 1, 2, 3]
    assert not (model_dir / "backup").exists()  # removed after a finished run


@pytest.mark.timeout(900)
def test_history_round_trips_and_plots(quest_split, tmp_path):
    train(quest_split, tmp_path / "model", epochs=2, batch_size=512, verbose=0, saved_model=False)
    history = json.loads((tmp_path / "model" / "history.json").read_text())
    assert history["epoch"] == [0, 1]
    for key in ("loss", "val_loss", "accuracy", "val_accuracy", "auc", "rows_per_second"):
        assert len(history[key]) == 2 and all(np.isfinite(history[key]))
    assert history["majority_baseline"] > 0.5 and history["device"].startswith(("CPU", "GPU"))
    figure = plot_history(tmp_path / "model" / "history.json", title="run")
    assert figure.metrics == ["loss", "accuracy", "auc", "rows_per_second"]  # every metric the classifier recorded
    loss_axis, accuracy_axis, auc_axis, speed_axis = figure.axes
    np.testing.assert_allclose(auc_axis.lines[1].get_ydata(), history["val_auc"])
    assert [line.get_label() for line in loss_axis.lines] == ["train", "validation"]
    assert [line.get_label() for line in accuracy_axis.lines] == ["train", "validation", "majority baseline"]
    np.testing.assert_allclose(loss_axis.lines[1].get_ydata(), history["val_loss"])
    assert [line.get_label() for line in speed_axis.lines] == ["train"]
    assert list(loss_axis.lines[0].get_xdata()) == [1, 2]  # epochs counted from 1, as in Keras's log
    assert speed_axis.get_ylim()[0] == 0  # throughput from 0
    assert plot_history(tmp_path / "model" / "history.csv").axes  # the CSV log plots too
    with pytest.raises(ValueError, match="no 'loss'"):
        plot_history({"epoch": []})


@pytest.mark.timeout(900)
def test_real_data_matches_a_scikit_learn_baseline(tmp_path):
    """External check on a real public data set bundled with scikit-learn (569 tumours, 30 features)."""
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    frame = load_breast_cancer(as_frame=True).frame
    frame.to_csv(tmp_path / "breast_cancer.csv", index=False)
    manifest = model_ready_split(tmp_path / "breast_cancer.csv", tmp_path / "split", rows_per_shard=100, val_fraction=0.3,
                         seed=0, label="target")
    assert manifest["source"]["rows"] == 569

    def subset_frame(subset):
        shards = manifest["subsets"][subset]["shards"]
        return pd.concat([pd.read_csv(tmp_path / "split" / s["files"]["csv"]["name"]) for s in shards])

    train_frame, validation_frame = subset_frame("train"), subset_frame("validate")
    baseline = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    baseline.fit(train_frame.drop(columns="target"), train_frame["target"])
    sklearn_accuracy = baseline.score(validation_frame.drop(columns="target"), validation_frame["target"])

    result = train(tmp_path / "split", tmp_path / "model", epochs=40, batch_size=32, workers=1, verbose=0,
                   learning_rate=3e-3, patience=40, seed=0, saved_model=False)
    assert sklearn_accuracy > 0.93
    assert result.best_val_accuracy >= sklearn_accuracy - 0.03, (result.best_val_accuracy, sklearn_accuracy)


@pytest.mark.timeout(1800)
@pytest.mark.parametrize("backend", ["jax"])
def test_the_whole_flow_runs_on_another_backend(quest_split, tmp_path, backend):
    pytest.importorskip(backend)
    # TensorFlow is made unimportable, as on the GPU machines that have only torch/jax.
    code = (
        "import sys\n"
        "class NoTensorFlow:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] == 'tensorflow': raise ImportError('TensorFlow is hidden in this test')\n"
        "sys.meta_path.insert(0, NoTensorFlow())\n"
        "import keras, json\n"
        "from questlearn.train._fit import train\n"
        f"assert keras.backend.backend() == {backend!r}\n"
        "r = train(sys.argv[1], sys.argv[2], epochs=2, batch_size=256, workers=2, verbose=0)\n"
        "print('SUMMARY', json.dumps(r.summary()))\n"
    )
    env = {**run_env(), "KERAS_BACKEND": backend}
    result = subprocess.run([sys.executable, "-c", code, str(quest_split), str(tmp_path / "model")],
                            capture_output=True, text=True, env=env, timeout=1680)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads(result.stdout.split("SUMMARY ", 1)[1].splitlines()[0])
    assert summary["device"].endswith(f"({backend}; no GPU found)") or summary["device"].startswith("GPU")
    assert summary["best_val_accuracy"] > summary["majority_baseline"] + 0.05


@pytest.mark.timeout(900)
def test_synth_split_and_train_commands(tmp_path, capsys):
    def cli(*args):
        code = main([*map(str, args)])
        captured = capsys.readouterr()
        assert code == 0, captured.err[-3000:]
        return captured.out

    assert "wrote 4000 rows" in cli("synth", tmp_path / "log.csv", "--rows", 4000, "--nasty")
    out = cli("split", tmp_path / "log.csv", tmp_path / "split", "--rows-per-shard", 1000, "--id-column", "attempt_id",
              "--id-column", "player_id", "--categorical-column", "party_size", "--formats", "csv,npy", "--no-progress")
    assert "split 4000 rows" in out
    manifest = json.loads((tmp_path / "split" / "manifest.json").read_text())
    assert {c["name"]: c["kind"] for c in manifest["schema"]["columns"]}["party_size"] == "categorical"
    out = cli("train", tmp_path / "split", "--model-dir", tmp_path / "model", "--epochs", 1, "--batch-size", 256,
              "--source", "csv", "--verbose", 0)
    assert json.loads(out[out.index("{"):])["epochs"] == 1
