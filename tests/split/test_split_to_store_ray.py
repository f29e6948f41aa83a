"""A parallel split on Ray, its parts in S3 and its output in S3: no local path shared by the nodes.

Two Ray nodes on this machine (``ray.cluster_utils.Cluster``), each with its
own cache folder for staging; the part tasks get URLs only, write their part
splits to the store, and the merge reads them from there. The S3 server is
moto's, on 127.0.0.1 (the ``s3`` fixture).
"""

import json

import pytest
from s3server import gzip_part_files, put_files, stored_objects

from questlearn.split import split_csv

OPTIONS = dict(rows_per_shard=150, max_open_shards=3, val_fraction=0.2, seed=3, id_columns=("attempt_id",),
               block_size=8192, verbose=False)


@pytest.mark.xdist_group("ray")  # one local Ray cluster at a time
@pytest.mark.timeout(900)
def test_a_ray_split_of_parts_in_s3_into_s3_shares_no_local_path_and_is_byte_identical(s3, tmp_path):
    """Two Ray nodes, each with its own cache (staging) folder: every part task writes its part split to the
    store, and the merge reads them from there."""
    pytest.importorskip("ray")
    import ray
    from ray.cluster_utils import Cluster

    parts = gzip_part_files(tmp_path / "parts")
    put_files(s3, parts, "logs")
    local = split_csv(parts, tmp_path / "local", parallel=2, **OPTIONS)
    cluster = Cluster(initialize_head=True, head_node_args={
        "num_cpus": 1, "env_vars": {"XDG_CACHE_HOME": str(tmp_path / "node-a")}})
    try:
        cluster.add_node(num_cpus=1, env_vars={"XDG_CACHE_HOME": str(tmp_path / "node-b")})
        manifest = split_csv(s3.url("logs/"), s3.url("splits/ray/"), ray=cluster.address, parallel=2,
                             staging_dir=tmp_path / "driver", **OPTIONS)
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
