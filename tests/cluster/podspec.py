"""What the kubelet derives from a Pod before and after running it, pure (no I/O): the
container environment, $(VAR) expansion, the volume plan, the hosts file, the termination
message and the Pod status. Lookups of Secrets and ConfigMaps are passed in as functions.

Messages are the kubelet's (pkg/kubelet/kubelet_pods.go, volume plugins, kuberuntime).
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable
from datetime import datetime

Lookup = Callable[[str, str], dict | None]  # (kind "secret"|"configmap", name) -> object or None
ENV_NAME = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")
MAX_MESSAGE = 4096  # bytes read from terminationMessagePath
LOG_TAIL_LINES, LOG_TAIL_BYTES = 80, 2048  # FallbackToLogsOnError
DEFAULT_MESSAGE_PATH = "/dev/termination-log"


class ConfigError(Exception):
    """The kubelet cannot make the container's config: CreateContainerConfigError."""


class MountError(Exception):
    """A volume cannot be set up: the pod stays ContainerCreating with a FailedMount event."""


# --- $(VAR) expansion (third_party/forked/golang/expansion) ----------------------------------

def expand(text: str, env: dict[str, str]) -> str:
    """$(VAR) -> its value if defined, else left as is; $$ -> $; $$(VAR) -> $(VAR)."""
    out, i = [], 0
    while i < len(text):
        if text[i] == "$" and i + 1 < len(text):
            nxt = text[i + 1]
            if nxt == "$":
                out.append("$")
                i += 2
                continue
            if nxt == "(":
                end = text.find(")", i + 2)
                if end >= 0:
                    name = text[i + 2:end]
                    out.append(env.get(name, f"$({name})"))
                    i = end + 1
                    continue
                out.append("$(")
                i += 2
                continue
            out.append("$" + nxt)
            i += 2
            continue
        out.append(text[i])
        i += 1
    return "".join(out)


# --- environment (makeEnvironmentVariables) --------------------------------------------------

def _field(pod: dict, path: str, host_ip: str, pod_ip: str) -> str:
    meta, spec = pod["metadata"], pod.get("spec") or {}
    m = re.fullmatch(r"metadata\.(labels|annotations)\['(.+)'\]", path)
    if m:
        return (meta.get(m.group(1)) or {}).get(m.group(2), "")
    values = {"metadata.name": meta["name"], "metadata.namespace": meta.get("namespace", "default"),
              "metadata.uid": meta.get("uid", ""), "spec.nodeName": spec.get("nodeName", ""),
              "spec.serviceAccountName": spec.get("serviceAccountName", "default"),
              "status.hostIP": host_ip, "status.hostIPs": host_ip, "status.podIP": pod_ip, "status.podIPs": pod_ip}
    if path not in values:
        raise ConfigError(f'unsupported fieldPath: "{path}"')
    return values[path]


def _data(obj: dict) -> dict[str, str]:
    """A ConfigMap's data, or a Secret's decoded data."""
    if obj.get("kind") == "Secret":
        out = {k: base64.b64decode(v).decode() for k, v in (obj.get("data") or {}).items()}
        return {**out, **(obj.get("stringData") or {})}
    return {**(obj.get("data") or {})}


def _ref(lookup: Lookup, ns: str, kind: str, ref: dict) -> tuple[dict[str, str] | None, str]:
    name, optional = ref.get("name", ""), bool(ref.get("optional"))
    obj = lookup(kind, name)
    if obj is None:
        if optional:
            return None, name
        raise ConfigError(f'{kind} "{name}" not found')
    return _data(obj), name


