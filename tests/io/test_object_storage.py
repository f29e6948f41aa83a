"""Sources in an object store: a real S3 protocol server (moto) on 127.0.0.1, read through questlearn.io.storage.

Every test gets a new bucket on the session's server and the environment of
the ``s3`` fixture (fake credentials, ``AWS_ENDPOINT_URL_S3``); faults come
from endpoints that answer every request with one S3 error, or from a port
nothing listens on.
"""

import gzip
import json

import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import pytest
from helpers import run_child
from s3server import SECRET_ACCESS_KEY, CountingProxy, FaultyEndpoint, free_port, s3_filesystem, upload

from questlearn.cli import main
from questlearn.io.readers import reader_for
from questlearn.io.sources import resolve_sources
from questlearn.schema._sampling import sample_csv
from questlearn.split import split_csv
from questlearn.split._journal import JOURNAL_NAME
from questlearn.synth import write_quest_log

OPTIONS = dict(rows_per_shard=400, val_fraction=0.25, seed=3, id_columns=("attempt_id",), block_size=8192,
               verbose=False)
ARGS = ["--rows-per-shard", "400", "--seed", "3", "--id-column", "attempt_id", "--block-size", "8192", "--no-progress"]


def gzip_parts(folder, rows=(700, 500, 600)):
    """Gzip part files and Spark's _SUCCESS in ``folder``."""
    folder.mkdir(parents=True)
    for index, count in enumerate(rows):
        plain = write_quest_log(folder / f"part-{index:05d}.csv", rows=count, seed=40 + index, nasty=True)
        (folder / f"part-{index:05d}.csv.gz").write_bytes(gzip.compress(plain.read_bytes()))
        plain.unlink()
    (folder / "_SUCCESS").write_bytes(b"")
    return folder


def put_folder(s3, folder, prefix):
    """Every file of ``folder`` as an object under ``prefix``."""
    for path in sorted(folder.iterdir()):
        upload(s3.fs, path, f"{s3.bucket}/{prefix}/{path.name}")


def files_of(root):
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*.npy"))}


def assert_same_split(remote_out, local_out):
    """Every .npy file byte-identical; the manifests equal but for where the source is."""
    assert files_of(remote_out) == files_of(local_out)
    assert files_of(local_out)
    remote, local = (json.loads((out / "manifest.json").read_text()) for out in (remote_out, local_out))
    assert remote["subsets"] == local["subsets"]
    assert remote["schema"] == local["schema"] and remote["stats"] == local["stats"]
    for key in ("rows", "bytes", "format", "header"):
        assert remote["source"][key] == local["source"][key]
    assert remote["source"]["files"] == local["source"]["files"]  # names, sizes, SHA-256, rows


def run_cli(capsys, *argv):
    """``questlearn ARGV`` in this process: (exit status, stdout, stderr)."""
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_a_gzip_part_prefix_in_s3_splits_byte_identical_to_the_same_files_on_disk(s3, tmp_path):
    parts = gzip_parts(tmp_path / "parts")
    put_folder(s3, parts, "logs/2026")
    local = split_csv(parts, tmp_path / "local", **OPTIONS)
    remote = split_csv(s3.url("logs/2026/"), tmp_path / "remote", **OPTIONS)
    assert_same_split(tmp_path / "remote", tmp_path / "local")
    assert [f["name"] for f in remote["source"]["files"]] == [f["name"] for f in local["source"]["files"]] == [
        "part-00000.csv.gz", "part-00001.csv.gz", "part-00002.csv.gz"]
    assert remote["source"]["rows"] == 1800


def test_inspect_reads_an_s3_source_with_storage_options_and_names_its_objects(s3, tmp_path, capsys, monkeypatch):
    log = write_quest_log(tmp_path / "quests.csv", rows=800, seed=2)
    upload(s3.fs, log, f"{s3.bucket}/one/quests.csv")
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3")  # the endpoint comes from --storage-option alone
    code, out, err = run_cli(capsys, "inspect", s3.url("one/quests.csv"), "--label", "cleared",
                             "--storage-option", f"endpoint_override={s3.endpoint.split('://')[1]}",
                             "--storage-option", "scheme=http")
    assert code == 0, err
    assert "1 CSV file(s)" in out and "quests.csv" in out and "attempt_id" in out


