"""Deal the rows of a subset at random into the free places of its open shards.

Real logs are written in time order. If shards were contiguous stretches
of the source, every batch would come from one stretch of time. Instead,
before the pass the splitter estimates the subset's rows ``N`` (from a
sample spread over the source, with a small margin:
:meth:`questlearn.split._plan.SplitPlan.first_wave_rows`) and opens
``S = ceil(N / rows_per_shard)`` shards at once (at most
:data:`MAX_OPEN_SHARDS` per subset), each with ``rows_per_shard`` free
places. A subset's rows take the free places uniformly at random (a
multivariate hypergeometric draw over the places left, then a seeded
shuffle, :class:`ShardDealer` drawing a fixed number of places at a time
from the subset's own generator, so the result does not depend on how the
source was cut into blocks), so every shard is a uniform random sample of
the rows read while it was open: of the whole source when ``S`` shards
suffice. Within a shard rows keep their source order.

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


DEAL_GROUP_ROWS = 65_536


def rows_by_shard(assignment: np.ndarray, shards: int) -> np.ndarray:
    """Positions of the rows grouped by shard, in order inside each shard.

    A stable sort of small integers: numpy radix-sorts 16-bit keys in linear
    time, where sorting int64 keys costs a merge sort.
    """
    if shards <= np.iinfo(np.uint16).max + 1:
        assignment = assignment.astype(np.uint16)
    return np.argsort(assignment, kind="stable")


class ShardDealer:
    """Deal one subset's rows into its open shards, the same way however the rows arrive.

    The places of the open shards are drawn ``group_rows`` at a time (one
    :func:`deal` per group, from this subset's own generator) and handed out
    in order, so where a row goes depends on its position in the subset
    only, never on how the source was cut into blocks (block size, CSV
    copies or not, a resumed run). Every prefix of a group is a uniform
    sample of the free places, so the last, partly used group is fine.

    Parameters
    ----------
    rng : numpy.random.Generator
        This subset's generator (not the one that picks subsets).
    free : numpy.ndarray
        Free places of each open shard.
    group_rows : int
        Places drawn at a time (memory: 8 bytes each).
    """

    def __init__(self, rng: np.random.Generator, free, group_rows: int = DEAL_GROUP_ROWS):
        self.rng, self.group_rows = rng, int(group_rows)
        self.new_wave(free)

    def new_wave(self, free) -> None:
        """The places of a freshly opened wave of shards."""
        self.free = np.asarray(free, np.int64).copy()
        self.group, self.used, self._start = np.empty(0, np.int64), 0, None

    @property
    def wave_full(self) -> bool:
        """Every place of the open shards is taken."""
        return self.used == len(self.group) and int(self.free.sum()) == 0

    def take(self, count: int) -> np.ndarray:
        """Shard positions of the next rows: ``count`` of them, fewer when the wave is full."""
        if self.used == len(self.group):
            room = int(self.free.sum())
            if room == 0:
                return np.empty(0, np.int64)
            self._start = (self.rng.bit_generator.state, self.free.tolist())
            self.group = deal(self.rng, self.free, min(self.group_rows, room))
            self.free -= np.bincount(self.group, minlength=len(self.free))
            self.used = 0
        taken = self.group[self.used: self.used + count]
        self.used += len(taken)
        return taken

    def state(self) -> dict:
        """What :meth:`restore` needs to continue exactly here (JSON-ready)."""
        if self.used < len(self.group):
            rng, free = self._start
            return {"rng": rng, "free": free, "group": len(self.group), "used": self.used}
        return {"rng": self.rng.bit_generator.state, "free": self.free.tolist(), "group": 0, "used": 0}

    @classmethod
    def restore(cls, state: dict, group_rows: int = DEAL_GROUP_ROWS) -> "ShardDealer":
        rng = np.random.Generator(np.random.PCG64())
        rng.bit_generator.state = state["rng"]
        dealer = cls(rng, state["free"], group_rows)
        if state["group"]:
            dealer._start = (state["rng"], list(state["free"]))
            dealer.group = deal(rng, dealer.free, int(state["group"]))
            dealer.free -= np.bincount(dealer.group, minlength=len(dealer.free))
            dealer.used = int(state["used"])
        return dealer


def dealer_generator(seed: int, subset_number: int) -> np.random.Generator:
    """The generator that deals subset ``subset_number``'s rows (independent of the subset draw)."""
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence([int(seed), 1 + int(subset_number)])))
