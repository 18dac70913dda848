"""The one-machine cluster, end to end through real kubectl: kubelite + the node agent run
Jobs as pods, each container from its image under runc in the pod's network namespace. The
pods here run the operator image (it has a Python; its user is uid 1000)."""

from __future__ import annotations

import json
import os
import signal
import textwrap

import pytest
import yaml

from cluster.client import image
from cluster.jobutil import TRACKING_FINALIZER
from cluster.kubectl import get, kubectl, pods_of, wait_for

pytestmark = pytest.mark.integration
IMAGE = image("operator")


def job_yaml(name: str, script: str, *, extra_spec: str = "", pod_spec: str = "", container: str = "",
             backoff: int = 0) -> str:
    """A Job running `python3 -c script`; the keyword arguments are YAML merged into the Job
    spec, the pod spec and the container. Returned as JSON (which kubectl reads as YAML)."""
    c = {"name": "main", "image": IMAGE, "command": ["python3", "-c", textwrap.dedent(script)],
         **(yaml.safe_load(container) or {})}
    pod = {"restartPolicy": "Never", "containers": [c], **(yaml.safe_load(pod_spec) or {})}
    spec = {"backoffLimit": backoff, "template": {"spec": pod}, **(yaml.safe_load(extra_spec) or {})}
    return json.dumps({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name}, "spec": spec})


def conditions(job: dict) -> list[tuple[str, str, str]]:
    return [(c["type"], c["status"], c.get("reason", "")) for c in job["status"].get("conditions", [])]


def test_plain_job_runs_and_completes(ns, node):
    kubectl("apply", "-n", ns, "-f", "-", stdin=job_yaml("hello", "import socket; print('hello from', socket.gethostname())"))
    kubectl("wait", "-n", ns, "--for=condition=Complete", "job/hello", "--timeout=60s")
    job = get("job", "hello", ns)
    assert conditions(job) == [("SuccessCriteriaMet", "True", "CompletionsReached"),
                               ("Complete", "True", "CompletionsReached")]
    assert job["status"]["succeeded"] == 1 and job["status"]["startTime"] and job["status"]["completionTime"]
    (pod,) = pods_of("hello", ns)
    assert pod["status"]["phase"] == "Succeeded"
    term = pod["status"]["containerStatuses"][0]["state"]["terminated"]
    assert term["exitCode"] == 0 and term["reason"] == "Completed"
    assert pod["metadata"]["ownerReferences"][0]["uid"] == job["metadata"]["uid"]
    assert TRACKING_FINALIZER not in pod["metadata"].get("finalizers", [])  # counted
    assert f"hello from {pod['metadata']['name']}" in node.log(ns, pod["metadata"]["name"])
    assert pod["status"]["podIP"].startswith("10.244.77.") and pod["status"]["hostIP"] == node.host_address
    assert json.loads(kubectl("get", "nodes", "-o", "json"))["items"][0]["status"]["allocatable"]["nvidia.com/gpu"] == "1"


SERVER_CLIENT = """
import os, socket, time
index = int(os.environ["JOB_COMPLETION_INDEX"])
me = socket.gethostname()
if index == 0:
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", 29500)); s.listen(1)
    conn, peer = s.accept()
    conn.sendall(f"{me} {conn.getsockname()[0]}".encode()); print("served", peer[0])
    conn.close()
else:
    for _ in range(200):
        try:
            c = socket.create_connection(("gang-0.gang-svc", 29500), timeout=2); break
        except OSError:
            time.sleep(0.1)
    print("got", c.recv(100).decode(), "as", me, socket.gethostbyname("gang-0.gang-svc"))
"""


