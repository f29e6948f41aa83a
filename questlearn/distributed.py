"""Data-parallel training over several processes: ``keras.distribution`` on JAX.

One job is ``N`` processes, each holding a full copy of the model and
training on its own equal part of every epoch (:meth:`QuestSequence.shard`);
gradients are averaged across processes at every step, so the weights stay
identical everywhere. The pieces:

* :func:`train_process` — one process of a job: joins the JAX coordinator,
  sets a ``keras.distribution.DataParallel`` distribution with
  ``auto_shard_dataset=False`` (questlearn shards; Keras must not shard
  again), then runs :func:`questlearn.train.train`. Only process 0 writes
  files (checkpoints, history, models); the others write to a temporary
  directory that is removed at the end.
* :func:`shard_for_process` — called by ``train``: shards both subsets, and
  makes every process compare a fingerprint of its configuration (batch
  count, batch shapes, rows, seed, split...) through the coordinator's
  key-value store: they all agree, or they all stop with the same message,
  within ``agree_timeout`` seconds, instead of hanging in a collective.
* :func:`launch_local` — ``--local-processes N``: N processes on this
  machine, coordinator on 127.0.0.1; one failing stops the others.
* :mod:`questlearn.ray_train` — the same job under Ray Train.

Why JAX only: Keras 3 runs ``keras.distribution`` across processes on the
JAX backend. The TensorFlow backend's way, ``MultiWorkerMirroredStrategy``,
fails before the first step in Keras 3 (keras-team/keras#20585), and with
private patches it silently trains on half of a pre-sharded dataset.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

from .orphans import child_environment

AGREE_TIMEOUT_SECONDS = 120
_agreements = 0  # key suffix: one process may run several jobs on one coordinator


def require_jax_backend() -> None:
    """Raise ``ValueError`` unless Keras runs on JAX."""
    import keras

    backend = keras.backend.backend()
    if backend != "jax":
        raise ValueError(
            f"multi-process training needs the JAX backend, and Keras is using {backend!r}. "
            "keras.distribution trains across processes only on JAX in Keras 3; the TensorFlow backend's "
            "MultiWorkerMirroredStrategy fails before the first step (keras-team/keras#20585). "
            "Set KERAS_BACKEND=jax (and install jax) in the environment of every process.")


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free on ``host`` a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def initialize(coordinator: str, num_processes: int, process_id: int, *, startup_timeout: int = 300,
               heartbeat_timeout: int = 60) -> None:
    """Join the job and set the ``DataParallel`` distribution over all its devices.

    Parameters
    ----------
    coordinator : str
        ``HOST:PORT`` of process 0, which serves the coordinator there (bound
        to that address only, not to every interface).
    num_processes, process_id : int
        Size of the job and this process's place in it (0 is the chief).
    startup_timeout : int
        Seconds to wait for all processes to join before failing.
    heartbeat_timeout : int
        Seconds after which a silent (dead) process fails the others.
    """
    require_jax_backend()
    num_processes, process_id = int(num_processes), int(process_id)
    if num_processes < 1 or not 0 <= process_id < num_processes:
        raise ValueError(f"need 0 <= process_id < num_processes, got process_id={process_id}, num_processes={num_processes}")
    if ":" not in coordinator:
        raise ValueError(f"the coordinator must be HOST:PORT, got {coordinator!r}")
    import jax
    import keras

    jax.distributed.initialize(coordinator_address=coordinator, num_processes=num_processes, process_id=process_id,
                               coordinator_bind_address=coordinator, initialization_timeout=int(startup_timeout),
                               heartbeat_timeout_seconds=int(heartbeat_timeout),
                               shutdown_timeout_seconds=int(heartbeat_timeout))
    devices = keras.distribution.list_devices()
    keras.distribution.set_distribution(keras.distribution.DataParallel(devices=devices, auto_shard_dataset=False))


def train_process(split_dir, model_dir, *, num_processes: int, process_id: int, coordinator: str,
                  startup_timeout: int = 300, **train_options):
    """Run process ``process_id`` of a ``num_processes``-process data-parallel job.

    Every process runs this with the same arguments except ``process_id``.
    ``train_options`` go to :func:`questlearn.train.train`; process 0 writes
    to ``model_dir``, the others to a temporary directory removed at the end.

    Returns
    -------
    questlearn.train.TrainingResult
    """
    initialize(coordinator, num_processes, process_id, startup_timeout=startup_timeout)
    from .train import train

    scratch = None if process_id == 0 else tempfile.mkdtemp(prefix=f"questlearn-process{process_id}-")
    try:
        return train(split_dir, model_dir if scratch is None else scratch, process=(process_id, num_processes), **train_options)
    finally:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)


def shard_for_process(train_data, validation_data, index: int, count: int, *, resuming: bool, seed: int,
                      agree_timeout: float = AGREE_TIMEOUT_SECONDS):
    """This process's equal shards of both subsets, once all processes agree on them.

    Returns
    -------
    (train_shard, validation_shard, extras)
        ``extras`` holds ``metrics`` (a global :class:`RowsSeen`),
        ``callbacks`` (the per-process row report) and ``record`` (fields
        for ``history.json``).
    """
    from .model import RowsSeen

    train_shard, validation_shard = train_data.shard(index, count), validation_data.shard(index, count)
    fingerprint = configuration_fingerprint(train_shard, validation_shard, resuming=resuming, seed=seed)
    agree(fingerprint, index, count, timeout=agree_timeout)
    layout = train_shard.equal_shards
    rows_per_process = [stop - first for first, stop in map(layout.rows, range(count))]
    extras = {
        "metrics": [RowsSeen()],
        "callbacks": [ProcessRowsReport(index, count, rows_per_process[index])],
        "record": {"processes": count, "train_rows_per_process": rows_per_process,
                   "padding_rows_per_epoch": layout.padding_rows, "batches_per_process": layout.batches},
    }
    return train_shard, validation_shard, extras


def configuration_fingerprint(train_shard, validation_shard, *, resuming: bool, seed: int) -> dict:
    """What must be the same on every process for synchronous steps to line up."""
    import keras

    manifest = train_shard.manifest
    split = hashlib.sha256(json.dumps([manifest["schema"], manifest["subsets"]], sort_keys=True).encode()).hexdigest()[:16]
    fingerprint = {"keras": keras.__version__, "split": split, "seed": int(seed), "resuming from a backup": bool(resuming),
                   "inputs": len(train_shard.feature_names), "classes": train_shard.num_classes}
    for name, shard in (("train", train_shard), ("validate", validation_shard)):
        layout = shard.equal_shards
        fingerprint.update({f"{name} rows": layout.total_rows, f"{name} batch size": layout.batch_size,
                            f"{name} batches per process": layout.batches, f"{name} last batch rows": layout.last_batch_rows})
    return fingerprint


def agree(fingerprint: dict, index: int, count: int, *, timeout: float = AGREE_TIMEOUT_SECONDS) -> None:
    """Publish ``fingerprint`` and compare it with every other process's.

    Raises ``ValueError`` on every process when any two differ (the message
    lists the differing fields per process), or when a process has not
    published within ``timeout`` seconds.
    """
    global _agreements
    from jax._src.distributed import global_state  # the coordinator's key-value store; no public wrapper yet

    client = global_state.client
    if client is None:
        raise ValueError("jax.distributed is not initialised: start multi-process training with questlearn.distributed.train_process")
    _agreements += 1
    prefix = f"questlearn/fingerprint/{_agreements}"
    client.key_value_set(f"{prefix}/{index}", json.dumps(fingerprint, sort_keys=True))
    prints = {}
    for other in range(count):
        try:
            prints[other] = json.loads(client.blocking_key_value_get(f"{prefix}/{other}", int(timeout * 1000)))
        except Exception as error:  # the coordinator's timeout error type is not public
            raise ValueError(f"process {other} did not publish its configuration within {timeout:.0f} s "
                             f"(process {index} waited): {type(error).__name__}: {error}") from None
    differing = sorted({key for p in prints.values() for key in set(p) | set(fingerprint) if p.get(key) != fingerprint.get(key)})
    if differing:
        lines = "; ".join(f"{key}: " + ", ".join(f"process {i}={prints[i].get(key)!r}" for i in range(count)) for key in differing)
        hint = (" A multi-process run does not resume from process 0's backup (the others keep none):"
                " remove its backup/ directory to start over." if "resuming from a backup" in differing else "")
        raise ValueError(f"the {count} processes of this job disagree, so none of them trains: {lines}.{hint}")


def _make_report_class():
    import keras

    class ProcessRowsReport(keras.callbacks.Callback):
        """Print, per epoch, the training rows this process served and the rows the whole job used;
        at the end, a digest of the weights (the same on every process unless replicas drifted)."""

        def __init__(self, index: int, count: int, rows: int):
            super().__init__()
            self.index, self.count, self.rows = index, count, int(rows)

        def on_epoch_end(self, epoch, logs=None):
            used = (logs or {}).get("rows_seen")
            total = "" if used is None else f"; all {self.count} processes: {int(used)} rows through the model"
            print(f"questlearn: process {self.index}/{self.count}, epoch {epoch + 1}: {self.rows} training rows{total}",
                  flush=True)

        def on_train_end(self, logs=None):
            digest = weights_digest(self.model)
            print(f"questlearn: process {self.index}/{self.count} final weights sha256 {digest}", flush=True)

    return ProcessRowsReport


def weights_digest(model) -> str:
    """SHA-256 of a model's weights, bytes in order: equal on every process of a healthy job."""
    digest = hashlib.sha256()
    for array in model.get_weights():
        digest.update(array.tobytes())
    return digest.hexdigest()


