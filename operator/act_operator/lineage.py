"""An ACTJob's MLflow lineage, as every executor (the operator, `actjob run`) keeps it: the parent
run opened once the preflight passed, and once the ACTJob finished the final model registered
and the parent closed with the outcome. MLflow not answering holds no stage back: each step
returns why, for the Waiting condition, and the executor tries again on a later pass.

The MLflow calls themselves are tracking.py's; this is when to make them.
"""

from __future__ import annotations

import logging

from act_operator import pipeline, tracking
from act_operator.api import ACTJob
from act_operator.pipeline import now
from act_trainer import stagedefs

log = logging.getLogger("act_operator")

Wait = tuple[str, str]  # (reason, message) of the Waiting condition


def outage(uri: str, e: Exception) -> Wait:
    """Why a lineage call failed: MLflowUnavailable (an outage: the stages run on, the lineage is
    completed once it answers) or MLflowRejected (it answered with an error)."""
    log.warning("MLflow at %s: %s", uri, e)
    reason, message = tracking.problem(uri, e)
    if reason == "MLflowUnavailable":
        message += "; the stages run on, and the lineage is completed once it answers"
    return reason, message


def open_parent(job: ACTJob, uri: str | None) -> Wait | None:
    """The ACTJob's MLflow parent run, once its preflight passed (an ACTJob that never ran has none),
    into job.status.mlflow; the stages' configs name it, so it is opened before the first stage's."""
    if uri and not job.status.mlflow.run_id and pipeline.preflight_passed(job.status):
        try:
            job.status.mlflow = tracking.start_parent(uri, job)
        except Exception as e:  # noqa: BLE001 - any failure of MLflow's client is an outage to report
            return outage(uri, e)
    return None


def complete(job: ACTJob, uri: str | None, replay_here: bool = False) -> Wait | None:
    """A finished ACTJob's lineage: the parent run (opened now if MLflow was down while the stages
    ran), the registered model, the parent closed with the outcome and eval's metrics; each step
    done once, so calling again after an outage completes what is left. `replay_here`: first the
    stages' child runs from the tracking they recorded in storage while MLflow did not answer
    (`actjob run`; on a cluster the planner's replay Job does it). Nothing where there is no MLflow
    or nothing ran (the preflight did not pass)."""
    if not uri or not pipeline.preflight_passed(job.status):
        return None
    try:
        if not job.status.mlflow.run_id:
            job.status.mlflow = tracking.start_parent(uri, job)
        if replay_here:
            _replay(job, uri)
        # a run that trained no model (e.g. an ACTExperiment's collect-only child) registers none:
        # its "model" is the one it started from
        if job.status.phase == "Succeeded" and not job.status.registered_model and tracking.trained_a_model(job):
            job.status.registered_model = tracking.register_model(uri, job)
        if job.status.phase in pipeline.TERMINAL:
            tracking.finish_parent(uri, job.status.mlflow.run_id, job.status.phase,
                                   job.status.stages[stagedefs.EVAL.name].metrics)
    except Exception as e:  # noqa: BLE001
        return outage(uri, e)
    return None


def _replay(job: ACTJob, uri: str) -> None:
    """Every succeeded stage's tracking records (`_TRACKING.json`) as child runs of the parent
    (idempotent), into the same status the cluster's replay Job leaves (status.mlflow.replay)."""
    from act_trainer.tracking import records, replay

    mlflow, runs = job.status.mlflow, {}
    for stage, st in job.status.stages.items():
        if stage == pipeline.PREFLIGHT or st.phase != "Succeeded" or not st.outputs.uri:
            continue
        ids = [replay(uri, rec, mlflow.run_id, mlflow.experiment_id) for rec in records(st.outputs.uri)]
        if ids:
            runs[stage] = ids
    if runs:
        job.status = pipeline.apply(job, pipeline.CompleteReplay({pipeline.REPLAY: runs}), now())


def close_deleted(job: ACTJob, uri: str | None) -> None:
    """An ACTJob deleted before it finished: its parent run ends as KILLED."""
    if uri and job.status.mlflow.run_id and job.status.phase not in pipeline.TERMINAL:
        tracking.finish_parent(uri, job.status.mlflow.run_id, "Deleted")
