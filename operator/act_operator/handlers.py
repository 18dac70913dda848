"""kopf wiring of ACTJobs: which events make the operator reconcile one, and the cluster's
executor. Thin on purpose: the loop is drive.advance's, the decisions pipeline.plan's, the
lineage lineage.py's, the objects manifests', the API calls kube's; what the process shares
with the ACTExperiment handlers (settings, locks, kopf's configuration) is runtime.py's.

    kopf run -m act_operator.handlers --all-namespaces
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from functools import partial

import kopf

from act_operator import api as A
from act_operator import drive, kube, lineage, manifests, metrics, periodic, pipeline, policy, runtime, watch
from act_operator.pipeline import now
from act_operator.runtime import DIFFBASE, RETRY_S, plain, post_event
from act_trainer import stagedefs

log = logging.getLogger("act_operator")

EVENTS = {  # action -> (reason, type)
    pipeline.StartStage: ("StageStarted", "Normal"), pipeline.CompleteStage: ("StageSucceeded", "Normal"),
    pipeline.SkipStage: ("StageSkipped", "Normal"), pipeline.ReuseStage: ("StageReused", "Normal"),
    pipeline.RetryStage: ("StageRetrying", "Warning"), pipeline.FailStage: ("Failed", "Warning"),
    pipeline.FailPreflight: ("PreflightFailed", "Warning"),
    pipeline.SucceedJob: ("Succeeded", "Normal"), pipeline.SuspendJob: ("Suspended", "Normal"),
    pipeline.ResumeJob: ("Resumed", "Normal"),
    pipeline.StartReplay: ("ReplayStarted", "Normal"), pipeline.CompleteReplay: ("Replayed", "Normal"),
    pipeline.RetryReplay: ("ReplayRetrying", "Warning"), pipeline.FailReplay: ("ReplayFailed", "Warning"),
}


def tracking_uri(job: A.ACTJob) -> str | None:
    return runtime.SETTINGS.tracking_uri(job.spec.tracking.uri)


def describe(action) -> str:
    """An action as the text of its Event (what `kubectl describe actjob` shows)."""
    a = action
    if isinstance(a, pipeline.StartStage):
        return f"{a.stage}: attempt {a.attempt} started"
    if isinstance(a, pipeline.CompleteStage):
        return f"{a.stage}: succeeded" + (f", outputs at {a.result['manifest'].rsplit('/', 1)[0]}"
                                          if a.result.get("manifest") else "")
    if isinstance(a, pipeline.SkipStage):
        return f"{a.stage}: skipped ({a.reason})"
    if isinstance(a, pipeline.ReuseStage):
        return f"{a.stage}: reusing {a.uri}"
    if isinstance(a, pipeline.RetryStage):
        return f"{a.stage}: attempt failed ({a.reason}); next attempt at {a.not_before:%Y-%m-%dT%H:%M:%SZ}"
    if isinstance(a, pipeline.FailStage):
        return a.reason
    if isinstance(a, pipeline.SucceedJob):
        return "all stages finished"
    if isinstance(a, pipeline.SuspendJob):
        return "suspended (spec.suspend is true): running stage Jobs suspended"
    if isinstance(a, pipeline.ResumeJob):
        return "resumed (spec.suspend is false)"
    if isinstance(a, pipeline.StartReplay):
        return f"replay: attempt {a.attempt} started (the tracking {', '.join(a.sources)} recorded while MLflow " \
               "did not answer)"
    if isinstance(a, pipeline.CompleteReplay):
        return "replay: " + ", ".join(f"{s}: {len(ids)} run(s)" for s, ids in sorted(a.result[pipeline.REPLAY].items()))
    if isinstance(a, pipeline.RetryReplay):
        return f"replay: attempt failed ({a.reason}); next attempt at {a.not_before:%Y-%m-%dT%H:%M:%SZ}"
    if isinstance(a, pipeline.FailReplay):
        return a.reason + " (the ACTJob keeps its outcome)"
    return type(a).__name__


def reconcile(namespace: str, name: str, body: dict | None = None) -> float | None:
    """Plan, act, record. Returns seconds until the planner wants to be asked again, if it said.
    `body` is the ACTJob as the triggering event saw it: it saves a read when it is current."""
    with runtime.LOCKS[f"{namespace}/{name}"], metrics.RECONCILE_SECONDS.time():
        for _ in range(5):  # a status conflict means someone moved first: read again and re-plan
            try:
                return _reconcile_once(namespace, name, body)
            except kube.Conflict as e:
                log.info("%s; retrying", e)
                body = None
        raise kopf.TemporaryError(f"{namespace}/{name}: status kept changing under the reconcile", delay=1)


def _reconcile_once(namespace: str, name: str, body: dict | None) -> float | None:
    body = body or kube.read_actjob(namespace, name)
    if body is None:  # gone (e.g. deleted while the operator was down): nothing to keep for it
        _forget(namespace, name)
        return None
    if body["metadata"].get("deletionTimestamp"):
        return None
    rv = body["metadata"]["resourceVersion"]
    try:
        job = A.parse_actjob(body)
    except A.SpecError as e:
        return _invalid(body, e, rv)
    metrics.observe_phase(namespace, name, job.status.phase)
    refused = refusals(job)
    if refused and job.status.phase not in pipeline.TERMINAL:
        return _refused(job, body, refused, rv)
    ex = ClusterExecutor(job, body)
    if job.status.phase in pipeline.TERMINAL:
        return _complete_lineage(job, ex, rv, replay=not refused)
    t = now()
    before = job.status.model_dump(mode="json", by_alias=True)
    if not any(c.type == "Valid" for c in job.status.conditions):
        pipeline.set_condition(job.status, "Valid", True, "SpecValid", "the spec passed validation", t,
                               job.metadata.generation)
    step = drive.advance(job, ex, t)
    down = step.mlflow or (lineage.complete(job, ex.tracking_uri) if job.status.phase in pipeline.TERMINAL else None)
    _explain_waits(job, ex, [down] if down else [], t, step.started)
    wait = step.wait
    if job.status.phase in pipeline.TERMINAL:  # the planner's replay of tracking recorded offline
        wait = drive.advance(job, ex).wait or wait
    watch.headline(job.status)  # a stage that ended or started again: its Progress and ETA go
    after = job.status.model_dump(mode="json", by_alias=True)
    if after != before:  # an unchanged status is not written: every write wakes every watcher
        kube.patch_status(namespace, name, after, rv)  # a Conflict drops this pass, its Events with it
    ex.send()
    metrics.observe_phase(namespace, name, job.status.phase)
    return wait


def _complete_lineage(job: A.ACTJob, ex: ClusterExecutor, rv: str, replay: bool = True) -> float | None:
    """A terminal ACTJob stays terminal; only its lineage may still be owed to MLflow: the parent
    run (if MLflow was down all along), the registered model, the parent closed, then the replay
    of the stages' tracking recorded offline (the planner's replay Job: observed, started, retried;
    its outcome goes to status.mlflow.replay, never the phase), unless not `replay` (the platform's
    policy now refuses the spec: no Job is created for it)."""
    if not ex.tracking_uri:
        return None
    before = job.status.model_dump(mode="json", by_alias=True)
    if pipeline.lineage_pending(job.status):
        down = lineage.complete(job, ex.tracking_uri)
        _explain_waits(job, ex, [down] if down else [], now())
    wait = drive.advance(job, ex).wait if replay else None
    after = job.status.model_dump(mode="json", by_alias=True)
    if after != before:
        kube.patch_status(job.metadata.namespace, job.metadata.name, after, rv)
    ex.send()
    return wait


def _explain_waits(job: A.ACTJob, ex: ClusterExecutor, waits: list[lineage.Wait], t,
                   started: set[str] = frozenset()) -> None:
    """The Waiting condition (and an Event when it changes): what the running stages' pods, Kueue,
    a retry or MLflow hold the ACTJob up on; cleared once nothing does. A stage `started` in this
    reconcile is not looked at: its Job was just created and has no pods yet (the timer looks)."""
    if job.status.phase not in pipeline.TERMINAL:
        queued = bool(job.spec.scheduling.queue_name) and not job.spec.suspend
        waits = waits + [w for stage, st in job.status.stages.items() if st.phase == "Running" and stage not in started
                         for w in kube.stalls(job.metadata.namespace, st.job_name, queued=queued)]
        waits += pipeline.retry_waits(job.status)
    drive.explain(job, ex, waits, t)


class ClusterExecutor:
    """drive.Executor on the cluster: a stage attempt is a Job (with its ConfigMap, Service, vLLM
    server) that kube creates; what happened is an Event on the ACTJob. One per reconcile, which
    patches the status once, after its passes.

    A transition's Event is posted as it is carried out, named by the transition (transition_key):
    a reconcile re-planned after a status conflict, or an operator restarted before its status
    write, plans the same transition again and finds its Event there (as it finds its Jobs), so it
    is told exactly once. The stage-duration metric and the Waiting condition's Events wait in
    `outbox` until the status write that records them succeeded (`send`)."""

    def __init__(self, job: A.ACTJob, body: dict):
        self.body = body
        self.tracking_uri = tracking_uri(job)
        self.outbox: list[Callable[[], None]] = []

    def send(self) -> None:
        """Post the Events and observe the metrics of the transitions the status now records."""
        outbox, self.outbox = self.outbox, []
        for deliver in outbox:
            deliver()

    def observe(self, job: A.ACTJob) -> dict[str, pipeline.Observed]:
        """The Jobs of the running stages (and of a running replay), as the cluster has them."""
        jobs = {stage: st.job_name for stage, st in job.status.stages.items() if st.phase == "Running"}
        r = job.status.mlflow.replay
        if r and r.phase == "Running":
            jobs[pipeline.REPLAY] = r.job_name
        return {key: kube.observe(job.metadata.namespace, name) for key, name in jobs.items()}

    def save(self, job: A.ACTJob, waits: list[lineage.Wait]) -> None:
        pass  # one status patch at the end of the reconcile; its waits are explained there

    def tell(self, job: A.ACTJob, type_: str, reason: str, message: str) -> None:
        self.outbox.append(partial(post_event, self.body, reason, message, type_))

    def perform(self, job: A.ACTJob, action) -> float | None:
        ns, settings = job.metadata.namespace, runtime.SETTINGS
        if isinstance(action, pipeline.StartStage):
            objects = manifests.stage_objects(job, action.stage, action.attempt, settings)
            created = kube.create_objects(objects)
            # a Job that was there already was created by a hand-off that raced a suspend (and
            # suspended with it): the planner starts it now, so it runs (with Kueue, Kueue decides)
            existed = [o["metadata"]["name"] for o in objects if o["kind"] == "Job"
                       and f"Job/{o['metadata']['name']}" not in created]
            if existed and not job.spec.scheduling.queue_name:
                kube.set_suspended(ns, existed, False)
        elif isinstance(action, pipeline.StartReplay):
            kube.create_objects(manifests.stage_objects(job, pipeline.REPLAY, action.attempt, settings))
        elif isinstance(action, pipeline.SuspendJob):
            # every Job of the ACTJob, not only those its status knows (a hand-off may race the suspend)
            kube.set_suspended(ns, pipeline.jobs_to_suspend(kube.owned_jobs(ns, job.metadata.name)), True)
        elif isinstance(action, pipeline.ResumeJob) and not job.spec.scheduling.queue_name:
            kube.set_suspended(ns, resumable_jobs(job), False)  # with Kueue, Kueue decides when they run
        if isinstance(action, (pipeline.CompleteStage, pipeline.RetryStage, pipeline.FailStage)):
            _stop_vllm_server(job, action.stage)
        if isinstance(action, pipeline.CompleteStage):
            st = job.status.stages[action.stage]
            if st.start_time:
                self.outbox.append(partial(metrics.STAGE_SECONDS.labels(action.stage).observe,
                                           (st.completion_time - st.start_time).total_seconds()))
        elif isinstance(action, pipeline.Wait):
            return max(0.5, (action.until - now()).total_seconds())
        reason, type_ = EVENTS.get(type(action), (None, None))
        if reason:
            message = job.status.message if isinstance(action, pipeline.FailPreflight) else describe(action)
            kube.post_event(self.body, transition_key(job, action), reason, message, type_)
        return None


def transition_key(job: A.ACTJob, action) -> str:
    """What names a transition's Event: the ACTJob (uid), the action, its stage and attempt (the
    attempt the status is at: the same when it is planned again); a suspend or resume by the spec's
    generation, which each change of spec.suspend moves on. Never the time (a re-planned retry's
    backoff ends at another instant)."""
    import hashlib

    stage = getattr(action, "stage", None)
    if stage in job.status.stages:
        attempt = job.status.stages[stage].attempts
    elif isinstance(action, (pipeline.StartReplay, pipeline.CompleteReplay, pipeline.RetryReplay,
                             pipeline.FailReplay)):
        attempt = job.status.mlflow.replay.attempts if job.status.mlflow.replay else 0
    else:
        attempt = 0
    generation = job.metadata.generation if isinstance(action, (pipeline.SuspendJob, pipeline.ResumeJob)) else ""
    what = f"{job.metadata.uid}|{type(action).__name__}|{stage}|{attempt}|{generation}"
    return hashlib.sha256(what.encode()).hexdigest()[:16]


def _stop_vllm_server(job: A.ACTJob, stage: str) -> None:
    """A stage attempt that ended takes its vLLM server (rollout.mode: server) with it: the
    server Job is suspended, which ends its pod (the operator patches Jobs; it deletes nothing)."""
    if not _has_vllm_server(job, stage):
        return
    attempts = max(1, job.status.stages[stage].attempts)
    kube.set_suspended(job.metadata.namespace, [manifests.vllm_server_name(pipeline.job_name(
        job.metadata.name, stage, a)) for a in range(1, attempts + 1)], True)


def _has_vllm_server(job: A.ACTJob, stage: str) -> bool:
    """A stage that trains with GRPO (its registry entry says which TRL config its method trains
    with) and rollout.mode server (manifests.vllm_server_objects gives it a server Job)."""
    d = stagedefs.find(stage)
    section = d.section(job.spec) if d else None
    return section is not None and d.trl(section) == "GRPOConfig" and section.rollout.mode == "server"


def running_jobs(job: A.ACTJob) -> list[str]:
    return [st.job_name for st in job.status.stages.values() if st.phase == "Running" and st.job_name]


def resumable_jobs(job: A.ACTJob) -> list[str]:
    """What a resume unsuspends: the running stages' Jobs and their vLLM servers (a suspend
    suspended every Job of the ACTJob; a finished attempt's server stays stopped)."""
    out = []
    for stage, st in job.status.stages.items():
        if st.phase == "Running" and st.job_name:
            out.append(st.job_name)
            if _has_vllm_server(job, stage):
                out.append(manifests.vllm_server_name(st.job_name))
    return out


