"""The split's typed state, and the named errors its refusals raise.

The byte-for-byte equality of journals and manifests with those of a
clean run is checked by ``test_split_resume.py`` and ``test_parallel_split.py``;
here: the state round-trips through its journal, the schema objects declare
what the split sets on them, and a user's mistake is a
:class:`~questlearn.errors.QuestlearnError` of its kind (the command prints
those as one line).
"""

import errno
import json
import pickle
from dataclasses import fields

import numpy as np
import pyarrow as pa
import pytest
from splits import rows_file

from questlearn.errors import (
    DiskFullError,
    InputFormatError,
    OptionError,
    OutputFolderError,
    SchemaError,
)
from questlearn.io.csvscan import CsvFormatError
from questlearn.schema._columns import missing_tokens
from questlearn.schema.encoding import Encoding
from questlearn.schema.infer import InferredSchema
from questlearn.split import split_csv
from questlearn.split._params import SplitParameters


def test_the_split_state_round_trips_through_its_journal():
    from questlearn.split._state import SplitState, SubsetState

    params = SplitParameters(label="cleared", seed=4)
    encoding = Encoding("mean", ["power"], [1.5], ["level"], {"level": ["a", "b"]})
    state = SplitState(params, {"files": []}, {"level": "categorical", "power": "numeric", "cleared": "label"},
                       True, [{"name": "power"}], encoding, 120)
    state.start_statistics()
    state.numeric["power"].update(np.array([1.0, 2.5, np.nan]))
    state.category_counts["level"] += np.array([3, 1, 0, 2])  # missing, the one bucket, then "a" and "b"
    state.label_vocabulary.encode(pa.chunked_array([["0", "1", "1"]]))
    state.rng.random(7)
    state.records, state.blank_lines, state.dropped_labels = 3, 2, 1
    state.subsets = {name: SubsetState.fresh(params.seed, number) for number, name in enumerate(("train", "validate"))}
    for subset in state.subsets.values():
        subset.dealer.new_wave(np.full(2, 10, np.int64))
    journal = json.loads(json.dumps(state.to_journal()))

    again = SplitState.from_journal(journal, params, {"files": []})
    again.subsets = state.subsets

    assert json.dumps(again.to_journal(), sort_keys=True) == json.dumps(journal, sort_keys=True)
    assert again.rng.random() == state.rng.random()


def test_a_journal_from_before_drop_missing_labels_resumes_with_none_dropped():
    from questlearn.split._state import SplitState

    params = SplitParameters(label="cleared")
    encoding = Encoding("mean", [], [], [], {})
    state = SplitState(params, {"files": []}, {"cleared": "label"}, True, [], encoding, 5)
    state.start_statistics()
    journal = json.loads(json.dumps(state.to_journal()))
    del journal["dropped_labels"]

    assert SplitState.from_journal(journal, params, {"files": []}).dropped_labels == 0


def test_inferred_schema_and_encoding_declare_what_the_split_sets_on_them():
    assert {"sample", "extent", "notes", "encoding"} <= {f.name for f in fields(InferredSchema)}
    sample = pa.table({"level": ["a", "b", "b", "c", "c", "c"]})
    encoding = Encoding.from_sample(sample, {"level": "categorical"}, max_categories=2)

    assert encoding.capped == {"level": 3} and encoding.vocabularies == {"level": ["c", "b"]}
    assert ("the other 1 values of the sample (past --max-categories 2; raise it to keep more) and values first met "
            "later go to 64 hashed buckets") in encoding.describe()
    assert Encoding.from_record(encoding.as_record()).capped == {}


@pytest.mark.parametrize("wrong", [dict(rows_per_shard=0), dict(val_fraction=1.0), dict(formats=("xml",)),
                                   dict(task="ranking"), dict(max_classes=1), dict(fill="median"),
                                   dict(max_open_shards=0), dict(block_size=10)])
def test_split_parameter_mistakes_are_option_errors(wrong):
    with pytest.raises(OptionError):
        SplitParameters(**wrong)


def test_a_missing_value_token_that_is_not_text_is_an_option_error():
    with pytest.raises(OptionError, match="must be strings"):
        missing_tokens([0])


def test_the_schema_error_of_the_inference_is_the_named_one():
    from questlearn import errors
    from questlearn.schema import infer

    assert infer.SchemaError is errors.SchemaError


def test_two_model_ready_columns_of_one_name_are_a_schema_error():
    with pytest.raises(SchemaError, match="both be named 't.hour'"):  # a numeric column and a datetime t's hour code
        Encoding("mean", ["t.hour", "t.days"], [0.0, 0.0], [], {}, {}, {"t": "YYYY-MM-DD"}).check_column_names()


def test_an_output_folder_holding_other_files_is_an_output_folder_error(tmp_path):
    source = rows_file(tmp_path / "log.csv", 40)
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")

    with pytest.raises(OutputFolderError, match="is not empty"):
        split_csv(source, out, verbose=False)
    assert (out / "notes.txt").read_text() == "mine"


def test_an_output_that_is_the_source_is_an_output_folder_error(tmp_path):
    source = rows_file(tmp_path / "log.csv", 40)

    with pytest.raises(OutputFolderError, match="is the source"):
        split_csv(source, source, verbose=False)


def test_a_finished_split_of_other_parameters_is_an_output_folder_error(tmp_path):
    source = rows_file(tmp_path / "log.csv", 40)
    split_csv(source, tmp_path / "out", verbose=False, rows_per_shard=10)

    with pytest.raises(OutputFolderError, match="already holds a finished split"):
        split_csv(source, tmp_path / "out", verbose=False, rows_per_shard=20)


def test_a_full_disk_during_the_split_is_a_disk_full_error(tmp_path, monkeypatch):
    from questlearn.split import _sequential

    def full(self):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(_sequential._Splitter, "run", full)
    source = rows_file(tmp_path / "log.csv", 40)

    with pytest.raises(DiskFullError, match="is full"):
        split_csv(source, tmp_path / "out", verbose=False)


def test_a_subset_left_without_rows_is_an_option_error(tmp_path):
    source = rows_file(tmp_path / "log.csv", 1)

    with pytest.raises(OptionError, match="1 row"):
        split_csv(source, tmp_path / "out", verbose=False)


@pytest.mark.parametrize("error", [CsvFormatError("logs/b.csv", 9, 120, "expected 3 fields, saw 2"),
                                   SchemaError("the label 'cleared' is missing in every one of its rows"),
                                   OutputFolderError("logs/out is not empty")])
def test_a_parallel_part_error_reaches_the_parent_as_its_named_class_and_message(error):
    from questlearn.split._parallel import _as_named_error

    crossed = pickle.loads(pickle.dumps(_as_named_error(error)))  # as it comes back from a worker process

    assert isinstance(crossed, InputFormatError if isinstance(error, CsvFormatError) else type(error))
    assert str(crossed) == str(error)
