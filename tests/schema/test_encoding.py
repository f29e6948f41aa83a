"""The model-ready encoding: fixed from the sample, applied the same way everywhere."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pyarrow as pa
import pytest
from helpers import run_env

from questlearn.schema.encoding import Encoding


def sample_encoding(fill="mean"):
    sample = pa.table({"power": ["1", "NA", "3", ""], "kind": ["b", "a", None, "b"], "cleared": ["0", "1", "0", "1"]})
    return Encoding.from_sample(sample, {"power": "numeric", "kind": "categorical", "cleared": "label"}, fill,
                                null_values=["NA"])


def test_the_encoding_comes_from_the_sample_fill_mean_and_sorted_vocabulary():
    encoding = sample_encoding()
    assert encoding.fill_values == [2.0]
    assert encoding.vocabularies == {"kind": ["a", "b"]}
    assert encoding.columns() == ["power", "kind=a", "kind=b", "kind=<other>"]
    assert sample_encoding("zero").fill_values == [0.0]


def test_rows_become_filled_one_hot_float32_in_the_order_asked():
    encoding = sample_encoding()
    x, counts = encoding.encode({"power": np.array([5.0, np.nan, 7.0])},
                                {"kind": pa.chunked_array([["b", "zebra", None]])}, order=np.array([2, 0, 1]))
    assert x.dtype == np.float32 and x.flags.c_contiguous
    assert x.tolist() == [[7, 0, 0, 0], [5, 0, 1, 0], [2, 0, 0, 1]]  # missing kind: all zeros; unseen: <other>
    assert counts["kind"].tolist() == [0, 1, 1]


def test_a_column_constant_over_the_split_is_not_normalised_by_a_zero_variance():
    """An <other> column no training row reached has mean 0 and variance 0; dividing by it
    would turn an unseen category at prediction time into a huge input."""
    encoding = sample_encoding()
    stats = {"power": {"mean": 2.0, "variance": 0.0, "missing": 0},
             "kind": {"category_counts": {"a": 3, "b": 1}, "oov": 0}}
    means, variances = encoding.moments(stats, rows=4)
    assert means.tolist() == [2.0, 0.75, 0.25, 0.0]
    assert variances.tolist() == [1.0, 0.1875, 0.1875, 1.0]


def test_the_record_round_trips():
    encoding = sample_encoding()
    again = Encoding.from_record(encoding.as_record())
    assert again.as_record() == encoding.as_record() and again.width == encoding.width == 4


COLLIDING = [
    # (kinds, sample, the clashing name, what the message must say to rename)
    ({"x=a": "numeric", "x": "categorical"}, {"x=a": ["1", "2"], "x": ["a", "b"]}, "x=a", "rename column 'x=a'"),
    ({"x": "categorical", "x=a": "categorical"}, {"x": ["a=b"], "x=a": ["b"]}, "x=a=b", "rename column 'x=a'"),
    ({"x": "categorical"}, {"x": ["<other>", "b"]}, "x=<other>", "rename the value '<other>' of column 'x'"),
]


@pytest.mark.parametrize("kinds,sample,name,fix", COLLIDING, ids=["numeric", "categorical", "other"])
def test_one_hot_columns_named_like_another_column_are_refused_naming_both(kinds, sample, name, fix):
    with pytest.raises(ValueError) as caught:
        Encoding.from_sample(pa.table(sample), kinds)
    message = str(caught.value)
    assert f"named {name!r}" in message and fix in message and "\n" not in message
    for column in kinds:
        assert f"column {column!r}" in message


def test_a_split_with_colliding_one_hot_names_is_refused_in_one_line_before_writing(tmp_path):
    source = tmp_path / "clash.csv"
    source.write_text("x,x=a,cleared\n" + "".join(f"{'ab'[i % 2]},{i},{i % 2}\n" for i in range(40)))
    out = tmp_path / "out"
    result = subprocess.run([sys.executable, "-m", "questlearn", "split", "--no-progress", str(source), str(out),
                             "--categorical-column", "x"], capture_output=True, text=True, env=run_env())
    assert result.returncode == 2 and "Traceback" not in result.stderr
    error = [line for line in result.stderr.splitlines() if "error" in line]
    assert len(error) == 1 and "'x=a'" in error[0] and "categorical column 'x'" in error[0]
    assert not out.exists()
