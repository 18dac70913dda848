"""MLflow lineage owned by the executor: one parent run per ACTJob (stages add child runs
under it), closed with the ACTJob's outcome, and the final model registered in the
Model Registry with tags that trace it back to its inputs."""

from __future__ import annotations

import logging

from act_operator import pipeline
from act_operator.api import ACTJob, MlflowStatus
from act_trainer import stagedefs
from act_trainer.util import mlflow_params

log = logging.getLogger(__name__)

RUN_STATUS = {"Succeeded": "FINISHED", "Failed": "FAILED", "Deleted": "KILLED"}


def tracking_uri(spec_uri: str | None, default: str | None) -> str | None:
    """The MLflow tracking URI of an ACTJob (or ACTExperiment), one rule for every executor: the one
    its spec names, else the executor's default: the operator's ACT_MLFLOW_TRACKING_URI
    (OperatorSettings.tracking_uri; none: no MLflow) on a cluster, the run directory's mlflow.db
    (RunDir.mlflow_store) on this machine."""
    return spec_uri or default


def fail_fast(timeout_s: int = 15, retries: int = 2) -> None:
    """For a control loop: an MLflow that does not answer fails a call in seconds (MLflow's client
    otherwise retries for minutes); the executor reports it and tries again on its next pass."""
    import os

    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", str(timeout_s))
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", str(retries))


def problem(uri: str, e: Exception) -> tuple[str, str]:
    """(reason, message) for a failed MLflow call: MLflowUnavailable when the server did not
    answer (an outage: try again later), MLflowRejected when it answered with an error."""
    from mlflow.exceptions import RestException

    text = f"{type(e).__name__}: {str(e)[:300]}"
    if isinstance(e, RestException):
        return "MLflowRejected", f"MLflow at {uri} rejected a lineage call ({text})"
    return "MLflowUnavailable", f"MLflow at {uri} does not answer ({text})"


def _client(uri: str):
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=uri)


def run_url(uri: str, experiment_id: str, run_id: str) -> str | None:
    if uri.startswith(("http://", "https://")):
        return f"{uri.rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}"
    return None


def ensure_experiment(client, name: str) -> str:
    """The experiment's id, creating it if needed; several ACTJobs may race to create it."""
    from mlflow.exceptions import MlflowException

    exp = client.get_experiment_by_name(name)
    if exp:
        return exp.experiment_id
    try:
        return client.create_experiment(name)
    except MlflowException as e:
        if getattr(e, "error_code", "") != "RESOURCE_ALREADY_EXISTS" and "already exists" not in str(e):
            raise
        return client.get_experiment_by_name(name).experiment_id


PARENT_RUN_ANNOTATION = "act-operator.io/mlflow-parent-run"


def start_parent(uri: str, job: ACTJob) -> MlflowStatus:
    """The ACTJob's parent run, found by its uid first so that a restarted executor never
    opens a second one."""
    client = _client(uri)
    experiment_id = ensure_experiment(client, job.spec.tracking.experiment)
    uid = job.metadata.uid or "local"
    # the stages' child runs carry the uid too: an executor restarted after a stage opened its run
    # (before the parent's id reached the status) must not take that child for the parent
    found = [r for r in client.search_runs([experiment_id], filter_string=f"tags.`act.actjob.uid` = '{uid}'",
                                           max_results=100) if "act.stage" not in r.data.tags]
    if found:
        run_id = found[0].info.run_id
    else:
        tags = {"act.actjob": job.metadata.name, "act.actjob.uid": uid, "act.namespace": job.metadata.namespace,
                **base_model_tags(job), "act.environment": job.spec.environment.name}
        # a child of an ACTExperiment: its run nests under the experiment's (one run per arm and seed)
        annotations = (job.metadata.model_extra or {}).get("annotations") or {}
        if parent := annotations.get(PARENT_RUN_ANNOTATION):
            tags |= {"mlflow.parentRunId": parent, **{f"act.{k.rpartition('/')[2]}": v for k, v in
                                                       (job.metadata.model_extra or {}).get("labels", {}).items()
                                                       if k.startswith("act-operator.io/")}}
        run = client.create_run(experiment_id, run_name=job.metadata.name, tags=tags)
        run_id = run.info.run_id
        spec = job.spec.model_dump(mode="json", by_alias=True, exclude={"suspend"})
        for key, value in mlflow_params(spec).items():
            client.log_param(run_id, key, value)
    return MlflowStatus(experiment_id=experiment_id, run_id=run_id, url=run_url(uri, experiment_id, run_id))


