"""The split estimates its output before the pass and refuses early when the disk lacks room."""

from __future__ import annotations

from collections import namedtuple

import pytest

from questlearn.split import _sequential as split_module
from questlearn.split import split_csv
from questlearn.synth import write_quest_log

Usage = namedtuple("Usage", "total used free")


def test_a_split_that_cannot_fit_is_refused_before_writing_with_the_figures(tmp_path, monkeypatch, capsys):
    source = write_quest_log(tmp_path / "log.csv", rows=20_000, seed=0)
    out = tmp_path / "split"
    monkeypatch.setattr(split_module.shutil, "disk_usage", lambda path: Usage(10 << 30, (10 << 30) - (1 << 20), 1 << 20))
    with pytest.raises(ValueError) as error:
        split_csv(source, out, id_columns=["attempt_id", "player_id"])
    message = str(error.value)
    assert "not enough disk" in message and "rows x" in message
    assert "1.0 MB free" in message and "float32 numbers" in message and "codes" in message
    assert not out.exists(), "nothing is written when the split is refused"


def test_the_estimate_is_printed_and_close_to_what_is_written(tmp_path, capsys):
    source = write_quest_log(tmp_path / "log.csv", rows=30_000, seed=0)
    out = tmp_path / "split"
    split_csv(source, out, id_columns=["attempt_id", "player_id"])
    printed = capsys.readouterr().out
    line = next(l for l in printed.splitlines() if " of shards (" in l)
    estimated_rows = int(line.split("about ")[1].split(" rows")[0].replace(",", ""))
    assert abs(estimated_rows - 30_000) / 30_000 < 0.05, line
    written = sum(p.stat().st_size for p in out.rglob("*.npy"))
    per_row = float(line.split("(")[1].split(" bytes a row")[0])
    estimated = estimated_rows * per_row
    assert written * 0.95 <= estimated <= written * 1.2, (estimated, written)


def test_csv_copies_count_in_the_estimate(tmp_path, capsys):
    source = write_quest_log(tmp_path / "log.csv", rows=30_000, seed=0)
    split_csv(source, tmp_path / "npy", id_columns=["attempt_id", "player_id"])
    npy = capsys.readouterr().out
    split_csv(source, tmp_path / "both", id_columns=["attempt_id", "player_id"], formats=("csv", "npy"))
    both = capsys.readouterr().out

    def per_row(text):
        line = next(l for l in text.splitlines() if " of shards (" in l)
        return float(line.split("(")[1].split(" bytes a row")[0])

    assert per_row(both) > per_row(npy) + 100  # the CSV row (about 190 bytes here) is added
