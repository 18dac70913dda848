"""The generated ACTJob CRD on a real API server (kubelite): the server itself defaults,
prunes and rejects, so these tests check what a user of kubectl will see."""

from __future__ import annotations

import copy
import json
import uuid

import pytest
from kube import apply_crd

from act_operator.api import API_VERSION, GROUP, KIND, PLURAL, VERSION, parse_actjob
from act_operator.crd import crd

pytestmark = pytest.mark.integration

NS = "default"


@pytest.fixture(scope="module")
def kube(kube_api):
    """An ApiClient for the session's kubelite, which has the ACTJob CRD applied."""
    from kubernetes import config

    api = config.new_client_from_config(config_file=kube_api)
    yield api
    api.close()


@pytest.fixture
def objects(kube):
    from kubernetes import client
    return client.CustomObjectsApi(kube)


def actjob(name: str | None = None, **spec) -> dict:
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {"name": name or f"t-{uuid.uuid4().hex[:8]}"},
        "spec": {"model": {"uri": "tiny://qwen3"}, "environment": {"name": "scienceworld"},
                 "storage": {"root": "s3://bucket/act"}, **spec},
    }


def create(objects, body: dict) -> dict:
    return objects.create_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, body, field_validation="Strict")


def rejection(call, *args, **kwargs) -> str:
    """The server's message for a request it must refuse."""
    from kubernetes.client.rest import ApiException
    with pytest.raises(ApiException) as info:
        call(*args, **kwargs)
    assert info.value.status in (400, 422), info.value
    return json.loads(info.value.body)["message"]


def test_valid_actjob_gets_pydantic_defaults(objects):
    body = actjob(stages={"collect": {"samples": 16}})
    got = create(objects, body)
    spec = got["spec"]
    assert spec["stages"]["collect"]["samples"] == 16  # given
    assert spec["stages"]["collect"]["maxAlternatives"] == 4  # defaulted inside a given object
    assert spec["stages"]["judge"]["groupSize"] == 8  # defaulted inside a defaulted object
    assert spec["stages"]["eval"]["splits"] == ["dev"]
    assert spec["storage"]["root"] == "s3://bucket/act" and spec["storage"]["s3"] == {}
    assert spec["environment"]["expert"]["episodes"] == 8
    assert spec["suspend"] is False and spec["seed"] == 0
    assert "status" not in got  # status belongs to the operator
    # What the server stored is what pydantic would have made of the same file.
    assert parse_actjob(got).spec == parse_actjob(body).spec


def test_optional_fields_and_reuse_satisfy_cross_field_rules(objects):
    got = create(objects, actjob(
        stages={"collect": {"enabled": False, "reuse": "s3://bucket/run1/pairs"}},
        environment={"name": "scienceworld", "expert": {"uri": "/data/expert.jsonl"}},
        pod={"ttlSecondsAfterFinished": None},
    ))
    assert got["spec"]["pod"]["ttlSecondsAfterFinished"] is None  # nullable: null means "keep Jobs"
    create(objects, actjob(stages={"collect": {"enabled": False}, "judge": {"enabled": False},
                                   "policy": {"method": "none"}}))  # eval alone is something to do


def _set(body: dict, path: str, value) -> dict:
    body = copy.deepcopy(body)
    *parents, last = path.split(".")
    node = body
    for key in parents:
        node = node.setdefault(key, {})
    node[last] = value
    return body