def finish_parent(uri: str, run_id: str, outcome: str, metrics: dict | None = None) -> None:
    """Close the parent run with the outcome and the final metrics, once (a closed run is left alone)."""
    client = _client(uri)
    if client.get_run(run_id).info.status != "RUNNING":
        return
    for key, value in (metrics or {}).items():
        client.log_metric(run_id, key, value)
    client.set_terminated(run_id, status=RUN_STATUS.get(outcome, "FINISHED"))


def base_model_tags(job: ACTJob) -> dict:
    """The base model the stages started from and, when the preflight converted a GGUF model.uri
    into it, that GGUF as its source."""
    base = pipeline.base_model_uri(job)
    return {"act.base_model": base} | ({"act.base_model_source": job.spec.model.uri}
                                       if base != job.spec.model.uri else {})


def lineage_tags(job: ACTJob) -> dict:
    stages = job.status.stages
    collect, judge, policy = (stages[d.name] for d in (stagedefs.COLLECT, stagedefs.JUDGE, stagedefs.POLICY))
    tags = {
        "act.actjob": job.metadata.name, "act.actjob.uid": job.metadata.uid or "local",
        "act.namespace": job.metadata.namespace,
        **base_model_tags(job), "act.environment": job.spec.environment.name,
        "act.policy_method": job.spec.stages.policy.method if policy.phase == "Succeeded" else "none",
        "act.judge_checkpoint": judge.outputs.uri or "none",
        "act.judge_method": job.spec.stages.judge.method if judge.phase in ("Succeeded", "Reused") else "none",
        "act.contrast_pairs": collect.outputs.uri or "none",
        "act.contrast_pairs_digest": collect.outputs.digest or "none",
    }
    if policy.outputs.digest:
        tags["act.model_digest"] = policy.outputs.digest
    warmup = stages.get(stagedefs.WARMUP.name)  # pi0, made from the base model (absent in statuses from before warmup)
    if warmup and warmup.phase == "Succeeded":
        tags["act.initial_policy"] = warmup.outputs.uri
    return tags


def model_description(uri: str, job: ACTJob, name: str) -> str:
    """The registered version's description (markdown): how to load it, where its weights are,
    and links to the ACTJob, its parent and stage runs and its lineage."""
    st, mlflow = job.status, job.status.mlflow

    def run(run_id: str | None) -> str:
        url = run_url(uri, mlflow.experiment_id, run_id) if run_id and mlflow.experiment_id else None
        return f"[{run_id}]({url})" if url else (run_id or "-")

    meta = job.metadata
    lines = [
        f"ACT model of ACTJob `{meta.namespace}/{meta.name}` (uid `{meta.uid or 'local'}`).",
        "",
        f'Load: `mlflow.transformers.load_model("models:/{name}/<version>")` (a text-generation pipeline; '
        '`return_type="components"` gives the model and tokenizer) or `mlflow.pyfunc.load_model(...)`.',
        f"Weights: `{st.model_uri}` (the stage's output, which is itself the MLflow model: stored once).",
        f"Parent run: {run(mlflow.run_id)}",
        "Stage runs: " + (", ".join(f"{stage} {run(s.mlflow_run_id)}" for stage, s in st.stages.items()
                                    if s.mlflow_run_id) or "-"),
        "",
        "Lineage: " + ", ".join(f"`{k}={v}`" for k, v in lineage_tags(job).items()),
    ]
    evals = st.stages[stagedefs.EVAL.name].metrics
    if evals:
        lines.append("Eval: " + ", ".join(f"{k}={v:.4g}" for k, v in sorted(evals.items())))
    return "\n".join(lines)


def unregistrable(uri: str, model_uri: str) -> str | None:
    """Why the MLflow at `uri` cannot register a model stored at `model_uri`, or None. An MLflow
    server takes a local path as a model version's source only inside the run's own artifacts
    (which live on the server), so a model under a file:// storage root is refused every time:
    a permanent answer, not an outage to wait out."""
    if uri.startswith(("http://", "https://")) and (model_uri.startswith("file://") or "://" not in model_uri):
        return (f"not registered: the MLflow server at {uri} registers models from storage it can read "
                f"(s3://), and this one is a local path ({model_uri}); set storage.root to s3:// to register it")
    return None


