"""Real kubectl against the test cluster (KUBECONFIG from tests/conftest.py), and polling."""

from __future__ import annotations

import json
import os
import subprocess
import time


def kubectl(*args: str, stdin: str | None = None, check: bool = True, timeout: float = 120) -> str:
    r = subprocess.run(["kubectl", *args], input=stdin, capture_output=True, text=True, timeout=timeout,
                       env=dict(os.environ))
    if check and r.returncode:
        raise AssertionError(f"kubectl {' '.join(args)} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")
    return r.stdout


def get(kind: str, name: str, ns: str) -> dict:
    return json.loads(kubectl("get", kind, name, "-n", ns, "-o", "json"))


def pods_of(job: str, ns: str) -> list[dict]:
    out = json.loads(kubectl("get", "pods", "-n", ns, "-l", f"batch.kubernetes.io/job-name={job}", "-o", "json"))
    return sorted(out["items"], key=lambda p: p["metadata"]["name"])


def wait_for(what, timeout: float = 60, interval: float = 0.2):
    """Poll what() until it returns something truthy; return it."""
    deadline = time.monotonic() + timeout
    while True:
        value = what()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"condition not met in {timeout}s: {what}")
        time.sleep(interval)
