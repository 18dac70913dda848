"""The pure planner: given an ACTJob (spec + status) and what was observed of its stage
runs, say what to do next. No I/O: the cluster executor (kopf handlers) and the local
executor (`actjob run`) both drive it, and apply its actions with the same reducer.

    actions = plan(job, observed, now)
    for action in actions:
        job.status = apply(job, action, now)   # pure state transition
        executor.perform(action)               # side effect: create a Job, start a process...
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Literal

from act_operator.api import (
    ACTJob,
    ACTJobStatus,
    Condition,
    ReplayStatus,
    StageCommon,
    StageOutputs,
    StageStatus,
)
from act_trainer import gguf_models, stagedefs
from act_trainer.errors import EXIT_PERMANENT
from act_trainer.util import numeric_metrics

TERMINAL = ("Succeeded", "Failed")
HAS_OUTPUTS = ("Succeeded", "Reused")  # later stages may read what such a stage wrote
STAGE_DONE = (*HAS_OUTPUTS, "Skipped")
BACKOFF_BASE_S = 10.0
BACKOFF_CAP_S = 300.0
# The first step of every ACTJob: `act-trainer preflight` checks every input that needs I/O on a
# small CPU pod, before any stage (and any GPU) starts. Its problems fail the ACTJob at once
# (Valid=False, PreflightFailed); a preflight that crashed without a verdict is retried.
PREFLIGHT = stagedefs.PREFLIGHT.name
PREFLIGHT_SETTINGS = StageCommon.model_validate(stagedefs.PREFLIGHT.runs_with)
# A GGUF model.uri is converted by the preflight: loaded in float32 (4 bytes a parameter, twice while the
# tensors move; SmolLM2-135M peaks at 1.2 GB) and uploaded. 8Gi and 30 min hold models to about 1B
# parameters; for a larger one, convert it once with `actjob run` (its preflight does) and point
# model.uri at the stored checkpoint.
GGUF_PREFLIGHT_SETTINGS = StageCommon.model_validate(
    {**stagedefs.PREFLIGHT.runs_with, "timeout_seconds": 1800, "resources": {"cpu": "2", "memory": "8Gi"}})
# After the last step: `act-trainer replay` attaches the tracking stages recorded in storage while
# MLflow did not answer (status.stages[*].trackingOffline) under the parent run, as child runs. It
# runs once the ACTJob finished and MLflow answers the executor; its outcome is status.mlflow.replay
# and the TrackingReplayed condition, never the ACTJob's phase.
REPLAY = stagedefs.REPLAY.name
REPLAY_SETTINGS = StageCommon.model_validate(stagedefs.REPLAY.runs_with)
REPLAYED = "TrackingReplayed"  # condition


def now() -> datetime:
    """The executors' clock (the planner itself is given the time, never reads it)."""
    return datetime.now(UTC)


# --- what the executors observe --------------------------------------------------------------

@dataclass(frozen=True)
class Observed:
    """The current attempt of a stage as its executor sees it."""

    state: Literal["running", "succeeded", "failed", "missing"]
    result: dict = field(default_factory=dict)  # the stage's termination message (manifest, digest, metrics)
    reason: str = ""
    permanent: bool = False  # failed with the permanent exit code (2: bad input or config): no retry


# --- actions ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class StartStage:
    stage: str
    attempt: int


@dataclass(frozen=True)
class SkipStage:
    stage: str
    reason: str


@dataclass(frozen=True)
class ReuseStage:
    stage: str
    uri: str


@dataclass(frozen=True)
class CompleteStage:
    stage: str
    result: dict


@dataclass(frozen=True)
class RetryStage:
    stage: str
    reason: str
    not_before: datetime


@dataclass(frozen=True)
class FailStage:
    stage: str
    reason: str


@dataclass(frozen=True)
class FailPreflight:
    problems: tuple[str, ...]


@dataclass(frozen=True)
class Wait:
    until: datetime


@dataclass(frozen=True)
class SucceedJob:
    pass


@dataclass(frozen=True)
class SuspendJob:
    pass


@dataclass(frozen=True)
class ResumeJob:
    pass


@dataclass(frozen=True)
class StartReplay:
    attempt: int
    sources: tuple[str, ...]  # the stages whose tracking it replays


@dataclass(frozen=True)
class CompleteReplay:
    result: dict  # {"replay": {stage: [run ids]}}


@dataclass(frozen=True)
class RetryReplay:
    reason: str
    not_before: datetime


@dataclass(frozen=True)
class FailReplay:
    reason: str