DEFAULT_NAMESPACE = "default"  # `actjob run`'s, and a cluster's default namespace


def model_name(job: ACTJob) -> str:
    """The registered model an ACTJob's model goes to: spec.tracking.registerModel, else
    `act-<name>` in the default namespace (every `actjob run`) and `<namespace>.act-<name>` in any
    other, so that ACTJobs of one name in two namespaces never share a model (Unity Catalog's
    dotted form; neither a namespace nor an ACTJob name holds a dot, so no two collide)."""
    meta = job.metadata
    if job.spec.tracking.register_model:
        return job.spec.tracking.register_model
    plain = f"act-{meta.name}"
    return plain if meta.namespace in (DEFAULT_NAMESPACE, "", None) else f"{meta.namespace}.{plain}"


def trained_a_model(job: ACTJob) -> bool:
    """Whether a stage of this run trained a model (the warm-up's pi0 counts; a reused judge, or a
    collect-only run whose "model" is the base model it started from, does not): only then is
    there a model of its own to register."""
    return any(d.makes_model and (st := job.status.stages.get(d.name)) is not None and st.phase == "Succeeded"
               for d in stagedefs.chain())


def register_model(uri: str, job: ACTJob) -> str | None:
    """Register the ACTJob's final model under model_name(job); returns '<name>/<version>', or None
    where the server cannot take it (unregistrable: logged, and the rest of the lineage completes)."""
    from mlflow.exceptions import MlflowException

    if why := unregistrable(uri, job.status.model_uri or ""):
        log.warning("%s: %s", job.metadata.name, why)
        return None
    client = _client(uri)
    name = model_name(job)
    try:
        client.create_registered_model(name, description="Agent models trained by ACT operator")
    except MlflowException as e:
        if "already exists" not in str(e).lower() and getattr(e, "error_code", "") != "RESOURCE_ALREADY_EXISTS":
            raise
    version = client.create_model_version(name, source=job.status.model_uri, run_id=job.status.mlflow.run_id,
                                          tags=lineage_tags(job), description=model_description(uri, job, name))
    return f"{name}/{version.version}"


def start_experiment(uri: str, exp) -> str:
    """An ACTExperiment's run, the parent of its children's runs; found by uid when it exists (a
    local experiment has no uid: its name stands in)."""
    name, uid = exp.metadata.name, exp.metadata.uid or f"local-{exp.metadata.name}"
    client = _client(uri)
    experiment_id = ensure_experiment(client, exp.spec.template.tracking.experiment)
    found = client.search_runs([experiment_id], filter_string=f"tags.`act.experiment.uid` = '{uid}'", max_results=1)
    if found:
        return found[0].info.run_id
    run = client.create_run(experiment_id, run_name=name, tags={
        "act.experiment": name, "act.experiment.uid": uid, "act.namespace": exp.metadata.namespace,
        "act.arms": ",".join(exp.spec.arms),
        "act.seeds": ",".join(map(str, exp.spec.seeds)), "act.environment": exp.spec.template.environment.name})
    return run.info.run_id


def experiment_table(status) -> dict:
    """An ACTExperiment status's table by arm: label, seeds, mean and std of every metric."""
    return {r.arm: {"label": r.label, "seeds": r.seeds, "mean": r.mean, "std": r.std} for r in status.arms}


def finish_experiment(uri: str, run_id: str, status) -> None:
    """Close an experiment's run with its table: per arm, each metric's mean over seeds as a metric
    (`<arm>.<metric>`) and the whole table (means, stds, seeds) as table.json."""
    client = _client(uri)
    if client.get_run(run_id).info.status != "RUNNING":
        return
    table = experiment_table(status)
    client.log_dict(run_id, table, "table.json")
    for arm, row in table.items():
        for metric, value in row["mean"].items():
            client.log_metric(run_id, f"{arm.replace('+', '_')}.{metric}", value)
    client.set_terminated(run_id, status=RUN_STATUS.get(status.phase, "FINISHED"))
