"""Deal the rows of a subset at random into the free places of its open shards.

Real logs are written in time order. If shards were contiguous stretches
of the source, every batch would come from one stretch of time. Instead,
before the pass the splitter estimates the subset's rows ``N`` and opens
``S = ceil(N / rows_per_shard)`` shards at once (at most
:data:`MAX_OPEN_SHARDS` per subset), each with ``rows_per_shard`` free
places. Each block's rows are dealt into the free places uniformly at
random (a multivariate hypergeometric draw over the places left, then a
seeded shuffle), so every shard is a uniform random sample of the rows
read while it was open: of the whole source when ``S`` shards suffice.
Within a shard rows keep their source order.

When the estimate was short, or ``S`` was capped, the places run out
before the source does: the open shards close as a *wave* and a new wave
opens, sized from the bytes still to read. Shards of a wave sample the
stretch of the source read while it was open (at least
``MAX_OPEN_SHARDS * rows_per_shard`` rows per subset when capped).

Cost of ``K`` open shards: ``K * parts`` file descriptors, a running
SHA-256 and a few counters each (about 1 KB); the rows themselves are
written as each block is dealt, so memory does not grow with ``K``.
"""

from __future__ import annotations

import math

import numpy as np

MAX_OPEN_SHARDS = 256


def shards_for(rows: float, rows_per_shard: int, limit: int = MAX_OPEN_SHARDS) -> int:
    """How many shards to open for about ``rows`` rows."""
    return int(min(max(1, math.ceil(rows / rows_per_shard)), limit))


def deal(rng: np.random.Generator, free: np.ndarray, count: int) -> np.ndarray:
    """Assign ``count`` rows to open shards with ``free`` places each.

    Returns the shard position of every row (``count`` of them, at most
    ``free.sum()``), drawn so that each row is equally likely to take any
    free place.
    """
    if count > int(free.sum()):
        raise ValueError(f"cannot deal {count} rows into {int(free.sum())} free places")
    per_shard = rng.multivariate_hypergeometric(free.astype(np.int64), count)
    assignment = np.repeat(np.arange(len(free), dtype=np.int64), per_shard)
    rng.shuffle(assignment)
    return assignment
