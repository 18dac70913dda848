"""A real Kubernetes API server for tests (kubelite, see ../shared/kubelite/README.md).

    with kubelite(tmp_dir) as kubeconfig:
        api = kubernetes.config.new_client_from_config(config_file=kubeconfig)
        apply_crd(api, crd())

No global client configuration is touched: callers build their own ApiClient.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path


def shared_dir() -> Path:
    """The checkout's sibling `shared/` (repo /work/main -> /work/shared), or $ACT_SHARED_DIR."""
    return Path(os.environ.get("ACT_SHARED_DIR") or Path(__file__).resolve().parents[2] / "shared")


@contextlib.contextmanager
def kubelite(workdir: str | Path) -> Iterator[str]:
    """Start etcd + kubelite under `workdir`; yield the kubeconfig path; stop both on exit."""
    bin_dir = shared_dir() / "kubelite"
    workdir = Path(workdir)
    proc = subprocess.run([bin_dir / "up", workdir], check=False, capture_output=True, text=True)
    if proc.returncode:
        subprocess.run([bin_dir / "down", workdir], check=False, capture_output=True)  # whatever half started
        raise RuntimeError(f"kubelite did not start (exit {proc.returncode}):\n{proc.stderr[-4000:]}")
    kubeconfig = proc.stdout.strip().splitlines()[-1].removeprefix("KUBECONFIG=")
    try:
        yield kubeconfig
    finally:
        subprocess.run([bin_dir / "down", workdir], check=False, capture_output=True)


def apply_crd(api_client, crd: dict, timeout: float = 30.0) -> None:
    """Create or replace a CRD and wait until the server reports it Established."""
    from kubernetes import client
    from kubernetes.client.rest import ApiException

    ext = client.ApiextensionsV1Api(api_client)
    name = crd["metadata"]["name"]
    try:
        ext.create_custom_resource_definition(crd)
    except ApiException as e:
        if e.status != 409:
            raise
        body = dict(crd, metadata=dict(crd["metadata"], resourceVersion=ext.read_custom_resource_definition(
            name).metadata.resource_version))
        ext.replace_custom_resource_definition(name, body)
    deadline = time.monotonic() + timeout
    while True:
        conditions = ext.read_custom_resource_definition_status(name).status.conditions or []
        state = {c.type: c for c in conditions}
        if getattr(state.get("Established"), "status", None) == "True":
            return
        if getattr(state.get("NamesAccepted"), "status", None) == "False":
            raise RuntimeError(f"CRD {name}: names not accepted: {state['NamesAccepted'].message}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"CRD {name} not Established after {timeout}s: "
                               f"{[(c.type, c.status, c.message) for c in conditions]}")
        time.sleep(0.1)


def run_operator(namespace: str):
    """The operator's handlers under kopf's test runner, watching one namespace."""
    from kopf.testing import KopfRunner

    return KopfRunner(["run", "--namespace", namespace, "--standalone", "-m", "act_operator.handlers"])
