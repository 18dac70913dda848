"""The planner, transition by transition: pure, no services."""

from datetime import UTC, datetime, timedelta

from act_operator import pipeline as P
from act_operator.api import API_VERSION, parse_actjob

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def make_job(**stages):
    return parse_actjob({
        "apiVersion": API_VERSION, "kind": "ACTJob",
        "metadata": {"name": "demo", "uid": "u-1", "generation": 1},
        "spec": {"model": {"uri": "tiny://qwen3-tiny"}, "environment": {"name": "scienceworld"},
                 "storage": {"root": "s3://bucket/act"}, "stages": stages},
    })


def ok(stage):
    return P.Observed("succeeded", result={"manifest": f"s3://b/{stage}/_MANIFEST.json", "uri": f"s3://b/{stage}",
                                           "digest": f"sha256:{stage}", "metrics": {"m": 1.0, "flag": True}})


def step(job, observed, now=T0):
    """Plan once and apply every action, as an executor does."""
    actions = P.plan(job, observed, now)
    for a in actions:
        job.status = P.apply(job, a, now)
    return actions


def run_to_end(job, outcomes=None):
    """Drive the planner through a whole run; outcomes maps stage -> list of observations per attempt."""
    outcomes = outcomes or {}
    observed, trace = {}, []
    now = T0
    for _ in range(50):
        actions = step(job, observed, now)
        trace.extend(actions)
        if not actions or job.status.phase in P.TERMINAL:
            break
        for a in actions:
            if isinstance(a, P.StartStage):
                seq = outcomes.get(a.stage, [])
                observed[a.stage] = seq[a.attempt - 1] if a.attempt <= len(seq) else ok(a.stage)
            if isinstance(a, P.Wait):
                now = a.until
    return trace


def test_first_plan_starts_collect():
    job = make_job()
    assert P.plan(job, {}, T0) == [P.StartStage("collect", 1)]


def test_full_run_in_order_and_outputs_flow():
    job = make_job()
    trace = run_to_end(job)
    starts = [a.stage for a in trace if isinstance(a, P.StartStage)]
    assert starts == ["collect", "judge", "policy", "eval"]
    assert isinstance(trace[-1], P.SucceedJob)
    st = job.status
    assert st.phase == "Succeeded" and st.model_uri == "s3://b/policy"
    assert st.stages["collect"].outputs.digest == "sha256:collect"
    assert st.stages["collect"].metrics == {"m": 1.0}  # booleans are not metrics
    assert {c.type: c.status for c in st.conditions} == {"Running": "False", "Succeeded": "True"}


def test_running_stage_without_news_waits():
    job = make_job()
    step(job, {})
    assert job.status.stages["collect"].phase == "Running"
    assert P.plan(job, {}, T0) == []
    assert P.plan(job, {"collect": P.Observed("running")}, T0) == []


def test_completion_hands_off_to_next_stage_in_one_plan():
    job = make_job()
    step(job, {})
    actions = P.plan(job, {"collect": ok("collect")}, T0)
    assert [type(a) for a in actions] == [P.CompleteStage, P.StartStage]
    assert actions[1] == P.StartStage("judge", 1)


def test_skip_judge_is_the_baseline():
    job = make_job(judge={"enabled": False})
    trace = run_to_end(job)
    assert P.SkipStage("judge", "stages.judge.enabled is false (baseline without ACT)") in trace
    assert job.status.stages["judge"].phase == "Skipped"
    assert job.status.phase == "Succeeded"


def test_policy_none_makes_judge_the_final_model():
    job = make_job(policy={"method": "none"})
    run_to_end(job)
    assert job.status.stages["policy"].phase == "Skipped"
    assert job.status.model_uri == "s3://b/judge"


def test_reuse_pairs_skips_collection():
    job = make_job(collect={"reuse": "s3://other/run/pairs"})
    trace = run_to_end(job)
    assert P.ReuseStage("collect", "s3://other/run/pairs") in trace
    assert job.status.stages["collect"].outputs.uri == "s3://other/run/pairs"
    assert [a.stage for a in trace if isinstance(a, P.StartStage)] == ["judge", "policy", "eval"]


def test_reuse_judge():
    job = make_job(judge={"reuse": "s3://other/judge"})
    run_to_end(job)
    assert job.status.stages["judge"].phase == "Reused"


def test_failure_retries_with_backoff_then_succeeds():
    job = make_job(judge={"maxRetries": 2})
    trace = run_to_end(job, {"judge": [P.Observed("failed", reason="OOM"), ok("judge")]})
    retries = [a for a in trace if isinstance(a, P.RetryStage)]
    assert len(retries) == 1 and retries[0].reason == "OOM"
    assert any(isinstance(a, P.Wait) for a in trace)
    assert P.StartStage("judge", 2) in trace
    assert job.status.stages["judge"].attempts == 2
    assert job.status.phase == "Succeeded"