def test_indexed_gang_reaches_pod_zero_by_its_dns_name(ns, node):
    svc = textwrap.dedent("""\
        apiVersion: v1
        kind: Service
        metadata: {name: gang-svc}
        spec:
          clusterIP: None
          publishNotReadyAddresses: true
          selector: {batch.kubernetes.io/job-name: gang}
          ports: [{name: rendezvous, port: 29500}]
        """)
    kubectl("apply", "-n", ns, "-f", "-", stdin=svc)
    kubectl("apply", "-n", ns, "-f", "-", stdin=job_yaml(
        "gang", SERVER_CLIENT, extra_spec="completionMode: Indexed\ncompletions: 2\nparallelism: 2\n",
        pod_spec="subdomain: gang-svc\n"))
    kubectl("wait", "-n", ns, "--for=condition=Complete", "job/gang", "--timeout=60s")
    p0, p1 = sorted(pods_of("gang", ns), key=lambda p: p["metadata"]["annotations"][
        "batch.kubernetes.io/job-completion-index"])
    assert p0["metadata"]["name"].startswith("gang-0-") and p0["spec"]["hostname"] == "gang-0"
    assert p0["status"]["podIP"] != p1["status"]["podIP"]
    line = node.log(ns, p1["metadata"]["name"]).strip()
    assert line == f"got gang-0 {p0['status']['podIP']} as gang-1 {p0['status']['podIP']}"
    assert node.log(ns, p0["metadata"]["name"]).strip() == f"served {p1['status']['podIP']}"
    assert get("job", "gang", ns)["status"]["completedIndexes"] == "0,1"


CONFIG_SCRIPT = """
import json, os
data = {k: os.environ.get(k) for k in ("USER_NAME", "MODE", "POD", "NS", "IX_ANNOT", "IP", "ARG", "OPT")}
data["file"] = open("/etc/act/stage.json").read()
try:
    open("/etc/act/x", "w"); data["readonly"] = False
except OSError:
    data["readonly"] = True
open("/scratch/f", "w").write("ok"); data["scratch"] = open("/scratch/f").read()
data["args"] = os.sys.argv[1:]
open("/dev/termination-log", "w").write(json.dumps(data))
"""


def test_env_volumes_and_termination_message(ns, node):
    kubectl("create", "secret", "generic", "creds", "-n", ns, "--from-literal=user=alice")
    kubectl("create", "configmap", "cfg", "-n", ns, "--from-literal=mode=fast", "--from-literal=stage.json={\"k\": 1}")
    container = textwrap.dedent("""\
        args: ["$(MODE)", "$$(MODE)"]
        env:
        - {name: USER_NAME, valueFrom: {secretKeyRef: {name: creds, key: user}}}
        - {name: OPT, valueFrom: {secretKeyRef: {name: nothing, key: x, optional: true}}}
        - {name: MODE, valueFrom: {configMapKeyRef: {name: cfg, key: mode}}}
        - {name: POD, valueFrom: {fieldRef: {fieldPath: metadata.name}}}
        - {name: NS, valueFrom: {fieldRef: {fieldPath: metadata.namespace}}}
        - {name: IX_ANNOT, valueFrom: {fieldRef: {fieldPath: "metadata.annotations['batch.kubernetes.io/job-completion-index']"}}}
        - {name: IP, valueFrom: {fieldRef: {fieldPath: status.podIP}}}
        - {name: ARG, value: "m=$(MODE)"}
        volumeMounts:
        - {name: config, mountPath: /etc/act, readOnly: true}
        - {name: scratch, mountPath: /scratch}
        terminationMessagePolicy: FallbackToLogsOnError
        """)
    pod_spec = textwrap.dedent("""\
        volumes:
        - {name: config, configMap: {name: cfg, items: [{key: stage.json, path: stage.json}]}}
        - {name: scratch, emptyDir: {}}
        """)
    kubectl("apply", "-n", ns, "-f", "-", stdin=job_yaml("cfg", CONFIG_SCRIPT, container=container, pod_spec=pod_spec,
                                                          extra_spec="completionMode: Indexed\ncompletions: 1\n"))
    kubectl("wait", "-n", ns, "--for=condition=Complete", "job/cfg", "--timeout=60s")
    (pod,) = pods_of("cfg", ns)
    msg = json.loads(pod["status"]["containerStatuses"][0]["state"]["terminated"]["message"])
    assert msg == {"USER_NAME": "alice", "MODE": "fast", "POD": pod["metadata"]["name"], "NS": ns, "IX_ANNOT": "0",
                   "IP": pod["status"]["podIP"], "ARG": "m=fast", "OPT": None, "file": '{"k": 1}',
                   "readonly": True, "scratch": "ok", "args": ["fast", "$(MODE)"]}
    assert not os.path.exists("/etc/act") and not os.path.exists("/scratch")  # the host's tree is untouched