def ProcessRowsReport(index: int, count: int, rows: int):  # noqa: N802 - a class, built on first use
    """See ``_make_report_class``: the per-process rows report callback."""
    return _make_report_class()(index, count, rows)


# -- several processes on this machine ------------------------------------------

def launch_local(child_argv, num_processes: int, *, timeout: float | None = None, grace: float = 10.0) -> int:
    """Run ``python -m questlearn <child_argv>`` as ``num_processes`` processes of one job on 127.0.0.1.

    Each gets ``--num-processes N --process-id I --coordinator 127.0.0.1:PORT``
    appended and ``KERAS_BACKEND=jax``. When one exits with an error, the
    others get ``grace`` seconds to report theirs, then are terminated, so a
    crash never leaves the job waiting in a collective. If this process is
    killed, they end with it (:mod:`questlearn.orphans`).

    Returns
    -------
    int
        0, or the exit status of the first process that failed.
    """
    if int(num_processes) < 1:
        raise ValueError(f"--local-processes must be at least 1, got {num_processes}")
    backend = os.environ.get("KERAS_BACKEND", "jax")
    if backend != "jax":
        raise ValueError(f"KERAS_BACKEND is {backend!r}: multi-process training runs on JAX only "
                         "(keras.distribution; the TensorFlow backend's multi-worker strategy fails in Keras 3, keras-team/keras#20585)")
    coordinator = f"127.0.0.1:{free_port()}"
    env = child_environment({**os.environ, "KERAS_BACKEND": "jax"})  # they end with this process, even if it is killed
    processes = [subprocess.Popen([sys.executable, "-m", "questlearn", *map(str, child_argv),
                                   "--num-processes", str(num_processes), "--process-id", str(index),
                                   "--coordinator", coordinator], env=env)
                 for index in range(int(num_processes))]
    started, failed_at, status = time.monotonic(), None, 0
    previous = signal.signal(signal.SIGTERM, _exit_on_sigterm)  # so `finally` stops the children on `kill` too
    try:
        while any(p.poll() is None for p in processes):
            codes = [p.poll() for p in processes]
            if failed_at is None and any(code not in (None, 0) for code in codes):
                failed_at, status = time.monotonic(), next(code for code in codes if code not in (None, 0))
            if failed_at is not None and time.monotonic() - failed_at > grace:
                break
            if timeout is not None and time.monotonic() - started > timeout:
                status = status or 124
                break
            time.sleep(0.2)
    finally:
        signal.signal(signal.SIGTERM, previous)
        for p in processes:
            if p.poll() is None:
                p.terminate()
        for p in processes:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
    return status or next((p.returncode for p in processes if p.returncode), 0)


