"""The handlers of ``questlearn train`` and ``demo``: one process, several, or the whole job, small.

Keras and its backend are imported inside the handlers, so that importing
this module stays light.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import MissingPackageError, OptionError, QuestlearnError
from ._options import _storage_options


def _train(args) -> None:
    """``questlearn train``: train here, or as several processes; print the summary of the run."""
    options = dict(epochs=args.epochs, batch_size=args.batch_size, workers=args.workers,
                   use_multiprocessing=args.processes, source=args.source, seed=args.seed, verbose=args.verbose,
                   hidden=args.hidden, dropout=args.dropout, learning_rate=args.learning_rate, patience=args.patience,
                   model=args.model,
                   class_weight=args.class_weight, saved_model=args.saved_model)
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
        from ..train._fit import train

        result = train(args.split_dir, args.model_dir, extra_callbacks=_tensorboard(args), progress=args.verbose == 1,
                       save_every_batches=args.save_every_batches, save_every_minutes=args.save_every_minutes,
                       staging_dir=args.staging_dir, **options)
    print(json.dumps(result.summary(), indent=1))


def _train_several_processes(args, options):
    """``questlearn train`` with ``--local-processes``, ``--num-processes`` or ``--ray``.

    Returns the :class:`~questlearn.train._result.TrainingResult` on process 0 of a
    job run here, ``None`` where this command only launched or was not the
    chief; raises a :class:`~questlearn.errors.QuestlearnError` (printed by the CLI) on failure.
    """
    chosen = [name for name, given in (("--local-processes", args.local_processes), ("--num-processes", args.num_processes),
                                       ("--ray", args.ray is not None)) if given]
    if len(chosen) > 1:
        raise OptionError(f"choose one of {', '.join(chosen)}")
    from ..train._launch import launch_local, train_process

    if args.ray is not None:
        from ..train._ray import train_with_ray

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
    """The TensorBoard callback ``--tensorboard DIR`` asks for, or none."""
    if args.tensorboard is None:
        return []
    import importlib.util

    if importlib.util.find_spec("tensorboard") is None:
        raise MissingPackageError("--tensorboard needs the tensorboard package: pip install 'questlearn[tensorboard]'")
    from ..quiet import keras

    return [keras.callbacks.TensorBoard(str(args.tensorboard))]


def _demo(args) -> None:
    """Synthesise a quest log, split it and train on it: the whole job, small."""
    from ..split import split_csv
    from ..synth import write_quest_log
    from ..train._fit import train

    root = Path(args.directory)
    root.mkdir(parents=True, exist_ok=True)
    log = root / "quests.csv"
    if not log.exists():
        write_quest_log(log, rows=args.rows, seed=0, progress=not args.no_progress)
    split_csv(log, root / "split", rows_per_shard=10_000, val_fraction=0.2, seed=0,
              id_columns=("attempt_id", "player_id"), progress=not args.no_progress)
    result = train(root / "split", root / "model", epochs=args.epochs, batch_size=1024, workers=2, verbose=2)
    print(json.dumps(result.summary(), indent=1))
