"""The ``questlearn`` command's argument parser: one function per command's arguments.

Building the parser imports no library beyond argparse (``--help`` stays
fast); which handler runs each command is :func:`questlearn.cli.main`'s job.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def _path_or_url(text: str):
    """A model folder as given: a URL in an object store stays text, anything else is a path."""
    from ..io.outputs import output_is_url

    return text if output_is_url(text) else Path(text)


def _hidden_units(text: str) -> tuple:
    """``--hidden 64,32`` as the layer sizes ``(64, 32)``; anything else is argparse's usage error."""
    try:
        units = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated layer sizes such as 64,32, got {text!r}") from None
    if not units or min(units) < 1:
        raise argparse.ArgumentTypeError(f"expected positive layer sizes such as 64,32, got {text!r}")
    return units


def _add_storage_option(parser) -> None:
    """Add ``--storage-option KEY=VALUE``, for a command that reads or writes an object store."""
    parser.add_argument("--storage-option", action="append", default=[], metavar="KEY=VALUE",
                        help="an option of the object store holding the source or the output (repeatable), e.g. "
                             "endpoint_override=HOST:PORT, region=eu-west-1, anonymous=true, scheme=http; "
                             "see docs/object-storage.md")


def _add_schema_options(parser, label_default: str | None = "cleared") -> None:
    """Add the options that shape the schema, shared by split and inspect.

    Parameters
    ----------
    parser : argparse.ArgumentParser
        The command's parser.
    label_default : str or None
        The default ``--label``; ``None`` (inspect) shows every column and
        names the likely label columns.
    """
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


def _add_synth_arguments(synth) -> None:
    """The arguments of ``questlearn synth``."""
    synth.add_argument("output", type=Path, help="CSV file to write")
    size = synth.add_mutually_exclusive_group(required=True)
    size.add_argument("--rows", type=int, help="number of data rows")
    size.add_argument("--megabytes", type=float, help="approximate file size instead of --rows")
    synth.add_argument("--seed", type=int, default=0, help="random seed (same seed, same bytes)")
    synth.add_argument("--nasty", action="store_true", help="add a free-text column with quoting edge cases and a BOM")
    synth.add_argument("--no-progress", action="store_true", help="no progress bar")


def _add_split_arguments(split) -> None:
    """The arguments of ``questlearn split``."""
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


def _add_inspect_arguments(inspect) -> None:
    """The arguments of ``questlearn inspect``."""
    inspect.add_argument("source", nargs="+", help="as for split")
    inspect.add_argument("--rows", type=int, default=5, help="first rows to show")
    _add_schema_options(inspect, label_default=None)
    _add_storage_option(inspect)


def _add_train_arguments(train) -> None:
    """The arguments of ``questlearn train``."""
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
    train.add_argument("--no-saved-model", dest="saved_model", action="store_false",
                       help="write no saved_model/ beside inference.keras (about a second less on a small table); "
                            "questlearn export MODEL_DIR writes it later")
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


def _add_predict_arguments(predict) -> None:
    """The arguments of ``questlearn predict``."""
    predict.add_argument("model_dir", type=_path_or_url, help="a trained model directory (holds inference.keras), or its URL in an object store")
    predict.add_argument("input", help="the rows to score, with the feature columns: CSV (plain, or gzip/bz2/xz/zstd/zip: "
                         "detected by content) or Parquet; a file, a directory of part files, a glob or an object "
                         "store's URL (as for split)")
    predict.add_argument("output", type=Path, help="CSV file to write: ids, p_<class>, predicted, label")
    predict.add_argument("--block-size", type=int, default=8 * 1024 * 1024, help="bytes read per step (memory scales with this)")
    predict.add_argument("--no-progress", action="store_true", help="no progress bar")
    _add_storage_option(predict)


def _add_evaluate_arguments(evaluate) -> None:
    """The arguments of ``questlearn evaluate``."""
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


def _add_export_arguments(export) -> None:
    """The arguments of ``questlearn export``."""
    export.add_argument("model_dir", type=_path_or_url, help="a trained model directory (holds inference.keras), or its URL in an object store")
    export.add_argument("--format", choices=["saved_model"], default="saved_model", help="what to write")
    export.add_argument("--output", type=Path, default=None,
                        help="directory to create (default MODEL_DIR/saved_model); it must not exist")
    export.add_argument("--no-progress", action="store_true", help="no line saying what is being done")


def _add_plot_arguments(plot) -> None:
    """The arguments of ``questlearn plot``."""
    plot.add_argument("model_dir", type=_path_or_url,
                      help="a trained model directory (holds history.json), or its URL in an object store")
    plot.add_argument("-o", "--output", type=Path, default=Path("history.png"), help="image file to write")


def _add_demo_arguments(demo) -> None:
    """The arguments of ``questlearn demo``."""
    demo.add_argument("--directory", type=Path, default=Path("questlearn-demo"), help="working directory")
    demo.add_argument("--rows", type=int, default=50_000, help="rows of the synthetic log")
    demo.add_argument("--epochs", type=int, default=3, help="epochs to train")
    demo.add_argument("--no-progress", action="store_true", help="no progress bars")


# Each command in the order --help lists them: its name, its help line, the function adding its arguments.
COMMANDS = (
    ("synth", "write a synthetic quest log CSV", _add_synth_arguments),
    ("split", "split a CSV or Parquet source into train/validate shards (resumable)", _add_split_arguments),
    ("inspect", "print the schema split would infer and the first parsed rows; reads a sample only and writes nothing",
     _add_inspect_arguments),
    ("train", "train the tabular model on a split", _add_train_arguments),
    ("predict", "score the rows of a CSV or Parquet source with a trained model (streams any size)",
     _add_predict_arguments),
    ("evaluate", "metrics of a trained model on labelled rows, as JSON", _add_evaluate_arguments),
    ("export", "write a trained model for a serving system: a TensorFlow SavedModel whose signature takes the raw "
               "columns by name", _add_export_arguments),
    ("plot", "draw the loss, every recorded metric (accuracy, auc; mae, rmse) and the throughput per epoch of a "
             "training run", _add_plot_arguments),
    ("demo", "synthesise, split and train end to end on a small quest log", _add_demo_arguments),
)


def build_parser() -> argparse.ArgumentParser:
    """The parser of the ``questlearn`` command line.

    Returns
    -------
    argparse.ArgumentParser
        A parser with one subcommand per entry of :data:`COMMANDS`; the parsed
        ``command`` names the one given.
    """
    from .. import __version__

    formatter = argparse.ArgumentDefaultsHelpFormatter
    parser = argparse.ArgumentParser(prog="questlearn", formatter_class=formatter)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, help_text, add_arguments in COMMANDS:
        add_arguments(commands.add_parser(name, help=help_text, description=help_text, formatter_class=formatter))
    parser.description = f"Command line: questlearn {' | '.join(commands.choices)}"  # every command, as added
    return parser