def _invalid(body: dict, err: A.SpecError, rv: str) -> None:
    """What the CRD schema could not reject: mark Failed with Valid=False; create nothing."""
    meta = body["metadata"]
    if (body.get("status") or {}).get("phase") == "Failed":
        return None
    status = A.ACTJobStatus(phase="Failed", message="invalid spec: " + "; ".join(err.problems))
    t = now()
    pipeline.set_condition(status, "Valid", False, "InvalidSpec", status.message, t, meta.get("generation"))
    pipeline.set_condition(status, "Failed", True, "InvalidSpec", status.message, t, meta.get("generation"))
    kube.patch_status(meta["namespace"], meta["name"], status.model_dump(mode="json", by_alias=True), rv)
    post_event(body, "InvalidSpec", status.message, "Warning")
    return None


def refusals(job: A.ACTJob) -> list[str]:
    """What the platform's policy (the chart's policy values, in the operator's settings) refuses in
    the ACTJob's pods, one line per field."""
    s = runtime.SETTINGS
    return policy.refusals(job.spec.pod, s.allowed_images, s.allowed_service_accounts)


def _refused(job: A.ACTJob, body: dict, problems: list[str], rv: str) -> None:
    """An ACTJob the platform's policy refuses (the chart's admission policy refuses it at `kubectl
    apply`, where the cluster has one): Failed for good, Valid=False with reason PolicyViolation
    naming each field, and an Event, before any (further) Job is created. The rest of its status
    stays as it was; a Job it already has (made under an earlier policy) is left to end, none follows.
    Failed is final, as for any ACTJob: the fixed spec is a new ACTJob."""
    status, t, gen = job.status.model_copy(deep=True), now(), job.metadata.generation
    status.phase, status.current_stage, status.completion_time = "Failed", None, t
    status.message = policy.refusal_message(problems)
    pipeline.set_condition(status, "Valid", False, "PolicyViolation", status.message, t, gen)
    pipeline.set_condition(status, "Failed", True, "PolicyViolation", status.message, t, gen)
    if any(c.type == "Running" for c in status.conditions):
        pipeline.set_condition(status, "Running", False, "PolicyViolation", status.message, t, gen)
    kube.patch_status(job.metadata.namespace, job.metadata.name, status.model_dump(mode="json", by_alias=True), rv)
    post_event(body, "PolicyViolation", status.message, "Warning")
    metrics.observe_phase(job.metadata.namespace, job.metadata.name, status.phase)
    return None


