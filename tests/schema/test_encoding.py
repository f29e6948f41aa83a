"""The model-ready encoding: fixed from the sample, applied the same way everywhere."""

from __future__ import annotations


import numpy as np
import pyarrow as pa
import pytest
from helpers import run_questlearn

from questlearn.errors import SchemaError
from questlearn.schema.datetimes import detect_format
from questlearn.schema.encoding import QUANTILE_BINS, Encoding


def sample_encoding(fill="mean"):
    sample = pa.table({"power": ["1", "NA", "3", ""], "kind": ["b", "a", None, "b"], "cleared": ["0", "1", "0", "1"]})
    return Encoding.from_sample(sample, {"power": "numeric", "kind": "categorical", "cleared": "label"}, fill,
                                null_values=["NA"])


def test_the_encoding_comes_from_the_sample_fill_mean_and_most_frequent_value_first():
    encoding = sample_encoding()
    assert encoding.fill_values == [2.0]
    assert encoding.vocabularies == {"kind": ["b", "a"]}  # b twice, a once
    assert encoding.hash_buckets == {"kind": 1}  # a small vocabulary shares one out-of-vocabulary code
    assert encoding.indicators == ["power"]  # missing in the sample: a missing-value indicator code column
    assert encoding.code_columns == ["kind", "power.missing"] and encoding.code_counts == [1 + 1 + 2, 2]
    assert encoding.code_dtype == np.uint8
    edges = encoding.quantiles["power"]  # of the present values 1 and 3: QUANTILE_BINS equal bins between them
    assert len(edges) == QUANTILE_BINS + 1 and edges[0] == 1.0 and edges[-1] == 3.0
    np.testing.assert_allclose(np.diff(edges), 2 / QUANTILE_BINS, rtol=1e-5)
    assert sample_encoding("zero").fill_values == [0.0]
    ties = Encoding.from_sample(pa.table({"k": ["c", "a", "c", "a", "b"]}), {"k": "categorical"})
    assert ties.vocabularies == {"k": ["a", "c", "b"]}  # equal counts: the smaller value first


def test_a_vocabulary_past_max_categories_keeps_the_most_frequent_and_hashes_the_rest():
    sample = pa.table({"k": [f"v{i}" for i in range(20) for _ in range(i + 1)]})  # v19 the most frequent
    encoding = Encoding.from_sample(sample, {"k": "categorical"}, max_categories=5, hash_buckets=8)
    assert encoding.vocabularies == {"k": ["v19", "v18", "v17", "v16", "v15"]} and encoding.capped == {"k": 20}
    assert encoding.hash_buckets == {"k": 8} and encoding.code_counts == [1 + 8 + 5]
    many = Encoding.from_sample(sample, {"k": "categorical"}, hash_buckets=8)
    assert many.hash_buckets == {"k": 8} and len(many.vocabularies["k"]) == 20  # more than 16 values: the buckets asked


def test_rows_become_filled_float32_numbers_and_integer_codes_in_the_order_asked():
    encoding = sample_encoding()
    numbers, codes, counts = encoding.encode({"power": np.array([5.0, np.nan, 7.0, 1.0])},
                                             {"kind": pa.chunked_array([["b", "zebra", None, ""]])},
                                             order=np.array([2, 0, 1, 3]))
    assert numbers.dtype == np.float32 and numbers.flags.c_contiguous and codes.flags.c_contiguous
    assert numbers.tolist() == [[7], [5], [2], [1]]  # a missing number is the fill value
    assert codes.dtype == np.uint8
    # kind: missing or empty 0, unseen the one bucket 1, "b" 2; power.missing: 1 where power was missing
    assert codes.tolist() == [[0, 0], [2, 0], [1, 1], [0, 0]]
    assert counts["kind"].tolist() == [2, 1, 1, 0]  # rows per code: missing, the bucket, "b", "a"


def test_values_outside_the_vocabulary_go_to_the_bucket_keras_string_lookup_hashes_them_to():
    import farmhash

    encoding = Encoding("mean", [], [], ["k"], {"k": ["a", "b"]}, {"k": 16})
    unseen = ["zebra", "yak", "x", "zebra", "Ω"]
    codes, counts = encoding.codes_of("k", pa.array(unseen + ["b", None]))
    assert codes.tolist() == [1 + farmhash.fingerprint64(v) % 16 for v in unseen] + [1 + 16 + 1, 0]
    assert counts.sum() == 7 and counts[1:17].sum() == 5 and len(counts) == 1 + 16 + 2


def test_a_column_constant_over_the_split_is_not_normalised_by_a_zero_variance():
    """A numbers column no row of the split changed has variance 0; dividing by it
    would turn another value at prediction time into a huge input."""
    encoding = Encoding("mean", ["power", "stamina"], [2.0, 4.0], [], {})
    stats = {"power": {"mean": 2.0, "variance": 0.0, "missing": 0},
             "stamina": {"mean": 2.0, "variance": 1.0, "missing": 1}}
    means, variances = encoding.moments(stats, rows=4)
    assert means.tolist() == [2.0, 2.5]  # the missing row counted at its fill value, 4
    assert variances.tolist() == [1.0, 0.75 * (1.0 + 4.0) + 0.25 * 16.0 - 2.5 ** 2]


def test_the_record_round_trips():
    encoding = sample_encoding()
    again = Encoding.from_record(encoding.as_record())
    assert again.as_record() == encoding.as_record() and again.row_bytes() == encoding.row_bytes() == 4 + 1 + 1  # power; the codes of kind, power.missing


COLLIDING = [
    # (kinds, sample, the clashing name): a datetime column t adds the inputs t.days, t.hour, t.weekday, t.month
    ({"t": "datetime", "t.days": "numeric"}, {"t": ["2024-01-01", "2024-01-02"], "t.days": ["1", "2"]}, "t.days"),
    ({"t": "datetime", "t.month": "categorical"}, {"t": ["2024-01-01", "2024-01-02"], "t.month": ["a", "b"]},
     "t.month"),
]


@pytest.mark.parametrize("kinds,sample,name", COLLIDING, ids=["numeric", "categorical"])
def test_model_inputs_named_like_another_column_are_refused_naming_them(kinds, sample, name):
    sample = pa.table(sample)
    with pytest.raises(SchemaError) as caught:
        Encoding.from_sample(sample, kinds, datetime_formats={"t": detect_format(sample["t"])})
    message = str(caught.value)
    assert f"named {name!r}" in message and "rename the source column" in message and "\n" not in message


def test_a_split_with_colliding_input_names_is_refused_in_one_line_before_writing(tmp_path):
    source = tmp_path / "clash.csv"
    source.write_text("t,t.days,cleared\n" + "".join(f"2024-01-{1 + i % 28:02d},{i},{i % 2}\n" for i in range(40)))
    out = tmp_path / "out"
    result = run_questlearn("split", "--no-progress", source, out)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    error = [line for line in result.stderr.splitlines() if "error" in line]
    assert len(error) == 1 and "both be named 't.days'" in error[0]
    assert not out.exists()
