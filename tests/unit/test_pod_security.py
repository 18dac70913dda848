"""Every Pod the operator can create passes the Pod Security Standards "restricted" profile, and so
does the chart's operator pod; the test cluster's node agent runs a stage pod with no more
privilege than its spec asks for (no capabilities, no_new_privs, a non-root uid).

The profile's rules are pod_security.restricted_problems (tests/), a pure reading of the upstream
rule list; the first test shows it catches each rule's breach, so that a pass means something.
"""

from __future__ import annotations

import copy
import subprocess
from pathlib import Path

import pytest
import yaml
from helm_tool import helm_binary  # tests/ is on sys.path
from pod_security import restricted_problems
from test_manifests import SETTINGS, make_job

from act_operator import manifests as M

ROOT = Path(__file__).resolve().parents[2]
GANG = {"nodes": 2, "processesPerNode": 4, "batchSize": 4, "resources": {"gpus": 4}}

# ACTJobs that between them render every kind of pod: each stage (warm-up, collect, judge, policy
# rl/il/online-rl, eval, the preflight), sharded, multi-process and multi-node gangs, GPUs and
# /dev/shm, the vLLM server, env from Secrets/ConfigMaps/fields, custom image and ServiceAccount,
# scheduling and Kueue, and a GGUF preflight
JOBS = {
    "defaults": {},
    "everything": {
        "stages": {"warmup": {"enabled": True, "resources": {"gpus": 1}},
                   "collect": {"shards": 4, "engine": "vllm", "resources": {"gpus": 1}},
                   "judge": {**GANG, "rollout": {"engine": "vllm", "mode": "server", "serverGpus": 2}},
                   "policy": {"method": "rl", "processesPerNode": 2, "resources": {"gpus": 2}},
                   "eval": {"shards": 2, "resources": {"cpu": "4", "memory": "8Gi"}}},
        "storage": {"root": "s3://bucket/act", "s3": {"credentialsSecret": "team-s3"}},
        "tracking": {"credentialsSecret": "team-mlflow"},
        "pod": {"image": "registry.example/trainer:1", "serviceAccountName": "team-stage",
                "nodeSelector": {"gpu": "h100"},
                "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
                "env": [{"name": "HF_TOKEN", "valueFrom": {"secretKeyRef": {"name": "hf", "key": "token"}}},
                        {"name": "NCCL_SOCKET_IFNAME", "value": "eth0"},
                        {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}]},
        "scheduling": {"schedulerName": "volcano", "priorityClassName": "high", "queueName": "team-q"},
    },
    "policy-il": {"stages": {"policy": {"method": "il", "nodes": 2, "processesPerNode": 2, "resources": {"gpus": 2}}}},
    "online-rl": {"stages": {"policy": {"method": "online-rl", "nodes": 2, "resources": {"gpus": 1}}}},
    "gguf": {"model": {"uri": "s3://bucket/models/smollm2.Q4_1.gguf"}},
}


def pods_of(objects: list[dict]) -> list[tuple[str, dict]]:
    """(name, pod template spec) of every object that makes pods: the operator makes only Jobs."""
    assert {o["kind"] for o in objects} <= {"ConfigMap", "Service", "Job"}
    return [(o["metadata"]["name"], o["spec"]["template"]["spec"]) for o in objects if o["kind"] == "Job"]


def all_pods() -> list[tuple[str, dict]]:
    out = []
    for label, spec in JOBS.items():
        job = make_job(name=label, **spec)
        out += pods_of(M.all_stage_objects(job, SETTINGS))
        for stage in ("judge", "policy"):  # the replay of stages whose tracking went offline
            st = job.status.stages[stage]
            st.phase, st.outputs.uri, st.tracking_offline = "Succeeded", f"s3://bucket/act/{stage}", True
        job.status.mlflow.run_id = "parent"
        out += pods_of(M.stage_objects(job, "replay", 1, SETTINGS))
    return out


PODS = all_pods()


