"""Artifact storage: ``file://`` and ``s3://`` URIs behind one small interface.

Every function takes URIs and picks the backend from the scheme. A plain path
(no scheme) is a local path, like ``file://``. URIs are joined as plain strings
(no percent-encoding), the way S3 keys are.

S3 goes through boto3:

* endpoint: ``configure(endpoint=...)`` (the stage config's ``storage.endpoint``),
  else ``AWS_ENDPOINT_URL_S3`` / ``AWS_ENDPOINT_URL``, else AWS itself;
  path-style addressing whenever an endpoint is set (MinIO, Ceph, SeaweedFS);
* credentials: only boto3's own chain (environment, profile, IAM role, IRSA).
  They are never passed through this module and never logged;
* retries: botocore "standard" mode, ``MAX_ATTEMPTS`` attempts;
* multipart: boto3's managed transfers above ``MULTIPART_THRESHOLD``.

Every failure is a :class:`StoreError` whose message names the URI and the fix.
"""

from __future__ import annotations

import builtins
import contextlib
import hashlib
import io
import logging
import os
import shutil
import tempfile
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

__all__ = [
    "StoreError",
    "check_writable",
    "configure",
    "download",
    "exists",
    "join",
    "list",
    "read_bytes",
    "upload",
    "write_bytes",
]

log = logging.getLogger(__name__)

MiB = 1024 * 1024
MULTIPART_THRESHOLD = 64 * MiB  # objects above this go up/down in parts
MULTIPART_CHUNKSIZE = 64 * MiB
MAX_CONCURRENCY = 8  # parts in flight per transfer
MAX_ATTEMPTS = 5  # botocore retries, first attempt included
CONNECT_TIMEOUT_S = 10
READ_TIMEOUT_S = 120

_PROBE_PREFIX = ".act-write-check-"


class StoreError(RuntimeError):
    """A storage operation failed; the message names the URI and the fix."""


# --------------------------------------------------------------------------- URIs


def _split(uri: str) -> tuple[str, str]:
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


def _local(uri: str) -> Path:
    scheme, path = _split(uri)
    if scheme != "file":
        raise StoreError(f"{uri!r} is not a local path")
    if not path:
        raise StoreError(f"empty local path in {uri!r}")
    return Path(path)


def _bucket_key(uri: str) -> tuple[str, str]:
    bucket, _, key = _split(uri)[1].partition("/")
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


# ------------------------------------------------------------------------ S3 client

_settings: dict[str, str | None] = {"endpoint": None, "region": None}
_clients: dict[tuple, object] = {}
_clients_lock = threading.Lock()


def configure(endpoint: str | None = None, region: str | None = None) -> None:
    """Set the S3 endpoint and region (the stage config's ``storage``).

    ``None`` (the default) falls back to the environment: ``AWS_ENDPOINT_URL_S3``
    or ``AWS_ENDPOINT_URL``, and ``AWS_REGION`` / ``AWS_DEFAULT_REGION``.
    Calling ``configure()`` with no arguments restores those defaults.
    """
    _settings["endpoint"] = endpoint or None
    _settings["region"] = region or None


def _endpoint() -> str | None:
    return (
        _settings["endpoint"]
        or os.environ.get("AWS_ENDPOINT_URL_S3")
        or os.environ.get("AWS_ENDPOINT_URL")
        or None
    )


def _region(endpoint: str | None) -> str | None:
    region = (
        _settings["region"] or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or None
    )
    # S3-compatible services ignore the region, but SigV4 needs one.
    return region or ("us-east-1" if endpoint else None)


def _credentials_fingerprint() -> str:
    # A new client when the environment's credentials change (never stored in clear).
    names = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE")
    raw = "\0".join(os.environ.get(n, "") for n in names)
    return hashlib.sha256(raw.encode()).hexdigest()


