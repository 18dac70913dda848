"""Pydantic against CEL: the refusals of each side for one spec, and generated specs to compare them on.

`cel_refusals` does what the API server does with a CRD (defaults, then every CEL rule on every
node present) with cel-python; `pydantic_refusals` is what `actjob validate` says. Both give
{(field path, message)}; `expected_pydantic` says which of the CEL refusals pydantic reports: the
local rules (not the cluster-only ones), and of those the deepest (a model's validator runs once the
models inside it are valid, so a broken rule deeper down hides its parents' until it is fixed).
Used by tests/unit/test_rule_parity.py (in process) and tests/integration/test_crd_kubelite.py.
"""

from __future__ import annotations

import copy
import functools
import re

from hypothesis import strategies as st

from act_operator.api import API_VERSION, KIND, SpecError, parse_spec
from act_trainer.contract import ENV_FACTS, ENVIRONMENTS
from act_trainer.rules import RULES

Refusal = tuple[str, str]  # (field path, message)


# --- the server's side, in process ----------------------------------------------------------------

def defaulted(schema: dict, value):
    """`value` with the schema's defaults filled in, as the API server does before validating."""
    value = copy.deepcopy(value)
    if isinstance(value, dict) and "properties" in schema:
        for key, sub in schema["properties"].items():
            if key not in value and "default" in sub:
                value[key] = copy.deepcopy(sub["default"])
            if key in value:
                value[key] = defaulted(sub, value[key])
    elif isinstance(value, dict) and isinstance(schema.get("additionalProperties"), dict):
        value = {k: defaulted(schema["additionalProperties"], v) for k, v in value.items()}
    elif isinstance(value, list) and "items" in schema:
        value = [defaulted(schema["items"], v) for v in value]
    return value


def _without_nulls(value):
    """A null field is an unset one to CEL's has(), as on the server."""
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_nulls(v) for v in value]
    return value


@functools.cache
def _program(expr: str):
    import celpy

    env = celpy.Environment()
    return env.program(env.compile(expr))


def cel_holds(expr: str, value) -> bool:
    import celpy

    got = _program(expr).evaluate({"self": celpy.json_to_cel(_without_nulls(value))})
    assert isinstance(got, celpy.celtypes.BoolType), f"{expr!r} gave {got!r}"
    return bool(got)


def cel_refusals(schema: dict, value, path: str) -> list[tuple[Refusal, dict, str]]:
    """Every CEL rule the (defaulted) `value` breaks: (refusal, its x-kubernetes-validations entry, the
    path of the node it sits on). Transition rules (oldSelf) are left out: creates have no old object."""
    found = []
    if value is None:
        return found
    for rule in schema.get("x-kubernetes-validations", []):
        if "oldSelf" not in rule["rule"] and not cel_holds(rule["rule"], value):
            found.append(((path + rule.get("fieldPath", ""), rule["message"]), rule, path))
    if isinstance(value, dict) and "properties" in schema:
        for key, sub in schema["properties"].items():
            if key in value:
                found += cel_refusals(sub, value[key], f"{path}.{key}")
    elif isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            found += cel_refusals(schema["items"], item, f"{path}[{i}]")
    return found


@functools.cache
def rule_of() -> dict[tuple[str, str], tuple]:
    """(CEL, message) -> (rule, whether it sits on a field), over every declared rule."""
    return {(r.cel, r.message): (r, field is not None) for (_, field), rules in RULES.items() for r in rules}


def server_side(crd: dict, obj: dict) -> tuple[set[Refusal], set[Refusal]]:
    """What the API server refuses in `obj`'s spec, in process: (every refusal, those pydantic should report)."""
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    found = cel_refusals(schema, defaulted(schema, obj["spec"]), "spec")
    local = []
    for refusal, entry, node in found:
        rule, on_field = rule_of()[entry["rule"], entry["message"]]  # every CEL rule is a declared Rule
        if rule.local:
            local.append((refusal, node.rsplit(".", 1)[0] if on_field else node))  # the model that checks it
    deepest = {r for r, owner in local if not any(o.startswith(owner + ".") for _, o in local)}
    return {r for r, _, _ in found}, deepest


# --- pydantic's side -------------------------------------------------------------------------------

def refusals(problems: list[str]) -> set[Refusal]:
    return {tuple(p.split(": ", 1)) for p in problems}


def pydantic_refusals(spec: dict, parse=parse_spec) -> set[Refusal]:
    try:
        parse(spec)
    except SpecError as e:
        return refusals(e.problems)
    return set()


# --- generated specs ---------------------------------------------------------------------------------
# Type-valid (within every bound and enum), so that only the rules can refuse them; each value is
# drawn from a few valid and invalid ones per rule.

def _opt(**fields):
    return st.fixed_dictionaries({}, optional=fields)


GAMES = ["twc", "coin", "zork"]
URIS = ["s3://bucket/x", "file:///data/x", "s3:///x", "gs://b/x", "", "/data/x", "tiny://qwen3-tiny"]


def _train(methods):
    rollout = st.sampled_from([{}, {"mode": "server", "serverGpus": 0}, {"mode": "colocate", "serverGpus": 0},
                               {"mode": "server", "serverGpus": 1, "tensorParallelSize": 2},
                               {"mode": "server", "serverGpus": 2, "tensorParallelSize": 2}])
    return st.fixed_dictionaries({"rollout": rollout, "batchSize": st.integers(1, 6), "groupSize": st.integers(2, 6)},
                                 optional=dict(enabled=st.booleans(), reuse=st.sampled_from(URIS[:4]),
                                               method=st.sampled_from(methods), nodes=st.integers(1, 3),
                                               processesPerNode=st.integers(1, 2)))


