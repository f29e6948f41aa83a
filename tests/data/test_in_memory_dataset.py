"""A subset served from memory gives the same batches, in the same seeded order, as read from its shards."""

import json

import numpy as np
import pytest

from questlearn.data.dataset import QuestSequence


def assert_same_batch(expected, batch, where):
    (x_expected, y_expected), (x, y) = expected, batch
    assert sorted(x) == sorted(x_expected)
    for block in x_expected:
        assert x[block].dtype == x_expected[block].dtype
        np.testing.assert_array_equal(x[block], x_expected[block], err_msg=where)
    np.testing.assert_array_equal(y, y_expected, err_msg=where)


def assert_same_batches(from_shards, from_memory, epochs):
    assert len(from_memory) == len(from_shards)
    for epoch in range(epochs):
        from_shards.set_epoch(epoch)
        from_memory.set_epoch(epoch)
        for index in range(len(from_shards)):
            assert_same_batch(from_shards[index], from_memory[index], f"epoch {epoch} batch {index}")


@pytest.mark.parametrize("batch_size", [64, 77, None])
def test_in_memory_batches_are_the_shard_batches_in_the_same_seeded_order(id_split, batch_size):
    """Several shards, batches across shard boundaries, one batch per shard: same rows, same order, three epochs."""
    from_shards = QuestSequence(id_split, "train", batch_size=batch_size, shuffle=True, seed=3, workers=2)
    from_memory = from_shards.in_memory()
    assert len(from_shards.reader.shards) > 3 and from_memory.workers == 1 and not from_memory.use_multiprocessing
    assert_same_batches(from_shards, from_memory, epochs=3)
    ids = from_memory.input_names()["numbers"].index("attempt_id")
    from_memory.set_epoch(0)
    first = np.concatenate([from_memory[i][0]["numbers"][:, ids] for i in range(len(from_memory))])
    from_memory.set_epoch(1)
    second = np.concatenate([from_memory[i][0]["numbers"][:, ids] for i in range(len(from_memory))])
    assert sorted(first) == sorted(second) and len(set(first)) == len(first) and not np.array_equal(first, second)


def test_in_memory_validation_and_a_resumed_epoch_match_the_shards(id_split):
    validation = QuestSequence(id_split, "validate", batch_size=50, shuffle=False)
    assert_same_batches(validation, validation.in_memory(), epochs=1)
    resumed = QuestSequence(id_split, "train", batch_size=64, seed=1)
    from_memory = resumed.in_memory()
    resumed.start_batch = from_memory.start_batch = 5  # a resumed epoch starts after its last saved batch
    assert_same_batches(resumed, from_memory, epochs=2)
    numbers = len(resumed.input_names().get("numbers", []))
    codes = len(resumed.input_names().get("codes", []))
    assert resumed.memory_bytes() == resumed.plan.total_rows * (4 * numbers + 4 * codes + 8)


@pytest.mark.parametrize("batch_size, start_batch", [(64, 0), (77, 5)])
def test_the_tensorflow_feed_from_memory_gives_the_shard_batches_of_each_epoch(id_split, batch_size, start_batch):
    """fit reads a subset in memory through tf.data on TensorFlow: the same rows, batch by batch, epoch by epoch,
    a resumed epoch starting after its last saved batch, as the data set reads them from its shards."""
    from questlearn.data._memory_feed import fit_input
    from questlearn.quiet import keras

    if keras.backend.backend() != "tensorflow":
        pytest.skip("the tf.data feed is the TensorFlow backend's")
    from_shards = QuestSequence(id_split, "train", batch_size=batch_size, shuffle=True, seed=2)
    from_memory = from_shards.in_memory()
    from_shards.start_batch = from_memory.start_batch = start_batch
    feed, (epoch_order,) = fit_input(from_memory)
    assert fit_input(from_shards) == (from_shards, [])  # read from the shards: fit gets the data set itself
    for epoch in (0, 1, 4):
        epoch_order.on_epoch_begin(epoch)
        from_shards.set_epoch(epoch)
        batches = list(feed.as_numpy_iterator())
        assert len(batches) == len(from_shards) == len(from_memory)
        for index, batch in enumerate(batches):
            assert_same_batch(from_shards[index], batch, f"epoch {epoch} batch {index}")
    validation = QuestSequence(id_split, "validate", batch_size=50, shuffle=False).in_memory()
    feed, _ = fit_input(validation)
    batches = list(feed.as_numpy_iterator())
    assert len(batches) == len(validation)
    for index, batch in enumerate(batches):
        assert_same_batch(validation[index], batch, f"validation batch {index}")


def test_train_keeps_a_table_in_memory_only_when_the_arrays_and_tensorflows_copy_fit_the_budget(
        id_split, tmp_path, monkeypatch):
    """On TensorFlow the feed's copy counts: a budget the arrays fit but not with that copy reads the shards."""
    import questlearn.train._fit as fit_module
    from questlearn.data._memory_feed import TENSORFLOW_COPY
    from questlearn.quiet import keras

    if keras.backend.backend() != "tensorflow":
        pytest.skip("the tf.data feed is the TensorFlow backend's")
    arrays = sum(QuestSequence(id_split, subset).memory_bytes() for subset in ("train", "validate"))
    chosen = {}
    for budget in (arrays * (1 + TENSORFLOW_COPY), arrays * (1 + TENSORFLOW_COPY) - 1):
        monkeypatch.setattr(fit_module, "memory_budget", lambda budget=budget: budget)
        fit_module.train(id_split, tmp_path / str(budget), epochs=1, model="small", verbose=0, saved_model=False)
        chosen[budget] = json.loads((tmp_path / str(budget) / "history.json").read_text())["in_memory"]
    assert list(chosen.values()) == [True, False]
