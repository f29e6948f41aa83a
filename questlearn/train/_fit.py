"""Train the quest model on a split, with the callbacks long runs need.

``model_dir`` receives:

* ``best.keras`` — the best model by validation loss, written at most every
  30 seconds while training runs and at its end
  (:class:`~questlearn.train._callbacks.BestModelCheckpoint`);
* ``model.keras`` — the model at the end (early stopping restores the best
  weights first), loadable without questlearn; ``inference.keras`` — the
  same network taking raw columns (see :mod:`questlearn.serve.export`);
* ``backup/`` — the training state while training runs
  (:mod:`questlearn.train._resume`): an interrupted run started again with the
  same arguments resumes after the last save — at the epoch after the last
  one saved (the first epoch's end, then an epoch end at most every 30 s,
  every epoch end of a log whose epochs take longer), or, with
  ``save_every_batches`` / ``save_every_minutes``, inside the interrupted
  epoch at the batch after the last save, so no row of it is used twice;
* ``history.csv`` — one row per finished epoch (``CSVLogger``, appended
  across resumptions) and ``history.json`` — the same, as lists, plus the
  device, the class baseline and the data set.

``model_dir`` may be a URL (``s3://bucket/prefix``): the folder is then
written in a local staging folder and uploaded as it is written, and a
killed run resumes from the store on any machine
(:mod:`questlearn.train._model_store`).
"""

from __future__ import annotations

import json
import math
import os

from ..data._memory_feed import held_bytes
from ..data._shard_cache import open_split
from ..data._supervision import batch_refusals_as_user_errors
from ..data.dataset import QuestSequence
from ..errors import OptionError
from ..manifest._files import SUBSETS
from ..quiet import keras
from ..serve._column_names import describe_rewritten, signature_keys
from ..serve.export import export_models
from ._calendar import describe_left_out, monthly_weekdays, sample_positions
from ._callbacks import (
    BestModelCheckpoint,
    EarlyStoppingAfterWarmup,
    ThroughputLogger,
    sees_every_batch,
)
from ._defaults import steps_per_execution as choose_steps_per_execution
from ._defaults import training_plan
from ._embedding import describe_embeddings
from ._model_store import open_model_dir
from ._progress import TrainingProgress
from ._result import TrainingResult, class_counts, mean_baseline
from ._resume import TrainingBackup, fit_resuming, load_backup, remove_backup
from ._torch_cpu import limit_torch_threads
from .devices import describe_device
from .model import MODELS, build_model, describe_bounds, warmup_steps
from .plots import read_history_csv

VALIDATION_BATCH_SIZE = 1024  # rows a validation batch holds, at least
IN_MEMORY_BUDGET = 256 * 2 ** 20  # bytes held for training and validation rows served from memory, at most
IN_MEMORY_SHARE = 0.25  # of the memory available when training starts, at most


def memory_budget() -> int:
    """Bytes of rows :func:`train` may hold in memory: :data:`IN_MEMORY_BUDGET`, or
    :data:`IN_MEMORY_SHARE` of the available memory when that is less."""
    try:
        available = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):  # not on Linux: the fixed budget alone
        return IN_MEMORY_BUDGET
    return int(min(IN_MEMORY_BUDGET, IN_MEMORY_SHARE * available))


def left_out_codes(train_data: QuestSequence) -> list[str]:
    """Names of the codes columns the network leaves out: the weekday of each datetime whose training dates
    all fall on one day of the month (:mod:`questlearn.train._calendar`), read from a bounded sample of rows."""
    names = train_data.input_names()
    if not train_data.day_columns() or not names.get("codes"):
        return []
    x, _ = train_data.reader.read(sample_positions([shard["rows"] for shard in train_data.reader.shards]))
    return monthly_weekdays(x["numbers"], x["codes"], names)


