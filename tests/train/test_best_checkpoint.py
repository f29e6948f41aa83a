"""best.keras is written at most every 30 seconds while a run trains, and holds the best epoch at its end."""

import pytest

from questlearn.train import _callbacks
from questlearn.train._callbacks import BestModelCheckpoint


class SavingModel:
    """Stands in for the network: records the epoch of every file it writes."""

    def __init__(self):
        self.epoch, self.writes = None, []

    def save(self, filepath, overwrite=True):
        self.writes.append(self.epoch)


def replay(checkpoint, model, losses, seconds_an_epoch, monkeypatch):
    clock = [0.0]
    monkeypatch.setattr(_callbacks.time, "monotonic", lambda: clock[0])
    checkpoint.set_model(model)
    for epoch, loss in enumerate(losses):
        clock[0] = epoch * seconds_an_epoch
        model.epoch = epoch
        checkpoint.on_epoch_begin(epoch)
        checkpoint.on_epoch_end(epoch, {"val_loss": loss})


LOSSES = [1.0, 0.9, 0.95, 0.8, 0.7, 0.75, 0.6, 0.5]  # new bests at epochs 0, 1, 3, 4, 6 and 7


@pytest.mark.parametrize("seconds_an_epoch, written, unwritten", [
    (10.0, [0, 3, 6], True),  # quick epochs: a new best at most every 30 s; epoch 7's best waits for the end
    (40.0, [0, 1, 3, 4, 6, 7], False),  # epochs longer than the interval: every new best at once, as Keras does
])
def test_a_new_best_is_written_at_most_every_interval_and_the_last_one_after_training(
        tmp_path, monkeypatch, seconds_an_epoch, written, unwritten):
    model = SavingModel()
    checkpoint = BestModelCheckpoint(str(tmp_path / "best.keras"), monitor="val_loss")
    assert checkpoint.interval_seconds == 30 and checkpoint.save_best_only
    replay(checkpoint, model, LOSSES, seconds_an_epoch, monkeypatch)
    assert model.writes == written and checkpoint.unwritten is unwritten and checkpoint.best == 0.5
    model.epoch = "after training"
    checkpoint.write_unwritten(model)
    checkpoint.write_unwritten(model)  # once only
    assert model.writes == written + (["after training"] if unwritten else [])
    assert checkpoint.unwritten is False
