"""Checks that a resumed training run is the run that was never interrupted."""

import keras
import numpy as np

from questlearn.train._fit import read_history_csv


def assert_resumed_equals_uninterrupted(uninterrupted_dir, resumed_dir, columns, epochs):
    """Compare two model folders' ``history.csv`` and ``model.keras``.

    The resumed history has one entry per epoch (``epochs`` of them, the resumed epoch covering the
    whole epoch). On TensorFlow (deterministic on CPU with one loading thread) the ``columns`` of the
    histories and the weights are equal; on other backends the weights agree to float32 rounding.
    """
    history_a = read_history_csv(uninterrupted_dir / "history.csv")
    history_b = read_history_csv(resumed_dir / "history.csv")
    assert history_b["epoch"] == list(range(epochs))
    weights_a = keras.saving.load_model(uninterrupted_dir / "model.keras").get_weights()
    weights_b = keras.saving.load_model(resumed_dir / "model.keras").get_weights()
    if keras.backend.backend() == "tensorflow":
        for column in columns:
            assert history_a[column] == history_b[column], column
        for a, b in zip(weights_a, weights_b):
            np.testing.assert_array_equal(a, b)
    else:
        for a, b in zip(weights_a, weights_b):
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


class CrashAt(keras.callbacks.Callback):
    """Raises ``RuntimeError("simulated crash")`` after batch ``batch`` of epoch ``epoch``; ``ends`` lists
    the batch of every ``on_train_batch_end`` call (Keras calls it once per backend call)."""

    def __init__(self, epoch, batch):
        super().__init__()
        self.at, self.ends = (epoch, batch), []

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        self.ends.append(batch)
        if (self.epoch, batch) == self.at:
            raise RuntimeError("simulated crash")


def crash_resume_and_compare(split, root, arguments, saving, crash_at, saved_at):
    """Train on ``split`` straight through in ``root/a``; in ``root/b`` (with the ``saving`` options too)
    crash after batch ``crash_at``, check the backup holds ``saved_at`` ``(epoch, batches_done)``, resume,
    and assert the resumed run's losses and weights equal the straight run's. Returns the crash callback."""
    from questlearn.train._fit import train
    from questlearn.train._resume import load_backup

    straight = train(split, f"{root}/a", **arguments)
    crash = CrashAt(*crash_at)
    try:
        train(split, f"{root}/b", extra_callbacks=[crash], **arguments, **saving)
    except RuntimeError:
        pass
    state = load_backup(f"{root}/b/backup")
    assert (state.epoch, state.batches_done) == saved_at, (state.epoch, state.batches_done)
    resumed = train(split, f"{root}/b", **arguments, **saving)
    assert straight.history["loss"] == resumed.history["loss"], (straight.history["loss"], resumed.history["loss"])
    for a, b in zip(straight.model.get_weights(), resumed.model.get_weights()):
        np.testing.assert_array_equal(a, b)
    return crash


def resumed_equals_uninterrupted(split, root):
    """Killed at batch 17 of epoch 1 (of 3; 33 batches each) with a save every five batches: resumed at batch 15,
    the run, and the epoch after it, end as the uninterrupted ones do."""
    crash_resume_and_compare(split, root, dict(epochs=3, batch_size=128, workers=1, verbose=0, seed=4, patience=10),
                             dict(save_every_batches=5), crash_at=(1, 17), saved_at=(1, 15))


def steps_per_execution_resume(split, root):
    """Five batches a backend call, a save every ten: killed at batch 24 of epoch 1, the run resumes at batch 20
    and ends as the uninterrupted run does."""
    import json
    from pathlib import Path

    arguments = dict(epochs=2, batch_size=64, workers=1, verbose=0, seed=4, patience=10, steps_per_execution=5,
                     save_every_batches=10)
    crash = crash_resume_and_compare(split, root, arguments, {}, crash_at=(1, 24), saved_at=(1, 20))
    record = json.loads((Path(root) / "a" / "history.json").read_text())
    assert record["steps_per_execution"] == 5 and record["in_memory"], record
    assert crash.ends[:3] == [4, 9, 14], crash.ends[:3]  # Keras ran five batches a call
