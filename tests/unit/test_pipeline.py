"""The planner, transition by transition: pure, no services."""

from datetime import UTC, datetime, timedelta

from act_operator import pipeline as P
from act_operator.api import API_VERSION, parse_actjob

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def make_job(preflight_passed=True, **stages):
    """An ACTJob whose preflight passed (unless told otherwise): the stages' tests start at collect."""
    job = parse_actjob({
        "apiVersion": API_VERSION, "kind": "ACTJob",
        "metadata": {"name": "demo", "uid": "u-1", "generation": 1},
        "spec": {"model": {"uri": "tiny://qwen3-tiny"}, "environment": {"name": "scienceworld"},
                 "storage": {"root": "s3://bucket/act"}, "stages": stages},
    })
    if preflight_passed:
        job.status.stages[P.PREFLIGHT].phase = "Succeeded"
    return job


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


SKIP_WARMUP = P.SkipStage("warmup", "stages.warmup.enabled is false (collect samples from model.uri)")


def test_first_plan_starts_collect():
    job = make_job()
    assert P.plan(job, {}, T0) == [SKIP_WARMUP, P.StartStage("collect", 1)]


# --- preflight -------------------------------------------------------------------------------

PREFLIGHT_OK = P.Observed("succeeded", result={"stage": "preflight", "preflight": {"checks": ["storage", "model"]},
                                               "metrics": {"seconds": 1.5}})


def test_every_actjob_starts_with_the_preflight_and_no_stage_before_it_passes():
    job = make_job(preflight_passed=False)
    assert P.plan(job, {}, T0) == [P.StartStage(P.PREFLIGHT, 1)]
    step(job, {})
    st = job.status.stages[P.PREFLIGHT]
    assert (st.phase, st.job_name, job.status.current_stage) == ("Running", "demo-preflight-1", P.PREFLIGHT)
    assert P.plan(job, {}, T0) == [] and P.plan(job, {P.PREFLIGHT: P.Observed("running")}, T0) == []
    assert all(job.status.stages[s].phase == "Pending" for s in ("collect", "judge", "policy", "eval"))


def test_a_passed_preflight_hands_off_to_collect_in_the_same_plan():
    job = make_job(preflight_passed=False)
    step(job, {})
    actions = step(job, {P.PREFLIGHT: PREFLIGHT_OK})
    assert actions == [P.CompleteStage(P.PREFLIGHT, PREFLIGHT_OK.result), SKIP_WARMUP, P.StartStage("collect", 1)]
    st = job.status.stages[P.PREFLIGHT]
    assert st.phase == "Succeeded" and st.message == "2 checks passed" and st.metrics == {"seconds": 1.5}
    valid = next(c for c in job.status.conditions if c.type == "Valid")
    assert (valid.status, valid.reason) == ("True", "PreflightPassed")
    assert P.preflight_passed(job.status)


def test_preflight_problems_fail_the_actjob_at_once_with_valid_false_and_every_problem():
    job = make_job(preflight_passed=False)
    step(job, {})
    problems = ["spec.model.uri: nothing at s3://b/m", "spec.stages.collect.reuse: nothing at s3://b/p",
                "spec.tracking.uri: MLflow at http://x does not answer"]
    failed = P.Observed("failed", reason="preflight found 3 problem(s)", result={"problems": problems})
    actions = step(job, {P.PREFLIGHT: failed})
    assert actions == [P.FailPreflight(tuple(problems))]  # not retried: retrying cannot fix input
    st = job.status
    assert st.phase == "Failed" and all(p in st.message for p in problems)
    conds = {c.type: c for c in st.conditions}
    assert (conds["Valid"].status, conds["Valid"].reason) == ("False", "PreflightFailed")
    assert all(p in conds["Valid"].message for p in problems)
    assert conds["Failed"].status == "True" and conds["Running"].status == "False"
    assert all(st.stages[s].phase == "Pending" and st.stages[s].attempts == 0
               for s in ("collect", "judge", "policy", "eval"))
    assert P.plan(job, {}, T0) == []  # terminal


