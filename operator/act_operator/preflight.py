"""What the preflight checks, decided from the spec (pure), and the checks `actjob run` makes of
this machine before anything runs. The checks that need I/O run in `act-trainer preflight`
(act_trainer.preflight), the first step of every ACTJob on both executors: every problem at
once, each naming the field and the fix, so that a run never fails minutes in for a reason
known at the start."""

from __future__ import annotations

from act_operator.api import ACTJob


def uses_environment(job: ACTJob) -> bool:
    """Whether a stage plays the environment: collect (unless its pairs are reused), the warm-up
    (without an expert file) and eval."""
    st = job.spec.stages
    warmup_plays = st.warmup.enabled and not job.spec.environment.expert.uri
    return (st.collect.enabled and not st.collect.reuse) or warmup_plays or st.eval.enabled


def local_problems(job: ACTJob) -> list[str]:
    """What `actjob run` of `job` lacks on this machine (e.g. the environment's package)."""
    from act_trainer.envs import EnvError, require

    problems = []
    if uses_environment(job):
        try:
            require(job.spec.environment.name)
        except EnvError as e:
            problems.append(f"spec.environment.name: {e}")
    return problems


def required_packages(job: ACTJob) -> dict[str, str]:
    """The Python packages (import names) the spec asks the trainer image for, by the field that asks."""
    st, out = job.spec.stages, {}
    if st.collect.enabled and not st.collect.reuse and st.collect.engine == "vllm":
        out["stages.collect.engine"] = "vllm"
    for name in ("warmup", "judge", "policy"):
        stage = getattr(st, name)
        runs = {"warmup": st.warmup.enabled, "judge": st.judge.enabled and not st.judge.reuse,
                "policy": st.policy.method != "none"}[name]
        if runs and stage.world_size > 1 and stage.zero_stage > 0:
            out[f"stages.{name}.zeroStage"] = "deepspeed"
    return out
