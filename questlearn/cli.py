"""Command line: ``questlearn synth | split | inspect | train | predict | evaluate | export | plot | demo``.

Run ``questlearn COMMAND --help`` for the options of each command. Heavy
imports (Keras and its backend) happen only in the commands that train.
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
from pathlib import Path

from .errors import MissingPackageError, ModelFileError, OptionError, QuestlearnError


def _synth(args) -> None:
    from .synth import rows_for_megabytes, write_quest_log

    rows = args.rows if args.rows is not None else rows_for_megabytes(args.megabytes, args.nasty)
    path = write_quest_log(args.output, rows=rows, seed=args.seed, nasty=args.nasty, progress=not args.no_progress)
    print(f"wrote {rows} rows ({path.stat().st_size / 1e6:.1f} MB) to {path}")


DELIMITER_NAMES = {"comma": ",", "semicolon": ";", "tab": "\t", "\\t": "\t", "pipe": "|"}


def _schema_options(args) -> dict:
    """The options that shape the schema, shared by split and inspect."""
    return dict(label=args.label, id_columns=args.id_column, categorical_columns=args.categorical_column,
                datetime_columns=args.datetime_column,
                na_values=args.na_value, keep_default_na=not args.no_default_na,
                delimiter=DELIMITER_NAMES.get(args.delimiter, args.delimiter), task=args.task,
                max_categories=args.max_categories, max_classes=args.max_classes, hash_buckets=args.hash_buckets,
                invalid=args.invalid)


def _storage_options(args) -> dict:
    """``--storage-option KEY=VALUE`` as the object store's options."""
    from .io.storage import parse_storage_options

    return parse_storage_options(args.storage_option)


def _path_or_url(text: str):
    """A model folder as given: a URL in an object store stays text, anything else is a path."""
    from .io.outputs import output_is_url

    return text if output_is_url(text) else Path(text)


def _local_model(args, storage_options=None) -> Path:
    """The model folder a serving command reads: ``args.model_dir``, or a local copy of a model folder in a
    store (its served files downloaded first)."""
    if isinstance(args.model_dir, Path):
        return args.model_dir
    from .train._model_store import fetch_model_dir

    folder = fetch_model_dir(args.model_dir, storage_options)
    print(f"questlearn {args.command}: downloaded the model in {args.model_dir} to {folder}", file=sys.stderr,
          flush=True)
    return folder


def _add_storage_option(parser) -> None:
    parser.add_argument("--storage-option", action="append", default=[], metavar="KEY=VALUE",
                        help="an option of the object store holding the source or the output (repeatable), e.g. "
                             "endpoint_override=HOST:PORT, region=eu-west-1, anonymous=true, scheme=http; "
                             "see docs/object-storage.md")


def _inspect(args) -> int:
    from .split.inspection import inspect_source

    sources = args.source if len(args.source) > 1 else args.source[0]
    inferred = inspect_source(sources, rows=args.rows, storage_options=_storage_options(args), **_schema_options(args))
    return 1 if inferred.problems else 0


def _split(args) -> None:
    from .split import split_csv

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


def _train(args) -> None:
    options = dict(epochs=args.epochs, batch_size=args.batch_size, workers=args.workers,
                   use_multiprocessing=args.processes, source=args.source, seed=args.seed, verbose=args.verbose,
                   hidden=args.hidden, dropout=args.dropout, learning_rate=args.learning_rate, patience=args.patience,
                   model=args.model,
                   class_weight=args.class_weight)
    remote = dict(cache_dir=args.cache_dir, cache_limit=args.cache_limit, storage_options=_storage_options(args))
    if any(value for value in remote.values()):  # a split in a store: every process reads it through its own cache
        options.update(remote)
    if args.local_processes or args.num_processes or args.ray is not None:  # several processes (JAX, or Ray)
        if args.staging_dir is not None:  # process 0 writes a model folder URL through it; the others use none
            if isinstance(args.model_dir, Path):
                raise OptionError("--staging-dir is for a --model-dir in an object store (s3://...); a local model "
                                  "folder is written in place: leave it out")
            options["staging_dir"] = args.staging_dir
        result = _train_several_processes(args, options)
        if result is None:
            return
    else:
        from .train._fit import train

        result = train(args.split_dir, args.model_dir, extra_callbacks=_tensorboard(args), progress=args.verbose == 1,
                       save_every_batches=args.save_every_batches, save_every_minutes=args.save_every_minutes,
                       staging_dir=args.staging_dir, **options)
    print(json.dumps(result.summary(), indent=1))


