"""The quality benchmark's Bayes-optimal figure: its true probabilities are the synth generator's own."""

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

from questlearn import synth

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_quality.py"


def _bench_quality():
    spec = importlib.util.spec_from_file_location("bench_quality", BENCH)
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("bench_quality", module)  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


class _RecordingGenerator:
    """A numpy Generator that keeps every array of uniform draws ``random`` returns."""

    def __init__(self, seed):
        self._rng, self.uniform_draws = np.random.Generator(np.random.PCG64(seed)), []

    def random(self, *args, **kwargs):
        draws = self._rng.random(*args, **kwargs)
        self.uniform_draws.append(draws)
        return draws

    def __getattr__(self, name):
        return getattr(self._rng, name)


@pytest.mark.timeout(900)
def test_bench_quality_true_probabilities_reproduce_every_synth_label():
    pytest.importorskip("pandas")
    rng = _RecordingGenerator(seed=3)
    table = synth._chunk(rng, 0, 20_000, nasty=False)
    frame = table.to_pandas()
    probability = _bench_quality().synth_true_probability(frame)
    cleared = frame["cleared"].to_numpy()
    # The label is drawn as uniform < P(cleared): one of the generator's uniform draws must give every label back.
    assert any(np.array_equal((draws < probability).astype(cleared.dtype), cleared)
               for draws in rng.uniform_draws if draws.shape == cleared.shape)
