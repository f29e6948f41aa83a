"""Command line: ``questlearn synth | split | train | demo``.

Run ``questlearn COMMAND --help`` for the options of each command. Heavy
imports (Keras and its backend) happen only in the commands that train.
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
from pathlib import Path


def _synth(args) -> None:
    from .synth import rows_for_megabytes, write_quest_log

    rows = args.rows if args.rows is not None else rows_for_megabytes(args.megabytes, args.nasty)
    path = write_quest_log(args.output, rows=rows, seed=args.seed, nasty=args.nasty)
    print(f"wrote {rows} rows ({path.stat().st_size / 1e6:.1f} MB) to {path}")


def _split(args) -> None:
    from .split import split_csv

    manifest = split_csv(
        args.source, args.output, rows_per_shard=args.rows_per_shard, val_fraction=args.val_fraction,
        seed=args.seed, label=args.label, id_columns=args.id_column, categorical_columns=args.categorical_column,
        formats=args.formats.split(","), block_size=args.block_size, progress=not args.no_progress,
    )
    subsets = manifest["subsets"]
    print(f"split {manifest['source']['rows']} rows of {args.source} into {args.output}: "
          f"train {subsets['train']['rows']} rows in {len(subsets['train']['shards'])} shards, "
          f"validate {subsets['validate']['rows']} rows in {len(subsets['validate']['shards'])} shards")


def _train(args) -> None:
    from .train import train

    result = train(args.split_dir, args.model_dir, epochs=args.epochs, batch_size=args.batch_size,
                   workers=args.workers, use_multiprocessing=args.processes, source=args.source,
                   seed=args.seed, verbose=args.verbose)
    print(json.dumps(result.summary(), indent=1))


def _demo(args) -> None:
    """Synthesise a quest log, split it and train on it: the whole job, small."""
    from .split import split_csv
    from .synth import write_quest_log
    from .train import train

    root = Path(args.directory)
    root.mkdir(parents=True, exist_ok=True)
    log = root / "quests.csv"
    if not log.exists():
        write_quest_log(log, rows=args.rows, seed=0)
    split_csv(log, root / "split", rows_per_shard=10_000, val_fraction=0.2, seed=0,
              id_columns=("attempt_id", "player_id"), progress=not args.no_progress)
    result = train(root / "split", root / "model", epochs=args.epochs, batch_size=1024, workers=2, verbose=2)
    print(json.dumps(result.summary(), indent=1))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="questlearn", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)

    synth = commands.add_parser("synth", help="write a synthetic quest log CSV")
    synth.add_argument("output", type=Path)
    size = synth.add_mutually_exclusive_group(required=True)
    size.add_argument("--rows", type=int)
    size.add_argument("--megabytes", type=float)
    synth.add_argument("--seed", type=int, default=0)
    synth.add_argument("--nasty", action="store_true", help="add a free-text column with quoting edge cases and a BOM")
    synth.set_defaults(run=_synth)

    split = commands.add_parser("split", help="split a CSV into train/validate shards (resumable)")
    split.add_argument("source", type=Path)
    split.add_argument("output", type=Path)
    split.add_argument("--rows-per-shard", type=int, default=100_000)
    split.add_argument("--val-fraction", type=float, default=0.2)
    split.add_argument("--seed", type=int, default=0)
    split.add_argument("--label", default="cleared")
    split.add_argument("--id-column", action="append", default=[], help="identifier column, kept in CSV shards but never a feature (repeatable)")
    split.add_argument("--categorical-column", action="append", default=[], help="treat this column as a category even if it looks numeric (repeatable)")
    split.add_argument("--formats", default="csv,npy", help="comma-separated: csv, npy (default both)")
    split.add_argument("--block-size", type=int, default=8 * 1024 * 1024, help="bytes read per step (memory scales with this)")
    split.add_argument("--no-progress", action="store_true")
    split.set_defaults(run=_split)

    train = commands.add_parser("train", help="train the tabular model on a split")
    train.add_argument("split_dir", type=Path)
    train.add_argument("--model-dir", type=Path, default=Path("model"))
    train.add_argument("--epochs", type=int, default=10)
    train.add_argument("--batch-size", type=int, default=1024)
    train.add_argument("--workers", type=int, default=2)
    train.add_argument("--processes", action="store_true", help="worker processes instead of threads")
    train.add_argument("--source", choices=("npy", "csv"), default="npy")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--verbose", type=int, default=1, choices=(0, 1, 2))
    train.set_defaults(run=_train)

    demo = commands.add_parser("demo", help="synthesise, split and train end to end on a small quest log")
    demo.add_argument("--directory", type=Path, default=Path("questlearn-demo"))
    demo.add_argument("--rows", type=int, default=50_000)
    demo.add_argument("--epochs", type=int, default=3)
    demo.add_argument("--no-progress", action="store_true")
    demo.set_defaults(run=_demo)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.run(args)
    except ValueError as error:  # CsvFormatError included: a clear message, no traceback
        print(f"questlearn {args.command}: error: {error}", file=sys.stderr)
        del error
        # Free the failed run's frames, arrays and helper threads (held in reference cycles by
        # the traceback) now, while numpy and pyarrow are fully alive, not during interpreter shutdown.
        gc.collect()
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
