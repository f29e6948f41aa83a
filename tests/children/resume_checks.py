"""Run resume checks of tests/support/resumed.py one after another in this process (on its backend).

Usage: python resume_checks.py SPLIT ROOT CHECK...

Each ``CHECK`` (e.g. ``resumed_equals_uninterrupted``) trains in ``ROOT/CHECK`` and prints
``SAME CHECK BACKEND`` when its resumed run equals the uninterrupted one.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "support"))

import keras  # noqa: E402
import resumed  # noqa: E402

split, root, *checks = sys.argv[1:]
for check in checks:
    getattr(resumed, check)(split, f"{root}/{check}")
    print("SAME", check, keras.backend.backend(), flush=True)
