"""Start real services on loopback for tests and local runs: SeaweedFS (S3) and
an MLflow tracking server. Each is a context manager that picks free ports,
keeps its data and log under a temp directory, waits until the service answers,
and stops it (SIGTERM to its process group, then SIGKILL) on exit.

    with seaweedfs() as s3:      # S3Service(endpoint, bucket, access_key, secret_key)
        ...
    with mlflow_server() as uri: # "http://127.0.0.1:PORT"
        ...
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

LOOPBACK = "127.0.0.1"


class ServiceError(RuntimeError):
    """A service did not start; the message carries the tail of its log."""


class S3Service(NamedTuple):
    endpoint: str
    bucket: str
    access_key: str
    secret_key: str
    region: str = "us-east-1"

    def __repr__(self) -> str:  # keep the secret out of test reports
        return f"S3Service(endpoint={self.endpoint!r}, bucket={self.bucket!r}, access_key={self.access_key!r})"

    def env(self) -> dict[str, str]:
        """The environment a client process needs to reach this S3."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_REGION": self.region,
        }


def free_ports(n: int) -> list[int]:
    """``n`` distinct free TCP ports on loopback (held open together while chosen)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((LOOPBACK, 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def free_port_pair(offset: int) -> int:
    """A free port ``p`` such that ``p + offset`` is free too."""
    for _ in range(100):
        (port,) = free_ports(1)
        if port + offset > 65535:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind((LOOPBACK, port + offset))
            except OSError:
                continue
        return port
    raise ServiceError(f"no free port pair (p, p+{offset}) on {LOOPBACK}")


def log_tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _find_executable(name: str) -> str:
    """An executable installed with this interpreter's packages, else on PATH."""
    beside = Path(sys.executable).parent / name
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which(name)
    if not found:
        raise ServiceError(f"{name!r} not found: pip install the test extras (pip install -e '.[dev]')")
    return found


@contextlib.contextmanager
def _process(cmd: list[str], log_path: Path, env: dict[str, str] | None = None,
             cwd: Path | None = None) -> Iterator[subprocess.Popen]:  # fmt: skip
    """Run ``cmd`` in its own process group with output to ``log_path``; stop the group on exit."""
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env=env, cwd=cwd, start_new_session=True, preexec_fn=_die_with_parent,
        )  # fmt: skip
    try:
        yield proc
    finally:
        stop_process_group(proc)


def _die_with_parent() -> None:
    """In the child: get SIGTERM if the test process dies without cleaning up (Linux)."""
    with contextlib.suppress(Exception):
        import ctypes

        PR_SET_PDEATHSIG = 1
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


def stop_process_group(proc: subprocess.Popen, grace_s: float = 10.0) -> None:
    """SIGTERM the process group of ``proc`` (a session leader), then SIGKILL it."""
    for sig, wait_s in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=wait_s)
        except subprocess.TimeoutExpired:
            continue
        # the leader is gone; make sure no child of it lingers in the group
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        return


def _wait(ready, proc: subprocess.Popen, what: str, log_path: Path, timeout_s: float) -> None:
    """Poll ``ready()`` until it is true; raise with the log's tail on exit or timeout."""
    deadline = time.monotonic() + timeout_s
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise ServiceError(
                f"{what} exited with code {proc.returncode} while starting; log {log_path}:\n"
                f"{log_tail(log_path)}"
            )
        try:
            if ready():
                return
        except Exception as exc:  # not up yet
            last_error = exc
        time.sleep(0.2)
    raise ServiceError(
        f"{what} not ready after {timeout_s:.0f}s (last error: {last_error}); log {log_path}:\n"
        f"{log_tail(log_path)}"
    )


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return resp.status == 200
    except (urllib.error.URLError, OSError):
        return False


# ------------------------------------------------------------------------ SeaweedFS


def _s3_client(endpoint: str, access_key: str, secret_key: str, region: str = "us-east-1"):
    import boto3
    from botocore.config import Config
    from botocore.handlers import add_expect_header

    client = boto3.session.Session().client(
        "s3",
        endpoint_url=endpoint,
        region_name=region,
        aws_access_key_id=access_key,
        aws_secret_access_key=secret_key,
        config=Config(
            s3={"addressing_style": "path"},
            retries={"mode": "standard", "max_attempts": 2},
            connect_timeout=5,
            read_timeout=15,
        ),
    )
    # See act_trainer.store: SeaweedFS and "Expect: 100-continue" do not mix well.
    client.meta.events.unregister("before-call.s3", add_expect_header)
    return client