# (what, path to set, value, strings the server's message must contain)
INVALID = [
    ("unknown field", "spec.stages.collect.sampels", 8, ["unknown field", "spec.stages.collect.sampels"]),
    ("bad enum", "spec.stages.policy.method", "dpo", ["spec.stages.policy.method", "Unsupported value", '"il"']),
    ("bad environment", "spec.environment.name", "minecraft", ["spec.environment.name", "scienceworld"]),
    ("above maximum", "spec.stages.collect.topP", 1.5, ["spec.stages.collect.topP", "less than or equal to 1"]),
    ("exclusive minimum", "spec.stages.collect.temperature", 0, ["spec.stages.collect.temperature",
                                                                 "greater than 0"]),
    ("below minimum", "spec.stages.judge.timeoutSeconds", 10, ["spec.stages.judge.timeoutSeconds", "60"]),
    ("wrong type", "spec.seed", "one", ["spec.seed", "integer"]),
    ("empty list", "spec.stages.eval.splits", [], ["spec.stages.eval.splits", "at least 1"]),
    ("M > K", "spec.stages.collect", {"samples": 2, "maxAlternatives": 4},
     ["spec.stages.collect.maxAlternatives", "cannot exceed samples", "raise samples"]),
    ("judge group size", "spec.stages.judge", {"batchSize": 3, "groupSize": 8},
     ["spec.stages.judge", "multiple of groupSize"]),
    ("rl policy group size", "spec.stages.policy", {"method": "rl", "batchSize": 2, "nodes": 3, "groupSize": 4},
     ["spec.stages.policy", "multiple of groupSize"]),
    ("storage scheme", "spec.storage.root", "gs://bucket/x", ["spec.storage.root", "unsupported URI", "s3://"]),
    ("storage plain path", "spec.storage.root", "/data", ["spec.storage.root", "unsupported URI"]),
    ("model scheme", "spec.model.uri", "hf://Qwen/Qwen3-8B", ["spec.model.uri", "tiny://"]),
    ("s3 without bucket", "spec.model.uri", "s3:///models/x", ["spec.model.uri", "no bucket"]),
    ("reuse scheme", "spec.stages.judge.reuse", "http://x/judge", ["spec.stages.judge.reuse", "unsupported URI"]),
    ("missing model", "spec.model", None, ["spec.model", "Required value"]),
    ("name too long", "metadata.name", "a" * 41, ["metadata.name", "at most 40"]),
    ("name not a DNS label", "metadata.name", "act.job", ["metadata.name", "DNS label"]),
    ("all stages disabled", "spec.stages", {"collect": {"enabled": False}, "judge": {"enabled": False},
                                            "policy": {"method": "none"}, "eval": {"enabled": False}},
     ["spec.stages", "every stage is disabled"]),
    ("judge without pairs", "spec.stages", {"collect": {"enabled": False}, "policy": {"method": "none"}},
     ["spec.stages.judge", "needs contrast pairs", "stages.collect.reuse"]),
    ("judge without pairs (explicit null reuse)", "spec.stages",
     {"collect": {"enabled": False, "reuse": None}, "policy": {"method": "none"}},
     ["spec.stages.judge", "needs contrast pairs"]),
    ("policy without expert data", "spec.stages", {"collect": {"enabled": False},
                                                   "judge": {"reuse": "file:///runs/a/judge"}},
     ["spec.stages.policy", "needs expert trajectories", "environment.expert.uri"]),
    # spec.pod.env is typed as a Pod's: a list, one entry per name (the map form is pydantic's alone)
    ("pod env as a map", "spec.pod.env", {"NCCL_DEBUG": "INFO"},  # strict decoding: "unknown field"
     ["spec.pod.env.NCCL_DEBUG"]),
    ("pod env name twice", "spec.pod.env", [{"name": "X", "value": "1"}, {"name": "X", "value": "2"}],
     ["spec.pod.env[1]", "Duplicate value"]),
    ("pod env credential by value", "spec.pod.env", [{"name": "HF_TOKEN", "value": "hf_x"}],
     ["spec.pod.env", "must not carry credentials", "secretKeyRef"]),
]


