"""The state of a split pass: what its journal records, typed.

A :class:`SplitState` holds everything a killed split needs to resume
byte-identical (where the pass stands, its random state, the column kinds
and encoding, the statistics so far, each subset's shards as a
:class:`SubsetState`); :meth:`SplitState.to_journal` writes it as the JSON of
``.split-journal.json`` (:mod:`questlearn.split._journal`) and
:meth:`SplitState.from_journal` reads it back, journals written by earlier
versions included. The manifest record (:mod:`questlearn.split._record`) is
built from it too.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..schema._columns import CLASSIFICATION, REGRESSION, NumericStats, Vocabulary
from ..schema.encoding import Encoding
from ._params import SplitParameters
from ._scatter import ShardDealer, dealer_generator
from ._shards import ShardFiles


def start_position(file: int = 0) -> dict:
    """The journal position at the start of source file number ``file``."""
    return {"file": file, "offset": None, "line": None, "read_to": None, "expect": None, "batch": 0}


@dataclass
class SubsetState:
    """One subset (``train``, ``validate`` or ``test``) during the pass.

    Attributes
    ----------
    dealer : ShardDealer or None
        Deals the subset's rows into the places of its open shards (None in
        a record of parallel parts, which deal no rows).
    open : list of ShardFiles
        The shards of the current wave.
    label_counts : list of dict
        Rows per label class of each open shard (classification).
    closed : list of dict
        The records of the shards closed so far
        (:class:`~questlearn.split._journal.CloseShard` appends them, in the
        writer thread).
    next_index : int
        The number the next opened shard gets.
    rows : int
        Rows dealt to the subset so far.
    waves : int
        Waves of shards opened so far.
    """

    dealer: ShardDealer | None
    open: list = field(default_factory=list)
    label_counts: list = field(default_factory=list)
    closed: list = field(default_factory=list)
    next_index: int = 0
    rows: int = 0
    waves: int = 0

    @classmethod
    def fresh(cls, seed: int, number: int) -> SubsetState:
        """Subset number ``number`` (0: train, 1: validate, 2: test) of a split with ``seed``, before any shard."""
        return cls(ShardDealer(dealer_generator(seed, number), []))

    def to_journal(self) -> dict:
        """The journal entry; ``closed`` stays the live list, so the closings queued before the
        journal write are in it (:class:`~questlearn.split._journal.WriteJournal` copies it and adds
        the open shards' sizes)."""
        return {"open": [{"index": shard.index, "rows": shard.rows, "label_counts": dict(counts)}
                         for shard, counts in zip(self.open, self.label_counts)],
                "dealer": self.dealer.state(), "closed": self.closed, "next_index": self.next_index,
                "rows": self.rows, "waves": self.waves}

    @classmethod
    def from_journal(cls, saved: dict, folder: Path, parts: dict) -> SubsetState:
        """The subset a journal entry describes, its open shards reopened in ``folder`` (cut to the journal's sizes)."""
        shards = []
        for entry in saved["open"]:
            shard = ShardFiles(folder, entry["index"], parts)
            shard.reopen(entry["rows"], entry["sizes"])
            shard.pieces = {part: [list(piece) for piece in pieces] for part, pieces in entry.get("pieces", {}).items()}
            shards.append(shard)
        return cls(ShardDealer.restore(saved["dealer"]), shards, [e["label_counts"] for e in saved["open"]],
                   saved["closed"], saved["next_index"], saved["rows"], saved["waves"])

    def partial_names(self) -> set:
        """The names of the files of its open and closed shards (anything else in its folder is not its own)."""
        names = {shard.partial_path(part).name for shard in self.open for part in shard.parts}
        return names | {name for closed in self.closed for name in closed["partial_names"]}


@dataclass
class SplitState:
    """A split pass's state: identity, position, schema, statistics and subsets.

    Attributes
    ----------
    params : SplitParameters
    fingerprint : dict
        The source's files as they were when the split started (a resume
        refuses a changed source).
    kinds, label_numeric, inferred, encoding
        The column kinds, whether the label is numeric, the inference
        record (a list of column reports) and the model-ready encoding.
    estimated_rows : int
        The rows the plan expected (shard waves are sized from it).
    open_limit : int
        Shards open at once (not journaled: decided again on resume).
    position : dict
        Where the pass stands in the source (file, byte offset, line, ...).
    done_files : list of dict
        The record of each file read to its end.
    file_rows, records, blank_lines, empty_files, dropped_labels : int
        Rows read of the current file, rows read in all, blank lines
        skipped, header-only files, rows left out for a missing label.
    rng : numpy.random.Generator
        The train/validate/test draw.
    numeric : dict
        ``{column: NumericStats}`` of the numeric columns.
    category_counts : dict
        ``{column: int64 array}``: rows per vocabulary value of each
        categorical column, the last entry the out-of-vocabulary rows.
    label_vocabulary : Vocabulary or None
        The label classes met so far (classification).
    label_stats : dict
        ``{subset: NumericStats}`` of the label (regression).
    label_overall : NumericStats or None
        The label's statistics over the whole split (regression) where they
        are merged otherwise than from ``label_stats`` (a parallel split
        merges its parts' totals); None: merged from ``label_stats``. Not
        journaled.
    subsets : dict
        ``{subset: SubsetState}``.
    """

    params: SplitParameters
    fingerprint: dict
    kinds: dict
    label_numeric: bool
    inferred: list
    encoding: Encoding
    estimated_rows: int
    open_limit: int = 0
    position: dict = field(default_factory=start_position)
    done_files: list = field(default_factory=list)
    file_rows: int = 0
    records: int = 0
    blank_lines: int = 0
    empty_files: int = 0
    dropped_labels: int = 0
    rng: np.random.Generator | None = None
    numeric: dict = field(default_factory=dict)
    category_counts: dict = field(default_factory=dict)
    label_vocabulary: Vocabulary | None = None
    label_stats: dict = field(default_factory=dict)
    label_overall: NumericStats | None = None
    subsets: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.rng is None:
            self.rng = np.random.Generator(np.random.PCG64(self.params.seed))

    def start_statistics(self, numeric=None, vocabularies=None, label_stats=None) -> None:
        """The statistics of an empty pass, or those a journal recorded."""
        p = self.params
        self.numeric = {n: NumericStats(**(numeric or {}).get(n, {})) for n in self.encoding.numeric}
        codes = dict(zip(self.encoding.categorical, self.encoding.code_counts))
        self.category_counts = {n: np.asarray((vocabularies or {}).get(n, [0] * codes[n]), np.int64)
                                for n in self.encoding.categorical}
        self.label_vocabulary = None
        if p.task == CLASSIFICATION:
            self.label_vocabulary = Vocabulary(p.label, p.max_classes, overflow="error",
                                               **(vocabularies or {}).get("__label__", {}))
        self.label_stats = {s: NumericStats(**(label_stats or {}).get(s, {})) for s in p.subsets} \
            if p.task == REGRESSION else {}

    # -- the journal -----------------------------------------------------
    def _identity(self) -> dict:
        return {"parameters": self.params.as_record(), "source": self.fingerprint,
                "position": dict(self.position), "done_files": list(self.done_files), "file_rows": self.file_rows,
                "records": self.records, "blank_lines": self.blank_lines, "empty_files": self.empty_files,
                "dropped_labels": self.dropped_labels,  # with the position it belongs to
                "rng": self.rng.bit_generator.state, "kinds": self.kinds, "label_numeric": self.label_numeric,
                "inferred": self.inferred, "encoding": self.encoding.as_record(),
                "estimated_rows": self.estimated_rows}

    def to_journal(self) -> dict:
        """The checkpoint journal now (:class:`~questlearn.split._journal.WriteJournal` adds the shard sizes)."""
        return {**self._identity(),
                "numeric": {n: s.state() for n, s in self.numeric.items()},
                "vocabularies": {**{n: c.tolist() for n, c in self.category_counts.items()},
                                 **({"__label__": self.label_vocabulary.state()} if self.label_vocabulary else {})},
                "label_stats": {n: s.state() for n, s in self.label_stats.items()},
                "subsets": {name: subset.to_journal() for name, subset in self.subsets.items()}}

    def to_finishing_journal(self, finishing: dict) -> dict:
        """The journal that records the publishing plan ``finishing``
        (:func:`~questlearn.split._publish.finishing_plan`, its manifest included)."""
        return {**self._identity(), "numeric": {}, "vocabularies": {}, "label_stats": {}, "finishing": finishing}

    @classmethod
    def from_journal(cls, journal: dict, params: SplitParameters, fingerprint: dict) -> SplitState:
        """The state a journal records, its subsets left empty (:meth:`SubsetState.from_journal` reopens them)."""
        rng = np.random.Generator(np.random.PCG64())
        rng.bit_generator.state = journal["rng"]
        state = cls(params, fingerprint, journal["kinds"], journal["label_numeric"], journal["inferred"],
                    Encoding.from_record(journal["encoding"]), journal["estimated_rows"],
                    position=journal["position"], done_files=journal["done_files"], file_rows=journal["file_rows"],
                    records=journal["records"], blank_lines=journal["blank_lines"],
                    empty_files=journal["empty_files"],
                    dropped_labels=journal.get("dropped_labels", 0),  # journals from before the option
                    rng=rng)
        state.start_statistics(journal["numeric"], journal["vocabularies"], journal["label_stats"])
        return state
