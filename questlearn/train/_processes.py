"""Data-parallel training over several processes: ``keras.distribution`` on JAX.

One job is ``N`` processes, each holding a full copy of the model and
training on its own equal part of every epoch (:meth:`QuestSequence.shard`);
gradients are averaged across processes at every step, so the weights stay
identical everywhere. The pieces:

* :func:`train_process` — one process of a job: joins the JAX coordinator,
  sets a ``keras.distribution.DataParallel`` distribution with
  ``auto_shard_dataset=False`` (questlearn shards; Keras must not shard
  again), then runs :func:`questlearn.train._fit.train`. Only process 0 writes
  files (checkpoints, history, models); the others write to a temporary
  directory that is removed at the end.
* :func:`shard_for_process` — called by ``train``: shards both subsets, and
  makes every process compare a fingerprint of its configuration (batch
  count, batch shapes, rows, seed, split...) through the coordinator's
  key-value store: they all agree, or they all stop with the same message,
  within ``agree_timeout`` seconds, instead of hanging in a collective.
* :func:`launch_local` — ``--local-processes N``: N processes on this
  machine, coordinator on 127.0.0.1; one failing stops the others.
* :mod:`questlearn.train._ray` — the same job under Ray Train.

Why JAX only: Keras 3 runs ``keras.distribution`` across processes on the
JAX backend. The TensorFlow backend's way, ``MultiWorkerMirroredStrategy``,
fails before the first step in Keras 3 (keras-team/keras#20585), and with
private patches it silently trains on half of a pre-sharded dataset.
"""

from __future__ import annotations

import hashlib
import json
import socket

from ..errors import OptionError, ProcessesDisagreeError

AGREE_TIMEOUT_SECONDS = 120
_agreements = 0  # key suffix: one process may run several jobs on one coordinator


def require_jax_backend() -> None:
    """Raise :class:`~questlearn.errors.OptionError` unless Keras runs on JAX."""
    import keras

    backend = keras.backend.backend()
    if backend != "jax":
        raise OptionError(
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
        raise OptionError(f"need 0 <= process_id < num_processes, got process_id={process_id}, num_processes={num_processes}")
    if ":" not in coordinator:
        raise OptionError(f"the coordinator must be HOST:PORT, got {coordinator!r}")
    import jax
    import keras

    jax.distributed.initialize(coordinator_address=coordinator, num_processes=num_processes, process_id=process_id,
                               coordinator_bind_address=coordinator, initialization_timeout=int(startup_timeout),
                               heartbeat_timeout_seconds=int(heartbeat_timeout),
                               shutdown_timeout_seconds=int(heartbeat_timeout))
    devices = keras.distribution.list_devices()
    keras.distribution.set_distribution(keras.distribution.DataParallel(devices=devices, auto_shard_dataset=False))


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

    Raises :class:`~questlearn.errors.ProcessesDisagreeError` on every process when any two differ (the message
    lists the differing fields per process), or when a process has not
    published within ``timeout`` seconds.
    """
    global _agreements
    from jax._src.distributed import global_state  # the coordinator's key-value store; no public wrapper yet

    client = global_state.client
    if client is None:
        raise RuntimeError("jax.distributed is not initialised: start multi-process training with questlearn.train._launch.train_process")
    _agreements += 1
    prefix = f"questlearn/fingerprint/{_agreements}"
    client.key_value_set(f"{prefix}/{index}", json.dumps(fingerprint, sort_keys=True))
    prints = {}
    for other in range(count):
        try:
            prints[other] = json.loads(client.blocking_key_value_get(f"{prefix}/{other}", int(timeout * 1000)))
        except Exception as error:  # the coordinator's timeout error type is not public
            raise ProcessesDisagreeError(f"process {other} did not publish its configuration within {timeout:.0f} s "
                                         f"(process {index} waited): {type(error).__name__}: {error}") from None
    differing = sorted({key for p in prints.values() for key in set(p) | set(fingerprint) if p.get(key) != fingerprint.get(key)})
    if differing:
        lines = "; ".join(f"{key}: " + ", ".join(f"process {i}={prints[i].get(key)!r}" for i in range(count)) for key in differing)
        hint = (" A multi-process run does not resume from process 0's backup (the others keep none):"
                " remove its backup/ directory to start over." if "resuming from a backup" in differing else "")
        raise ProcessesDisagreeError(f"the {count} processes of this job disagree, so none of them trains: {lines}.{hint}")


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