# --- triggers --------------------------------------------------------------------------------

@kopf.on.resume(A.GROUP, A.VERSION, A.PLURAL, backoff=RETRY_S)
@kopf.on.create(A.GROUP, A.VERSION, A.PLURAL, backoff=RETRY_S)
@kopf.on.update(A.GROUP, A.VERSION, A.PLURAL, field="spec", backoff=RETRY_S)
def on_actjob(namespace, name, body, **_):
    reconcile(namespace, name, plain(body))


def _finished(event, body, **_) -> bool:
    """Only a Job that ended (or vanished) can change its ACTJob's plan."""
    done = {c.get("type") for c in (body.get("status") or {}).get("conditions") or [] if c.get("status") == "True"}
    return event["type"] == "DELETED" or bool(done & {"Complete", "Failed", "SuccessCriteriaMet"})


@kopf.on.event("batch", "v1", "jobs", labels={manifests.ACTJOB_LABEL: kopf.PRESENT}, when=_finished)
def on_stage_job(body, namespace, **_):
    """A stage Job finished: hand off to the next stage now, not on a timer."""
    reconcile(namespace, body["metadata"]["labels"][manifests.ACTJOB_LABEL])


# --- periodic work (periodic.py: kopf-timer-like, without kopf's finalizer on every ACTJob) -------
# Each filter reads only the status (and spec) kopf's watch delivered: an ACTJob no timer wants, e.g.
# a finished or suspended one, is not even kept in the index, and costs nothing per tick.