def test_failing_container_reports_its_log_tail(ns, node):
    script = "import sys\nfor i in range(100): print('line', i)\nsys.exit(3)\n"
    kubectl("apply", "-n", ns, "-f", "-",
            stdin=job_yaml("bad", script, container="terminationMessagePolicy: FallbackToLogsOnError\n"))
    kubectl("wait", "-n", ns, "--for=condition=Failed", "job/bad", "--timeout=60s")
    job = get("job", "bad", ns)
    assert conditions(job) == [("FailureTarget", "True", "BackoffLimitExceeded"),
                               ("Failed", "True", "BackoffLimitExceeded")]
    assert job["status"]["failed"] == 1 and "completionTime" not in job["status"]
    (pod,) = pods_of("bad", ns)
    term = pod["status"]["containerStatuses"][0]["state"]["terminated"]
    assert (term["exitCode"], term["reason"], pod["status"]["phase"]) == (3, "Error", "Failed")
    assert term["message"] == "".join(f"line {i}\n" for i in range(20, 100))


def test_missing_secret_leaves_pod_pending_until_created(ns, node):
    container = "env:\n- {name: TOKEN, valueFrom: {secretKeyRef: {name: later, key: token}}}\n"
    kubectl("apply", "-n", ns, "-f", "-", stdin=job_yaml(
        "waits", "import os; print(os.environ['TOKEN'])", container=container))

    def waiting():
        pods = pods_of("waits", ns)
        cs = pods and (pods[0]["status"].get("containerStatuses") or [{}])[0].get("state", {}).get("waiting")
        return cs if cs and cs.get("reason") == "CreateContainerConfigError" else None

    state = wait_for(waiting, 30)
    assert state["message"] == 'secret "later" not found'
    (pod,) = pods_of("waits", ns)
    assert pod["status"]["phase"] == "Pending"
    events = json.loads(kubectl("get", "events", "-n", ns, "-o", "json"))["items"]
    assert ("Warning", "Failed", 'Error: secret "later" not found') in [
        (e["type"], e["reason"], e["message"]) for e in events if e["involvedObject"]["name"] == pod["metadata"]["name"]]
    kubectl("create", "secret", "generic", "later", "-n", ns, "--from-literal=token=s3cr3t")
    kubectl("wait", "-n", ns, "--for=condition=Complete", "job/waits", "--timeout=60s")
    assert node.log(ns, pod["metadata"]["name"]).strip() == "s3cr3t"


GANG_POLICY = """\
completionMode: Indexed
completions: 2
parallelism: 2
podFailurePolicy:
  rules:
  - action: FailJob
    onPodConditions: [{type: DisruptionTarget, status: "True"}]
  - action: FailJob
    onExitCodes: {containerName: main, operator: NotIn, values: [0]}
"""


