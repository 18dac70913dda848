"""Every admission rule once (act_operator.rules, act_trainer.rules): its CEL, evaluated in process with
cel-python as the API server would, and its Python predicate, as `actjob validate` applies it, refuse
the same specs, by the same rules, with the same messages at the same fields: over the static-mistakes
table and a few hundred generated ACTJob and ACTExperiment specs. The API server's side of the same
comparison is in tests/integration/test_crd_kubelite.py."""

from __future__ import annotations

import pytest
from admission_parity import (
    actjob,
    actjob_specs,
    cel_holds,
    experiment_specs,
    pydantic_refusals,
    server_side,
)
from hypothesis import HealthCheck, given, settings
from pydantic import ValidationError
from static_mistakes import CASES, CLUSTER_ONLY, VALID, spec

from act_operator.api import SpecError, problems
from act_operator.crd import crd, experiment_crd
from act_operator.experiment import ExperimentSpec
from act_trainer.rules import RULES

pytest.importorskip("celpy")

ACTJOB_CRD, EXPERIMENT_CRD = crd(), experiment_crd()
GENERATED = settings(max_examples=300, derandomize=True, database=None, deadline=None,
                     suppress_health_check=[HealthCheck.too_slow])


def parse_experiment_spec(s: dict):
    try:
        return ExperimentSpec.model_validate(s)
    except ValidationError as err:
        raise SpecError([f"spec.{p}" for p in problems(err)]) from None


def agree(doc: dict, crd_: dict = ACTJOB_CRD, parse=None) -> tuple[set, set]:
    every, local = server_side(crd_, doc)
    got = pydantic_refusals(doc["spec"], **({"parse": parse} if parse else {}))
    assert got == local, f"pydantic {sorted(got)} != CEL {sorted(local)} for {doc['spec']}"
    return every, got


@pytest.mark.parametrize("what,overrides,expected", CASES, ids=[c[0] for c in CASES])
def test_static_mistakes_are_refused_alike(what, overrides, expected):
    if what == "too many tasks":  # a schema bound (maxItems), not a rule: the server refuses it before CEL
        pytest.skip("maxItems, no CEL")
    every, got = agree(actjob(spec(overrides)))
    assert got, what
    text = " ".join(f"{p}: {m}" for p, m in got)
    assert all(s in text for s in expected), (expected, text)


@pytest.mark.parametrize("what,overrides,expected", CLUSTER_ONLY, ids=[c[0] for c in CLUSTER_ONLY])
def test_cluster_only_mistakes_are_the_servers_alone(what, overrides, expected):
    every, got = agree(actjob(spec(overrides)))
    assert every and not got
    assert all(s in " ".join(f"{p}: {m}" for p, m in every) for s in expected)


@pytest.mark.parametrize("what,overrides", VALID, ids=[c[0] for c in VALID])
def test_valid_cases_are_accepted_alike(what, overrides):
    assert agree(actjob(spec(overrides))) == (set(), set())


@pytest.mark.parametrize("stages, refused", [
    # the two drifts: the CEL refused both, the planner runs both (pi0's expert.jsonl feeds the policy)
    ({"warmup": {"enabled": True}, "collect": {"enabled": False}, "judge": {"enabled": False}}, False),
    ({"warmup": {"enabled": True}, "collect": {"enabled": False}, "judge": {"enabled": False},
      "policy": {"method": "none"}, "eval": {"enabled": False}}, False),
    ({"collect": {"enabled": False}, "judge": {"enabled": False}}, True),  # no warm-up: no expert data
    ({"collect": {"enabled": False}, "judge": {"enabled": False}, "policy": {"method": "none"},
      "eval": {"enabled": False}}, True),
])
def test_the_warm_up_drifts_are_settled(stages, refused):
    every, got = agree(actjob(spec({"stages": stages})))
    assert bool(got) == bool(every) == refused, (got, every)


def test_generated_specs_are_refused_alike_and_break_every_rule():
    """300 generated ACTJobs and as many ACTExperiments (derandomized: the same ones on every run);
    between them they break every declared rule, so the parity says something about each."""
    broken: set[str] = set()

    @GENERATED
    @given(actjob_specs(), experiment_specs())
    def check(a, x):
        for doc, crd_, parse in ((actjob(a), ACTJOB_CRD, None), (actjob(x), EXPERIMENT_CRD, parse_experiment_spec)):
            every, _ = agree(doc, crd_, parse)
            broken.update(m for _, m in every)

    check()
    missed = sorted({r.message for rules in RULES.values() for r in rules} - broken)
    assert not missed, f"no generated spec breaks: {missed}"


def test_every_rule_is_in_a_crd():
    text = str(ACTJOB_CRD) + str(EXPERIMENT_CRD)
    for (on, field), rules in RULES.items():
        for rule in rules:
            assert repr(rule.cel)[1:-1] in text or rule.cel in text, f"{on}.{field}: {rule.id} not emitted"


def test_cel_holds_is_cel():
    assert cel_holds("self.a.all(x, x in ['b'])", {"a": ["b"]}) and not cel_holds("has(self.x)", {"x": None})
