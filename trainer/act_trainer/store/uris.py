"""URIs and errors every storage backend shares."""

from __future__ import annotations

import os
from pathlib import Path

MiB = 1024 * 1024
PROBE_PREFIX = ".act-write-check-"  # check_writable's probe objects


class StoreError(RuntimeError):
    """A storage operation failed; the message names the URI and the fix."""


def split(uri: str) -> tuple[str, str]:
    """``(scheme, rest)``: ``("file", path)`` or ``("s3", "bucket/key")``."""
    uri = os.fspath(uri)
    if "://" not in uri:
        return "file", uri
    scheme, rest = uri.split("://", 1)
    scheme = scheme.lower()
    if scheme == "file":
        if rest.startswith("localhost/"):
            rest = rest[len("localhost") :]
        return "file", rest
    if scheme == "s3":
        return "s3", rest
    raise StoreError(f"unsupported storage URI {uri!r}: use s3://bucket/prefix, file:///path or a local path")


def local_path(uri: str) -> Path:
    scheme, path = split(uri)
    if scheme != "file":
        raise StoreError(f"{uri!r} is not a local path")
    if not path:
        raise StoreError(f"empty local path in {uri!r}")
    return Path(path)


def bucket_key(uri: str) -> tuple[str, str]:
    bucket, _, key = split(uri)[1].partition("/")
    if not bucket:
        raise StoreError(f"no bucket in {uri!r}: use s3://bucket/prefix")
    return bucket, key


def join(uri: str, *parts: str) -> str:
    """Join path segments onto a URI with ``/``: ``join("s3://b/p", "x", "y.json")``."""
    base = os.fspath(uri)
    while base.endswith("/") and not base[:-1].endswith("://") and base != "/":
        base = base[:-1]
    segments = [str(p).strip("/") for p in parts]
    segments = [s for s in segments if s]
    if not segments:
        return base
    sep = "" if base.endswith("/") else "/"
    return base + sep + "/".join(segments)
