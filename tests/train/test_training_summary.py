"""The training summary reports the restored epoch: every best_* figure is that one epoch's."""

from pathlib import Path

from questlearn.train._result import TrainingResult, restored_epoch

# val_loss is lowest at the second epoch; val_rmse and val_mae are lowest at other epochs.
REGRESSION = {"epoch": [0, 1, 2, 3], "val_loss": [4.0, 2.0, 2.5, 2.0], "val_rmse": [2.0, 1.41, 1.3, 1.42],
              "val_mae": [0.9, 1.1, 1.0, 1.05], "rows_per_second": [10.0, 11.0, 12.0, 13.0]}


def result(history, **extra):
    return TrainingResult(model=None, history=history, model_dir=Path("model"), device="CPU",
                          majority_baseline=0.5, extra=extra)


def test_regression_summary_reports_the_restored_epochs_metrics_and_names_it():
    summary = result(REGRESSION, mean_baseline={"rmse": 3.0, "mae": 2.0}).summary()
    assert summary["best_epoch"] == 2  # the first lowest val_loss, numbered from 1 (a tie later does not replace it)
    assert (summary["best_val_loss"], summary["best_val_rmse"], summary["best_val_mae"]) == (2.0, 1.41, 1.1)


def test_classification_summary_reports_the_restored_epochs_accuracy_not_the_highest():
    history = {"epoch": [0, 1, 2], "val_loss": [0.6, 0.5, 0.55], "val_accuracy": [0.7, 0.74, 0.76]}
    trained = result(history)
    assert trained.summary()["best_epoch"] == 2 and trained.summary()["best_val_accuracy"] == 0.74
    assert trained.best_val_accuracy == 0.74


def test_a_resumed_history_names_the_epoch_by_its_number_and_a_history_without_validation_has_none():
    assert result({**REGRESSION, "epoch": [3, 4, 5, 6]}, mean_baseline={"rmse": 3.0, "mae": 2.0}).summary()["best_epoch"] == 5
    assert restored_epoch({"epoch": [0], "loss": [1.0]}) is None
    assert restored_epoch({"val_loss": [None, 3.0, 1.0]}) == 2
