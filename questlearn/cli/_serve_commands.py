"""The handlers of ``questlearn predict``, ``evaluate``, ``export`` and ``plot``: a trained model used.

Each says at once what it does, then imports Keras (or matplotlib) inside;
a model folder in an object store is downloaded first.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from ..errors import MissingPackageError, ModelFileError, OptionError
from ._options import _storage_options


def _local_model(args, storage_options=None) -> Path:
    """The model folder a serving command reads: ``args.model_dir``, or a local copy of a model folder in a
    store (its served files downloaded first)."""
    if isinstance(args.model_dir, Path):
        return args.model_dir
    from ..train._model_store import fetch_model_dir

    folder = fetch_model_dir(args.model_dir, storage_options)
    print(f"questlearn {args.command}: downloaded the model in {args.model_dir} to {folder}", file=sys.stderr,
          flush=True)
    return folder


def _starting(args, what: str) -> None:
    """Say at once what a serving command does, before its slow imports (Keras, TensorFlow: seconds)."""
    if not args.no_progress:
        print(f"questlearn {args.command}: loading the model in {args.model_dir}, then {what} ...", file=sys.stderr,
              flush=True)


def _predict(args) -> None:
    """``questlearn predict``: score the input's rows into a CSV file."""
    _starting(args, f"scoring {args.input} into {args.output}")
    from ..serve.predict import predict_file

    rows = predict_file(_local_model(args, _storage_options(args)), args.input, args.output, block_size=args.block_size,
                        progress=not args.no_progress, storage_options=_storage_options(args))
    print(f"wrote {rows} predictions to {args.output}")


def _evaluate(args) -> None:
    """``questlearn evaluate``: print the model's metrics on labelled rows (and its baselines') as JSON."""
    _starting(args, f"scoring {args.input}")
    from ..serve.evaluate import evaluate

    report = evaluate(_local_model(args), args.input, block_size=args.block_size, progress=not args.no_progress,
                      baseline=args.baseline, baseline_rows=args.baseline_rows,
                      baseline_bytes=args.baseline_memory_mib * 2 ** 20, baseline_seed=args.baseline_seed,
                      subset=args.subset)
    print(json.dumps(report, indent=1))


def _export(args) -> None:
    """``questlearn export``: write the model as a TensorFlow SavedModel."""
    if not isinstance(args.model_dir, Path) and args.output is None:
        raise OptionError(f"export of the model in {args.model_dir} writes a local SavedModel: name the folder to "
                          "create with --output DIR")
    _starting(args, f"writing {args.output or args.model_dir / 'saved_model'}")
    from ..serve.export import export_saved_model

    target = export_saved_model(_local_model(args), target=args.output)
    print(f"wrote the SavedModel {target}: its serving_default signature takes the raw feature columns by name")


def _plot(args) -> None:
    """``questlearn plot``: draw the training history of a model folder into an image file."""
    try:
        import matplotlib

        matplotlib.use("Agg")
    except ImportError:
        raise MissingPackageError("plotting needs matplotlib: pip install 'questlearn[notebooks]'") from None
    from ..train.plots import plot_history

    history = _local_model(args) / "history.json"
    if not history.is_file():
        raise ModelFileError(f"{args.model_dir} holds no history.json: train a model there first")
    figure = plot_history(history, title=str(args.model_dir))
    figure.savefig(args.output, dpi=120)
    print(f"wrote {args.output}: {', '.join(figure.metrics)} per epoch")