def _backing_off(status, **_) -> bool:
    status = status or {}
    replay = (status.get("mlflow") or {}).get("replay") or {}
    return status.get("phase") != "Suspended" and (replay.get("phase") == "BackingOff" or any(
        st.get("phase") == "BackingOff" for st in (status.get("stages") or {}).values()))


def _running(status, **_) -> bool:
    """A stage runs, and the ACTJob is not suspended (its Jobs are, and it says so itself)."""
    status = status or {}
    return status.get("phase") != "Suspended" and any(
        st.get("phase") == "Running" for st in (status.get("stages") or {}).values())


WATCH_S = 10.0  # how often a running stage is looked at for waits (a GET and a LIST per running stage)


@periodic.timer(interval=WATCH_S, initial_delay=WATCH_S, when=_running)
def watch_timer(namespace, name, body):
    """While a stage runs: explain what it waits on (pods that cannot start, Kueue, MLflow), and
    clear it once it goes on. Only while a stage runs, so idle ACTJobs cost nothing. The body is
    the watch's latest (a stale one costs a status conflict and a read, as any race does)."""
    reconcile(namespace, name, body)


def _progress_due(status, spec, **_) -> bool:
    return runtime.SETTINGS.progress_interval_seconds > 0 and _running(status) and bool(
        runtime.SETTINGS.tracking_uri((spec or {}).get("tracking", {}).get("uri")))


