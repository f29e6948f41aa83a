"""A model folder in an object store (``--model-dir s3://...``), on the tests' S3 server (moto on 127.0.0.1).

Training writes in a local staging folder and uploads each backup (state,
then the pointer naming it) and the final files (``history.json`` last); a
run SIGKILLed mid-epoch resumes from the store alone, with the staging
folder gone, as it would on another machine.
"""

import json
import shutil
import signal
import time
from collections import Counter

import pytest
from batch_records import read_batch_records, train_recorded
from helpers import start_child
from resumed import assert_resumed_equals_uninterrupted
from s3server import stored_objects
from splits import ID_SPLIT_OPTIONS, expected_ids, model_ready_split

from questlearn.cli import main
from questlearn.synth import write_quest_log
from questlearn.train._resume import load_backup

TRAIN_ARGS = ["--epochs", "2", "--batch-size", "32", "--workers", "1", "--seed", "4", "--model", "small"]
FINAL = {"best.keras", "history.csv", "history.json", "inference.json", "inference.keras", "model.keras"}


@pytest.fixture(scope="module")
def tiny_split(tmp_path_factory):
    """500 rows (about 400 to train on, 13 batches of 32), ``attempt_id`` a feature."""
    root = tmp_path_factory.mktemp("storedmodel")
    log = write_quest_log(root / "quests.csv", rows=500, seed=8)
    model_ready_split(log, root / "split", fill="zero", **{**ID_SPLIT_OPTIONS, "rows_per_shard": 200})
    return root / "split"


def start_training(tmp_path, record, pause, model_dir, split_dir, extra=()):
    return start_child("resume_child.py", tmp_path / record, pause, "--", split_dir, "--model-dir", model_dir,
                       *TRAIN_ARGS, *extra)


