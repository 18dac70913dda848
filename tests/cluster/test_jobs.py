"""The node agent's Job controller logic, pure: a Job and its pods in, actions and status out.
Expected values follow kube-controller-manager 1.36 (pkg/controller/job)."""

from __future__ import annotations

from datetime import datetime, timedelta

from cluster import jobs
from cluster.jobutil import INDEX_KEY, TRACKING_FINALIZER, format_indexes, match_policy, parse_indexes

NOW = datetime(2026, 1, 1, 12, 0, 0)
GANG_POLICY = {"rules": [
    {"action": "FailJob", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]},
    {"action": "FailJob", "onExitCodes": {"containerName": "stage", "operator": "NotIn", "values": [0]}}]}
SHARD_POLICY = {"rules": [
    {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]},
    {"action": "FailJob", "onExitCodes": {"containerName": "stage", "operator": "NotIn", "values": [0]}}]}


def job(**spec) -> dict:
    status = spec.pop("status", {})
    return {"metadata": {"name": "j", "namespace": "ns", "uid": "job-uid"},
            "spec": {"template": {"metadata": {"labels": {"app": "x"}},
                                  "spec": {"restartPolicy": "Never", "containers": [{"name": "stage", "image": "i"}]}},
                     **spec},
            "status": status}


def pod(name, phase="Running", index=None, exit_code=None, conditions=(), deleting=False, finalizer=True,
        finished=NOW - timedelta(seconds=1)) -> dict:
    meta = {"name": name, "namespace": "ns", "uid": f"uid-{name}",
            "finalizers": [TRACKING_FINALIZER] if finalizer else [], "annotations": {},
            "creationTimestamp": "2026-01-01T11:00:00Z"}
    if index is not None:
        meta["annotations"][INDEX_KEY] = str(index)
    if deleting:
        meta["deletionTimestamp"] = "2026-01-01T11:59:00Z"
    cs = {"name": "stage", "state": {"running": {}}}
    if exit_code is not None:
        cs["state"] = {"terminated": {"exitCode": exit_code, "finishedAt": jobs.ts(finished)}}
    conds = [{"type": t, "status": "True"} for t in conditions]
    if phase == "Running":
        conds.append({"type": "Ready", "status": "True"})
    return {"metadata": meta, "status": {"phase": phase, "containerStatuses": [cs], "conditions": conds}}


def types(status):
    return [(c["type"], c["status"], c.get("reason")) for c in status["conditions"]]


def test_new_job_creates_one_pod_with_the_controller_labels_and_owner():
    out = jobs.sync(job(), [], NOW)
    assert len(out.create) == 1 and not out.delete
    p = out.create[0]
    assert p["metadata"]["generateName"] == "j-"
    assert p["metadata"]["labels"] == {"app": "x", "batch.kubernetes.io/controller-uid": "job-uid",
                                       "batch.kubernetes.io/job-name": "j", "controller-uid": "job-uid",
                                       "job-name": "j"}
    assert p["metadata"]["finalizers"] == [TRACKING_FINALIZER]
    assert p["metadata"]["ownerReferences"][0] == {"apiVersion": "batch/v1", "kind": "Job", "name": "j",
                                                   "uid": "job-uid", "controller": True, "blockOwnerDeletion": True}
    assert out.final["startTime"] == "2026-01-01T12:00:00Z" and out.final["active"] == 1


def test_indexed_job_pods_get_index_hostname_env_and_name_prefix():
    out = jobs.sync(job(completionMode="Indexed", completions=3, parallelism=2), [], NOW)
    assert [p["metadata"]["generateName"] for p in out.create] == ["j-0-", "j-1-"]
    p = out.create[1]
    assert p["metadata"]["annotations"][INDEX_KEY] == "1" and p["metadata"]["labels"][INDEX_KEY] == "1"
    assert p["spec"]["hostname"] == "j-1"
    assert p["spec"]["containers"][0]["env"] == [{"name": "JOB_COMPLETION_INDEX", "valueFrom": {
        "fieldRef": {"fieldPath": f"metadata.labels['{INDEX_KEY}']"}}}]


