"""A Parquet sample is spread over the source, within row groups too, so the encoding does not depend on row order."""

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from questlearn.io._parquet_columns import readings_of
from questlearn.io.sources import resolve_sources
from questlearn.manifest import load_manifest
from questlearn.schema._sampling import sample_parquet
from questlearn.split import split_csv


def sorted_table(rows=20_000, categories=40, seed=0):
    """Rows shuffled, then sorted by ``shop``; ``amount`` grows with the shop, so the first rows' mean is low."""
    rng = np.random.default_rng(seed)
    shop = rng.integers(0, categories, rows)
    table = pa.table({"row": np.arange(rows), "shop": [f"s{s:02d}" for s in shop],
                      "amount": shop * 10.0 + rng.normal(0, 3, rows), "label": rng.integers(0, 2, rows)})
    return table.take(pa.array(rng.permutation(rows))).sort_by("shop")


def encoding_of(source, out):
    split_csv(source, out, label="label", id_columns=["row"], progress=False, verbose=False)
    manifest = load_manifest(out)
    encoding = manifest["schema"]["encoding"]
    return encoding["vocabularies"]["shop"], dict(zip(encoding["numeric"], encoding["fill_values"]))


def test_a_parquet_file_sorted_by_a_category_gets_its_late_values_in_the_vocabulary(tmp_path):
    table = sorted_table()
    pq.write_table(table, tmp_path / "sorted.parquet")  # one row group
    vocabulary, _ = encoding_of(tmp_path / "sorted.parquet", tmp_path / "split")
    assert sorted(vocabulary) == [f"s{s:02d}" for s in range(40)]


def test_a_csv_and_a_parquet_copy_of_a_sorted_table_get_close_fill_values(tmp_path):
    table = sorted_table()
    pq.write_table(table, tmp_path / "sorted.parquet")
    pa_csv.write_csv(table, tmp_path / "sorted.csv")
    _, parquet_fills = encoding_of(tmp_path / "sorted.parquet", tmp_path / "from_parquet")
    _, csv_fills = encoding_of(tmp_path / "sorted.csv", tmp_path / "from_csv")
    spread = float(np.std(table["amount"].to_numpy()))
    assert abs(parquet_fills["amount"] - csv_fills["amount"]) < 0.05 * spread


def test_a_large_row_group_is_sampled_in_batches_spread_over_it(tmp_path):
    table = sorted_table(rows=50_000)
    pq.write_table(table, tmp_path / "one_group.parquet", row_group_size=50_000)
    files = resolve_sources(tmp_path / "one_group.parquet")
    sample, note = sample_parquet(files, readings_of(table.schema), rows=4096)
    assert 3000 <= sample.num_rows <= 4096 and note.endswith("spread over 1 row group of 1 Parquet file")
    positions = np.flatnonzero(np.isin(table["row"].to_numpy(), sample["row"].to_numpy()))  # in the file's order
    assert positions[0] < 1000 and positions[-1] > 49_000  # from the group's start to its end
    assert np.diff(positions).max() < 50_000 / 8  # no long stretch left out
    assert {"s00", "s39"} <= set(sample["shop"].to_pylist())  # the first shop and the last


def test_the_first_and_the_last_of_many_row_groups_are_sampled(tmp_path):
    table = sorted_table()
    pq.write_table(table, tmp_path / "groups.parquet", row_group_size=1700)  # 12 row groups
    sample, note = sample_parquet(resolve_sources(tmp_path / "groups.parquet"), readings_of(table.schema))
    assert {"s00", "s39"} <= set(sample["shop"].to_pylist())  # the first group's shop and the last's
    assert note.endswith("spread over 9 row groups of 1 Parquet file")