def test_an_s3_parquet_source_splits_like_the_local_file_reading_ranges(s3, tmp_path):
    log = write_quest_log(tmp_path / "quests.csv", rows=3000, seed=4)
    table = pa_csv.read_csv(log)
    pq.write_table(table, tmp_path / "quests.parquet", row_group_size=250)
    upload(s3.fs, tmp_path / "quests.parquet", f"{s3.bucket}/pq/quests.parquet")
    split_csv(tmp_path / "quests.parquet", tmp_path / "local", **OPTIONS)
    split_csv(s3.url("pq/quests.parquet"), tmp_path / "remote", **OPTIONS)
    assert_same_split(tmp_path / "remote", tmp_path / "local")


def test_a_csv_sample_from_s3_is_read_as_ranges_not_the_whole_object(s3, s3_server, tmp_path, monkeypatch):
    log = write_quest_log(tmp_path / "quests.csv", rows=30_000, seed=6)
    upload(s3.fs, log, f"{s3.bucket}/big/quests.csv")
    with CountingProxy(int(s3_server.rsplit(":", 1)[1])) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL_S3", proxy.endpoint)
        reader = reader_for(resolve_sources(s3.url("big/quests.csv")))
        table, note, _, _ = sample_csv(reader, null_values=(), pieces=4, piece_bytes=16_384, first_bytes=65_536)
    assert "4 pieces spread over the file" in note and table.num_rows > 100
    assert proxy.bytes_back < log.stat().st_size / 2  # ranges of it, not all of it


def test_a_glob_over_s3_objects_reads_the_matching_ones_in_name_order(s3, tmp_path):
    parts = gzip_parts(tmp_path / "parts")
    put_folder(s3, parts, "logs/2026/01")
    put_folder(s3, parts, "logs/2026/02")
    files = resolve_sources(s3.url("logs/2026/*/part-0000[02].csv.gz"))
    assert [f.name for f in files] == ["01/part-00000.csv.gz", "01/part-00002.csv.gz", "02/part-00000.csv.gz",
                                       "02/part-00002.csv.gz"]
    assert {f.compression for f in files} == {"gzip"} and all(f.etag for f in files)
    with pytest.raises(ValueError, match="matches no data file"):
        resolve_sources(s3.url("logs/2026/*/nothing-*.csv"))
    with pytest.raises(ValueError, match="cannot match bucket names"):
        resolve_sources("s3://b-*/logs/part-00000.csv.gz")


def test_an_unfinished_spark_prefix_in_s3_is_refused_like_a_folder(s3, tmp_path):
    parts = gzip_parts(tmp_path / "parts")
    (parts / "_SUCCESS").unlink()
    put_folder(s3, parts, "unfinished")
    with pytest.raises(ValueError, match="no _SUCCESS marker"):
        resolve_sources(s3.url("unfinished"))


def test_predict_scores_an_s3_source_like_the_local_file(s3, tmp_path, capsys):
    from trained import train_small_model

    log, _, _ = train_small_model(tmp_path, rows=600, epochs=1)
    upload(s3.fs, log, f"{s3.bucket}/score/quests.csv")
    code, _, err = run_cli(capsys, "predict", tmp_path / "model", s3.url("score/quests.csv"), tmp_path / "remote.csv",
                           "--no-progress")
    assert code == 0, err
    assert run_cli(capsys, "predict", tmp_path / "model", log, tmp_path / "local.csv", "--no-progress")[0] == 0
    assert (tmp_path / "remote.csv").read_bytes() == (tmp_path / "local.csv").read_bytes()


@pytest.mark.timeout(1200)
def test_a_killed_split_refuses_to_resume_over_a_replaced_object(s3, tmp_path, capsys):
    log = write_quest_log(tmp_path / "quests.csv", rows=4000, seed=8)
    upload(s3.fs, log, f"{s3.bucket}/r/quests.csv")
    out = tmp_path / "out"
    killed = run_child("split_kill_child.py", "journal", 2, tmp_path / "counts.json", "--", s3.url("r/quests.csv"),
                       out, *ARGS, "--label", "cleared")
    assert killed.returncode == -9, killed.stderr[-2000:]
    assert (out / JOURNAL_NAME).exists()
    assert SECRET_ACCESS_KEY.encode() not in (out / JOURNAL_NAME).read_bytes()
    assert json.loads((out / JOURNAL_NAME).read_text())["source"]["files"][0]["etag"]  # the object's identity
    changed = bytearray(log.read_bytes())
    changed[-3] = ord("0") if changed[-3] != ord("0") else ord("1")  # same size, another object
    with s3.fs.open_output_stream(f"{s3.bucket}/r/quests.csv", compression=None) as target:
        target.write(bytes(changed))
    code, _, err = run_cli(capsys, "split", s3.url("r/quests.csv"), out, *ARGS, "--label", "cleared")
    assert code == 2
    assert "changed since" in err or "another source" in err
    assert len(err.strip().splitlines()) == 1