def test_indexed_completion_counts_indexes_and_completes_with_success_criteria_first():
    j = job(completionMode="Indexed", completions=2, parallelism=2, status={"startTime": "2026-01-01T11:00:00Z"})
    pods = [pod("a", "Succeeded", 0, 0), pod("b", "Running", 1)]
    out = jobs.sync(j, pods, NOW)
    assert not out.create and out.remove_finalizers == ["a"]
    assert out.final["completedIndexes"] == "0" and out.final["succeeded"] == 1 and out.final["active"] == 1
    # a's finalizer is gone; b succeeds
    pods = [pod("a", "Succeeded", 0, 0, finalizer=False), pod("b", "Succeeded", 1, 0)]
    j["status"] = out.final
    out = jobs.sync(j, pods, NOW)
    assert out.interim is not None and types(out.interim)[-1] == ("SuccessCriteriaMet", "True", "CompletionsReached")
    assert types(out.final) == [("SuccessCriteriaMet", "True", "CompletionsReached"),
                                 ("Complete", "True", "CompletionsReached")]
    assert out.final["completedIndexes"] == "0,1" and out.final["succeeded"] == 2
    assert out.final["completionTime"] == "2026-01-01T12:00:00Z"
    assert ("Normal", "Completed", "Job completed") in out.events
    j["status"] = out.final
    assert jobs.sync(j, pods, NOW) == jobs.Sync()  # finished: nothing more


def test_fail_job_rule_on_exit_code_fails_at_once_and_terminates_the_gang_first():
    j = job(completionMode="Indexed", completions=2, parallelism=2, backoffLimit=0, podFailurePolicy=GANG_POLICY,
            status={"startTime": "2026-01-01T11:00:00Z"})
    pods = [pod("a", "Failed", 0, 137), pod("b", "Running", 1)]
    out = jobs.sync(j, pods, NOW)
    assert out.delete == ["b"] and not out.create
    msg = "Container stage for pod ns/a failed with exit code 137 matching FailJob rule at index 1"
    assert types(out.interim) == [("FailureTarget", "True", "PodFailurePolicy")]
    assert out.interim["conditions"][0]["message"] == msg
    # every pod of a failing Job counts as failed; finalizers go at once (the API server keeps b
    # while its kubelet terminates it: graceful deletion)
    assert out.interim["uncountedTerminatedPods"] == {"failed": ["uid-a", "uid-b"]}
    assert out.remove_finalizers == ["a", "b"]
    assert out.final["failed"] == 2 and out.final["terminating"] == 1 and out.final["uncountedTerminatedPods"] == {}
    assert "Failed" not in [c["type"] for c in out.final["conditions"]]  # b still terminating
    j["status"] = out.final
    a = pod("a", "Failed", 0, 137, finalizer=False)
    out = jobs.sync(j, [a, pod("b", "Running", 1, deleting=True, finalizer=False)], NOW)
    assert out.final is None or "Failed" not in [c["type"] for c in out.final["conditions"]]
    out = jobs.sync(j, [a, pod("b", "Failed", 1, 143, deleting=True, finalizer=False)], NOW)  # the kubelet is done
    assert types(out.final) == [("FailureTarget", "True", "PodFailurePolicy"), ("Failed", "True", "PodFailurePolicy")]
    assert out.final["conditions"][1]["message"] == msg and not out.remove_finalizers
    assert out.final["failed"] == 2 and out.final["terminating"] == 0 and "completionTime" not in out.final
    assert ("Warning", "PodFailurePolicy", msg) in out.events


def test_disruption_target_first_matching_rule_wins():
    disrupted = pod("a", "Failed", exit_code=143, conditions=["DisruptionTarget"])
    assert match_policy(GANG_POLICY, disrupted)[2] == "FailJob"
    assert "has condition DisruptionTarget matching FailJob rule at index 0" in match_policy(GANG_POLICY, disrupted)[0]
    assert match_policy(SHARD_POLICY, disrupted) == (None, False, "Ignore")
    assert match_policy(SHARD_POLICY, pod("b", "Failed", exit_code=2))[2] == "FailJob"
    count = {"rules": [{"action": "Count", "onExitCodes": {"operator": "In", "values": [3]}}]}
    assert match_policy(count, pod("c", "Failed", exit_code=3)) == (None, True, "Count")
    assert match_policy(count, pod("c", "Failed", exit_code=4)) == (None, True, None)
    assert match_policy(count, pod("c", "Failed", exit_code=0)) == (None, True, None)  # 0 never matches