def test_a_preflight_that_crashed_without_a_verdict_is_retried_then_fails():
    job = make_job(preflight_passed=False)
    crash = P.Observed("failed", reason="OOMKilled")
    trace = run_to_end(job, {P.PREFLIGHT: [crash] * 5})
    starts = [a for a in trace if isinstance(a, P.StartStage)]
    assert starts == [P.StartStage(P.PREFLIGHT, n) for n in (1, 2, 3)]  # PREFLIGHT_SETTINGS.max_retries = 2
    assert job.status.phase == "Failed" and "preflight failed after 3 attempt(s): OOMKilled" in job.status.message


def test_preflight_needs_no_manifest_but_a_stage_does():
    job = make_job(preflight_passed=False)
    trace = run_to_end(job, {P.PREFLIGHT: [PREFLIGHT_OK]})
    assert [a.stage for a in trace if isinstance(a, P.StartStage)] == [P.PREFLIGHT, "collect", "judge", "policy",
                                                                        "eval"]
    assert job.status.phase == "Succeeded"


def test_an_actjob_whose_status_predates_the_preflight_goes_on_without_one():
    job = make_job(preflight_passed=False)
    del job.status.stages[P.PREFLIGHT], job.status.stages["warmup"]  # neither existed then
    job.status.stages["collect"].phase = "Running"
    job.status.stages["collect"].attempts = 1
    assert P.plan(job, {}, T0) == [] and P.preflight_passed(job.status)
    assert P.steps(job.status) == ("collect", "judge", "policy", "eval")


def test_full_run_in_order_and_outputs_flow():
    job = make_job()
    trace = run_to_end(job)
    starts = [a.stage for a in trace if isinstance(a, P.StartStage)]
    assert starts == ["collect", "judge", "policy", "eval"]
    assert isinstance(trace[-1], P.SucceedJob)
    st = job.status
    assert st.phase == "Succeeded" and st.model_uri == "s3://b/policy"
    assert st.stages["collect"].outputs.digest == "sha256:collect"
    assert st.stages["collect"].metrics == {"m": 1.0, "flag": 1.0}  # a boolean is carried as 0/1
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


def test_a_failed_actjob_run_again_tries_its_failed_stage_once_more_and_keeps_what_succeeded():
    job = make_job(eval={"maxRetries": 1})
    crash = P.Observed("failed", reason="exit code 1: OOM")
    run_to_end(job, {"eval": [crash, crash]})
    assert job.status.phase == "Failed" and job.status.stages["eval"].attempts == 2
    done = {s: st.model_copy() for s, st in job.status.stages.items() if st.phase == "Succeeded"}
    failed = job.status

    job.status = P.run_again(failed, T0)
    assert failed.phase == "Failed" and failed.stages["eval"].phase == "Failed"  # the input is not changed
    assert job.status.phase == "Pending" and job.status.completion_time is None
    assert job.status.message == "run again: eval tried again (attempt 3)"
    assert [c for c in job.status.conditions if c.type == "Failed"][0].status == "False"
    ev = job.status.stages["eval"]
    assert ev.phase == "Pending" and ev.attempts == 2 and "tried again after: eval failed after 2" in ev.message
    trace = run_to_end(job, {"eval": [crash, crash, crash]})  # the third attempt fails as well
    assert [a for a in trace if isinstance(a, P.StartStage)] == [P.StartStage("eval", 3)]  # one attempt more
    assert job.status.phase == "Failed" and "after 3 attempt(s)" in job.status.message
    assert {s: st for s, st in job.status.stages.items() if s in done} == done  # collect, judge, policy kept

    job.status = P.run_again(job.status, T0)
    trace = run_to_end(job)
    assert [a for a in trace if isinstance(a, P.StartStage)] == [P.StartStage("eval", 4)]
    assert job.status.phase == "Succeeded" and isinstance(trace[-1], P.SucceedJob)
    assert [c for c in job.status.conditions if c.type == "Succeeded"][0].status == "True"
    assert P.run_again(job.status, T0) == job.status  # only a Failed ACTJob is run again


def test_a_failed_preflight_run_again_checks_again():
    job = make_job(preflight_passed=False)
    run_to_end(job, {P.PREFLIGHT: [P.Observed("failed", result={"problems": ["spec.storage.root: no bucket"]})]})
    assert job.status.phase == "Failed" and job.status.stages["collect"].attempts == 0
    job.status = P.run_again(job.status, T0)
    assert P.plan(job, {}, T0) == [P.StartStage(P.PREFLIGHT, 2)]
    run_to_end(job)
    valid = [c for c in job.status.conditions if c.type == "Valid"][0]
    assert job.status.phase == "Succeeded" and (valid.status, valid.reason) == ("True", "PreflightPassed")


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