def container_env(pod: dict, container: dict, lookup: Lookup, host_ip: str, pod_ip: str,
                  image_env: dict[str, str]) -> dict[str, str]:
    """The process environment: the image's, then envFrom, then env (each value expanded
    against what came before), as the kubelet builds it. Raises ConfigError."""
    ns = pod["metadata"].get("namespace", "default")
    env: dict[str, str] = {}
    for src in container.get("envFrom") or []:
        kind, key = ("configmap", "configMapRef") if "configMapRef" in src else ("secret", "secretRef")
        data, _ = _ref(lookup, ns, kind, src.get(key) or {})
        for k, v in (data or {}).items():
            name = src.get("prefix", "") + k
            if ENV_NAME.match(name):
                env[name] = v
    for e in container.get("env") or []:
        name, vf = e["name"], e.get("valueFrom")
        if vf is None:
            env[name] = expand(e.get("value", ""), env)
        elif "fieldRef" in vf:
            env[name] = _field(pod, vf["fieldRef"]["fieldPath"], host_ip, pod_ip)
        elif "secretKeyRef" in vf or "configMapKeyRef" in vf:
            kind, ref = ("secret", vf["secretKeyRef"]) if "secretKeyRef" in vf else ("configmap", vf["configMapKeyRef"])
            data, obj_name = _ref(lookup, ns, kind, ref)
            if data is None:
                continue
            if ref["key"] not in data:
                if ref.get("optional"):
                    continue
                raise ConfigError(f"couldn't find key {ref['key']} in {'Secret' if kind == 'secret' else 'ConfigMap'} "
                                  f"{ns}/{obj_name}")
            env[name] = data[ref["key"]]
        else:
            raise ConfigError(f"unsupported valueFrom for {name}: {sorted(vf)}")
    return {**image_env, **env}


# --- volumes ---------------------------------------------------------------------------------

def volume_plan(pod: dict, lookup: Lookup) -> dict[str, dict]:
    """name -> {"kind": "files"|"emptyDir"|"tmpfs"|"hostPath", "files": {path: (bytes, mode)}, ...}.
    Raises MountError with the kubelet's FailedMount message."""
    plan = {}
    for v in (pod.get("spec") or {}).get("volumes") or []:
        name = v["name"]
        prefix = f'MountVolume.SetUp failed for volume "{name}" : '
        if "configMap" in v or "secret" in v:
            kind, src = ("configmap", v["configMap"]) if "configMap" in v else ("secret", v["secret"])
            obj_name = src.get("name") or src.get("secretName", "")
            obj = lookup(kind, obj_name)
            if obj is None:
                if src.get("optional"):
                    plan[name] = {"kind": "files", "files": {}}
                    continue
                raise MountError(f'{prefix}{kind} "{obj_name}" not found')
            data, mode = _data(obj), src.get("defaultMode", 0o644)
            items = src.get("items")
            if items:
                files = {}
                for it in items:
                    if it["key"] not in data:
                        if src.get("optional"):
                            continue
                        raise MountError(f"{prefix}{kind} references non-existent config key: {it['key']}")
                    files[it["path"]] = (data[it["key"]].encode(), it.get("mode", mode))
            else:
                files = {k: (val.encode(), mode) for k, val in data.items()}
            plan[name] = {"kind": "files", "files": files}
        elif "emptyDir" in v:
            medium = (v["emptyDir"] or {}).get("medium", "")
            plan[name] = {"kind": "tmpfs" if medium == "Memory" else "emptyDir",
                          "size": (v["emptyDir"] or {}).get("sizeLimit")}
        elif "hostPath" in v:
            plan[name] = {"kind": "hostPath", "path": v["hostPath"]["path"], "type": v["hostPath"].get("type", "")}
        else:
            kinds = sorted(k for k in v if k != "name") or ["none"]
            raise MountError(f"{prefix}volume type {', '.join(kinds)} is not supported by the test node agent")
    return plan


# --- hosts file (kubelet managed /etc/hosts, plus what cluster DNS would answer) -------------

def hosts_file(pod: dict, pod_ip: str, records: list[tuple[str, str, str, str]], domain: str = "cluster.local") -> str:
    """`records`: (namespace, hostname, subdomain, ip) of pods behind headless Services."""
    ns, spec = pod["metadata"].get("namespace", "default"), pod.get("spec") or {}
    hostname = spec.get("hostname") or pod["metadata"]["name"][:63]
    lines = ["# Kubernetes-managed hosts file (test node agent).", "127.0.0.1\tlocalhost", "::1\tlocalhost ip6-localhost"]
    if spec.get("subdomain"):
        lines.append(f"{pod_ip}\t{hostname}.{spec['subdomain']}.{ns}.svc.{domain}\t{hostname}")
    else:
        lines.append(f"{pod_ip}\t{hostname}")
    lines.append("# what cluster DNS would answer for headless Services")
    for rns, rhost, rsub, rip in sorted(records):
        names = [f"{rhost}.{rsub}.{rns}.svc.{domain}", f"{rhost}.{rsub}.{rns}.svc", f"{rhost}.{rsub}.{rns}"]
        if rns == ns:  # the search path <ns>.svc.<domain> makes the short form resolve
            names.append(f"{rhost}.{rsub}")
        lines.append(f"{rip}\t" + " ".join(names))
    return "\n".join(lines) + "\n"


