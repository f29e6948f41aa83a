"""Split a log larger than memory into train and validate shards; inspect a source first.

The pass, stage by stage: ``_plan`` decides everything before it (kinds,
encoding, row estimate, disk); ``_start`` starts a split there or resumes
it from its journal; :mod:`questlearn.io` reads the source as chunks;
``_prepare`` checks and encodes each chunk; ``_sequential`` deals each row
to a subset and a shard (``_scatter``); ``_shards`` and ``_writer`` write
and hash the shard files; ``_journal`` checkpoints the pass's typed state
(``_state``) for resume; ``_record`` builds the manifest from that state and
``_publish`` names the finished files. ``_parallel`` splits part files side
by side and ``_merge`` merges them exactly.
"""

from .._lazy import lazy_exports

__all__ = ["split_csv", "SplitParameters", "inspect_source"]

__getattr__, __dir__ = lazy_exports(__name__, {
    "split_csv": "._dispatch",
    "SplitParameters": "._params",
    "inspect_source": ".inspection",
})