def _exit_on_sigterm(signum, frame):
    raise SystemExit(128 + signum)


def train_from_cli(args, options):
    """``questlearn train`` with ``--local-processes``, ``--num-processes`` or ``--ray``.

    Returns the :class:`~questlearn.train.TrainingResult` on process 0 of a
    job run here, ``None`` where this command only launched or was not the
    chief; raises ``ValueError`` (printed by the CLI) on failure.
    """
    chosen = [name for name, given in (("--local-processes", args.local_processes), ("--num-processes", args.num_processes),
                                       ("--ray", args.ray is not None)) if given]
    if len(chosen) > 1:
        raise ValueError(f"choose one of {', '.join(chosen)}")
    if args.ray is not None:
        from .ray_train import train_with_ray

        print(json.dumps(train_with_ray(args.split_dir, args.model_dir, address=args.ray, ray_workers=args.ray_workers, **options), indent=1))
        return None
    if args.local_processes:
        status = launch_local(_without_option(args.argv, "--local-processes"), args.local_processes)
        if status:
            raise ValueError(f"the {args.local_processes}-process job failed (exit status {status}); each process's error is printed above")
        return None
    if args.process_id is None or args.coordinator is None:
        raise ValueError("--num-processes needs --process-id and --coordinator HOST:PORT")
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
