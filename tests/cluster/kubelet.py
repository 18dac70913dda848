"""The kubelet of the test node: runs each Pod bound to the node in containers from its image
(images.py: the node's image store, an overlayfs layer per container) under runc, in the Pod's
own network namespace, one worker thread per Pod, and writes the Pod status as the kubelet does.

Pod directory: <root>/pods/<namespace>_<name>_<uid>/ holding <container>.log (the container
log: kubelite has no logs endpoint), <container>.pid (the container's init, as the host sees
it), termination-log, volumes/, hosts, resolv.conf and the runc bundle <container>/.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import shutil
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

from . import ocispec, podspec
from .api import SMP, Api, NotFound, now
from .images import ImageNotFound, ImageStore, mount_overlay, unmount
from .netns import PREFIX, Network

log = logging.getLogger("kubelet")
GRACE_FINALIZER = "node-agent.test/graceful-deletion"  # stands in for the API server's graceful pod deletion
RETRY = 2.0  # seconds between retries of a Pod the kubelet cannot start yet
PULL_BACKOFF = (10.0, 300.0)  # the kubelet's image pull back-off: 10 s, doubled, at most 5 min
RESTART_BACKOFF = (10.0, 300.0)  # and its restart back-off (CrashLoopBackOff)
RUNC_ROOT = "/run/act-node-agent/runc"
SA_PATH = "/var/run/secrets/kubernetes.io/serviceaccount"


def grace_period(pod: dict) -> float:
    """kubelite deletes with deletionGracePeriodSeconds 0 (it has no graceful pod deletion):
    the pod's terminationGracePeriodSeconds applies unless a larger period was asked."""
    asked = pod["metadata"].get("deletionGracePeriodSeconds") or 0
    return max(asked, pod["spec"].get("terminationGracePeriodSeconds", 30))


def runc(*args: str, check: bool = False) -> subprocess.CompletedProcess:
    return subprocess.run(["runc", "--root", RUNC_ROOT, *args], capture_output=True, text=True, check=check)