def test_sigkill_of_a_pod_fails_the_job_per_its_pod_failure_policy(ns, node):
    kubectl("apply", "-n", ns, "-f", "-", stdin=job_yaml(
        "crash", "import time; print('up', flush=True); time.sleep(120)", extra_spec=GANG_POLICY,
        pod_spec="terminationGracePeriodSeconds: 2\n"))  # the other pod's python is pid 1: SIGTERM won't end it
    pods = wait_for(lambda: [p for p in pods_of("crash", ns) if p["status"].get("phase") == "Running"]
                    if len(pods_of("crash", ns)) == 2 else None, 30)
    victim = next(p for p in pods if p["spec"]["hostname"] == "crash-0")["metadata"]["name"]
    os.kill(node.pid(ns, victim), signal.SIGKILL)
    kubectl("wait", "-n", ns, "--for=condition=Failed", "job/crash", "--timeout=60s")
    job = get("job", "crash", ns)
    assert conditions(job) == [("FailureTarget", "True", "PodFailurePolicy"), ("Failed", "True", "PodFailurePolicy")]
    assert job["status"]["conditions"][1]["message"] == (
        f"Container main for pod {ns}/{victim} failed with exit code 137 matching FailJob rule at index 1")
    assert job["status"].get("active", 0) == 0 and job["status"]["terminating"] == 0
    dead = get("pod", victim, ns)
    assert dead["status"]["phase"] == "Failed"
    assert dead["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"] == 137
    assert [p["metadata"]["name"] for p in pods_of("crash", ns)] == [victim]  # the other was terminated and removed


def test_unschedulable_gpu_request_stays_pending(ns, node):
    container = "resources: {limits: {nvidia.com/gpu: 2}}\n"
    kubectl("apply", "-n", ns, "-f", "-", stdin=job_yaml("greedy", "print(1)", container=container))

    def unschedulable():
        pods = pods_of("greedy", ns)
        conds = pods and {c["type"]: c for c in pods[0]["status"].get("conditions", [])}
        return conds and conds.get("PodScheduled", {}).get("reason") == "Unschedulable" and conds["PodScheduled"]

    cond = wait_for(unschedulable, 30)
    assert cond["status"] == "False"
    assert cond["message"].startswith("0/1 nodes are available: 1 Insufficient nvidia.com/gpu.")
    (pod,) = pods_of("greedy", ns)
    assert pod["status"]["phase"] == "Pending" and not pod["spec"].get("nodeName")
    assert get("job", "greedy", ns)["status"]["active"] == 1


SHARD_POLICY = """\
podFailurePolicy:
  rules:
  - action: Ignore
    onPodConditions: [{type: DisruptionTarget, status: "True"}]
  - action: FailJob
    onExitCodes: {containerName: main, operator: NotIn, values: [0]}
"""

RESUMABLE = """
import os, signal, sys, time
mark = "/work-dir/started"
if os.path.exists(mark):
    print("second run"); sys.exit(0)
open(mark, "w").close()
signal.signal(signal.SIGTERM, lambda *a: (print("got SIGTERM", flush=True), sys.exit(143)))
print("first run", flush=True)
time.sleep(120)
"""


def test_evicted_pod_is_replaced_without_counting_as_a_failure(ns, node, tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)  # a hostPath is the node's: the image's user (uid 1000) needs it writable
    kubectl("apply", "-n", ns, "-f", "-", stdin=job_yaml(
        "shard", RESUMABLE, extra_spec=SHARD_POLICY,
        pod_spec=f"volumes: [{{name: w, hostPath: {{path: {shared}, type: DirectoryOrCreate}}}}]\n"
                 "terminationGracePeriodSeconds: 5\n",
        container="volumeMounts: [{name: w, mountPath: /work-dir}]\n"))
    first = wait_for(lambda: [p for p in pods_of("shard", ns) if p["status"].get("phase") == "Running"], 30)[0]
    node.pid(ns, first["metadata"]["name"])
    from kubernetes import config

    from cluster.client import disrupt
    disrupt(config.new_client_from_config(), ns, first["metadata"]["name"])
    kubectl("wait", "-n", ns, "--for=condition=Complete", "job/shard", "--timeout=60s")
    job = get("job", "shard", ns)
    assert job["status"]["succeeded"] == 1 and job["status"].get("failed", 0) == 0  # Ignore: not counted
    assert "got SIGTERM" in node.log(ns, first["metadata"]["name"])
    (second,) = pods_of("shard", ns)  # the evicted one is gone once terminated
    assert second["metadata"]["name"] != first["metadata"]["name"]
    assert node.log(ns, second["metadata"]["name"]).strip() == "second run"


