"""QuestSequence: every row once per epoch, seeded order, fixed schema."""

import pickle

import numpy as np
import pytest
from keras.src.trainers.data_adapters.py_dataset_adapter import PyDatasetAdapter

from questlearn.batches import EqualShards
from questlearn.dataset import QuestSequence
from questlearn.manifest import load_manifest


def expected_ids(split_dir, subset):
    """attempt_id of every row of a subset, read from the binary shards' row numbers."""
    manifest = load_manifest(split_dir)
    rows = [np.load(f"{manifest['root']}/{s['files']['rows']['name']}") for s in manifest["subsets"][subset]["shards"]]
    return np.sort(np.concatenate(rows))  # attempt_id equals the 0-based source row in synthetic logs


def ids_of(dataset):
    return dataset.feature_names.index("attempt_id")


def epoch_through_keras(dataset, shuffle_in_fit=False):
    """One epoch the way ``fit`` consumes it: Keras's adapter and enqueuer."""
    adapter = PyDatasetAdapter(dataset, shuffle=shuffle_in_fit)
    adapter.on_epoch_begin()
    batches = list(adapter.get_numpy_iterator())
    adapter.on_epoch_end()
    column = ids_of(dataset)
    return [batch[0][:, column].astype(np.int64) for batch in batches], batches