Action = (StartStage | SkipStage | ReuseStage | CompleteStage | RetryStage | FailStage | FailPreflight | Wait
          | SucceedJob | SuspendJob | ResumeJob | StartReplay | CompleteReplay | RetryReplay | FailReplay)


# --- pure helpers ----------------------------------------------------------------------------

def job_name(name: str, stage: str, attempt: int) -> str:
    """Deterministic, DNS-safe: an ACTJob name is at most 40 characters, so this fits in 63."""
    return f"{name}-{stage}-{attempt}"


def backoff(attempts: int) -> timedelta:
    return timedelta(seconds=min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2 ** max(0, attempts - 1)))


def skip_or_reuse(job: ACTJob, stage: str) -> Action | None:
    """Whether the spec has `stage` reuse another run's output or skip (its definition says)."""
    d = stagedefs.get(stage)
    if uri := d.reuse(job.spec):
        return ReuseStage(stage, uri)
    if why := d.skip(job.spec):
        return SkipStage(stage, why)
    return None


def stage_spec(job: ACTJob, stage: str) -> StageCommon:
    """What the spec says of how a step runs (retries, resources, deadline, placement); a step without
    a spec section (the preflight, the replay) runs as its definition says."""
    d = stagedefs.get(stage)
    section = d.section(job.spec)
    if section is not None:
        return section
    if d is stagedefs.PREFLIGHT and gguf_models.is_gguf(job.spec.model.uri):
        return GGUF_PREFLIGHT_SETTINGS
    return StageCommon.model_validate(d.runs_with or {})


def max_retries(job: ACTJob, stage: str) -> int:
    return stage_spec(job, stage).max_retries


def steps(status: ACTJobStatus) -> tuple[str, ...]:
    """The steps of an ACTJob in order: the preflight, then the stages (those its status has: a status
    written before the preflight or the warmup existed has no entry for them)."""
    return tuple(s for s in stagedefs.step_names() if s in status.stages)


def preflight_passed(status: ACTJobStatus) -> bool:
    st = status.stages.get(PREFLIGHT)
    return st is None or st.phase == "Succeeded"


def plan(job: ACTJob, observed: dict[str, Observed], now: datetime) -> list[Action]:
    status, spec = job.status, job.spec
    if status.phase in TERMINAL:
        return plan_replay(job, observed.get(REPLAY), now)  # terminal stays terminal, whatever happens to its Jobs
    if spec.suspend:
        return [] if status.phase == "Suspended" else [SuspendJob()]
    if status.phase == "Suspended":
        return [ResumeJob()]

    actions: list[Action] = []
    for stage in steps(status):
        st = status.stages[stage]
        if st.phase in STAGE_DONE:
            continue
        decided = skip_or_reuse(job, stage)
        if decided:
            actions.append(decided)
            continue
        if st.phase == "Pending":
            return actions + [StartStage(stage, st.attempts + 1)]
        if st.phase == "BackingOff":
            due = st.next_attempt_at is None or now >= st.next_attempt_at
            return actions + [StartStage(stage, st.attempts + 1) if due else Wait(st.next_attempt_at)]
        if st.phase == "Failed":
            return actions  # FailStage already applied; the job phase follows
        obs = observed.get(stage)
        if obs is None or obs.state == "running":
            return actions
        if obs.state == "succeeded" and (obs.result.get("manifest") or stage == PREFLIGHT):
            actions.append(CompleteStage(stage, obs.result))
            continue
        if stage == PREFLIGHT and obs.result.get("problems"):
            return actions + [FailPreflight(tuple(obs.result["problems"]))]
        reason = {
            "succeeded": "exited 0 without reporting a manifest: a stage that wrote no outputs is a failure",
            "missing": f"its Job {st.job_name} disappeared before it finished",
        }.get(obs.state, obs.reason or "failed")
        if obs.state == "failed" and obs.permanent:  # the exit-code contract: no retry can fix it
            return actions + [FailStage(stage, f"{stage} failed permanently (exit code {EXIT_PERMANENT}: bad input "
                                               f"or configuration; not retried): {reason}")]
        if st.attempts <= max_retries(job, stage):
            return actions + [RetryStage(stage, reason, now + backoff(st.attempts))]
        return actions + [FailStage(stage, f"{stage} failed after {st.attempts} attempt(s): {reason}")]
    return actions + [SucceedJob()]


# --- after the end: the replay of offline tracking ---------------------------------------------

def offline_stages(status: ACTJobStatus) -> tuple[str, ...]:
    """The stages whose tracking is in storage only (their outputs hold `_TRACKING.json`)."""
    return tuple(s for s, st in status.stages.items() if st.tracking_offline and st.phase == "Succeeded"
                 and st.outputs.uri)


