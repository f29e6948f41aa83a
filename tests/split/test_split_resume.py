"""A split SIGKILLed at any step resumes to a tree byte-identical to a clean run's.

The child (``split_kill_child.py``) kills itself at the N-th time it reaches a
step: a shard write, a shard closing, a ``.npy`` header rewrite, a journal
write or its sync, a rename (the journal's, the final shard names', the
manifest's). Kill points are spread over the whole run, from the first write
to the last rename, and some runs are killed twice.
"""

import json

import pytest
from helpers import check, run_child, run_questlearn

from questlearn.split._sequential import JOURNAL_NAME
from questlearn.synth import write_quest_log

ARGS = ["--rows-per-shard", "400", "--max-open-shards", "3", "--block-size", "8192", "--seed", "3",
        "--id-column", "attempt_id", "--no-progress"]


def tree(root):
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def split_killed_at(point, nth, counts, source, out, formats, extra=()):
    """Split ``source`` into ``out`` in a child that SIGKILLs itself the ``nth`` time it reaches ``point``
    (``"-"``: never), writing how often it reached each point to ``counts``."""
    return run_child("split_kill_child.py", point, nth, counts, "--", *source, out, *ARGS, "--formats", formats, *extra)


def assert_resumes_to(expected, source, out, formats, where, extra=()):
    """Run the killed split in ``out`` again to its end; it must equal the clean split ``expected`` byte for byte."""
    resumed = run_questlearn("split", *source, out, *ARGS, "--formats", formats, *extra)
    assert resumed.returncode == 0, (*where, resumed.stderr[-2000:])
    got = tree(out)
    assert sorted(got) == sorted(expected), (*where, sorted(set(got) ^ set(expected))[:6])
    for name in expected:
        assert got[name] == expected[name], (*where, name)
    assert not (out / JOURNAL_NAME).exists()


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    """A log with awkward values (quotes, commas, newlines in fields): 4,000 rows, about 0.8 MB, so that a
    split of it checkpoints 20 times and closes 11 shards (gzip and part files: test_sources.py)."""
    return [write_quest_log(tmp_path_factory.mktemp("killsrc") / "log.csv", rows=4000, seed=5, nasty=True)]


