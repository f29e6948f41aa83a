"""The weekday of a monthly series only labels each month at random: the network leaves it out."""

import numpy as np
import pandas as pd
import pytest

from questlearn.data.dataset import QuestSequence
from questlearn.split import split_csv
from questlearn.train import train
from questlearn.train._calendar import monthly_weekdays
from questlearn.train._fit import left_out_codes

SYMBOLS = ("AAA", "BBB", "CCC")


def series_csv(path, dates) -> None:
    """A price per symbol and date: each symbol its own smooth trend over the dates."""
    days = (pd.to_datetime(pd.Series(dates)) - pd.Timestamp("2000-01-01")).dt.days.to_numpy()
    rows = [{"symbol": symbol, "date": date, "price": round(10 * (k + 1) + (k + 1) * day / 100, 2)}
            for k, symbol in enumerate(SYMBOLS) for date, day in zip(dates, days)]
    pd.DataFrame(rows).to_csv(path, index=False)


def scores_with_other_weekdays(tmp_path, dates, capsys) -> tuple:
    """Train briefly on the series over ``dates``; the training line about left-out codes, and whether the
    network's scores move when the rows' weekday codes change (their elapsed days and months kept)."""
    series_csv(tmp_path / "series.csv", dates)
    split_csv(tmp_path / "series.csv", tmp_path / "split", label="price", task="regression", progress=False,
              verbose=False)
    result = train(tmp_path / "split", tmp_path / "model", epochs=1, hidden=(16,), verbose=1, workers=1,
                   saved_model=False)
    said = [line for line in capsys.readouterr().out.splitlines() if "left out of the network" in line]
    data = QuestSequence(tmp_path / "split", "train", batch_size=None)
    x, _ = data.reader.read([(shard, np.arange(int(record["rows"]))) for shard, record in enumerate(data.reader.shards)])
    weekday = data.input_names()["codes"].index("date.weekday")
    moved = dict(x, codes=x["codes"].copy())
    moved["codes"][:, weekday] = moved["codes"][:, weekday] % 7 + 1  # another weekday, still a known one
    before, after = (result.model.predict(rows, verbose=0) for rows in (x, moved))
    return said, float(np.abs(after - before).max())


@pytest.mark.timeout(120)
def test_a_monthly_series_scores_the_same_whatever_its_weekday_code(tmp_path, capsys):
    months = [f"{year}-{month:02d}-01" for year in range(2000, 2008) for month in range(1, 13)]
    said, moved = scores_with_other_weekdays(tmp_path, months, capsys)
    assert moved == 0.0
    assert len(said) == 1 and "date.weekday" in said[0] and "same day of the month" in said[0]


@pytest.mark.parametrize("dates, left_out", [
    ([f"{year}-{month:02d}-15" for year in range(2000, 2004) for month in range(1, 13, 3)], ["date.weekday"]),
    ([str(day.date()) for day in pd.date_range("2020-01-01", periods=96, freq="D")], []),
    ([f"{year}-01-01" for year in range(1970, 1990)], []),  # the weekday is the one code of the year
], ids=["quarterly", "daily", "yearly"])
def test_only_the_weekday_of_a_monthly_or_quarterly_series_is_left_out(tmp_path, dates, left_out):
    series_csv(tmp_path / "series.csv", dates)
    split_csv(tmp_path / "series.csv", tmp_path / "split", label="price", task="regression", progress=False,
              verbose=False)
    assert left_out_codes(QuestSequence(tmp_path / "split", "train", batch_size=None)) == left_out


def test_missing_dates_do_not_count_and_a_single_date_or_a_yearly_series_keeps_the_weekday():
    names = {"numbers": ["t.days", "amount"], "codes": ["t.hour", "t.weekday", "t.month"]}
    firsts = np.array([10957.0, 10988.0, 11017.0, 11048.0])  # 2000-01-01 .. 2000-04-01
    weekdays = np.array([6, 2, 3, 6])
    numbers = np.column_stack([firsts, np.zeros(4)])
    codes = np.column_stack([np.ones(4), weekdays, np.arange(1, 5)]).astype(np.int32)
    assert monthly_weekdays(numbers, codes, names) == ["t.weekday"]
    filled = np.vstack([numbers, [[11000.3, 0.0]]])  # a missing date, filled with the mean: weekday code 0
    assert monthly_weekdays(filled, np.vstack([codes, [[0, 0, 0]]]), names) == ["t.weekday"]
    assert monthly_weekdays(filled, np.vstack([codes, [[1, 4, 1]]]), names) == []  # a 15th: days vary in the month
    assert monthly_weekdays(numbers[:1], codes[:1], names) == []  # one date: nothing to tell apart
    years = np.array([[0.0, 0.0], [365.0, 0.0], [730.0, 0.0], [1096.0, 0.0]])  # 1970-01-01 .. 1973-01-01
    yearly = np.column_stack([np.ones(4), [4, 5, 6, 1], np.ones(4)]).astype(np.int32)
    assert monthly_weekdays(years, yearly, names) == []  # a yearly series: its weekday is the one code of the year
