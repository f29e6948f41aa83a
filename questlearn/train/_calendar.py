"""Which datetime codes the network leaves out: a weekday that only labels each month of a monthly series.

A datetime column ``t`` enters the model as its elapsed days ``t.days`` and
the codes ``t.hour``, ``t.weekday`` and ``t.month``
(:mod:`questlearn.schema.datetimes`). When every training date falls on the
same day of the month, in several months of the year (a monthly or
quarterly series: the first of each month), ``t.weekday`` says nothing about
the calendar that ``t.days`` and ``t.month`` do not: it is the weekday of
that day in each month, a label that jumps from month to month at random
(the first of March 2004 a Monday, of April a Thursday). The network
combines it with the elapsed days to tell the months apart and memorise the
training rows instead of following each series between them
(vega_datasets' monthly stock prices of 5 symbols, about 340 training rows:
test RMSE 32 with it, 21.5 without, CatBoost 21; three seeds), so the model
leaves it out. Its hour (constant at midnight) and month (the season) stay.

A yearly series (every date the same day of the year: its month and hour
constant) keeps its weekday: there the weekday is the one code that sets
years apart, and the network uses it (vega_datasets' cars by model year,
about 240 training rows: test RMSE 2.81 with it, 2.97 without; three splits
trained with three seeds each).

The dates are read from a bounded sample of the training shards, spread
over the subset (:func:`sample_positions`); a row whose weekday code is 0
(its date missing, filled) does not count. The choice is printed.
"""

from __future__ import annotations

import numpy as np

SAMPLE_SHARDS = 8  # training shards the dates are read from, at most, spread over the subset
SAMPLE_ROWS_PER_SHARD = 2048  # rows read from each, at most, spread over the shard
EPOCH = np.datetime64("1970-01-01", "D")


def sample_positions(shard_rows) -> list:
    """``[(shard, row positions), ...]``: at most :data:`SAMPLE_SHARDS` shards spread evenly over the subset,
    and at most :data:`SAMPLE_ROWS_PER_SHARD` rows spread evenly over each."""
    shard_rows = [int(rows) for rows in shard_rows]
    shards = np.unique(np.linspace(0, len(shard_rows) - 1, min(SAMPLE_SHARDS, len(shard_rows))).round().astype(int))
    return [(int(shard), np.unique(np.linspace(0, shard_rows[shard] - 1, min(SAMPLE_ROWS_PER_SHARD,
                                                                          shard_rows[shard])).round().astype(np.int64)))
            for shard in shards if shard_rows[shard]]


def monthly_weekdays(numbers: np.ndarray, codes: np.ndarray, names: dict) -> list[str]:
    """The ``t.weekday`` codes columns of the datetimes whose sampled dates all fall on one day of the month,
    in more than one month of the year (a yearly series keeps its weekday: see the module's docstring).

    Parameters
    ----------
    numbers, codes : numpy.ndarray
        A sample of training rows: the model's numbers and codes blocks.
    names : dict
        ``{"numbers": [...], "codes": [...]}``: the column names of each block.
    """
    numbers_names, codes_names = names.get("numbers", []), names.get("codes", [])
    left_out = []
    for position, name in enumerate(numbers_names):
        weekday = f"{name[:-len('.days')]}.weekday" if name.endswith(".days") else None
        if weekday not in codes_names:
            continue
        known = codes[:, codes_names.index(weekday)] > 0  # code 0: the date is missing (filled)
        days = np.floor(numbers[known, position]).astype(np.int64)
        if len(np.unique(days)) < 2:
            continue  # one date: nothing to tell apart
        months = (EPOCH + days).astype("datetime64[M]")
        day_of_month = (EPOCH + days) - months
        month_of_year = months.astype(np.int64) % 12
        if len(np.unique(day_of_month)) == 1 and len(np.unique(month_of_year)) > 1:
            left_out.append(weekday)
    return left_out


def describe_left_out(left_out) -> str | None:
    """One line naming the weekday codes the model leaves out, and why; ``None`` when there are none."""
    if not left_out:
        return None
    return (f"questlearn: left out of the network: {', '.join(left_out)}: every sampled training date falls on the "
            "same day of the month, so the weekday only labels each month at random (the elapsed days and the "
            "month stay)")
