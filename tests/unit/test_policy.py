"""The platform's policy (chart values `policy`): the chart's ValidatingAdmissionPolicy, rendered by
`helm template` and its CEL evaluated in process with cel-python as the API server would, refuses
exactly what the operator's rule (act_operator.policy, fed the env the same rendering gives the
Deployment) refuses, with the same messages, for ACTJobs and ACTExperiments; and the policy is
rendered only when it restricts something. The operator's refusal on a cluster is
tests/integration/test_operator.py's."""

from __future__ import annotations

import functools
import itertools

import kubernetes_validate
import pytest
from helm_tool import CHART, env_of, helm, of_kind, sets, template  # tests/ is on sys.path

from act_operator import policy
from act_operator.api import PodSpec
from act_operator.settings import OperatorSettings

celpy = pytest.importorskip("celpy")

K8S = "1.36.0"
ACTJOB, EXPERIMENT = "act-act-operator-actjob-policy", "act-act-operator-actexperiment-policy"
RESTRICTED = ("policy.allowedImages={registry.example.com/ml/,ghcr.io/act-operator/trainer:,quay.io/team/act@,"
              "docker.io/library/busybox:1.36}", "policy.allowedServiceAccounts={team-s3}")
VALUES = {  # the policies the parity runs over
    "images-and-accounts": RESTRICTED,
    "stage-account-only": ("policy.stageServiceAccountOnly=true", "stageServiceAccount.name=runner"),
    "images-only": ("policy.allowedImages={registry.example.com/}",),
}
UNSET = "(unset)"  # the field left out; None is the field written as null
IMAGES = [UNSET, None, "", "registry.example.com/ml/act:1", "registry.example.com/ml-evil/act:1", "registry.example.com/ml",
          "registry.example.com/other/act:1", "ghcr.io/act-operator/trainer:0.1.0", "ghcr.io/act-operator/trainer",
          "ghcr.io/act-operator/trainer-evil:1", "quay.io/team/act@sha256:" + "a" * 64, "quay.io/team/act:1",
          "docker.io/library/busybox:1.36", "docker.io/library/busybox:1.36.1", "busybox:1.36", "evil.io/x:1"]
ACCOUNTS = [UNSET, None, "", "act-stage", "runner", "team-s3", "default", "admin"]


@functools.cache
def rendered(values: tuple[str, ...]) -> list[dict]:
    return template(*values, crds=False)


def settings_of(docs: list[dict], monkeypatch) -> OperatorSettings:
    """The operator's settings from the env the chart gives its Deployment."""
    for name, e in env_of(docs).items():
        if name.startswith("ACT_"):
            monkeypatch.setenv(name, e["value"])
    return OperatorSettings()


# --- the API server's side, in process ----------------------------------------------------------

@functools.cache
def _program(expr: str):
    env = celpy.Environment()
    return env.program(env.compile(expr))


def _eval(expr: str, activation: dict):
    return _program(expr).evaluate(activation)


def admission(vap: dict, obj: dict, old: dict | None = None) -> list[str]:
    """What the ValidatingAdmissionPolicy `vap` says of creating `obj` (updating `old` to it): the
    message of each validation it fails, [] when it admits it. Variables are evaluated in order,
    each seeing the ones before (`variables.<name>`), as the API server does."""
    activation = {"object": celpy.json_to_cel(obj), "oldObject": celpy.json_to_cel(old),
                  "request": celpy.json_to_cel({"operation": "UPDATE" if old else "CREATE"})}
    variables = {}
    for v in vap["spec"].get("variables", []):
        variables[v["name"]] = _eval(v["expression"], {**activation, "variables": celpy.json_to_cel(variables)})
    activation["variables"] = celpy.json_to_cel(variables)
    out = []
    for rule in vap["spec"]["validations"]:
        held = _eval(rule["expression"], activation)
        assert isinstance(held, celpy.celtypes.BoolType), f"{rule['expression']!r} gave {held!r}"
        if not held:
            assert rule["reason"] == "Forbidden" and rule["message"]
            out.append(str(_eval(rule["messageExpression"], activation)))
    return out


