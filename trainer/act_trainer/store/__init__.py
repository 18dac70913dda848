"""Artifact storage: ``file://`` and ``s3://`` URIs behind one small interface.

Every function takes URIs and picks the backend from the scheme: :mod:`.local` for
``file://`` and plain paths (no scheme), :mod:`.s3` (boto3: endpoint, credentials from the
environment only, retries, multipart) for ``s3://``. URIs are joined as plain strings
(no percent-encoding), the way S3 keys are.

Every failure is a :class:`StoreError` whose message names the URI and the fix.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

from act_trainer.store import local, s3
from act_trainer.store.s3 import configure, configured
from act_trainer.store.uris import PROBE_PREFIX, StoreError, join, split

__all__ = [
    "StoreError",
    "check_writable",
    "configure",
    "configured",
    "delete_prefix",
    "download",
    "exists",
    "join",
    "list_uris",
    "read_bytes",
    "upload",
    "write_bytes",
]


def _backend(uri: str):
    return local if split(uri)[0] == "file" else s3


def read_bytes(uri: str) -> bytes:
    """The whole content of one file or object."""
    return _backend(uri).read_bytes(uri)


def write_bytes(uri: str, data: bytes) -> None:
    """Write one file or object; local writes are atomic (temp file + rename)."""
    _backend(uri).write_bytes(uri, data)


def exists(uri: str) -> bool:
    """Whether a file/object, or a directory/prefix with something under it, exists."""
    return _backend(uri).exists(uri)


def list_uris(uri: str) -> list[str]:
    """Full URIs of the files/objects under ``uri``, recursive, sorted.

    A URI naming one file/object gives ``[uri]``; nothing there gives ``[]``.
    """
    return _backend(uri).list_uris(uri)


def upload(local_path: str | os.PathLike, uri: str) -> list[str]:
    """Copy a local file to ``uri``, or a directory recursively under ``uri``.

    Returns the URIs written, sorted.
    """
    src = Path(local_path)
    if not src.exists():
        raise StoreError(f"cannot upload {src} to {uri}: {src} does not exist")
    if src.is_dir():
        pairs = [(f, join(uri, f.relative_to(src).as_posix())) for f in local.local_files(src)]
    else:
        pairs = [(src, uri)]
    _backend(uri).upload_files(pairs)
    return [d for _, d in pairs]


def delete_prefix(uri: str) -> int:
    """Delete the file/object ``uri`` names, or everything under it as a directory/prefix
    (``.../checkpoint-1`` never touches ``.../checkpoint-10``). Returns how many were deleted;
    nothing there is no error."""
    return _backend(uri).delete_prefix(uri)


def download(uri: str, local_path: str | os.PathLike) -> list[Path]:
    """Copy one file/object to ``local_path``, or everything under a prefix into
    the directory ``local_path``. Returns the local files written, sorted."""
    return _backend(uri).download(uri, Path(local_path))


def check_writable(uri: str) -> None:
    """Fail early, with a clear StoreError, unless ``uri`` can be written.

    Writes a small probe under ``uri`` and deletes it: this exercises the
    endpoint, the credentials, the bucket and the write permission at once.
    """
    _backend(uri).check_writable(uri, join(uri, f"{PROBE_PREFIX}{uuid.uuid4().hex}"))

