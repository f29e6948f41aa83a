"""A small trained model shared by the export, predict and CLI tests."""

from helpers import ID_COLUMNS
from splits import model_ready_split

from questlearn.synth import write_quest_log
from questlearn.train._fit import train


def train_small_model(root, rows: int = 4000, epochs: int = 2):
    """Split a plain quest log (one validate shard, ``fill="mean"``) and train on it.

    Returns ``(log, split_dir, result)``; the model is in ``root / "model"``.
    """
    log = write_quest_log(root / "quests.csv", rows=rows, seed=5)
    split_dir = root / "split"
    model_ready_split(log, split_dir, fill="mean", rows_per_shard=rows, val_fraction=0.25, seed=1, id_columns=ID_COLUMNS)
    result = train(split_dir, root / "model", epochs=epochs, batch_size=256, workers=1, verbose=0)
    return log, split_dir, result