def test_the_check_catches_each_rule():
    name, good = next(p for p in PODS if p[0] == "everything-judge-1")
    assert restricted_problems(good) == []
    breaches = {
        "hostNetwork": lambda p, c: p.update(hostNetwork=True),
        "hostPID": lambda p, c: p.update(hostPID=True),
        "hostIPC": lambda p, c: p.update(hostIPC=True),
        "hostPath": lambda p, c: p["volumes"].append({"name": "h", "hostPath": {"path": "/"}}),
        "restricted volume type": lambda p, c: p["volumes"].append({"name": "n", "nfs": {"server": "s", "path": "/"}}),
        "privileged": lambda p, c: c["securityContext"].update(privileged=True),
        "allowPrivilegeEscalation": lambda p, c: c["securityContext"].pop("allowPrivilegeEscalation"),
        "drop does not include ALL": lambda p, c: c["securityContext"]["capabilities"].update(drop=["NET_RAW"]),
        "only NET_BIND_SERVICE": lambda p, c: c["securityContext"]["capabilities"].update(add=["CHOWN"]),
        "capabilities.add": lambda p, c: c["securityContext"]["capabilities"].update(add=["SYS_ADMIN"]),
        "runAsNonRoot": lambda p, c: p["securityContext"].pop("runAsNonRoot"),
        "securityContext.runAsUser=0": lambda p, c: p["securityContext"].update(runAsUser=0),
        "seccompProfile unset": lambda p, c: p["securityContext"].pop("seccompProfile"),
        "seccompProfile.type=Unconfined": lambda p, c: c["securityContext"].update(
            seccompProfile={"type": "Unconfined"}),
        "hostPort": lambda p, c: c.setdefault("ports", []).append({"containerPort": 80, "hostPort": 80}),
        "procMount": lambda p, c: c["securityContext"].update(procMount="Unmasked"),
        "sysctls": lambda p, c: p["securityContext"].update(sysctls=[{"name": "kernel.msgmax", "value": "1"}]),
        "seLinuxOptions": lambda p, c: c["securityContext"].update(seLinuxOptions={"type": "spc_t"}),
        "appArmorProfile": lambda p, c: p["securityContext"].update(appArmorProfile={"type": "Unconfined"}),
        "hostProcess": lambda p, c: p["securityContext"].update(windowsOptions={"hostProcess": True}),
    }
    for rule, breach in breaches.items():
        pod = copy.deepcopy(good)
        breach(pod, pod["containers"][0])
        found = restricted_problems(pod)
        assert any(rule in p for p in found), (rule, found)
    ok = copy.deepcopy(good)  # what restricted still allows
    ok["containers"][0]["securityContext"]["capabilities"]["add"] = ["NET_BIND_SERVICE"]
    ok["securityContext"]["sysctls"] = [{"name": "net.ipv4.ip_local_port_range", "value": "1024 65535"}]
    ok["securityContext"]["seccompProfile"] = {"type": "Localhost", "localhostProfile": "p.json"}
    assert restricted_problems(ok) == []


def test_every_pod_the_operator_renders_is_restricted():
    names = {name for name, _ in PODS}
    # every kind of pod is among them (a new kind of Job is checked once it is listed in JOBS)
    for expected in ("defaults-preflight-1", "everything-warmup-1", "defaults-collect-1", "defaults-judge-1",
                     "defaults-policy-1", "defaults-eval-1", "defaults-replay-1", "everything-judge-1-vllm",
                     "gguf-preflight-1", "online-rl-policy-1", "policy-il-policy-1"):
        assert expected in names, (expected, sorted(names))
    failing = {name: problems for name, pod in PODS if (problems := restricted_problems(pod))}
    assert failing == {}


def test_the_operator_deployment_is_restricted():
    proc = subprocess.run([helm_binary(), "template", "act", str(ROOT / "charts" / "act-operator"),
                           "--namespace", "act-system"], capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    (deploy,) = [d for d in yaml.safe_load_all(proc.stdout) if d and d["kind"] == "Deployment"]
    template = deploy["spec"]["template"]
    assert restricted_problems(template["spec"], template["metadata"].get("annotations")) == []


AGENT_PODS = PODS[:8] + [p for p in PODS if p[0].endswith("-vllm")]


@pytest.mark.parametrize("name,pod", AGENT_PODS, ids=[name for name, _ in AGENT_PODS])
def test_the_node_agent_runs_a_stage_pod_with_no_more_privilege_than_it_asks(name, pod):
    """tests/cluster's kubelet turns the container into an OCI config as containerd would: every
    capability dropped, no_new_privs, the pod's non-root uid."""
    from cluster.ocispec import Image, resolve_user, runtime_config

    container = pod["containers"][0]
    manifest = {"metadata": {"name": name, "namespace": "team"}, "spec": pod}
    user = resolve_user(manifest, container, Image(name="trainer", digest="sha256:0", user="1000"), "", "")
    cfg = runtime_config(argv=container["command"], env={}, cwd="/", user=user, hostname=name, netns="/proc/1/ns/net",
                         mounts=[], container=container)
    process = cfg["process"]
    assert process["user"]["uid"] == 1000 and process["user"]["gid"] == 1000
    assert process["noNewPrivileges"] is True
    assert all(caps == [] for caps in process["capabilities"].values()), process["capabilities"]