@pytest.mark.timeout(600)
def test_train_uploads_the_model_folder_and_predict_and_evaluate_read_it_back(s3, tiny_split, tmp_path, capsys,
                                                                               monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    url = s3.url("runs/one")
    code = main(["train", str(tiny_split), "--model-dir", url, "--staging-dir", str(tmp_path / "stage"),
                 "--epochs", "1", "--batch-size", "64", "--model", "small", "--verbose", "2"])
    out = capsys.readouterr().out
    assert code in (0, None)
    assert f"written in the local staging folder {tmp_path / 'stage'}" in out
    assert json.loads(out[out.rindex("\n{"):])["model"] == f"{url}/model.keras"
    stored = stored_objects(s3, "runs/one")
    assert FINAL <= set(stored) and not [name for name in stored if name.startswith("backup/")]
    for name in FINAL:  # the store holds what training wrote
        assert stored[name] == (tmp_path / "stage" / name).read_bytes(), name

    log = tiny_split.parent / "quests.csv"
    code = main(["predict", url, str(log), str(tmp_path / "remote.csv"), "--no-progress"])
    captured = capsys.readouterr()
    assert code in (0, None) and "wrote 500 predictions" in captured.out
    assert f"downloaded the model in {url}" in captured.err
    main(["predict", str(tmp_path / "stage"), str(log), str(tmp_path / "local.csv"), "--no-progress"])
    assert (tmp_path / "remote.csv").read_bytes() == (tmp_path / "local.csv").read_bytes()
    capsys.readouterr()
    reports = []
    for model in (url, str(tmp_path / "stage")):
        assert main(["evaluate", model, str(log), "--no-progress"]) in (0, None)
        reports.append(capsys.readouterr().out)
    assert reports[0] == reports[1]


def test_a_serving_command_on_a_prefix_without_a_finished_model_says_so_in_one_line(s3, tmp_path, capsys):
    code = main(["evaluate", s3.url("nothing/here"), str(tmp_path / "x.csv"), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and f"{s3.url('nothing/here')} holds no finished model (no history.json" in err
    assert len(err.strip().splitlines()) == 1


@pytest.mark.timeout(1200)
def test_a_run_killed_mid_epoch_resumes_from_the_store_on_another_machine_using_every_row_once(
        s3, tiny_split, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    uninterrupted = train_recorded(tmp_path / "a.txt", [tiny_split, "--model-dir", tmp_path / "a", *TRAIN_ARGS])
    assert uninterrupted == 0, capsys.readouterr().err[-3000:]
    straight = read_batch_records(tmp_path / "a.txt")
    batches = max(b for e, b, _ in straight) + 1
    assert batches > 10

    url = s3.url("runs/resumed")
    every = ["--save-every-batches", "4"]
    killed = start_training(tmp_path, "b.txt", "1:9", url, tiny_split, [*every, "--staging-dir", tmp_path / "one"])
    deadline = time.monotonic() + 600
    while not (tmp_path / "b.txt.paused").exists():
        assert killed.poll() is None, killed.stderr.read()[-3000:]
        assert time.monotonic() < deadline, "the child never reached epoch 1, batch 9"
        time.sleep(0.1)
    killed.send_signal(signal.SIGKILL)  # in epoch 1, one batch after its save at batch 8
    killed.communicate(timeout=300)
    assert killed.returncode == -signal.SIGKILL

    stored = stored_objects(s3, "runs/resumed")
    assert not FINAL & set(stored) - {"best.keras", "history.csv"}  # nothing final: only the backup
    pointer = json.loads(stored["backup/pointer.json"])
    assert set(pointer["files"]) == {"backup/state.npz", "history.csv", "best.keras"}
    assert sorted(stored) == sorted(["backup/pointer.json", *(e["object"] for e in pointer["files"].values())])
    (tmp_path / "check" / "backup").mkdir(parents=True)
    (tmp_path / "check" / "backup" / "state.npz").write_bytes(stored[pointer["files"]["backup/state.npz"]["object"]])
    state = load_backup(tmp_path / "check" / "backup")
    assert (state.epoch, state.batches_done) == (1, 8)
    before_kill = read_batch_records(tmp_path / "b.txt")
    shutil.rmtree(tmp_path / "one")  # another machine: nothing of the first one's disk
    shutil.rmtree(tmp_path / "xdg", ignore_errors=True)

    (tmp_path / "b.txt").rename(tmp_path / "b-killed.txt")
    capsys.readouterr()
    resumed = train_recorded(tmp_path / "b.txt", [tiny_split, "--model-dir", url, *TRAIN_ARGS, *every, "--staging-dir",
                                                  tmp_path / "two"])  # in this process: a new start
    out, err = capsys.readouterr()
    assert resumed == 0, err[-3000:]
    assert "downloaded the backup" in out and "resuming from" in out and "batch 9" in out

    after = read_batch_records(tmp_path / "b.txt")
    assert [b for e, b, _ in after if e == 1] == list(range(8, batches))  # right after the save
    kept = [i for e, b, ids in before_kill if e == 1 and b < 8 for i in ids]
    used = Counter(kept + [i for e, b, ids in after if e == 1 for i in ids])
    assert sorted(used) == expected_ids(tiny_split, "train").tolist() and max(used.values()) == 1
    lineage = [r for r in before_kill if r[0] == 0 or (r[0] == 1 and r[1] < 8)] + after
    assert lineage == straight

    stored = stored_objects(s3, "runs/resumed")
    assert FINAL <= set(stored) and not [name for name in stored if name.startswith("backup/")]
    (tmp_path / "b").mkdir()
    for name in ("model.keras", "history.csv"):
        (tmp_path / "b" / name).write_bytes(stored[name])
    assert_resumed_equals_uninterrupted(tmp_path / "a", tmp_path / "b", ("loss", "accuracy", "val_loss"), 2)


def test_a_backup_in_the_store_that_does_not_match_its_pointer_is_refused_in_one_line(s3, tmp_path):
    from s3server import upload

    from questlearn.train._model_store import DamagedBackupError, open_model_dir

    (tmp_path / "state.npz").write_bytes(b"not the state the pointer describes")
    upload(s3.fs, tmp_path / "state.npz", f"{s3.bucket}/m/backup/state-000003.npz")
    entry = {"object": "backup/state-000003.npz", "bytes": 35, "sha256": "0" * 64}
    (tmp_path / "pointer.json").write_text(json.dumps({"save": 3, "files": {"backup/state.npz": entry}}))
    upload(s3.fs, tmp_path / "pointer.json", f"{s3.bucket}/m/backup/pointer.json")
    with pytest.raises(DamagedBackupError, match=r"state-000003.npz does not match the size and SHA-256 its pointer .*"
                                                 r"delete s3://.*/m/backup/ to start training over") as raised:
        open_model_dir(s3.url("m"), staging_dir=tmp_path / "stage", verbose=0).prepare()
    assert "\n" not in str(raised.value)
    assert not (tmp_path / "stage" / "backup" / "state.npz").exists()  # nothing unverified left


def test_a_staging_folder_holding_other_files_is_refused_and_a_local_model_folder_takes_none(s3, tmp_path):
    from questlearn.errors import OptionError, OutputFolderError
    from questlearn.train._model_store import open_model_dir

    (tmp_path / "stage").mkdir()
    (tmp_path / "stage" / "notes.txt").write_text("mine")
    with pytest.raises(OutputFolderError, match="holds files that are not questlearn's; name an empty or new folder"):
        open_model_dir(s3.url("m"), staging_dir=tmp_path / "stage", verbose=0).prepare()
    assert (tmp_path / "stage" / "notes.txt").read_text() == "mine"
    with pytest.raises(OptionError, match="--staging-dir is for a --model-dir in an object store"):
        open_model_dir(tmp_path / "model", staging_dir=tmp_path / "stage")


def test_commands_that_cannot_use_a_model_folder_url_say_what_works(s3, tiny_split, tmp_path, capsys):
    code = main(["export", s3.url("m"), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and "writes a local SavedModel: name the folder to create with --output DIR" in err
    code = main(["train", str(tiny_split), "--model-dir", str(tmp_path / "m"), "--staging-dir", str(tmp_path / "s"),
                 "--ray"])  # refused before Ray starts: only a model folder URL is staged, with --ray too
    err = capsys.readouterr().err
    assert code == 2 and "--staging-dir is for a --model-dir in an object store" in err
    assert not (tmp_path / "m").exists() and not (tmp_path / "s").exists()
    assert stored_objects(s3, "m") == {}
