"""The only module that talks to the Kubernetes API.

Everything here is small and idempotent: creating what already exists is not an error,
status is written with the resourceVersion it was computed from (a conflict means
somebody else moved first: re-read and re-plan), and what a stage reported is read
from its pods' termination messages.
"""

from __future__ import annotations

import json
import logging
from functools import lru_cache

from kubernetes import client
from kubernetes.client.rest import ApiException

from act_operator import api as A
from act_operator import experiment as E
from act_operator import termination
from act_operator.launch import merge_results
from act_operator.manifests import ACTJOB_LABEL, COMPLETION_INDEX_ANNOTATION, JOB_NAME_LABEL
from act_operator.pipeline import PREFLIGHT, REPLAY, Observed, OwnedJob
from act_trainer.errors import EXIT_PERMANENT

log = logging.getLogger(__name__)

# verbs x resources this module calls (a test reads them off the code); the Helm chart's RBAC
# is this plus kopf's own watches and patches, checked both ways by tests/unit/test_rbac.py
API_CALLS = {
    ("act-operator.io", "actjobs"): {"get", "list", "create", "patch"},  # list/create/patch: an experiment's children
    ("act-operator.io", "actjobs/status"): {"patch"},
    ("act-operator.io", "actexperiments"): {"get"},
    ("act-operator.io", "actexperiments/status"): {"patch"},
    ("batch", "jobs"): {"create", "get", "patch", "list"},
    ("", "services"): {"create"},
    ("", "configmaps"): {"create"},
    ("", "pods"): {"list"},
    ("", "events"): {"create"},  # a transition's Event, named by the transition (post_event); kopf posts others
}

# what the Python API (act_operator.client.ACTClient) calls on behalf of a user: the user's own
# RBAC, not the operator's (tests/unit/test_rbac.py reads these functions' calls apart)
CLIENT_CALLS = {
    ("act-operator.io", "actjobs"): {"create", "get", "list", "delete"},
}
CLIENT_FUNCTIONS = ("create_actjob", "read_actjob", "list_actjobs", "delete_actjob")


class Conflict(Exception):
    """The ACTJob changed since it was read."""


@lru_cache(maxsize=1)
def _apis():
    api = client.ApiClient()
    return client.CoreV1Api(api), client.BatchV1Api(api), client.CustomObjectsApi(api)


def reset_clients() -> None:
    _apis.cache_clear()


def _ignore_exists(fn, *args, **kwargs) -> bool:
    try:
        fn(*args, **kwargs)
        return True
    except ApiException as e:
        if e.status == 409:
            return False  # AlreadyExists: an earlier reconcile (or operator) created it
        raise


def _none_if_missing(fn, *args):
    """What a read returns, or None when the object does not exist."""
    try:
        return fn(*args)
    except ApiException as e:
        if e.status == 404:
            return None
        raise


def _patch_status(fn, group: str, version: str, namespace: str, plural: str, name: str, status: dict,
                  resource_version: str) -> dict:
    """A status written with the resourceVersion it was computed from: a conflict means somebody
    else moved first (the caller re-reads and re-plans)."""
    body = {"metadata": {"resourceVersion": resource_version}, "status": status}
    try:
        return fn(group, version, namespace, plural, name, body)
    except ApiException as e:
        if e.status == 409:
            raise Conflict(f"{namespace}/{name} changed while it was reconciled") from None
        raise


# --- ACTJobs ---------------------------------------------------------------------------------

def read_actjob(namespace: str, name: str) -> dict | None:
    core, batch, custom = _apis()
    return _none_if_missing(custom.get_namespaced_custom_object, A.GROUP, A.VERSION, namespace, A.PLURAL, name)


def create_actjob(namespace: str, body: dict) -> dict:
    """Create an ACTJob (the Python API's `train`); AlreadyExists is the caller's to handle."""
    core, batch, custom = _apis()
    return custom.create_namespaced_custom_object(A.GROUP, A.VERSION, namespace, A.PLURAL, body,
                                                  field_validation="Strict")


def list_actjobs(namespace: str) -> list[dict]:
    core, batch, custom = _apis()
    return custom.list_namespaced_custom_object(A.GROUP, A.VERSION, namespace, A.PLURAL)["items"]


def delete_actjob(namespace: str, name: str) -> bool:
    """Delete an ACTJob (its stage Jobs and ConfigMaps go with it: they are owned); False if absent."""
    core, batch, custom = _apis()
    try:
        custom.delete_namespaced_custom_object(A.GROUP, A.VERSION, namespace, A.PLURAL, name,
                                               propagation_policy="Background")
        return True
    except ApiException as e:
        if e.status == 404:
            return False
        raise


def patch_status(namespace: str, name: str, status: dict, resource_version: str) -> dict:
    core, batch, custom = _apis()
    return _patch_status(custom.patch_namespaced_custom_object_status, A.GROUP, A.VERSION, namespace, A.PLURAL,
                         name, status, resource_version)