def kill_points(counts: dict):
    """(point, N) pairs spread over a run: the first and last times, a middle one for frequent
    steps and for the journal (whose middle is killed again while resuming), and the final renames.
    A second middle kill of the same step leaves the same kind of state as the first, so each step
    has one."""
    chosen = []
    for point, total in counts.items():
        if total == 0:
            continue
        if point in ("append", "after_append", "header", "sync"):
            picks = {max(1, total // 2)}
        elif point in ("replace", "after_replace"):
            # the manifest, the shards' final names, the finishing journal, the last checkpoint
            picks = {max(1, total - k) for k in (0, 1, 20, counts["close"] * 4, counts["close"] * 4 + 1)}
        elif point == "journal":
            picks = {1, max(1, total // 2), total}
        else:
            picks = {1, total}
        chosen += [(point, n) for n in sorted(picks)]
    return chosen


@pytest.mark.timeout(2700)
def test_a_split_killed_at_any_step_resumes_byte_identical(source, tmp_path):
    files, formats = source, "csv,npy"
    clean = tmp_path / "clean"
    check(run_questlearn("split", *files, clean, *ARGS, "--formats", formats, module="questlearn.cli"))
    expected = tree(clean)
    assert any(name.endswith(".numbers.npy") for name in expected) and any(name.endswith(".codes.npy") for name in expected)
    counted = tmp_path / "counted"
    result = split_killed_at("append", 0, tmp_path / "counts.json", files, counted, formats)
    assert result.returncode == 0, result.stderr
    assert tree(counted) == expected  # frequent checkpoints change nothing
    counts = json.loads((tmp_path / "counts.json").read_text())
    assert counts["journal"] >= 10 and counts["close"] >= 6  # many checkpoints, several waves
    points = kill_points(counts)
    second = {("append", max(1, counts["append"] // 2)): ("append", 50),
              ("replace", counts["replace"] - 20): ("replace", 3),
              ("journal", max(1, counts["journal"] // 2)): ("close", 2)}
    for point, nth in points:
        out = tmp_path / f"{point}-{nth}"
        killed = split_killed_at(point, nth, tmp_path / "unused.json", files, out, formats)
        assert killed.returncode == -9, (point, nth, killed.stderr[-2000:])
        if (point, nth) in second:  # killed again while resuming
            again = split_killed_at(*second[(point, nth)], tmp_path / "unused.json", files, out, formats)
            assert again.returncode in (0, -9), (point, nth, again.stderr[-2000:])
        assert_resumes_to(expected, files, out, formats, (point, nth))


@pytest.mark.timeout(2700)
def test_a_split_dropping_missing_labels_killed_at_any_step_resumes_byte_identical(tmp_path):
    """The count of dropped rows is journaled with the position: a resumed run counts each dropped row once."""
    import pandas as pd

    frame = pd.read_csv(write_quest_log(tmp_path / "full.csv", rows=6000, seed=8), dtype=str, keep_default_na=False)
    frame.loc[frame.index % 11 == 3, "cleared"] = ""
    frame.loc[frame.index % 17 == 5, "cleared"] = "NA"
    source = [tmp_path / "unlabelled.csv"]
    frame.to_csv(source[0], index=False)
    extra = ["--drop-missing-labels"]
    clean = tmp_path / "clean"
    check(run_questlearn("split", *source, clean, *ARGS, "--formats", "csv,npy", *extra, module="questlearn.cli"))
    expected = tree(clean)
    dropped = json.loads(expected["manifest.json"])["source"]["dropped_missing_labels"]
    assert dropped == int(((frame.index % 11 == 3) | (frame.index % 17 == 5)).sum())
    result = split_killed_at("append", 0, tmp_path / "counts.json", source, tmp_path / "counted", "csv,npy", extra)
    assert result.returncode == 0, result.stderr
    counts = json.loads((tmp_path / "counts.json").read_text())
    assert counts["journal"] >= 6  # checkpoints between the kills, each with a count of dropped rows so far
    points = [("journal", 2), ("journal", counts["journal"] // 2), ("append", counts["append"] // 3),
              ("close", 1), ("after_close", counts["close"] - 1), ("replace", counts["replace"] - 1)]
    for point, nth in points:
        out = tmp_path / f"{point}-{nth}"
        killed = split_killed_at(point, nth, tmp_path / "unused.json", source, out, "csv,npy", extra)
        assert killed.returncode == -9, (point, nth, killed.stderr[-2000:])
        if point == "journal" and nth > 2:  # killed again while resuming
            again = split_killed_at("append", 10, tmp_path / "unused.json", source, out, "csv,npy", extra)
            assert again.returncode in (0, -9), (point, nth, again.stderr[-2000:])
        assert_resumes_to(expected, source, out, "csv,npy", (point, nth), extra)


@pytest.mark.timeout(2700)
def test_a_split_reading_invalid_values_as_missing_killed_resumes_with_the_same_counts(tmp_path):
    """The per-column counts of values read as missing are journaled with the statistics: a resumed run counts
    each one once."""
    import pandas as pd

    frame = pd.read_csv(write_quest_log(tmp_path / "full.csv", rows=4000, seed=9), dtype=str, keep_default_na=False)
    frame["started"] = pd.date_range("2023-01-01", periods=len(frame), freq="37min").strftime("%Y-%m-%d %H:%M:%S")
    frame.loc[frame.index % 13 == 4, "power"] = "oops"
    frame.loc[frame.index % 150 == 7, "started"] = "2023-02-30 10:00:00"
    source = [tmp_path / "invalid.csv"]
    frame.to_csv(source[0], index=False)
    extra = ["--invalid", "missing"]
    clean = tmp_path / "clean"
    check(run_questlearn("split", *source, clean, *ARGS, "--formats", "npy", *extra, module="questlearn.cli"))
    expected = tree(clean)
    stats = json.loads(expected["manifest.json"])["stats"]
    assert stats["power"]["invalid"] == int((frame.index % 13 == 4).sum())
    assert stats["started.days"]["invalid"] == int((frame.index % 150 == 7).sum())
    result = split_killed_at("append", 0, tmp_path / "counts.json", source, tmp_path / "counted", "npy", extra)
    assert result.returncode == 0, result.stderr
    counts = json.loads((tmp_path / "counts.json").read_text())
    assert counts["journal"] >= 4  # checkpoints between the kills, each with the counts so far
    for point, nth in [("journal", 2), ("append", counts["append"] // 2)]:
        out = tmp_path / f"{point}-{nth}"
        killed = split_killed_at(point, nth, tmp_path / "unused.json", source, out, "npy", extra)
        assert killed.returncode == -9, (point, nth, killed.stderr[-2000:])
        assert_resumes_to(expected, source, out, "npy", (point, nth), extra)