@batch_refusals_as_user_errors()  # a damaged shard met inside fit is the user's to fix: raised as its named error
def train(split_dir, model_dir, *, epochs: int | None = None, batch_size: int | None = None, workers: int = 2,
          use_multiprocessing: bool = False, max_queue_size: int = 10, source: str = "npy", seed: int = 0,
          hidden=None, dropout: float | None = None, learning_rate: float = 1e-3, patience: int | None = None,
          model: str = "default",
          fill: str | None = None, class_weight=None, verbose: int = 1, extra_callbacks=(),
          process: tuple[int, int] | None = None, save_every_batches: int | None = None,
          save_every_minutes: float | None = None, progress: bool = False, cache_dir=None, cache_limit=None,
          storage_options: dict | None = None, staging_dir=None, in_memory: bool | None = None,
          steps_per_execution: int | None = None, saved_model: bool = True) -> TrainingResult:
    """Train :func:`~questlearn.train.model.build_model` on ``split_dir``.

    Parameters
    ----------
    split_dir : str or Path
        A finished split (holds ``manifest.json``): a folder, or a URL (``s3://bucket/prefix/``) whose
        shards are read through a local cache (:mod:`questlearn.data._shard_cache`).
    model_dir : str or Path
        Where models, backups and history go (see the module docstring): a folder, or a URL
        (``s3://bucket/prefix``) written through the local folder ``staging_dir``
        (:mod:`questlearn.train._model_store`).
    epochs, batch_size : int, optional
        As in ``fit`` and :class:`~questlearn.data.dataset.QuestSequence`;
        by default chosen from the number of training rows and printed
        (:func:`~questlearn.train._defaults.training_plan`).
    workers, use_multiprocessing, max_queue_size
        Parallel loading of both subsets (Keras ``PyDataset`` arguments).
    source : str
        ``"npy"`` or ``"csv"`` shards.
    seed : int
        Seeds weights, dropout and the data order.
    hidden, dropout, learning_rate
        Model shape and optimiser (see :func:`~questlearn.train.model.build_model`;
        ``hidden`` and ``dropout`` default to the preset's).
    patience : int, optional
        Early stopping patience in epochs, on validation loss (the best
        weights are restored); by default chosen from the epochs.
    model : str
        The network preset (:data:`~questlearn.train.model.MODELS`):
        ``"default"`` or ``"small"``.
    fill : str, optional
        How missing numbers were filled is chosen when splitting
        (``questlearn split --fill``); ``None`` (default) uses the split's,
        another value is an error.
    class_weight : None, "balanced" or dict
        Passed to ``fit``; ``"balanced"`` weighs class ``c`` by
        ``rows / (classes * rows of c)`` in the training subset.
    verbose : int
        Keras progress output: 0 silent, 1 progress bar, 2 one line per epoch.
    extra_callbacks : sequence of keras.callbacks.Callback
        Appended to the standard callbacks.
    process : (int, int), optional
        ``(index, count)``: run as process ``index`` of a ``count``-process
        data-parallel job set up by :mod:`questlearn.train._processes` (use its
        ``train_process``, which also keeps files to process 0).
    save_every_batches, save_every_minutes : optional
        Also save the training state inside an epoch, every this many
        batches and/or minutes; a killed run then resumes at the batch after
        the last save (see :mod:`questlearn.train._resume`). With either, the state
        is also saved at every epoch end; without them, at the first epoch's end and then
        at an epoch end at most every 30 s.
    cache_dir, cache_limit, storage_options
        For a split in a store: the cache folder, its limit (bytes, or ``"20GB"``), the store's
        options (see :class:`~questlearn.data.dataset.QuestSequence`); the options serve a model folder
        in a store too.
    staging_dir : str or Path, optional
        For a model folder in a store: the local folder it is written in first (default
        ``~/.cache/questlearn/models/<hash of the URL>``, under ``$XDG_CACHE_HOME`` when it is set).
    progress : bool
        Show rows done, rows/s and time left inside each epoch
        (:class:`~questlearn.train._progress.TrainingProgress`) instead of Keras's
        progress bar; ``verbose`` then only controls the opening line.
    in_memory : bool, optional
        Serve the training and validation rows from arrays read once
        (:meth:`~questlearn.data.dataset.QuestSequence.in_memory`: the same batches in
        the same order) instead of from the shards batch by batch. By default, when
        they fit :func:`memory_budget` (with TensorFlow's copy for its ``tf.data`` feed:
        :func:`~questlearn.data._memory_feed.held_bytes`), unless ``use_multiprocessing`` or the run
        is one process of several; the choice is printed. A table in memory also gets a larger step budget
        (:func:`~questlearn.train._defaults.training_plan`).
    steps_per_execution : int, optional
        Batches each call into the backend runs (Keras's ``compile`` argument);
        by default :func:`~questlearn.train._defaults.steps_per_execution` (1 on torch,
        with a callback of ``extra_callbacks`` that has batch hooks, or in a
        data-parallel process). Must divide ``save_every_batches``.
    saved_model : bool
        Also write ``saved_model/`` (TensorFlow backend). ``False`` (``--no-saved-model``) saves about a
        second of a small table's run; ``questlearn export MODEL_DIR`` writes it later.

    Returns
    -------
    TrainingResult

    Raises
    ------
    questlearn.errors.QuestlearnError
        A user's mistake, named (an ``IntegrityError`` for a shard damaged or
        changed since the split, even when a data worker met it; a
        ``SchemaError`` before any training for two feature columns that
        would be one input of the SavedModel).
    questlearn.data.BatchLoadError
        A batch failed for another reason (a data worker died, a bug).
    """
    for name, value in (("epochs", epochs), ("batch_size", batch_size), ("patience", patience),
                        ("steps_per_execution", steps_per_execution)):
        if value is not None and int(value) < (0 if name == "patience" else 1):
            raise OptionError(f"{name} must be at least {0 if name == 'patience' else 1}, got {value}")
    if steps_per_execution is not None and save_every_batches and int(save_every_batches) % int(steps_per_execution):
        raise OptionError(f"steps_per_execution ({steps_per_execution}) must divide save_every_batches "
                          f"({save_every_batches}): a save happens only at the end of a backend call")
    remote = dict(cache_dir=cache_dir, cache_limit=cache_limit, storage_options=storage_options)
    manifest, _ = open_split(split_dir, SUBSETS, **remote)
    keys = signature_keys(manifest["schema"]["features"])  # a name the SavedModel cannot serve: refused before the fit
    given_batch_size = batch_size
    batch_size = training_plan(manifest["subsets"]["train"]["rows"], batch_size).batch_size  # the same in memory or not
    stored = open_model_dir(model_dir, storage_options, staging_dir, verbose)
    stored.prepare()  # a model folder in a store: its backup, if any, downloaded into the staging folder
    model_dir = stored.folder
    backup_dir = model_dir / "backup"
    history_csv = model_dir / "history.csv"
    resumed = load_backup(backup_dir)
    if resumed is None and history_csv.exists():
        history_csv.unlink()  # a finished earlier run: start its history afresh

    keras.utils.set_random_seed(seed)
    loading = dict(batch_size=batch_size, source=source, workers=workers, fill=fill,
                   use_multiprocessing=use_multiprocessing, max_queue_size=max_queue_size, **remote)
    train_data = QuestSequence(split_dir, "train", shuffle=True, seed=seed, **loading)
    # validation only evaluates: larger batches, fewer steps, the same mean over its rows
    validation_data = QuestSequence(split_dir, "validate", shuffle=False,
                                    **{**loading, "batch_size": max(batch_size, VALIDATION_BATCH_SIZE)})
    rows_bytes, budget = train_data.memory_bytes() + validation_data.memory_bytes(), memory_budget()
    held = held_bytes(rows_bytes)  # on TensorFlow also the tf.data feed's copy
    if in_memory is None:  # worker processes were asked for (use_multiprocessing): they load the batches
        in_memory = process is None and not use_multiprocessing and held <= budget
    elif in_memory and process is not None:
        raise OptionError("in_memory serves a whole subset; a data-parallel process reads its own part from the shards")
    if in_memory:
        train_data, validation_data = train_data.in_memory(), validation_data.in_memory()
    if verbose:
        where = ("served from memory" if in_memory else "read from the shards batch by batch"
                 + (" by worker processes" if use_multiprocessing else ""))
        copy = f" ({held / 2 ** 20:.1f} MiB with TensorFlow's copy for its feed)" if held > rows_bytes else ""
        print(f"questlearn: training and validation rows take {rows_bytes / 2 ** 20:.1f} MiB as arrays{copy}, the in-memory "
              f"budget is {budget / 2 ** 20:.0f} MiB (at most {IN_MEMORY_BUDGET // 2 ** 20} MiB or "
              f"{IN_MEMORY_SHARE:.0%} of the available memory): {where}", flush=True)
    schedule = MODELS.get(model, {}).get("schedule", False)
    plan = training_plan(manifest["subsets"]["train"]["rows"], given_batch_size, epochs, patience, in_memory=in_memory,
                         warmup_steps=warmup_steps if schedule else None)
    epochs, patience = plan.epochs, plan.patience
    left_out = left_out_codes(train_data)  # from the whole subset: every process of a parallel run decides alike
    parallel = {}
    if process is not None:  # equal shards, agreed by all processes, or all fail here
        from ._processes import shard_for_process

        train_data, validation_data, parallel = shard_for_process(train_data, validation_data, *process,
                                                                  resuming=backup_dir.exists(), seed=seed)
    mean, variance = train_data.feature_moments()
    shape = dict(hidden=hidden, dropout=dropout, learning_rate=learning_rate, extra_metrics=parallel.get("metrics", ()),
                 code_counts=train_data.code_counts(), model=model, quantiles=train_data.feature_quantiles(),
                 total_steps=epochs * len(train_data), bounds=train_data.feature_bounds(),
                 left_out_codes=[train_data.input_names()["codes"].index(name) for name in left_out])
    if verbose:
        print(describe_embeddings(shape["code_counts"]), flush=True)
        left_out_line = describe_left_out(left_out)
        if left_out_line:
            print(left_out_line, flush=True)
        print(describe_bounds(train_data.input_names().get("numbers", []), shape["bounds"]), flush=True)
    regression = train_data.reader.task == "regression"
    extra = {}
    if regression:
        if class_weight is not None:
            raise OptionError("class_weight applies to classification; this split's task is regression")
        target = train_data.manifest["subsets"]["train"]["label_stats"]
        network = build_model(mean, variance, 1, task="regression", target_mean=target["mean"],
                              target_std=target["std"], **shape)
        extra["mean_baseline"] = mean_baseline(train_data, validation_data)
        baseline = float("nan")
        said = (f"predict-the-mean baseline on validation: MAE {extra['mean_baseline']['mae']:.4g}, "
                f"RMSE {extra['mean_baseline']['rmse']:.4g}")
    else:
        network = build_model(mean, variance, train_data.num_classes, **shape)
        counts = class_counts(validation_data)
        baseline = float(counts.max() / counts.sum())
        said = f"majority-class baseline on validation: {baseline:.4f}"

    device = describe_device()
    threads = limit_torch_threads(workers)  # None unless torch on CPU, whose threads must not oversubscribe cores
    if verbose and threads:
        print(f"questlearn: {threads}")
    if verbose:
        print(plan.describe(train_data.plan.total_rows))
        renamed = describe_rewritten(keys)
        if renamed:
            print(renamed)
        print(f"questlearn: training on {device}; the {model!r} model; {train_data.plan.total_rows} training rows, "
              f"{validation_data.plan.total_rows} validation rows, {len(train_data.feature_moments()[0])} numbers and "
              f"{len(train_data.code_counts())} category codes a row; {said}")

    checkpoint = BestModelCheckpoint(str(model_dir / "best.keras"), monitor="val_loss")
    early_stopping = EarlyStoppingAfterWarmup(plan.warmup_epochs, monitor="val_loss", patience=patience,
                                              restore_best_weights=True)
    backup = TrainingBackup(backup_dir, train_data, every_batches=save_every_batches, every_minutes=save_every_minutes,
                            resumed=resumed, watched=(checkpoint, early_stopping), after_save=stored.backup_saved)
    callbacks = [
        ThroughputLogger(train_data.plan.total_rows),
        backup.time_keeper(),
        checkpoint,
        early_stopping,
        keras.callbacks.CSVLogger(str(history_csv), append=True),
        *parallel.get("callbacks", ()),
        backup,  # after EarlyStopping and CSVLogger: its epoch-end save includes their state
        *([TrainingProgress(train_data, epochs=epochs)] if progress else []),  # after backup, which sets the epoch
        *extra_callbacks,
    ]
    if steps_per_execution is None:
        per_batch = process is not None or any(map(sees_every_batch, (*extra_callbacks, *parallel.get("callbacks", ()))))
        steps_per_execution = choose_steps_per_execution(save_every_batches, per_batch, keras.backend.backend())
    elif steps_per_execution > 1 and keras.backend.backend() == "torch":
        raise OptionError(f"steps_per_execution must be 1 on the torch backend, got {steps_per_execution}")
    network.steps_per_execution = int(steps_per_execution)  # as compile(steps_per_execution=...) sets it
    if class_weight == "balanced":
        counts = class_counts(train_data)
        class_weight = {c: float(counts.sum() / (len(counts) * n)) for c, n in enumerate(counts.tolist()) if n}
    # shuffle=False: QuestSequence shuffles itself, seeded; Keras's shuffle is unseeded.
    fit_resuming(network, train_data, backup, epochs=epochs, sample=validation_data[0], history_csv=history_csv,
                 verbose=verbose, validation_data=validation_data, shuffle=False, callbacks=callbacks,
                 fit_verbose=0 if progress else verbose, class_weight=class_weight)
    checkpoint.write_unwritten(network)  # early stopping has put the best epoch's weights back
    export_models(network, train_data.reader, model_dir, saved_model=saved_model)  # model.keras, inference.keras, ...
    remove_backup(backup_dir)  # only now: a kill before the export resumes instead of starting afresh

    history = read_history_csv(history_csv)
    result = TrainingResult(model=network, history=history, model_dir=model_dir, device=device,
                            majority_baseline=baseline, extra=extra, stored_at=stored.url)
    record = {
        **history,
        "best_epoch": result.summary()["best_epoch"],  # numbered from 1: the epoch whose weights the model holds
        "device": device,
        "task": "regression" if regression else "classification",
        "majority_baseline": baseline,
        **extra,
        "backend": keras.backend.backend(),
        "split_dir": manifest.get("url", manifest["root"]),
        "train_rows": train_data.plan.total_rows,
        "batch_size": batch_size,
        "model": model,
        "planned_epochs": epochs,
        "patience": patience,
        "patience_from_epoch": plan.warmup_epochs,
        "in_memory": bool(in_memory),
        "steps_per_execution": int(steps_per_execution),
        "workers": workers,
        "use_multiprocessing": use_multiprocessing,
        **parallel.get("record", {}),
    }
    with open(model_dir / "history.json", "w", encoding="utf-8") as handle:
        json.dump({k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in record.items()}, handle, indent=1)
    stored.publish()  # a model folder in a store: the final files uploaded, history.json last
    return result
