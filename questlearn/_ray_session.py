"""A Ray session for questlearn's Ray paths: a private one on 127.0.0.1 only, or an existing cluster.

``ray.init(_node_ip_address="127.0.0.1")`` alone still resolves "127.0.0.1"
to the host's network address (``ray._private.services.resolve_ip_for_localhost``);
Ray keeps to the loopback only in its single-machine mode, which
``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` selects. A private Ray is checked to
run on 127.0.0.1 alone, and stopped when the session ends.
"""

from __future__ import annotations

import contextlib
import os
import sys

from .errors import MissingPackageError

# Ray gives a starting node a fixed 30 s to register (ray/_private/node.py); a machine kept busy by
# other work can take longer, and a second start then succeeds. A private Ray is started this often.
LOCAL_START_ATTEMPTS = 3
RAY_START_TIMEOUT = "timed out during startup"


def import_ray(address, need: str = "Ray"):
    """Import Ray (after choosing single-machine mode for a private one), or say how to install it."""
    if address in (None, "local"):
        os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"  # read when Ray is imported
    try:
        import ray
    except ImportError as error:
        raise MissingPackageError(f"--ray needs {need} ({error}); install it with: pip install 'questlearn[ray]'") from None
    return ray


@contextlib.contextmanager
def ray_session(address, env_vars: dict, num_cpus: int, **local_options):
    """``ray.init`` on ``address``, or a private Ray on 127.0.0.1 when it is None or ``"local"``.

    Parameters
    ----------
    address : str or None
        An existing cluster's address, or None / ``"local"``.
    env_vars : dict
        Environment of the Ray workers.
    num_cpus : int
        CPUs of a private Ray.
    **local_options
        Further ``ray.init`` options for a private Ray.

    Yields
    ------
    list of str
        The addresses of the live Ray nodes (``["127.0.0.1"]`` for a private Ray).
    """
    ray = import_ray(address)
    local = address in (None, "local")
    if local:
        import ray._private.ray_constants as ray_constants

        ray_constants.ENABLE_RAY_CLUSTER = False  # read at import: in case Ray was imported before this call
        start_local_ray(ray, _node_ip_address="127.0.0.1", include_dashboard=False, num_cpus=num_cpus,
                        runtime_env={"env_vars": {**env_vars, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}},
                        **local_options)
    else:
        ray.init(address=address, runtime_env={"env_vars": env_vars})
    try:
        nodes = sorted({node["NodeManagerAddress"] for node in ray.nodes() if node.get("Alive")})
        if local and nodes != ["127.0.0.1"]:
            raise RuntimeError(f"the local Ray listens on {nodes}, not on 127.0.0.1 only; stopping")
        yield nodes
    finally:
        if local:
            ray.shutdown()


def start_local_ray(ray, **options) -> None:
    """``ray.init(**options)`` for a private Ray, started again (up to :data:`LOCAL_START_ATTEMPTS`
    times in all, each retry printed) when its node misses Ray's fixed start-up wait, as it can on
    a busy machine. Any other failure is raised at once."""
    def again(attempt):
        ray.shutdown()
        print(f"the local Ray node did not register within Ray's start-up wait (a busy machine?); "
              f"starting it again (attempt {attempt + 1} of {LOCAL_START_ATTEMPTS})", file=sys.stderr, flush=True)

    start_ray_node(lambda: ray.init(**options), before_retry=again)


def start_ray_node(start, before_retry=None) -> None:
    """Call ``start`` (which starts a Ray node) up to :data:`LOCAL_START_ATTEMPTS` times, again only when
    the node missed Ray's fixed start-up wait; ``before_retry(attempt)`` runs before each new attempt.

    Parameters
    ----------
    start : callable
        Starts the node (``ray.init``, ``Cluster.add_node``...).
    before_retry : callable, optional
        Cleans up after a failed attempt; called with that attempt's number (from 1).
    """
    for attempt in range(1, LOCAL_START_ATTEMPTS + 1):
        try:
            start()
            return
        except Exception as error:  # Ray raises a bare Exception for this
            if RAY_START_TIMEOUT not in str(error) or attempt == LOCAL_START_ATTEMPTS:
                raise
            if before_retry is not None:
                before_retry(attempt)