# Progress reads run in their own small pool, never in kopf's workers (the reconciles'): an MLflow
# that is slow or down delays only progress. A URI that did not answer is left alone for a minute.
PROGRESS_POOL = ThreadPoolExecutor(max_workers=2, thread_name_prefix="act-progress")
MLFLOW_DOWN_S = 60.0
_mlflow_down_until: dict[str, float] = {}


# the interval is the environment's at import (the operator process's ACT_PROGRESS_INTERVAL_SECONDS)
@periodic.timer(interval=max(1.0, runtime.SETTINGS.progress_interval_seconds),
                initial_delay=max(1.0, runtime.SETTINGS.progress_interval_seconds), when=_progress_due,
                executor=PROGRESS_POOL)
def progress_timer(namespace: str, name: str, body: dict) -> None:
    """While a stage runs: its progress from MLflow into the status (one MLflow search per running
    stage, a status patch when it moved). MLflow not answering leaves the status as it is."""
    read_progress(namespace, name, body)


def read_progress(namespace: str, name: str, body: dict) -> None:
    try:
        job = A.parse_actjob(body)
    except A.SpecError:
        return
    uri = tracking_uri(job)
    if _mlflow_down_until.get(uri, 0.0) > time.monotonic():
        return
    before = job.status.model_dump(mode="json", by_alias=True)
    for stage, st in job.status.stages.items():
        if st.phase != "Running" or stage == pipeline.PREFLIGHT:
            continue
        try:
            found = watch.read(uri, job, stage)
        except Exception as e:  # noqa: BLE001 - progress is a nicety: never fails anything
            _mlflow_down_until[uri] = time.monotonic() + MLFLOW_DOWN_S
            log.info("%s/%s: no progress from MLflow at %s for now (%s: %s)", namespace, name, uri,
                     type(e).__name__, str(e)[:200])
            return
        if found is not None:
            st.progress = found
    watch.headline(job.status)
    after = job.status.model_dump(mode="json", by_alias=True)
    if after != before:
        with runtime.LOCKS[f"{namespace}/{name}"]:
            try:
                kube.patch_status(namespace, name, after, body["metadata"]["resourceVersion"])
            except kube.Conflict:
                pass  # a reconcile moved first: the next tick reads again