@contextlib.contextmanager
def seaweedfs(
    workdir: str | os.PathLike | None = None,
    bucket: str = "act-test",
    timeout_s: float = 60.0,
    host: str = LOOPBACK,
) -> Iterator[S3Service]:
    """SeaweedFS (``weed mini``: master, volume, filer, S3 in one process) on loopback
    (or on ``host``, e.g. the test cluster's node address, so that pods reach it).

    S3 auth is real: one identity with a random key pair (all actions on all
    buckets); anonymous and wrongly signed requests are rejected. Buckets are not
    created implicitly on write (``-s3.autoCreateBucket=false``), as on AWS.
    """
    weed = _find_executable("weed")
    tmp = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="act-weed-"))
    own_tmp = workdir is None
    data = tmp / "data"
    data.mkdir(parents=True, exist_ok=True)
    access_key = "act" + secrets.token_hex(8)
    secret_key = secrets.token_urlsafe(24)
    config = tmp / "s3.json"
    config.write_text(
        json.dumps(
            {
                "identities": [
                    {
                        "name": "act-test",
                        "credentials": [{"accessKey": access_key, "secretKey": secret_key}],
                        "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                    }
                ]
            }
        )
    )
    config.chmod(0o600)
    # Every listener gets its own free port (the defaults are fixed ports and the
    # gRPC ports default to HTTP port + 10000, which can collide); extra servers off.
    master, master_g, volume, volume_g, filer, filer_g, s3, s3_g = free_ports(8)
    # The admin server listens on -admin.port.grpc, but weed mini's built-in
    # maintenance worker dials admin.port + 10000 whatever that flag says (4.48):
    # leave the flag alone and pick an admin port whose +10000 is free as well.
    admin = free_port_pair(10000)
    cmd = [
        weed, "mini",
        f"-dir={data}",
        f"-ip={host}", f"-ip.bind={host}",
        f"-master.port={master}", f"-master.port.grpc={master_g}",
        f"-volume.port={volume}", f"-volume.port.grpc={volume_g}",
        f"-filer.port={filer}", f"-filer.port.grpc={filer_g}",
        f"-s3.port={s3}", f"-s3.port.grpc={s3_g}",
        f"-admin.port={admin}", "-admin.ui=false",
        "-s3.port.iceberg=0", "-s3.port.lance=0", "-webdav=false",
        f"-s3.config={config}", "-s3.autoCreateBucket=false",
        f"-filer.localSocket={tmp / 'filer.sock'}", f"-s3.localSocket={tmp / 's3.sock'}",
        "-master.telemetry=false", "-master.volumeSizeLimitMB=64",
    ]  # fmt: skip
    # weed must not pick up the caller's AWS settings.
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    endpoint = f"http://{host}:{s3}"
    log_path = tmp / "weed.log"
    try:
        with _process(cmd, log_path, env=env, cwd=tmp) as proc:
            client = _s3_client(endpoint, access_key, secret_key)

            def ready() -> bool:
                client.list_buckets()
                return True

            _wait(ready, proc, "SeaweedFS", log_path, timeout_s)
            # The S3 gateway may answer before the filer has volumes to write to:
            # retry the bucket creation and a first write until they go through.
            # The write is not empty: it makes SeaweedFS grow the bucket's first
            # volumes now rather than during the first test.
            def bucket_ready() -> bool:
                with contextlib.suppress(
                    client.exceptions.BucketAlreadyOwnedByYou, client.exceptions.BucketAlreadyExists
                ):
                    client.create_bucket(Bucket=bucket)
                client.put_object(Bucket=bucket, Key=".ready", Body=b"ready")
                assert client.get_object(Bucket=bucket, Key=".ready")["Body"].read() == b"ready"
                client.delete_object(Bucket=bucket, Key=".ready")
                return True

            _wait(bucket_ready, proc, f"SeaweedFS bucket {bucket!r}", log_path, timeout_s)
            yield S3Service(endpoint, bucket, access_key, secret_key)
    finally:
        # weed keeps some unix sockets in /tmp, named after (our) ports
        for port in (master, master_g, volume, volume_g, filer, filer_g, s3, s3_g, admin, admin + 10000):
            for leftover in Path("/tmp").glob(f"seaweedfs-*-{port}.sock"):
                with contextlib.suppress(OSError):
                    leftover.unlink()
        if own_tmp:
            shutil.rmtree(tmp, ignore_errors=True)


# --------------------------------------------------------------------------- MLflow


@contextlib.contextmanager
def mlflow_server(workdir: str | os.PathLike | None = None, timeout_s: float = 120.0,
                  host: str = LOOPBACK, port: int | None = None) -> Iterator[str]:
    """An MLflow tracking server (sqlite backend) on loopback (or ``host``), serving artifacts
    itself (``mlflow-artifacts:``, stored under ``workdir/artifacts``) as a shared server must:
    with a ``file:`` artifact root, clients write artifacts to that path on *their own*
    filesystem, which a pod in its image does not share with the server.

    Yields the tracking URI. One uvicorn worker; MLflow's background job runner
    (huey consumers for server-side jobs such as trace archival, unused here) is
    off, which halves the startup time on a small machine.
    """
    mlflow = _find_executable("mlflow")
    tmp = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="act-mlflow-"))
    own_tmp = workdir is None
    (tmp / "artifacts").mkdir(parents=True, exist_ok=True)
    port = port or free_ports(1)[0]  # a given port and workdir: the same server again, e.g. after an outage
    cmd = [
        mlflow, "server",
        "--backend-store-uri", f"sqlite:///{tmp / 'mlflow.db'}",
        "--serve-artifacts", "--artifacts-destination", (tmp / "artifacts").as_uri(),
        "--host", host, "--port", str(port),
        "--workers", "1",
    ]  # fmt: skip
    env = dict(os.environ, MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false", PYTHONUNBUFFERED="1")
    uri = f"http://{host}:{port}"
    log_path = tmp / "mlflow.log"
    try:
        with _process(cmd, log_path, env=env, cwd=tmp) as proc:
            _wait(lambda: _http_ok(f"{uri}/health"), proc, "MLflow server", log_path, timeout_s)
            yield uri
    finally:
        if own_tmp:
            shutil.rmtree(tmp, ignore_errors=True)