def lineage_pending(status: ACTJobStatus) -> bool:
    """A finished ACTJob whose lineage MLflow could not take yet (Waiting=True, MLflowUnavailable)."""
    return status.phase in TERMINAL and any(
        c.type == WAITING and c.status == "True" and c.reason == "MLflowUnavailable" for c in status.conditions)


def plan_replay(job: ACTJob, obs: Observed | None, now: datetime) -> list[Action]:
    """A finished ACTJob with stages that recorded their tracking offline: once the parent run exists
    and MLflow answers (the executor cleared MLflowUnavailable), replay them in one step, retried
    per REPLAY_SETTINGS; done (or given up) is final. Nothing to do otherwise."""
    status = job.status
    sources = offline_stages(status)
    r = status.mlflow.replay
    if not sources or (r and r.phase in ("Succeeded", "Failed")):
        return []
    if r is None or r.phase in ("Pending", "BackingOff"):
        if not status.mlflow.run_id or lineage_pending(status):
            return []  # the parent run first: MLflow must answer the executor
        attempts = r.attempts if r else 0
        if r and r.phase == "BackingOff" and r.next_attempt_at and now < r.next_attempt_at:
            return [Wait(r.next_attempt_at)]
        return [StartReplay(attempts + 1, sources)]
    if obs is None or obs.state == "running":
        return []
    if obs.state == "succeeded" and REPLAY in obs.result:
        return [CompleteReplay(obs.result)]
    reason = {"missing": f"its Job {r.job_name} disappeared before it finished",
              "succeeded": "exited 0 without reporting what it replayed"}.get(obs.state, obs.reason or "failed")
    if r.attempts <= REPLAY_SETTINGS.max_retries and not obs.permanent:
        return [RetryReplay(reason, now + backoff(r.attempts))]
    return [FailReplay(f"replay failed after {r.attempts} attempt(s): {reason}")]


# --- suspend -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class OwnedJob:
    """A Job of the ACTJob as the cluster lists it (by the ACTJob's label)."""

    name: str
    suspended: bool
    finished: bool


def jobs_to_suspend(owned: list[OwnedJob]) -> list[str]:
    """On suspend, every Job of the ACTJob that still runs, whether the status knows it or not: a
    stage hand-off racing the suspend may have created the next stage's Job before its status."""
    return sorted(j.name for j in owned if not j.finished and not j.suspended)


# --- the reducer -----------------------------------------------------------------------------

def set_condition(status: ACTJobStatus, type_: str, value: bool, reason: str, message: str, now: datetime,
                  generation: int | None) -> None:
    flag = "True" if value else "False"
    for i, c in enumerate(status.conditions):
        if c.type == type_:
            changed = c.status != flag
            status.conditions[i] = Condition(type=type_, status=flag, reason=reason, message=message,
                                             last_transition_time=now if changed else c.last_transition_time,
                                             observed_generation=generation)
            return
    status.conditions.append(Condition(type=type_, status=flag, reason=reason, message=message,
                                       last_transition_time=now, observed_generation=generation))


# --- waits the executor observed ---------------------------------------------------------------

WAITING = "Waiting"  # condition: True while the ACTJob waits on something outside it, with why
NOT_WAITING = "Progressing"


def retry_waits(status: ACTJobStatus) -> list[tuple[str, str]]:
    """Waits the status itself explains: a stage backing off before its next attempt (an
    unreachable S3 says so in the stage's message: StorageUnavailable)."""
    out = []
    for stage, st in status.stages.items():
        if st.phase == "BackingOff":
            msg = st.message or "failed"
            reason = "StorageUnavailable" if "S3 endpoint" in msg and "unreachable" in msg else "RetryBackoff"
            when = f"; attempt {st.attempts + 1} at {st.next_attempt_at:%H:%M:%S}Z" if st.next_attempt_at else ""
            out.append((reason, f"{stage} attempt {st.attempts} failed: {msg}{when}"))
    return out


def set_waiting(status: ACTJobStatus, waits: list[tuple[str, str]], now: datetime,
                generation: int | None) -> tuple[str, str, str] | None:
    """The Waiting condition from what the executor found the ACTJob waiting on: True with the
    first wait's reason and every wait in the message, or False (Progressing) once nothing waits.
    Returns the Event (type, reason, message) to post when it changed, else None."""
    current = next((c for c in status.conditions if c.type == WAITING), None)
    if waits:
        reason, message = waits[0][0], "; ".join(m for _, m in waits)
        if current and (current.status, current.reason, current.message) == ("True", reason, message):
            return None
        set_condition(status, WAITING, True, reason, message, now, generation)
        return "Warning", reason, message
    if current is None or current.status != "True":
        return None
    set_condition(status, WAITING, False, NOT_WAITING, f"no longer waiting ({current.reason})", now, generation)
    return "Normal", "WaitOver", f"no longer waiting: {current.message}"


