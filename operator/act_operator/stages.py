"""Pure builders of the stage configs the planner's StartStage actions run with.

The same configs go into a ConfigMap on a cluster and into a file for `actjob run`:
what a stage does never depends on where it runs.
"""

from __future__ import annotations

from act_operator.api import ACTJob, TrainStage
from act_operator.pipeline import final_model_uri
from act_trainer import config as C

OUTPUTS = {"collect": "pairs", "judge": "models/judge", "policy": "models/policy", "eval": "eval"}


def join(uri: str, *parts: str) -> str:
    return "/".join([uri.rstrip("/"), *(p.strip("/") for p in parts)])


def job_root(job: ACTJob) -> str:
    """<storage root>/<namespace>/<name>/<uid>: one ACTJob's artifacts, never shared with a rerun."""
    meta = job.metadata
    return join(job.spec.storage.root, meta.namespace, meta.name, meta.uid or "local")


def stage_output(job: ACTJob, stage: str) -> str:
    return join(job_root(job), OUTPUTS[stage])


def checkpoints(job: ACTJob, stage: str) -> str:
    return join(job_root(job), "checkpoints", stage)


def _common(job: ACTJob, stage: str, tracking_uri: str | None) -> dict:
    spec, meta = job.spec, job.metadata
    return dict(
        job=C.JobRef(name=meta.name, uid=meta.uid or "local", namespace=meta.namespace),
        output=stage_output(job, stage),
        storage=C.S3Settings(endpoint=spec.storage.s3.endpoint, region=spec.storage.s3.region),
        tracking=C.TrackingConfig(uri=tracking_uri, experiment=spec.tracking.experiment,
                                  parent_run_id=job.status.mlflow.run_id),
        seed=spec.seed,
    )


def _env(job: ACTJob) -> C.EnvironmentConfig:
    e = job.spec.environment
    return C.EnvironmentConfig(name=e.name, tasks=e.tasks, max_steps=e.max_steps, history=e.history,
                               expert_type=e.expert_type, data_dir=e.data_dir, url=e.url, game=e.game,
                               game_params=e.game_params)


def _train(stage: TrainStage) -> dict:
    return dict(
        grpo=C.GRPOSettings(group_size=stage.group_size, beta=stage.beta,
                            max_completion_length=stage.max_completion_length),
        optim=C.OptimConfig(learning_rate=stage.learning_rate, epochs=stage.epochs, max_steps=stage.max_steps,
                            batch_size=stage.batch_size, gradient_accumulation=stage.gradient_accumulation,
                            save_steps=stage.save_steps, gradient_checkpointing=stage.gradient_checkpointing),
        distributed=C.DistributedConfig(nodes=stage.nodes, processes_per_node=stage.processes_per_node,
                                        zero_stage=stage.zero_stage),
    )


def pairs_uri(job: ACTJob) -> str | None:
    return job.status.stages["collect"].outputs.uri


def expert_uri(job: ACTJob) -> str:
    """The expert trajectories the policy learns from: the file the user gave, else collect's
    copies (one expert.jsonl per shard under its output)."""
    return job.spec.environment.expert.uri or pairs_uri(job)


def stage_config(job: ACTJob, stage: str, *, shard: int = 0, tracking_uri: str | None = None):
    """The validated act_trainer config for one pod (shard) of `stage`."""
    spec, st = job.spec, job.spec.stages
    common = _common(job, stage, tracking_uri)
    if stage == "collect":
        c = st.collect
        e = spec.environment.expert
        return C.CollectConfig(
            **common, model=spec.model.uri, env=_env(job),
            expert=C.ExpertSource(uri=e.uri, split=e.split, episodes=e.episodes, max_length=e.max_length),
            samples=c.samples, max_alternatives=c.max_alternatives,
            generation=C.GenerationConfig(temperature=c.temperature, top_p=c.top_p, max_new_tokens=c.max_new_tokens),
            batch_size=c.batch_size, heldout_fraction=c.heldout_fraction, engine=c.engine,
            filter_inadmissible=c.filter_inadmissible,
            shard=C.Shard(index=shard, count=c.shards),
        )
    if stage == "judge":
        j = st.judge
        return C.JudgeConfig(**common, model=spec.model.uri, pairs=pairs_uri(job), checkpoints=checkpoints(job, stage),
                             malformed_penalty=j.malformed_penalty, history=spec.environment.history, **_train(j))
    if stage == "policy":
        p = st.policy
        judge = job.status.stages["judge"]
        model = judge.outputs.uri if judge.phase in ("Succeeded", "Reused") else spec.model.uri
        return C.PolicyConfig(**common, method=p.method, model=model, expert=expert_uri(job),
                              format_judgements=p.format_judgements,
                              checkpoints=checkpoints(job, stage), history=spec.environment.history, **_train(p))
    if stage == "eval":
        ev = st.eval
        return C.EvalConfig(
            **common, model=final_model_uri(job), env=_env(job), splits=ev.splits, episodes=ev.episodes,
            action_states=ev.action_states, judge_pairs=ev.judge_pairs, pairs=pairs_uri(job),
            expert_max_length=spec.environment.expert.max_length,
            generation=C.GenerationConfig(temperature=0.0, max_new_tokens=ev.max_new_tokens),
            shard=C.Shard(index=shard, count=ev.shards),
        )
    raise ValueError(f"unknown stage '{stage}'")
