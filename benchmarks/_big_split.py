"""The split that the loader and ``fit`` benchmarks read: >= 40 train shards of 100,000 rows."""

from __future__ import annotations

import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

ID_COLUMNS = ("attempt_id", "player_id")
MINIMUM_TRAIN_SHARDS = 40


@contextmanager
def big_split(split_dir: Path | None, rows: int, rows_per_shard: int):
    """Yield a split directory, made if needed.

    Parameters
    ----------
    split_dir : Path or None
        An existing split to reuse, or where to make one (kept afterwards,
        so ``bench_loader.py`` and ``bench_fit.py`` can share it); ``None``
        makes one in a temporary directory, removed at the end.
    rows, rows_per_shard : int
        Size of the synthetic log and the split's ``rows_per_shard``
        (``val_fraction=0.2``, ``seed=0``, default formats).
    """
    temporary = None
    if split_dir is None:
        temporary = Path(tempfile.mkdtemp(prefix="questlearn-bench-big-split-"))
        split_dir = temporary / "split"
    split_dir = Path(split_dir)
    try:
        if not (split_dir / "manifest.json").exists():
            from questlearn.split import split_csv
            from questlearn.synth import write_quest_log

            split_dir.parent.mkdir(parents=True, exist_ok=True)
            log = split_dir.parent / f"{split_dir.name}.source.csv"
            print(f"writing a {rows:,}-row synthetic log to {log} and splitting it into {split_dir} ...", flush=True)
            try:
                write_quest_log(log, rows=rows, seed=5)
                split_csv(log, split_dir, rows_per_shard=rows_per_shard, val_fraction=0.2, seed=0,
                          id_columns=ID_COLUMNS, verbose=False)
            finally:
                log.unlink(missing_ok=True)
        yield split_dir
    finally:
        if temporary is not None:
            shutil.rmtree(temporary, ignore_errors=True)


def train_shards(split_dir: Path) -> list[dict]:
    """The manifest's train shard entries; refuse a split with fewer than 40 of them.

    The manifest is loaded as questlearn loads it, so a kept ``--split``
    written by an older questlearn (another shard format) is refused here,
    with what to do, before any contender runs.
    """
    from questlearn.errors import QuestlearnError
    from questlearn.manifest._files import load_manifest

    try:
        manifest = load_manifest(split_dir)
    except QuestlearnError as error:
        raise SystemExit(f"cannot use {split_dir}: {error}. Nothing reported.") from None
    shards = manifest["subsets"]["train"]["shards"]
    if len(shards) < MINIMUM_TRAIN_SHARDS:
        raise SystemExit(f"{split_dir} has {len(shards)} train shards; the loader figures need at least "
                         f"{MINIMUM_TRAIN_SHARDS} (use more --rows or a smaller --rows-per-shard). Nothing reported.")
    return shards


def shard_summary(shards: list[dict]) -> dict:
    rows = [shard["rows"] for shard in shards]
    return {"train_shards": len(rows), "train_rows": sum(rows), "min_rows": min(rows), "max_rows": max(rows)}
