"""The ACTExperiment planner: fan-out, shared stages, failing arms, suspend, restarts. Pure."""

import re

import pytest
from pydantic import ValidationError

from act_operator import experiment as E
from act_operator.api import parse_spec

TEMPLATE = {"model": {"uri": "tiny://qwen3-tiny"}, "environment": {"name": "scienceworld"},
            "storage": {"root": "s3://bucket/act"}, "stages": {"eval": {"splits": ["dev"]}}}


def spec(**kw):
    return E.ExperimentSpec.model_validate({"template": TEMPLATE, **kw})


def done(key, **metrics):
    return E.Observed("Succeeded", pairs=f"s3://b/{key}/pairs", judge=f"s3://b/{key}/judge",
                      metrics=metrics or {"dev/success_rate": 0.5})


def drive(sp, fail=(), name="t1"):
    """Run the planner to the end, each created child finishing at once (failing if its key is in
    `fail`), and return (the order children were created in, the observed world)."""
    observed, order = {}, []
    while True:
        actions = E.plan(name, sp, observed)
        creates = [a for a in actions if isinstance(a, E.CreateChild)]
        if not creates:
            return order, observed
        for a in creates:
            order.append(a.key)
            observed[a.key] = E.Observed("Failed", message="boom") if a.key in fail else done(a.key)


def test_fan_out_shares_one_collect_and_one_judge_per_seed():
    sp = spec(arms=["il", "act+il", "rl", "act+rl", "act"], seeds=[0, 1, 2])
    order, observed = drive(sp)
    assert order[0] == "pairs" and order.count("pairs") == 1
    for s in (0, 1, 2):
        assert {f"act-s{s}", f"il-s{s}", f"rl-s{s}", f"act-il-s{s}", f"act-rl-s{s}"} <= set(order)
        assert order.index(f"act-s{s}") < order.index(f"act-il-s{s}")
    assert len(order) == 1 + 3 * 5
    st = E.status("t1", sp, observed)
    assert st.phase == "Succeeded" and [r.seeds for r in st.arms] == [3] * 5


def test_the_first_wave_is_collect_alone_then_every_arm_that_needs_only_pairs():
    sp = spec(arms=["il", "act+il"], seeds=[0, 1])
    first = E.plan("t1", sp, {})
    assert [a.key for a in first] == ["pairs"]
    second = E.plan("t1", sp, {"pairs": done("pairs")})
    assert sorted(a.key for a in second) == ["act-s0", "act-s1", "il-s0", "il-s1"]  # at once on a cluster


def test_child_specs_wire_the_shared_outputs_and_pick_the_arms_stages():
    sp = spec(arms=["il", "act+rl", "base"], seeds=[3])
    observed = {"pairs": done("pairs"), "act-s3": done("act-s3")}
    specs = {a.key: a.spec for a in E.plan("t1", sp, observed)}
    il, act_rl = specs["il-s3"], specs["act-rl-s3"]
    assert il["stages"]["collect"]["reuse"] == "s3://b/pairs/pairs" and il["seed"] == 3
    assert il["stages"]["judge"]["enabled"] is False and il["stages"]["policy"]["method"] == "il"
    assert act_rl["stages"]["judge"]["reuse"] == "s3://b/act-s3/judge"
    assert act_rl["stages"]["policy"]["method"] == "rl"
    for s in specs.values():  # every child is a valid ACTJob
        parse_spec(s)
    pairs = E.child_spec(sp, E.children(sp)[0], {})
    assert pairs["stages"]["judge"]["enabled"] is False and pairs["stages"]["policy"]["method"] == "none"
    assert pairs["stages"]["eval"]["enabled"] is True  # "base" asked for pi0's row
    # a judge no row asked for ("act" not in arms) skips its eval
    judge = next(c for c in E.children(sp) if c.key == "act-s3")
    assert E.child_spec(sp, judge, observed)["stages"]["eval"]["enabled"] is False
    parse_spec(E.child_spec(sp, judge, observed))


