"""An S3 outage during a checkpoint upload (real connection errors: the endpoint does not answer,
then SeaweedFS again): the upload is retried with backoff, and `_COMPLETE` is written only once
every file is there, so a checkpoint cut short is never resumed from."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from act_trainer import store
from act_trainer.stages import training as T
from act_trainer.store import s3 as S3

pytestmark = pytest.mark.integration


def checkpoint(tmp_path: Path, step: int) -> Path:
    d = tmp_path / "out" / f"checkpoint-{step}"
    d.mkdir(parents=True)
    (d / "model.safetensors").write_bytes(b"w" * 1000)
    (d / "optimizer.pt").write_bytes(b"o" * 1000)
    (d / "trainer_state.json").write_text(f'{{"global_step": {step}}}')
    return d


def save(cb: T.SyncCheckpoints, tmp_path: Path, step: int) -> None:
    args = SimpleNamespace(output_dir=str(tmp_path / "out"))
    cb.on_save(args, SimpleNamespace(global_step=step, is_world_process_zero=True), None)


def end(cb: T.SyncCheckpoints, step: int) -> None:
    cb.on_train_end(None, SimpleNamespace(global_step=step, is_world_process_zero=True), None)


@pytest.fixture
def outage(s3, monkeypatch):
    """`down(n)`: the next n checkpoint uploads meet an S3 endpoint that does not answer."""
    from services import free_ports

    dead = f"http://127.0.0.1:{free_ports(1)[0]}"
    monkeypatch.setattr(S3, "MAX_ATTEMPTS", 2)  # botocore's own retries, kept short here
    monkeypatch.setattr(T, "UPLOAD_BACKOFF_S", 0.2)
    real_upload, left = store.upload, {"n": 0, "calls": 0}

    def upload(local, uri):
        left["calls"] += 1
        if left["n"] > 0:
            left["n"] -= 1
            store.configure(endpoint=dead)
            try:
                return real_upload(local, uri)
            finally:
                store.configure(endpoint=s3.endpoint)
        return real_upload(local, uri)

    monkeypatch.setattr(store, "upload", upload)
    store.configure(endpoint=s3.endpoint)
    yield lambda n: left.update(n=n) or left
    store.configure()


def test_an_outage_during_a_checkpoint_upload_is_retried_then_marked_complete(s3_root, outage, tmp_path):
    uri = f"{s3_root}/checkpoints/judge"
    calls = outage(2)  # S3 is down for the first two tries
    cb = T.SyncCheckpoints(uri)
    checkpoint(tmp_path, 2)
    save(cb, tmp_path, 2)
    end(cb, 2)
    assert calls["calls"] == 3
    assert T.newest_checkpoint(uri) == f"{uri}/checkpoint-2"
    names = {u.rsplit("/", 1)[1] for u in store.list_uris(f"{uri}/checkpoint-2")}
    assert names == {"model.safetensors", "optimizer.pt", "trainer_state.json", T.COMPLETE}


def test_an_outage_longer_than_the_retries_fails_and_never_marks_the_checkpoint_complete(s3_root, outage, tmp_path):
    uri = f"{s3_root}/checkpoints/policy"
    cb = T.SyncCheckpoints(uri)
    checkpoint(tmp_path, 2)
    save(cb, tmp_path, 2)
    checkpoint(tmp_path, 4)
    # part of checkpoint-4 made it before the outage; then S3 stays down through every retry
    store.write_bytes(f"{uri}/checkpoint-4/model.safetensors", b"w" * 1000)
    outage(T.UPLOAD_ATTEMPTS)
    save(cb, tmp_path, 4)  # marks checkpoint-2 complete, starts checkpoint-4's upload
    with pytest.raises(RuntimeError, match="checkpoint upload .* failed.*unreachable"):
        end(cb, 4)
    assert not store.exists(f"{uri}/checkpoint-4/{T.COMPLETE}")
    assert T.newest_checkpoint(uri) == f"{uri}/checkpoint-2"  # a retry resumes from the complete one
