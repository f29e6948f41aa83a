"""From shards to batches: batch plans, shard reading, the Keras ``PyDataset``, worker supervision.
"""

from .._lazy import lazy_exports

__all__ = ["QuestSequence", "BatchLoadError", "EqualShards"]

__getattr__, __dir__ = lazy_exports(__name__, {
    "QuestSequence": ".dataset",
    "BatchLoadError": "._supervision",
    "EqualShards": "._batches",
})
