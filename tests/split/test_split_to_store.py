"""A split written to an object store: a real S3 protocol server (moto) on 127.0.0.1.

The shards are staged in a local folder one wave at a time, uploaded and read
back, the journal follows the shards it refers to, and ``manifest.json`` goes
last. The store then holds the same objects, byte for byte, as a local split
of the same source; a split killed on one machine resumes on another with an
empty staging folder; a prefix holding other objects is refused; a store that
goes away stops the split with one line, and the same command resumes it.
Small shards and at most 3 open at once make several waves.
"""

import json
import subprocess
import sys

import pytest
from helpers import run_child, run_env
from s3server import CountingProxy, gzip_part_files, put_files, stored_objects

from questlearn.cli import main
from questlearn.errors import OutputFolderError
from questlearn.split import split_csv

OPTIONS = dict(rows_per_shard=150, max_open_shards=3, val_fraction=0.2, seed=3, id_columns=("attempt_id",),
               block_size=8192, verbose=False)
ARGS = ["--rows-per-shard", "150", "--max-open-shards", "3", "--val-fraction", "0.2", "--seed", "3",
        "--id-column", "attempt_id", "--block-size", "8192", "--no-progress"]


@pytest.fixture(scope="module")
def parts(tmp_path_factory):
    """Three gzip part files, 2,600 rows in all."""
    return gzip_part_files(tmp_path_factory.mktemp("storeparts") / "parts")


@pytest.fixture(scope="module")
def local_split(parts, tmp_path_factory):
    """The same split written to a local folder."""
    out = tmp_path_factory.mktemp("storelocal") / "split"
    split_csv(parts, out, **OPTIONS)
    return out


def assert_same_as_local(objects: dict, local_out):
    """The store holds the local split's manifest and .npy files, byte for byte, and nothing else."""
    local = {str(p.relative_to(local_out)): p.read_bytes() for p in sorted(local_out.rglob("*.npy"))}
    assert len(local) > 8  # several waves of shards
    assert sorted(objects) == sorted([*local, "manifest.json"])
    for name, data in local.items():
        assert objects[name] == data, name
    remote_manifest = json.loads(objects["manifest.json"])
    local_manifest = json.loads((local_out / "manifest.json").read_text())
    assert remote_manifest["subsets"] == local_manifest["subsets"]  # every shard's record: names, rows, SHA-256
    assert remote_manifest["schema"] == local_manifest["schema"]


def test_a_split_from_s3_into_s3_is_byte_identical_to_the_local_split(s3, parts, local_split, tmp_path):
    put_files(s3, parts, "logs")
    staging = tmp_path / "staging"
    manifest = split_csv(s3.url("logs/"), s3.url("splits/one/"), staging_dir=staging, **OPTIONS)
    assert_same_as_local(stored_objects(s3, "splits/one"), local_split)
    assert manifest["subsets"] == json.loads((local_split / "manifest.json").read_text())["subsets"]
    assert not staging.exists()  # the staging folder goes with the split's end
    again = split_csv(s3.url("logs/"), s3.url("splits/one/"), staging_dir=staging, **OPTIONS)  # done: returned as is
    assert again["subsets"] == manifest["subsets"]


@pytest.mark.timeout(360)
@pytest.mark.parametrize("point, nth", [("after_close", 5)])  # a wave just closed, its shards not yet uploaded
def test_a_split_killed_mid_pass_resumes_from_the_store_with_an_empty_staging_folder(s3, parts, local_split,
                                                                                     tmp_path, point, nth):
    out = s3.url(f"splits/killed-{point}/")  # one bucket for both cases: a prefix each
    first = run_child("split_kill_child.py", point, nth, tmp_path / "counts.json", "--", parts, out, *ARGS,
                      "--staging-dir", tmp_path / "machine-a")
    assert first.returncode == -9, first.stderr[-2000:]  # killed mid-pass
    assert ".split-journal.json" in stored_objects(s3, f"splits/killed-{point}")
    assert "manifest.json" not in stored_objects(s3, f"splits/killed-{point}")
    resumed = subprocess.run([sys.executable, "-m", "questlearn.cli", "split", str(parts), out, *ARGS,
                              "--staging-dir", str(tmp_path / "machine-b")],
                             env=run_env(), capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "resuming the interrupted split" in resumed.stdout
    assert_same_as_local(stored_objects(s3, f"splits/killed-{point}"), local_split)


def test_a_prefix_holding_other_objects_or_the_source_is_refused_leaving_nothing(s3, parts, tmp_path):
    s3.fs.create_dir(f"{s3.bucket}/splits/busy")
    with s3.fs.open_output_stream(f"{s3.bucket}/splits/busy/notes.txt") as handle:
        handle.write(b"someone else's object\n")
    staging = tmp_path / "cache" / "staging"
    with pytest.raises(OutputFolderError, match=r"splits/busy is not empty .*notes\.txt"):
        split_csv(parts, s3.url("splits/busy/"), staging_dir=staging, **OPTIONS)
    assert stored_objects(s3, "splits/busy") == {"notes.txt": b"someone else's object\n"}
    assert not (tmp_path / "cache").exists()
    put_files(s3, parts, "logs")
    for out in ("logs/", "logs/split/"):  # the source itself, a prefix inside it
        with pytest.raises(OutputFolderError, match="overlaps the source"):
            split_csv(s3.url("logs/"), s3.url(out), staging_dir=staging, **OPTIONS)
    assert sorted(stored_objects(s3, "logs")) == sorted(p.name for p in parts.iterdir())  # nothing written among them
    assert not (tmp_path / "cache").exists()


@pytest.mark.timeout(360)
def test_a_store_gone_mid_split_stops_it_in_one_line_and_the_same_command_resumes(s3, parts, local_split, tmp_path,
                                                                                   capsys, monkeypatch):
    import questlearn.split._journal as journal

    port = int(s3.endpoint.rsplit(":", 1)[1])
    with CountingProxy(port) as proxy:
        command = ["split", str(parts), s3.url("splits/cut/"), *ARGS, "--staging-dir", str(tmp_path / "staging"),
                   "--storage-option", f"endpoint_override={proxy.endpoint.split('://')[1]}",
                   "--storage-option", "scheme=http", "--storage-option", "connect_timeout=1",
                   "--storage-option", "request_timeout=2"]
        original, calls = journal.WriteJournal.__call__, []

        def cut_at_the_fourth_checkpoint(self):
            calls.append(1)
            if len(calls) == 4:
                proxy.cut()
            return original(self)

        monkeypatch.setattr(journal.WriteJournal, "__call__", cut_at_the_fourth_checkpoint)
        assert main(command) != 0
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1, err
        assert f"s3://{s3.bucket}/splits/cut/" in err and "cannot reach the object store" in err
        assert "manifest.json" not in stored_objects(s3, "splits/cut")
        proxy.restore()
        monkeypatch.setattr(journal.WriteJournal, "__call__", original)
        assert main(command) == 0, capsys.readouterr().err
    assert_same_as_local(stored_objects(s3, "splits/cut"), local_split)