class Probes:
    """httpGet readiness and liveness probes, run by the kubelet from the node (it reaches the pod
    IP over the bridge); the only kind the chart's Deployment uses."""

    def __init__(self, container: dict, ip: str | None):
        self.ip, self.t0 = ip, time.monotonic()
        ports = {p.get("name"): p["containerPort"] for p in container.get("ports") or []}
        self.specs = {}
        for kind in ("readinessProbe", "livenessProbe"):
            spec = container.get(kind)
            if spec and "httpGet" in spec:
                port = spec["httpGet"]["port"]
                self.specs[kind] = {**spec, "url": f"http://{ip}:{ports.get(port, port)}{spec['httpGet'].get('path', '/')}",
                                    "next": self.t0 + spec.get("initialDelaySeconds", 0), "fails": 0, "ok": False}
        self.ready = "readinessProbe" not in self.specs

    def _check(self, s: dict) -> str | None:
        try:
            with urllib.request.urlopen(s["url"], timeout=s.get("timeoutSeconds", 1)) as r:
                return None if 200 <= r.status < 400 else f"HTTP probe failed with statuscode: {r.status}"
        except urllib.error.HTTPError as e:
            return f"HTTP probe failed with statuscode: {e.code}"
        except OSError as e:
            return f'Get "{s["url"]}": {e}'

    def tick(self) -> tuple[bool, str | None]:
        """(ready, why the liveness probe failed its threshold or None)."""
        unhealthy = None
        for kind, s in self.specs.items():
            if time.monotonic() < s["next"]:
                continue
            s["next"] = time.monotonic() + s.get("periodSeconds", 10)
            why = self._check(s)
            s["fails"] = 0 if why is None else s["fails"] + 1
            if why is None:
                s["ok"] = True
            elif s["fails"] >= s.get("failureThreshold", 3):
                s["ok"] = False
                if kind == "livenessProbe":
                    unhealthy, s["fails"] = why, 0
        if "readinessProbe" in self.specs:
            self.ready = self.specs["readinessProbe"]["ok"]
        return self.ready, unhealthy


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
        self.cid = f"{self.uid.replace('-', '')[:12]}-{self.cname}"  # the runc container id
        self.bundle = self.dir / self.cname
        self.image: ocispec.Image | None = None
        self.image_id = ""
        self.ready = False  # the readiness probe's verdict (running, where there is none)
        self.restarts = 0
        self.last_state: dict | None = None
        self.ip: str | None = None
        self.proc: subprocess.Popen | None = None
        self.init_pid: int | None = None
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
                                        host_ip=self.k.host_ip, pod_ip=self.ip, started=self.started,
                                        image_id=self.image_id, ready=self.ready, restart_count=self.restarts,
                                        last_state=self.last_state)
            self.pod = self.k.api.patch("pods", self.ns, self.name, {"status": status}, sub="status")
        except NotFound:
            self.gone = True

    def event(self, type_: str, reason: str, message: str, once: bool = True) -> None:
        key = (self.uid, reason, message)
        if not once or key not in self.k.sent_events:
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
            self._remove_container()
            if self.ip:
                self.k.net.remove(self.netns)
                self.ip = None
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

    def _pull(self) -> ocispec.Image | None:
        """The image from the node's store; a missing one is ErrImagePull, then ImagePullBackOff
        for the back-off, then another try, as the kubelet's image manager does."""
        ref = self.container.get("image", "")
        backoff = PULL_BACKOFF[0]
        while not self.stopped.is_set():
            self.event("Normal", "Pulling", f'Pulling image "{ref}"')
            try:
                image = self.k.images.resolve(ref)
            except ImageNotFound as e:
                self.post("Pending", {"waiting": {"reason": "ErrImagePull", "message": str(e)}}, True)
                self.event("Warning", "Failed", f'Failed to pull image "{ref}": {e}')
                self.event("Warning", "Failed", "Error: ErrImagePull")
                if self.stopped.wait(RETRY):
                    return None
                msg = f'Back-off pulling image "{ref}": ErrImagePull: {e}'
                self.post("Pending", {"waiting": {"reason": "ImagePullBackOff", "message": msg}}, True)
                self.event("Normal", "BackOff", f'Back-off pulling image "{ref}"')
                self.event("Warning", "Failed", "Error: ImagePullBackOff")
                if self.stopped.wait(backoff):
                    return None
                backoff = min(backoff * 2, PULL_BACKOFF[1])
                continue
            self.rootfs = self.k.images.rootfs(image)  # unpacked once per image
            self.image_id = f"{image.name.rsplit(':', 1)[0]}@{image.digest}"
            self.event("Normal", "Pulled", f'Container image "{ref}" already present on machine')
            return image
        return None

    def _config(self):
        try:
            env = podspec.container_env(self.pod, self.container, self.lookup, self.k.host_ip, self.ip,
                                        {**self.image.env_map(), **self.k.service_env()})
            env.setdefault("HOSTNAME", self.pod["spec"].get("hostname") or self.name[:63])
            user = ocispec.resolve_user(self.pod, self.container, self.image,
                                        ImageStore.read_etc(self.rootfs, "passwd"),
                                        ImageStore.read_etc(self.rootfs, "group"))
            seccomp = ocispec.seccomp_profile(self.pod, self.container)
            return env, ocispec.command_line(self.container, self.image, env), user, seccomp
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
        self.image = self._pull()
        if self.image is None:
            return self._never_started()
        backoff = RESTART_BACKOFF[0]
        while True:
            config = self._wait_until(self._config)  # again at each restart: env from Secrets may change
            if config is None:
                return self._never_started() if not self.restarts else self._unhold()
            self._write_bundle(plan, *config)
            term = self._run_container()
            policy = self.pod["spec"].get("restartPolicy", "Always")
            if self.stopped.is_set() or policy == "Never" or (policy == "OnFailure" and term["exitCode"] == 0):
                break
            # restarted in place after a back-off (the pod stays Running), as the kubelet does
            self._remove_container()
            self.restarts += 1
            self.last_state = {"terminated": term}
            who = f"{self.name}_{self.ns}({self.uid})"
            self.post("Running", {"waiting": {"reason": "CrashLoopBackOff", "message": f"back-off {backoff:.0f}s "
                                              f"restarting failed container={self.cname} pod={who}"}}, True)
            self.event("Warning", "BackOff", f"Back-off restarting failed container {self.cname} in pod {who}",
                       once=False)
            if self.stopped.wait(backoff):
                break
            backoff = min(backoff * 2, RESTART_BACKOFF[1])
        code = term["exitCode"]
        self.post("Succeeded" if code == 0 and self.init_pid else "Failed", {"terminated": term}, False)
        self._unhold()

    def _run_container(self) -> dict:
        """Start the container, probe it while it runs; its terminated state."""
        logf = open(self.dir / f"{self.cname}.log", "ab")
        started = podspec.ts(now())
        pid_file = self.bundle / "init.pid"
        pid_file.unlink(missing_ok=True)
        self.init_pid = None
        self.proc = subprocess.Popen(
            ["runc", "--root", RUNC_ROOT, "--log", str(self.bundle / "runc.log"), "--log-format", "json",
             "run", "--bundle", str(self.bundle), "--pid-file", str(pid_file), self.cid],
            stdin=subprocess.DEVNULL, stdout=logf, stderr=logf, start_new_session=True)
        logf.close()
        while self.proc.poll() is None and not pid_file.exists():
            time.sleep(0.02)
        if pid_file.exists():
            self.init_pid = int(pid_file.read_text().strip() or 0) or None
        probes = Probes(self.container, self.ip)
        running = {"running": {"startedAt": started}}
        if self.init_pid:
            (self.dir / f"{self.cname}.pid").write_text(str(self.init_pid))
            self.event("Normal", "Created", f"Created container: {self.cname}", once=False)
            self.event("Normal", "Started", f"Started container {self.cname}", once=False)
            self.k.hosts_changed()
            self.ready = probes.ready
            self.post("Running", running, True)
        while self.proc.poll() is None:
            if self.stopped.wait(0.1):
                self._kill()
                break
            ready, unhealthy = probes.tick()
            if ready != self.ready:
                self.ready = ready
                self.post("Running", running, True)
            if unhealthy:
                self.event("Warning", "Unhealthy", f"Liveness probe failed: {unhealthy}", once=False)
                self.event("Normal", "Killing", f"Container {self.cname} failed liveness probe, will be restarted",
                           once=False)
                self.stop_grace = grace_period(self.pod)
                self._kill()
                self.stop_grace = None
        code = self.proc.wait()
        self.ready = False
        term = {"exitCode": code, "startedAt": started, "finishedAt": podspec.ts(now()),
                "containerID": f"runc://{self.cid}"}
        if not self.init_pid:  # runc could not start the process (an exec error, a bad mount)
            term.update(exitCode=128, reason="StartError", message=self._runc_error())
            self.event("Warning", "Failed", f"Error: {term['message']}")
        else:
            term["reason"] = "Completed" if code == 0 else "Error"
            msg = podspec.termination_message(
                (self.dir / "termination-log").read_bytes(), (self.dir / f"{self.cname}.log").read_bytes(),
                code, self.container.get("terminationMessagePolicy", "File"))
            if msg:
                term["message"] = msg
        return term

    def _runc_error(self) -> str:
        """runc's last error, as containerd reports a failed start."""
        msg = "failed to start the container"
        try:
            for line in (self.bundle / "runc.log").read_text(errors="replace").splitlines():
                with_level = json.loads(line)
                if with_level.get("level") in ("error", "fatal"):
                    msg = with_level.get("msg", msg)
        except (OSError, ValueError):
            pass
        return f"failed to create containerd task: failed to create shim task: OCI runtime create failed: {msg}"

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

    def _signal(self, sig) -> None:
        """To the container's init (pid 1 in its PID namespace: it gets SIGTERM only if it handles
        it, as on a cluster); SIGKILL of init ends every process of the container."""
        if self.init_pid:
            try:
                os.kill(self.init_pid, sig)
            except (ProcessLookupError, PermissionError):
                pass

    def _kill(self) -> None:
        """SIGTERM, then SIGKILL after the grace period, as the container runtime does."""
        self.event("Normal", "Killing", f"Stopping container {self.cname}")
        self._signal(signal.SIGTERM)
        deadline = time.monotonic() + (self.stop_grace or 0)
        while self.proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        if self.proc.poll() is None:
            self._signal(signal.SIGKILL)
            runc("kill", self.cid, "KILL")

    def _remove_container(self) -> None:
        """The container and its writable layer go; its log, pid and termination files stay."""
        if self.proc is not None and self.proc.poll() is None:
            self._signal(signal.SIGKILL)
            self.proc.wait()
        runc("delete", "--force", self.cid)
        if (self.bundle / "rootfs").is_dir():
            unmount(self.bundle / "rootfs")
            shutil.rmtree(self.bundle / "upper", ignore_errors=True)
            shutil.rmtree(self.bundle / "work", ignore_errors=True)

    def _volume_dirs(self, plan: dict) -> None:
        """configMap/secret files and emptyDirs on the node; with fsGroup, owned by that group
        (set-gid directories, group-readable files, group-writable emptyDirs), as the kubelet's
        SetVolumeOwnership does."""
        fs_group = ((self.pod.get("spec") or {}).get("securityContext") or {}).get("fsGroup")
        vols = self.dir / "volumes"
        for name, v in plan.items():
            d = vols / name
            if v["kind"] == "files":
                d.mkdir(parents=True, exist_ok=True)
                for rel, (data, mode) in v["files"].items():
                    f = d / rel
                    f.parent.mkdir(parents=True, exist_ok=True)
                    f.write_bytes(data)
                    f.chmod(mode | (0o440 if fs_group is not None else 0))
            elif v["kind"] == "emptyDir":
                d.mkdir(parents=True, exist_ok=True)
                d.chmod(0o777)
            elif v["kind"] == "hostPath" and v["type"] in ("DirectoryOrCreate", ""):
                Path(v["path"]).mkdir(parents=True, exist_ok=True)
            if fs_group is not None and v["kind"] in ("files", "emptyDir"):
                for p in [d, *d.rglob("*")]:
                    os.chown(p, -1, int(fs_group))
                    if p.is_dir():
                        p.chmod(p.stat().st_mode | 0o2070)

    def _write_bundle(self, plan: dict, env: dict, argv: list[str], user: ocispec.User, seccomp: str | None) -> None:
        self._volume_dirs(plan)
        mounts = []
        for vm in self.container.get("volumeMounts") or []:
            v = plan.get(vm["name"])
            if v is None:
                raise RuntimeError(f"volumeMount {vm['name']} names no volume")
            if v["kind"] == "tmpfs":
                mounts.append(ocispec.Mount(target=vm["mountPath"], kind="tmpfs", size=v.get("size"),
                                            read_only=bool(vm.get("readOnly"))))
                continue
            src = v["path"] if v["kind"] == "hostPath" else str(self.dir / "volumes" / vm["name"])
            if vm.get("subPath"):
                src = os.path.join(src, vm["subPath"])
            mounts.append(ocispec.Mount(target=vm["mountPath"], source=src, read_only=bool(vm.get("readOnly"))))
        self.write_hosts()
        (self.dir / "resolv.conf").write_text(podspec.resolv_conf(self.ns))
        term_log = self.dir / "termination-log"
        term_log.write_bytes(b"")
        term_log.chmod(0o666)  # any container user writes its message
        mounts += [ocispec.Mount(target="/etc/hosts", source=str(self.hosts_path)),
                   ocispec.Mount(target="/etc/resolv.conf", source=str(self.dir / "resolv.conf")),
                   ocispec.Mount(target=self.container.get("terminationMessagePath") or podspec.DEFAULT_MESSAGE_PATH,
                                 source=str(term_log))]
        sa = self._service_account_volume()
        if sa:
            mounts.append(ocispec.Mount(target=SA_PATH, source=str(sa), read_only=True))
        self.bundle.mkdir(parents=True, exist_ok=True)
        mount_overlay(self.rootfs, self.bundle)
        config = ocispec.runtime_config(
            argv=argv, env=env, cwd=self.container.get("workingDir") or self.image.workdir, user=user,
            hostname=self.pod["spec"].get("hostname") or self.name[:63], netns=f"/var/run/netns/{self.netns}",
            mounts=mounts, container=self.container, seccomp=seccomp, machine=platform.machine())
        path = self.bundle / "config.json"
        path.write_text(json.dumps(config))
        path.chmod(0o600)  # it holds the Secret values of the environment

    def _service_account_volume(self) -> Path | None:
        """The ServiceAccount's API access (token, ca.crt, namespace) unless the pod or its
        ServiceAccount turns automountServiceAccountToken off (the admission plugin's projected
        volume; kubelite has no admission, so the kubelet adds it here)."""
        spec = self.pod["spec"]
        sa_name = spec.get("serviceAccountName") or "default"
        automount = spec.get("automountServiceAccountToken")
        if automount is None:
            try:
                automount = self.k.api.get("serviceaccounts", self.ns, sa_name).get("automountServiceAccountToken")
            except NotFound:
                automount = None
        if automount is False or self.k.api_ca is None:
            return None
        d = self.dir / "serviceaccount"
        d.mkdir(exist_ok=True)
        (d / "token").write_text(f"node-agent:{self.ns}:{sa_name}")  # not checked: kubelite authorizes nothing
        (d / "ca.crt").write_bytes(self.k.api_ca.read_bytes())
        (d / "namespace").write_text(self.ns)
        for f in d.iterdir():
            f.chmod(0o644)
        return d

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
    def __init__(self, api: Api, node: str, net: Network, root: Path, images: ImageStore):
        self.api, self.node, self.net, self.root = api, node, net, root
        self.host_ip = net.gateway
        self.images = images
        self.api_ca: Path | None = None  # the cluster CA of the API front, once it serves
        self.api_port = 443
        self.workers: dict[str, PodWorker] = {}
        self.finished: set[str] = set()  # uids this kubelet ran to the end
        self.sent_events: set = set()
        self.records: list[tuple[str, str, str, str]] = []
        self.lock = threading.Lock()
        self.on_change = lambda: None
        self.cleanup_leftovers()

    @staticmethod
    def cleanup_leftovers() -> None:
        """Containers and overlay mounts of an agent that was killed."""
        for c in json.loads(runc("list", "--format", "json").stdout or "null") or []:
            runc("delete", "--force", c["id"])
        with open("/proc/self/mountinfo") as f:
            for line in f:
                target = line.split()[4]
                if "/pods/" in target and target.endswith("/rootfs") and " overlay " in line:
                    unmount(Path(target))

    def service_env(self) -> dict[str, str]:
        """The `kubernetes` Service's variables, which the kubelet gives every container."""
        if self.api_ca is None:
            return {}
        host, port = self.host_ip, str(self.api_port)
        return {"KUBERNETES_SERVICE_HOST": host, "KUBERNETES_SERVICE_PORT": port,
                "KUBERNETES_SERVICE_PORT_HTTPS": port, "KUBERNETES_PORT": f"tcp://{host}:{port}",
                f"KUBERNETES_PORT_{port}_TCP": f"tcp://{host}:{port}", f"KUBERNETES_PORT_{port}_TCP_PROTO": "tcp",
                f"KUBERNETES_PORT_{port}_TCP_PORT": port, f"KUBERNETES_PORT_{port}_TCP_ADDR": host}

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
