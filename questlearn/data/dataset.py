"""``QuestSequence``: a Keras ``PyDataset`` over the shards of a split.

Example
-------
>>> train = QuestSequence("split/", "train", batch_size=1024, workers=4, use_multiprocessing=True)
>>> model.fit(train, epochs=10, shuffle=False)   # the dataset shuffles itself, seeded

Pass ``shuffle=False`` to ``fit``: Keras would otherwise reorder whole
batches with an unseeded shuffle on top of this dataset's seeded one (no
rows are lost either way, but the run is no longer reproducible).
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.util
import os

import numpy as np

from .._orphans import die_with_parent
from ..errors import OptionError
from ..manifest._files import SUBSETS
from ..quiet import keras
from ._batches import BatchPlan, EqualShards, ShardReader
from ._shard_cache import open_split
from ._start_method import choose_start_method
from ._supervision import (
    BatchLoadError,
    note_batch_failed,
    note_batch_finished,
    note_batch_started,
    user_error_class,
    watch_worker_pools,
)


class QuestSequence(keras.utils.PyDataset):
    """Batches of ``(x, y)`` from a split made by :func:`questlearn.split.split_csv`.

    ``x`` is a dict of two blocks: ``"numbers"`` (float32, ``(rows,
    numbers columns)``) and ``"codes"`` (int32, one category code per
    categorical input); a block without columns is left out. Their column
    names are :meth:`input_names`.

    Parameters
    ----------
    split_dir : str or Path
        Directory holding ``manifest.json``, or the URL of a split in an object store
        (``s3://bucket/prefix/``), read through a local shard cache
        (:mod:`questlearn.data._shard_cache`).
    subset : str
        ``"train"``, ``"validate"``, or ``"test"`` when the split has a held-out
        test subset (``split --test-fraction``).
    batch_size : int or None
        Rows per batch, independent of the shard size. The last batch may be
        shorter (it is never dropped). ``None`` gives one batch per shard,
        like the original one-file-one-batch recipe.
    source : str
        ``"npy"`` (model-ready binary shards: a batch is a memory-mapped
        ``take``) or ``"csv"`` (the CSV shards, parsed and encoded on load).
    shuffle : bool
        Seeded per-epoch permutation of shard order and of rows inside each
        shard; every row is still seen exactly once per epoch.
    seed : int
        Seed of that permutation; the same seed gives the same order.
    features : list of str, optional
        Feature columns; default all features of the manifest schema.
    fill, label_mode, cache_shards, verify
        See :class:`questlearn.data._batches.ShardReader`; ``fill`` is the split's
        (``None``, default; another value is an error: the shards are filled
        at split time); ``cache_shards`` open shards per process bound the
        loader's memory; ``verify="once"`` checks each shard file's SHA-256
        the first time it is read.
    workers, use_multiprocessing, max_queue_size
        Keras ``PyDataset`` parallelism, passed to ``super().__init__``.
        Threads (``use_multiprocessing=False``) suit the npy source, whose
        reads release the GIL; processes suit the CSV source.
    cache_dir, cache_limit, storage_options
        For a split in a store: the local cache folder (default
        ``~/.cache/questlearn/shards/<hash of the URL>``), its limit in bytes or
        as ``"20GB"`` (default half the free disk there), and the store's
        options (as ``--storage-option``).

    Notes
    -----
    The object holds paths and the manifest only and opens files lazily, so
    it pickles for the ``spawn`` and ``forkserver`` start methods. With
    ``use_multiprocessing=True`` and no start method chosen by the program,
    workers start by ``forkserver`` (see :mod:`questlearn.data._start_method`). Any error
    while loading a batch is raised as :class:`BatchLoadError` naming the
    batch and its shards; a worker process killed by the OS makes ``fit``
    fail within about a second instead of hanging (see
    :mod:`questlearn.data._supervision`).
    """

    def __init__(self, split_dir, subset: str = "train", batch_size: int | None = 1024, *, source: str = "npy",
                 shuffle: bool = True, seed: int = 0, features=None, fill: str | None = None,
                 label_mode: str = "sparse", cache_shards: int = 2,
                 workers: int = 1, use_multiprocessing: bool = False, max_queue_size: int = 10, verify: str = "once",
                 cache_dir=None, cache_limit=None, storage_options: dict | None = None):
        super().__init__(workers=workers, use_multiprocessing=use_multiprocessing, max_queue_size=max_queue_size)
        if batch_size is not None and int(batch_size) < 1:
            raise OptionError(f"batch_size must be a positive integer or None, got {batch_size}")
        if int(workers) < 1 or int(max_queue_size) < 1:
            raise OptionError(f"workers and max_queue_size must be at least 1, got {workers} and {max_queue_size}")
        # the held-out test shards are checked (and opened) only by a reader of the test subset
        self.manifest, files = open_split(split_dir, (*SUBSETS, "test") if subset == "test" else SUBSETS,
                                          verify=verify, cache_dir=cache_dir, cache_limit=cache_limit,
                                          storage_options=storage_options)
        self.split_dir = str(split_dir)  # as given, for messages; files are read from manifest["root"]
        self.reader = ShardReader(self.manifest, subset, source=source, features=features, fill=fill,
                                  label_mode=label_mode, cache_shards=cache_shards,
                                  verify=verify, files=files)
        if not self.reader.shards:
            raise OptionError(f"the {subset!r} subset of {self.split_dir} has no shards (val_fraction was 0?)")
        self.subset, self.batch_size, self.shuffle, self.seed = subset, batch_size, bool(shuffle), int(seed)
        self.epoch = 0
        self.shard_index, self.shard_count = 0, 1
        self.start_batch = 0  # batches of this epoch to skip: set when resuming mid-epoch (questlearn.train._resume)
        self._plan = None
        self._memory = None  # (x, y, first row of each shard) once read into memory (in_memory)
        self._owner_pid = os.getpid()
        # the shards a reader holds open at once: each worker process's, and this process's own
        files.need_room(subset, self.reader.cache_shards * (int(workers) + 1 if use_multiprocessing else 1),
                        [self.reader._entries(shard) for shard in range(len(self.reader.shards))])
        if use_multiprocessing:
            choose_start_method()  # forkserver, not fork from a threaded process (see questlearn.data._start_method)
            watch_worker_pools()
            multiprocessing.util.register_after_fork(self, QuestSequence._end_with_owner)  # fork workers

    # -- Keras contract --------------------------------------------------
    def __len__(self) -> int:
        total = self.equal_shards.batches if self.shard_count > 1 else len(self.plan)
        return total - self.start_batch  # a resumed epoch starts after its last saved batch

    def __getitem__(self, index: int):
        index = int(index)
        if not 0 <= index < len(self):
            raise IndexError(f"batch index {index} is out of range: this QuestSequence has {len(self)} batches")
        position = index + self.start_batch
        if self.shard_count > 1:  # an equal shard: pad to the common shape with weight-0 copies of its first row
            first, stop, padding = self.equal_shards.batch(self.shard_index, position)
            own_first = self.equal_shards.rows(self.shard_index)[0]
            segments = self.plan.segments_between(first, stop) + self.plan.segments_between(own_first, own_first + 1) * padding
            batch = f"{position} of process {self.shard_index}'s equal shard (rows {first}:{stop} of {self.plan.total_rows})"
        else:
            batch, segments = position, self.plan.segments(position)
        if self._memory is not None:
            return self._take_from_memory(segments)
        in_worker = os.getpid() != self._owner_pid
        if in_worker:
            note_batch_started(self._owner_pid, self._describe(batch, segments))
        try:
            batch_data = self.reader.read(segments)
        except (Exception, SystemExit) as error:
            message = f"could not load {self._describe(batch, segments)}: {type(error).__name__}: {error}"
            user_error = user_error_class(error)
            if in_worker:
                note_batch_failed(self._owner_pid, message, user_error)
            raise BatchLoadError(message, user_error) from None
        if in_worker:
            note_batch_finished(self._owner_pid)
        if self.shard_count > 1:
            weights = np.ones(len(batch_data[1]), np.float32)
            weights[stop - first:] = 0.0
            return (*batch_data, weights)
        return batch_data

    def on_epoch_end(self):
        """Advance to the next epoch's seeded order."""
        self.epoch += 1
        self._plan = None

    # -- serving from memory --------------------------------------------------
    def memory_bytes(self) -> int:
        """Bytes the subset's rows take as arrays (:meth:`in_memory`): 4 a number, 4 a code, 8 a label."""
        rows = sum(int(shard["rows"]) for shard in self.reader.shards)
        return rows * (4 * len(self.reader._numbers) + 4 * len(self.reader._codes) + 8)

    def in_memory(self) -> "QuestSequence":
        """A copy that reads every shard of the subset once and serves its batches from those arrays.

        The batches are the same rows in the same seeded order as this data set's (the same
        :class:`~questlearn.data._batches.BatchPlan` picks them; only where they are read from
        changes), without a file read, a loader thread or a worker process per batch: for a
        subset that fits in memory (:meth:`memory_bytes`). Not for an equal shard of a
        data-parallel run.
        """
        if self.shard_count > 1:
            raise OptionError("in_memory() serves a whole subset: call it before shard()")
        rows = [int(record["rows"]) for record in self.reader.shards]
        firsts, total = np.concatenate([[0], np.cumsum(rows)[:-1]]), sum(rows)
        x = y = None
        for shard, (first, count) in enumerate(zip(firsts, rows)):  # into arrays of the whole subset: no second copy
            part_x, part_y = self.reader.read([(shard, np.arange(count))])
            if x is None:
                x = {block: np.empty((total, *values.shape[1:]), values.dtype) for block, values in part_x.items()}
                y = np.empty((total, *part_y.shape[1:]), part_y.dtype)
            for block, values in part_x.items():
                x[block][first:first + count] = values
            y[first:first + count] = part_y
        clone = QuestSequence.__new__(QuestSequence)
        clone.__dict__.update(self.__dict__)
        clone._plan = None
        clone._memory = (x, y, firsts.astype(np.int64))
        clone.workers, clone.use_multiprocessing = 1, False  # a batch is a fancy index: no loader to overlap
        return clone

    def memory_positions(self, segments) -> np.ndarray:
        """Positions in the arrays :meth:`in_memory` read of ``[(shard, row positions), ...]``, in that order."""
        firsts = self._memory[2]
        if not segments:
            return np.zeros(0, np.int64)
        return np.concatenate([firsts[shard] + rows for shard, rows in segments]).astype(np.int64, copy=False)

    def _take_from_memory(self, segments):
        x, y, _ = self._memory
        positions = self.memory_positions(segments)
        return {block: values[positions] for block, values in x.items()}, y[positions]

    # -- helpers ------------------------------------------------------------
    @property
    def plan(self) -> BatchPlan:
        if self._plan is None or self._plan.epoch != self.epoch:
            rows = [shard["rows"] for shard in self.reader.shards]
            self._plan = BatchPlan(rows, self.batch_size, self.shuffle, self.seed, self.epoch)
            if os.getpid() == self._owner_pid and self._memory is None:  # rows in memory: no shard to fetch again
                self.reader.files.schedule(self.subset, [self.reader._entries(s) for s in self._shards_to_read()])
        return self._plan

    def _shards_to_read(self) -> list[int]:
        """The shards this epoch reads here, in the order it reads them (a split in a store fetches them ahead):
        from the batch it starts at, and only those of its own rows in a data-parallel run."""
        plan = self._plan
        if self.shard_count > 1:
            first, stop = self.equal_shards.rows(self.shard_index)
            first = min(first + self.start_batch * self.batch_size, stop)
        else:
            first, stop = min(self.start_batch * (self.batch_size or 0), plan.total_rows), plan.total_rows
        if self.batch_size is None:
            return [int(s) for s in plan.order[self.start_batch:]]
        if first >= stop:
            return []
        begin = int(np.searchsorted(plan.ends, first, side="right"))
        end = int(np.searchsorted(plan.ends, stop - 1, side="right"))
        return [int(s) for s in plan.order[begin:end + 1]]

    def set_epoch(self, epoch: int) -> None:
        """Jump to the order of ``epoch`` (e.g. after resuming training)."""
        self.epoch = int(epoch)
        self._plan = None

    def shard(self, index: int, count: int) -> "QuestSequence":
        """The part of each epoch that process ``index`` of ``count`` trains on.

        For data-parallel training. Rows, not batches, are split (see
        :class:`questlearn.data._batches.EqualShards`): every one of the ``count``
        copies has the same number of batches, of the same shapes, in every
        epoch, and together they use each row of the epoch's seeded order
        exactly once. A sharded copy (``count > 1``) yields
        ``(x, y, sample_weight)``; the at most ``count - 1`` padding rows per
        epoch that equalise the shapes have weight 0.
        """
        if not 0 <= int(index) < int(count):
            raise OptionError(f"need 0 <= index < count, got index={index}, count={count}")
        if self.shard_count > 1:
            raise OptionError(f"this QuestSequence is already shard {self.shard_index} of {self.shard_count}; shard the unsharded one")
        if self.batch_size is None and int(count) > 1:
            raise OptionError("shard() needs a batch_size: one batch per shard gives processes batches of different sizes")
        clone = QuestSequence.__new__(QuestSequence)
        clone.__dict__.update(self.__dict__)
        clone.shard_index, clone.shard_count = int(index), int(count)
        clone._plan = None
        clone.equal_shards = EqualShards(self.plan.total_rows, self.batch_size, int(count))  # raises if too few rows
        if clone.use_multiprocessing:
            multiprocessing.util.register_after_fork(clone, QuestSequence._end_with_owner)
        return clone

    @property
    def num_classes(self) -> int:
        return self.reader.num_classes

    @property
    def feature_names(self) -> list[str]:
        """The input columns: the numbers block's, then the codes block's."""
        return self.reader.output_names()

    def input_names(self) -> dict:
        """``{"numbers": [...], "codes": [...]}``: the column names of each block of ``x``."""
        return self.reader.input_names()

    def code_counts(self) -> list[int]:
        """How many codes each codes column takes (for the model's one-hot or embedding)."""
        return self.reader.code_counts()

    def feature_quantiles(self):
        """Per numbers column, its sample quantiles from the manifest (the model's number embedding bins)."""
        return self.reader.output_quantiles()

    def day_columns(self) -> list[int]:
        """Positions in the numbers block of each datetime's elapsed days (the model embeds them by the day)."""
        return self.reader.output_day_columns()

    def feature_moments(self):
        """``(mean, variance)`` per numbers column, from the manifest (no data pass)."""
        return self.reader.output_moments()

    def feature_bounds(self):
        """``(lower, upper)`` per numbers column: its range over the split, from the manifest (no data pass);
        NaN where the manifest records none. The model bounds each number to it."""
        return self.reader.output_bounds()

    def _describe(self, batch: int, segments) -> str:
        shards = ", ".join(self.reader.shard_name(shard) for shard, _ in segments)
        return f"batch {batch} of the {self.subset!r} subset of {self.split_dir} (epoch {self.epoch}; shards: {shards})"

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_plan"] = None
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        if os.getppid() == self._owner_pid:  # a spawn worker, unpickling the dataset as it starts
            self._end_with_owner(started_by_owner=True)
        else:  # a forkserver worker: once multiprocessing has set it up (runs the hooks of fork and forkserver only)
            multiprocessing.util.register_after_fork(self, QuestSequence._end_with_owner)

    def _end_with_owner(self, started_by_owner: bool = False) -> None:
        """In a worker process of the training process: end when it dies (:mod:`questlearn._orphans`).

        Runs as a worker process starts, before the pool's initializer:
        from ``__setstate__`` under ``spawn``, and as a ``register_after_fork``
        hook under ``fork`` (registered by ``__init__``; the registry is
        copied) and ``forkserver`` (registered by ``__setstate__``); only in
        a child of the process that made this dataset. No parent-death
        signal: Keras starts its workers from a thread that ends before they do.
        """
        parent = multiprocessing.parent_process()
        ours = started_by_owner or (parent is not None and parent.pid == self._owner_pid)
        if ours and os.getpid() != self._owner_pid:
            die_with_parent(owner_pid=self._owner_pid, death_signal=False)

    def __repr__(self) -> str:
        return (f"QuestSequence({self.split_dir!r}, subset={self.subset!r}, batch_size={self.batch_size}, "
                f"source={self.reader.source!r}, batches={len(self)}, rows={self.plan.total_rows})")
