"""Helpers shared by the tests (importable from test modules and child scripts)."""

import os

ID_COLUMNS = ("attempt_id", "player_id")
# Why the torch tests skip where torch is missing (CI among them) and how to run them.
TORCH_MISSING = ("torch is not installed; the test extra leaves it out because its default wheel pulls gigabytes "
                 "of CUDA libraries. Run these tests after: pip install torch --index-url "
                 "https://download.pytorch.org/whl/cpu")


def run_env():
    """Environment for child Python processes: quiet TensorFlow, same backend."""
    env = dict(os.environ)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    env["PYTHONUNBUFFERED"] = "1"
    return env