def policy_of(docs: list[dict], name: str) -> dict:
    (vap,) = [d for d in of_kind(docs, "ValidatingAdmissionPolicy") if d["metadata"]["name"] == name]
    return vap


def pod(image=UNSET, account=UNSET) -> dict:
    """spec.pod as a user writes it (after the CRD's defaults)."""
    return {"env": [], **({} if image == UNSET else {"image": image}),
            **({} if account == UNSET else {"serviceAccountName": account})}


def actjob(p: dict) -> dict:
    return {"apiVersion": "act-operator.io/v1alpha1", "kind": "ACTJob", "metadata": {"name": "j"},
            "spec": {"model": {"uri": "s3://b/m"}, "environment": {"name": "scienceworld"}, "pod": p}}


def experiment(p: dict) -> dict:
    return {"apiVersion": "act-operator.io/v1alpha1", "kind": "ACTExperiment", "metadata": {"name": "e"},
            "spec": {"template": {"model": {"uri": "s3://b/m"}, "environment": {"name": "scienceworld"}, "pod": p}}}


# --- parity -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("values", list(VALUES.values()), ids=list(VALUES))
def test_admission_policy_and_operator_refuse_the_same_pods_with_the_same_messages(values, monkeypatch):
    docs = rendered(values)
    s = settings_of(docs, monkeypatch)
    job_policy, experiment_policy = policy_of(docs, ACTJOB), policy_of(docs, EXPERIMENT)
    refused = 0
    for image, account in itertools.product(IMAGES, ACCOUNTS):
        p = pod(image, account)
        spec = PodSpec.model_validate(p)
        for vap, obj, path in ((job_policy, actjob(p), "spec.pod"), (experiment_policy, experiment(p), "spec.template.pod")):
            expected = policy.refusals(spec, s.allowed_images, s.allowed_service_accounts, path)
            assert admission(vap, obj) == expected, (image, account, path)
            refused += bool(expected)
    assert 0 < refused < 2 * len(IMAGES) * len(ACCOUNTS)  # the table has both sides


def test_the_rule():
    allowed = ["registry.example.com/ml/", "ghcr.io/act-operator/trainer:", "docker.io/library/busybox:1.36"]
    assert policy.image_allowed("registry.example.com/ml/team/act:1", allowed)
    assert policy.image_allowed("ghcr.io/act-operator/trainer:0.1.0", allowed)
    assert policy.image_allowed("docker.io/library/busybox:1.36", allowed)
    assert not policy.image_allowed("registry.example.com/ml-evil/act:1", allowed)  # a prefix ends in / : or @
    assert not policy.image_allowed("docker.io/library/busybox:1.36.1", allowed)  # any other entry is exact
    assert not policy.image_allowed("busybox:1.36", allowed)  # written as in the spec, not normalised
    assert policy.image_allowed("anything:1", []) and policy.service_account_allowed("admin", [])
    assert not policy.service_account_allowed("admin", ["act-stage"])
    assert policy.refusals(PodSpec(), ["x/"], ["y"]) == []  # unset: the operator's own image and account
    (line,) = policy.refusals(PodSpec(image="evil.io/x:1"), ["registry.example.com/ml/"], [])
    assert line.startswith("spec.pod.image: evil.io/x:1 is not allowed by the platform's policy")
    assert "policy.allowedImages: registry.example.com/ml/" in line and "leave spec.pod.image unset" in line


def test_the_stage_service_account_is_always_allowed_and_alone_with_stage_only(monkeypatch):
    s = settings_of(rendered(RESTRICTED), monkeypatch)
    assert s.allowed_service_accounts == ["team-s3", "act-stage"]
    assert s.allowed_images[0] == "registry.example.com/ml/" and len(s.allowed_images) == 4
    s = settings_of(rendered(VALUES["stage-account-only"]), monkeypatch)
    assert s.allowed_service_accounts == ["runner"]


