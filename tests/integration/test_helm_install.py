"""The Helm chart installed into a real API server (kubelite), and the operator run exactly as
the rendered Deployment would (two replicas, kopf peering).

The API server is a private kubelite per module, so that the chart's crds/ are installed by
Helm itself (the session's kubelite already has the ACTJob CRD).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml
from helm_tool import (  # tests/ is on sys.path
    BAD_VALUES,
    CHART,
    NS,
    ROOT,
    helm,
    helm_binary,
    of_kind,
    sets,
    template,
)

from act_operator import __version__

pytestmark = pytest.mark.integration


# --- a real install ----------------------------------------------------------------------------


@contextlib.contextmanager
def kubelite(workdir: Path):
    """tests/kube.py's kubelite(), or the same through ../shared/kubelite/{up,down} directly."""
    try:
        from kube import kubelite as shared_kubelite  # tests/kube.py
    except ImportError:
        shared_kubelite = None
    if shared_kubelite is not None:
        with shared_kubelite(workdir) as kubeconfig:
            yield kubeconfig
        return
    bin_dir = Path(os.environ.get("ACT_SHARED_DIR") or ROOT.parent / "shared") / "kubelite"
    proc = subprocess.run([bin_dir / "up", workdir], check=False, capture_output=True, text=True)
    try:
        assert proc.returncode == 0, f"kubelite did not start:\n{proc.stderr[-3000:]}"
        yield proc.stdout.strip().splitlines()[-1].removeprefix("KUBECONFIG=")
    finally:
        subprocess.run([bin_dir / "down", workdir], check=False, capture_output=True)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A private kubelite; yields (kubeconfig, ApiClient)."""
    from kubernetes import config

    helm_binary()  # skip before starting anything if helm cannot be had
    with kubelite(tmp_path_factory.mktemp("kubelite-helm")) as kubeconfig:
        api = config.new_client_from_config(config_file=kubeconfig)
        try:
            yield kubeconfig, api
        finally:
            api.close()


@pytest.fixture(scope="module")
def release(cluster):
    kubeconfig, api = cluster
    proc = helm(
        "install",
        "act",
        str(CHART),
        "--namespace",
        NS,
        "--create-namespace",
        "--set",
        "stageServiceAccount.namespaces={ml}",
        kubeconfig=kubeconfig,
    )
    assert proc.returncode == 0, proc.stderr
    assert "kubectl -n NS apply -f examples/alfworld-qwen3-8b.yaml" in proc.stdout  # NOTES.txt
    return api


def test_install_creates_the_operator(release):
    from kubernetes import client

    apps, core, rbac = (
        client.AppsV1Api(release),
        client.CoreV1Api(release),
        client.RbacAuthorizationV1Api(release),
    )
    deploy = apps.read_namespaced_deployment("act-act-operator", NS)
    c = deploy.spec.template.spec.containers[0]
    assert c.image == f"ghcr.io/act-operator/operator:{__version__}"
    env = {e.name: e.value for e in c.env}
    assert env["ACT_STAGE_SERVICE_ACCOUNT"] == "act-stage" and env["ACT_PORT"] == "8080"
    assert c.liveness_probe.http_get.path == "/healthz" and c.liveness_probe.http_get.port == "health"
    assert c.readiness_probe.http_get.path == "/healthz"
    assert c.security_context.read_only_root_filesystem is True
    assert c.security_context.allow_privilege_escalation is False
    assert c.security_context.capabilities.drop == ["ALL"]
    assert c.security_context.run_as_non_root is True
    assert deploy.spec.template.spec.security_context.seccomp_profile.type == "RuntimeDefault"

    assert core.read_namespaced_service_account("act-act-operator", NS)
    stage = core.read_namespaced_service_account("act-stage", "ml")
    assert stage.automount_service_account_token is False
    assert core.read_namespaced_service("act-act-operator-metrics", NS).spec.ports[0].port == 8080

    role = rbac.read_cluster_role("act-act-operator")
    installed = {
        (g, r, v) for rule in role.rules for g in rule.api_groups for r in rule.resources for v in rule.verbs
    }
    (rendered,) = [d for d in of_kind(template("stageServiceAccount.namespaces={ml}", crds=False), "ClusterRole")
                   if d["metadata"]["name"] == "act-act-operator"]  # not the roles for people
    assert installed == {
        (g, r, v)
        for rule in rendered["rules"]
        for g in rule["apiGroups"]
        for r in rule["resources"]
        for v in rule["verbs"]
    }
    binding = rbac.read_cluster_role_binding("act-act-operator")
    assert binding.subjects[0].name == "act-act-operator" and binding.subjects[0].namespace == NS


def test_install_creates_the_crds_from_the_chart(release):
    from kubernetes import client

    ext = client.ApiextensionsV1Api(release)
    served = json.loads(
        ext.read_custom_resource_definition("actjobs.act-operator.io", _preload_content=False).data
    )
    conditions = {c["type"]: c["status"] for c in served["status"]["conditions"]}
    assert conditions.get("Established") == "True"
    want = yaml.safe_load((ROOT / "crds" / "actjob.yaml").read_text())
    for key in ("group", "names", "scope", "versions"):
        assert served["spec"][key] == want["spec"][key], (
            f"the installed CRD's spec.{key} differs from crds/actjob.yaml"
        )
    for name in ("clusterkopfpeerings.kopf.dev", "kopfpeerings.kopf.dev"):
        assert ext.read_custom_resource_definition(name).spec.group == "kopf.dev"


def test_examples_are_accepted_by_the_installed_crd(release):
    """examples/ through the API server itself: the chart's CRD (schema + CEL) and strict fields."""
    from kubernetes import client

    job = yaml.safe_load((ROOT / "examples" / "alfworld-qwen3-8b.yaml").read_text())
    objects, core = client.CustomObjectsApi(release), client.CoreV1Api(release)
    ns = job["metadata"]["namespace"]
    created = objects.create_namespaced_custom_object(
        "act-operator.io", "v1alpha1", ns, "actjobs", job, field_validation="Strict"
    )
    try:
        assert created["spec"]["stages"]["judge"]["nodes"] == 2
    finally:
        objects.delete_namespaced_custom_object(
            "act-operator.io", "v1alpha1", ns, "actjobs", job["metadata"]["name"]
        )
    for secret in yaml.safe_load_all((ROOT / "examples" / "secrets.yaml").read_text()):
        core.create_namespaced_secret(secret["metadata"]["namespace"], secret, field_validation="Strict")
        core.delete_namespaced_secret(secret["metadata"]["name"], secret["metadata"]["namespace"])


