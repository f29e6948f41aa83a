"""``manifest.json``, the contract between a split and what reads it: load, validate, verify shards.
"""

from .._lazy import lazy_exports

__all__ = ["load_manifest", "validate_manifest", "ShardVerifier"]

__getattr__, __dir__ = lazy_exports(__name__, {
    "load_manifest": "._files",
    "validate_manifest": "._validate",
    "ShardVerifier": ".integrity",
})
