"""Live progress of running stages in the ACTJob status.

Stage pods have no Kubernetes API access: a stage's main process reports its progress as
`act.progress.*` metrics of its MLflow child run (act_trainer.progress, the one definition of
the record), tagged with the ACTJob's uid, the stage and the attempt. While a stage runs, the
operator reads them (`read`: one MLflow search per running stage, at the rate of the operator's
progress timer) into status.stages[s].progress; `headline` (pure) derives the short Progress
and ETA that `kubectl get actjobs` shows. `actjob run` fills the same fields from the stage's
progress log lines. MLflow off or down: no progress, nothing else changes.
"""

from __future__ import annotations

import time

from act_operator import api as A
from act_trainer import progress as P


def stage_progress(p: P.Progress, attempt: int) -> A.StageProgress:
    return A.StageProgress.model_validate({**p.model_dump(), "attempt": attempt})


def headline(status: A.ACTJobStatus) -> None:
    """status.progress / status.eta from the running stage's progress of its current attempt;
    a succeeded stage's progress shows it complete. Pure."""
    status.progress = status.eta = None
    for st in status.stages.values():
        p = st.progress
        if p is None:
            continue
        if st.phase == "Succeeded" and p.total:
            st.progress = p.model_copy(update={"done": p.total, "percent": 100.0, "eta_seconds": 0.0})
        elif st.phase == "Running" and p.attempt == st.attempts:
            status.progress = f"{p.percent:.0f}%" if p.percent is not None else f"{p.done:g} {p.unit}"
            status.eta = P.duration(p.eta_seconds) if p.eta_seconds is not None else None


def search_filter(uid: str, stage: str, attempt: int) -> str:
    """MLflow's filter for the runs of one stage attempt (one per shard), as the stage tags them."""
    return (f"tags.`act.actjob.uid` = '{uid}' and tags.`act.stage` = '{stage}' "
            f"and tags.`act.attempt` = '{attempt}'")


def read(uri: str, job: A.ACTJob, stage: str) -> A.StageProgress | None:
    """The running attempt's progress from MLflow: one search; None until the stage reported."""
    from mlflow import MlflowClient

    st, exp = job.status.stages[stage], job.status.mlflow.experiment_id
    if not exp or not job.metadata.uid:
        return None
    runs = MlflowClient(tracking_uri=uri).search_runs(
        [exp], filter_string=search_filter(job.metadata.uid, stage, st.attempts), max_results=1000)
    now = time.time()
    found = P.combine([p for r in runs if (p := P.from_metrics(r.data.metrics, stage, now))])
    return stage_progress(found, st.attempts) if found else None
