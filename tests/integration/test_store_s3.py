"""act_trainer.store against a real S3 (SeaweedFS on loopback), and the MLflow server fixture."""

from __future__ import annotations

import hashlib
import os

import boto3
import pytest
from botocore.config import Config

from act_trainer import store
from act_trainer.store import StoreError

pytestmark = pytest.mark.integration

MiB = 1024 * 1024


@pytest.fixture
def raw(s3):
    """A plain boto3 client with the fixture's credentials, to look behind the store."""
    return boto3.client(
        "s3",
        endpoint_url=s3.endpoint,
        region_name=s3.region,
        aws_access_key_id=s3.access_key,
        aws_secret_access_key=s3.secret_key,
        config=Config(s3={"addressing_style": "path"}),
    )


def _key(uri: str) -> str:
    return uri.split("/", 3)[3]


def test_bytes_round_trip(s3_root):
    uri = store.join(s3_root, "pairs", "part-0000.jsonl")
    assert not store.exists(uri)
    store.write_bytes(uri, b'{"state": "s", "expert": "a", "alt": "b"}\n')
    assert store.exists(uri)
    assert store.exists(store.join(s3_root, "pairs"))  # a prefix with objects under it
    assert not store.exists(store.join(s3_root, "pai"))  # not a partial key
    assert store.read_bytes(uri) == b'{"state": "s", "expert": "a", "alt": "b"}\n'
    store.write_bytes(uri, b"")
    assert store.read_bytes(uri) == b""


def test_missing_object(s3_root, tmp_path):
    uri = store.join(s3_root, "nope.json")
    with pytest.raises(StoreError, match="no such object") as err:
        store.read_bytes(uri)
    assert uri in str(err.value)
    with pytest.raises(StoreError, match="nothing there"):
        store.download(uri, tmp_path / "x")
    assert store.list_uris(uri) == []


def test_multipart_upload_and_download(s3_root, tmp_path, monkeypatch, raw):
    monkeypatch.setattr(store.s3, "MULTIPART_THRESHOLD", 5 * MiB)
    monkeypatch.setattr(store.s3, "MULTIPART_CHUNKSIZE", 5 * MiB)
    data = os.urandom(12 * MiB + 123)
    src = tmp_path / "shard.safetensors"
    src.write_bytes(data)
    uri = store.join(s3_root, "checkpoints", "judge", "shard.safetensors")

    store.upload(src, uri)
    head = raw.head_object(Bucket=s3_root.split("/")[2], Key=_key(uri))
    assert head["ContentLength"] == len(data)
    assert head["ETag"].strip('"').endswith("-3"), head["ETag"]  # 3 parts: 5 + 5 + 2 MiB

    out = tmp_path / "dl" / "shard.safetensors"
    store.download(uri, out)
    assert hashlib.sha256(out.read_bytes()).digest() == hashlib.sha256(data).digest()

    # write_bytes takes the same multipart path
    uri2 = store.join(s3_root, "big.bin")
    store.write_bytes(uri2, data)
    assert store.read_bytes(uri2) == data


def test_directory_upload_download_and_list(s3_root, tmp_path):
    src = tmp_path / "model"
    files = {
        "config.json": b"{}",
        "model.safetensors": os.urandom(300_000),
        "tokenizer/vocab.json": b'{"a": 1}',
        "tokenizer/merges.txt": b"",
        "a/b/c/deep.txt": b"deep",
    }
    for rel, data in files.items():
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_bytes(data)

    dest = store.join(s3_root, "models", "policy")
    expected = sorted(store.join(dest, rel) for rel in files)
    assert store.upload(src, dest) == expected
    assert store.list_uris(dest) == expected
    assert store.list_uris(dest + "/") == expected
    assert store.list_uris(store.join(dest, "tokenizer")) == [
        store.join(dest, "tokenizer/merges.txt"),
        store.join(dest, "tokenizer/vocab.json"),
    ]
    # a sibling prefix that shares the name's start is not listed
    store.write_bytes(store.join(s3_root, "models", "policy-old", "x"), b"x")
    assert store.list_uris(dest) == expected
    assert store.list_uris(store.join(dest, "config.json")) == [store.join(dest, "config.json")]

    out = tmp_path / "out"
    local = store.download(dest, out)
    assert sorted(p.relative_to(out).as_posix() for p in local) == sorted(files)
    for rel, data in files.items():
        assert (out / rel).read_bytes() == data


