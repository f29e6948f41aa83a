"""Progress inside an epoch: one rewritten line on a terminal, few lines in a log."""

import io
import re
import sys
import time
import types

import pytest
from helpers import ID_COLUMNS
from splits import model_ready_split

from questlearn.cli import main
from questlearn.data.dataset import QuestSequence
from questlearn.synth import write_quest_log
from questlearn.train._progress import TrainingProgress, rows_in_batches
from questlearn.train.model import build_model


@pytest.fixture(scope="module")
def small_split(tmp_path_factory):
    root = tmp_path_factory.mktemp("progress")
    log = write_quest_log(root / "quests.csv", rows=4000, seed=8)
    model_ready_split(log, root / "split", rows_per_shard=500, seed=0, id_columns=ID_COLUMNS, progress=False)
    return root / "split"


class FakeTerminal(io.StringIO):
    def isatty(self):
        return True


def fit_with_progress(split_dir, stream, epochs=2, batch_size=8, **options):
    data = QuestSequence(split_dir, "train", batch_size=batch_size, seed=1)
    model = build_model(*data.feature_moments(), data.num_classes, code_counts=data.code_counts())
    progress = TrainingProgress(data, stream=stream, **options)
    started = time.monotonic()
    model.fit(data, epochs=epochs, verbose=0, shuffle=False, callbacks=[progress])
    return data, progress, time.monotonic() - started


@pytest.mark.timeout(900)
def test_progress_to_a_file_prints_a_bounded_number_of_lines_per_epoch(small_split):
    stream = io.StringIO()
    interval = 0.25
    data, progress, seconds = fit_with_progress(small_split, stream, interval=interval)
    lines = stream.getvalue().splitlines()
    assert "\r" not in stream.getvalue()
    batches = len(data) * 2
    # at most one line per interval plus the epoch summary, never one per batch
    assert len(lines) <= 2 * 1 + seconds / interval, (len(lines), seconds)
    assert len(lines) < batches / 4
    assert len(lines) > 2  # progress lines inside the epochs, not only the summaries
    total = data.plan.total_rows
    summaries = [line for line in lines if f"{total:,} rows in" in line]
    assert [s.split()[1] for s in summaries] == ["1/2", "2/2"]
    assert all("loss" in s and "rows/s" in s for s in summaries)
    for line in lines:
        if line not in summaries:
            assert f"/{total:,} rows (" in line and "rows/s" in line and "left" in line


@pytest.mark.timeout(900)
def test_progress_on_a_terminal_rewrites_one_line(small_split):
    stream = FakeTerminal()
    _, progress, _ = fit_with_progress(small_split, stream, epochs=1, batch_size=4)
    text = stream.getvalue()
    assert text.count("\n") == 1 and text.endswith("\n")  # one finished line per epoch
    assert text.count("\r") >= 2  # rewritten in place while the epoch ran
    assert progress.dynamic and progress.lines == 1


class NotebookOutput(io.StringIO):
    """A Jupyter kernel's stdout as a saved notebook sees it: every write an output of its own."""

    writes = 0

    def write(self, text):
        self.writes += 1
        return super().write(text)


@pytest.mark.timeout(900)
def test_progress_in_a_notebook_leaves_few_outputs_and_one_line_per_epoch(small_split, monkeypatch):
    monkeypatch.setitem(sys.modules, "ipykernel", types.ModuleType("ipykernel"))
    output = NotebookOutput()
    monkeypatch.setattr(sys, "stdout", output)
    interval = 1.0
    _, progress, seconds = fit_with_progress(small_split, None, epochs=2, batch_size=4, interval=interval)
    monkeypatch.undo()
    assert progress.dynamic
    # a rewrite every interval seconds and the epoch's summary, not one every TERMINAL_REFRESH_SECONDS
    assert output.writes <= 2 * (1 + seconds / interval), (output.writes, seconds)
    coalesced = re.sub(r".*\r(?=[^\n])", "", output.getvalue())  # what nbconvert --coalesce-streams keeps
    assert [line.split()[1] for line in coalesced.splitlines()] == ["1/2", "2/2"], coalesced


def test_rows_in_batches_counts_the_short_last_batch(small_split):
    data = QuestSequence(small_split, "train", batch_size=1000)
    plan = data.plan
    assert rows_in_batches(plan, range(len(plan))) == plan.total_rows
    assert rows_in_batches(plan, [len(plan) - 1]) == plan.total_rows - 1000 * (len(plan) - 1)
    whole_shards = QuestSequence(small_split, "train", batch_size=None).plan
    assert rows_in_batches(whole_shards, range(len(whole_shards))) == whole_shards.total_rows
    with pytest.raises(ValueError, match="interval"):
        TrainingProgress(data, interval=0)


@pytest.mark.timeout(900)
def test_cli_progress_piped_to_a_file_stays_short(small_split, tmp_path, capsys, monkeypatch):
    monkeypatch.delitem(sys.modules, "ipykernel", raising=False)  # pytest's notebook plugin loads it; a shell has none
    started = time.monotonic()
    code = main(["train", str(small_split), "--model-dir", str(tmp_path / "model"), "--epochs", "3", "--batch-size", "16",
                 "--workers", "1"])  # stdout is captured, not a terminal, as when piped to a file
    seconds = time.monotonic() - started
    result = capsys.readouterr()
    assert code == 0, result.err[-3000:]
    epoch_lines = [line for line in result.out.splitlines() if line.startswith("epoch ")]
    assert "\r" not in result.out
    assert sum(" rows in " in line for line in epoch_lines) == 3  # one summary per epoch
    assert len(epoch_lines) <= 3 + seconds / 10  # LOG_INTERVAL_SECONDS between progress lines
