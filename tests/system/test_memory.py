"""Peak memory must not grow with the data: 1x vs 4x, in fresh processes.

(The benchmarks measure the same at larger sizes; see benchmarks/.)
"""


import pytest
from helpers import run_child, run_env
from splits import model_ready_split

from questlearn.synth import write_quest_log

SMALL_ROWS = 50_000  # ~11 MB; 4x is ~43 MB


def peak(*args, env=None):
    result = run_child("memory_probe.py", *args, timeout=900, env=env, fresh=True)  # a peak RSS from a fresh interpreter
    assert result.returncode == 0, result.stderr[-3000:]
    line = next(line for line in result.stdout.splitlines() if line.startswith("PEAK"))
    own, children = map(float, line.split()[1:])
    return own, children


@pytest.fixture(scope="module")
def logs(tmp_path_factory):
    root = tmp_path_factory.mktemp("memory")
    return {factor: write_quest_log(root / f"log_{factor}x.csv", rows=SMALL_ROWS * factor, seed=factor)
            for factor in (1, 4)}


@pytest.mark.timeout(1800)
def test_split_peak_memory_is_flat(logs, tmp_path):
    small, _ = peak("split", logs[1], tmp_path / "s1")
    large, _ = peak("split", logs[4], tmp_path / "s4")
    size_growth_mib = (logs[4].stat().st_size - logs[1].stat().st_size) / 2**20
    assert large <= small * 1.10, (small, large)
    assert large - small < 0.25 * size_growth_mib  # a whole-file read would add at least the file size


@pytest.fixture(scope="module")
def splits(logs, tmp_path_factory):
    """Model-ready splits (CSV and npy shards) of both logs, shared by the loader tests."""
    root = tmp_path_factory.mktemp("memory-splits")
    for factor, log in logs.items():
        model_ready_split(log, root / f"split{factor}", rows_per_shard=20_000, id_columns=("attempt_id",))
    return {factor: root / f"split{factor}" for factor in logs}


@pytest.mark.timeout(1800)
@pytest.mark.parametrize("source", ["npy", "csv"])
def test_loader_peak_memory_is_flat_workers_included(splits, source):
    # The loader and its workers read shards into numpy arrays whatever the backend; Keras's numpy backend keeps
    # TensorFlow's few hundred MiB out of the baseline (a tighter 10 % bound) and each probe starts sooner.
    env = {**run_env(), "KERAS_BACKEND": "numpy"}
    peaks = {factor: peak("load", split, source, env=env) for factor, split in splits.items()}
    (own_small, workers_small), (own_large, workers_large) = peaks[1], peaks[4]
    assert own_large <= own_small * 1.10, peaks
    assert workers_large <= workers_small * 1.10, peaks
