"""QuestSequence: every row once per epoch, seeded order, fixed schema."""

import pickle

import numpy as np
import pandas as pd
import pytest
from keras.src.trainers.data_adapters.py_dataset_adapter import PyDatasetAdapter
from splits import ID_SPLIT_OPTIONS, demote_to_other, expected_ids, ids_in_shard_order, model_ready_split

from questlearn.data._batches import EqualShards
from questlearn.data.dataset import QuestSequence
from questlearn.manifest._files import load_manifest


def ids_of(dataset):
    """Position of ``attempt_id`` (the 0-based source row) in the numbers block."""
    return dataset.input_names()["numbers"].index("attempt_id")


def assert_same_inputs(x, expected):
    """Two batches' ``x`` dicts hold the same blocks, element for element."""
    assert sorted(x) == sorted(expected)
    for block in expected:
        np.testing.assert_array_equal(x[block], expected[block])


def epoch_through_keras(dataset, shuffle_in_fit=False):
    """One epoch the way ``fit`` consumes it: Keras's adapter and enqueuer."""
    adapter = PyDatasetAdapter(dataset, shuffle=shuffle_in_fit)
    adapter.on_epoch_begin()
    batches = list(adapter.get_numpy_iterator())
    adapter.on_epoch_end()
    column = ids_of(dataset)
    return [batch[0]["numbers"][:, column].astype(np.int64) for batch in batches], batches


@pytest.mark.timeout(900)
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
    assert all(x["numbers"].dtype == np.float32 and x["codes"].dtype == np.int32 and y.dtype == np.int32
               for x, y in batches)
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
        return np.concatenate([dataset[i][0]["numbers"][:, column] for i in range(len(dataset))])

    np.testing.assert_array_equal(order(1), order(1))
    assert not np.array_equal(order(1), order(2))


def test_set_epoch_reproduces_the_order_of_that_epoch(id_split):
    def order(dataset):
        column = ids_of(dataset)
        return np.concatenate([dataset[i][0]["numbers"][:, column] for i in range(len(dataset))])

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
        assert_same_inputs(npy[index][0], csv[index][0])
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
    assert sorted(x) == ["codes", "numbers"]
    for block in ("numbers", "codes"):
        stored = np.load(f"{root}/{entry[block]['name']}", mmap_mode="r")
        np.testing.assert_array_equal(x[block], stored[rows])
    codes = np.load(f"{root}/{entry['labels']['name']}")
    np.testing.assert_array_equal(labels, np.asarray(dataset.manifest["schema"]["label_codes"])[codes[rows]])
    for opened in dataset.reader._load(shard)[:2]:
        assert isinstance(opened.base, np.memmap) or isinstance(getattr(opened.base, "base", None), np.memmap)
    monkeypatch.setattr(dataset.reader.encoding, "encode", lambda *a: pytest.fail("npy batches must not encode"))
    assert_same_inputs(dataset[1][0], x)


def test_a_feature_subset_takes_its_columns_and_names(id_split):
    full = QuestSequence(id_split, "validate", batch_size=100, shuffle=False)
    subset = QuestSequence(id_split, "validate", batch_size=100, shuffle=False, features=["quest_type", "stamina"])
    # stamina brings its missing-value indicator (the sample had missing stamina)
    assert subset.input_names() == {"numbers": ["stamina"], "codes": ["quest_type", "stamina.missing"]}
    assert subset.feature_names == ["stamina", "quest_type", "stamina.missing"]
    assert subset.code_counts() == full.code_counts()
    numbers, codes = full.input_names()["numbers"].index("stamina"), full.input_names()["codes"].index("quest_type")
    np.testing.assert_array_equal(subset[0][0]["numbers"], full[0][0]["numbers"][:, [numbers]])
    indicator = full.input_names()["codes"].index("stamina.missing")
    np.testing.assert_array_equal(subset[0][0]["codes"], full[0][0]["codes"][:, [codes, indicator]])
    mean, variance = subset.feature_moments()
    full_mean, full_variance = full.feature_moments()
    np.testing.assert_array_equal(mean, full_mean[[numbers]])
    np.testing.assert_array_equal(variance, full_variance[[numbers]])
    only_numbers = QuestSequence(id_split, "validate", batch_size=100, shuffle=False, features=["power"])
    assert list(only_numbers[0][0]) == ["numbers"] and only_numbers.code_counts() == []  # an empty block is left out
    # all features: the stored blocks as they are, no column take
    assert full.reader._take_numbers is None and full.reader._take_codes is None


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
    column = zero.input_names()["numbers"].index("stamina")
    x_zero, x_mean = zero[0][0]["numbers"][:, column], mean[0][0]["numbers"][:, column]
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