def test_suspend_terminates_running_pods_and_resume_starts_new_ones(ns, node):
    kubectl("apply", "-n", ns, "-f", "-", stdin=job_yaml("pause", "import time; time.sleep(120)",
                                                          pod_spec="terminationGracePeriodSeconds: 1\n"))
    wait_for(lambda: [p for p in pods_of("pause", ns) if p["status"].get("phase") == "Running"], 30)
    kubectl("patch", "-n", ns, "job/pause", "--type=merge", "-p", '{"spec": {"suspend": true}}')
    kubectl("wait", "-n", ns, "--for=condition=Suspended", "job/pause", "--timeout=30s")
    wait_for(lambda: not pods_of("pause", ns), 30)  # terminated and removed
    job = get("job", "pause", ns)
    assert job["status"].get("active", 0) == 0 and conditions(job) == [("Suspended", "True", "JobSuspended")]
    kubectl("patch", "-n", ns, "job/pause", "--type=merge", "-p", '{"spec": {"suspend": false}}')
    wait_for(lambda: [p for p in pods_of("pause", ns) if p["status"].get("phase") == "Running"], 30)
    assert conditions(get("job", "pause", ns)) == [("Suspended", "False", "JobResumed")]


def test_active_deadline_fails_the_job(ns, node):
    kubectl("apply", "-n", ns, "-f", "-", stdin=job_yaml("slow", "import time; time.sleep(120)",
                                                          extra_spec="activeDeadlineSeconds: 2\n",
                                                          pod_spec="terminationGracePeriodSeconds: 1\n"))
    kubectl("wait", "-n", ns, "--for=condition=Failed", "job/slow", "--timeout=30s")
    job = get("job", "slow", ns)
    assert conditions(job) == [("FailureTarget", "True", "DeadlineExceeded"), ("Failed", "True", "DeadlineExceeded")]
    assert job["status"]["failed"] == 1 and job["status"]["terminating"] == 0


def test_missing_configmap_volume_stays_container_creating(ns, node):
    kubectl("apply", "-n", ns, "-f", "-", stdin=job_yaml(
        "novol", "print(open('/cfg/a').read())", pod_spec="volumes: [{name: c, configMap: {name: later}}]\n",
        container="volumeMounts: [{name: c, mountPath: /cfg}]\n"))

    def failed_mount():
        events = json.loads(kubectl("get", "events", "-n", ns, "-o", "json"))["items"]
        return [e for e in events if e["reason"] == "FailedMount"]

    (event,) = wait_for(failed_mount, 30)
    assert event["type"] == "Warning" and event["source"]["component"] == "kubelet"
    assert event["message"].endswith(': configmap "later" not found')
    (pod,) = pods_of("novol", ns)
    assert pod["status"]["phase"] == "Pending"
    assert pod["status"]["containerStatuses"][0]["state"]["waiting"]["reason"] == "ContainerCreating"
    kubectl("create", "configmap", "later", "-n", ns, "--from-literal=a=now")
    kubectl("wait", "-n", ns, "--for=condition=Complete", "job/novol", "--timeout=60s")
    assert node.log(ns, pod["metadata"]["name"]).strip() == "now"
    assert not os.path.exists("/cfg")  # the mount point is made in the container's own layer


