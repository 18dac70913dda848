"""What the preflight checks, decided from the spec (pure), and the checks `actjob run` makes of
this machine before anything runs. The checks that need I/O run in `act-trainer preflight`
(act_trainer.preflight), the first step of every ACTJob on both executors: every problem at
once, each naming the field and the fix, so that a run never fails minutes in for a reason
known at the start."""

from __future__ import annotations

from act_operator.api import ACTJob
from act_trainer import stagedefs
from act_trainer.config import TrlOptions


def uses_environment(job: ACTJob) -> bool:
    """Whether a stage that runs plays the environment (each stage's definition says when: collect
    unless its pairs are reused, the warm-up without an expert file, eval)."""
    return any(d.runs(job.spec) and d.plays(job.spec) for d in stagedefs.chain())


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
    """The Python packages (import names) the spec asks the trainer image for, by the field that asks:
    vLLM for collect's engine, DeepSpeed for a running gang stage of several processes with ZeRO."""
    spec, out = job.spec, {}
    collect = stagedefs.COLLECT
    if collect.runs(spec) and collect.section(spec).engine == "vllm":
        out[f"stages.{collect.name}.engine"] = "vllm"
    for d in stagedefs.chain():
        section = d.section(spec)
        if d.topology == "gang" and d.runs(spec) and section.world_size > 1 and section.zero_stage > 0:
            out[f"stages.{d.name}.zeroStage"] = "deepspeed"
    return out


def trl_options(job: ACTJob) -> dict[str, TrlOptions]:
    """Every running stage's pass-through of TRL config keys (stages.<stage>.trl), with the TRL config
    its method trains with: the preflight checks the keys against the installed TRL."""
    out = {}
    for d in stagedefs.chain():
        section = d.section(job.spec)
        if d.runs(job.spec) and getattr(section, "trl", None):
            out[d.name] = TrlOptions(config=d.trl(section), options=dict(section.trl))
    return out
