"""What the test node's kubelet derives from a Pod, pure: env, $(VAR) expansion, volumes,
hosts file, termination message, status."""

from __future__ import annotations

import base64
from datetime import datetime

import pytest

from cluster import podspec

SECRET = {"kind": "Secret", "data": {"user": base64.b64encode(b"alice").decode()}}
CM = {"kind": "ConfigMap", "data": {"mode": "fast", "stage.json": "{}"}}


def lookup(kind, name):
    return {("secret", "creds"): SECRET, ("configmap", "cfg"): CM}.get((kind, name))


def pod(**spec):
    return {"metadata": {"name": "p-0-abcde", "namespace": "ns", "uid": "u1",
                         "labels": {"batch.kubernetes.io/job-completion-index": "0"},
                         "annotations": {"batch.kubernetes.io/job-completion-index": "0"}},
            "spec": {"containers": [{"name": "stage", "image": "img", "command": ["sh"]}], **spec}}


def test_expansion_like_the_kubelet():
    env = {"A": "1", "B": "x y"}
    assert podspec.expand("$(A)-$(B)", env) == "1-x y"
    assert podspec.expand("$(MISSING)", env) == "$(MISSING)"
    assert podspec.expand("$$(A) $$ $", env) == "$(A) $ $"
    assert podspec.expand("$(A", env) == "$(A"
    assert podspec.expand("--node_rank=$(JOB_COMPLETION_INDEX)", {"JOB_COMPLETION_INDEX": "1"}) == "--node_rank=1"


def test_env_from_value_secret_configmap_fieldref_in_order():
    c = {"name": "stage", "command": ["x"], "env": [
        {"name": "V", "value": "v"},
        {"name": "W", "value": "$(V)-w"},
        {"name": "U", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "user"}}},
        {"name": "O", "valueFrom": {"secretKeyRef": {"name": "nope", "key": "k", "optional": True}}},
        {"name": "M", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "mode"}}},
        {"name": "IX", "valueFrom": {"fieldRef": {
            "fieldPath": "metadata.annotations['batch.kubernetes.io/job-completion-index']"}}},
        {"name": "N", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}]}
    env = podspec.container_env(pod(), c, lookup, "10.0.0.1", "10.0.0.7", {"PATH": "/bin"})
    assert env == {"PATH": "/bin", "V": "v", "W": "v-w", "U": "alice", "M": "fast", "IX": "0", "N": "p-0-abcde",
                   "IP": "10.0.0.7"}


@pytest.mark.parametrize("ref, message", [
    ({"secretKeyRef": {"name": "missing", "key": "k"}}, 'secret "missing" not found'),
    ({"secretKeyRef": {"name": "creds", "key": "k"}}, "couldn't find key k in Secret ns/creds"),
    ({"configMapKeyRef": {"name": "missing", "key": "k"}}, 'configmap "missing" not found'),
    ({"configMapKeyRef": {"name": "cfg", "key": "k"}}, "couldn't find key k in ConfigMap ns/cfg"),
])
def test_missing_references_are_the_kubelets_config_errors(ref, message):
    c = {"name": "stage", "env": [{"name": "X", "valueFrom": ref}]}
    with pytest.raises(podspec.ConfigError, match=message):
        podspec.container_env(pod(), c, lookup, "", "", {})


def test_volumes_configmap_items_and_missing():
    p = pod(volumes=[{"name": "config", "configMap": {"name": "cfg", "items": [{"key": "stage.json", "path": "s.json"}]}},
                     {"name": "dshm", "emptyDir": {"medium": "Memory"}}, {"name": "scratch", "emptyDir": {}}])
    plan = podspec.volume_plan(p, lookup)
    assert plan["config"] == {"kind": "files", "files": {"s.json": (b"{}", 0o644)}}
    assert plan["dshm"]["kind"] == "tmpfs" and plan["scratch"]["kind"] == "emptyDir"
    with pytest.raises(podspec.MountError, match='MountVolume.SetUp failed for volume "c" : configmap "x" not found'):
        podspec.volume_plan(pod(volumes=[{"name": "c", "configMap": {"name": "x"}}]), lookup)
    with pytest.raises(podspec.MountError, match="not supported"):
        podspec.volume_plan(pod(volumes=[{"name": "c", "persistentVolumeClaim": {"claimName": "x"}}]), lookup)


def test_hosts_file_has_the_pod_and_headless_service_names():
    p = pod(hostname="j-1", subdomain="svc")
    text = podspec.hosts_file(p, "10.1.0.3", [("ns", "j-0", "svc", "10.1.0.2"), ("other", "k-0", "s", "10.1.0.9")])
    assert "10.1.0.3\tj-1.svc.ns.svc.cluster.local\tj-1" in text
    assert "10.1.0.2\tj-0.svc.ns.svc.cluster.local j-0.svc.ns.svc j-0.svc.ns j-0.svc\n" in text
    assert "10.1.0.9\tk-0.s.other.svc.cluster.local k-0.s.other.svc k-0.s.other\n" in text  # no short form


def test_termination_message_falls_back_to_the_log_tail_on_error_only():
    log = b"".join(b"line %d\n" % i for i in range(200))
    msg = podspec.termination_message(b"", log, 1, "FallbackToLogsOnError")
    assert msg.startswith("line 120\n") and msg.endswith("line 199\n")  # last 80 lines
    assert len(podspec.termination_message(b"", b"x" * 5000, 1, "FallbackToLogsOnError")) == 2048
    assert podspec.termination_message(b"", log, 0, "FallbackToLogsOnError") == ""
    assert podspec.termination_message(b"", log, 1, "File") == ""
    assert podspec.termination_message(b'{"ok": 1}', log, 1, "FallbackToLogsOnError") == '{"ok": 1}'


def test_status_keeps_conditions_the_kubelet_does_not_own():
    p = pod()
    p["status"] = {"conditions": [{"type": "PodScheduled", "status": "True", "lastTransitionTime": "t0"},
                                  {"type": "DisruptionTarget", "status": "True", "reason": "EvictionByEvictionAPI"}]}
    st = podspec.pod_status(p, now=datetime(2026, 1, 1), phase="Failed", sandbox=False, host_ip="h", pod_ip="i",
                            started="s", container_state={"terminated": {"exitCode": 143, "reason": "Error"}})
    types = [(c["type"], c["status"]) for c in st["conditions"]]
    assert types == [("PodReadyToStartContainers", "False"), ("Initialized", "True"), ("Ready", "False"),
                     ("ContainersReady", "False"), ("PodScheduled", "True"), ("DisruptionTarget", "True")]
    assert st["conditions"][2]["reason"] == "PodCompleted" and st["podIP"] == "i" and st["hostIP"] == "h"
    assert st["qosClass"] == "BestEffort"