def test_delete_prefix(s3_root, raw):
    base = store.join(s3_root, "ckpt")
    for key in ("checkpoint-1/a", "checkpoint-1/d/b", "checkpoint-10/a", "file"):
        store.write_bytes(store.join(base, key), b"x")
    assert store.delete_prefix(store.join(base, "checkpoint-1")) == 2
    assert store.list_uris(base) == [store.join(base, "checkpoint-10/a"), store.join(base, "file")]  # not 10
    assert store.delete_prefix(store.join(base, "file")) == 1  # one object
    assert store.delete_prefix(store.join(base, "nothing")) == 0
    with pytest.raises(store.StoreError, match="whole bucket"):
        store.delete_prefix(s3_root.split("/", 3)[0] + "//" + s3_root.split("/")[2])


def test_list_paginates(s3_root):
    n = 1010  # more than one page of list_objects_v2 (1000 keys)
    prefix = store.join(s3_root, "many")
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda i: store.write_bytes(store.join(prefix, f"{i:05d}"), b"."), range(n)))
    listed = store.list_uris(prefix)
    assert listed == [store.join(prefix, f"{i:05d}") for i in range(n)]


def test_check_writable_ok(s3_root):
    store.check_writable(s3_root)
    assert store.list_uris(s3_root) == []  # the probe was removed


def test_check_writable_missing_bucket(s3):
    with pytest.raises(StoreError) as err:
        store.check_writable("s3://no-such-bucket-act/prefix")
    msg = str(err.value)
    assert "s3://no-such-bucket-act/prefix" in msg
    assert "bucket 'no-such-bucket-act' does not exist" in msg
    assert "create it" in msg


def test_check_writable_wrong_secret(s3, monkeypatch):
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrong-" + s3.secret_key)
    with pytest.raises(StoreError, match="AWS_SECRET_ACCESS_KEY") as err:
        store.check_writable(f"s3://{s3.bucket}/prefix")
    assert f"s3://{s3.bucket}/prefix" in str(err.value)
    assert s3.secret_key not in str(err.value)


def test_check_writable_unknown_key(s3, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAUNKNOWN")
    with pytest.raises(StoreError, match="AWS_ACCESS_KEY_ID"):
        store.check_writable(f"s3://{s3.bucket}/prefix")


def test_check_writable_unreachable_endpoint(s3, monkeypatch):
    from services import free_ports

    (port,) = free_ports(1)  # nothing listens there
    monkeypatch.setattr(store.s3, "MAX_ATTEMPTS", 2)
    store.configure(endpoint=f"http://127.0.0.1:{port}")
    try:
        with pytest.raises(StoreError, match=rf"127\.0\.0\.1:{port} is unreachable"):
            store.check_writable(f"s3://{s3.bucket}/prefix")
    finally:
        store.configure()


def test_configure_endpoint_explicitly(s3, s3_root, monkeypatch):
    """The stage config's storage.endpoint works without AWS_ENDPOINT_URL."""
    monkeypatch.delenv("AWS_ENDPOINT_URL")
    store.configure(endpoint=s3.endpoint, region="eu-west-1")
    try:
        uri = store.join(s3_root, "configured.txt")
        store.write_bytes(uri, b"ok")
        assert store.read_bytes(uri) == b"ok"
    finally:
        store.configure()


def test_mlflow_server_answers(mlflow_server):
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=mlflow_server)
    exp_id = client.create_experiment("act-fixture-check")
    run = client.create_run(exp_id, tags={"act.stage": "judge"})
    client.log_param(run.info.run_id, "k", "4")
    client.log_metric(run.info.run_id, "judge_accuracy", 0.75, step=1)
    client.set_terminated(run.info.run_id)
    got = client.get_run(run.info.run_id)
    assert got.info.status == "FINISHED"
    assert got.data.params == {"k": "4"}
    assert got.data.metrics == {"judge_accuracy": 0.75}
    assert got.data.tags["act.stage"] == "judge"
    assert [e.name for e in client.search_experiments() if e.name == "act-fixture-check"]