def base_model_uri(job: ACTJob) -> str:
    """The base model every stage starts from: model.uri, or, for a GGUF file, the trainable
    checkpoint the preflight converted it into and wrote to storage (status.stages.preflight.outputs)."""
    st = job.status.stages.get(PREFLIGHT)
    return st.outputs.uri if st and st.phase == "Succeeded" and st.outputs.uri else job.spec.model.uri


def initial_policy_uri(job: ACTJob) -> str:
    """pi0, the model collect samples from and judge starts from: the warm-up's, else the base model."""
    st = job.status.stages.get(stagedefs.WARMUP.name)
    return st.outputs.uri if st and st.phase in HAS_OUTPUTS and st.outputs.uri else base_model_uri(job)


def final_model_uri(job: ACTJob) -> str:
    """The model the ACTJob produced: the last model a stage made (the policy's, else the judge's
    (ACT only), else the warm-up's), else the base model."""
    for d in reversed(stagedefs.chain()):
        st = job.status.stages.get(d.name)
        if d.makes_model and st and st.phase in HAS_OUTPUTS and st.outputs.uri:
            return st.outputs.uri
    return base_model_uri(job)


def apply(job: ACTJob, action: Action, now: datetime) -> ACTJobStatus:
    """The status after `action`: a new object, the input is not changed."""
    status = job.status.model_copy(deep=True)
    gen = job.metadata.generation
    status.observed_generation = gen
    if status.start_time is None:
        status.start_time = now
    st: StageStatus | None = status.stages.get(getattr(action, "stage", ""), None)

    if isinstance(action, StartStage):
        st.phase, st.attempts = "Running", action.attempt
        st.job_name = job_name(job.metadata.name, action.stage, action.attempt)
        st.start_time, st.next_attempt_at, st.message = now, None, None
        status.phase, status.current_stage = "Running", action.stage
        set_condition(status, "Running", True, "StageStarted", f"{action.stage} attempt {action.attempt}", now, gen)
    elif isinstance(action, SkipStage):
        st.phase, st.message = "Skipped", action.reason
    elif isinstance(action, ReuseStage):
        st.phase, st.outputs, st.message = "Reused", StageOutputs(uri=action.uri), f"reusing {action.uri}"
    elif isinstance(action, CompleteStage) and action.stage == PREFLIGHT:
        res = action.result
        checks = (res.get(PREFLIGHT) or {}).get("checks") or []
        st.phase, st.completion_time, st.message = "Succeeded", now, f"{len(checks)} checks passed"
        st.metrics = numeric_metrics(res.get("metrics") or {})
        if res.get("uri"):  # a GGUF model.uri, converted: the base model the stages start from
            st.outputs = StageOutputs(uri=res["uri"], manifest=res.get("manifest"), digest=res.get("digest"))
            st.message += f"; model.uri converted to {res['uri']}"
        set_condition(status, "Valid", True, "PreflightPassed", "the spec passed validation and the preflight "
                      f"checks ({', '.join(checks)})", now, gen)
    elif isinstance(action, FailPreflight):
        message = f"preflight found {len(action.problems)} problem(s): " + "; ".join(action.problems)
        st = status.stages[PREFLIGHT]
        st.phase, st.completion_time, st.message = "Failed", now, message
        status.phase, status.message, status.completion_time, status.current_stage = "Failed", message, now, None
        set_condition(status, "Valid", False, "PreflightFailed", message, now, gen)
        set_condition(status, "Running", False, "PreflightFailed", message, now, gen)
        set_condition(status, "Failed", True, "PreflightFailed", message, now, gen)
    elif isinstance(action, CompleteStage):
        res = action.result
        st.phase, st.completion_time, st.message = "Succeeded", now, None
        manifest = res.get("manifest")
        st.outputs = StageOutputs(uri=res.get("uri") or (manifest.rsplit("/", 1)[0] if manifest else None),
                                  manifest=manifest, digest=res.get("digest"))
        st.mlflow_run_id = res.get("mlflow_run_id")
        st.metrics = numeric_metrics(res.get("metrics") or {})
        st.tracking_offline = bool(res.get("tracking_offline"))
    elif isinstance(action, RetryStage):
        st.phase, st.next_attempt_at, st.message = "BackingOff", action.not_before, action.reason
    elif isinstance(action, FailStage):
        st.phase, st.completion_time, st.message = "Failed", now, action.reason
        status.phase, status.message, status.completion_time = "Failed", action.reason, now
        set_condition(status, "Running", False, "StageFailed", action.reason, now, gen)
        set_condition(status, "Failed", True, "StageFailed", action.reason, now, gen)
    elif isinstance(action, SucceedJob):
        status.phase, status.current_stage, status.completion_time = "Succeeded", None, now
        status.model_uri = final_model_uri(job.model_copy(update={"status": status}))
        status.message = f"model at {status.model_uri}"
        set_condition(status, "Running", False, "Completed", "all stages finished", now, gen)
        set_condition(status, "Succeeded", True, "Completed", status.message, now, gen)
    elif isinstance(action, SuspendJob):
        status.phase = "Suspended"
        set_condition(status, "Suspended", True, "SpecSuspend", "spec.suspend is true", now, gen)
    elif isinstance(action, ResumeJob):
        # the suspended Jobs are unsuspended by the executor; their stages never stopped being Running
        status.phase = "Running" if status.current_stage else "Pending"
        set_condition(status, "Suspended", False, "SpecResume", "spec.suspend is false", now, gen)
    elif isinstance(action, (StartReplay, CompleteReplay, RetryReplay, FailReplay)):
        _apply_replay(job, status, action, now)
    return status


