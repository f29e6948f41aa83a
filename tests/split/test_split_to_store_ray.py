"""A parallel split on Ray, its parts in S3 and its output in S3, then Ray Train on that split into a
model folder in S3: no local path shared by the nodes.

Two Ray nodes on this machine (``ray.cluster_utils.Cluster``, started once),
each with its own cache folder (``XDG_CACHE_HOME``) for staging and shards;
the part tasks get URLs only, write their part splits to the store, and the
merge reads them from there; the training workers read the split through
their own node's shard cache, and worker 0 uploads the model. The S3 server
is moto's, on 127.0.0.1 (the ``s3`` fixture). Training is the command
``questlearn train URL --ray ADDRESS --verbose 2`` in a child process, whose
output and summary show the weights bit-identical on both workers and every
row used once an epoch; worker 0 serves the JAX coordinator on its node's
address. (A private Ray on 127.0.0.1 is checked by the Ray split in
``test_parallel_split.py``: both start it through ``questlearn._ray_session``.)
"""

import json
import re
import subprocess
import sys

import pytest
from helpers import run_env
from s3server import gzip_part_files, put_files, stored_objects
from trained import assert_one_job_on_every_row

from questlearn._ray_session import start_ray_node
from questlearn.split import split_csv

LOOPBACK = "127.0.0.1"  # both nodes, the driver and the training child: nothing listens elsewhere
# Ray Train's preemption watcher (an actor of its own) and its metrics, which questlearn does not use: off, so
# this 2-core machine runs a process fewer beside the test.
RAY_TRAIN_EXTRAS_OFF = {"RAY_TRAIN_ENABLE_PREEMPTION_WATCHER": "0", "RAY_TRAIN_METRICS_ENABLED": "0"}
OPTIONS = dict(rows_per_shard=150, max_open_shards=3, val_fraction=0.2, seed=3, id_columns=("attempt_id",),
               block_size=8192, verbose=False)


def start_nodes(cluster, nodes: list) -> None:
    """Add ``nodes`` (the first is the head) to ``cluster``, each started again, as questlearn starts a private
    Ray, when it misses Ray's fixed 30 s start-up wait (it can on a busy machine)."""
    for node in nodes:
        start_ray_node(lambda: cluster.add_node(**node))


@pytest.mark.xdist_group("ray")  # one local Ray cluster at a time
@pytest.mark.timeout(1800)
def test_a_ray_split_and_ray_training_in_s3_share_no_local_path(s3, tmp_path, monkeypatch):
    """Two Ray nodes, each with its own cache (staging) folder: every part task writes its part split to the
    store, and the merge reads them from there; then two Ray Train workers, one a node, train on that split
    URL, each through its own node's shard cache, every training row once an epoch, into a model folder URL;
    both workers end with bit-identical weights, and the JAX coordinator is served on the node's address."""
    pytest.importorskip("ray.train", reason="Ray Train is not installed (pip install 'questlearn[ray]')")
    monkeypatch.setenv("KERAS_BACKEND", "jax")  # the workers' backend, as --ray requires
    # Ray's single-machine mode keeps every node, the driver and the training child on 127.0.0.1 (read when
    # Ray is imported; set in this process too, should another test have imported Ray before).
    monkeypatch.setenv("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    import ray
    from ray._private import ray_constants
    from ray.cluster_utils import Cluster

    monkeypatch.setattr(ray_constants, "ENABLE_RAY_CLUSTER", False)

    parts = gzip_part_files(tmp_path / "parts")
    put_files(s3, parts, "logs")
    local = split_csv(parts, tmp_path / "local", parallel=2, **OPTIONS)
    cluster = Cluster()
    try:
        start_nodes(cluster, [{"num_cpus": 1, "node_ip_address": LOOPBACK, "include_dashboard": False,
                               "env_vars": {**RAY_TRAIN_EXTRAS_OFF, "XDG_CACHE_HOME": str(tmp_path / "node-a")}},
                              {"num_cpus": 1, "node_ip_address": LOOPBACK,
                               "env_vars": {**RAY_TRAIN_EXTRAS_OFF, "XDG_CACHE_HOME": str(tmp_path / "node-b")}}])
        manifest = split_csv(s3.url("logs/"), s3.url("splits/ray/"), ray=cluster.address, parallel=2,
                             staging_dir=tmp_path / "driver", **OPTIONS)
        ray.shutdown()  # the split's connection; training opens its own
        done = subprocess.run([sys.executable, "-m", "questlearn", "train", s3.url("splits/ray/"), "--model-dir",
                               s3.url("models/ray"), "--ray", cluster.address, "--ray-workers", "2", "--epochs", "2",
                               "--batch-size", "64", "--workers", "1", "--model", "small", "--hidden", "8",
                               "--verbose", "2"], capture_output=True, text=True, timeout=1500, env=run_env())
    finally:
        ray.shutdown()
        cluster.shutdown()
    assert manifest["parallel"]["engine"] == "ray"
    objects = stored_objects(s3, "splits/ray")
    local_files = {str(p.relative_to(tmp_path / "local")): p.read_bytes()
                   for p in sorted((tmp_path / "local").rglob("*.npy"))}
    assert sorted(objects) == sorted([*local_files, "manifest.json"])  # no .parts/, plan or journal left
    assert all(objects[name] == data for name, data in local_files.items())
    assert json.loads(objects["manifest.json"])["subsets"] == local["subsets"]
    assert not (tmp_path / "driver").exists()

    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-4000:]
    summary = json.loads(done.stdout[done.stdout.rindex("\n{"):])
    train_rows = manifest["subsets"]["train"]["rows"]
    assert train_rows % 2, train_rows  # one padding row an epoch: still every row once
    assert summary["processes"] == 2 and summary["rows_seen_per_epoch"] == [train_rows, train_rows]
    assert summary["history"] == s3.url("models/ray/history.json")
    model = stored_objects(s3, "models/ray")
    assert {"model.keras", "inference.keras", "inference.json", "best.keras", "history.csv"} <= set(model)
    assert not any(name.startswith(("backup/", "ray/")) for name in model), sorted(model)
    assert json.loads(model["history.json"])["rows_seen"] == [train_rows, train_rows]
    assert_one_job_on_every_row(output, json.loads(model["history.json"]), train_rows)
    assert summary["ray_nodes"] == [LOOPBACK]  # the Ray nodes, checked after ray.init
    assert re.search(r"serves the JAX coordinator at 127\.0\.0\.1:\d+", output), output[-4000:]
    for node in ("node-a", "node-b"):  # each worker read the split through its own node's cache
        assert any((tmp_path / node / "questlearn" / "shards").rglob("*.npy")), node
    staged = [node for node in ("node-a", "node-b") if (tmp_path / node / "questlearn" / "models").exists()]
    assert len(staged) == 1, staged  # worker 0 alone staged the model folder