def _train_several_processes(args, options):
    """``questlearn train`` with ``--local-processes``, ``--num-processes`` or ``--ray``.

    Returns the :class:`~questlearn.train._fit.TrainingResult` on process 0 of a
    job run here, ``None`` where this command only launched or was not the
    chief; raises a :class:`~questlearn.errors.QuestlearnError` (printed by the CLI) on failure.
    """
    chosen = [name for name, given in (("--local-processes", args.local_processes), ("--num-processes", args.num_processes),
                                       ("--ray", args.ray is not None)) if given]
    if len(chosen) > 1:
        raise OptionError(f"choose one of {', '.join(chosen)}")
    from .train._launch import launch_local, train_process

    if args.ray is not None:
        from .train._ray import train_with_ray

        print(json.dumps(train_with_ray(args.split_dir, args.model_dir, address=args.ray, ray_workers=args.ray_workers, **options), indent=1))
        return None
    if args.local_processes:
        status = launch_local(_without_option(args.argv, "--local-processes"), args.local_processes)
        if status:
            raise QuestlearnError(f"the {args.local_processes}-process job failed (exit status {status}); each process's error is printed above")
        return None
    if args.process_id is None or args.coordinator is None:
        raise OptionError("--num-processes needs --process-id and --coordinator HOST:PORT")
    result = train_process(args.split_dir, args.model_dir, num_processes=args.num_processes, process_id=args.process_id,
                           coordinator=args.coordinator, startup_timeout=args.startup_timeout, **options)
    return result if args.process_id == 0 else None


def _without_option(argv, option: str) -> list[str]:
    """``argv`` less ``option VALUE`` / ``option=VALUE``."""
    kept, skip = [], False
    for item in argv:
        if skip:
            skip = False
        elif item == option:
            skip = True
        elif not item.startswith(option + "="):
            kept.append(item)
    return kept


def _tensorboard(args) -> list:
    if args.tensorboard is None:
        return []
    import importlib.util

    if importlib.util.find_spec("tensorboard") is None:
        raise MissingPackageError("--tensorboard needs the tensorboard package: pip install 'questlearn[tensorboard]'")
    from .quiet import keras

    return [keras.callbacks.TensorBoard(str(args.tensorboard))]


def _starting(args, what: str) -> None:
    """Say at once what a serving command does, before its slow imports (Keras, TensorFlow: seconds)."""
    if not args.no_progress:
        print(f"questlearn {args.command}: loading the model in {args.model_dir}, then {what} ...", file=sys.stderr,
              flush=True)


def _predict(args) -> None:
    _starting(args, f"scoring {args.input} into {args.output}")
    from .serve.predict import predict_file

    rows = predict_file(_local_model(args, _storage_options(args)), args.input, args.output, block_size=args.block_size,
                        progress=not args.no_progress, storage_options=_storage_options(args))
    print(f"wrote {rows} predictions to {args.output}")


def _evaluate(args) -> None:
    _starting(args, f"scoring {args.input}")
    from .serve.evaluate import evaluate

    report = evaluate(_local_model(args), args.input, block_size=args.block_size, progress=not args.no_progress,
                      baseline=args.baseline, baseline_rows=args.baseline_rows,
                      baseline_bytes=args.baseline_memory_mib * 2 ** 20, baseline_seed=args.baseline_seed,
                      subset=args.subset)
    print(json.dumps(report, indent=1))


def _export(args) -> None:
    if not isinstance(args.model_dir, Path) and args.output is None:
        raise OptionError(f"export of the model in {args.model_dir} writes a local SavedModel: name the folder to "
                          "create with --output DIR")
    _starting(args, f"writing {args.output or args.model_dir / 'saved_model'}")
    from .serve.export import export_saved_model

    target = export_saved_model(_local_model(args), target=args.output)
    print(f"wrote the SavedModel {target}: its serving_default signature takes the raw feature columns by name")


def _plot(args) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
    except ImportError:
        raise MissingPackageError("plotting needs matplotlib: pip install 'questlearn[notebooks]'") from None
    from .train.plots import plot_history

    history = _local_model(args) / "history.json"
    if not history.is_file():
        raise ModelFileError(f"{args.model_dir} holds no history.json: train a model there first")
    figure = plot_history(history, title=str(args.model_dir))
    figure.savefig(args.output, dpi=120)
    print(f"wrote {args.output}: {', '.join(figure.metrics)} per epoch")