def test_an_update_that_keeps_a_refused_value_is_admitted():
    """An ACTJob created before the policy can still be patched (kopf's annotations, spec.suspend);
    the operator refuses it before its next Job. Changing the field to a refused value is refused."""
    vap = policy_of(rendered(RESTRICTED), ACTJOB)
    old = actjob(pod("evil.io/x:1", "admin"))
    assert admission(vap, actjob(pod("evil.io/x:1", "admin")), old) == []
    (image,) = admission(vap, actjob(pod("evil.io/y:1", "admin")), old)
    assert image.startswith("spec.pod.image: evil.io/y:1 ")
    assert len(admission(vap, actjob(pod("evil.io/y:1", "root")), actjob(pod("registry.example.com/ml/a:1")))) == 2


# --- rendering --------------------------------------------------------------------------------------

def test_policy_binding_and_env_carry_the_values():
    docs = rendered((*RESTRICTED, "watchNamespaces={ml,ml-dev}", "policy.admission.validationActions={Warn,Audit}"))
    vaps, bindings = of_kind(docs, "ValidatingAdmissionPolicy"), of_kind(docs, "ValidatingAdmissionPolicyBinding")
    assert {d["metadata"]["name"] for d in vaps} == {d["metadata"]["name"] for d in bindings} == {ACTJOB, EXPERIMENT}
    for vap in vaps:
        rules = vap["spec"]["matchConstraints"]["resourceRules"]
        assert [r["resources"] for r in rules] in ([["actjobs"]], [["actexperiments"]])
        assert rules[0]["operations"] == ["CREATE", "UPDATE"] and vap["spec"]["failurePolicy"] == "Fail"
        text = str(vap["spec"]["validations"])
        assert "registry.example.com/ml/" in text and "docker.io/library/busybox:1.36" in text and "team-s3" in text
    for b in bindings:
        assert b["spec"]["policyName"] == b["metadata"]["name"]
        assert b["spec"]["validationActions"] == ["Warn", "Audit"]
        (sel,) = b["spec"]["matchResources"]["namespaceSelector"]["matchExpressions"]
        assert sel == {"key": "kubernetes.io/metadata.name", "operator": "In", "values": ["ml", "ml-dev"]}
    for doc in vaps + bindings:
        kubernetes_validate.validate(doc, K8S, strict=True)
    env = env_of(docs)
    assert env["ACT_ALLOWED_IMAGES"]["value"].split(",")[0] == "registry.example.com/ml/"
    assert env["ACT_ALLOWED_SERVICE_ACCOUNTS"]["value"] == "team-s3,act-stage"


@pytest.mark.parametrize("values", [(), ("policy.admission.enabled=false", *RESTRICTED)], ids=["nothing-to-enforce",
                                                                                               "disabled"])
def test_no_admission_policy_without_something_to_enforce_or_when_disabled(values):
    docs = rendered(values)
    assert not of_kind(docs, "ValidatingAdmissionPolicy") and not of_kind(docs, "ValidatingAdmissionPolicyBinding")
    env = env_of(docs)  # the operator enforces it either way
    assert bool(env["ACT_ALLOWED_IMAGES"]["value"]) == bool(values)


def test_a_binding_without_watch_namespaces_covers_every_namespace():
    (b,) = [d for d in of_kind(rendered(RESTRICTED), "ValidatingAdmissionPolicyBinding") if d["metadata"]["name"] == ACTJOB]
    assert "matchResources" not in b["spec"] and b["spec"]["validationActions"] == ["Deny"]


BAD = [
    (("policy.stageServiceAccountOnly=true", "policy.allowedServiceAccounts={team-s3}"),
     "policy.allowedServiceAccounts: Array must have at most 0 items"),
    (("policy.admission.validationActions={Deny,Warn}",), "policy.admission.validationActions: Must not validate"),
    (("policy.allowedServiceAccounts={Team_S3}",), "policy.allowedServiceAccounts.0: Does not match pattern"),
    (("policy.allowedImages={a b}",), "policy.allowedImages.0: Does not match pattern"),
    (("policy.allowedImage={x/}",), "Additional property allowedImage is not allowed"),
]


@pytest.mark.parametrize("values,message", BAD, ids=[b[1].split(":")[0] for b in BAD])
def test_bad_policy_values_fail_with_a_clear_message(values, message):
    proc = helm("template", "act", str(CHART), *sets(values))
    assert proc.returncode != 0 and message in proc.stderr, proc.stderr