# --- ACTExperiments and their child ACTJobs ----------------------------------------------------

def read_experiment(namespace: str, name: str) -> dict | None:
    core, batch, custom = _apis()
    return _none_if_missing(custom.get_namespaced_custom_object, A.GROUP, A.VERSION, namespace, E.PLURAL, name)


def patch_experiment_status(namespace: str, name: str, status: dict, resource_version: str) -> None:
    core, batch, custom = _apis()
    _patch_status(custom.patch_namespaced_custom_object_status, A.GROUP, A.VERSION, namespace, E.PLURAL, name,
                  status, resource_version)


def experiment_children(namespace: str, experiment: str) -> list[dict]:
    core, batch, custom = _apis()
    return custom.list_namespaced_custom_object(A.GROUP, A.VERSION, namespace, A.PLURAL,
                                                label_selector=f"{E.LABEL}={experiment}")["items"]


def create_child_actjob(namespace: str, body: dict) -> bool:
    """Create an experiment's child ACTJob; False if it exists already (an earlier reconcile made it)."""
    core, batch, custom = _apis()
    return _ignore_exists(custom.create_namespaced_custom_object, A.GROUP, A.VERSION, namespace, A.PLURAL, body,
                          field_validation="Strict")


def set_actjob_suspended(namespace: str, name: str, suspend: bool) -> None:
    core, batch, custom = _apis()
    custom.patch_namespaced_custom_object(A.GROUP, A.VERSION, namespace, A.PLURAL, name,
                                          {"spec": {"suspend": suspend}})


# --- stage objects ---------------------------------------------------------------------------

def create_objects(objects: list[dict]) -> list[str]:
    """Create ConfigMaps, Services and Jobs in order; returns the names that were new."""
    core, batch, custom = _apis()
    created = []
    for obj in objects:
        ns, kind = obj["metadata"]["namespace"], obj["kind"]
        fn = {"ConfigMap": core.create_namespaced_config_map, "Service": core.create_namespaced_service,
              "Job": batch.create_namespaced_job}[kind]
        if _ignore_exists(fn, ns, obj, field_validation="Strict"):
            created.append(f"{kind}/{obj['metadata']['name']}")
    return created


def post_event(body: dict, key: str, reason: str, message: str, type_: str) -> bool:
    """An Event on the object `body`, named by `key` (what it tells: one transition), so that telling
    it again (a reconcile re-planned after a status conflict, an operator restarted before its status
    write) finds it there: exactly once. True if it was new. A failure to post is logged, never fails
    the reconcile (as kopf's own events)."""
    from datetime import UTC, datetime

    meta, core = body["metadata"], _apis()[0]
    t = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    event = {"apiVersion": "v1", "kind": "Event",
             "metadata": {"name": f"{meta['name']}.{key}", "namespace": meta["namespace"]},
             "involvedObject": {"apiVersion": body.get("apiVersion"), "kind": body.get("kind"),
                                "name": meta["name"], "namespace": meta["namespace"], "uid": meta.get("uid")},
             "reason": reason, "message": message[:1024], "type": type_, "count": 1,
             "source": {"component": "act-operator"}, "firstTimestamp": t, "lastTimestamp": t}
    try:
        return _ignore_exists(core.create_namespaced_event, meta["namespace"], event)
    except ApiException as e:
        log.warning("%s/%s: event %s not posted: %s", meta["namespace"], meta["name"], reason, e.reason)
        return False


def set_suspended(namespace: str, job_names: list[str], suspend: bool) -> None:
    core, batch, custom = _apis()
    for name in job_names:
        try:
            batch.patch_namespaced_job(name, namespace, {"spec": {"suspend": suspend}})
        except ApiException as e:
            if e.status != 404:
                raise


def owned_jobs(namespace: str, actjob: str) -> list[OwnedJob]:
    """Every Job of an ACTJob (its stages', preflight's, replay's, vLLM servers'), by its label."""
    core, batch, custom = _apis()
    out = []
    for job in batch.list_namespaced_job(namespace, label_selector=f"{ACTJOB_LABEL}={actjob}").items:
        done = {c.type for c in (job.status.conditions or []) if c.status == "True"} if job.status else set()
        out.append(OwnedJob(job.metadata.name, bool(job.spec.suspend),
                            bool(done & {"Complete", "Failed", "SuccessCriteriaMet", "FailureTarget"})))
    return out


def _terminated(pod):
    """The stage container's terminated state (exit code, reason, message), or None while it runs."""
    for cs in (pod.status.container_statuses or []) if pod.status else []:
        if cs.state and cs.state.terminated:
            return cs.state.terminated
    return None


