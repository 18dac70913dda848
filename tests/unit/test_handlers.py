"""What the operator process keeps per ACTJob goes with the ACTJob."""

from prometheus_client import REGISTRY

from act_operator import handlers, metrics, runtime
from act_operator.api import API_VERSION


def gauge(phase: str) -> float:
    return REGISTRY.get_sample_value("act_actjobs", {"phase": phase})


def body(name: str) -> dict:
    return {"apiVersion": API_VERSION, "kind": "ACTJob",
            "metadata": {"name": name, "namespace": "unit", "uid": f"uid-{name}"},
            "spec": {"model": {"uri": "tiny://qwen3-tiny"}, "environment": {"name": "scienceworld"},
                     "storage": {"root": "file:///tmp/act"}}}


def test_deleted_actjobs_leave_the_phase_gauge_and_the_locks(monkeypatch):
    running, succeeded = gauge("Running") or 0, gauge("Succeeded") or 0
    metrics.observe_phase("unit", "a", "Running")
    metrics.observe_phase("unit", "b", "Running")
    metrics.observe_phase("unit", "c", "Succeeded")
    for name in "abc":
        runtime.LOCKS[f"unit/{name}"]  # noqa: B018 (a reconcile made one)
    assert gauge("Running") == running + 2 and gauge("Succeeded") == succeeded + 1

    handlers.on_delete(body=body("a"))  # the kopf deletion handler
    assert gauge("Running") == running + 1 and "unit/a" not in runtime.LOCKS

    # an ACTJob found gone by a reconcile (deleted while the operator was down)
    monkeypatch.setattr(handlers.kube, "read_actjob", lambda namespace, name: None)
    assert handlers.reconcile("unit", "c") is None
    assert gauge("Succeeded") == succeeded and "unit/c" not in runtime.LOCKS
    assert "unit/b" in runtime.LOCKS and gauge("Running") == running + 1
    handlers.on_delete(body={**body("b"), "spec": {"bad": True}})  # an invalid ACTJob goes too
    assert gauge("Running") == running and "unit/b" not in runtime.LOCKS


def test_event_messages_are_human_text_not_python_reprs():
    from datetime import UTC, datetime

    from act_operator import pipeline as P

    t = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    said = {type(a).__name__: handlers.describe(a) for a in [
        P.StartStage("collect", 1), P.CompleteStage("judge", {"manifest": "s3://b/j/models/judge/_MANIFEST.json"}),
        P.SkipStage("policy", "stages.policy.method is none"), P.ReuseStage("collect", "s3://b/pairs"),
        P.RetryStage("eval", "exit code 1", t), P.FailStage("eval", "eval failed after 2 attempt(s): boom"),
        P.SucceedJob(), P.SuspendJob(), P.ResumeJob(), P.StartReplay(2, ("collect", "judge")),
        P.CompleteReplay({"replay": {"judge": ["r1"], "collect": ["r2", "r3"]}}), P.RetryReplay("exit code 1", t),
        P.FailReplay("replay failed after 4 attempt(s): exit code 1")]}
    assert said["StartStage"] == "collect: attempt 1 started"
    assert said["CompleteStage"] == "judge: succeeded, outputs at s3://b/j/models/judge"
    assert said["RetryStage"] == "eval: attempt failed (exit code 1); next attempt at 2026-01-02T03:04:05Z"
    assert said["FailStage"] == "eval failed after 2 attempt(s): boom"
    assert said["CompleteReplay"] == "replay: collect: 2 run(s), judge: 1 run(s)"
    assert said["StartReplay"].startswith("replay: attempt 2 started (the tracking collect, judge recorded")
    assert said["FailReplay"].endswith("(the ACTJob keeps its outcome)")
    assert not any(c in m for m in said.values() for c in "{}'"), said
    assert set(said) <= {k.__name__ for k in handlers.EVENTS}, "every action has its Event reason"


def test_a_transition_is_told_once_by_its_name_and_the_rest_after_the_status_write(monkeypatch):
    """A transition's Event is named by the transition (uid, action, stage, attempt; never the time):
    told again (re-planned after a conflict, or by a restarted operator) it finds itself there. The
    stage-duration metric and the Waiting Events wait in the outbox until the status write succeeded
    (a write that conflicts drops the executor, outbox and all)."""
    from datetime import timedelta

    from act_operator import kube
    from act_operator import pipeline as P
    from act_operator.api import parse_actjob

    posted, told = [], []
    monkeypatch.setattr(kube, "post_event", lambda body, key, reason, message, type_: posted.append((key, reason)))
    monkeypatch.setattr(handlers, "post_event", lambda body, reason, message, type_: told.append(reason))
    job = parse_actjob(body("told"))
    st = job.status.stages["collect"]
    st.phase, st.attempts, st.start_time = "Running", 1, P.now() - timedelta(seconds=30)
    ex = handlers.ClusterExecutor(job, body("told"))
    action = P.CompleteStage("collect", {"manifest": "s3://b/pairs/_MANIFEST.json"})
    job.status = P.apply(job, action, P.now())
    count = REGISTRY.get_sample_value("act_stage_seconds_count", {"stage": "collect"}) or 0
    ex.perform(job, action)
    ex.tell(job, "Warning", "RetryBackoff", "collect attempt 1 failed")
    assert [r for _, r in posted] == ["StageSucceeded"] and told == []
    assert (REGISTRY.get_sample_value("act_stage_seconds_count", {"stage": "collect"}) or 0) == count
    ex.send()
    assert told == ["RetryBackoff"]
    assert REGISTRY.get_sample_value("act_stage_seconds_count", {"stage": "collect"}) == count + 1
    ex.send()  # sent once
    assert told == ["RetryBackoff"]

    # the same transition planned again (another instant, another executor) has the same name; the
    # next attempt's start, another stage's or another ACTJob's do not
    retry = P.RetryStage("judge", "boom", P.now() + timedelta(seconds=10))
    later = P.RetryStage("judge", "boom", P.now() + timedelta(seconds=99))
    job.status.stages["judge"].attempts = 1
    first = handlers.transition_key(job, retry)
    assert first == handlers.transition_key(job, later)
    job.status.stages["judge"].attempts = 2  # the second attempt's failure is another transition
    assert handlers.transition_key(job, later) != first
    assert handlers.transition_key(job, P.StartStage("judge", 2)) != handlers.transition_key(job, P.StartStage("policy", 2))
    other = parse_actjob(body("other"))
    assert handlers.transition_key(other, P.CompleteStage("collect", {})) != posted[0][0]


def test_the_in_memory_diff_base_is_kopfs_essence_without_copying_what_kopf_drops():
    import kopf

    raw = body("essence")
    raw["metadata"].update(
        resourceVersion="7", generation=2, managedFields=[{"manager": "kubectl", "fieldsV1": {"f:spec": {}}}],
        labels={"team": "a"}, annotations={"note": "kept", "kubectl.kubernetes.io/last-applied-configuration": "{}",
                                           "act-operator.io/on_actjob": "{}"})
    raw["status"] = {"phase": "Running", "stages": {"collect": {"phase": "Running"}}}
    for extra in ([], [("spec",)], [("status", "phase")]):
        kopfs = kopf.AnnotationsDiffBaseStorage().build(body=kopf.Body(raw), extra_fields=extra)
        ours = runtime.MemoryDiffBaseStorage().build(body=kopf.Body(raw), extra_fields=extra)
        assert ours == kopfs, extra
    assert "status" not in ours["metadata"] and ours["status"] == {"phase": "Running"}