def test_pod_env_in_the_list_form_is_stored_as_written(objects):
    env = [{"name": "NCCL_DEBUG", "value": "INFO"},
           {"name": "HF_TOKEN", "valueFrom": {"secretKeyRef": {"name": "hf", "key": "token"}}},
           {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
           {"name": "MODE", "valueFrom": {"configMapKeyRef": {"name": "knobs", "key": "mode", "optional": True}}}]
    body = actjob(pod={"env": env})
    got = create(objects, body)
    assert got["spec"]["pod"]["env"] == env
    assert parse_actjob(got).spec == parse_actjob(body).spec


@pytest.mark.parametrize("what,path,value,expected", INVALID, ids=[c[0] for c in INVALID])
def test_server_rejects_invalid_actjob(objects, what, path, value, expected):
    body = _set(actjob(), path, value)
    if value is None:
        parent, _, key = path.rpartition(".")
        node = body
        for k in parent.split("."):
            node = node[k]
        node.pop(key)
    message = rejection(create, objects, body)
    for text in expected:
        assert text in message, f"{what}: {text!r} not in {message!r}"


def test_model_environment_storage_are_immutable_suspend_is_not(objects):
    body = create(objects, actjob(storage={"root": "s3://bucket/a"}))
    name = body["metadata"]["name"]

    def patch(spec: dict) -> dict:
        return objects.patch_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, name, {"spec": spec},
                                                      field_validation="Strict")

    assert "spec.model is immutable" in rejection(patch, {"model": {"uri": "tiny://other"}})
    assert "spec.environment is immutable" in rejection(patch, {"environment": {"maxSteps": 7}})
    assert "spec.storage is immutable" in rejection(patch, {"storage": {"root": "s3://bucket/b"}})
    got = patch({"suspend": True, "stages": {"eval": {"episodes": 9}}})
    assert got["spec"]["suspend"] is True and got["spec"]["stages"]["eval"]["episodes"] == 9


def test_status_subresource(objects):
    name = create(objects, actjob())["metadata"]["name"]
    status = {"phase": "Running", "currentStage": "judge",
              "stages": {"eval": {"phase": "Succeeded", "metrics": {"judge_accuracy": 0.75, "dev/success_rate": 0.5}}},
              "conditions": [{"type": "Ready", "status": "False", "reason": "Running",
                              "lastTransitionTime": "2026-01-01T00:00:00Z"}]}
    got = objects.patch_namespaced_custom_object_status(GROUP, VERSION, NS, PLURAL, name, {"status": status})
    assert got["status"]["stages"]["eval"]["metrics"]["judge_accuracy"] == 0.75
    assert got["metadata"]["generation"] == 1  # status writes do not bump the generation

    # Status is validated too: an unknown phase is refused.
    msg = rejection(objects.patch_namespaced_custom_object_status, GROUP, VERSION, NS, PLURAL, name,
                    {"status": {"phase": "Exploded"}})
    assert "status.phase" in msg

    # Through the main resource, status is ignored and spec changes bump the generation.
    got = objects.patch_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, name,
                                                 {"spec": {"suspend": True}, "status": {"phase": "Failed"}})
    assert got["metadata"]["generation"] == 2 and got["status"]["phase"] == "Running"
    assert parse_actjob(got).status.stages["eval"].metrics["judge_accuracy"] == 0.75


def _get_raw(kube, path: str, accept: str = "application/json") -> dict:
    method, url, headers, _, _ = kube.param_serialize("GET", path, header_params={"Accept": accept},
                                                      auth_settings=["BearerToken"])
    resp = kube.call_api(method, url, header_params=headers)
    resp.read()
    assert resp.status == 200, resp.data
    return json.loads(resp.data)


def test_printer_columns_and_explain(kube, objects):
    name = create(objects, actjob())["metadata"]["name"]
    objects.patch_namespaced_custom_object_status(GROUP, VERSION, NS, PLURAL, name, {"status": {
        "phase": "Running", "currentStage": "eval", "progress": "30%", "eta": "1m20s",
        "stages": {"eval": {"metrics": {"judge_accuracy": 0.8, "dev/success_rate": 0.25},
                            "progress": {"done": 3, "total": 10, "percent": 30.0, "etaSeconds": 80, "unit": "episodes",
                                         "attempt": 1, "updated": "2026-11-30T10:00:00Z"}}}}})
    table = _get_raw(kube, f"/apis/{GROUP}/{VERSION}/namespaces/{NS}/{PLURAL}/{name}",
                     "application/json;as=Table;v=v1;g=meta.k8s.io")
    columns = [c["name"] for c in table["columnDefinitions"]]
    assert columns == ["Name", "Stage", "Phase", "Progress", "ETA", "Judge-Acc", "Success", "Age"]
    assert table["rows"][0]["cells"][1:7] == ["eval", "Running", "30%", "1m20s", 0.8, 0.25]

    # What `kubectl explain actjob.spec.stages.judge` reads: the published OpenAPI v3 schema.
    doc = _get_raw(kube, f"/openapi/v3/apis/{GROUP}/{VERSION}")
    schema = doc["components"]["schemas"][f"io.act-operator.{VERSION}.{KIND}"]
    judge = schema["properties"]["spec"]["properties"]["stages"]["properties"]["judge"]
    assert "ACT" in judge["properties"]["enabled"]["description"]


