"""Pure builders of the stage configs the planner's StartStage actions run with.

The same configs go into a ConfigMap on a cluster and into a file for `actjob run`:
what a stage does never depends on where it runs. A config is the stage's settings as the
spec holds them (act_trainer.contract) plus what only the executor knows: the job, inputs,
output and shard.
"""

from __future__ import annotations

from act_operator.api import ACTJob
from act_operator.pipeline import HAS_OUTPUTS, PREFLIGHT, REPLAY, final_model_uri, initial_policy_uri, offline_stages
from act_operator.preflight import required_packages, uses_environment
from act_trainer import config as C
from act_trainer import contract as K
from act_trainer.contract import settings_of

OUTPUTS = {"warmup": "models/warmup", "collect": "pairs", "judge": "models/judge", "policy": "models/policy", "eval": "eval"}


def join(uri: str, *parts: str) -> str:
    return "/".join([uri.rstrip("/"), *(p.strip("/") for p in parts)])


def job_root(job: ACTJob) -> str:
    """<storage root>/<namespace>/<name>/<uid>: one ACTJob's artifacts, never shared with a rerun."""
    meta = job.metadata
    return join(job.spec.storage.root, meta.namespace, meta.name, meta.uid or "local")


def stage_output(job: ACTJob, stage: str) -> str:
    """Where a stage writes; the preflight checks that the ACTJob's root can be written."""
    return job_root(job) if stage in (PREFLIGHT, REPLAY) else join(job_root(job), OUTPUTS[stage])


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
        seed=spec.seed,
    )


def _env(job: ACTJob) -> C.EnvironmentConfig:
    return C.EnvironmentConfig(**settings_of(job.spec.environment, K.EnvironmentSettings))


def pairs_uri(job: ACTJob) -> str | None:
    return job.status.stages["collect"].outputs.uri


def warmup_uri(job: ACTJob) -> str | None:
    st = job.status.stages.get("warmup")
    return st.outputs.uri if st and st.phase in HAS_OUTPUTS else None


def expert_uri(job: ACTJob) -> str:
    """The expert trajectories the policy learns from: the file the user gave, else collect's
    copies (one expert.jsonl per shard under its output), else the warm-up's."""
    return job.spec.environment.expert.uri or pairs_uri(job) or warmup_uri(job)


def rollout(section) -> dict:
    """A GRPO stage's rollout settings. `auto` on pods with GPUs is decided here: vLLM (the
    trainer image has it). Elsewhere (no GPU asked for, local runs) the stage decides at run
    time: vLLM where it finds a GPU and vLLM, transformers otherwise."""
    r = section.rollout
    if r.engine == "auto" and section.resources.gpus > 0:
        r = r.model_copy(update={"engine": "vllm"})
    return {"rollout": r}


def stage_config(job: ACTJob, stage: str, *, shard: int = 0, tracking_uri: str | None = None,
                 attempt: int | None = None):
    """The validated act_trainer config for one pod (shard) of `stage` (attempt: default, the status's)."""
    spec, st = job.spec, job.spec.stages
    common = _common(job, stage, tracking_uri, attempt)
    if stage == PREFLIGHT:
        plays = uses_environment(job)
        return C.PreflightConfig(**common, model=spec.model.uri, pairs=st.collect.reuse, judge=st.judge.reuse,
                                 expert=spec.environment.expert.uri, env=_env(job) if plays else None,
                                 packages=required_packages(job))
    if stage == REPLAY:
        return C.ReplayConfig(**common, sources={s: job.status.stages[s].outputs.uri for s in offline_stages(job.status)})
    expert = C.ExpertSource(**settings_of(spec.environment.expert, K.ExpertSettings))
    if stage == "warmup":
        return C.WarmupConfig(**common, **settings_of(st.warmup, K.WarmupSettings), model=spec.model.uri,
                              env=_env(job), expert=expert, heldout_fraction=st.collect.heldout_fraction,
                              checkpoints=checkpoints(job, stage), history=spec.environment.history)
    if stage == "collect":
        if warmup_uri(job) and not expert.uri:  # the episodes the warm-up had the expert play: played once
            expert = expert.model_copy(update={"uri": join(warmup_uri(job), "expert.jsonl")})
        return C.CollectConfig(
            **common, **settings_of(st.collect, K.CollectSettings), model=initial_policy_uri(job), env=_env(job),
            expert=expert,
            shard=C.Shard(index=shard, count=st.collect.shards),
        )
    if stage == "judge":
        return C.JudgeConfig(**common, **(settings_of(st.judge, K.JudgeSettings) | rollout(st.judge)),
                             model=initial_policy_uri(job),
                             pairs=pairs_uri(job), checkpoints=checkpoints(job, stage),
                             history=spec.environment.history)
    if stage == "policy":
        judge = job.status.stages["judge"]
        model = judge.outputs.uri if judge.phase in HAS_OUTPUTS else initial_policy_uri(job)
        return C.PolicyConfig(**common, **(settings_of(st.policy, K.PolicySettings) | rollout(st.policy)),
                              model=model,
                              expert=expert_uri(job), checkpoints=checkpoints(job, stage),
                              history=spec.environment.history)
    if stage == "eval":
        return C.EvalConfig(
            **common, **settings_of(st.eval, K.EvalSettings), model=final_model_uri(job), env=_env(job),
            pairs=pairs_uri(job), expert_max_length=spec.environment.expert.max_length,
            shard=C.Shard(index=shard, count=st.eval.shards),
        )
    raise ValueError(f"unknown stage '{stage}'")