def test_install_with_bad_values_fails_and_installs_nothing(cluster):
    kubeconfig, _api = cluster
    for values, message in BAD_VALUES[:2]:
        proc = helm(
            "install",
            "bad",
            str(CHART),
            "--namespace",
            "bad",
            "--create-namespace",
            *sets(values),
            kubeconfig=kubeconfig,
        )
        assert proc.returncode != 0 and message in proc.stderr, proc.stderr
    assert helm("status", "bad", "--namespace", "bad", kubeconfig=kubeconfig).returncode != 0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=2) as rsp:
            return rsp.status, rsp.read().decode()
    except OSError:
        return 0, ""


@contextlib.contextmanager
def operator_process(command: list[str], env: dict[str, str], log: Path):
    """The operator as a local process (its own session, stopped with SIGTERM like a pod)."""
    run_env = {k: v for k, v in os.environ.items() if not k.startswith(("ACT_", "KOPF_"))}
    run_env.update(env, PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    with open(log, "w") as out:
        proc = subprocess.Popen(
            command, env=run_env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        yield proc
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def wait_for(what: str, check, proc, log: Path, timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        result = check()
        if result:
            return result
        time.sleep(0.3)
    pytest.fail(f"{what} (operator exit code {proc.poll()}):\n{log.read_text()[-3000:]}")


def test_the_rendered_command_runs_the_operator_with_peering(cluster):
    """Install a second release (namespace scope, 2 replicas: kopf peering), then start two
    replicas locally with exactly the Deployment's command, args and env: kopf accepts the
    flags, /healthz and /metrics answer, each replica registers in the KopfPeering the chart
    created, and the older one pauses in favour of the newer one (hot standby)."""
    from kubernetes import client

    kubeconfig, api = cluster
    # kopf only watches namespaces that exist (kubelite would accept objects in any)
    client.CoreV1Api(api).create_namespace({"metadata": {"name": "act-smoke"}})
    values = ("rbac.scope=namespace", "watchNamespaces={act-smoke}", "replicaCount=2", "mlflow.trackingUri=")
    proc = helm(
        "install",
        "smoke",
        str(CHART),
        "--namespace",
        "act-smoke-system",
        "--create-namespace",
        *sets(values),
        kubeconfig=kubeconfig,
    )
    assert proc.returncode == 0, proc.stderr
    deploy = client.AppsV1Api(api).read_namespaced_deployment("smoke-act-operator", "act-smoke-system")
    c = api.sanitize_for_serialization(deploy.spec.template.spec.containers[0])
    assert c["command"][:2] == ["/bin/sh", "-c"]
    objects = client.CustomObjectsApi(api)

    def peers():
        return (
            objects.get_namespaced_custom_object(
                "kopf.dev", "v1", "act-smoke", "kopfpeerings", "smoke-act-operator"
            ).get("status")
            or {}
        )

    def replica(pod: str, workdir: Path):
        """The container's command line and env, with this pod's name and free local ports."""
        health, metrics = free_port(), free_port()
        env = {e["name"]: e["value"] for e in c["env"] if "value" in e}
        env.update(
            POD_ID=pod, ACT_PORT=str(metrics), KUBECONFIG=kubeconfig, HOME=str(workdir), TMPDIR=str(workdir)
        )
        args = [
            f"--liveness=http://0.0.0.0:{health}/healthz" if a.startswith("--liveness=") else a
            for a in c["args"]
        ]
        return c["command"] + args, env, health, metrics

    work = Path(kubeconfig).parent
    cmd_a, env_a, health_a, metrics_a = replica("smoke-act-operator-a", work)
    log_a, log_b = work / "operator-a.log", work / "operator-b.log"
    with operator_process(cmd_a, env_a, log_a) as a:
        wait_for("no /healthz", lambda: get(f"http://127.0.0.1:{health_a}/healthz")[0] == 200, a, log_a)
        code, text = get(f"http://127.0.0.1:{metrics_a}/metrics")
        assert code == 200 and "act_reconcile_seconds" in text
        wait_for("not registered as a peer", lambda: "smoke-act-operator-a" in peers(), a, log_a)
        assert "Pausing" not in log_a.read_text()

        cmd_b, env_b, health_b, _ = replica("smoke-act-operator-b", work)
        with operator_process(cmd_b, env_b, log_b) as b:
            wait_for("no /healthz", lambda: get(f"http://127.0.0.1:{health_b}/healthz")[0] == 200, b, log_b)
            both = wait_for("both replicas not registered", lambda: len(peers()) == 2 and peers(), b, log_b)
            assert (
                both["smoke-act-operator-b"]["priority"] > both["smoke-act-operator-a"]["priority"] > 10**12
            )
            wait_for(
                "the older replica did not pause",
                lambda: "Pausing operations in favour of" in log_a.read_text(),
                a,
                log_a,
            )
            assert "Pausing" not in log_b.read_text()
