"""torch on CPU: questlearn caps torch's compute threads at cores - loading workers."""

import json
import subprocess
import sys

import pytest
from helpers import TORCH_MISSING, run_env

CODE = """
import json, sys, torch
from questlearn.train._torch_cpu import limit_torch_threads, usable_cores
message = limit_torch_threads(int(sys.argv[1]))
print(json.dumps({"message": message, "threads": torch.get_num_threads(), "cores": usable_cores()}))
"""


def limit_in_child(workers, **env):
    result = subprocess.run([sys.executable, "-c", CODE, str(workers)], capture_output=True, text=True,
                            env={**run_env(), "KERAS_BACKEND": "torch", **env}, timeout=720)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.timeout(1800)
def test_torch_threads_leave_cores_to_the_loading_workers():
    pytest.importorskip("torch", reason=TORCH_MISSING)
    if "OMP_NUM_THREADS" in run_env():
        pytest.skip("OMP_NUM_THREADS is set in this environment; questlearn respects it")
    outcome = limit_in_child(2)
    assert outcome["threads"] == max(1, outcome["cores"] - 2)
    assert "loading workers" in outcome["message"]
    explicit = limit_in_child(2, QUESTLEARN_TORCH_THREADS="3")
    assert explicit["threads"] == 3 and "QUESTLEARN_TORCH_THREADS" in explicit["message"]
    untouched = limit_in_child(2, QUESTLEARN_TORCH_THREADS="0")
    default = subprocess.run([sys.executable, "-c", "import torch; print(torch.get_num_threads())"],
                             capture_output=True, text=True, env=run_env(), timeout=720)
    assert untouched["threads"] == int(default.stdout.split()[-1])  # torch's own default, untouched
    bad = subprocess.run([sys.executable, "-c", CODE, "2"], capture_output=True, text=True,
                         env={**run_env(), "KERAS_BACKEND": "torch", "QUESTLEARN_TORCH_THREADS": "many"}, timeout=720)
    assert bad.returncode != 0 and "whole number" in bad.stderr


def test_other_backends_are_left_alone():
    import keras

    from questlearn.train._torch_cpu import limit_torch_threads

    if keras.backend.backend() == "torch":
        pytest.skip("this test is about the other backends")
    assert limit_torch_threads(2) is None
