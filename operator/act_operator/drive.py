"""The one loop that moves an ACTJob on, whoever runs it: the planner (pipeline.plan) decides
from the status and what the executor observes, each action is applied to the status
(pipeline.apply) and then carried out by the executor. Two executors implement `Executor`:
the operator's (handlers.ClusterExecutor: kube Jobs, Events; one pass per reconcile) and
`actjob run`'s (local.LocalExecutor: processes on this machine, console lines; passes until
the ACTJob ends). MLflow lineage is lineage.py's, the same for both.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol, runtime_checkable

from act_operator import lineage, pipeline, watch
from act_operator.api import ACTJob
from act_operator.pipeline import Action, Observed, now


@runtime_checkable
class Executor(Protocol):
    tracking_uri: str | None  # where the lineage goes: tracking.tracking_uri of the job; None: no MLflow

    def observe(self, job: ACTJob) -> dict[str, Observed]:
        """How the running stages (and a running replay) are doing, by stage."""

    def perform(self, job: ACTJob, action: Action) -> float | None:
        """Carry out an action already applied to job.status (start a stage, suspend its Jobs, say
        what happened); seconds until the planner wants to be asked again, if it said."""

    def save(self, job: ACTJob, waits: list[lineage.Wait]) -> None:
        """Keep the status of an ACTJob not yet finished before an action is carried out (a local
        stage runs for an hour: its state must say so meanwhile), with what holds it up so far
        (`waits`: MLflow did not answer). A final status is saved with its lineage, by the caller."""

    def tell(self, job: ACTJob, type_: str, reason: str, message: str) -> None:
        """Say what changed: an Event on a cluster, a console line here."""


@dataclass
class Pass:
    """What one pass of the planner did."""

    actions: list[Action]
    wait: float | None = None  # seconds until the planner wants to be asked again, if it said
    started: set[str] = field(default_factory=set)  # stages started in this pass
    mlflow: lineage.Wait | None = None  # why the parent run could not be opened, if it could not


def advance(job: ACTJob, ex: Executor, t: datetime | None = None) -> Pass:
    """One pass: the planner's actions from the status and what `ex` observes, each applied to
    job.status, saved and carried out, in order. While the ACTJob runs its parent run is opened as
    soon as the preflight passed, before the first stage's config (which names it) is made; a
    finished ACTJob's lineage is lineage.complete's."""
    t = t or now()
    p = Pass(pipeline.plan(job, ex.observe(job), t))
    if job.status.phase not in pipeline.TERMINAL:
        p.mlflow = lineage.open_parent(job, ex.tracking_uri)
    for action in p.actions:
        job.status = pipeline.apply(job, action, t)
        watch.headline(job.status)
        if job.status.phase not in pipeline.TERMINAL:
            p.mlflow = p.mlflow or lineage.open_parent(job, ex.tracking_uri)
            ex.save(job, [p.mlflow] if p.mlflow else [])
        p.wait = ex.perform(job, action) or p.wait
        if isinstance(action, pipeline.StartStage):
            p.started.add(action.stage)
    return p


def explain(job: ACTJob, ex: Executor, waits: list[lineage.Wait], t: datetime | None = None) -> None:
    """The Waiting condition from what holds the ACTJob up (first reason, every message), told
    when it changed; cleared (Progressing) once nothing does."""
    event = pipeline.set_waiting(job.status, waits, t or now(), job.metadata.generation)
    if event:
        ex.tell(job, *event)