# --- the Waiting condition -------------------------------------------------------------------

def test_waiting_is_set_with_every_wait_then_cleared_with_an_event_each_time():
    job = make_job()
    step(job, {})
    waits = [("CreateContainerConfigError", 'pod demo-collect-1-x: CreateContainerConfigError: secret "act-s3" '
                                            'not found'),
             ("MLflowUnavailable", "MLflow at http://mlflow:5000 does not answer")]
    event = P.set_waiting(job.status, waits, T0, 1)
    assert event == ("Warning", "CreateContainerConfigError", "; ".join(m for _, m in waits))
    cond = next(c for c in job.status.conditions if c.type == P.WAITING)
    assert (cond.status, cond.reason) == ("True", "CreateContainerConfigError") and 'secret "act-s3"' in cond.message
    assert P.set_waiting(job.status, waits, T0 + timedelta(seconds=10), 1) is None  # unchanged: no new event
    assert cond.last_transition_time == T0
    event = P.set_waiting(job.status, [], T0 + timedelta(seconds=20), 1)
    assert event[0:2] == ("Normal", "WaitOver") and 'secret "act-s3"' in event[2]
    cond = next(c for c in job.status.conditions if c.type == P.WAITING)
    assert (cond.status, cond.reason) == ("False", P.NOT_WAITING)
    assert P.set_waiting(job.status, [], T0 + timedelta(seconds=30), 1) is None


def test_nothing_waiting_adds_no_condition():
    job = make_job()
    assert P.set_waiting(job.status, [], T0, 1) is None
    assert not any(c.type == P.WAITING for c in job.status.conditions)


def test_a_stage_backing_off_explains_its_wait_and_names_an_unreachable_s3():
    job = make_job()
    step(job, {})
    reason = ("cannot check write access to s3://b/act: S3 endpoint http://minio:9000 is unreachable (...); "
              "check the storage endpoint")
    step(job, {"collect": P.Observed("failed", reason=reason)})
    [(why, message)] = P.retry_waits(job.status)
    assert why == "StorageUnavailable" and "collect attempt 1 failed" in message and "attempt 2 at" in message
    job2 = make_job()
    step(job2, {})
    step(job2, {"collect": P.Observed("failed", reason="CUDA out of memory")})
    assert P.retry_waits(job2.status)[0][0] == "RetryBackoff"


# --- the replay of tracking recorded offline -----------------------------------------------------

def offline(stage):
    """A stage that succeeded with its tracking recorded in storage (MLflow did not answer it)."""
    o = ok(stage)
    return P.Observed("succeeded", result={**o.result, "tracking_offline": "start_run: ConnectionError"})


def finished_offline(parent="parent-1"):
    job = make_job()
    run_to_end(job, {"judge": [offline("judge")], "eval": [offline("eval")]})
    job.status.mlflow.run_id, job.status.mlflow.experiment_id = parent, "1"
    return job


def test_a_stage_that_recorded_its_tracking_offline_says_so_in_its_status():
    job = finished_offline()
    assert job.status.phase == "Succeeded"
    assert {s for s, st in job.status.stages.items() if st.tracking_offline} == {"judge", "eval"}
    assert P.offline_stages(job.status) == ("judge", "eval")


def test_no_offline_stage_no_replay():
    job = make_job()
    run_to_end(job)
    job.status.mlflow.run_id = "parent-1"
    assert job.status.phase == "Succeeded" and P.plan(job, {}, T0) == []


def test_the_replay_waits_for_the_parent_run_and_for_mlflow_to_answer():
    job = finished_offline(parent=None)
    assert P.plan(job, {}, T0) == []  # no parent run yet: the executor opens it once MLflow answers
    job.status.mlflow.run_id = "parent-1"
    P.set_waiting(job.status, [("MLflowUnavailable", "MLflow at http://m does not answer")], T0, 1)
    assert P.plan(job, {}, T0) == []
    P.set_waiting(job.status, [], T0, 1)
    assert P.plan(job, {}, T0) == [P.StartReplay(1, ("judge", "eval"))]


