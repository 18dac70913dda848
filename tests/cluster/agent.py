"""The node agent: one process that plays, against kubelite, the parts of a one-node cluster
kubelite lacks: the Job controller (jobs.py), the scheduler (here), the kubelet (kubelet.py)
and the bits of PodGC and cluster DNS our workloads need.

    python -m cluster.agent --kubeconfig KUBECONFIG --root DIR [--node NAME] [--gpus N]

Runs until SIGTERM/SIGINT, then kills its pods and removes its network. One agent per
machine (a lock in /run); leftovers of a crashed agent are removed at start. Writes
<root>/agent.log and, once the Node is registered and the network is up, <root>/ready.
"""

from __future__ import annotations

import argparse
import fcntl
import logging
import os
import signal
import threading
import time
from pathlib import Path

from . import deployments, jobs, podspec
from .api import SMP, Api, Conflict, NotFound, now
from .apifront import ApiFront
from .images import ImageStore
from .jobutil import ts
from .kubelet import Kubelet
from .netns import Network

log = logging.getLogger("agent")
LOCK = "/run/act-node-agent.lock"
SUBNET = "10.244.77.0/24"
IMAGE_CACHE = "/var/lib/act-node-agent/images"  # unpacked images, kept between agents (keyed by digest)


class Agent:
    def __init__(self, kubeconfig: str, root: Path, node: str, gpus: int, subnet: str, images: ImageStore,
                 namespace_selector: str = ""):
        self.api, self.kubeconfig, self.root, self.node, self.gpus = Api(kubeconfig), kubeconfig, root, node, gpus
        self.namespace_selector = namespace_selector
        self.net = Network(subnet)
        self.kubelet = Kubelet(self.api, node, self.net, root, images)
        self.wake = threading.Event()
        self.kubelet.on_change = self.wake.set
        self.stop = threading.Event()
        self.next_sync: dict[str, float] = {}  # job uid -> monotonic time of a requeue
        self.sched_msgs: dict[str, str] = {}

    # --- node ------------------------------------------------------------------------------------
    def register_node(self) -> None:
        cpus, mem_kib = os.cpu_count() or 1, os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 1024
        capacity = {"cpu": str(cpus), "memory": f"{mem_kib}Ki", "pods": "110", "ephemeral-storage": "64Gi"}
        if self.gpus:
            capacity["nvidia.com/gpu"] = str(self.gpus)
        labels = {"kubernetes.io/hostname": self.node, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64"}
        self.api.delete("nodes", None, self.node)
        self.api.create("nodes", None, {"apiVersion": "v1", "kind": "Node",
                                        "metadata": {"name": self.node, "labels": labels}, "spec": {}})
        t = ts(now())
        ready = {"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "kubelet is posting ready "
                 "status", "lastHeartbeatTime": t, "lastTransitionTime": t}
        self.api.patch("nodes", None, self.node, {"status": {
            "capacity": capacity, "allocatable": capacity, "conditions": [ready],
            "addresses": [{"type": "InternalIP", "address": self.net.gateway}, {"type": "Hostname", "address": self.node}],
            "nodeInfo": {"kubeletVersion": "v1.36.4-node-agent", "containerRuntimeVersion": "runc://1.1",
                         "operatingSystem": "linux", "architecture": "amd64", "osImage": "the host",
                         "kernelVersion": os.uname().release, "kubeProxyVersion": "", "machineID": "",
                         "systemUUID": "", "bootID": ""}}}, sub="status")
        self.node_obj = self.api.get("nodes", None, self.node)

    # --- scheduler -------------------------------------------------------------------------------
    def schedule(self, pods: list[dict]) -> None:
        labels = self.node_obj["metadata"].get("labels") or {}
        used = sum(podspec.gpu_request(p) for p in pods if p["spec"].get("nodeName") == self.node
                   and (p.get("status") or {}).get("phase") not in ("Succeeded", "Failed"))
        for p in pods:
            m, spec = p["metadata"], p["spec"]
            if spec.get("nodeName") or (p.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
                continue
            if m.get("deletionTimestamp"):  # PodGC: an unscheduled pod being deleted ends at once
                self._pod_gc(p)
                continue
            if spec.get("schedulerName", "default-scheduler") != "default-scheduler":
                continue  # no such scheduler here: stays Pending, as on a cluster without it
            want = podspec.gpu_request(p)
            reason = None
            if any(labels.get(k) != v for k, v in (spec.get("nodeSelector") or {}).items()):
                reason = "1 node(s) didn't match Pod's node affinity/selector"
            elif want > self.gpus - used:
                reason = "1 Insufficient nvidia.com/gpu"
            if reason:
                msg = (f"0/1 nodes are available: {reason}. preemption: 0/1 nodes are available: "
                       f"1 No preemption victims found for incoming pod.")
                if self.sched_msgs.get(m["uid"]) != msg:
                    self.sched_msgs[m["uid"]] = msg
                    self._set_scheduled(p, False, "Unschedulable", msg)
                    self.api.event({**p, "kind": "Pod"}, "Warning", "FailedScheduling", msg, "default-scheduler")
                continue
            used += want
            try:
                self.api.patch("pods", m["namespace"], m["name"], {"spec": {"nodeName": self.node}})
            except NotFound:
                continue
            self._set_scheduled(p, True)
            self.api.event({**p, "kind": "Pod"}, "Normal", "Scheduled",
                           f"Successfully assigned {m['namespace']}/{m['name']} to {self.node}", "default-scheduler")

    def _set_scheduled(self, p: dict, ok: bool, reason: str = "", message: str = "") -> None:
        cond = {"type": "PodScheduled", "status": "True" if ok else "False", "lastProbeTime": None,
                "lastTransitionTime": ts(now())}
        if reason:
            cond.update(reason=reason, message=message)
        try:
            self.api.patch("pods", p["metadata"]["namespace"], p["metadata"]["name"],
                           {"status": {"phase": "Pending", "conditions": [cond]}}, sub="status",
                           content_type=SMP)
        except NotFound:
            pass

    def _pod_gc(self, p: dict) -> None:
        m, t = p["metadata"], ts(now())
        cond = {"type": "DisruptionTarget", "status": "True", "reason": "DeletionByPodGC",
                "message": "PodGC: node no longer exists", "lastTransitionTime": t}
        try:
            self.api.patch("pods", m["namespace"], m["name"], {"status": {"phase": "Failed", "conditions": [cond]}},
                           sub="status", content_type=SMP)
        except NotFound:
            pass

    # --- Job controller --------------------------------------------------------------------------
    def sync_jobs(self, all_jobs: list[dict], pods: list[dict]) -> None:
        by_owner: dict[str, list[dict]] = {}
        for p in pods:
            for ref in p["metadata"].get("ownerReferences") or []:
                if ref.get("controller") and ref.get("kind") == "Job":
                    by_owner.setdefault(ref["uid"], []).append(p)
        for job in all_jobs:
            if jobs.is_finished(job) or (job.get("spec") or {}).get("managedBy", "kubernetes.io/job-controller") \
                    != "kubernetes.io/job-controller":
                continue
            try:
                self._sync_job(job, by_owner.get(job["metadata"]["uid"], []))
            except (Conflict, NotFound):
                self.wake.set()  # changed meanwhile: again, from fresh state
            except Exception:
                log.exception("job %s/%s", job["metadata"]["namespace"], job["metadata"]["name"])

    def _sync_job(self, job: dict, pods: list[dict]) -> None:
        m = job["metadata"]
        ns, uid = m["namespace"], m["uid"]
        out = jobs.sync(job, pods, now())
        ev = {**job, "kind": "Job", "apiVersion": "batch/v1"}
        for name in out.delete + out.discard:
            if name in out.discard:
                self._remove_tracking_finalizer(ns, name)
            self.api.delete("pods", ns, name)
            self.api.event(ev, "Normal", "SuccessfulDelete", f"Deleted pod: {name}", "job-controller")
        refused = out.create and self._service_account_missing(ns, out.create[0])
        if refused:  # the ServiceAccount admission plugin refuses every pod: FailedCreate, as the controller reports it
            msg = f'Error creating: pods "{out.create[0]["metadata"]["generateName"]}" is forbidden: {refused}'
            if (uid, msg) not in self.sched_msgs.values():
                self.sched_msgs[f"create-{uid}"] = (uid, msg)
                self.api.event(ev, "Warning", "FailedCreate", msg, "job-controller")
            for st in (out.interim, out.status):
                if st is not None:
                    st["active"] -= len(out.create)
            out.create, out.requeue_after = [], 2.0
        for pod in out.create:
            created = self.api.create("pods", ns, pod)
            self.api.event(ev, "Normal", "SuccessfulCreate", f"Created pod: {created['metadata']['name']}",
                           "job-controller")
        if out.interim is not None:
            job = self.api.replace_status("jobs", {**job, "status": out.interim})
        for name in out.remove_finalizers:
            self._remove_tracking_finalizer(ns, name)
        if out.status is not None:
            self.api.replace_status("jobs", {**job, "status": out.status})
        for type_, reason, message in out.events:
            self.api.event(ev, type_, reason, message, "job-controller")
        if out.requeue_after is not None:
            self.next_sync[uid] = time.monotonic() + out.requeue_after
        else:
            self.next_sync.pop(uid, None)

    def _service_account_missing(self, ns: str, pod: dict) -> str | None:
        sa = pod["spec"].get("serviceAccountName") or pod["spec"].get("serviceAccount") or "default"
        if sa == "default":  # every namespace has it on a cluster (its controller is not modelled)
            return None
        try:
            self.api.get("serviceaccounts", ns, sa)
            return None
        except NotFound:
            return f'error looking up service account {ns}/{sa}: serviceaccount "{sa}" not found'

    def _remove_tracking_finalizer(self, ns: str, name: str) -> None:
        try:
            self.api.patch("pods", ns, name, {"metadata": {"$deleteFromPrimitiveList/finalizers": [
                jobs.TRACKING_FINALIZER]}}, content_type=SMP)
        except NotFound:
            pass

    # --- cluster DNS (hosts files) ---------------------------------------------------------------
    def dns_records(self, pods: list[dict], services: list[dict]) -> list[tuple[str, str, str, str]]:
        headless = {(s["metadata"]["namespace"], s["metadata"]["name"]): s for s in services
                    if (s.get("spec") or {}).get("clusterIP") == "None"}
        ips = self.kubelet.running_ips()
        out = []
        for p in pods:
            m, spec = p["metadata"], p["spec"]
            svc = headless.get((m.get("namespace"), spec.get("subdomain")))
            ip = ips.get(m["uid"])
            if not (svc and spec.get("hostname") and ip):
                continue
            sel = svc["spec"].get("selector") or {}
            ready = any(c.get("type") == "Ready" and c.get("status") == "True"
                        for c in (p.get("status") or {}).get("conditions") or [])
            if sel and all((m.get("labels") or {}).get(k) == v for k, v in sel.items()) and (
                    ready or svc["spec"].get("publishNotReadyAddresses")):
                out.append((m["namespace"], spec["hostname"], spec["subdomain"], ip))
        return sorted(out)

    # --- main loop -------------------------------------------------------------------------------
    def _list(self, kind: str) -> list[dict]:
        items = self.api.list(kind)
        if not self.namespace_selector:
            return items
        mine = {n["metadata"]["name"] for n in self.api.list("namespaces", selector=self.namespace_selector)}
        return [o for o in items if o["metadata"].get("namespace") in mine]

    # --- Deployment and ReplicaSet controllers --------------------------------------------------
    def sync_deployments(self, pods: list[dict]) -> None:
        replicasets = self._list("replicasets")
        for d in self._list("deployments"):
            m = d["metadata"]
            try:
                out = deployments.sync_deployment(d, replicasets, pods, ts(now()))
                ev = {**d, "kind": "Deployment", "apiVersion": "apps/v1"}
                for rs in out.create:
                    self.api.create("replicasets", m["namespace"], rs)
                    self.api.event(ev, "Normal", "ScalingReplicaSet", f"Scaled up replica set {rs['metadata']['name']} "
                                   f"from 0 to {rs['spec']['replicas']}", "deployment-controller")
                for name, n in out.scale.items():
                    self.api.patch("replicasets", m["namespace"], name, {"spec": {"replicas": n}})
                    self.api.event(ev, "Normal", "ScalingReplicaSet", f"Scaled replica set {name} to {n}",
                                   "deployment-controller")
                status = self._keep_times(d, out.status)
                if status != {k: v for k, v in (d.get("status") or {}).items() if k in status}:
                    self.api.replace_status("deployments", {**d, "status": status})
            except (Conflict, NotFound):
                self.wake.set()
        for rs in self._list("replicasets"):
            m = rs["metadata"]
            try:
                out = deployments.sync_replicaset(rs, pods)
                ev = {**rs, "kind": "ReplicaSet", "apiVersion": "apps/v1"}
                for pod in out.create:
                    created = self.api.create("pods", m["namespace"], pod)
                    self.api.event(ev, "Normal", "SuccessfulCreate", f"Created pod: {created['metadata']['name']}",
                                   "replicaset-controller")
                for name in out.delete:
                    self.api.delete("pods", m["namespace"], name)
                    self.api.event(ev, "Normal", "SuccessfulDelete", f"Deleted pod: {name}", "replicaset-controller")
                if any((rs.get("status") or {}).get(k) != v for k, v in out.status.items()):
                    self.api.replace_status("replicasets", {**rs, "status": out.status})
            except (Conflict, NotFound):
                self.wake.set()

    @staticmethod
    def _keep_times(d: dict, status: dict) -> dict:
        """Unchanged conditions keep their lastUpdateTime: no status write per tick."""
        old = {c["type"]: c for c in (d.get("status") or {}).get("conditions") or []}
        for c in status["conditions"]:
            o = old.get(c["type"])
            if o and all(o.get(k) == c[k] for k in ("status", "reason", "message")):
                c["lastUpdateTime"] = o.get("lastUpdateTime", c["lastUpdateTime"])
        return status

    def tick(self) -> None:
        pods = self._list("pods")
        self.sync_deployments(pods)
        pods = self._list("pods")
        self.sync_jobs(self._list("jobs"), pods)
        pods = self._list("pods")
        self.schedule(pods)
        pods = self._list("pods")
        self.kubelet.sync([p for p in pods if p["spec"].get("nodeName") == self.node])
        self.kubelet.set_records(self.dns_records(pods, self._list("services")))

    def run(self) -> None:
        self.net.up()
        self.front = ApiFront(self.kubeconfig, self.net.gateway, self.root / "pki")
        self.front.start()
        self.kubelet.api_ca, self.kubelet.api_port = self.front.ca, self.front.port
        self.register_node()
        watchers = [threading.Thread(target=self.api.watch_forever, args=(kind, lambda e: self.wake.set(), self.stop),
                                     daemon=True) for kind in ("pods", "jobs", "services", "secrets", "configmaps", "deployments",
                                                   "replicasets")]
        for w in watchers:
            w.start()
        # written whole, then renamed: the test waits for the file and reads the address at once
        (self.root / "ready.tmp").write_text(self.net.gateway)
        os.replace(self.root / "ready.tmp", self.root / "ready")
        log.info("node %s ready: pods on %s, node address %s", self.node, self.net.net, self.net.gateway)
        last = 0.0
        while not self.stop.is_set():
            due = min(self.next_sync.values(), default=time.monotonic() + 2.0)
            self.wake.wait(max(0.0, min(2.0, due - time.monotonic())))
            self.wake.clear()
            time.sleep(max(0.0, 0.05 - (time.monotonic() - last)))  # coalesce bursts of events
            last = time.monotonic()
            try:
                self.tick()
            except Exception:
                log.exception("tick")
                time.sleep(0.5)

    def shutdown(self) -> None:
        self.stop.set()
        self.kubelet.shutdown()
        self.net.down()
        try:
            self.api.delete("nodes", None, self.node)
        except Exception:
            pass


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kubeconfig", required=True)
    ap.add_argument("--root", required=True, type=Path)
    ap.add_argument("--node", default="act-node-0")
    ap.add_argument("--gpus", type=int, default=0)
    ap.add_argument("--subnet", default=SUBNET)
    ap.add_argument("--images", required=True, type=Path,
                    help="the node's image store: an OCI image layout directory (make images exports .act/images)")
    ap.add_argument("--image-cache", default=IMAGE_CACHE, type=Path, help="where images are unpacked, once each")
    ap.add_argument("--namespace-selector", default="",
                    help="act only in namespaces with these labels (tests: leave other tests' objects alone)")
    a = ap.parse_args(argv)
    a.root.mkdir(parents=True, exist_ok=True)
    logging.basicConfig(filename=a.root / "agent.log", level=logging.INFO,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    lock = open(LOCK, "w")
    fcntl.flock(lock, fcntl.LOCK_EX)  # one agent per machine: the network names and subnet are fixed
    agent = Agent(a.kubeconfig, a.root, a.node, a.gpus, a.subnet, ImageStore(a.images, a.image_cache),
                  a.namespace_selector)
    signal.signal(signal.SIGTERM, lambda *_: agent.stop.set())
    signal.signal(signal.SIGINT, lambda *_: agent.stop.set())
    try:
        agent.run()
    finally:
        agent.shutdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
