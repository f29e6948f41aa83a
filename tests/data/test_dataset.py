"""QuestSequence: every row once per epoch, seeded order, fixed schema."""

import pickle

import numpy as np
import pytest
from keras.src.trainers.data_adapters.py_dataset_adapter import PyDatasetAdapter
from splits import ID_SPLIT_OPTIONS, demote_to_other, expected_ids, ids_in_shard_order, model_ready_split

from questlearn.data._batches import EqualShards
from questlearn.data.dataset import QuestSequence
from questlearn.manifest._files import load_manifest


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
        np.testing.assert_array_equal(np.concatenate(first), ids_in_shard_order(id_split, "train"))


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


@pytest.mark.parametrize("shuffle", [False, True])
def test_npy_and_csv_sources_give_the_same_batches(id_split_mean, shuffle):
    npy = QuestSequence(id_split_mean, "validate", batch_size=64, source="npy", seed=9, shuffle=shuffle)
    csv = QuestSequence(id_split_mean, "validate", batch_size=64, source="csv", seed=9, shuffle=shuffle)
    assert len(npy) == len(csv) > 3 and npy.feature_names == csv.feature_names
    for index in range(len(npy)):
        np.testing.assert_array_equal(npy[index][0], csv[index][0])
        np.testing.assert_array_equal(npy[index][1], csv[index][1])


def test_a_batch_is_a_take_of_the_memory_mapped_shard_rows(id_split, monkeypatch):
    dataset = QuestSequence(id_split, "train", batch_size=50, seed=1)
    x, labels = dataset[1]
    segments = dataset.plan.segments(1)
    if len(segments) > 1:  # batch 1 straddles two shards: take the next batch inside one
        index = next(i for i in range(2, len(dataset)) if len(dataset.plan.segments(i)) == 1)
        x, labels = dataset[index]
        segments = dataset.plan.segments(index)
    (shard, rows), = segments
    entry = dataset.reader.shards[shard]["files"]
    root = dataset.manifest["root"]
    stored = np.load(f"{root}/{entry['features']['name']}", mmap_mode="r")
    np.testing.assert_array_equal(x, stored[rows])
    codes = np.load(f"{root}/{entry['labels']['name']}")
    np.testing.assert_array_equal(labels, np.asarray(dataset.manifest["schema"]["label_codes"])[codes[rows]])
    opened = dataset.reader._load(shard)[0]
    assert isinstance(opened.base, np.memmap) or isinstance(getattr(opened.base, "base", None), np.memmap)
    monkeypatch.setattr(dataset.reader.encoding, "encode", lambda *a: pytest.fail("npy batches must not encode"))
    np.testing.assert_array_equal(dataset[1][0], x)


def test_a_feature_subset_takes_its_columns_and_names(id_split):
    full = QuestSequence(id_split, "validate", batch_size=100, shuffle=False)
    subset = QuestSequence(id_split, "validate", batch_size=100, shuffle=False, features=["quest_type", "stamina"])
    names = subset.feature_names
    assert names[0] == "stamina" and names[-1] == "quest_type=<other>"
    assert all(n == "stamina" or n.startswith("quest_type=") for n in names)
    positions = [full.feature_names.index(n) for n in names]
    np.testing.assert_array_equal(subset[0][0], full[0][0][:, positions])
    mean, variance = subset.feature_moments()
    full_mean, full_variance = full.feature_moments()
    np.testing.assert_array_equal(mean, full_mean[positions])
    np.testing.assert_array_equal(variance, full_variance[positions])
    assert full.reader._columns is None  # all features: the stored matrix as it is, no column take


def test_labels_use_the_manifest_classes_even_when_a_batch_lacks_one(id_split):
    dataset = QuestSequence(id_split, "train", batch_size=1, label_mode="one_hot", shuffle=False)
    x, y = dataset[0]
    assert y.shape == (1, 2) and y.dtype == np.float32 and y.sum() == 1.0  # one row, still both classes wide
    sparse = QuestSequence(id_split, "train", batch_size=1, shuffle=False)
    assert sparse[0][1].shape == (1,) and int(np.argmax(y[0])) == int(sparse[0][1][0])


def test_missing_values_are_filled_as_the_split_chose(id_split, id_split_mean):
    zero = QuestSequence(id_split, "train", batch_size=10_000, shuffle=False)
    mean = QuestSequence(id_split_mean, "train", batch_size=10_000, shuffle=False)
    assert (zero.reader.fill, mean.reader.fill) == ("zero", "mean")
    column = zero.feature_names.index("stamina")
    x_zero, x_mean = zero[0][0][:, column], mean[0][0][:, column]
    missing = x_zero != x_mean
    assert missing.sum() > 0 and not np.isnan(x_zero).any() and not np.isnan(x_mean).any()
    assert np.all(x_zero[missing] == 0)
    encoding = load_manifest(id_split_mean)["schema"]["encoding"]
    filled = encoding["fill_values"][encoding["numeric"].index("stamina")]
    assert filled != 0
    np.testing.assert_array_equal(x_mean[missing], np.float32(filled))