def test_a_failing_arm_blocks_its_dependents_only_and_the_experiment_fails_at_the_end():
    sp = spec(arms=["il", "act+il", "act"], seeds=[0, 1])
    order, observed = drive(sp, fail={"act-s0"})
    assert "act-il-s0" not in order and {"act-il-s1", "il-s0", "il-s1"} <= set(order)
    st = E.status("t1", sp, observed)
    assert st.phase == "Failed"
    assert st.children["act-il-s0"].phase == "Blocked" and "t1-act-s0 failed" in st.children["act-il-s0"].message
    assert "t1-act-s0" in st.message and "t1-act-il-s0" in st.message
    rows = {r.arm: r for r in st.arms}
    assert rows["il"].seeds == 2 and rows["act+il"].seeds == 1 and rows["act"].seeds == 1


def test_a_failed_collect_blocks_everything():
    sp = spec(arms=["il"], seeds=[0])
    order, observed = drive(sp, fail={"pairs"})
    st = E.status("t1", sp, observed)
    assert order == ["pairs"] and st.phase == "Failed" and st.children["il-s0"].phase == "Blocked"


def test_running_then_success_and_the_best_arm():
    sp = spec(arms=["il", "act+il", "base"], seeds=[0, 1])
    st = E.status("t1", sp, {"pairs": E.Observed("Running")})
    assert st.phase == "Running" and st.best_arm is None
    observed = {"pairs": done("pairs", **{"dev/success_rate": 0.9})}
    for s, (il, act_il) in enumerate([(0.2, 0.4), (0.3, 0.5)]):
        observed[f"act-s{s}"] = done(f"act-s{s}")
        observed[f"il-s{s}"] = done(f"il-s{s}", **{"dev/success_rate": il})
        observed[f"act-il-s{s}"] = done(f"act-il-s{s}", **{"dev/success_rate": act_il})
    st = E.status("t1", sp, observed)
    assert st.phase == "Succeeded"
    assert st.best_arm == "IL w/ ACT"  # the base row (pi0) is a reference, never the best arm
    row = next(r for r in st.arms if r.arm == "il")
    assert row.mean["dev/success_rate"] == pytest.approx(0.25) and row.std["dev/success_rate"] == pytest.approx(0.0707,
                                                                                                               abs=1e-3)


def test_suspend_starts_nothing_and_suspends_every_unfinished_child_then_resume_undoes_it():
    sp = spec(arms=["il", "act+il"], seeds=[0], suspend=True)
    observed = {"pairs": done("pairs"), "act-s0": E.Observed("Running"), "il-s0": done("il-s0")}
    actions = E.plan("t1", sp, observed)
    assert actions == [E.SetSuspend("t1-act-s0", True)]  # il-s0 finished: left alone; nothing created
    assert E.status("t1", sp, observed).phase == "Suspended"
    observed["act-s0"] = E.Observed("Suspended", suspended=True)
    assert E.plan("t1", sp, observed) == []
    resumed = spec(arms=["il", "act+il"], seeds=[0])
    assert E.plan("t1", resumed, observed) == [E.SetSuspend("t1-act-s0", False)]


def test_a_restarted_executor_creates_only_what_is_missing():
    """Level-triggered: the plan is a function of the children that exist, so an operator that died
    after creating some children of a wave creates the rest and nothing twice."""
    sp = spec(arms=["il", "rl"], seeds=[0])
    observed = {"pairs": done("pairs"), "il-s0": E.Observed("Running")}
    assert [a.key for a in E.plan("t1", sp, observed)] == ["rl-s0"]
    again = {a.name: a.spec for a in E.plan("t1", sp, observed)}
    assert again == {a.name: a.spec for a in E.plan("t1", sp, observed)}  # deterministic specs and names


@pytest.mark.parametrize("bad, field", [
    ({"arms": ["il", "il"]}, "arms"), ({"arms": ["sft"]}, "arms"), ({"seeds": []}, "seeds"),
    ({"seeds": [-1]}, "seeds"), ({"seeds": list(range(11))}, "seeds"),
])
def test_bad_experiment_fields_name_the_field(bad, field):
    with pytest.raises(ValidationError) as e:
        spec(**bad)
    assert field in str(e.value)


