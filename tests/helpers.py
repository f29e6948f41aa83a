"""Helpers shared by the tests (importable from test modules and child scripts)."""

import os

ID_COLUMNS = ("attempt_id", "player_id")


def run_env():
    """Environment for child Python processes: quiet TensorFlow, same backend."""
    env = dict(os.environ)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    env["PYTHONUNBUFFERED"] = "1"
    return env
