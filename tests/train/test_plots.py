"""``questlearn plot`` and :mod:`questlearn.train.plots`: every recorded metric drawn, regression models too."""

import json
import subprocess
import sys

import pytest
from helpers import ID_COLUMNS, run_env, run_questlearn

from questlearn.train.plots import plot_history, plotted_metrics

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def regression_model(tmp_path_factory):
    """A model trained by ``train`` on a regression split of a quest log (label ``power``)."""
    from splits import model_ready_split

    from questlearn.synth import write_quest_log
    from questlearn.train._fit import train

    root = tmp_path_factory.mktemp("regression")
    log = write_quest_log(root / "quests.csv", rows=1500, seed=3)
    model_ready_split(log, root / "split", label="power", task="regression", rows_per_shard=1500, id_columns=ID_COLUMNS)
    train(root / "split", root / "model", epochs=2, batch_size=256, workers=1, verbose=0, saved_model=False)
    return root / "model"


def plot_cli(*args):
    return run_questlearn("plot", *args, timeout=720)


@pytest.mark.timeout(1800)
def test_plot_draws_a_regression_history_with_its_mae_and_rmse(regression_model, tmp_path):
    image = tmp_path / "history.png"
    plotted = plot_cli(regression_model, "-o", image)
    assert plotted.returncode == 0, plotted.stderr[-3000:]
    assert image.read_bytes()[:8] == PNG_MAGIC
    assert plotted.stdout.strip() == f"wrote {image}: loss, mae, rmse, rows_per_second per epoch"

    history = json.loads((regression_model / "history.json").read_text())
    figure = plot_history(history)
    assert figure.metrics == ["loss", "mae", "rmse", "rows_per_second"]
    panels = dict(zip(figure.metrics, figure.axes))
    assert [line.get_label() for line in panels["mae"].lines] == ["train", "validation", "predict-the-mean baseline"]
    assert list(panels["rmse"].lines[1].get_ydata()) == history["val_rmse"]
    assert panels["rmse"].lines[2].get_ydata()[0] == history["mean_baseline"]["rmse"]


def test_plot_draws_whatever_metrics_a_history_holds_without_assuming_a_key():
    history = {"epoch": [0, 1], "epoch_seconds": [2.0, 1.0], "loss": [3.0, 2.0], "val_loss": [3.5, 2.5],
               "precision": [0.5, 0.6], "val_precision": [0.4, 0.5], "val_f1": [0.3, 0.4],
               "rows_per_second": [10.0, 20.0], "task": "classification", "train_rows": 100}
    assert plotted_metrics(history) == ["loss", "precision", "f1", "rows_per_second"]
    figure = plot_history(history)
    panels = dict(zip(figure.metrics, figure.axes))
    assert len(figure.axes) == 4  # the unused cell of the 2 x 3 grid is removed
    assert [line.get_label() for line in panels["precision"].lines] == ["train", "validation"]
    assert [line.get_label() for line in panels["f1"].lines] == ["validation"]  # recorded on validation only


def test_load_history_reads_a_csv_log_without_importing_keras(tmp_path):
    log = tmp_path / "history.csv"
    log.write_text("epoch,loss,mae,val_loss,val_mae\n0,4.0,1.5,4.5,1.7\n1,3.0,1.2,3.8,1.4\n", encoding="utf-8")
    code = ("import sys\nfrom questlearn.train.plots import load_history\n"
            f"history = load_history({str(log)!r})\n"
            "print(history['epoch'], history['val_mae'], sorted(m for m in ('keras', 'tensorflow', 'jax', 'torch') "
            "if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=run_env(), timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip() == "[0, 1] [1.7, 1.4] []"