def test_categories_are_codes_of_the_encoding_vocabulary_most_frequent_first(id_split, id_log):
    manifest = load_manifest(id_split)
    encoding = manifest["schema"]["encoding"]
    vocabulary = encoding["vocabularies"]["quest_type"]
    assert vocabulary == manifest["schema"]["categories"]["quest_type"]
    counts = manifest["stats"]["quest_type"]["category_counts"]
    assert [counts[v] for v in vocabulary] == sorted(counts.values(), reverse=True)  # (the sample is the whole log)
    buckets = encoding["hash_buckets"]["quest_type"]
    assert buckets == 1  # six values: one out-of-vocabulary code
    dataset = QuestSequence(id_split, "train", batch_size=100_000, shuffle=False)
    assert dataset.feature_names == encoding["numeric"] + encoding["code_columns"]
    assert dataset.code_counts() == [1 + buckets + len(vocabulary), 2]  # quest_type, and stamina's missing indicator
    x = dataset[0][0]
    source = pd.read_csv(id_log)
    rows = x["numbers"][:, ids_of(dataset)].astype(np.int64)  # attempt_id is the source row
    expected = [1 + buckets + vocabulary.index(value) for value in source["quest_type"].to_numpy()[rows]]
    codes = x["codes"][:, dataset.input_names()["codes"].index("quest_type")]
    np.testing.assert_array_equal(codes, expected)


def test_feature_moments_match_the_data(id_split):
    dataset = QuestSequence(id_split, "train", batch_size=100_000, shuffle=False)
    x = dataset[0][0]["numbers"]
    mean, variance = dataset.feature_moments()
    assert mean.shape == variance.shape == (x.shape[1],)
    # The manifest covers train and validate rows together; the train subset is 80 % of them.
    scale = np.sqrt(variance) + 1e-3
    assert np.all(np.abs(mean - x.mean(axis=0)) < 0.1 * scale)
    constant = x.std(axis=0) == 0  # a column with one value: normalised with variance 1, not 0
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
        shapes = {tuple(len(b[1]) for b in process) for process in batches}
        assert len(shapes) == 1  # and the same shapes, batch by batch
        weights = np.concatenate([b[2] for process in batches for b in process])
        assert set(np.unique(weights)) <= {0.0, 1.0} and (weights == 0).sum() == 3 * parts[0].equal_shards.rows_per_process - total
        seen = np.concatenate([b[0]["numbers"][b[2] > 0][:, column] for process in batches for b in process])
        np.testing.assert_array_equal(np.sort(seen), expected_ids(id_split, "train"))
    first_epoch = np.concatenate([dataset.shard(0, 3)[i][0]["numbers"][:, column] for i in range(2)])
    dataset.set_epoch(0)
    assert not np.array_equal(first_epoch, np.concatenate([dataset.shard(0, 3)[i][0]["numbers"][:, column] for i in range(2)]))
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


