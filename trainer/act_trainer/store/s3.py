"""The ``s3://`` backend, through boto3.

* endpoint: ``configure(endpoint=...)`` (the stage config's ``storage.endpoint``),
  else ``AWS_ENDPOINT_URL_S3`` / ``AWS_ENDPOINT_URL``, else AWS itself;
  path-style addressing whenever an endpoint is set (MinIO, Ceph, SeaweedFS);
* credentials: only boto3's own chain (environment, profile, IAM role, IRSA).
  They are never passed through this module and never logged;
* retries: botocore "standard" mode, ``MAX_ATTEMPTS`` attempts;
* multipart: boto3's managed transfers above ``MULTIPART_THRESHOLD``.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import os
import threading
from collections.abc import Iterator
from pathlib import Path

from act_trainer.store.uris import MiB, StoreError, bucket_key, join

log = logging.getLogger(__name__)

MULTIPART_THRESHOLD = 64 * MiB  # objects above this go up/down in parts
MULTIPART_CHUNKSIZE = 64 * MiB
MAX_CONCURRENCY = 8  # parts in flight per transfer
MAX_ATTEMPTS = 5  # botocore retries, first attempt included
CONNECT_TIMEOUT_S = 10
READ_TIMEOUT_S = 120

# --------------------------------------------------------------------------- client

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


@contextlib.contextmanager
def configured(endpoint: str | None = None, region: str | None = None) -> Iterator[None]:
    """``configure`` for a block, the settings before it back after: an executor reading one job's
    storage (its spec's storage.s3) in a process that outlives the job."""
    saved = dict(_settings)
    configure(endpoint, region)
    try:
        yield
    finally:
        _settings.update(saved)


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


# --------------------------------------------------------------------------- errors

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
        bucket = bucket_key(uri)[0]
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


# ------------------------------------------------------------------------ interface


def read_bytes(uri: str) -> bytes:
    bucket, key = bucket_key(uri)
    with _s3_errors(uri, "read"):
        return _client().get_object(Bucket=bucket, Key=key)["Body"].read()


def write_bytes(uri: str, data: bytes) -> None:
    bucket, key = bucket_key(uri)
    if not key or key.endswith("/"):
        raise StoreError(f"cannot write {uri}: the URI names a prefix, not an object")
    with _s3_errors(uri, "write"):
        _client().upload_fileobj(io.BytesIO(data), bucket, key, Config=_transfer_config())


def exists(uri: str) -> bool:
    bucket, key = bucket_key(uri)
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


def _keys(uri: str) -> list[str]:
    """Object keys under the prefix ``uri`` names (as a directory), sorted."""
    bucket, key = bucket_key(uri)
    prefix = key.rstrip("/") + "/" if key.strip("/") else ""
    keys = []
    with _s3_errors(uri, "list", missing="bucket"):
        paginator = _client().get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
            keys.extend(o["Key"] for o in page.get("Contents", []) if not o["Key"].endswith("/"))
    return sorted(keys)


def list_uris(uri: str) -> list[str]:
    _, key = bucket_key(uri)
    keys = _keys(uri)
    if not keys and key and not key.endswith("/") and exists(uri):
        return [uri]
    prefix = key.rstrip("/") + "/" if key.strip("/") else ""
    return [join(uri, k[len(prefix) :]) for k in keys]


def delete_prefix(uri: str) -> int:
    bucket, key = bucket_key(uri)
    if not key.strip("/"):
        raise StoreError(f"cannot delete {uri}: refusing to empty a whole bucket; name a prefix")
    keys = [bucket_key(u)[1] for u in list_uris(uri)]  # the object itself, or every key under uri + "/"
    client = _client()
    for i in range(0, len(keys), 1000):  # DeleteObjects takes at most 1000 keys
        with _s3_errors(uri, "delete"):
            out = client.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": k} for k in keys[i:i + 1000]],
                                                                "Quiet": True})
        if out.get("Errors"):
            e = out["Errors"][0]
            raise StoreError(f"cannot delete {uri}: {e.get('Code')}: {e.get('Message')} ({e.get('Key')})")
    return len(keys)


def upload_files(pairs: list[tuple[Path, str]]) -> None:
    client, config = _client(), _transfer_config()
    for f, dest in pairs:
        bucket, key = bucket_key(dest)
        if not key:
            raise StoreError(f"cannot upload {f} to {dest}: give an object key after the bucket")
        log.debug("upload %s -> %s", f, dest)
        with _s3_errors(dest, "upload to"):
            client.upload_file(str(f), bucket, key, Config=config)


def download(uri: str, dest: Path) -> list[Path]:
    bucket, key = bucket_key(uri)
    client, config = _client(), _transfer_config()
    uris = list_uris(uri)
    if not uris:
        raise StoreError(f"cannot download {uri}: nothing there (no object and no objects under that prefix)")
    if uris == [uri] and key and not key.endswith("/"):
        targets = [(key, dest)]
    else:
        prefix = key.rstrip("/") + "/" if key.strip("/") else ""
        targets = [(bucket_key(u)[1], dest / bucket_key(u)[1][len(prefix) :]) for u in uris]
    written = []
    for k, target in targets:
        target.parent.mkdir(parents=True, exist_ok=True)
        log.debug("download s3://%s/%s -> %s", bucket, k, target)
        with _s3_errors(f"s3://{bucket}/{k}", "download"):
            client.download_file(bucket, k, str(target), Config=config)
        written.append(target)
    return written


def check_writable(uri: str, probe: str) -> None:
    bucket, key = bucket_key(probe)
    client = _client()
    with _s3_errors(uri, "check write access to"):
        client.put_object(Bucket=bucket, Key=key, Body=b"")
    with contextlib.suppress(Exception):  # may write without the right to delete
        client.delete_object(Bucket=bucket, Key=key)