def _client():
    endpoint = _endpoint()
    region = _region(endpoint)
    key = (os.getpid(), endpoint, region, MAX_ATTEMPTS, _credentials_fingerprint())
    with _clients_lock:
        client = _clients.get(key)
        if client is None:
            import boto3
            from botocore.config import Config

            options = {}
            if endpoint:
                options = {
                    "s3": {"addressing_style": "path"},
                    # S3-compatible services (older MinIO, Ceph) reject the default
                    # CRC32 trailers of recent boto3; send checksums only when required.
                    "request_checksum_calculation": "when_required",
                    "response_checksum_validation": "when_required",
                }
            config = Config(
                signature_version="s3v4",
                retries={"mode": "standard", "max_attempts": MAX_ATTEMPTS},
                connect_timeout=CONNECT_TIMEOUT_S,
                read_timeout=READ_TIMEOUT_S,
                max_pool_connections=max(10, MAX_CONCURRENCY + 2),
                **options,
            )
            try:
                session = boto3.session.Session()
                client = session.client("s3", endpoint_url=endpoint, region_name=region, config=config)
            except Exception as exc:  # e.g. ProfileNotFound, an invalid endpoint URL
                raise StoreError(
                    f"cannot set up an S3 client for endpoint {endpoint or 'AWS S3'}: {exc}; check "
                    "storage.endpoint / AWS_ENDPOINT_URL and the AWS_* environment"
                ) from None
            if endpoint:
                # botocore sends "Expect: 100-continue" on every PUT with a body.
                # Against SeaweedFS (4.48) a PUT whose final answer comes a moment
                # after the "100 Continue" is sometimes misread (urllib3
                # HeaderParsingError) and then waits out the whole read timeout before
                # a retry. S3-compatible services gain nothing from the header, so it
                # is dropped for them; AWS keeps it.
                from botocore.handlers import add_expect_header

                client.meta.events.unregister("before-call.s3", add_expect_header)
            _clients[key] = client
            log.debug("S3 client for endpoint=%s region=%s", endpoint or "AWS", region)
        return client


def _transfer_config():
    from boto3.s3.transfer import TransferConfig

    return TransferConfig(
        multipart_threshold=MULTIPART_THRESHOLD,
        multipart_chunksize=MULTIPART_CHUNKSIZE,
        max_concurrency=MAX_CONCURRENCY,
    )


_CREDENTIAL_FIX = (
    "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE, or an IAM role) "
    "in the environment; in a cluster, the ACTJob's storage credentials Secret"
)


def _error_code(exc: BaseException) -> str:
    response = getattr(exc, "response", None) or {}
    code = str(response.get("Error", {}).get("Code", ""))
    if not code:  # boto3's S3UploadFailedError/S3TransferFailedError only carry text
        text = str(exc)
        for known in (
            "NoSuchBucket", "NoSuchKey", "InvalidAccessKeyId", "SignatureDoesNotMatch",
            "AccessDenied", "InvalidBucketName", "ExpiredToken",
        ):  # fmt: skip
            if known in text:
                return known
        if "(403)" in text or "Forbidden" in text:
            return "403"
        if "(404)" in text or "Not Found" in text:
            return "404"
    return code


@contextlib.contextmanager
def _s3_errors(uri: str, action: str, missing: str = "object") -> Iterator[None]:
    """Translate boto errors into StoreError. ``missing``: what a 404 means."""
    from boto3.exceptions import Boto3Error
    from botocore.exceptions import (
        BotoCoreError,
        ClientError,
        NoCredentialsError,
        PartialCredentialsError,
    )
    from botocore.exceptions import (
        ConnectionError as BotoConnectionError,
    )

    endpoint = _endpoint() or "AWS S3"
    try:
        yield
    except (NoCredentialsError, PartialCredentialsError) as exc:
        raise StoreError(f"cannot {action} {uri}: no S3 credentials found ({exc}); {_CREDENTIAL_FIX}") from None
    except BotoConnectionError as exc:
        raise StoreError(
            f"cannot {action} {uri}: S3 endpoint {endpoint} is unreachable ({exc}); check the storage "
            "endpoint (storage.endpoint or AWS_ENDPOINT_URL) and that the service is up"
        ) from None
    except (ClientError, Boto3Error) as exc:
        text = str(exc)
        if "Could not connect to the endpoint" in text or "Connect timeout" in text:
            raise StoreError(
                f"cannot {action} {uri}: S3 endpoint {endpoint} is unreachable; check the storage "
                "endpoint (storage.endpoint or AWS_ENDPOINT_URL) and that the service is up"
            ) from None
        if "Unable to locate credentials" in text:
            raise StoreError(f"cannot {action} {uri}: no S3 credentials found; {_CREDENTIAL_FIX}") from None
        code = _error_code(exc)
        bucket = _bucket_key(uri)[0]
        if code == "NoSuchBucket" or (code in ("404", "NotFound") and missing == "bucket"):
            msg = f"bucket {bucket!r} does not exist at {endpoint}: create it, or fix the storage root"
        elif code in ("NoSuchKey", "404", "NotFound"):
            msg = "no such object"
        elif code == "InvalidAccessKeyId":
            msg = f"S3 does not know the access key ({code}): check AWS_ACCESS_KEY_ID"
        elif code == "SignatureDoesNotMatch":
            msg = f"S3 rejected the credentials ({code}): check AWS_SECRET_ACCESS_KEY"
        elif code in ("ExpiredToken", "TokenRefreshRequired", "RequestExpired"):
            msg = f"the S3 credentials have expired ({code}): refresh them"
        elif code in ("AccessDenied", "403", "Forbidden", "AllAccessDisabled"):
            msg = (
                f"access denied ({code}): check the credentials, and that they may "
                f"{'write to' if action.startswith(('write', 'upload', 'check write')) else 'read'} "
                f"bucket {bucket!r}"
            )
        elif code == "InvalidBucketName":
            msg = f"invalid bucket name {bucket!r}: S3 bucket names are 3-63 lowercase letters, digits, '-' or '.'"
        else:
            msg = str(exc)
        raise StoreError(f"cannot {action} {uri}: {msg}") from None
    except BotoCoreError as exc:
        raise StoreError(f"cannot {action} {uri}: {exc}") from None