def _results(namespace: str, job_name: str) -> list[dict]:
    """What a Job's pods reported (rank/shard order): their termination messages, parsed where they
    are JSON; a pod that failed has an `error` that says which pod, how it ended (exit code, signal,
    OOMKilled) and what went wrong (the stage's own error, else its log tail's last error line)."""
    core, batch, custom = _apis()
    pods = core.list_namespaced_pod(namespace, label_selector=f"{JOB_NAME_LABEL}={job_name}").items
    pods.sort(key=lambda p: int((p.metadata.annotations or {}).get(COMPLETION_INDEX_ANNOTATION, 0)))
    out = []
    for pod in pods:
        term = _terminated(pod)
        if term is None:
            continue
        message = term.message or ""
        try:
            result = json.loads(message)
        except json.JSONDecodeError:
            result = None
        tail = "" if isinstance(result, dict) else message  # FallbackToLogsOnError: the log's tail
        result = result if isinstance(result, dict) else {}
        if term.exit_code != 0:
            result["error"] = termination.reason(term.exit_code, tail, who=f"pod {pod.metadata.name}",
                                                 container_reason=term.reason, signal=term.signal,
                                                 error=result.get("error"))
        out.append({**result, "_exit_code": term.exit_code, "_finished": term.finished_at,
                    "_index": int((pod.metadata.annotations or {}).get(COMPLETION_INDEX_ANNOTATION, 0))})
    return out


def first_failures(results: list[dict], n: int = 2) -> list[str]:
    """The errors of the first `n` pods to fail, in the order they failed: the first is the cause
    (a gang's other ranks are stopped after it)."""
    failed = [r for r in results if "error" in r]
    failed.sort(key=lambda r: (r["_finished"] is None, r["_finished"] or 0))
    return [r["error"] for r in failed[:n]]


def observe(namespace: str, job_name: str | None) -> Observed:
    """What the Job of a stage's current attempt says: running, succeeded (with its result),
    failed (with a reason), or missing."""
    if not job_name:
        return Observed("missing")
    core, batch, custom = _apis()
    job = _none_if_missing(batch.read_namespaced_job, job_name, namespace)
    if job is None:
        return Observed("missing")
    conditions = {c.type: c for c in (job.status.conditions or []) if c.status == "True"} if job.status else {}
    if "Failed" in conditions:
        results = _results(namespace, job_name)
        errors = first_failures(results)
        c = conditions["Failed"]
        # the exit-code contract: the stage container's exit code 2 is a permanent failure
        permanent = any(r["_exit_code"] == EXIT_PERMANENT for r in results)
        problems = [p for r in results for p in r.get("problems") or []]  # what a preflight found
        return Observed("failed", reason="; ".join(errors[:2]) or f"{c.reason}: {c.message}", permanent=permanent,
                        result={"problems": problems} if problems else {})
    if "Complete" in conditions or "SuccessCriteriaMet" in conditions:
        # a stage reports its manifest; the preflight, that its checks passed; the replay, its runs
        results = [r for r in _results(namespace, job_name)
                   if "manifest" in r or PREFLIGHT in r or REPLAY in r]
        return Observed("succeeded", result=merge_results(results))
    return Observed("running")


# --- why a running stage makes no progress ------------------------------------------------------

# container waiting reasons that need the user (a missing Secret or ConfigMap, a wrong image...);
# ContainerCreating and PodInitializing are the normal way to start
STUCK_REASONS = ("CreateContainerConfigError", "CreateContainerError", "ImagePullBackOff", "ErrImagePull",
                 "InvalidImageName", "CrashLoopBackOff", "RunContainerError")


def _pod_stall(pod) -> tuple[str, str] | None:
    name = pod.metadata.name
    for cs in (pod.status.container_statuses or []) if pod.status else []:
        waiting = cs.state.waiting if cs.state else None
        if waiting and waiting.reason in STUCK_REASONS:
            return waiting.reason, f"pod {name}: {waiting.reason}: {waiting.message or 'see kubectl describe pod'}"
    for c in (pod.status.conditions or []) if pod.status else []:
        if c.type == "PodScheduled" and c.status == "False" and c.reason == "Unschedulable":
            return "Unschedulable", f"pod {name} cannot be scheduled: {c.message or c.reason}"
    return None


def stalls(namespace: str, job_name: str | None, *, queued: bool) -> list[tuple[str, str]]:
    """(reason, message) for each way the Job of a running stage waits on something the user must
    fix or a queue must grant: its pods cannot start (image, Secret, no node fits) or Kueue has not
    admitted it (`queued`: the ACTJob names a queue, and Kueue unsuspends the Jobs it admits)."""
    if not job_name:
        return []
    core, batch, custom = _apis()
    job = _none_if_missing(batch.read_namespaced_job, job_name, namespace)
    if job is None:
        return []
    if job.spec.suspend:
        if not queued:
            return []  # suspended by spec.suspend: the ACTJob says so itself
        queue = (job.metadata.labels or {}).get("kueue.x-k8s.io/queue-name", "?")
        return [("NotAdmitted", f"Job {job_name} waits for Kueue to admit it (LocalQueue {queue}); "
                                "see `kubectl get workloads` for why")]
    pods = core.list_namespaced_pod(namespace, label_selector=f"{JOB_NAME_LABEL}={job_name}").items
    return [s for s in (_pod_stall(p) for p in pods) if s]