def _stages(splits):
    judge = _train(["act", "iwm", "sr"])
    policy = _train(["il", "rl", "none"]).map(lambda d: {k: v for k, v in d.items() if k not in ("enabled", "reuse")})
    warmup = _train(["x"]).map(lambda d: {k: v for k, v in d.items() if k not in ("reuse", "method")})
    collect = st.fixed_dictionaries({"samples": st.integers(1, 6), "maxAlternatives": st.integers(1, 6)}, optional=dict(
        enabled=st.booleans(), reuse=st.sampled_from(URIS[:4]), verifyAlternatives=st.booleans(),
        recordOutcomes=st.booleans()))
    evals = _opt(enabled=st.booleans(), splits=st.lists(st.sampled_from(splits), min_size=1, max_size=2))
    return st.fixed_dictionaries({"collect": collect, "judge": judge, "policy": policy}, optional={"warmup": warmup, "eval": evals})


def _nothing_to_do():
    """Every stage off (the warm-up too, or not): rare when drawn field by field."""
    off = {"collect": {"enabled": False}, "judge": {"enabled": False}, "policy": {"method": "none"},
           "eval": {"enabled": False}}
    return st.sampled_from([off, off | {"warmup": {"enabled": True}}, off | {"warmup": {"enabled": False}}])


def _branching():
    """Collect taking alternatives in the environment, as it does only where it replays."""
    return st.fixed_dictionaries({"collect": _opt(verifyAlternatives=st.booleans(), recordOutcomes=st.booleans())},
                                 optional={"judge": _opt(method=st.sampled_from(["act", "iwm", "sr"]),
                                                         bothOrders=st.booleans())})


def _without_pairs():
    """No collect: reused pairs, or none (then the judge and the policy need other sources)."""
    collect = st.sampled_from([{"enabled": False}, {"enabled": False, "reuse": "s3://bucket/pairs"}])
    return st.fixed_dictionaries({"collect": collect}, optional={
        "judge": _opt(enabled=st.booleans(), reuse=st.just("s3://bucket/judge"),
                      method=st.sampled_from(["act", "iwm", "sr"])),
        "policy": _opt(method=st.sampled_from(["il", "none"])), "warmup": _opt(enabled=st.booleans())})


def actjob_specs():
    general = _actjob_specs()
    replayless = st.tuples(general, _branching()).map(  # WebShop, asked to replay
        lambda t: {**t[0], "environment": {"name": "webshop"}, "stages": t[1]})
    return st.one_of(general, replayless)


def _actjob_specs():
    return st.sampled_from(ENVIRONMENTS).flatmap(_actjob_specs_in)


def _actjob_specs_in(name: str):
    """Specs in one environment: its own task names, games and splits, and others'."""
    f = ENV_FACTS[name]
    tasks = sorted(set(f.task_names[:2] + f.task_ids[:1]) | {"boill", "twc", "coin"})
    splits = sorted(set(f.splits) | {"dev", "bogus"})
    env = st.fixed_dictionaries({"name": st.just(name)}, optional={
        "tasks": st.lists(st.sampled_from(tasks), max_size=2), "game": st.sampled_from(GAMES),
        "expert": _opt(split=st.sampled_from(splits), uri=st.sampled_from(URIS[:6]))})
    storage = _opt(root=st.sampled_from(["s3://bucket/act", "file:///data/act", "file://.act/storage", "gs://b",
                                         "s3://"]))
    return st.fixed_dictionaries({
        "model": st.fixed_dictionaries({"uri": st.sampled_from(URIS + ["hf://Qwen/Qwen3"])}),
        "environment": env,
        "storage": st.one_of(st.just({"root": "s3://bucket/act"}), storage),
    }, optional={
        "stages": st.one_of(_stages(splits), _nothing_to_do(), _branching(), _without_pairs()),
        "pod": _opt(env=_pod_env()),
    })


SECRET_REF = {"secretKeyRef": {"name": "creds", "key": "k"}}
FIELD_REF = {"fieldRef": {"fieldPath": "metadata.name"}}


def _pod_env():
    """spec.pod.env in the Kubernetes list form (the one the CRD types; the map form is pydantic's
    alone, tests/unit/test_admission.py): credential names and others, by value or from each source,
    and the ill-formed: value and valueFrom both, no source, two sources."""
    source = st.sampled_from([{"value": "x"}, {}, {"valueFrom": SECRET_REF}, {"valueFrom": FIELD_REF},
                              {"valueFrom": {"configMapKeyRef": {"name": "cm", "key": "k", "optional": True}}},
                              {"valueFrom": {"resourceFieldRef": {"resource": "limits.cpu"}}},
                              {"value": "x", "valueFrom": SECRET_REF}, {"valueFrom": {}},
                              {"valueFrom": {**SECRET_REF, **FIELD_REF}}])
    entry = st.tuples(st.sampled_from(["NCCL_DEBUG", "HF_TOKEN", "AWS_ACCESS_KEY_ID"]), source).map(
        lambda t: {"name": t[0], **t[1]})
    return st.lists(entry, max_size=3, unique_by=lambda e: e["name"])


def experiment_specs():
    from act_operator.experiment import ARMS

    return st.fixed_dictionaries({"template": actjob_specs(),
                                  "arms": st.lists(st.sampled_from(ARMS), min_size=1, max_size=3, unique=True)})


def actjob(spec: dict, name: str = "parity") -> dict:
    return {"apiVersion": API_VERSION, "kind": KIND, "metadata": {"name": name}, "spec": spec}


SERVER_PREFIX = re.compile(r'^Invalid value: ("[^"]*": )?')  # then the rule's message
