"""Pure builders of the stage configs the planner's StartStage actions run with.

The same configs go into a ConfigMap on a cluster and into a file for `actjob run`:
what a stage does never depends on where it runs. A config is the stage's settings as the
spec holds them (act_trainer.contract) plus what only the executor knows: the job, inputs,
output and shard.
"""

from __future__ import annotations

from dataclasses import dataclass

from act_operator.api import ACTJob
from act_operator.pipeline import base_model_uri, final_model_uri, initial_policy_uri, offline_stages
from act_operator.preflight import required_packages, trl_options, uses_environment
from act_trainer import config as C
from act_trainer import contract as K
from act_trainer import stagedefs
from act_trainer.contract import settings_of


def join(uri: str, *parts: str) -> str:
    return "/".join([uri.rstrip("/"), *(p.strip("/") for p in parts)])


def job_root(job: ACTJob) -> str:
    """<storage root>/<namespace>/<name>/<uid>: one ACTJob's artifacts, never shared with a rerun."""
    meta = job.metadata
    return join(job.spec.storage.root, meta.namespace, meta.name, meta.uid or "local")


def stage_output(job: ACTJob, stage: str) -> str:
    """Where a stage writes (its definition's output under the ACTJob's root); a step that writes
    nothing (the preflight checks that the root can be written) gets the root."""
    output = stagedefs.get(stage).output
    return join(job_root(job), output) if output else job_root(job)


def checkpoints(job: ACTJob, stage: str) -> str:
    return join(job_root(job), "checkpoints", stage)


def logs_root(job: ACTJob) -> str:
    return join(job_root(job), "logs")


def logs_uri(job: ACTJob, stage: str, attempt: int) -> str:
    """Where one stage attempt's logs are uploaded (`<pod-or-host>-rank<r>.log` each), read by `actjob logs`."""
    return join(logs_root(job), stage, f"attempt-{attempt}")


def _common(job: ACTJob, stage: str, tracking_uri: str | None, attempt: int | None) -> dict:
    spec, meta = job.spec, job.metadata
    if attempt is None:  # the attempt the status is at (StartStage counted it)
        attempt = max(1, job.status.stages[stage].attempts) if stage in job.status.stages else 1
    return dict(
        job=C.JobRef(name=meta.name, uid=meta.uid or "local", namespace=meta.namespace),
        output=stage_output(job, stage), attempt=attempt, logs=logs_uri(job, stage, attempt),
        storage=C.S3Settings(**settings_of(spec.storage.s3, K.S3Settings)),
        tracking=C.TrackingConfig(uri=tracking_uri, experiment=spec.tracking.experiment,
                                  parent_run_id=job.status.mlflow.run_id),
        seed=spec.seed, precision=spec.model.precision,
    )


def _env(job: ACTJob) -> C.EnvironmentConfig:
    return C.EnvironmentConfig(**settings_of(job.spec.environment, K.EnvironmentSettings))


def output_of(job: ACTJob, stage: str) -> str | None:
    """Where `stage` wrote: its outputs, set once it succeeded or reuses another run's; else None."""
    st = job.status.stages.get(stage)
    return st.outputs.uri if st else None


def pairs_uri(job: ACTJob) -> str | None:
    return output_of(job, stagedefs.COLLECT.name)


def warmup_uri(job: ACTJob) -> str | None:
    return output_of(job, stagedefs.WARMUP.name)


def expert_uri(job: ACTJob) -> str | None:
    """The expert trajectories the policy learns from (stagedefs.expert_trajectories)."""
    return stagedefs.expert_trajectories(Resolver(job, stagedefs.POLICY.name))


def rollout(section) -> dict:
    """A GRPO stage's rollout settings. `auto` on pods with GPUs is decided here: vLLM (the
    trainer image has it). Elsewhere (no GPU asked for, local runs) the stage decides at run
    time: vLLM where it finds a GPU and vLLM, transformers otherwise."""
    r = section.rollout
    if r.engine == "auto" and section.resources.gpus > 0:
        r = r.model_copy(update={"engine": "vllm"})
    return {"rollout": r}


@dataclass(frozen=True)
class Resolver:
    """What a stage's config builder (stagedefs.StageDef.build) reads of the ACTJob, resolved
    (stagedefs.Inputs): the outputs of earlier stages, the models, the environment."""

    job: ACTJob
    stage: str

    @property
    def section(self):
        return stagedefs.get(self.stage).section(self.job.spec)

    def output(self, stage: str) -> str | None:
        return output_of(self.job, stage)

    @property
    def base_model(self) -> str:
        return base_model_uri(self.job)

    @property
    def initial_policy(self) -> str:
        return initial_policy_uri(self.job)

    @property
    def final_model(self) -> str:
        return final_model_uri(self.job)

    @property
    def env(self) -> C.EnvironmentConfig:
        return _env(self.job)

    @property
    def expert(self) -> C.ExpertSource:
        return C.ExpertSource(**settings_of(self.job.spec.environment.expert, K.ExpertSettings))

    @property
    def checkpoints(self) -> str:
        return checkpoints(self.job, self.stage)

    def rollout(self) -> dict:
        return rollout(self.section)

    @property
    def plays_environment(self) -> bool:
        return uses_environment(self.job)

    @property
    def packages(self) -> dict[str, str]:
        return required_packages(self.job)

    @property
    def trl_options(self) -> dict[str, C.TrlOptions]:
        return trl_options(self.job)

    @property
    def offline_sources(self) -> dict[str, str]:
        return {s: self.job.status.stages[s].outputs.uri for s in offline_stages(self.job.status)}


def stage_config(job: ACTJob, stage: str, *, shard: int = 0, tracking_uri: str | None = None,
                 attempt: int | None = None):
    """The validated act_trainer config for one pod (shard) of `stage` (attempt: default, the status's):
    what every step gets, the stage's settings as the spec holds them, its shard, and what its
    definition builds from the ACTJob."""
    d = stagedefs.get(stage)
    section = d.section(job.spec)
    fields = _common(job, stage, tracking_uri, attempt)
    if d.settings is not None and section is not None:
        fields |= settings_of(section, d.settings)
    if d.topology == "shards":
        fields["shard"] = C.Shard(index=shard, count=section.shards)
    return d.config(**(fields | d.build(Resolver(job, stage))))
