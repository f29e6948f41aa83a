"""Data-parallel training across processes on localhost (JAX on CPU).

What must hold after a multi-process run, checked through the model and not
only through the loader (a loader-level check passes a job that silently
trains on half of the rows):

* the weights are bit-identical on every process (each prints a SHA-256 of
  its final weights; process 0's saved model has the same digest);
* the global ``rows_seen`` metric, the sum of sample weights that went
  through the model, equals the training rows in every epoch, for a row
  count that does not divide by processes x batch size (padding rows weigh 0);
* a mismatched configuration stops every process with a message, no hang.

Every test is bounded twice: a subprocess timeout and pytest-timeout. Ray Train is
checked the same way in ``tests/split/test_split_to_store_ray.py``.
"""

import json
import subprocess
import sys

import pytest
from helpers import run_env
from splits import model_ready_split
from trained import assert_one_job_on_every_row

from questlearn.cli import _without_option
from questlearn.synth import write_quest_log
from questlearn.train._launch import launch_local
from questlearn.train._processes import free_port, require_jax_backend, weights_digest

BATCH = 128


@pytest.fixture(scope="module")
def odd_split(tmp_path_factory):
    """A split whose training rows divide neither by 2 nor by 2 x BATCH."""
    root = tmp_path_factory.mktemp("distributed")
    log = write_quest_log(root / "quests.csv", rows=3001, seed=21)
    model_ready_split(log, root / "split", rows_per_shard=700, val_fraction=0.2, seed=3, id_columns=("attempt_id", "player_id"))
    manifest = json.loads((root / "split" / "manifest.json").read_text())
    rows = manifest["subsets"]["train"]["rows"]
    assert rows % 2 and rows % (2 * BATCH), rows
    return root / "split", rows


def jax_env():
    env = run_env()
    env["KERAS_BACKEND"] = "jax"
    return env


def run_questlearn(args, timeout):
    return subprocess.run([sys.executable, "-m", "questlearn", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, env=jax_env())


@pytest.mark.timeout(1260)
def test_two_local_processes_keep_identical_weights_and_use_every_row_once(odd_split, tmp_path):
    split, train_rows = odd_split
    model_dir = tmp_path / "model"
    done = run_questlearn(["train", split, "--model-dir", model_dir, "--epochs", 2, "--batch-size", BATCH,
                           "--workers", 1, "--verbose", 2, "--local-processes", 2, "--model", "small", "--hidden", 8],
                          timeout=1080)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-3000:]
    digest = assert_one_job_on_every_row(output, json.loads((model_dir / "history.json").read_text()), train_rows)
    import keras

    import questlearn.train.model  # noqa: F401 - registers the custom metrics for loading

    saved = keras.saving.load_model(model_dir / "model.keras", compile=False)
    assert weights_digest(saved) == digest  # process 0 wrote the model that all processes trained
    assert sorted(p.name for p in model_dir.iterdir()) == ["best.keras", "history.csv", "history.json", "inference.json", "inference.keras", "model.keras"]


@pytest.mark.timeout(1440)
def test_mismatched_configuration_stops_every_process(odd_split, tmp_path):
    split, _ = odd_split
    coordinator = f"127.0.0.1:{free_port()}"
    processes = [subprocess.Popen([sys.executable, "-m", "questlearn", "train", str(split), "--model-dir", str(tmp_path / "m"),
                                   "--epochs", "1", "--batch-size", str(batch), "--verbose", "0",
                                   "--num-processes", "2", "--process-id", str(index), "--coordinator", coordinator],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=jax_env())
                 for index, batch in ((0, BATCH), (1, BATCH + 1))]
    try:
        outputs = [p.communicate(timeout=540) for p in processes]
    finally:
        for p in processes:
            p.kill()
    for p, (_, err) in zip(processes, outputs):
        assert p.returncode == 2, err[-2000:]
        assert "disagree, so none of them trains" in err and f"process 0={BATCH}, process 1={BATCH + 1}" in err, err[-2000:]
    assert not (tmp_path / "m" / "model.keras").exists()


def test_other_backends_are_refused_with_the_reason(monkeypatch):
    monkeypatch.setenv("KERAS_BACKEND", "tensorflow")
    with pytest.raises(ValueError, match="JAX only.*keras-team/keras#20585"):
        launch_local(["train", "split"], 2)
    import keras

    if keras.backend.backend() != "jax":
        with pytest.raises(ValueError, match="needs the JAX backend"):
            require_jax_backend()


def test_child_command_drops_only_the_launch_option():
    argv = ["train", "s", "--local-processes", "2", "--epochs", "3", "--local-processes=4"]
    assert _without_option(argv, "--local-processes") == ["train", "s", "--epochs", "3"]