def _next_attempt_at(status: dict) -> str | None:
    """When the earliest backoff ends (RFC 3339, as the status has it), if the status says."""
    replay = (status.get("mlflow") or {}).get("replay") or {}
    times = [st.get("nextAttemptAt") for st in [replay, *(status.get("stages") or {}).values()]
             if st.get("phase") == "BackingOff"]
    return min(times) if times and all(times) else None


@periodic.timer(interval=2.0, initial_delay=1.0, when=_backing_off)
def backoff_timer(namespace, name, body):
    """Starts the next attempt of a stage (or of the replay) once its retry backoff has passed:
    no API call before then (the status says when)."""
    at = _next_attempt_at(body.get("status") or {})
    if at and now() < datetime.fromisoformat(at.replace("Z", "+00:00")):
        return
    reconcile(namespace, name, body)


def _lineage_pending(status, **_) -> bool:
    status = status or {}
    return status.get("phase") in pipeline.TERMINAL and any(
        c.get("type") == pipeline.WAITING and c.get("status") == "True" and c.get("reason") == "MLflowUnavailable"
        for c in status.get("conditions") or [])


@periodic.timer(interval=15.0, initial_delay=15.0, when=_lineage_pending)
def lineage_timer(namespace, name, body):
    """A finished ACTJob whose lineage waits for MLflow: try again every 15 s until it answers."""
    reconcile(namespace, name, body)


@kopf.index(A.GROUP, A.VERSION, A.PLURAL, when=periodic.wanted)
async def periodic_actjobs(namespace, name, body, **_):
    """The ACTJobs some timer wants now, by (namespace, name): the watch's latest body of each and
    the timers it wants."""
    periodic.adopt_context()
    return {(namespace, name): periodic.entry(body)}


_periodic_task: asyncio.Task | None = None


@kopf.on.startup()
async def start_periodic(periodic_actjobs: kopf.Index, settings: kopf.OperatorSettings, **_):
    global _periodic_task
    periodic.forget_context()
    _periodic_task = asyncio.get_running_loop().create_task(
        periodic.run(periodic_actjobs, lambda: settings.execution.executor, plain))


@kopf.on.cleanup()
async def stop_periodic(**_):
    if _periodic_task:
        _periodic_task.cancel()


def _forget(namespace: str, name: str) -> None:
    """Drop what this process keeps about an ACTJob: its lock and its place in the phase gauge
    (called holding its lock)."""
    metrics.forget(namespace, name)
    runtime.LOCKS.pop(f"{namespace}/{name}", None)


def _deleted(event, **_) -> bool:
    return event["type"] == "DELETED"


# A watch event, not @kopf.on.delete: that would need a finalizer on every ACTJob, one more patch
# (and one more event to process) before its first reconcile, and a delete that waits for the
# operator. What this does must not block a deletion: an ACTJob deleted while no operator runs
# leaves its parent run RUNNING, as it would be after a crash.
@kopf.on.event(A.GROUP, A.VERSION, A.PLURAL, when=_deleted)
def on_delete(body, **_):
    """Children go with the owner references; the MLflow parent run ends as KILLED."""
    namespace, name = body["metadata"]["namespace"], body["metadata"]["name"]
    with runtime.LOCKS[f"{namespace}/{name}"]:  # after a reconcile in flight, which would count it again
        _forget(namespace, name)
    DIFFBASE.forget(body["metadata"].get("uid"))
    try:
        job = A.parse_actjob(body)
    except A.SpecError as e:
        log.info("deleting an invalid ACTJob: nothing to close (%s)", e)
        return
    lineage.close_deleted(job, tracking_uri(job))


# `kopf run -m act_operator.handlers` serves ACTExperiments too (one way: experiment_handlers
# imports runtime, never this module)
from act_operator import experiment_handlers  # noqa: E402, F401
