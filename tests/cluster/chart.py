"""The operator as a user installs it: the Helm chart rendered (`helm template`, release = the
test namespace so that its cluster-wide RBAC names do not clash between tests) and applied with
kubectl: its ServiceAccounts, RBAC, Service and Deployment. The node agent runs the Deployment's
pod from the operator image (in-cluster configuration through its ServiceAccount volume) and
the stage pods from the trainer-cpu image, both as uid 1000 with the chart's securityContext.
Nothing of the chart is changed but values a user sets.

    op = ChartOperator(node, namespace)   # watchNamespaces={namespace}
    op.start()                  # the Deployment at 1 replica: a pod Ready
    op.kill()                   # SIGKILL of the operator's process: the kubelet restarts it (CrashLoopBackOff)
    op.kill(keep_down=True)     # ... and the Deployment scaled to 0 before it can: down until start()
    op.stop()                   # scaled to 0: SIGTERM, as a rollout does
"""

from __future__ import annotations

import contextlib
import json
import os
import signal

import helm_tool
import yaml

from .client import Node, image
from .kubectl import kubectl, wait_for

TRAINER = image("trainer-cpu")


def rendered(namespace: str, *values: str) -> list[dict]:
    repo, tag = image("operator").rsplit(":", 1)
    trepo, ttag = TRAINER.rsplit(":", 1)
    proc = helm_tool.helm("template", namespace, str(helm_tool.CHART), "--namespace", namespace, *helm_tool.sets([
        f"image.repository={repo}", f"image.tag={tag}", f"trainer.image.repository={trepo}",
        f"trainer.image.tag={ttag}", f"watchNamespaces={{{namespace}}}", *values]))
    assert proc.returncode == 0, proc.stderr
    return [d for d in yaml.safe_load_all(proc.stdout) if d]


class ChartOperator:
    def __init__(self, node: Node, namespace: str, *values: str):
        self.node, self.ns = node, namespace
        self.docs = rendered(namespace, *values)
        (self.deploy,) = [d for d in self.docs if d["kind"] == "Deployment"]
        self.name = self.deploy["metadata"]["name"]
        self.selector = ",".join(f"{k}={v}" for k, v in self.deploy["spec"]["selector"]["matchLabels"].items())
        self.starts = 0
        self.seen_pods: list[str] = []  # every operator pod, in order: their logs make the operator's log

    def pods(self) -> list[dict]:
        items = json.loads(kubectl("get", "pods", "-n", self.ns, "-l", self.selector, "-o", "json"))["items"]
        for p in sorted(items, key=lambda p: p["metadata"]["creationTimestamp"]):
            if p["metadata"]["name"] not in self.seen_pods:
                self.seen_pods.append(p["metadata"]["name"])
        return items

    def _running(self, restarts: int | None = None) -> dict | None:
        for p in self.pods():
            if p["metadata"].get("deletionTimestamp"):
                continue
            cs = (p["status"].get("containerStatuses") or [{}])[0]
            if "running" in (cs.get("state") or {}) and (restarts is None or cs.get("restartCount", 0) >= restarts):
                return p
        return None

    def _replicas(self, n: int) -> None:
        # (kubelite serves no scale subresource, so no `kubectl scale`)
        kubectl("patch", "-n", self.ns, f"deployment/{self.name}", "--type=merge", "-p", json.dumps({"spec": {"replicas": n}}))

    def start(self) -> None:
        if self.starts == 0:
            kubectl("apply", "-n", self.ns, "-f", "-", stdin="\n---\n".join(yaml.safe_dump(d) for d in self.docs))
        elif self._running() is None:
            self._replicas(1)
        wait_for(self._running, timeout=120, interval=0.2)
        self.starts += 1

    def kill(self, keep_down: bool = False) -> None:
        """SIGKILL: no handler finishes, nothing is flushed (a crash or an OOM kill)."""
        pod = self._running()
        restarts = pod["status"]["containerStatuses"][0].get("restartCount", 0)
        os.kill(self.node.pid(self.ns, pod["metadata"]["name"]), signal.SIGKILL)
        if keep_down:  # within the kubelet's first restart back-off (10 s)
            self._replicas(0)
            wait_for(lambda: not self.pods(), timeout=60, interval=0.2)
        else:
            wait_for(lambda: self._running(restarts + 1), timeout=60, interval=0.2)
            self.starts += 1

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self._replicas(0)
            wait_for(lambda: not self.pods(), timeout=60, interval=0.5)

    def log(self, tail: int = 5000) -> str:
        self.pods()
        out = []
        for name in self.seen_pods:
            with contextlib.suppress(FileNotFoundError):
                out.append(f"--- pod {name}\n" + self.node.log(self.ns, name))
        return "".join(out)[-tail:]

    def __enter__(self) -> ChartOperator:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