def run_again(status: ACTJobStatus, now: datetime) -> ACTJobStatus:
    """A Failed ACTJob run again unchanged (`actjob run` of the same spec, as `argo retry`): the
    stages that succeeded keep their outputs, the one that failed is tried again. Its attempts count
    on (the earlier attempts' logs stay): a run again is one attempt more, plus any retries maxRetries
    still leaves; a training stage resumes from its newest checkpoint as any retry does. A new
    object; any other phase is kept."""
    if status.phase != "Failed":
        return status
    status = status.model_copy(deep=True)
    failed = [stage for stage, st in status.stages.items() if st.phase == "Failed"]
    for stage in failed:
        st = status.stages[stage]
        st.phase, st.completion_time, st.next_attempt_at = "Pending", None, None
        st.message = f"tried again after: {st.message or 'a failure'}"
    message = f"run again: {', '.join(failed)} tried again (attempt {status.stages[failed[0]].attempts + 1})" \
        if failed else "run again"
    status.phase, status.message, status.completion_time, status.current_stage = "Pending", message, None, None
    set_condition(status, "Failed", False, "RunAgain", message, now, status.observed_generation)
    return status


def _apply_replay(job: ACTJob, status: ACTJobStatus, action: Action, now: datetime) -> None:
    """The replay's own status and condition; the ACTJob's phase, message and times stay as they are."""
    r = status.mlflow.replay = status.mlflow.replay or ReplayStatus()
    gen = job.metadata.generation
    if isinstance(action, StartReplay):
        r.phase, r.attempts, r.job_name = "Running", action.attempt, job_name(job.metadata.name, REPLAY, action.attempt)
        r.start_time, r.next_attempt_at = now, None
        r.message = f"replaying the tracking of {', '.join(action.sources)} under parent run {status.mlflow.run_id}"
        set_condition(status, REPLAYED, False, "ReplayRunning", r.message, now, gen)
    elif isinstance(action, CompleteReplay):
        runs = action.result.get(REPLAY) or {}
        for stage, ids in runs.items():
            if stage in status.stages and ids:
                status.stages[stage].mlflow_run_id = ids[0]
        r.phase, r.completion_time = "Succeeded", now
        r.message = (f"{sum(len(v) for v in runs.values())} child run(s) of {', '.join(sorted(runs)) or 'no stage'} "
                     f"under parent run {status.mlflow.run_id}")
        set_condition(status, REPLAYED, True, "Replayed", r.message, now, gen)
    elif isinstance(action, RetryReplay):
        r.phase, r.next_attempt_at, r.message = "BackingOff", action.not_before, action.reason
        set_condition(status, REPLAYED, False, "ReplayRetrying", f"attempt {r.attempts} failed: {action.reason}",
                      now, gen)
    elif isinstance(action, FailReplay):
        r.phase, r.completion_time, r.message = "Failed", now, action.reason
        set_condition(status, REPLAYED, False, "ReplayFailed", action.reason + "; the ACTJob's outcome stands, "
                      "the stages' tracking stays in <output>/_TRACKING.json", now, gen)