def test_apply_crd_replaces_an_existing_crd(kube, objects):
    apply_crd(kube, crd())  # second apply: replace, then wait for Established again
    create(objects, actjob())


def _with_spec(overrides: dict) -> dict:
    from static_mistakes import spec
    body = actjob()
    body["spec"] = spec(overrides)
    return body


def _mistakes():
    from static_mistakes import CASES, CLUSTER_ONLY
    return CASES + CLUSTER_ONLY


@pytest.mark.parametrize("what,overrides,expected", _mistakes(), ids=[c[0] for c in _mistakes()])
def test_server_refuses_static_mistakes_as_pydantic_does(objects, what, overrides, expected):
    """The table `actjob validate` refuses (tests/unit/test_admission.py), refused by the CEL twins."""
    message = rejection(create, objects, _with_spec(overrides))
    for text in expected:
        assert text in message, f"{what}: {text!r} not in {message!r}"


def test_server_accepts_the_facts_other_spellings(objects):
    from static_mistakes import VALID
    for what, overrides in VALID:
        got = create(objects, _with_spec(overrides))
        assert parse_actjob(got).spec == parse_actjob(_with_spec(overrides)).spec, what


# --- ACTExperiment ------------------------------------------------------------------------------

def experiment(name: str | None = None, **spec) -> dict:
    from pathlib import Path

    import yaml

    from act_operator.experiment import KIND as EKIND

    doc = yaml.safe_load((Path(__file__).resolve().parents[2] / "examples" / "table1-quickstart.yaml").read_text())
    doc["metadata"] = {"name": name or f"x-{uuid.uuid4().hex[:8]}"}
    doc["spec"]["template"]["storage"]["root"] = "s3://bucket/act"
    doc["spec"].update(spec)
    assert doc["kind"] == EKIND
    return doc


def create_experiment(objects, body: dict) -> dict:
    from act_operator.experiment import PLURAL as EPLURAL

    return objects.create_namespaced_custom_object(GROUP, VERSION, NS, EPLURAL, body, field_validation="Strict")


def test_the_table1_example_is_accepted_with_the_models_defaults(objects):
    from act_operator.experiment import parse_experiment

    body = create_experiment(objects, experiment(arms=["il", "act+il"]))
    assert body["spec"]["template"]["stages"]["judge"]["groupSize"] == 4
    assert body["spec"]["suspend"] is False and body["spec"]["seeds"] == [0, 1]
    parse_experiment(body)  # what the server stored is what the operator parses


@pytest.mark.parametrize("spec, words", [
    ({"arms": ["il", "il"]}, "Duplicate value"),
    ({"arms": ["sft"]}, "Unsupported value"),
    ({"seeds": []}, "should have at least 1"),
])
def test_bad_experiments_are_refused_by_the_server(objects, spec, words):
    assert words in rejection(create_experiment, objects, experiment(**spec))


def test_experiment_template_rules_hold_on_the_server(objects):
    body = experiment()
    body["spec"]["template"]["stages"]["eval"]["enabled"] = False
    assert "template.stages.eval.enabled" in rejection(create_experiment, objects, body)
    body = experiment()
    del body["spec"]["template"]["storage"]
    assert "storage.root is required on a cluster" in rejection(create_experiment, objects, body)
    assert "at most 28 characters" in rejection(create_experiment, objects, experiment(name="x" * 29))
    body = experiment()
    body["spec"]["template"]["stages"]["judge"]["method"] = "sr"
    assert "template.stages.judge.method" in rejection(create_experiment, objects, body)
    body = experiment(arms=["il", "sr+il"])
    body["spec"]["template"]["environment"] = {"name": "webshop", "url": "http://shop:3000"}
    body["spec"]["template"]["stages"]["eval"]["splits"] = ["test"]
    assert "WebShop cannot restore expert states" in rejection(create_experiment, objects, body)