def test_missing_service_account_refuses_pod_creation(ns, node):
    kubectl("apply", "-n", ns, "-f", "-", stdin=job_yaml("nosa", "print('ran')", pod_spec="serviceAccountName: runner\n"))

    def failed_create():
        events = json.loads(kubectl("get", "events", "-n", ns, "-o", "json"))["items"]
        return [e for e in events if e["reason"] == "FailedCreate"]

    event = wait_for(failed_create, 30)[0]
    assert event["message"] == ('Error creating: pods "nosa-" is forbidden: error looking up service account '
                                f'{ns}/runner: serviceaccount "runner" not found')
    assert not pods_of("nosa", ns)
    kubectl("create", "serviceaccount", "runner", "-n", ns)
    kubectl("wait", "-n", ns, "--for=condition=Complete", "job/nosa", "--timeout=60s")


def test_plain_pod_delete_is_no_disruption(ns, node):
    """`kubectl delete pod` is not an eviction: no DisruptionTarget, and the exit-code rule fails
    the Job, as on a cluster. The process is pid 1 of its container without a SIGTERM handler, so
    SIGTERM does not reach it: it is SIGKILLed after the grace period (137)."""
    kubectl("apply", "-n", ns, "-f", "-", stdin=job_yaml("del", "import time; time.sleep(120)",
                                                          extra_spec=SHARD_POLICY,
                                                          pod_spec="terminationGracePeriodSeconds: 1\n"))
    (pod,) = wait_for(lambda: [p for p in pods_of("del", ns) if p["status"].get("phase") == "Running"], 30)
    kubectl("delete", "pod", "-n", ns, pod["metadata"]["name"], "--wait=false")
    kubectl("wait", "-n", ns, "--for=condition=Failed", "job/del", "--timeout=30s")
    job = get("job", "del", ns)
    assert conditions(job) == [("FailureTarget", "True", "PodFailurePolicy"), ("Failed", "True", "PodFailurePolicy")]
    assert "failed with exit code 137 matching FailJob rule at index 1" in job["status"]["conditions"][1]["message"]


IN_IMAGE = """
import ctypes, json, os, sys, threading
data = {"uid": os.getuid(), "gid": os.getgid(), "groups": sorted(os.getgroups()), "home": os.environ.get("HOME"),
        "cwd": os.getcwd(), "python": sys.executable, "host_checkout": os.path.exists(%r),
        "secret": open("/creds/token").read()}
libc = ctypes.CDLL(None, use_errno=True)  # unshare(CLONE_NEWUSER): allowed to any user but for seccomp
data["unshare"] = "ok" if libc.unshare(0x10000000) == 0 else os.strerror(ctypes.get_errno())
data["seccomp"] = [line.split()[1] for line in open("/proc/self/status") if line.startswith("Seccomp:")][0]
t = threading.Thread(target=data.update, kwargs={"thread": "ran"})  # clone3 refused: glibc falls back to clone
t.start(); t.join()
for path in ("/x", "/scratch/x"):
    try:
        open(path, "w").close(); data[path] = "written"
    except OSError as e:
        data[path] = e.strerror
open("/dev/termination-log", "w").write(json.dumps(data))
"""


