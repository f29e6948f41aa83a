"""Shared fixtures: small synthetic quest logs and splits of them."""

import pytest
from splits import ID_SPLIT_OPTIONS, model_ready_split

from questlearn.synth import write_quest_log


@pytest.fixture(scope="session")
def quest_log(tmp_path_factory):
    """3,000 rows with the tricky ``note`` column (quoted commas, quotes, LF, CRLF, UTF-8) and a BOM."""
    return write_quest_log(tmp_path_factory.mktemp("log") / "quests.csv", rows=3000, seed=7, nasty=True)


@pytest.fixture(scope="session")
def plain_log(tmp_path_factory):
    """2,000 plain rows (no note column), for corrupting in bad-input tests."""
    return write_quest_log(tmp_path_factory.mktemp("plain") / "quests.csv", rows=2000, seed=3)


@pytest.fixture(scope="session")
def id_log(tmp_path_factory):
    """2,500 plain rows; ``attempt_id`` is the 0-based source row."""
    return write_quest_log(tmp_path_factory.mktemp("idlog") / "quests.csv", rows=2500, seed=11)




@pytest.fixture(scope="session")
def id_split(id_log, tmp_path_factory):
    """Model-ready split (CSV and npy shards, ``fill="zero"``) where ``attempt_id``
    is a numeric feature, so batches reveal which rows they hold."""
    out = tmp_path_factory.mktemp("idsplit") / "split"
    model_ready_split(id_log, out, fill="zero", **ID_SPLIT_OPTIONS)
    return out


@pytest.fixture(scope="session")
def id_split_mean(id_log, tmp_path_factory):
    """The same split with missing numbers filled with the sample mean."""
    out = tmp_path_factory.mktemp("idsplitmean") / "split"
    model_ready_split(id_log, out, fill="mean", **ID_SPLIT_OPTIONS)
    return out