def test_ignored_disruption_is_not_counted_and_the_pod_is_replaced():
    j = job(backoffLimit=0, podFailurePolicy=SHARD_POLICY, status={"startTime": "2026-01-01T11:00:00Z"})
    gone = pod("a", "Failed", exit_code=143, conditions=["DisruptionTarget"], finished=NOW - timedelta(seconds=30))
    out = jobs.sync(j, [gone], NOW)
    assert len(out.create) == 1 and out.remove_finalizers == ["a"]
    assert out.final.get("failed", 0) == 0 and not [c for c in out.final["conditions"] if c["type"] != "Suspended"]


def test_replacement_waits_for_the_pod_failure_backoff():
    j = job(backoffLimit=3, status={"startTime": "2026-01-01T11:00:00Z"})
    out = jobs.sync(j, [pod("a", "Failed", exit_code=1, finished=NOW - timedelta(seconds=4))], NOW)
    assert not out.create and out.requeue_after == 6.0 and out.final["failed"] == 1


def test_backoff_limit_exceeded():
    j = job(backoffLimit=1, status={"startTime": "2026-01-01T11:00:00Z", "failed": 1})
    out = jobs.sync(j, [pod("b", "Failed", exit_code=1)], NOW)
    assert types(out.final) == [("FailureTarget", "True", "BackoffLimitExceeded"),
                                 ("Failed", "True", "BackoffLimitExceeded")]
    assert out.final["conditions"][1]["message"] == "Job has reached the specified backoff limit"
    assert out.final["failed"] == 2


def test_pod_being_deleted_is_replaced_only_once_failed_with_a_policy():
    j = job(podFailurePolicy=SHARD_POLICY, status={"startTime": "2026-01-01T11:00:00Z"})
    out = jobs.sync(j, [pod("a", "Running", deleting=True)], NOW)
    assert not out.create and out.final["terminating"] == 1
    j = job(status={"startTime": "2026-01-01T11:00:00Z"})  # TerminatingOrFailed: counted failed at once
    out = jobs.sync(j, [pod("a", "Running", deleting=True, finished=NOW - timedelta(seconds=60))], NOW)
    assert out.final["failed"] == 1 and len(out.create) == 1


def test_active_deadline():
    j = job(activeDeadlineSeconds=30, status={"startTime": "2026-01-01T11:59:40Z"})
    out = jobs.sync(j, [pod("a")], NOW)
    assert out.requeue_after == 10.0 and not out.delete
    j["status"]["startTime"] = "2026-01-01T11:59:00Z"
    out = jobs.sync(j, [pod("a")], NOW)
    assert out.delete == ["a"] and types(out.final) == [("FailureTarget", "True", "DeadlineExceeded")]
    j["status"] = out.final
    out = jobs.sync(j, [pod("a", "Failed", exit_code=137, deleting=True)], NOW)
    assert types(out.final)[-1] == ("Failed", "True", "DeadlineExceeded")
    assert out.final["conditions"][-1]["message"] == "Job was active longer than specified deadline"


def test_suspend_deletes_pods_sets_condition_and_resume_resets_start_time():
    out = jobs.sync(job(suspend=True), [], NOW)
    assert not out.create and "startTime" not in out.final
    assert types(out.final) == [("Suspended", "True", "JobSuspended")]
    j = job(suspend=True, status={"startTime": "2026-01-01T11:00:00Z", "active": 1})
    out = jobs.sync(j, [pod("a")], NOW)
    assert out.discard == ["a"] and not out.delete  # its finalizer goes first: never counted
    assert out.final["active"] == 0 and out.final["terminating"] == 1
    assert ("Normal", "Suspended", "Job suspended") in out.events
    j = job(status=out.final)
    out = jobs.sync(j, [], NOW + timedelta(seconds=5))
    assert types(out.final) == [("Suspended", "False", "JobResumed")]
    assert out.final["startTime"] == "2026-01-01T12:00:05Z" and len(out.create) == 1


def test_index_intervals_round_trip_like_the_controller():
    assert format_indexes({0, 1, 2, 4, 6, 7}) == "0-2,4,6,7"
    assert parse_indexes("0-2,4,6,7", 10) == {0, 1, 2, 4, 6, 7}
    assert parse_indexes("0-9", 3) == {0, 1, 2}


def test_duplicate_index_pods_are_removed():
    j = job(completionMode="Indexed", completions=2, parallelism=2, status={"startTime": "2026-01-01T11:00:00Z"})
    out = jobs.sync(j, [pod("a", index=0), pod("b", index=0), pod("c", index=1)], NOW)
    assert len(out.discard) == 1 and out.discard[0] in ("a", "b") and not out.create
