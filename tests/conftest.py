"""Shared fixtures: small synthetic quest logs and splits of them."""

import pytest
from splits import ID_SPLIT_OPTIONS, model_ready_split

from questlearn.synth import write_quest_log


@pytest.fixture(scope="session")
def quest_log(tmp_path_factory):
    """3,000 rows with the tricky ``note`` column (quoted commas, quotes, LF, CRLF, UTF-8) and a BOM."""
    return write_quest_log(tmp_path_factory.mktemp("log") / "quests.csv", rows=3000, seed=7, nasty=True)


@pytest.fixture(scope="session")
def plain_log(tmp_path_factory):
    """2,000 plain rows (no note column), for corrupting in bad-input tests."""
    return write_quest_log(tmp_path_factory.mktemp("plain") / "quests.csv", rows=2000, seed=3)


@pytest.fixture(scope="session")
def id_log(tmp_path_factory):
    """2,500 plain rows; ``attempt_id`` is the 0-based source row."""
    return write_quest_log(tmp_path_factory.mktemp("idlog") / "quests.csv", rows=2500, seed=11)




@pytest.fixture(scope="session")
def id_split(id_log, tmp_path_factory):
    """Model-ready split (CSV and npy shards, ``fill="zero"``) where ``attempt_id``
    is a numeric feature, so batches reveal which rows they hold."""
    out = tmp_path_factory.mktemp("idsplit") / "split"
    model_ready_split(id_log, out, fill="zero", **ID_SPLIT_OPTIONS)
    return out


@pytest.fixture(scope="session")
def id_split_mean(id_log, tmp_path_factory):
    """The same split with missing numbers filled with the sample mean."""
    out = tmp_path_factory.mktemp("idsplitmean") / "split"
    model_ready_split(id_log, out, fill="mean", **ID_SPLIT_OPTIONS)
    return out


@pytest.fixture(scope="session")
def s3_server():
    """A real S3 protocol server (moto) on 127.0.0.1 for the session; its endpoint URL."""
    from s3server import S3Server

    server = S3Server().start()
    try:
        yield server.endpoint
    finally:
        server.stop()


@pytest.fixture
def s3(s3_server, monkeypatch, request):
    """A new, empty bucket on the test S3 server, reached through the environment
    (``AWS_ENDPOINT_URL_S3`` and fake credentials, never real ones)."""
    import re
    from types import SimpleNamespace

    from s3server import ACCESS_KEY_ID, SECRET_ACCESS_KEY, s3_filesystem

    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_CONFIG_FILE",
                 "AWS_SHARED_CREDENTIALS_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY_ID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")  # nothing reaches out for an instance's role
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", s3_server)
    bucket = "b-" + re.sub(r"[^a-z0-9-]", "-", request.node.name.lower())[:50].strip("-")
    filesystem = s3_filesystem(s3_server)
    filesystem.create_dir(bucket)
    return SimpleNamespace(endpoint=s3_server, bucket=bucket, fs=filesystem, url=lambda key: f"s3://{bucket}/{key}")
