"""The handlers of ``questlearn synth``, ``inspect`` and ``split``: a quest log written, a source inspected or split.

Each takes the parsed command line; the library (pandas, pyarrow) is imported
inside, so that importing this module stays light.
"""

from __future__ import annotations

from ._options import _schema_options, _storage_options


def _synth(args) -> None:
    """``questlearn synth``: write a synthetic quest log of ``--rows`` rows or about ``--megabytes``."""
    from ..synth import rows_for_megabytes, write_quest_log

    rows = args.rows if args.rows is not None else rows_for_megabytes(args.megabytes, args.nasty)
    path = write_quest_log(args.output, rows=rows, seed=args.seed, nasty=args.nasty, progress=not args.no_progress)
    print(f"wrote {rows} rows ({path.stat().st_size / 1e6:.1f} MB) to {path}")


def _inspect(args) -> int:
    """``questlearn inspect``: print the inferred schema and first rows; exit status 1 when it names a problem."""
    from ..split.inspection import inspect_source

    sources = args.source if len(args.source) > 1 else args.source[0]
    inferred = inspect_source(sources, rows=args.rows, storage_options=_storage_options(args), **_schema_options(args))
    return 1 if inferred.problems else 0


def _split(args) -> None:
    """``questlearn split``: split the source into shards, then print the rows of each subset."""
    from ..split import split_csv

    sources = args.source if len(args.source) > 1 else args.source[0]
    manifest = split_csv(
        sources, args.output, rows_per_shard=args.rows_per_shard, val_fraction=args.val_fraction,
        test_fraction=args.test_fraction,
        seed=args.seed, formats=args.formats.split(","), block_size=args.block_size, fill=args.fill,
        max_open_shards=args.max_open_shards, progress=not args.no_progress, parallel=args.parallel, ray=args.ray,
        drop_missing_labels=args.drop_missing_labels, storage_options=_storage_options(args),
        **({"staging_dir": args.staging_dir} if args.staging_dir else {}), **_schema_options(args),
    )
    subsets = manifest["subsets"]
    dropped = manifest["source"].get("dropped_missing_labels")
    shown = f" ({dropped} without a label dropped)" if dropped is not None else ""
    print(f"split {manifest['source']['rows']} rows{shown} of {len(manifest['source']['files'])} file(s) into {args.output}: "
          f"train {subsets['train']['rows']} rows in {len(subsets['train']['shards'])} shards, "
          f"validate {subsets['validate']['rows']} rows in {len(subsets['validate']['shards'])} shards"
          + (f", test {subsets['test']['rows']} rows in {len(subsets['test']['shards'])} shards (held out: train never "
             "reads them; evaluate scores them)" if "test" in subsets else ""))
