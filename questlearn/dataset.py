"""Deprecated: ``QuestSequence`` lives in :mod:`questlearn.data` (this path goes in the next release)."""

import warnings

from .data.dataset import QuestSequence

__all__ = ["QuestSequence"]

warnings.warn("questlearn.dataset is deprecated: import QuestSequence from questlearn.data (or questlearn)",
              DeprecationWarning, stacklevel=2)
