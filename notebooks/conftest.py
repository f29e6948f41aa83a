"""nbval settings: keep notebook runs small and compare only deterministic output."""

import os

import pytest

# Notebooks read this switch and use a small data set (kernels inherit the environment).
os.environ.setdefault("QUESTLEARN_SMOKE", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def pytest_collectstart(collector):
    """Ignore stderr (TensorFlow and progress-bar noise) in checked cells."""
    if collector.fspath and collector.fspath.ext == ".ipynb":
        collector.skip_compare += ("stderr", "text/html", "application/javascript", "application/vnd.jupyter.widget-view+json")


def pytest_itemcollected(item):
    """All notebook cells run on one pytest-xdist worker, in order: each notebook's cells share one
    kernel, and notebooks 02-05 read the split that notebook 01 writes to ``data/``."""
    if item.path.suffix == ".ipynb":
        item.add_marker(pytest.mark.xdist_group("notebooks"))