# ----------------------------------------------------------------------- local I/O


@contextlib.contextmanager
def _file_errors(uri: str, action: str) -> Iterator[None]:
    try:
        yield
    except StoreError:
        raise
    except FileNotFoundError as exc:
        raise StoreError(f"cannot {action} {uri}: no such file or directory ({exc.filename})") from None
    except PermissionError as exc:
        raise StoreError(
            f"cannot {action} {uri}: permission denied on {exc.filename}; "
            "make the directory writable by this user, or choose another storage root"
        ) from None
    except OSError as exc:
        raise StoreError(f"cannot {action} {uri}: {exc}") from None


def _atomic_write(path: Path, data: bytes | None = None, source: Path | None = None) -> None:
    """Write ``data`` (or copy ``source``) to ``path`` via a temp file and os.replace."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as out:
            if source is None:
                out.write(data or b"")
            else:
                with open(source, "rb") as src:
                    shutil.copyfileobj(src, out, 4 * MiB)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _local_files(root: Path) -> builtins.list[Path]:
    """Regular files under ``root``, recursively, sorted; skips our own temp files."""
    found = []
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            if name.startswith(".") and name.endswith(".tmp"):
                continue
            found.append(Path(dirpath, name))
    return sorted(found)


# ---------------------------------------------------------------------- interface


def read_bytes(uri: str) -> bytes:
    """The whole content of one file or object."""
    if _split(uri)[0] == "file":
        with _file_errors(uri, "read"):
            return _local(uri).read_bytes()
    bucket, key = _bucket_key(uri)
    with _s3_errors(uri, "read"):
        return _client().get_object(Bucket=bucket, Key=key)["Body"].read()


def write_bytes(uri: str, data: bytes) -> None:
    """Write one file or object; local writes are atomic (temp file + rename)."""
    if _split(uri)[0] == "file":
        with _file_errors(uri, "write"):
            _atomic_write(_local(uri), data=bytes(data))
        return
    bucket, key = _bucket_key(uri)
    if not key or key.endswith("/"):
        raise StoreError(f"cannot write {uri}: the URI names a prefix, not an object")
    with _s3_errors(uri, "write"):
        _client().upload_fileobj(io.BytesIO(data), bucket, key, Config=_transfer_config())


def exists(uri: str) -> bool:
    """Whether a file/object, or a directory/prefix with something under it, exists."""
    if _split(uri)[0] == "file":
        return _local(uri).exists()
    bucket, key = _bucket_key(uri)
    client = _client()
    from botocore.exceptions import ClientError

    with _s3_errors(uri, "check", missing="bucket"):
        if key and not key.endswith("/"):
            try:
                client.head_object(Bucket=bucket, Key=key)
                return True
            except ClientError as exc:
                if _error_code(exc) not in ("404", "NoSuchKey", "NotFound"):
                    raise
        if not key:
            client.head_bucket(Bucket=bucket)
        prefix = key.rstrip("/") + "/" if key else ""
        page = client.list_objects_v2(Bucket=bucket, Prefix=prefix, MaxKeys=1)
        return page.get("KeyCount", 0) > 0 or (not key)


def _s3_keys(uri: str) -> builtins.list[str]:
    """Object keys under the prefix ``uri`` names (as a directory), sorted."""
    bucket, key = _bucket_key(uri)
    prefix = key.rstrip("/") + "/" if key.strip("/") else ""
    keys = []
    with _s3_errors(uri, "list", missing="bucket"):
        paginator = _client().get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
            keys.extend(o["Key"] for o in page.get("Contents", []) if not o["Key"].endswith("/"))
    return sorted(keys)


def list(uri: str) -> builtins.list[str]:  # noqa: A001 - the interface's name
    """Full URIs of the files/objects under ``uri``, recursive, sorted.

    A URI naming one file/object gives ``[uri]``; nothing there gives ``[]``.
    """
    if _split(uri)[0] == "file":
        path = _local(uri)
        if path.is_file():
            return [uri]
        with _file_errors(uri, "list"):
            return [join(uri, p.relative_to(path).as_posix()) for p in _local_files(path)]
    bucket, key = _bucket_key(uri)
    keys = _s3_keys(uri)
    if not keys and key and not key.endswith("/") and exists(uri):
        return [uri]
    prefix = key.rstrip("/") + "/" if key.strip("/") else ""
    return [join(uri, k[len(prefix) :]) for k in keys]


def upload(local_path: str | os.PathLike, uri: str) -> builtins.list[str]:
    """Copy a local file to ``uri``, or a directory recursively under ``uri``.

    Returns the URIs written, sorted.
    """
    src = Path(local_path)
    if not src.exists():
        raise StoreError(f"cannot upload {src} to {uri}: {src} does not exist")
    if src.is_dir():
        pairs = [(f, join(uri, f.relative_to(src).as_posix())) for f in _local_files(src)]
    else:
        pairs = [(src, uri)]
    if _split(uri)[0] == "file":
        for f, dest in pairs:
            with _file_errors(dest, "upload to"):
                _atomic_write(_local(dest), source=f)
        return [d for _, d in pairs]
    client, config = _client(), _transfer_config()
    for f, dest in pairs:
        bucket, key = _bucket_key(dest)
        if not key:
            raise StoreError(f"cannot upload {f} to {dest}: give an object key after the bucket")
        log.debug("upload %s -> %s", f, dest)
        with _s3_errors(dest, "upload to"):
            client.upload_file(str(f), bucket, key, Config=config)
    return [d for _, d in pairs]


def download(uri: str, local_path: str | os.PathLike) -> builtins.list[Path]:
    """Copy one file/object to ``local_path``, or everything under a prefix into
    the directory ``local_path``. Returns the local files written, sorted."""
    dest = Path(local_path)
    if _split(uri)[0] == "file":
        src = _local(uri)
        with _file_errors(uri, "download"):
            if src.is_file():
                _atomic_write(dest, source=src)
                return [dest]
            if not src.is_dir():
                raise FileNotFoundError(2, "No such file or directory", str(src))
            written = []
            for f in _local_files(src):
                target = dest / f.relative_to(src)
                _atomic_write(target, source=f)
                written.append(target)
            return written
    bucket, key = _bucket_key(uri)
    client, config = _client(), _transfer_config()
    uris = list(uri)
    if not uris:
        raise StoreError(f"cannot download {uri}: nothing there (no object and no objects under that prefix)")
    if uris == [uri] and key and not key.endswith("/"):
        targets = [(key, dest)]
    else:
        prefix = key.rstrip("/") + "/" if key.strip("/") else ""
        targets = [(_bucket_key(u)[1], dest / _bucket_key(u)[1][len(prefix) :]) for u in uris]
    written = []
    for k, target in targets:
        target.parent.mkdir(parents=True, exist_ok=True)
        log.debug("download s3://%s/%s -> %s", bucket, k, target)
        with _s3_errors(f"s3://{bucket}/{k}", "download"):
            client.download_file(bucket, k, str(target), Config=config)
        written.append(target)
    return written


def check_writable(uri: str) -> None:
    """Fail early, with a clear StoreError, unless ``uri`` can be written.

    Writes a small probe under ``uri`` and deletes it: this exercises the
    endpoint, the credentials, the bucket and the write permission at once.
    """
    probe = join(uri, f"{_PROBE_PREFIX}{uuid.uuid4().hex}")
    if _split(uri)[0] == "file":
        root = _local(uri)
        with _file_errors(uri, "check write access to"):
            if root.exists() and not root.is_dir():
                raise StoreError(f"cannot write under {uri}: {root} is a file, not a directory")
            root.mkdir(parents=True, exist_ok=True)
            _atomic_write(_local(probe), data=b"")
            os.unlink(_local(probe))
        return
    bucket, key = _bucket_key(probe)
    client = _client()
    with _s3_errors(uri, "check write access to"):
        client.put_object(Bucket=bucket, Key=key, Body=b"")
    with contextlib.suppress(Exception):  # may write without the right to delete
        client.delete_object(Bucket=bucket, Key=key)
