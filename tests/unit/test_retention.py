"""Checkpoint retention (keepCheckpoints, deleteCheckpointsAfterSave): the pure selection, and the
deletion on a file:// store (S3: tests/integration/test_store_s3.py; a real judge run:
tests/integration/test_stages.py)."""

from __future__ import annotations

import pytest

from act_trainer import store
from act_trainer.stages.training import (
    COMPLETE,
    apply_retention,
    checkpoints,
    checkpoints_to_delete,
    newest_checkpoint,
)

C, P = True, False  # complete, partial (upload not complete)


@pytest.mark.parametrize("found,keep,protect,deleted", [
    ({}, 2, (), []),
    ({1: C}, 2, (), []),                                  # fewer than keep: nothing goes
    ({1: C, 2: C}, 2, (), []),
    ({1: C, 2: C, 3: C}, 2, (), [1]),
    ({1: C, 2: C, 3: C, 4: C, 5: C}, 2, (), [1, 2, 3]),
    ({1: C, 2: C, 3: C}, 1, (), [1, 2]),
    ({1: C, 2: C, 3: P}, 1, (), [1]),                     # 3 uploading: 2 (its predecessor) stays
    ({1: C, 2: P}, 1, (), []),                            # 2 not complete yet: 1 is all there is
    ({2: C, 3: P, 4: P}, 1, (), []),                      # several in progress: none counts
    ({1: P, 2: C, 3: C}, 2, (), [1]),                     # an abandoned upload older than what is kept
    ({1: C, 2: C, 3: C, 4: C}, 2, (2,), [1]),             # the checkpoint a resume is reading stays
    ({10: C, 9: C, 100: C}, 2, (), [9]),                  # by step number, not by name
    ({1: C, 2: C}, 0, (), []),                            # keep < 1 is not "delete all"
])
def test_which_checkpoints_to_delete(found, keep, protect, deleted):
    assert checkpoints_to_delete(found, keep, frozenset(protect)) == deleted


def _checkpoint(root: str, step: int, complete: bool = True) -> None:
    ckpt = store.join(root, f"checkpoint-{step}")
    store.write_bytes(store.join(ckpt, "model.safetensors"), b"w" * 10)
    store.write_bytes(store.join(ckpt, "global_step/zero.pt"), b"z")
    if complete:
        store.write_bytes(store.join(ckpt, COMPLETE), b"")


def test_retention_on_a_file_store(tmp_path):
    root = f"file://{tmp_path}/checkpoints/judge"
    for step in (1, 2, 10):
        _checkpoint(root, step)
    _checkpoint(root, 11, complete=False)
    assert checkpoints(root) == {1: True, 2: True, 10: True, 11: False}
    assert apply_retention(root, keep=2) == [1]
    assert checkpoints(root) == {2: True, 10: True, 11: False}
    assert newest_checkpoint(root) == store.join(root, "checkpoint-10")
    assert not (tmp_path / "checkpoints/judge/checkpoint-1").exists()
    assert (tmp_path / "checkpoints/judge/checkpoint-10/global_step/zero.pt").exists()  # 1 is no prefix of 10


def test_delete_prefix_on_a_file_store(tmp_path):
    root = f"file://{tmp_path}"
    store.write_bytes(f"{root}/a/checkpoint-1/x", b"1")
    store.write_bytes(f"{root}/a/checkpoint-1/d/y", b"2")
    store.write_bytes(f"{root}/a/checkpoint-10/x", b"3")
    store.write_bytes(f"{root}/a/file", b"4")
    assert store.delete_prefix(f"{root}/a/checkpoint-1") == 2
    assert store.list_uris(f"{root}/a") == [f"{root}/a/checkpoint-10/x", f"{root}/a/file"]
    assert store.delete_prefix(f"{root}/a/file") == 1
    assert store.delete_prefix(f"{root}/a/nothing") == 0