def _hidden_units(text: str) -> tuple:
    try:
        units = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated layer sizes such as 64,32, got {text!r}") from None
    if not units or min(units) < 1:
        raise argparse.ArgumentTypeError(f"expected positive layer sizes such as 64,32, got {text!r}")
    return units


def _demo(args) -> None:
    """Synthesise a quest log, split it and train on it: the whole job, small."""
    from .split import split_csv
    from .synth import write_quest_log
    from .train._fit import train

    root = Path(args.directory)
    root.mkdir(parents=True, exist_ok=True)
    log = root / "quests.csv"
    if not log.exists():
        write_quest_log(log, rows=args.rows, seed=0, progress=not args.no_progress)
    split_csv(log, root / "split", rows_per_shard=10_000, val_fraction=0.2, seed=0,
              id_columns=("attempt_id", "player_id"), progress=not args.no_progress)
    result = train(root / "split", root / "model", epochs=args.epochs, batch_size=1024, workers=2, verbose=2)
    print(json.dumps(result.summary(), indent=1))


def _add_schema_options(parser, label_default: str | None = "cleared") -> None:
    label_help = "the column to predict" if label_default else (
        "the column to predict; without it every column is shown and the likely label columns are named")
    parser.add_argument("--label", default=label_default, help=label_help)
    parser.add_argument("--task", choices=("classification", "regression"), default="classification",
                        help="classification (the label's values are classes) or regression (a numeric target)")
    parser.add_argument("--na-value", action="append", default=[], metavar="TOKEN",
                        help="a string that means 'missing' in this data, e.g. '?' (repeatable; added to the defaults)")
    parser.add_argument("--no-default-na", action="store_true",
                        help="only the empty field and --na-value tokens mean missing, not pandas' default tokens "
                             "(NA, N/A, NULL, NaN, None, #N/A, ...)")
    parser.add_argument("--delimiter", default=",",
                        help="field delimiter: ',', ';', '|', 'tab' (or the character itself)")
    parser.add_argument("--id-column", action="append", default=[],
                        help="identifier column, kept in CSV shards but never a feature (repeatable)")
    parser.add_argument("--categorical-column", action="append", default=[],
                        help="treat this column as a category even if it looks numeric, or like an identifier "
                             "(repeatable)")
    parser.add_argument("--datetime-column", action="append", default=[],
                        help="treat this column as a date or time (detected by itself for ISO 8601 and other common "
                             "spellings): features days since 1970, hour, weekday and month (repeatable)")
    parser.add_argument("--invalid", choices=("stop", "missing"), default="stop",
                        help="a value a numeric column reads as no number, or a datetime column as no date or time "
                             "(such as 2023-02-30): 'stop' the split naming its column, file, line and byte (the "
                             "default), or read it as 'missing' (filled like any missing value) and count it per "
                             "column in the manifest's stats")
    parser.add_argument("--max-categories", type=int, default=100_000,
                        help="vocabulary values kept per categorical column, most frequent in the sample first; "
                             "the others, and values first met after the sample, go to hashed buckets")
    parser.add_argument("--hash-buckets", type=int, default=64,
                        help="out-of-vocabulary buckets of a categorical column with more than 16 values in the "
                             "sample (smaller ones get one); the model embeds large vocabularies, each bucket a row of "
                             "its embedding table: at most 65,536 (the split and train print the tables' bytes)")
    parser.add_argument("--max-classes", type=int, default=50,
                        help="distinct label values accepted for classification")


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    formatter = argparse.ArgumentDefaultsHelpFormatter
    parser = argparse.ArgumentParser(prog="questlearn", formatter_class=formatter)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name, help_text):
        return commands.add_parser(name, help=help_text, description=help_text, formatter_class=formatter)

    synth = command("synth", "write a synthetic quest log CSV")
    synth.add_argument("output", type=Path, help="CSV file to write")
    size = synth.add_mutually_exclusive_group(required=True)
    size.add_argument("--rows", type=int, help="number of data rows")
    size.add_argument("--megabytes", type=float, help="approximate file size instead of --rows")
    synth.add_argument("--seed", type=int, default=0, help="random seed (same seed, same bytes)")
    synth.add_argument("--nasty", action="store_true", help="add a free-text column with quoting edge cases and a BOM")
    synth.add_argument("--no-progress", action="store_true", help="no progress bar")
    synth.set_defaults(run=_synth)

    split = command("split", "split a CSV or Parquet source into train/validate shards (resumable)")
    split.add_argument("source", nargs="+",
                       help="a CSV file (plain, or gzip/bz2/xz/zstd: detected by content), a Parquet file, a "
                            "directory of part files, a glob, or several of them; each a path or an object store's "
                            "URL (s3://bucket/logs/, gs://..., abfs://..., hdfs://...)")
    split.add_argument("output", help="output directory (empty, or this same split to resume), or a prefix in an "
                                      "object store (s3://bucket/splits/2026/; see docs/object-storage.md)")
    split.add_argument("--rows-per-shard", type=int, default=100_000,
                       help="most rows a shard holds; rows are dealt at random into all open shards, which end about equal")
    split.add_argument("--val-fraction", type=float, default=0.2, help="share of rows drawn into the validate subset")
    split.add_argument("--test-fraction", type=float, default=0.0,
                       help="share of rows drawn into a held-out test subset that training never reads (evaluate "
                            "scores it); default 0: none")
    split.add_argument("--seed", type=int, default=0, help="seed of the train/validate/test draw")
    _add_schema_options(split)
    split.add_argument("--formats", default="npy",
                       help="comma-separated shard formats: npy (model-ready float32 rows), csv (the source rows, "
                            "byte for byte; about doubles the output)")
    split.add_argument("--fill", choices=("mean", "zero"), default="mean",
                       help="what a missing number becomes in the shards: the column's sample mean, or 0")
    split.add_argument("--max-open-shards", type=int, default=256,
                       help="shards filled at once per subset (each a random sample of the rows read while open; "
                            "3 file descriptors each)")
    split.add_argument("--staging-dir", default=None, metavar="DIR",
                       help="for an output in an object store (s3://bucket/prefix/): the local folder holding the "
                            "current wave of shards before they are uploaded (default: ~/.cache/questlearn/staging/"
                            "<hash of the output URL>)")
    split.add_argument("--drop-missing-labels", action="store_true",
                       help="leave out the rows whose label is empty or a missing-value token (counted in the manifest "
                            "as source.dropped_missing_labels and reported) instead of stopping at the first")
    split.add_argument("--block-size", type=int, default=8 * 1024 * 1024, help="bytes read per step (memory scales with this)")
    split.add_argument("--no-progress", action="store_true", help="no progress bar")
    split.add_argument("--parallel", type=int, metavar="N",
                       help="split each part file as its own task, N at a time, and merge the results exactly")
    split.add_argument("--ray", nargs="?", const="local", metavar="ADDRESS",
                       help="run the part tasks on Ray: a local Ray on 127.0.0.1, or the cluster at ADDRESS")
    _add_storage_option(split)
    split.set_defaults(run=_split)

    inspect = command("inspect", "print the schema split would infer and the first parsed rows; reads a sample "
                                 "only and writes nothing")
    inspect.add_argument("source", nargs="+", help="as for split")
    inspect.add_argument("--rows", type=int, default=5, help="first rows to show")
    _add_schema_options(inspect, label_default=None)
    _add_storage_option(inspect)
    inspect.set_defaults(run=_inspect)

    train = command("train", "train the tabular model on a split")
    train.add_argument("split_dir", help="a finished split (holds manifest.json): a folder, or the URL of one in an "
                                         "object store (s3://bucket/prefix/), read through a local shard cache")
    train.add_argument("--model-dir", type=_path_or_url, default=Path("model"),
                       help="where models, backups and the history go: a folder, or the URL of a prefix in an object "
                            "store (s3://bucket/models/run1), written through a local staging folder and uploaded as "
                            "it is written; a killed run resumes from the store on any machine")
    train.add_argument("--staging-dir", type=Path, default=None,
                       help="for a --model-dir in a store: the local folder it is written in first (default "
                            "~/.cache/questlearn/models/<hash of the URL>, or under $XDG_CACHE_HOME); with several "
                            "processes, process 0's")
    train.add_argument("--epochs", type=int, default=None,
                       help="most epochs to train (default: enough for about 6,000 optimizer steps, 2 to 200, printed)")
    train.add_argument("--batch-size", type=int, default=None,
                       help="rows per batch (default: the power of two nearest training rows / 1000, 32 to 4096, printed)")
    train.add_argument("--model", choices=["default", "small"], default="default",
                       help="the network: 'default' (numbers also through piecewise-linear embeddings of their "
                            "quantiles, 256-256 hidden units, AdamW with a warm-up and cosine schedule) or 'small' "
                            "(the plain 64-32 MLP with Adam). On 2 CPU cores at batch 1024: about 84,000 training "
                            "rows/s for 'default', 346,000 for 'small' (benchmarks/README.md)")
    train.add_argument("--workers", type=int, default=2, help="parallel batch loaders")
    train.add_argument("--processes", action="store_true", help="worker processes instead of threads")
    train.add_argument("--source", choices=("npy", "csv"), default="npy", help="which shards to read")
    train.add_argument("--seed", type=int, default=0, help="seed of weights, dropout and data order")
    train.add_argument("--hidden", type=_hidden_units, default=None, metavar="UNITS",
                       help="hidden layer sizes, comma-separated (e.g. 64,32; default: the --model preset's)")
    train.add_argument("--dropout", type=float, default=None, help="dropout after each hidden layer (default: the preset's, 0.1)")
    train.add_argument("--learning-rate", type=float, default=1e-3, help="peak learning rate")
    train.add_argument("--patience", type=int, default=None,
                       help="early stopping patience in epochs, on validation loss, best weights restored "
                            "(default: a tenth of the epochs, 3 to 20)")
    train.add_argument("--class-weight", choices=("balanced",), default=None,
                       help="weigh classes inversely to their frequency")
    train.add_argument("--tensorboard", type=Path, default=None, metavar="DIR", help="write TensorBoard logs to DIR")
    train.add_argument("--verbose", type=int, default=1, choices=(0, 1, 2),
                       help="0 silent, 1 rows/s and time left inside each epoch, 2 Keras's line per epoch")
    train.add_argument("--save-every-batches", type=int, default=None, metavar="N",
                       help="also save the training state every N batches: a killed run resumes at the batch after the last save")
    train.add_argument("--save-every-minutes", type=float, default=None, metavar="M",
                       help="also save the training state every M minutes inside an epoch")
    train.add_argument("--cache-dir", type=Path, default=None,
                       help="for a split in a store: the local folder its shards are fetched into (default "
                            "~/.cache/questlearn/shards/<hash of the URL>, or under $XDG_CACHE_HOME)")
    train.add_argument("--cache-limit", default=None, metavar="SIZE",
                       help="for a split in a store: the most the cache folder may hold, e.g. 20GB or 500MB (default "
                            "half the free disk there, printed); a split larger than this is fetched again every epoch")
    _add_storage_option(train)
    scale = train.add_argument_group("several processes (JAX backend; see docs/scaling-out.md)")
    scale.add_argument("--num-processes", type=int, help="processes in the data-parallel job (one per host or GPU)")
    scale.add_argument("--process-id", type=int, help="this process's number, 0 .. N-1 (0 writes the files)")
    scale.add_argument("--coordinator", help="HOST:PORT where process 0 serves the job's coordinator")
    scale.add_argument("--startup-timeout", type=int, default=300, help="seconds to wait for all processes to join")
    scale.add_argument("--local-processes", type=int, help="start this many processes here, coordinator on 127.0.0.1")
    scale.add_argument("--ray", nargs="?", const="local", metavar="ADDRESS",
                       help="run under Ray Train: a local Ray on 127.0.0.1, or the cluster at ADDRESS")
    scale.add_argument("--ray-workers", type=int, default=2, help="Ray Train workers (one process each)")
    train.set_defaults(run=_train)

    predict = command("predict", "score the rows of a CSV or Parquet source with a trained model (streams any size)")
    predict.add_argument("model_dir", type=_path_or_url, help="a trained model directory (holds inference.keras), or its URL in an object store")
    predict.add_argument("input", help="the rows to score, with the feature columns: CSV (plain, or gzip/bz2/xz/zstd/zip: "
                         "detected by content) or Parquet; a file, a directory of part files, a glob or an object "
                         "store's URL (as for split)")
    predict.add_argument("output", type=Path, help="CSV file to write: ids, p_<class>, predicted, label")
    predict.add_argument("--block-size", type=int, default=8 * 1024 * 1024, help="bytes read per step (memory scales with this)")
    predict.add_argument("--no-progress", action="store_true", help="no progress bar")
    _add_storage_option(predict)
    predict.set_defaults(run=_predict)

    evaluate = command("evaluate", "metrics of a trained model on labelled rows, as JSON")
    evaluate.add_argument("model_dir", type=_path_or_url, help="a trained model directory, or its URL in an object store")
    evaluate.add_argument("input", help="a labelled CSV or Parquet source (a file or a directory of part files), "
                          "or a split directory or URL (its test subset when it has one, else its validate subset)")
    evaluate.add_argument("--subset", choices=("test", "validate"), default=None,
                          help="the subset of a split directory to score (default: test when the split has one)")
    evaluate.add_argument("--block-size", type=int, default=8 * 1024 * 1024, help="bytes read per step (memory scales with this)")
    evaluate.add_argument("--no-progress", action="store_true", help="no progress bar")
    evaluate.add_argument("--baseline", metavar="NAMES", help="also train boosting models on one random sample of the "
                          "split's training shards and score them on the same rows, each with its gap to the "
                          "network: gbdt (scikit-learn's HistGradientBoosting; pip install 'questlearn[baseline]'), "
                          "lightgbm ('questlearn[lightgbm]'), catboost ('questlearn[catboost]'), several "
                          "comma-separated, e.g. --baseline gbdt,lightgbm,catboost (a split directory only)")
    evaluate.add_argument("--baseline-rows", type=int, default=200_000, help="most training rows the baseline samples")
    evaluate.add_argument("--baseline-memory-mib", type=int, default=512,
                          help="most MiB of float32 features the baseline's sample holds (the smaller cap wins)")
    evaluate.add_argument("--baseline-seed", type=int, default=0, help="seed of the baseline's sample and model")
    evaluate.set_defaults(run=_evaluate)

    export = command("export", "write a trained model for a serving system: a TensorFlow SavedModel whose "
                               "signature takes the raw columns by name")
    export.add_argument("model_dir", type=_path_or_url, help="a trained model directory (holds inference.keras), or its URL in an object store")
    export.add_argument("--format", choices=["saved_model"], default="saved_model", help="what to write")
    export.add_argument("--output", type=Path, default=None,
                        help="directory to create (default MODEL_DIR/saved_model); it must not exist")
    export.add_argument("--no-progress", action="store_true", help="no line saying what is being done")
    export.set_defaults(run=_export)

    plot = command("plot", "draw the loss, every recorded metric (accuracy, auc; mae, rmse) and the throughput "
                           "per epoch of a training run")
    plot.add_argument("model_dir", type=_path_or_url,
                      help="a trained model directory (holds history.json), or its URL in an object store")
    plot.add_argument("-o", "--output", type=Path, default=Path("history.png"), help="image file to write")
    plot.set_defaults(run=_plot)

    demo = command("demo", "synthesise, split and train end to end on a small quest log")
    demo.add_argument("--directory", type=Path, default=Path("questlearn-demo"), help="working directory")
    demo.add_argument("--rows", type=int, default=50_000, help="rows of the synthetic log")
    demo.add_argument("--epochs", type=int, default=3, help="epochs to train")
    demo.add_argument("--no-progress", action="store_true", help="no progress bars")
    demo.set_defaults(run=_demo)
    parser.description = f"Command line: questlearn {' | '.join(commands.choices)}"  # every command, as added
    return parser