# --- every rule once: the server against pydantic (tests/admission_parity.py) ----------------------

def server_refusals(objects, body: dict, plural: str = PLURAL) -> set[tuple[str, str]]:
    """What the server refuses in `body`, by field and rule message (a dry-run create: nothing is stored)."""
    from admission_parity import SERVER_PREFIX
    from kubernetes.client.rest import ApiException

    try:
        objects.create_namespaced_custom_object(GROUP, VERSION, NS, plural, body, field_validation="Strict",
                                                dry_run="All")
    except ApiException as e:
        assert e.status == 422, e
        causes = json.loads(e.body)["details"]["causes"]
        return {(c["field"], SERVER_PREFIX.sub("", c["message"])) for c in causes}
    return set()


def _agree_on_the_server(objects, doc: dict, crd_: dict, plural: str = PLURAL, parse=None):
    from admission_parity import pydantic_refusals, server_side

    every, local = server_side(crd_, doc)
    assert server_refusals(objects, doc, plural) == every, doc["spec"]
    assert pydantic_refusals(doc["spec"], **({"parse": parse} if parse else {})) == local, doc["spec"]
    return every


def test_the_server_refuses_the_static_mistakes_by_the_rules_pydantic_applies(objects):
    from admission_parity import actjob as doc
    from static_mistakes import CASES, CLUSTER_ONLY, VALID, spec

    for what, overrides, *_ in CASES + CLUSTER_ONLY + [(w, o) for w, o in VALID]:
        if what != "too many tasks":  # maxItems: the schema refuses it, not a rule
            _agree_on_the_server(objects, doc(spec(overrides)), crd())


def test_the_server_accepts_the_warm_up_cases_pydantic_accepts(objects):
    """The two drifts: a warm-up feeds the policy's expert trajectories, and alone is something to do."""
    from static_mistakes import spec
    off = {"collect": {"enabled": False}, "judge": {"enabled": False}}
    for stages in ({**off, "warmup": {"enabled": True}},
                   {**off, "warmup": {"enabled": True}, "policy": {"method": "none"}, "eval": {"enabled": False}}):
        body = actjob()
        body["spec"] = spec({"stages": stages})
        create(objects, body)
        parse_actjob(body)


def test_generated_specs_are_refused_alike_by_the_server(objects):
    """200 generated ACTJobs and 100 ACTExperiments (derandomized), dry-run created: the server refuses
    exactly what the CEL in process refuses, and pydantic what it should of that."""
    from admission_parity import actjob as doc
    from admission_parity import actjob_specs, experiment_specs
    from hypothesis import HealthCheck, given, settings
    from pydantic import ValidationError

    from act_operator.api import SpecError, problems
    from act_operator.crd import experiment_crd
    from act_operator.experiment import KIND as EKIND
    from act_operator.experiment import PLURAL as EPLURAL
    from act_operator.experiment import ExperimentSpec

    def parse_experiment_spec(s):
        try:
            return ExperimentSpec.model_validate(s)
        except ValidationError as err:
            raise SpecError([f"spec.{p}" for p in problems(err)]) from None

    refused = []
    fixed = settings(derandomize=True, database=None, deadline=None, suppress_health_check=list(HealthCheck))

    @settings(fixed, max_examples=200)
    @given(actjob_specs())
    def actjobs(s):
        refused.append(bool(_agree_on_the_server(objects, doc(s), crd())))

    @settings(fixed, max_examples=100)
    @given(experiment_specs())
    def experiments(s):
        _agree_on_the_server(objects, doc(s) | {"kind": EKIND}, experiment_crd(), EPLURAL, parse_experiment_spec)

    actjobs()
    experiments()
    assert len(refused) >= 200 and 0.2 < sum(refused) / len(refused) < 0.95  # both outcomes, many times
