"""The data-parallel job of :mod:`questlearn.train._processes`, launched by Ray Train.

``questlearn train SPLIT --ray [ADDRESS] --ray-workers N``. Ray starts the
N worker processes (on one machine, or spread over an existing cluster),
and each runs :func:`questlearn.train._launch.train_process`: Ray is the
launcher, ``keras.distribution`` on JAX does the training, and each worker
reads only its own equal shard of the split. A split folder must be on
storage every node can read; a split URL (``s3://bucket/split/``) is read by
each worker through its own node's shard cache
(:mod:`questlearn.data._shard_cache`), so the nodes need share no disk.
A model folder URL is written by worker 0 through its node's staging folder
(:mod:`questlearn.train._model_store`); Ray Train's own run folder then goes
to a temporary folder, removed at the end: questlearn reports no checkpoints
to Ray (worker 0 uploads the backups and the model itself), so only Ray's
controller, which Ray places on the driver's node, writes there (the marker
of its run), and no shared storage is needed for it. Worker 0 picks the JAX coordinator address
on its node and broadcasts it; Ray's own JAX backend does not initialise
``jax.distributed`` on CPU, so the workers always do it themselves.

Without ``ADDRESS`` a private Ray is started on 127.0.0.1 (no dashboard)
and stopped at the end.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

from ..data._supervision import user_error_class
from ..errors import MissingPackageError, OptionError
from ..io.outputs import output_is_url
from ..io.storage import locate
from ._launch import train_process
from ._model_store import HISTORY
from ._processes import free_port

HISTORY_BYTES = 64 << 20  # history.json is a few kB an epoch


def train_with_ray(split_dir, model_dir, *, address: str | None = "local", ray_workers: int = 2, **train_options) -> dict:
    """Train on ``workers`` Ray Train workers; returns process 0's summary plus where it ran.

    Parameters
    ----------
    split_dir, model_dir
        As in :func:`questlearn.train._fit.train`. A URL (``s3://...``) is sent to the workers as
        it is (each reads a split URL through its own node's shard cache; worker 0 writes a model
        folder URL through its node's staging folder); a path is sent absolute, so on a multi-node
        cluster it must name storage every node shares.
    address : str or None
        ``None`` or ``"local"``: start Ray here on 127.0.0.1. Otherwise the
        address of a running cluster (``ray.init(address=...)``).
    ray_workers : int
        Training processes (``workers`` is the loader's threads, as in ``train``).
    train_options
        Keyword arguments of :func:`questlearn.train._fit.train`.
    """
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")  # keep each worker's own report lines (read when Ray is imported)
    from .._ray_session import import_ray, ray_session

    import_ray(address, "Ray Train")
    try:
        from ray.train import RunConfig, ScalingConfig
        from ray.train.v2.jax import JaxTrainer
    except ImportError as error:
        raise MissingPackageError(f"--ray needs Ray Train ({error}); install it with: pip install 'questlearn[ray]'") from None
    if int(ray_workers) < 1:
        raise OptionError(f"--ray-workers must be at least 1, got {ray_workers}")
    backend = os.environ.get("KERAS_BACKEND", "jax")
    if backend != "jax":
        raise OptionError(f"KERAS_BACKEND is {backend!r}: training under Ray uses keras.distribution, which runs multi-process on JAX only")
    env_vars = {"KERAS_BACKEND": "jax", "RAY_TRAIN_V2_ENABLED": "1"}
    if os.environ.get("PYTHONPATH"):
        env_vars["PYTHONPATH"] = os.environ["PYTHONPATH"]
    os.environ.setdefault("RAY_TRAIN_V2_ENABLED", "1")
    split_dir, model_dir = _as_sent(split_dir), _as_sent(model_dir)
    stored = output_is_url(model_dir)
    ray_storage = tempfile.mkdtemp(prefix="questlearn-ray-") if stored else str(Path(model_dir) / "ray")
    try:
        with ray_session(address, env_vars, num_cpus=max(int(ray_workers), os.cpu_count() or 1)) as nodes:
            trainer = JaxTrainer(
                _worker_loop,
                train_loop_config={"split_dir": split_dir, "model_dir": model_dir, "options": train_options},
                scaling_config=ScalingConfig(num_workers=int(ray_workers), resources_per_worker={"CPU": 1}),
                run_config=RunConfig(name="questlearn", storage_path=ray_storage),
            )
            try:
                result = trainer.fit()
            except Exception as error:  # Ray wraps the workers' errors
                named = _named_job_failure(error)
                if named is None:
                    raise  # a bug in a worker: its traceback
                raise named from None
    finally:
        if stored:
            shutil.rmtree(ray_storage, ignore_errors=True)
    if result.error is not None:
        raise _named_job_failure(result.error) or result.error
    from ._result import restored_epoch

    history = _read_history(model_dir, train_options.get("storage_options"))  # written by worker 0
    best = restored_epoch(history)  # the epoch whose weights the model holds: its metrics, not each one's best
    return {"epochs": len(history.get("epoch", [])), "best_epoch": history.get("best_epoch"),
            "best_val_accuracy": history["val_accuracy"][best] if best is not None and history.get("val_accuracy") else None,
            "rows_seen_per_epoch": history.get("rows_seen"), "train_rows": history["train_rows"],
            "processes": history.get("processes"), "model": f"{model_dir.rstrip('/')}/model.keras",
            "history": f"{model_dir.rstrip('/')}/{HISTORY}", "ray_nodes": nodes}


def _as_sent(place) -> str:
    """A split or model folder as the workers get it: a URL as it is, a path absolute."""
    text = str(place) if isinstance(place, Path) else place
    return text if output_is_url(text) else str(Path(text).resolve())


def _read_history(model_dir: str, storage_options: dict | None) -> dict:
    """Worker 0's ``history.json``: from the model folder, or from the store for a model folder URL."""
    if not output_is_url(model_dir):
        return json.loads((Path(model_dir) / HISTORY).read_text(encoding="utf-8"))
    store, url = locate(model_dir, storage_options)
    return json.loads(store.read_small(f"{url.rstrip('/')}/{HISTORY}", HISTORY_BYTES))

def _named_job_failure(error: BaseException):
    """A failed Ray Train job's error as the workers' named error when each failed on a user's mistake
    (a damaged shard, a bad option), so the command prints it as one line; ``None`` otherwise (a bug)."""
    failures = list(getattr(error, "worker_failures", {}).values())
    kinds = [user_error_class(failure) for failure in failures]
    if not failures or None in kinds:
        return None
    return kinds[0](f"the Ray Train job failed: {failures[0]}")


def _worker_loop(config: dict) -> None:
    """One Ray Train worker: one process of the keras.distribution job."""
    import ray
    import ray.train
    from ray.train.collective import broadcast_from_rank_zero

    context = ray.train.get_context()
    rank, size = context.get_world_rank(), context.get_world_size()
    coordinator = None
    if rank == 0:
        host = ray.util.get_node_ip_address()
        coordinator = f"{host}:{free_port(host)}"
        print(f"questlearn: Ray worker 0 serves the JAX coordinator at {coordinator}", flush=True)
    coordinator = broadcast_from_rank_zero(coordinator)
    train_process(config["split_dir"], config["model_dir"], num_processes=size, process_id=rank,
                  coordinator=coordinator, **config["options"])
