"""act_trainer.store on file:// URIs and plain local paths."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from act_trainer import store
from act_trainer.store import StoreError


@pytest.fixture(params=["uri", "path"])
def root(request, tmp_path) -> str:
    """The same directory as a file:// URI and as a plain path."""
    base = tmp_path / "root"
    return base.as_uri() if request.param == "uri" else str(base)


def _tree(base: Path) -> dict[str, bytes]:
    return {p.relative_to(base).as_posix(): p.read_bytes() for p in sorted(base.rglob("*")) if p.is_file()}


def test_join():
    assert store.join("s3://b/p", "x", "y.json") == "s3://b/p/x/y.json"
    assert store.join("s3://b/p/", "/x/", "y") == "s3://b/p/x/y"
    assert store.join("s3://b", "k") == "s3://b/k"
    assert store.join("file:///data", "a") == "file:///data/a"
    assert store.join("file:///", "a") == "file:///a"
    assert store.join("/data/", "a", "", "b") == "/data/a/b"
    assert store.join("/", "a") == "/a"
    assert store.join("rel", "a") == "rel/a"
    assert store.join("s3://b/p") == "s3://b/p"


def test_bytes_round_trip_creates_parents(root):
    uri = store.join(root, "a", "b", "blob.bin")
    data = os.urandom(4096) + b"\x00\xff"
    assert not store.exists(uri)
    store.write_bytes(uri, data)
    assert store.exists(uri)
    assert store.read_bytes(uri) == data
    store.write_bytes(uri, b"second")
    assert store.read_bytes(uri) == b"second"


def test_write_is_atomic(tmp_path, monkeypatch):
    target = tmp_path / "out" / "manifest.json"
    store.write_bytes(target.as_uri(), b"old")

    # A failure in the middle of a write leaves the old content and no temp file.
    real_fsync = os.fsync

    def failing_fsync(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", failing_fsync)
    with pytest.raises(StoreError, match="No space left"):
        store.write_bytes(target.as_uri(), b"new content")
    monkeypatch.setattr(os, "fsync", real_fsync)
    assert target.read_bytes() == b"old"
    assert os.listdir(target.parent) == ["manifest.json"]

    # A successful write goes through os.replace of a temp file in the same directory.
    replaced = []
    real_replace = os.replace

    def spy_replace(src, dst):
        replaced.append((Path(src), Path(dst)))
        assert Path(dst).read_bytes() == b"old"  # never visible half-written
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", spy_replace)
    store.write_bytes(target.as_uri(), b"new")
    assert target.read_bytes() == b"new"
    ((src, dst),) = replaced
    assert src.parent == dst.parent == target.parent and src != dst
    assert not src.exists()


def test_upload_download_directory(root, tmp_path):
    src = tmp_path / "src"
    files = {"a.txt": b"a", "sub/b.bin": os.urandom(1000), "sub/deeper/c.json": b"{}", "empty": b""}
    for rel, data in files.items():
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_bytes(data)

    dest = store.join(root, "ckpt")
    written = store.upload(src, dest)
    assert written == sorted(store.join(dest, rel) for rel in files)
    assert store.list_uris(dest) == written
    assert store.exists(dest)

    out = tmp_path / "out"
    local = store.download(dest, out)
    assert sorted(p.relative_to(out).as_posix() for p in local) == sorted(files)
    assert _tree(out) == files


def test_upload_download_single_file(root, tmp_path):
    f = tmp_path / "model.safetensors"
    f.write_bytes(b"weights")
    uri = store.join(root, "models", "policy", "model.safetensors")
    assert store.upload(f, uri) == [uri]
    assert store.list_uris(uri) == [uri]
    got = tmp_path / "dl" / "x" / "model.safetensors"
    assert store.download(uri, got) == [got]
    assert got.read_bytes() == b"weights"


def test_list(root):
    assert store.list_uris(root) == []  # nothing there yet
    for rel in ["b/2.txt", "a.txt", "b/1.txt", "c/d/e.txt"]:
        store.write_bytes(store.join(root, rel), rel.encode())
    assert store.list_uris(root) == [store.join(root, r) for r in ["a.txt", "b/1.txt", "b/2.txt", "c/d/e.txt"]]
    assert store.list_uris(store.join(root, "b")) == [store.join(root, "b/1.txt"), store.join(root, "b/2.txt")]
    assert store.list_uris(store.join(root, "b") + "/") == [store.join(root, "b/1.txt"), store.join(root, "b/2.txt")]
    assert store.list_uris(store.join(root, "missing")) == []


def test_check_writable(root, tmp_path):
    target = store.join(root, "new", "dir")
    store.check_writable(target)  # creates the directory
    assert store.exists(target)
    assert store.list_uris(target) == []  # the probe is gone


def test_check_writable_errors(tmp_path):
    f = tmp_path / "a-file"
    f.write_bytes(b"x")
    with pytest.raises(StoreError, match="is a file, not a directory"):
        store.check_writable(f.as_uri())

    if os.geteuid() != 0:  # root writes anywhere
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o500)
        try:
            with pytest.raises(StoreError, match="permission denied"):
                store.check_writable(str(ro / "x"))
        finally:
            ro.chmod(0o700)


def test_errors_name_the_uri(tmp_path):
    missing = (tmp_path / "nope.bin").as_uri()
    with pytest.raises(StoreError, match="nope.bin") as err:
        store.read_bytes(missing)
    assert "no such file" in str(err.value)
    with pytest.raises(StoreError, match="nothing|no such file"):
        store.download(missing, tmp_path / "out")
    with pytest.raises(StoreError, match="does not exist"):
        store.upload(tmp_path / "absent", (tmp_path / "dest").as_uri())
    with pytest.raises(StoreError, match="unsupported storage URI"):
        store.read_bytes("gs://bucket/key")
    with pytest.raises(StoreError, match="no bucket"):
        store.read_bytes("s3:///key")
    assert isinstance(StoreError("x"), RuntimeError)


def test_s3_without_credentials_is_a_clear_error(monkeypatch, tmp_path):
    """No credentials anywhere: a StoreError that says how to provide them (no network needed)."""
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setattr(store.s3, "MAX_ATTEMPTS", 1)
    monkeypatch.setattr(store.s3, "_settings", {"endpoint": "http://127.0.0.1:9", "region": None})
    with pytest.raises(StoreError, match="no S3 credentials.*AWS_ACCESS_KEY_ID"):
        store.check_writable("s3://bucket/prefix")
