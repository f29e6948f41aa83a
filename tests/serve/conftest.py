"""Fixtures of the serving tests."""

import pytest
from trained import train_small_model


@pytest.fixture(scope="session")
def small_model(tmp_path_factory):
    """``(log, split_dir, result)`` of :func:`trained.train_small_model`, trained once a test process and
    shared by the serving modules that only read it (tests that damage a model or split damage a copy)."""
    return train_small_model(tmp_path_factory.mktemp("small_model"))
