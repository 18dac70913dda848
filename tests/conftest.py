"""Shared fixtures. Integration fixtures start real services (see services.py)."""

from __future__ import annotations

import os
import uuid

# Before anything imports torch/tokenizers: small, deterministic, offline.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402

# The kubernetes client and kopf read KUBECONFIG when they load: point it at the file the
# kubelite fixture writes before anything imports them.
KUBE_DIR = Path(tempfile.mkdtemp(prefix="kubelite-"))
os.environ["KUBECONFIG"] = str(KUBE_DIR / "kubeconfig")

import alfworld_games  # noqa: E402
import kube  # noqa: E402
import pytest  # noqa: E402
import services  # noqa: E402  (tests/ is on sys.path: pytest puts a conftest's dir there)
import webshop_standin  # noqa: E402


@pytest.fixture(scope="session")
def kube_api():
    """A real Kubernetes API server (kubelite + etcd) with the ACTJob and ACTExperiment CRDs applied; the
    kubernetes client's default configuration points at it."""
    from kubernetes import client, config

    from act_operator.crd import crd, experiment_crd

    with kube.kubelite(KUBE_DIR) as kubeconfig:
        config.load_kube_config(config_file=kubeconfig)
        kube.apply_crd(client.ApiClient(), crd())
        kube.apply_crd(client.ApiClient(), experiment_crd())
        yield kubeconfig


@pytest.fixture(scope="session")
def s3(tmp_path_factory):
    """A SeaweedFS S3 on loopback with real auth and one empty bucket.

    Yields ``services.S3Service(endpoint, bucket, access_key, secret_key, region)``
    and, for the session, points the environment at it (AWS_ENDPOINT_URL,
    AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION), so boto3's default
    chain and subprocesses find it.
    """
    with services.seaweedfs(workdir=tmp_path_factory.mktemp("seaweedfs")) as svc:
        saved = {k: os.environ.get(k) for k in svc.env()}
        os.environ.update(svc.env())
        try:
            yield svc
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v


@pytest.fixture
def s3_root(s3, request):
    """A fresh ``s3://bucket/<test>-<id>`` prefix for one test."""
    name = "".join(c if c.isalnum() or c in "-_" else "-" for c in request.node.name)[:60]
    return f"s3://{s3.bucket}/{name}-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory):
    """An MLflow tracking server (sqlite) on loopback; yields its tracking URI."""
    with services.mlflow_server(workdir=tmp_path_factory.mktemp("mlflow")) as uri:
        yield uri


@pytest.fixture(scope="session")
def alfworld_data(tmp_path_factory):
    """ALFWORLD_DATA-style directory with a few real games of each split."""
    if not alfworld_games.ARCHIVE.is_file():
        pytest.skip(f"ALFWorld game archive not found at {alfworld_games.ARCHIVE}")
    return alfworld_games.extract(tmp_path_factory.mktemp("alfworld"))


@pytest.fixture(scope="session")
def webshop_server():
    """The stand-in WebShop web server (webshop_standin.py) on loopback; yields its URL."""
    with webshop_standin.serve() as url:
        yield url
