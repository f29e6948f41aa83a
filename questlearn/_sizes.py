"""Byte counts as people read them ("950.0 kB", "12.3 MB", "1.45 GB")."""

from __future__ import annotations


def human_size(count: float) -> str:
    """``count`` bytes in kB below 100 kB, MB below 1 GB, then GB and TB (decimal units)."""
    if count < 100_000:
        return f"{count / 1e3:.1f} kB"
    if count < 1e9:
        return f"{count / 1e6:.1f} MB"
    if count < 1e12:
        return f"{count / 1e9:.2f} GB"
    return f"{count / 1e12:.2f} TB"