def main(argv=None) -> int:
    """Run one command; a :class:`~questlearn.errors.QuestlearnError` is printed as one line (exit status 2)."""
    args = build_parser().parse_args(argv)
    from ._interrupts import keep_interrupts_in_python

    keep_interrupts_in_python()  # Ctrl-C always ends the command (pyarrow's own handler can drop it)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # --local-processes starts children with these
    try:
        code = args.run(args)
    except QuestlearnError as error:  # a user's mistake (CsvFormatError included): one line, no traceback
        print(f"questlearn {args.command}: error: {error}", file=sys.stderr)
        del error
        # Free the failed run's frames, arrays and helper threads (held in reference cycles by
        # the traceback) now, while numpy and pyarrow are fully alive, not during interpreter shutdown.
        gc.collect()
        return 2
    # Anything else (a plain ValueError from numpy included) is a bug: it propagates with its traceback, exit 1.
    except KeyboardInterrupt:
        resumable = args.command in ("split", "train", "demo")
        print("interrupted; run the same command again to resume" if resumable else "interrupted", file=sys.stderr)
        return 130
    # Arrow's readers keep helper threads until they are freed: free them now, while pyarrow is alive, so that
    # interpreter shutdown never tears down a live thread (std::terminate, exit -6: apache/arrow#34314).
    gc.collect()
    return code or 0


if __name__ == "__main__":
    sys.exit(main())
