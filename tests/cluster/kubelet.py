"""The kubelet of the test node: runs each Pod bound to the node as local processes, one
worker thread per Pod, in the Pod's own network, mount and UTS namespaces (launch.py), and
writes the Pod status as the kubelet does.

Pod directory: <root>/pods/<namespace>_<name>_<uid>/ holding <container>.log (the container
log: kubelite has no logs endpoint), <container>.pid, termination-log, volumes/ and hosts.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from . import podspec
from .api import SMP, Api, NotFound, now
from .hostfs import RootMountPoints
from .netns import PREFIX, Network

log = logging.getLogger("kubelet")
LAUNCH = str(Path(__file__).with_name("launch.py"))
GRACE_FINALIZER = "node-agent.test/graceful-deletion"  # stands in for the API server's graceful pod deletion
RETRY = 2.0  # seconds between retries of a Pod the kubelet cannot start yet


def grace_period(pod: dict) -> float:
    """kubelite deletes with deletionGracePeriodSeconds 0 (it has no graceful pod deletion):
    the pod's terminationGracePeriodSeconds applies unless a larger period was asked."""
    asked = pod["metadata"].get("deletionGracePeriodSeconds") or 0
    return max(asked, pod["spec"].get("terminationGracePeriodSeconds", 30))


class PodWorker(threading.Thread):
    def __init__(self, kubelet: Kubelet, pod: dict):
        super().__init__(daemon=True, name=f"pod-{pod['metadata']['name']}")
        self.k, self.pod = kubelet, pod
        m = pod["metadata"]
        self.ns, self.name, self.uid = m.get("namespace", "default"), m["name"], m["uid"]
        self.dir = kubelet.root / "pods" / f"{self.ns}_{self.name}_{self.uid}"
        self.netns = f"{PREFIX}-{self.uid.replace('-', '')[:12]}"
        self.container = pod["spec"]["containers"][0]
        self.cname = self.container.get("name", "main")
        self.ip: str | None = None
        self.proc: subprocess.Popen | None = None
        self.stop_grace: float | None = None  # set when the pod is being deleted
        self.stopped = threading.Event()
        self.gone = False  # the Pod no longer exists: no more status writes
        self.started = podspec.ts(now())
        self.done = False
        self.hosts_path = self.dir / "hosts"

    # --- requests from the agent ---------------------------------------------------------------
    def terminate(self, grace: float, gone: bool = False) -> None:
        self.gone = self.gone or gone
        if self.stop_grace is None:
            self.stop_grace = grace
            self.stopped.set()

    # --- status --------------------------------------------------------------------------------
    def post(self, phase: str, state: dict, sandbox: bool) -> None:
        if self.gone:
            return
        try:
            self.pod = self.k.api.get("pods", self.ns, self.name)
            if self.pod["metadata"]["uid"] != self.uid:
                self.gone = True
                return
            status = podspec.pod_status(self.pod, now=now(), phase=phase, container_state=state, sandbox=sandbox,
                                        host_ip=self.k.host_ip, pod_ip=self.ip, started=self.started)
            self.pod = self.k.api.patch("pods", self.ns, self.name, {"status": status}, sub="status")
        except NotFound:
            self.gone = True

    def event(self, type_: str, reason: str, message: str) -> None:
        key = (self.uid, reason, message)
        if key not in self.k.sent_events:
            self.k.sent_events.add(key)
            self.k.api.event({**self.pod, "kind": "Pod"}, type_, reason, message, "kubelet", self.k.node)

    def lookup(self, kind: str, name: str) -> dict | None:
        try:
            obj = self.k.api.get("secrets" if kind == "secret" else "configmaps", self.ns, name)
        except NotFound:
            return None
        obj.setdefault("kind", "Secret" if kind == "secret" else "ConfigMap")
        return obj

    # --- the pod's life ------------------------------------------------------------------------
    def run(self) -> None:
        try:
            self._run()
        except Exception:
            log.exception("pod %s/%s", self.ns, self.name)
            self.post("Failed", {"terminated": {"exitCode": 128, "reason": "StartError",
                                                "message": "the test node agent failed to run the pod",
                                                "startedAt": self.started, "finishedAt": podspec.ts(now())}}, False)
        finally:
            if self.ip:
                self.k.net.remove(self.netns)
                self.ip = None
            self.k.mountpoints.release(self.uid)
            self.k.hosts_changed()
            self.k.release(self)
            self.done = True

    def _wait_until(self, attempt) -> object | None:
        """Call attempt() until it returns a value, or None if the pod is stopped meanwhile."""
        while not self.stopped.is_set():
            result = attempt()
            if result is not None:
                return result
            self.stopped.wait(RETRY)
        return None

    def _volumes(self):
        try:
            return podspec.volume_plan(self.pod, self.lookup)
        except podspec.MountError as e:
            self.event("Warning", "FailedMount", str(e))
            return None

    def _config(self):
        try:
            env = podspec.container_env(self.pod, self.container, self.lookup, self.k.host_ip, self.ip,
                                        self.k.image_env)
            env.setdefault("HOSTNAME", self.pod["spec"].get("hostname") or self.name[:63])
            return env, podspec.command_line(self.container, env)
        except podspec.ConfigError as e:
            self.post("Pending", {"waiting": {"reason": "CreateContainerConfigError", "message": str(e)}}, True)
            self.event("Warning", "Failed", f"Error: {e}")
            return None

    def _run(self) -> None:
        creating = {"waiting": {"reason": "ContainerCreating"}}
        self.post("Pending", creating, False)
        plan = self._wait_until(self._volumes)
        if plan is None:
            return self._never_started()
        self.dir.mkdir(parents=True, exist_ok=True)
        self.ip = self.k.net.add(self.netns)
        self.post("Pending", creating, True)
        config = self._wait_until(self._config)
        if config is None:
            return self._never_started()
        env, argv = config
        spec = self._write_files(plan, env, argv)
        self.event("Normal", "Pulled", f'Container image "{self.container.get("image", "")}" already present on machine')
        logf = open(self.dir / f"{self.cname}.log", "ab")
        started = podspec.ts(now())
        self.proc = subprocess.Popen(
            ["ip", "netns", "exec", self.netns, "unshare", "--mount", "--uts", "--propagation", "private",
             sys.executable, "-I", LAUNCH, str(spec)],
            stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT, start_new_session=True)
        logf.close()
        (self.dir / f"{self.cname}.pid").write_text(str(self.proc.pid))
        self.event("Normal", "Created", f"Created container: {self.cname}")
        self.event("Normal", "Started", f"Started container {self.cname}")
        self.k.hosts_changed()
        self.post("Running", {"running": {"startedAt": started}}, True)
        while self.proc.poll() is None:
            if self.stopped.wait(0.1):
                self._kill()
                break
        code = self.proc.wait()
        code = 128 - code if code < 0 else code
        self._killpg(signal.SIGKILL)  # pid 1 of a container gone: everything in it goes
        err = self.dir / "start-error"
        term = {"exitCode": code, "startedAt": started, "finishedAt": podspec.ts(now()),
                "containerID": f"agent://{self.proc.pid}"}
        if err.exists() and code == 128:
            term.update(reason="StartError", message=err.read_text())
        else:
            term["reason"] = "Completed" if code == 0 else "Error"
            msg = podspec.termination_message(
                (self.dir / "termination-log").read_bytes(), (self.dir / f"{self.cname}.log").read_bytes(),
                code, self.container.get("terminationMessagePolicy", "File"))
            if msg:
                term["message"] = msg
        self.post("Succeeded" if code == 0 else "Failed", {"terminated": term}, False)
        self._unhold()

    def _never_started(self) -> None:
        """Stopped before its container ran (deleted while Pending)."""
        self.post("Failed", {"terminated": {
            "exitCode": 137, "reason": "ContainerStatusUnknown",
            "message": "The container could not be located when the pod was terminated",
            "startedAt": None, "finishedAt": podspec.ts(now())}}, False)
        self._unhold()

    def _unhold(self) -> None:
        if self.gone:
            return
        try:
            self.k.api.patch("pods", self.ns, self.name, {"metadata": {
                "$deleteFromPrimitiveList/finalizers": [GRACE_FINALIZER]}}, content_type=SMP)
        except NotFound:
            pass

    def _killpg(self, sig) -> None:
        try:
            os.killpg(self.proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    def _kill(self) -> None:
        """SIGTERM, then SIGKILL after the grace period, as the container runtime does."""
        self.event("Normal", "Killing", f"Stopping container {self.cname}")
        self._killpg(signal.SIGTERM)
        deadline = time.monotonic() + (self.stop_grace or 0)
        while self.proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        self._killpg(signal.SIGKILL)

    def _write_files(self, plan: dict, env: dict, argv: list[str]) -> Path:
        mounts = []
        vols = self.dir / "volumes"
        for name, v in plan.items():
            d = vols / name
            if v["kind"] == "files":
                d.mkdir(parents=True, exist_ok=True)
                for rel, (data, mode) in v["files"].items():
                    f = d / rel
                    f.parent.mkdir(parents=True, exist_ok=True)
                    f.write_bytes(data)
                    f.chmod(mode)
            elif v["kind"] == "emptyDir":
                d.mkdir(parents=True, exist_ok=True)
                d.chmod(0o777)
            elif v["kind"] == "hostPath" and v["type"] in ("DirectoryOrCreate", ""):
                Path(v["path"]).mkdir(parents=True, exist_ok=True)
        for vm in self.container.get("volumeMounts") or []:
            v = plan.get(vm["name"])
            if v is None:
                raise RuntimeError(f"volumeMount {vm['name']} names no volume")
            target = vm["mountPath"]
            if v["kind"] == "tmpfs":
                mounts.append({"kind": "tmpfs", "target": target, "size": v.get("size")})
            else:
                src = v["path"] if v["kind"] == "hostPath" else str(vols / vm["name"])
                if vm.get("subPath"):
                    src = os.path.join(src, vm["subPath"])
                mounts.append({"kind": "bind", "source": src, "target": target, "file": Path(src).is_file()})
            mounts[-1]["readOnly"] = bool(vm.get("readOnly"))
        self.write_hosts()
        (self.dir / "resolv.conf").write_text(podspec.resolv_conf(self.ns))
        (self.dir / "termination-log").write_bytes(b"")
        mounts += [{"kind": "bind", "source": str(self.hosts_path), "target": "/etc/hosts", "file": True},
                   {"kind": "bind", "source": str(self.dir / "resolv.conf"), "target": "/etc/resolv.conf", "file": True},
                   {"kind": "bind", "source": str(self.dir / "termination-log"), "file": True,
                    "target": self.container.get("terminationMessagePath") or podspec.DEFAULT_MESSAGE_PATH}]
        (self.dir / "scratch").mkdir(exist_ok=True)
        workdir = self.dir / "workdir"  # the image's WORKDIR: private to this container, as on a cluster
        workdir.mkdir(exist_ok=True)
        self.k.mountpoints.acquire(self.uid, [m["target"] for m in mounts])
        spec = {"hostname": self.pod["spec"].get("hostname") or self.name[:63],
                "cwd": self.container.get("workingDir") or str(workdir), "argv": argv, "env": env, "mounts": mounts,
                "error_file": str(self.dir / "start-error"), "scratch": str(self.dir / "scratch")}
        path = self.dir / "launch.json"
        path.write_text(json.dumps(spec))
        path.chmod(0o600)  # it holds the Secret values of the environment
        return path

    def write_hosts(self) -> None:
        if self.ip:
            text = podspec.hosts_file(self.pod, self.ip, self.k.records)
            # in place (same inode): the file is bind-mounted into the running pod
            with open(self.hosts_path, "a+") as f:
                f.seek(0)
                if f.read() != text:
                    f.seek(0)
                    f.truncate()
                    f.write(text)


class Kubelet:
    def __init__(self, api: Api, node: str, net: Network, root: Path, image_env: dict[str, str]):
        self.api, self.node, self.net, self.root = api, node, net, root
        self.host_ip = net.gateway
        self.image_env = image_env
        self.workers: dict[str, PodWorker] = {}
        self.finished: set[str] = set()  # uids this kubelet ran to the end
        self.sent_events: set = set()
        self.records: list[tuple[str, str, str, str]] = []
        self.lock = threading.Lock()
        self.on_change = lambda: None
        self.mountpoints = RootMountPoints()
        self.mountpoints.cleanup_leftovers()

    def hosts_changed(self) -> None:
        self.on_change()

    def release(self, w: PodWorker) -> None:
        with self.lock:
            self.workers.pop(w.uid, None)
            self.finished.add(w.uid)

    def sync(self, pods: list[dict]) -> None:
        """Pods bound to this node: start new ones, stop deleted ones."""
        seen = set()
        for pod in pods:
            m = pod["metadata"]
            uid = m["uid"]
            seen.add(uid)
            with self.lock:
                w = self.workers.get(uid)
            if w is not None:
                if m.get("deletionTimestamp"):
                    w.terminate(grace_period(pod))
                continue
            if uid in self.finished or (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
                self._unhold(pod)
                continue
            if (pod.get("status") or {}).get("phase") == "Running":  # ran under an earlier agent: lost
                self._lost(pod)
                continue
            if GRACE_FINALIZER not in (m.get("finalizers") or []):
                try:
                    pod = self.api.patch("pods", m.get("namespace"), m["name"],
                                         {"metadata": {"finalizers": [GRACE_FINALIZER]}},
                                         content_type=SMP)
                except NotFound:
                    continue
            w = PodWorker(self, pod)
            with self.lock:
                self.workers[uid] = w
            if m.get("deletionTimestamp"):
                w.terminate(0)
            w.start()
        with self.lock:
            orphans = [w for uid, w in self.workers.items() if uid not in seen]
        for w in orphans:  # deleted from the API server without waiting for us
            w.terminate(0, gone=True)

    def _unhold(self, pod: dict) -> None:
        m = pod["metadata"]
        if GRACE_FINALIZER in (m.get("finalizers") or []) and m["uid"] not in self.workers:
            try:
                self.api.patch("pods", m.get("namespace"), m["name"], {"metadata": {
                    "$deleteFromPrimitiveList/finalizers": [GRACE_FINALIZER]}},
                    content_type=SMP)
            except NotFound:
                pass

    def _lost(self, pod: dict) -> None:
        w = PodWorker(self, pod)
        w.post("Failed", {"terminated": {"exitCode": 137, "reason": "Error", "finishedAt": podspec.ts(now()),
                                         "message": "the node agent restarted: the container is gone"}}, False)
        self.finished.add(w.uid)
        self._unhold(pod)

    def set_records(self, records: list[tuple[str, str, str, str]]) -> None:
        if records != self.records:
            self.records = records
            with self.lock:
                workers = list(self.workers.values())
            for w in workers:
                w.write_hosts()

    def running_ips(self) -> dict[str, str]:
        with self.lock:
            return {uid: w.ip for uid, w in self.workers.items() if w.ip}

    def shutdown(self) -> None:
        with self.lock:
            workers = list(self.workers.values())
        for w in workers:
            w.terminate(0)
        for w in workers:
            w.join(timeout=10)
        shutil.rmtree(self.root / "pods" / ".tmp", ignore_errors=True)