def test_a_value_first_met_after_the_sample_takes_the_out_of_vocabulary_code(id_log, tmp_path):
    split = tmp_path / "split"
    model_ready_split(id_log, split, fill="mean", **ID_SPLIT_OPTIONS)
    demoted = load_manifest(split)["schema"]["categories"]["quest_type"][0]
    demote_to_other(split, "quest_type", demoted)
    manifest = load_manifest(split)
    kept = manifest["schema"]["encoding"]["vocabularies"]["quest_type"]
    assert demoted not in kept and manifest["schema"]["encoding"]["hash_buckets"]["quest_type"] == 1
    datasets = {source: [QuestSequence(split, subset, batch_size=None, shuffle=False, source=source)
                         for subset in ("train", "validate")] for source in ("npy", "csv")}
    x = {source: [d[i][0] for d in parts for i in range(len(d))] for source, parts in datasets.items()}
    for npy, csv in zip(x["npy"], x["csv"]):  # the CSV loader hashes the value into the bucket the npy shards hold
        assert_same_inputs(csv, npy)
    every_row = datasets["npy"][0]
    codes = np.concatenate([batch["codes"][:, every_row.input_names()["codes"].index("quest_type")] for batch in x["npy"]])
    numbers = np.concatenate([batch["numbers"] for batch in x["npy"]])
    source = pd.read_csv(id_log)["quest_type"].to_numpy()[numbers[:, ids_of(every_row)].astype(np.int64)]
    assert np.all((codes == 1) == (source == demoted)) and (codes == 1).sum() == manifest["stats"]["quest_type"]["oov"] > 0
    np.testing.assert_array_equal(codes[source != demoted], [2 + kept.index(v) for v in source[source != demoted]])
    mean, variance = every_row.feature_moments()
    numeric = every_row.input_names()["numbers"].index("stamina")  # filled with the mean: the moments account for the filled rows
    np.testing.assert_allclose(mean[numeric], numbers[:, numeric].mean(dtype=np.float64), rtol=1e-4)
    np.testing.assert_allclose(variance[numeric], numbers[:, numeric].var(dtype=np.float64), rtol=1e-3)


def test_a_numbers_or_codes_file_of_another_shape_dtype_or_range_is_refused_naming_it(id_log, tmp_path):
    split = tmp_path / "split"
    model_ready_split(id_log, split, fill="zero", **ID_SPLIT_OPTIONS)
    manifest = load_manifest(split)
    features = split / manifest["subsets"]["train"]["shards"][1]["files"]["numbers"]["name"]
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
    np.save(features, x)
    codes_path = split / manifest["subsets"]["train"]["shards"][2]["files"]["codes"]["name"]
    codes = np.load(codes_path)
    assert codes.dtype == np.uint8
    np.save(codes_path, codes.astype(np.uint16))
    with pytest.raises(ValueError, match=rf"{codes_path.name} holds uint16 values of shape \({len(codes)}, 2\), the "
                                         rf"manifest says uint8"):
        reader.read([(2, np.arange(5))])
    codes[3, 0] = 1 + 1 + len(manifest["schema"]["encoding"]["vocabularies"]["quest_type"])  # one past the last code
    np.save(codes_path, codes)
    with pytest.raises(ValueError, match=rf"{codes_path.name} holds the code 8 in row 3, outside the range of "
                                         rf"quest_type \(0..7\): the file is damaged"):
        reader.read([(2, np.arange(5))])


def test_a_negative_code_in_an_int32_codes_file_is_refused_naming_column_and_row(tmp_path):
    rows = 66_000  # more codes than uint16 holds: the codes are int32
    pd.DataFrame({"user": [f"u{i}" for i in range(rows)], "level": np.arange(rows) % 7,
                  "cleared": np.arange(rows) % 2}).to_csv(tmp_path / "users.csv", index=False)
    manifest = model_ready_split(tmp_path / "users.csv", tmp_path / "split", label="cleared", categorical_columns=["user"],
                                 rows_per_shard=100_000, formats=("npy",))
    assert manifest["schema"]["encoding"]["code_dtype"] == "int32"
    codes_path = tmp_path / "split" / manifest["subsets"]["train"]["shards"][0]["files"]["codes"]["name"]
    codes = np.load(codes_path)
    codes[41, 0] = -1
    np.save(codes_path, codes)
    reader = QuestSequence(tmp_path / "split", "train", batch_size=10, shuffle=False, verify="off").reader
    with pytest.raises(ValueError, match=rf"{codes_path.name} holds the code -1 in row 41, outside the range of user "
                                         rf"\(0..{manifest['schema']['encoding']['code_counts'][0] - 1}\)"):
        reader.read([(0, np.arange(5))])


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
    assert_same_inputs(clone[2][0], before[0])


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