def test_another_fill_than_the_splits_is_refused(id_split):
    QuestSequence(id_split, fill="zero")  # the split's own: accepted
    with pytest.raises(ValueError, match=r"fill='zero'.*split again with `questlearn split --fill mean`"):
        QuestSequence(id_split, fill="mean")
    with pytest.raises(ValueError, match="fill must be one of"):
        QuestSequence(id_split, fill="median")


def test_categories_are_one_hot_with_the_encoding_vocabulary(id_split):
    manifest = load_manifest(id_split)
    vocabulary = manifest["schema"]["encoding"]["vocabularies"]["quest_type"]
    assert vocabulary == manifest["schema"]["categories"]["quest_type"]
    dataset = QuestSequence(id_split, "train", batch_size=500, shuffle=False)
    names = dataset.feature_names
    assert names == manifest["schema"]["encoding"]["columns"]
    columns = [names.index(f"quest_type={value}") for value in vocabulary + ["<other>"]]
    x = dataset[0][0]
    assert set(np.unique(x[:, columns])) <= {0.0, 1.0} and np.all(x[:, columns].sum(axis=1) <= 1.0)
    assert x[:, columns].sum() > 0
    with pytest.raises(ValueError, match="categorical='code' is no longer available"):
        QuestSequence(id_split, categorical="code")


def test_feature_moments_match_the_data(id_split):
    dataset = QuestSequence(id_split, "train", batch_size=100_000, shuffle=False)
    x = dataset[0][0]
    mean, variance = dataset.feature_moments()
    assert mean.shape == variance.shape == (x.shape[1],)
    # The manifest covers train and validate rows together; the train subset is 80 % of them.
    scale = np.sqrt(variance) + 1e-3
    assert np.all(np.abs(mean - x.mean(axis=0)) < 0.1 * scale)
    constant = x.std(axis=0) == 0  # an <other> column no row reached: normalised with variance 1, not 0
    assert np.all(variance[constant] == 1.0)
    assert np.all(np.abs(np.sqrt(variance) - x.std(axis=0))[~constant] < 0.1 * scale[~constant])


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


def test_moments_of_one_hot_and_other_columns_are_the_frequencies(id_log, tmp_path):
    split = tmp_path / "split"
    model_ready_split(id_log, split, fill="mean", **ID_SPLIT_OPTIONS)
    demote_to_other(split, "quest_type", load_manifest(split)["schema"]["categories"]["quest_type"][0])
    datasets = [QuestSequence(split, subset, batch_size=None, shuffle=False) for subset in ("train", "validate")]
    x = np.concatenate([d[i][0] for d in datasets for i in range(len(d))])  # every source row
    mean, variance = datasets[0].feature_moments()
    names = datasets[0].feature_names
    one_hot = [i for i, n in enumerate(names) if n.startswith("quest_type=")]
    other = names.index("quest_type=<other>")
    assert x[:, other].sum() > 0 and load_manifest(split)["stats"]["quest_type"]["oov"] == x[:, other].sum()
    frequency = x[:, one_hot].mean(axis=0, dtype=np.float64)
    np.testing.assert_allclose(mean[one_hot], frequency, rtol=1e-6)
    np.testing.assert_allclose(variance[one_hot], frequency * (1 - frequency), rtol=1e-5)
    numeric = names.index("stamina")  # filled with the mean: the moments account for the filled rows
    np.testing.assert_allclose(mean[numeric], x[:, numeric].mean(dtype=np.float64), rtol=1e-4)
    np.testing.assert_allclose(variance[numeric], x[:, numeric].var(dtype=np.float64), rtol=1e-3)


def test_a_features_file_of_another_shape_is_refused_naming_it(id_log, tmp_path):
    split = tmp_path / "split"
    model_ready_split(id_log, split, fill="zero", **ID_SPLIT_OPTIONS)
    manifest = load_manifest(split)
    features = split / manifest["subsets"]["train"]["shards"][1]["files"]["features"]["name"]
    x = np.load(features)
    np.save(features, np.ascontiguousarray(x.reshape(x.shape[1], x.shape[0])))  # same bytes, transposed shape
    reader = QuestSequence(split, "train", batch_size=10, shuffle=False, verify="off").reader
    reader.read([(0, np.arange(5))])  # the other shards still load
    with pytest.raises(ValueError, match=rf"{features}.* shape \({x.shape[1]}, {x.shape[0]}\), the manifest says "
                                         rf"float32 of shape \({x.shape[0]}, {x.shape[1]}\)"):
        reader.read([(1, np.arange(5))])
    np.save(features, x.astype(np.float64)[:, : x.shape[1] // 2])  # same size, another dtype
    with pytest.raises(ValueError, match=rf"{features.name} holds float64 values"):
        reader.read([(1, np.arange(5))])


def test_older_splits_without_an_encoding_are_refused(id_split, tmp_path):
    import json
    import shutil

    copy = tmp_path / "old"
    shutil.copytree(id_split, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    del manifest["schema"]["encoding"]
    (copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match="schema lacks the required key 'encoding'"):
        QuestSequence(copy)


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
