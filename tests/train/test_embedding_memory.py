"""The memory of the model's embedding tables: printed by the split with its encoding, and by train before it
builds the model, from one rule (questlearn.train._embedding)."""

import pytest

from questlearn.split import split_csv
from questlearn.train import _fit
from questlearn.train._embedding import embedding_bytes

SHOPS = 40  # more than 16 values: 64 hashed buckets, so 1 + 64 + 40 = 105 codes, embedded in 22 dimensions
TABLE_BYTES = 105 * 22 * 4


def shops_split(tmp_path, capsys):
    source = tmp_path / "shops.csv"
    source.write_text("shop,amount,label\n" + "".join(f"shop{i % SHOPS},{i % 11},{i % 2}\n" for i in range(400)))
    split_csv(source, tmp_path / "split", label="label", val_fraction=0.25, progress=False, verbose=True)
    return tmp_path / "split", capsys.readouterr().out


def test_embedding_bytes_sum_codes_times_width_times_four_over_embedded_columns_only():
    assert embedding_bytes([105, 32, 7]) == TABLE_BYTES  # 32 codes or fewer enter one-hot: no table
    assert embedding_bytes([1 + 64 + 1_000_000]) == 1_000_065 * 50 * 4  # the width is capped at 50


def test_the_split_prints_the_embedding_tables_bytes_with_its_encoding(tmp_path, capsys):
    _, printed = shops_split(tmp_path, capsys)
    line = next(line for line in printed.splitlines() if "embedding tables" in line)
    assert "1 codes column(s) of 105 codes" in line and "9.2 kB" in line


class Built(Exception):
    pass


def test_train_prints_the_embedding_tables_bytes_before_it_builds_the_model(tmp_path, capsys, monkeypatch):
    split_dir, _ = shops_split(tmp_path, capsys)

    def stop(*args, code_counts, **kwargs):
        assert embedding_bytes(code_counts) == TABLE_BYTES
        raise Built

    monkeypatch.setattr(_fit, "build_model", stop)
    with pytest.raises(Built):
        _fit.train(split_dir, tmp_path / "model", epochs=1, batch_size=64, workers=1, verbose=1)
    assert "embedding tables: 1 codes column(s) of 105 codes in all take 9.2 kB" in capsys.readouterr().out
