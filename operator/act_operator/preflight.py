"""Checks that need this machine, run by `actjob run` before any stage starts: every problem
at once, each naming the field and the fix, so that a run never fails minutes in for a reason
known at the start."""

from __future__ import annotations

from act_operator.api import ACTJob


def uses_environment(job: ACTJob) -> bool:
    """Whether a stage plays the environment: collect (unless its pairs are reused) and eval."""
    st = job.spec.stages
    return (st.collect.enabled and not st.collect.reuse) or st.eval.enabled


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