def test_a_missing_bucket_and_a_missing_prefix_are_one_line_errors_naming_them(s3, tmp_path, capsys):
    code, _, err = run_cli(capsys, "inspect", "s3://no-such-bucket-here/logs/")
    assert code == 2 and "no-such-bucket-here" in err and "does not exist" in err
    code, _, err2 = run_cli(capsys, "split", s3.url("not/there/"), tmp_path / "out", "--no-progress")
    assert code == 2 and f"s3://{s3.bucket}/not/there does not exist" in err2
    assert "Traceback" not in err + err2 and len(err.strip().splitlines()) == len(err2.strip().splitlines()) == 1


def test_an_unreachable_endpoint_is_named_in_one_line(s3, capsys, monkeypatch):
    endpoint = f"127.0.0.1:{free_port()}"  # nothing listens there
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", f"http://{endpoint}")
    code, _, err = run_cli(capsys, "inspect", s3.url("x.csv"), "--storage-option", "connect_timeout=1")
    assert code == 2 and f"cannot reach the object store at {endpoint}" in err
    assert len(err.strip().splitlines()) == 1


def test_refused_credentials_name_the_bucket_and_where_they_came_from_never_their_value(s3, capsys, monkeypatch):
    with FaultyEndpoint(403, "InvalidAccessKeyId") as endpoint:
        monkeypatch.setenv("AWS_ENDPOINT_URL_S3", endpoint.endpoint)
        code, _, err = run_cli(capsys, "inspect", "s3://guarded/logs/a.csv")
        code2, _, err2 = run_cli(capsys, "inspect", "s3://guarded/logs/a.csv",
                                 "--storage-option", "access_key=AKIAOTHER", "--storage-option",
                                 f"secret_key={SECRET_ACCESS_KEY}-option")
    assert code == code2 == 2
    assert "refused access to the bucket 'guarded'" in err and "the environment (AWS_ACCESS_KEY_ID" in err
    assert "the storage options access_key, secret_key" in err2
    assert SECRET_ACCESS_KEY not in err + err2 and "AKIAOTHER" not in err2
    assert len(err.strip().splitlines()) == 1


def test_throttling_is_retried_with_backoff_then_reported_in_one_line(s3, capsys, monkeypatch):
    with FaultyEndpoint(503, "SlowDown") as endpoint:
        monkeypatch.setenv("AWS_ENDPOINT_URL_S3", endpoint.endpoint)
        code, _, err = run_cli(capsys, "inspect", "s3://busy/logs/a.csv")
    assert code == 2 and "throttling or failing" in err and "s3://busy/logs/a.csv" in err
    assert endpoint.requests >= 5  # every attempt of the retry strategy
    assert len(err.strip().splitlines()) == 1


def test_no_credential_value_reaches_an_output_or_a_written_file(s3, tmp_path, capsys, monkeypatch):
    parts = gzip_parts(tmp_path / "parts", rows=(300, 300))
    put_folder(s3, parts, "secret")
    secret_option = "sEcReT-oPtIoN-9876543210"
    options = ["--storage-option", f"secret_key={SECRET_ACCESS_KEY}", "--storage-option",
               "access_key=testing-access-key-id", "--storage-option", f"session_token={secret_option}"]
    outputs = []
    for argv in (["inspect", s3.url("secret/"), *options],
                 ["split", s3.url("secret/"), tmp_path / "out", *ARGS, *options],
                 ["split", s3.url("secret/missing.csv"), tmp_path / "bad", *ARGS, *options]):
        outputs.append(run_cli(capsys, *argv))
    assert outputs[0][0] == 0 and outputs[1][0] == 0 and outputs[2][0] == 2
    written = b"".join(p.read_bytes() for p in (tmp_path / "out").rglob("*") if p.is_file())
    for secret in (SECRET_ACCESS_KEY, secret_option):
        assert all(secret not in out + err for _, out, err in outputs)
        assert secret.encode() not in written


def test_a_storage_option_without_a_value_is_refused_in_one_line(capsys):
    code, _, err = run_cli(capsys, "inspect", "s3://bucket/x.csv", "--storage-option", "region")
    assert code == 2 and "--storage-option takes KEY=VALUE" in err


