"""The Job controller's decision, pure: given a batch/v1 Job and its pods (plain dicts as the
API serves them) and the time, what to create, delete and write. No I/O.

Follows kube-controller-manager 1.36 `pkg/controller/job` (syncJob, manageJob,
trackJobStatusAndRemoveFinalizers, matchPodFailurePolicy) with the gates that are on by
default there (JobPodReplacementPolicy, JobManagedBy, PodIndexLabel, JobSuccessPolicy):

- pods carry the `batch.kubernetes.io/job-tracking` finalizer; a finished pod is counted by
  first recording its uid in `status.uncountedTerminatedPods` (the `interim` write), then
  removing its finalizer, then moving it to `succeeded`/`failed` (the final write);
- a terminal decision is recorded first as `FailureTarget` / `SuccessCriteriaMet` while the
  remaining pods terminate; `Failed` / `Complete` follow once `status.terminating` is 0;
- with a podFailurePolicy only pods in phase Failed count as failed (podReplacementPolicy
  Failed): a pod being deleted is replaced only once it has finished terminating.

Not modelled: backoffLimitPerIndex / maxFailedIndexes / FailIndex, successPolicy rules,
restartPolicy OnFailure restarts, managedBy, orphan adoption, MaxUncountedPods batching.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from .jobutil import (
    CONTROLLER_UID_LABEL,
    INDEX_KEY,
    JOB_NAME_LABEL,
    TRACKING_FINALIZER,
    Spec,
    completion_index,
    condition,
    format_indexes,
    has_finalizer,
    is_active,
    is_failed,
    is_finished,
    is_ready,
    is_terminating,
    match_policy,
    parse_indexes,
    parse_ts,
    phase,
    ts,
)

DEFAULT_BACKOFF = 10.0  # DefaultJobPodFailureBackOff, doubled per consecutive failure
MAX_BACKOFF = 360.0  # MaxJobPodFailureBackOff
MAX_GENERATED_NAME = 58  # names.MaxGeneratedNameLength


@dataclass
class Sync:
    """What one syncJob does, in order: delete, discard, create, write `interim`, remove
    finalizers, write `status`. `status` is None when nothing changed. `delete` keeps the
    pods' tracking finalizer (deleteActivePods of a finishing Job: they are counted);
    `discard` removes it first (deleteJobPods of a suspended or over-full Job: never counted)."""

    create: list[dict] = field(default_factory=list)
    delete: list[str] = field(default_factory=list)
    discard: list[str] = field(default_factory=list)
    interim: dict | None = None
    remove_finalizers: list[str] = field(default_factory=list)
    status: dict | None = None
    events: list[tuple[str, str, str]] = field(default_factory=list)  # (type, reason, message)
    requeue_after: float | None = None

    @property
    def final(self) -> dict | None:
        """The Job status once this sync is done (None: unchanged)."""
        return self.status if self.status is not None else self.interim


# --- pods to create --------------------------------------------------------------------------

def new_pod(job: dict, spec: Spec, index: int | None) -> dict:
    """The pod manifest the controller posts (generateName; the server adds the suffix)."""
    meta, tmpl = job["metadata"], copy.deepcopy(spec.template)
    tmeta, pspec = tmpl.get("metadata") or {}, tmpl.get("spec") or {}
    labels = {**(tmeta.get("labels") or {}), CONTROLLER_UID_LABEL: meta["uid"], JOB_NAME_LABEL: meta["name"],
              "controller-uid": meta["uid"], "job-name": meta["name"]}  # the API server's template defaults
    annotations = dict(tmeta.get("annotations") or {})
    gen = f"{meta['name']}-"
    if index is not None:
        annotations[INDEX_KEY] = labels[INDEX_KEY] = str(index)
        pspec["hostname"] = f"{meta['name']}-{index}"
        suffix = f"-{index}-"
        gen = (meta["name"] + suffix if len(meta["name"] + suffix) <= MAX_GENERATED_NAME
               else meta["name"][:MAX_GENERATED_NAME - len(suffix)] + suffix)
        for c in pspec.get("initContainers", []) + pspec.get("containers", []):
            if not any(e.get("name") == "JOB_COMPLETION_INDEX" for e in c.get("env") or []):
                c.setdefault("env", []).append({"name": "JOB_COMPLETION_INDEX", "valueFrom": {"fieldRef": {
                    "fieldPath": f"metadata.labels['{INDEX_KEY}']"}}})
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {
        "generateName": gen, "namespace": meta["namespace"], "labels": labels, "annotations": annotations,
        "finalizers": [TRACKING_FINALIZER],
        "ownerReferences": [{"apiVersion": "batch/v1", "kind": "Job", "name": meta["name"], "uid": meta["uid"],
                             "controller": True, "blockOwnerDeletion": True}]}, "spec": pspec}


def _finish_time(pod: dict) -> datetime | None:
    times = [parse_ts(((cs.get("state") or {}).get("terminated") or {}).get("finishedAt"))
             for cs in (pod.get("status") or {}).get("containerStatuses") or []]
    times = [t for t in times if t]
    return max(times) if times else parse_ts(pod["metadata"].get("deletionTimestamp"))


def backoff_remaining(pods: list[dict], spec: Spec, now: datetime) -> float:
    """Seconds before a replacement may be created (backoff_utils.go): 10 s doubled for each
    failure since the last success, capped at 6 minutes, from the last failure."""
    succ = [t for p in pods if phase(p) == "Succeeded" and (t := _finish_time(p))]
    last_ok = max(succ) if succ else None
    fails = sorted(t for p in pods if is_failed(p, spec) and (t := _finish_time(p)) and (not last_ok or t > last_ok))
    if not fails:
        return 0.0
    delay = min(DEFAULT_BACKOFF * 2 ** (len(fails) - 1), MAX_BACKOFF)
    return max(0.0, (fails[-1] + timedelta(seconds=delay) - now).total_seconds())


def _new_condition(type_: str, reason: str, message: str, now: datetime, status: str = "True") -> dict:
    return {"type": type_, "status": status, "reason": reason, "message": message,
            "lastProbeTime": ts(now), "lastTransitionTime": ts(now)}


def _ensure_condition(conds: list[dict], type_: str, status: str, reason: str, message: str, now) -> bool:
    for i, c in enumerate(conds):
        if c["type"] == type_:
            if (c["status"], c.get("reason"), c.get("message")) != (status, reason, message):
                conds[i] = _new_condition(type_, reason, message, now, status)
                return True
            return False
    if status != "False":
        conds.append(_new_condition(type_, reason, message, now, status))
        return True
    return False


# --- syncJob ---------------------------------------------------------------------------------

def sync(job: dict, pods: list[dict], now: datetime) -> Sync:
    """One syncJob of `job` given all pods it controls (ownerReference to its uid)."""
    out = Sync()
    if is_finished(job):
        return out
    spec = Spec(job)
    old = job.get("status") or {}
    st = copy.deepcopy(old)
    st.setdefault("conditions", [])
    unc = st.get("uncountedTerminatedPods") or {}
    unc_s, unc_f = list(unc.get("succeeded") or []), list(unc.get("failed") or [])
    valid = [p for p in pods if not spec.indexed or 0 <= completion_index(p) < (spec.completions or 0)]
    with_fin = {p["metadata"]["uid"] for p in pods if has_finalizer(p)}
    # cleanUncountedPodsWithoutFinalizers: finalizer gone -> counted
    st["succeeded"] = old.get("succeeded", 0) + sum(u not in with_fin for u in unc_s)
    st["failed"] = old.get("failed", 0) + sum(u not in with_fin for u in unc_f)
    unc_s, unc_f = [u for u in unc_s if u in with_fin], [u for u in unc_f if u in with_fin]

    active = [p for p in pods if is_active(p)]
    terminating = sum(is_terminating(p) for p in pods)
    ready = sum(is_ready(p) for p in active)
    fresh = [p for p in valid if has_finalizer(p)]
    new_succ = [p for p in fresh if p["metadata"]["uid"] not in unc_s and phase(p) == "Succeeded"]
    new_fail = [p for p in fresh if p["metadata"]["uid"] not in unc_f and is_failed(p, spec)]
    succeeded = st["succeeded"] + len(new_succ) + len(unc_s)
    failed = st["failed"] + sum(match_policy(spec.policy, p)[1] for p in new_fail) + len(unc_f)
    if not st.get("startTime") and not spec.suspend:
        st["startTime"] = ts(now)

    finished = condition(job, "SuccessCriteriaMet")
    if finished is None:
        target = condition(job, "FailureTarget")
        if target and target["status"] == "True":
            finished = _new_condition("Failed", target["reason"], target["message"], now)
        else:
            msg = next((m for p in pods if is_failed(p, spec) and (m := match_policy(spec.policy, p)[0])), None)
            if msg:
                finished = _new_condition("FailureTarget", "PodFailurePolicy", msg, now)
    if finished is None:
        started = parse_ts(st.get("startTime"))
        if failed > spec.backoff_limit:
            finished = _new_condition("FailureTarget", "BackoffLimitExceeded",
                                      "Job has reached the specified backoff limit", now)
        elif spec.deadline is not None and started and not spec.suspend:
            left = spec.deadline - (now - started).total_seconds()
            if left <= 0:
                finished = _new_condition("FailureTarget", "DeadlineExceeded",
                                          "Job was active longer than specified deadline", now)
            else:
                out.requeue_after = left
    prev_indexes = parse_indexes(old.get("completedIndexes"), spec.completions or 0) if spec.indexed else set()
    indexes = set(prev_indexes)
    if spec.indexed:
        indexes |= {completion_index(p) for p in fresh if phase(p) == "Succeeded"}
        succeeded = len(indexes)

    suspend_changed = False
    if finished is not None:  # terminate what still runs
        out.delete += [p["metadata"]["name"] for p in active]
        terminating += len(active)
        ready -= sum(is_ready(p) for p in active)
        n_active = 0
    else:
        n_active = _manage(job, spec, pods, active, succeeded, indexes, terminating, now, out)
        if n_active < len(active):  # deleted by _manage
            terminating += len(active) - n_active
            ready = sum(is_ready(p) for p in active if p["metadata"]["name"] not in out.discard)
        complete = succeeded > 0 and n_active == 0 if spec.completions is None else (
            succeeded >= spec.completions and n_active == 0)
        if complete:
            finished = _new_condition("SuccessCriteriaMet", "CompletionsReached",
                                      "Job has reached the specified number of completions", now)
        elif spec.suspend:
            if _ensure_condition(st["conditions"], "Suspended", "True", "JobSuspended", "Job suspended", now):
                suspend_changed = True
                out.events.append(("Normal", "Suspended", "Job suspended"))
        elif _ensure_condition(st["conditions"], "Suspended", "False", "JobResumed", "Job resumed", now):
            suspend_changed = True
            out.events.append(("Normal", "Resumed", "Job resumed"))
            st["startTime"] = ts(now)
    st["active"], st["ready"], st["terminating"] = n_active, ready, terminating

    # trackJobStatusAndRemoveFinalizers
    failing = finished is not None and finished["type"] != "SuccessCriteriaMet"
    for p in sorted((p for p in pods if has_finalizer(p)), key=completion_index):
        uid, considered_failed = p["metadata"]["uid"], is_failed(p, spec)
        in_range = not spec.indexed or 0 <= completion_index(p) < (spec.completions or 0)
        if not (finished is not None or phase(p) == "Succeeded" or considered_failed):
            continue
        out.remove_finalizers.append(p["metadata"]["name"])
        if phase(p) == "Succeeded" and uid not in unc_f:
            if not spec.indexed and uid not in unc_s:
                unc_s.append(uid)
        elif considered_failed or failing:
            if uid not in unc_f and in_range and match_policy(spec.policy, p)[1]:
                unc_f.append(uid)
    if spec.indexed:
        st["succeeded"] = len(indexes)
        st["completedIndexes"] = format_indexes(indexes)
    if finished is not None and finished["type"] == "FailureTarget":
        st["conditions"].append(finished)
        finished = _new_condition("Failed", finished["reason"], finished["message"], now)
    elif finished is not None and finished["type"] == "SuccessCriteriaMet":
        if condition(job, "SuccessCriteriaMet") is None:
            st["conditions"].append(finished)
        finished = _new_condition("Complete", finished["reason"], finished["message"], now)
    st["uncountedTerminatedPods"] = {k: v for k, v in (("succeeded", unc_s), ("failed", unc_f)) if v}
    if _changed(old, st) or suspend_changed:
        out.interim = copy.deepcopy(st)
    # after the finalizers are removed, every uncounted pod is counted
    st["succeeded"] = st["succeeded"] + (0 if spec.indexed else len(unc_s))
    st["failed"] += len(unc_f)
    st["uncountedTerminatedPods"] = {}
    if finished is not None and terminating == 0:
        _ensure_condition(st["conditions"], finished["type"], "True", finished["reason"], finished["message"], now)
        if finished["type"] == "Complete":
            st["completionTime"] = finished["lastTransitionTime"]
            out.events.append(("Normal", "Completed", "Job completed"))
        else:
            out.events.append(("Warning", finished["reason"], finished["message"]))
    if _changed(out.interim or old, st):
        out.status = st
    if out.interim is not None and out.status is None and not out.remove_finalizers:
        out.status, out.interim = out.interim, None
    return out


def _changed(old: dict, new: dict) -> bool:
    def norm(s):
        return {k: v for k, v in s.items() if v not in (None, [], {}, "") and not (k in (
            "active", "ready", "terminating", "succeeded", "failed") and v == 0)}
    return norm(old) != norm(new)


def _manage(job, spec: Spec, pods, active, succeeded, indexes, terminating, now, out: Sync) -> int:
    """manageJob: delete surplus or suspended pods, else create what is missing. Returns active."""
    if spec.suspend:
        out.discard += [p["metadata"]["name"] for p in active]
        return 0
    if spec.completions is None:
        want = len(active) if succeeded > 0 else spec.parallelism
    else:
        want = max(0, min(spec.completions - succeeded, spec.parallelism))
    surplus = []
    if spec.indexed:  # duplicated or out-of-range indexes first
        seen: set[int] = set()
        for p in sorted(active, key=completion_index):
            ix = completion_index(p)
            if ix < 0 or ix >= spec.completions or ix in seen:
                surplus.append(p)
            seen.add(ix)
    rm_at_least = max(0, len(active) - want)
    if len(surplus) < rm_at_least:  # not ready / pending first, newest first
        rest = [p for p in active if p not in surplus]
        rest.sort(key=lambda p: (is_ready(p), phase(p) == "Running", p["metadata"].get("creationTimestamp", "")))
        surplus += rest[:rm_at_least - len(surplus)]
    if surplus:
        out.discard += [p["metadata"]["name"] for p in surplus]
        return len(active) - len(surplus)
    waiting = terminating if spec.only_failed else 0
    diff = want - waiting - len(active)
    if diff <= 0:
        return len(active)
    remaining = backoff_remaining(pods, spec, now)
    if remaining > 0:
        out.requeue_after = min(out.requeue_after or remaining, remaining)
        return len(active)
    if spec.indexed:
        busy = set(indexes) | {completion_index(p) for p in active}
        if spec.only_failed:
            busy |= {completion_index(p) for p in pods if is_terminating(p)}
        todo = [i for i in range(spec.completions) if i not in busy][:diff]
        out.create += [new_pod(job, spec, i) for i in todo]
    else:
        out.create += [new_pod(job, spec, None) for _ in range(diff)]
    return len(active) + len(out.create)