def test_backoff_is_not_started_early():
    job = make_job()
    step(job, {})
    step(job, {"collect": P.Observed("failed", reason="boom")}, T0)
    st = job.status.stages["collect"]
    assert st.phase == "BackingOff" and st.next_attempt_at == T0 + timedelta(seconds=10)
    assert P.plan(job, {}, T0 + timedelta(seconds=5)) == [P.Wait(T0 + timedelta(seconds=10))]
    assert P.plan(job, {}, T0 + timedelta(seconds=10)) == [P.StartStage("collect", 2)]


def test_backoff_grows_and_is_capped():
    assert [P.backoff(n).total_seconds() for n in (1, 2, 3)] == [10, 20, 40]
    assert P.backoff(20).total_seconds() == P.BACKOFF_CAP_S


def test_retries_exhausted_fails_the_job_and_it_stays_failed():
    job = make_job(collect={"maxRetries": 1})
    fail = P.Observed("failed", reason="exit code 1")
    trace = run_to_end(job, {"collect": [fail, fail]})
    assert isinstance(trace[-1], P.FailStage)
    assert job.status.phase == "Failed" and "after 2 attempt(s)" in job.status.message
    assert job.status.stages["judge"].phase == "Pending"
    assert P.plan(job, {"collect": ok("collect")}, T0) == []  # terminal stays terminal


def test_permanent_failure_fails_the_job_at_once_with_the_stage_message():
    job = make_job(eval={"maxRetries": 5})
    bad = P.Observed("failed", reason="InputError: splits: ['x'] are not splits", permanent=True)
    trace = run_to_end(job, {"eval": [bad, ok("eval")]})
    assert not [a for a in trace if isinstance(a, P.RetryStage)]
    assert trace[-1] == P.FailStage("eval", "eval failed permanently (exit code 2: bad input or configuration; "
                                            "not retried): InputError: splits: ['x'] are not splits")
    assert job.status.stages["eval"].attempts == 1 and job.status.stages["eval"].phase == "Failed"
    assert job.status.phase == "Failed" and "InputError: splits" in job.status.message
    assert job.status.stages["policy"].phase == "Succeeded"  # what came before stays done


def test_transient_failure_uses_max_retries():
    job = make_job(collect={"maxRetries": 0})
    step(job, {})
    actions = P.plan(job, {"collect": P.Observed("failed", reason="OOM", permanent=False)}, T0)
    assert actions == [P.FailStage("collect", "collect failed after 1 attempt(s): OOM")]
    job = make_job(collect={"maxRetries": 1})
    step(job, {})
    assert isinstance(P.plan(job, {"collect": P.Observed("failed", reason="OOM")}, T0)[0], P.RetryStage)


def test_permanent_flag_matters_only_for_failures():
    job = make_job()
    step(job, {})
    assert isinstance(P.plan(job, {"collect": P.Observed("missing", permanent=True)}, T0)[0], P.RetryStage)


def test_exit_zero_without_manifest_is_a_failure():
    job = make_job(collect={"maxRetries": 0})
    step(job, {})
    actions = P.plan(job, {"collect": P.Observed("succeeded", result={})}, T0)
    assert isinstance(actions[0], P.FailStage) and "without reporting a manifest" in actions[0].reason


def test_vanished_job_is_retried():
    job = make_job()
    step(job, {})
    actions = P.plan(job, {"collect": P.Observed("missing")}, T0)
    assert isinstance(actions[0], P.RetryStage) and "disappeared" in actions[0].reason


def test_succeeded_job_never_restarts():
    job = make_job()
    run_to_end(job)
    assert P.plan(job, {}, T0) == []


def test_suspend_and_resume():
    job = make_job()
    step(job, {})
    job.spec.suspend = True
    assert step(job, {}) == [P.SuspendJob()]
    assert job.status.phase == "Suspended"
    assert P.plan(job, {}, T0) == []
    job.spec.suspend = False
    assert step(job, {}) == [P.ResumeJob()]
    assert job.status.phase == "Running" and job.status.stages["collect"].phase == "Running"
    assert [c.status for c in job.status.conditions if c.type == "Suspended"] == ["False"]


def test_apply_does_not_mutate_its_input():
    job = make_job()
    before = job.status.model_dump()
    P.apply(job, P.StartStage("collect", 1), T0)
    assert job.status.model_dump() == before


def test_job_names_are_dns_safe_and_short():
    name = P.job_name("a" * 40, "collect", 20)
    assert len(name) <= 63 and name == name.lower()


def test_conditions_carry_generation():
    job = make_job()
    run_to_end(job)
    assert all(c.observed_generation == 1 for c in job.status.conditions)
