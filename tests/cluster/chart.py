"""The operator as the Helm chart's Deployment runs it, as a local process: the container's
command, args and env from `helm template` (tests/helm_tool.py), with only what must point at
this test cluster changed: the kubeconfig (a pod would use its ServiceAccount token), free
local ports for /healthz and /metrics (a pod has its own network), the pod name kopf takes
from the downward API, HOME/TMPDIR (the pod's emptyDir).

    op = ChartOperator(kubeconfig, workdir, namespace)   # watchNamespaces={namespace}
    op.start(); op.kill()   # SIGKILL, as a node or OOM kill does
    op.start(); op.stop()   # SIGTERM, as a rollout does
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path

import helm_tool
from services import free_ports

ROOT = Path(__file__).resolve().parents[2]


def rendered_container(*values: str) -> dict:
    """The operator container of the chart's Deployment, rendered with these `--set` values."""
    return helm_tool.container(helm_tool.template(*values, crds=False))


class ChartOperator:
    def __init__(self, kubeconfig: str, workdir: Path, namespace: str, *values: str):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        # one namespace: the session's kubelite is shared with other tests
        c = rendered_container(f"watchNamespaces={{{namespace}}}", *values)
        health, metrics = free_ports(2)
        env = {}
        for e in c["env"]:
            if "value" in e:
                env[e["name"]] = e["value"]
            elif e.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") == "metadata.name":
                env[e["name"]] = "act-operator-0"  # the downward API: the pod's name
            else:
                raise AssertionError(f"the Deployment's env {e} has no local stand-in")
        env.update(KUBECONFIG=kubeconfig, ACT_PORT=str(metrics), HOME=str(self.workdir), TMPDIR=str(self.workdir))
        self.env = env
        self.command = c["command"] + [f"--liveness=http://127.0.0.1:{health}/healthz"
                                       if a.startswith("--liveness=") else a for a in c["args"]]
        assert self.command[:2] == ["kopf", "run"] and f"--namespace={namespace}" in self.command, self.command
        self.log_path = self.workdir / "operator.log"
        self.proc: subprocess.Popen | None = None
        self.starts = 0

    def start(self) -> subprocess.Popen:
        # the image's environment: the host's PATH (kopf next to this python) and PYTHONPATH,
        # nothing of the test's ACT_*/KOPF_* settings
        base = {k: v for k, v in os.environ.items() if not k.startswith(("ACT_", "KOPF_"))}
        env = {**base, **self.env, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
               "PYTHONUNBUFFERED": "1"}
        with open(self.log_path, "ab") as log:
            log.write(f"--- start {self.starts + 1}: {' '.join(self.command)}\n".encode())
            self.proc = subprocess.Popen(self.command, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT,
                                         start_new_session=True)
        self.starts += 1
        return self.proc

    def kill(self) -> None:
        """SIGKILL: no handler finishes, nothing is flushed."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.kill()

    def log(self, tail: int = 5000) -> str:
        return self.log_path.read_text(errors="replace")[-tail:]

    def __enter__(self) -> ChartOperator:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