def resolv_conf(namespace: str, domain: str = "cluster.local") -> str:
    return (f"search {namespace}.svc.{domain} svc.{domain} {domain}\n"
            "nameserver 127.0.0.1\noptions ndots:5 attempts:1 timeout:1\n")


# --- termination message -----------------------------------------------------------------------

def termination_message(file_text: bytes, log: bytes, exit_code: int, policy: str) -> str:
    msg = file_text[:MAX_MESSAGE]
    if not msg.strip() and policy == "FallbackToLogsOnError" and exit_code != 0:
        lines = log.splitlines(keepends=True)[-LOG_TAIL_LINES:]
        msg = b"".join(lines)[-LOG_TAIL_BYTES:]
    return msg.decode(errors="replace")


# --- pod status --------------------------------------------------------------------------------

def ts(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def _cond(type_: str, ok: bool, now: str, reason: str | None = None, message: str | None = None) -> dict:
    c = {"type": type_, "status": "True" if ok else "False", "lastProbeTime": None, "lastTransitionTime": now}
    if reason:
        c["reason"] = reason
    if message:
        c["message"] = message
    return c


def pod_status(pod: dict, *, now: datetime, phase: str, container_state: dict, sandbox: bool, host_ip: str,
               pod_ip: str | None, started: str, image_id: str = "", ready: bool | None = None,
               restart_count: int = 0, last_state: dict | None = None) -> dict:
    """The status the kubelet writes, keeping conditions it does not own (PodScheduled,
    DisruptionTarget) and the lastTransitionTime of conditions whose status did not change."""
    old = {c["type"]: c for c in (pod.get("status") or {}).get("conditions") or []}
    t = ts(now)
    c0 = (pod["spec"]["containers"] or [{}])[0]
    running = "running" in container_state
    ready = running if ready is None else running and ready
    done = phase in ("Succeeded", "Failed")
    new = [_cond("PodReadyToStartContainers", sandbox, t), _cond("Initialized", True, t)]
    if ready:
        new += [_cond("Ready", True, t), _cond("ContainersReady", True, t)]
    else:
        reason = "PodCompleted" if done else "ContainersNotReady"
        msg = None if done else f"containers with unready status: [{c0.get('name')}]"
        new += [_cond("Ready", False, t, reason, msg), _cond("ContainersReady", False, t, reason, msg)]
    for c in new:
        if c["type"] in old and old[c["type"]]["status"] == c["status"]:
            c["lastTransitionTime"] = old[c["type"]].get("lastTransitionTime", t)
    conditions = new + [c for k, c in old.items() if k not in {n["type"] for n in new}]
    cs = {"name": c0.get("name"), "image": c0.get("image", ""), "imageID": image_id, "ready": ready,
          "restartCount": restart_count, "started": running, "state": container_state}
    if last_state:
        cs["lastState"] = last_state
    if "running" in container_state or "terminated" in container_state:
        cs["containerID"] = container_state.get("containerID") or ""
    status = {"phase": phase, "conditions": conditions, "hostIP": host_ip, "hostIPs": [{"ip": host_ip}],
              "startTime": started, "containerStatuses": [cs], "qosClass": qos_class(pod)}
    if pod_ip:
        status["podIP"], status["podIPs"] = pod_ip, [{"ip": pod_ip}]
    return status


def qos_class(pod: dict) -> str:
    res = [c.get("resources") or {} for c in pod["spec"].get("containers") or []]
    if not any(r.get("requests") or r.get("limits") for r in res):
        return "BestEffort"
    guaranteed = all((r.get("limits") or {}).get(k) and (r.get("requests") or {}).get(k, (r.get("limits") or {})[k])
                     == r["limits"][k] for r in res for k in ("cpu", "memory"))
    return "Guaranteed" if guaranteed else "Burstable"


def gpu_request(pod: dict) -> int:
    """nvidia.com/gpu asked by the pod (limits imply requests)."""
    total = 0
    for c in pod["spec"].get("containers") or []:
        r = c.get("resources") or {}
        total += int((r.get("limits") or {}).get("nvidia.com/gpu") or (r.get("requests") or {}).get("nvidia.com/gpu") or 0)
    return total