def test_the_template_must_collect_and_eval():
    tpl = {**TEMPLATE, "stages": {"eval": {"enabled": False}}}
    with pytest.raises(ValidationError, match="template.stages.eval.enabled"):
        E.ExperimentSpec.model_validate({"template": tpl})


def test_names_fit():
    with pytest.raises(ValidationError):
        E.ACTExperiment.model_validate({"metadata": {"name": "x" * 29}, "spec": {"template": TEMPLATE}})
    exp = E.ACTExperiment.model_validate({"metadata": {"name": "x" * 28},
                                          "spec": {"template": TEMPLATE, "seeds": [99], "arms": ["act+rl"]}})
    assert max(len(E.child_name(exp.metadata.name, c)) for c in E.children(exp.spec)) <= 40


def test_a_warm_up_runs_once_in_the_shared_child_and_every_arm_starts_from_its_pi0():
    tpl = {**TEMPLATE, "stages": {**TEMPLATE["stages"], "warmup": {"enabled": True}}}
    sp = E.ExperimentSpec.model_validate({"template": tpl, "arms": ["il", "act+il"], "seeds": [0]})
    (pairs,) = E.plan("t1", sp, {})
    assert pairs.spec["stages"]["warmup"]["enabled"] is True and pairs.spec["model"]["uri"] == "tiny://qwen3-tiny"
    observed = {"pairs": E.Observed("Succeeded", pairs="s3://b/pairs", pi0="s3://b/pi0")}
    for a in E.plan("t1", sp, observed):
        assert a.spec["model"]["uri"] == "s3://b/pi0" and a.spec["stages"]["warmup"]["enabled"] is False
        parse_spec(a.spec)


def test_the_early_experience_arms_learn_from_the_shared_pairs_which_then_record_outcomes():
    sp = spec(arms=["il", "iwm+il", "sr+il"], seeds=[0, 1])
    order, observed = drive(sp)
    assert order[0] == "pairs" and sorted(order[1:]) == sorted(f"{k}-s{s}" for k in ("il", "iwm-il", "sr-il")
                                                               for s in (0, 1))
    assert "act-s0" not in order  # no ACT arm asked: no judge trained
    pairs = E.child_spec(sp, E.children(sp)[0], {})
    assert pairs["stages"]["collect"]["recordOutcomes"] is True
    assert "recordOutcomes" not in E.child_spec(spec(arms=["il", "act+il"]), E.children(spec())[0], {})[
        "stages"]["collect"]  # only when an Early Experience arm needs them
    specs = {a.key: a.spec for a in E.plan("t1", sp, {"pairs": done("pairs")})}
    for method in ("iwm", "sr"):
        child = specs[f"{method}-il-s1"]
        assert child["stages"]["judge"] == {"enabled": True, "method": method}
        assert child["stages"]["policy"]["method"] == "il" and child["seed"] == 1
        assert child["stages"]["collect"]["reuse"] == "s3://b/pairs/pairs"
        parse_spec(child)
    st = E.status("t1", sp, observed)
    assert [(r.arm, r.label, r.seeds) for r in st.arms] == [("il", "IL", 2), ("iwm+il", "IL w/ IWM", 2),
                                                            ("sr+il", "IL w/ SR", 2)]


@pytest.mark.parametrize("template, arms, words", [
    ({"environment": {"name": "webshop", "url": "http://shop:3000"}, "stages": {"eval": {"splits": ["test"]}}},
     ["il", "sr+il"], "WebShop cannot restore expert states by replay; drop sr+il"),
    ({"stages": {"judge": {"method": "iwm"}, "collect": {"recordOutcomes": True}, "eval": {"splits": ["dev"]}}},
     ["il", "act+il"], "template.stages.judge.method: the arms choose"),
    ({"stages": {"collect": {"enabled": False, "reuse": "s3://b/pairs"}, "eval": {"splits": ["dev"]}}},
     ["iwm+il"], "enable template.stages.collect instead"),
])
def test_early_experience_arms_are_refused_where_they_cannot_learn(template, arms, words):
    with pytest.raises(ValidationError, match=re.escape(words)):
        E.ExperimentSpec.model_validate({"template": {**TEMPLATE, **template}, "arms": arms})