def test_a_zip_in_s3_is_read_by_ranges_like_the_local_zip(s3, tmp_path):
    import zipfile

    log = write_quest_log(tmp_path / "quests.csv", rows=1200, seed=12, nasty=True)
    with zipfile.ZipFile(tmp_path / "quests.zip", "w", zipfile.ZIP_DEFLATED) as archive:
        archive.write(log, "quests.csv")
    upload(s3.fs, tmp_path / "quests.zip", f"{s3.bucket}/zip/quests.zip")
    split_csv(tmp_path / "quests.zip", tmp_path / "local", **OPTIONS)
    split_csv(s3.url("zip/quests.zip"), tmp_path / "remote", **OPTIONS)
    assert_same_split(tmp_path / "remote", tmp_path / "local")


def test_a_malformed_object_is_named_by_its_url_line_and_byte(s3, tmp_path, capsys):
    log = write_quest_log(tmp_path / "quests.csv", rows=300, seed=13)
    lines = log.read_bytes().split(b"\n")
    lines[120] = lines[120] + b',"unterminated'
    (tmp_path / "bad.csv").write_bytes(b"\n".join(lines))
    upload(s3.fs, tmp_path / "bad.csv", f"{s3.bucket}/bad/bad.csv")
    code, _, err = run_cli(capsys, "split", s3.url("bad/bad.csv"), tmp_path / "out", *ARGS, "--label", "cleared")
    local_code, _, local_err = run_cli(capsys, "split", tmp_path / "bad.csv", tmp_path / "out2", *ARGS,
                                       "--label", "cleared")
    assert code == local_code == 2
    assert err.startswith(f"questlearn split: error: s3://{s3.bucket}/bad/bad.csv: line ")
    assert err.split("bad.csv", 1)[1] == local_err.split("bad.csv", 1)[1]  # the same line, byte and problem


def test_a_scheme_whose_fsspec_package_is_missing_names_the_package():
    pytest.importorskip("fsspec")
    if __import__("importlib").util.find_spec("paramiko") is not None:
        pytest.skip("paramiko is installed here")
    with pytest.raises(ValueError, match="paramiko") as caught:
        resolve_sources("sftp://host.invalid/logs/quests.csv")
    assert "\n" not in str(caught.value)


@pytest.mark.timeout(1200)
def test_a_parallel_split_of_an_s3_prefix_passes_the_storage_options_to_its_part_tasks(s3, tmp_path, monkeypatch):
    parts = gzip_parts(tmp_path / "parts", rows=(400, 300))
    put_folder(s3, parts, "par")
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3")  # the part processes learn the endpoint from the options alone
    options = {"endpoint_override": s3.endpoint.split("://")[1], "scheme": "http"}
    remote = split_csv(s3.url("par/"), tmp_path / "remote", parallel=1, storage_options=options, **OPTIONS)
    local = split_csv(parts, tmp_path / "local", parallel=1, **OPTIONS)
    assert_same_split(tmp_path / "remote", tmp_path / "local")
    assert remote["parallel"]["parts"] == local["parallel"]["parts"]


def test_a_stream_fetches_each_byte_once_with_a_bounded_read_ahead(s3, s3_server, tmp_path, monkeypatch):
    from questlearn.io import _read_ahead, storage

    data = bytes(range(256)) * (24 * 1024)  # 6 MiB
    (tmp_path / "blob.bin").write_bytes(data)
    upload(s3.fs, tmp_path / "blob.bin", f"{s3.bucket}/blob.bin")
    with CountingProxy(int(s3_server.rsplit(":", 1)[1])) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL_S3", proxy.endpoint)
        store, url = storage.locate(s3.url("blob.bin"))
        stream = store.open_stream(url, 0, url)
        header = bytearray(_read_ahead.FIRST_BLOCK)
        assert stream.readinto(header) == _read_ahead.FIRST_BLOCK and not stream.pending  # a header read: one block
        got, most_pending, buffer = [bytes(header)], 0, bytearray(1 << 20)
        while count := stream.readinto(buffer):
            got.append(bytes(buffer[:count]))
            most_pending = max(most_pending, len(stream.pending))
        stream.close()
    assert b"".join(got) == data
    assert 1 <= most_pending <= _read_ahead.BLOCKS_AHEAD
    assert len(data) <= proxy.bytes_back < len(data) * 1.05  # each byte once, plus the requests' headers