def test_a_pod_runs_as_its_user_in_its_image_with_a_read_only_root(ns, node):
    """uid 1000 from the image's USER, the image's filesystem (not the host's), the image's
    WORKDIR and HOME, readOnlyRootFilesystem, fsGroup making a 0440 Secret file readable, and the
    RuntimeDefault seccomp filter (unshare refused; threads still start)."""
    kubectl("create", "secret", "generic", "creds", "-n", ns, "--from-literal=token=t0k3n")
    container = textwrap.dedent("""\
        securityContext: {readOnlyRootFilesystem: true, allowPrivilegeEscalation: false, capabilities: {drop: [ALL]}}
        volumeMounts: [{name: creds, mountPath: /creds, readOnly: true}, {name: scratch, mountPath: /scratch}]
        """)
    pod_spec = textwrap.dedent("""\
        securityContext: {runAsNonRoot: true, fsGroup: 2000, seccompProfile: {type: RuntimeDefault}}
        volumes: [{name: creds, secret: {secretName: creds, defaultMode: 0440}}, {name: scratch, emptyDir: {}}]
        """)
    kubectl("apply", "-n", ns, "-f", "-", stdin=job_yaml(
        "img", IN_IMAGE % str(pytest.__file__), container=container, pod_spec=pod_spec))
    kubectl("wait", "-n", ns, "--for=condition=Complete", "job/img", "--timeout=60s")
    (pod,) = pods_of("img", ns)
    cs = pod["status"]["containerStatuses"][0]
    got = json.loads(cs["state"]["terminated"]["message"])
    assert got == {"uid": 1000, "gid": 1000, "groups": [1000, 2000], "home": "/tmp", "cwd": "/tmp",
                   "python": "/opt/venv/bin/python3", "host_checkout": False, "secret": "t0k3n",
                   "/x": "Read-only file system", "/scratch/x": "written",
                   "unshare": "Operation not permitted", "seccomp": "2", "thread": "ran"}
    assert cs["image"] == IMAGE and cs["imageID"].startswith(IMAGE.rsplit(":", 1)[0] + "@sha256:")


def test_args_replace_the_image_cmd_and_a_root_user_is_refused_under_run_as_non_root(ns, node):
    """No command: the image's ENTRYPOINT (kopf run ...) with the container's args instead of
    its CMD. runAsUser 0 under runAsNonRoot: CreateContainerConfigError, as the kubelet says it."""
    job = json.loads(job_yaml("entry", "", container="args: [--help]\n"))
    del job["spec"]["template"]["spec"]["containers"][0]["command"]
    kubectl("apply", "-n", ns, "-f", "-", stdin=json.dumps(job))
    root = job_yaml("root", "print(1)", pod_spec="securityContext: {runAsNonRoot: true, runAsUser: 0}\n")
    kubectl("apply", "-n", ns, "-f", "-", stdin=root)
    kubectl("wait", "-n", ns, "--for=condition=Complete", "job/entry", "--timeout=60s")
    (pod,) = pods_of("entry", ns)
    assert "Usage: kopf run [OPTIONS]" in node.log(ns, pod["metadata"]["name"])

    def refused():
        pods = pods_of("root", ns)
        w = pods and (pods[0]["status"].get("containerStatuses") or [{}])[0].get("state", {}).get("waiting")
        return w if w and w.get("reason") == "CreateContainerConfigError" else None

    w = wait_for(refused, 30)
    (pod,) = pods_of("root", ns)
    m = pod["metadata"]
    assert w["message"] == (f'container\'s runAsUser breaks non-root policy (pod: "{m["name"]}_{ns}({m["uid"]})", '
                            "container: main)")


def test_a_missing_image_backs_off(ns, node):
    missing = "ghcr.io/act-operator/nowhere:0"
    job = json.loads(job_yaml("noimg", "print(1)"))
    job["spec"]["template"]["spec"]["containers"][0]["image"] = missing
    kubectl("apply", "-n", ns, "-f", "-", stdin=json.dumps(job))

    def backing_off():
        pods = pods_of("noimg", ns)
        w = pods and (pods[0]["status"].get("containerStatuses") or [{}])[0].get("state", {}).get("waiting")
        return w if w and w.get("reason") == "ImagePullBackOff" else None

    w = wait_for(backing_off, 30)
    assert w["message"].startswith(f'Back-off pulling image "{missing}": ErrImagePull: failed to pull and unpack '
                                   f'image "{missing}": not found')
    events = json.loads(kubectl("get", "events", "-n", ns, "-o", "json"))["items"]
    assert {("Normal", "BackOff", f'Back-off pulling image "{missing}"'), ("Warning", "Failed", "Error: ErrImagePull")} <= {
        (e["type"], e["reason"], e["message"]) for e in events}
    assert get("job", "noimg", ns)["status"]["active"] == 1