@pytest.mark.timeout(120)
@pytest.mark.parametrize("source", ["npy", "csv"])
@pytest.mark.parametrize("workers,processes", [(1, False), (2, False), (2, True)])
@pytest.mark.parametrize("shuffle", [False, True])
def test_every_row_exactly_once_per_epoch(id_split, source, workers, processes, shuffle):
    dataset = QuestSequence(id_split, "train", batch_size=128, source=source, shuffle=shuffle, seed=3,
                            workers=workers, use_multiprocessing=processes, max_queue_size=4)
    first, batches = epoch_through_keras(dataset)
    second, _ = epoch_through_keras(dataset)
    expected = expected_ids(id_split, "train")
    for epoch in (first, second):
        np.testing.assert_array_equal(np.sort(np.concatenate(epoch)), expected)
    assert all(len(ids) == 128 for ids in first[:-1]) and 0 < len(first[-1]) <= 128  # last batch kept
    assert len(first) == len(dataset) == -(-len(expected) // 128)
    assert all(x.dtype == np.float32 and y.dtype == np.int32 for x, y in batches)
    if shuffle:
        assert not np.array_equal(np.concatenate(first), np.concatenate(second))
    else:
        np.testing.assert_array_equal(np.concatenate(first), expected)


def test_keras_batch_shuffle_on_top_still_reads_every_row_once(id_split):
    dataset = QuestSequence(id_split, "train", batch_size=97, workers=2)
    ids, _ = epoch_through_keras(dataset, shuffle_in_fit=True)
    np.testing.assert_array_equal(np.sort(np.concatenate(ids)), expected_ids(id_split, "train"))


def test_same_seed_same_order_other_seed_other_order(id_split):
    def order(seed):
        dataset = QuestSequence(id_split, "train", batch_size=100, seed=seed)
        column = ids_of(dataset)
        return np.concatenate([dataset[i][0][:, column] for i in range(len(dataset))])

    np.testing.assert_array_equal(order(1), order(1))
    assert not np.array_equal(order(1), order(2))


def test_set_epoch_reproduces_the_order_of_that_epoch(id_split):
    def order(dataset):
        column = ids_of(dataset)
        return np.concatenate([dataset[i][0][:, column] for i in range(len(dataset))])

    advanced = QuestSequence(id_split, "train", batch_size=100, seed=2)
    first = order(advanced)
    for _ in range(3):
        advanced.on_epoch_end()
    jumped = QuestSequence(id_split, "train", batch_size=100, seed=2)
    jumped.set_epoch(3)
    np.testing.assert_array_equal(order(jumped), order(advanced))
    assert not np.array_equal(order(jumped), first)


def test_batch_size_is_independent_of_shard_size(id_split):
    manifest = load_manifest(id_split)
    rows = manifest["subsets"]["train"]["rows"]
    for batch_size in (1, 7, 300, 1000, rows + 5):
        dataset = QuestSequence(id_split, "train", batch_size=batch_size, shuffle=True)
        sizes = [len(dataset[i][1]) for i in range(len(dataset))]
        assert sum(sizes) == rows and max(sizes) <= batch_size


def test_one_batch_per_shard_mode(id_split):
    manifest = load_manifest(id_split)
    dataset = QuestSequence(id_split, "validate", batch_size=None, shuffle=False)
    assert len(dataset) == len(manifest["subsets"]["validate"]["shards"])
    assert [len(dataset[i][1]) for i in range(len(dataset))] == [s["rows"] for s in manifest["subsets"]["validate"]["shards"]]


def test_npy_and_csv_sources_give_the_same_batches(id_split):
    npy = QuestSequence(id_split, "validate", batch_size=64, source="npy", seed=9, fill="mean")
    csv = QuestSequence(id_split, "validate", batch_size=64, source="csv", seed=9, fill="mean")
    for index in (0, 3, len(npy) - 1):
        np.testing.assert_array_equal(npy[index][0], csv[index][0])
        np.testing.assert_array_equal(npy[index][1], csv[index][1])


def test_labels_use_the_manifest_classes_even_when_a_batch_lacks_one(id_split):
    dataset = QuestSequence(id_split, "train", batch_size=1, label_mode="one_hot", shuffle=False)
    x, y = dataset[0]
    assert y.shape == (1, 2) and y.dtype == np.float32 and y.sum() == 1.0  # one row, still both classes wide
    sparse = QuestSequence(id_split, "train", batch_size=1, shuffle=False)
    assert sparse[0][1].shape == (1,) and int(np.argmax(y[0])) == int(sparse[0][1][0])


def test_missing_values_are_filled_by_the_documented_policy(id_split):
    manifest = load_manifest(id_split)
    zero = QuestSequence(id_split, "train", batch_size=10_000, shuffle=False, fill="zero")
    mean = QuestSequence(id_split, "train", batch_size=10_000, shuffle=False, fill="mean")
    column = zero.feature_names.index("stamina")
    x_zero, x_mean = zero[0][0][:, column], mean[0][0][:, column]
    missing = x_zero != x_mean
    assert missing.sum() > 0 and not np.isnan(x_zero).any() and not np.isnan(x_mean).any()
    assert np.all(x_zero[missing] == 0)
    np.testing.assert_allclose(x_mean[missing], manifest["stats"]["stamina"]["mean"], rtol=1e-6)


def test_categories_are_one_hot_with_the_manifest_vocabulary(id_split):
    manifest = load_manifest(id_split)
    vocabulary = manifest["schema"]["categories"]["quest_type"]
    dataset = QuestSequence(id_split, "train", batch_size=500, shuffle=False)
    names = dataset.feature_names
    columns = [names.index(f"quest_type={value}") for value in vocabulary]
    x = dataset[0][0]
    assert np.all(x[:, columns].sum(axis=1) == 1.0)
    coded = QuestSequence(id_split, "train", batch_size=500, shuffle=False, categorical="code")
    codes = coded[0][0][:, coded.feature_names.index("quest_type")]
    np.testing.assert_array_equal(np.argmax(x[:, columns], axis=1), codes)


def test_feature_moments_match_the_data(id_split):
    dataset = QuestSequence(id_split, "train", batch_size=100_000, shuffle=False)
    x = dataset[0][0]
    mean, variance = dataset.feature_moments()
    assert mean.shape == variance.shape == (x.shape[1],)
    # The manifest covers train and validate rows together; the train subset is 80 % of them.
    scale = np.sqrt(variance) + 1e-3
    assert np.all(np.abs(mean - x.mean(axis=0)) < 0.1 * scale)
    assert np.all(np.abs(np.sqrt(variance) - x.std(axis=0)) < 0.1 * scale)


def test_shards_for_multiworker_training_are_equal_disjoint_and_complete(id_split):
    dataset = QuestSequence(id_split, "train", batch_size=50, seed=4)
    column = ids_of(dataset)
    total = dataset.plan.total_rows
    assert total % (3 * 50) and total % 3  # the remainder case: padding is needed
    for epoch in (0, 1):
        dataset.set_epoch(epoch)
        parts = [dataset.shard(index, 3) for index in range(3)]
        for part in parts:
            part.set_epoch(epoch)
        assert len({len(p) for p in parts}) == 1  # same number of batches
        batches = [[p[i] for i in range(len(p))] for p in parts]
        shapes = {tuple(len(b[0]) for b in process) for process in batches}
        assert len(shapes) == 1  # and the same shapes, batch by batch
        weights = np.concatenate([b[2] for process in batches for b in process])
        assert set(np.unique(weights)) <= {0.0, 1.0} and (weights == 0).sum() == 3 * parts[0].equal_shards.rows_per_process - total
        seen = np.concatenate([b[0][b[2] > 0][:, column] for process in batches for b in process])
        np.testing.assert_array_equal(np.sort(seen), expected_ids(id_split, "train"))
    first_epoch = np.concatenate([dataset.shard(0, 3)[i][0][:, column] for i in range(2)])
    dataset.set_epoch(0)
    assert not np.array_equal(first_epoch, np.concatenate([dataset.shard(0, 3)[i][0][:, column] for i in range(2)]))
    with pytest.raises(ValueError):
        dataset.shard(3, 3)
    with pytest.raises(ValueError, match="already shard"):
        dataset.shard(0, 2).shard(0, 2)
    with pytest.raises(ValueError, match="needs a batch_size"):
        QuestSequence(id_split, "train", batch_size=None).shard(0, 2)


@pytest.mark.parametrize("total, batch, count", [(10, 3, 3), (9, 3, 3), (7, 10, 2), (101, 10, 4), (100, 25, 4), (5, 1, 5)])
def test_equal_shards_cover_every_row_once_with_equal_batches(total, batch, count):
    shards = EqualShards(total, batch, count)
    covered, shapes = [], set()
    for index in range(count):
        layout = [shards.batch(index, b) for b in range(shards.batches)]
        shapes.add(tuple(stop - first + pad for first, stop, pad in layout))
        covered += [row for first, stop, _ in layout for row in range(first, stop)]
        assert sum(pad for *_, pad in layout) <= 1
    assert len(shapes) == 1 and sorted(covered) == list(range(total))
    assert shards.padding_rows == count * shards.rows_per_process - total < count
    with pytest.raises(ValueError, match="at least one row"):
        EqualShards(count - 1, batch, count)


def test_pickles_without_open_files(id_split):
    dataset = QuestSequence(id_split, "train", batch_size=64, source="csv")
    before = dataset[2]
    clone = pickle.loads(pickle.dumps(dataset))
    assert clone.reader._cache == {}
    np.testing.assert_array_equal(clone[2][0], before[0])


def test_bad_arguments_are_value_errors(id_split, tmp_path):
    with pytest.raises(ValueError, match="no manifest.json"):
        QuestSequence(tmp_path)
    with pytest.raises(ValueError, match="batch_size"):
        QuestSequence(id_split, batch_size=0)
    with pytest.raises(ValueError, match="subset"):
        QuestSequence(id_split, "test")
    with pytest.raises(ValueError, match="unknown feature"):
        QuestSequence(id_split, features=["nope"])
    with pytest.raises(ValueError, match="cache_shards"):
        QuestSequence(id_split, cache_shards=0)
    with pytest.raises(IndexError):
        QuestSequence(id_split)[10_000]