def test_the_replay_runs_once_and_records_the_child_runs_without_touching_the_outcome():
    job = finished_offline()
    before = (job.status.phase, job.status.message, job.status.completion_time, job.status.model_uri)
    step(job, {})
    r = job.status.mlflow.replay
    assert (r.phase, r.attempts, r.job_name) == ("Running", 1, "demo-replay-1")
    assert P.plan(job, {P.REPLAY: P.Observed("running")}, T0) == []
    done = P.Observed("succeeded", result={"stage": "replay", "replay": {"judge": ["c1"], "eval": ["c2", "c3"]}})
    assert step(job, {P.REPLAY: done}) == [P.CompleteReplay(done.result)]
    assert job.status.mlflow.replay.phase == "Succeeded"
    assert job.status.stages["judge"].mlflow_run_id == "c1" and job.status.stages["eval"].mlflow_run_id == "c2"
    cond = next(c for c in job.status.conditions if c.type == P.REPLAYED)
    assert (cond.status, cond.reason) == ("True", "Replayed") and "3 child run(s)" in cond.message
    assert (job.status.phase, job.status.message, job.status.completion_time, job.status.model_uri) == before
    assert P.plan(job, {P.REPLAY: done}, T0) == []  # done is final


def test_a_failing_replay_is_retried_with_backoff_then_given_up_and_the_actjob_stays_succeeded():
    job = finished_offline()
    before = job.status.model_dump(include={"phase", "message", "completion_time", "model_uri", "registered_model"})
    now = T0
    step(job, {}, now)
    failed = P.Observed("failed", reason="MlflowException: connection refused")
    for attempt in range(1, P.REPLAY_SETTINGS.max_retries + 1):
        [retry] = step(job, {P.REPLAY: failed}, now)
        assert isinstance(retry, P.RetryReplay) and job.status.mlflow.replay.phase == "BackingOff"
        assert "connection refused" in retry.reason
        assert P.plan(job, {}, now) == [P.Wait(retry.not_before)]
        now = retry.not_before
        assert step(job, {}, now) == [P.StartReplay(attempt + 1, ("judge", "eval"))]
    [give_up] = step(job, {P.REPLAY: failed}, now)
    assert isinstance(give_up, P.FailReplay) and f"after {P.REPLAY_SETTINGS.max_retries + 1} attempt(s)" in \
        give_up.reason
    cond = next(c for c in job.status.conditions if c.type == P.REPLAYED)
    assert (cond.status, cond.reason) == ("False", "ReplayFailed") and "outcome stands" in cond.message
    assert job.status.model_dump(include=set(before)) == before
    assert job.status.phase == "Succeeded" and P.plan(job, {}, now) == []


def test_a_permanent_replay_failure_is_not_retried():
    job = finished_offline()
    step(job, {})
    [fail] = step(job, {P.REPLAY: P.Observed("failed", reason="invalid config", permanent=True)})
    assert isinstance(fail, P.FailReplay) and job.status.mlflow.replay.attempts == 1


def test_a_failed_actjob_replays_the_stages_that_succeeded():
    job = make_job()
    bad = P.Observed("failed", reason="boom", permanent=True)
    run_to_end(job, {"collect": [offline("collect")], "judge": [bad]})
    job.status.mlflow.run_id = "parent-1"
    assert job.status.phase == "Failed" and P.plan(job, {}, T0) == [P.StartReplay(1, ("collect",))]


# --- suspend: every Job of the ACTJob ------------------------------------------------------------

def test_a_suspend_suspends_every_running_job_of_the_actjob_even_one_the_status_does_not_know():
    owned = [P.OwnedJob("demo-preflight-1", suspended=False, finished=True),
             P.OwnedJob("demo-collect-1", suspended=False, finished=True),  # ended at the hand-off
             P.OwnedJob("demo-judge-1", suspended=False, finished=False),  # created by it, not in the status
             P.OwnedJob("demo-judge-1-vllm", suspended=False, finished=False),
             P.OwnedJob("demo-policy-1", suspended=True, finished=False)]
    assert P.jobs_to_suspend(owned) == ["demo-judge-1", "demo-judge-1-vllm"]
    assert P.jobs_to_suspend([]) == []
