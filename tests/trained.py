"""A small trained model shared by the export, predict and CLI tests."""

from questlearn.split import split_csv
from questlearn.synth import write_quest_log
from questlearn.train import train

from helpers import ID_COLUMNS


def train_small_model(root, rows: int = 4000, epochs: int = 2):
    """Split a plain quest log (one validate shard) and train on it with ``fill="mean"``.

    Returns ``(log, split_dir, result)``; the model is in ``root / "model"``.
    """
    log = write_quest_log(root / "quests.csv", rows=rows, seed=5)
    split_dir = root / "split"
    split_csv(log, split_dir, rows_per_shard=rows, val_fraction=0.25, seed=1, id_columns=ID_COLUMNS)
    result = train(split_dir, root / "model", epochs=epochs, batch_size=256, workers=1, fill="mean", verbose=0)
    return log, split_dir, result
