"""For tests: start the node agent as its own process, and look at what it runs.

    with node_agent(kubeconfig, tmp_dir, gpus=0) as node:
        node.host_address      # the node's address on the pod network: serve test services there
        node.log(ns, pod)      # a pod's container log (kubelite has no logs endpoint)
        node.pid(ns, pod)      # the host pid of a pod's container init (kill it to crash the pod)
        disrupt(api, ns, pod)  # evict a pod as the eviction API / a node drain does
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from .images import ImageNotFound, ImageStore
from .netns import available

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
# the node's image store: what `make images` exports (ACT_IMAGE_STORE: another OCI layout)
IMAGE_STORE = Path(os.environ.get("ACT_IMAGE_STORE") or ROOT / ".act" / "images")
PREFIX = "ghcr.io/act-operator"


def image(name: str) -> str:
    """The full name `make images` gives an image of this repository (operator, trainer-cpu)."""
    from act_operator import __version__

    return f"{PREFIX}/{name}:{__version__}"


def unavailable(*images: str) -> str | None:
    """Why the agent cannot run these images here (None if it can): root, network namespaces,
    runc and umoci, and the images in the store."""
    why = available()
    if why:
        return why
    missing = [t for t in ("runc", "umoci") if not shutil.which(t)]
    if missing:
        return f"the node agent needs {' and '.join(missing)} (apt-get install runc umoci; make install does)"
    store = ImageStore(IMAGE_STORE, Path("/nonexistent"))
    for name in images:
        try:
            store.resolve(name)
        except ImageNotFound:
            return f"image {name} is not in {IMAGE_STORE}: run `make images-ci` first (make test does)"
    return None


class Node:
    def __init__(self, root: Path, name: str, proc: subprocess.Popen):
        self.root, self.name, self.proc = root, name, proc
        self.host_address = (root / "ready").read_text().strip()

    def pod_dir(self, namespace: str, pod: str) -> Path:
        found = sorted((self.root / "pods").glob(f"{namespace}_{pod}_*"))
        if not found:
            raise FileNotFoundError(f"pod {namespace}/{pod} has not run on node {self.name}")
        return found[-1]

    def log(self, namespace: str, pod: str, container: str | None = None) -> str:
        d = self.pod_dir(namespace, pod)
        logs = [d / f"{container}.log"] if container else sorted(d.glob("*.log"))
        return "".join(p.read_text(errors="replace") for p in logs if p.exists())

    def pid(self, namespace: str, pod: str, timeout: float = 30) -> int:
        deadline = time.monotonic() + timeout
        while True:
            try:
                return int(next(self.pod_dir(namespace, pod).glob("*.pid")).read_text())
            except (FileNotFoundError, StopIteration):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def agent_log(self) -> str:
        return (self.root / "agent.log").read_text(errors="replace")


@contextlib.contextmanager
def node_agent(kubeconfig: str, root: Path, gpus: int = 0, name: str = "act-node-0", namespace_selector: str = "",
               timeout: float = 60) -> Iterator[Node]:
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(HERE.parent), os.environ.get("PYTHONPATH")])))
    proc = subprocess.Popen([sys.executable, "-m", "cluster.agent", "--kubeconfig", kubeconfig, "--root", str(root),
                             "--images", str(IMAGE_STORE),
                             "--node", name, "--gpus", str(gpus), "--namespace-selector", namespace_selector], env=env,
                            stdout=open(root / "agent.out", "ab"), stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + timeout
        while not (root / "ready").exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"node agent did not start (exit {proc.poll()}):\n"
                                   + (root / "agent.out").read_text()[-3000:]
                                   + ((root / "agent.log").read_text()[-3000:] if (root / "agent.log").exists() else ""))
            time.sleep(0.05)
        yield Node(root, name, proc)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def disrupt(api, namespace: str, pod: str, reason: str = "EvictionByEvictionAPI",
            message: str = "Eviction API: evicting") -> None:
    """What the eviction API (or the taint manager on a node failure) does: add the
    DisruptionTarget condition to the pod's status, then delete the pod."""
    from kubernetes import client

    core = client.CoreV1Api(api)
    cond = {"type": "DisruptionTarget", "status": "True", "reason": reason, "message": message,
            "lastTransitionTime": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    core.patch_namespaced_pod_status(pod, namespace, {"status": {"conditions": [cond]}})
    core.delete_namespaced_pod(pod, namespace)
