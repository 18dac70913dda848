"""The stages, each defined once: the registry the operator, both executors and the trainer CLI read.

A `StageDef` holds every fact of a stage that is not its program: its settings (what the ACTJob
spec lets a user tune, act_trainer.contract) and config (what the program runs with,
act_trainer.config: its `stage` literal is the stage's name, spelled there and nowhere else), where
it writes, what it reads, when it runs and why it is skipped or reused, whether it runs as one
process, a gang or shards, what its progress counts and which metrics matter, which TRL config its
method trains with, and the program itself as a "module:function" entrypoint.

Adding a stage (or a method that needs a stage of its own) is one `StageDef`, registered here (or
with `register`), plus its program: the planner, the config builders, `launch`, the manifests, the
preflight and the trainer CLI read it from here.

Import-light on purpose (pydantic only): the operator imports it without torch. The operator's
objects (the ACTJob, its spec) are read by attribute only; `Inputs` is what the operator resolves
for a config builder (act_operator.stages.Resolver implements it).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from act_trainer import config as C
from act_trainer import contract as K

Topology = Literal["single", "gang", "shards"]  # one process; TrainSettings.nodes x processesPerNode; N shards
When = Literal["first", "chain", "after"]  # before every stage; in the chain, in order; after the ACTJob ended
TrlConfig = Literal["GRPOConfig", "SFTConfig"]


class Inputs(Protocol):
    """What the executor resolves for the config of one stage (act_operator.stages.Resolver)."""

    job: Any  # the ACTJob (act_operator.api.ACTJob): spec and status
    section: Any  # spec.stages.<stage>, or None for a stage without one

    def output(self, stage: str) -> str | None:
        """Where `stage` wrote: its outputs, set once it succeeded or reuses another run's; else None."""

    base_model: str  # model.uri, or its converted copy in storage the preflight reported (a GGUF)
    initial_policy: str  # pi0: the warm-up's model, else the base model
    final_model: str  # the last model a stage made, else pi0
    env: C.EnvironmentConfig
    expert: C.ExpertSource
    checkpoints: str  # where this stage's checkpoints are synced

    def rollout(self) -> dict:
        """A GRPO stage's rollout settings, `auto` decided where the executor knows the pod's GPUs."""

    plays_environment: bool  # some stage that runs plays the environment (the preflight checks it)
    packages: dict[str, str]  # Python packages the spec asks for, by the field that asks
    trl_options: dict[str, C.TrlOptions]  # every running stage's stages.<stage>.trl, with its TRL config
    offline_sources: dict[str, str]  # the stages whose tracking waits in storage: stage -> output


def _never(spec: Any) -> None:
    return None


def _no(spec: Any) -> bool:
    return False


def _yes(spec: Any) -> bool:
    return True


def _nothing(at: Inputs) -> dict:
    return {}


@dataclass(frozen=True)
class StageDef:
    """One stage (or a step outside the chain: the preflight first, the replay after the end)."""

    config: type[C.StageBase]  # what the program runs with; its `stage` literal is the name
    entrypoint: str  # "module:function" the trainer CLI calls with the validated config
    help: str  # one line for `act-trainer --help`
    settings: type[K.Settings] | None = None  # what a user tunes: spec.stages.<name> builds on it
    output: str | None = None  # where it writes under the ACTJob's root (None: the root itself, writing nothing)
    inputs: tuple[str, ...] = ()  # the stages whose outputs it reads (the chain runs them first)
    build: Callable[[Inputs], dict] = _nothing  # the config fields only the executor knows
    when: When = "chain"
    skip: Callable[[Any], str | None] = _never  # spec -> why it does not run (status message), or None
    reuse: Callable[[Any], str | None] = _never  # spec -> another run's output it takes instead, or None
    topology: Topology = "single"
    plays: Callable[[Any], bool] = _no  # spec -> whether, when it runs, it plays the environment
    trl: Callable[[Any], TrlConfig | None] = _never  # its settings -> the TRL config its method trains with
    makes_model: bool = False  # its output is a model (the last one made is the ACTJob's model)
    unit: str = "steps"  # what its progress counts
    live_metrics: tuple[str, ...] = ()  # the latest values its progress shows (TRL's log keys when it trains)
    key_metrics: tuple[str, ...] = ()  # what a summary of its result shows (`actjob run`)
    runs_with: dict | None = None  # how it runs without a spec section (StageCommon fields: retries, resources)

    def __post_init__(self):
        name = self.config.model_fields["stage"].default
        if not isinstance(name, str) or not name:
            raise ValueError(f"{self.config.__name__}: a stage config needs `stage: Literal[NAME] = NAME`")
        module, colon, function = self.entrypoint.partition(":")
        if not (module and colon and function):
            raise ValueError(f"{name}: entrypoint '{self.entrypoint}' is not 'module:function'")
        if self.topology == "gang" and not (self.settings and issubclass(self.settings, K.TrainSettings)):
            raise ValueError(f"{name}: a gang stage's settings build on contract.TrainSettings (nodes, processes)")

    @property
    def name(self) -> str:
        return self.config.model_fields["stage"].default

    def section(self, spec: Any) -> Any:
        """Its section of an ACTJob spec (spec.stages.<name>), or None."""
        return getattr(spec.stages, self.name, None)

    def runs(self, spec: Any) -> bool:
        """Whether the spec has it run (neither reused nor skipped)."""
        return self.reuse(spec) is None and self.skip(spec) is None

    def program(self) -> Callable:
        """The program (imported only here: the operator never calls it)."""
        module, _, function = self.entrypoint.partition(":")
        return getattr(importlib.import_module(module), function)


# --- the registry ------------------------------------------------------------------------------

_DEFS: dict[str, StageDef] = {}


def register(d: StageDef, *, before: str | None = None) -> StageDef:
    """Add a stage (at the end, or before the stage `before`); its name must be new."""
    if d.name in _DEFS:
        raise ValueError(f"stage '{d.name}' is already registered")
    unknown = [i for i in d.inputs if i not in _DEFS]
    if unknown:
        raise ValueError(f"{d.name}: inputs {unknown} are not registered stages; register them first")
    items = list(_DEFS.items())
    at = len(items) if before is None else [n for n, _ in items].index(get(before).name)
    items.insert(at, (d.name, d))
    _DEFS.clear()
    _DEFS.update(items)
    return d


def unregister(name: str) -> None:
    _DEFS.pop(name, None)


@contextmanager
def registered(d: StageDef, *, before: str | None = None) -> Iterator[StageDef]:
    """A stage registered for a while (tests)."""
    register(d, before=before)
    try:
        yield d
    finally:
        unregister(d.name)


def get(name: str) -> StageDef:
    try:
        return _DEFS[name]
    except KeyError:
        raise ValueError(f"unknown stage '{name}'; the stages are {', '.join(_DEFS)}") from None


def find(name: str) -> StageDef | None:
    return _DEFS.get(name)


def every() -> tuple[StageDef, ...]:
    """Every stage and step, the preflight first, then the chain in order, then the replay."""
    order = {"first": 0, "chain": 1, "after": 2}
    return tuple(sorted(_DEFS.values(), key=lambda d: order[d.when]))


def chain() -> tuple[StageDef, ...]:
    """The stages of an ACTJob, in the order they run."""
    return tuple(d for d in _DEFS.values() if d.when == "chain")


def chain_names() -> tuple[str, ...]:
    return tuple(d.name for d in chain())


def step_names() -> tuple[str, ...]:
    """What an ACTJob's status tracks, in order: the preflight, then the stages (not the replay:
    status.mlflow.replay)."""
    return tuple(d.name for d in every() if d.when != "after")


# --- the config builders (pure: they read the spec and what the executor resolved) ----------------

def expert_trajectories(at: Inputs) -> str | None:
    """The expert trajectories the policy learns from: the file the user gave, else collect's copies
    (one expert.jsonl per shard under its output), else the warm-up's."""
    return at.job.spec.environment.expert.uri or at.output(COLLECT.name) or at.output(WARMUP.name)


def _trainer(at: Inputs) -> dict:
    return dict(checkpoints=at.checkpoints, history=at.job.spec.environment.history)


def models_root(spec) -> str:
    """<storage.root>/models: where the preflight keeps a GGUF model.uri's converted checkpoints."""
    return f"{spec.storage.root.rstrip('/')}/models"


def _preflight(at: Inputs) -> dict:
    spec = at.job.spec
    return dict(model=spec.model.uri, models=models_root(spec),
                pairs=COLLECT.reuse(spec), judge=JUDGE.reuse(spec),
                expert=spec.environment.expert.uri, env=at.env if at.plays_environment else None,
                packages=at.packages, trl=at.trl_options,
                reasoning=spec.stages.eval.reasoning if EVAL.runs(spec) and spec.stages.eval.reasoning.benchmarks
                else None)


def _warmup(at: Inputs) -> dict:
    spec = at.job.spec
    return dict(model=at.base_model, env=at.env, expert=at.expert,
                heldout_fraction=spec.stages.collect.heldout_fraction, **_trainer(at))


def _collect(at: Inputs) -> dict:
    expert, warmed = at.expert, at.output(WARMUP.name)
    if warmed and not expert.uri:  # the episodes the warm-up had the expert play: played once
        expert = expert.model_copy(update={"uri": warmed.rstrip("/") + "/expert.jsonl"})
    return dict(model=at.initial_policy, env=at.env, expert=expert)


def _judge(at: Inputs) -> dict:
    return dict(at.rollout(), model=at.initial_policy, pairs=at.output(COLLECT.name), **_trainer(at))


def _policy(at: Inputs) -> dict:
    return dict(at.rollout(), model=at.output(JUDGE.name) or at.initial_policy, expert=expert_trajectories(at),
                env=at.env if at.section.method == "online-rl" else None, **_trainer(at))


def _eval(at: Inputs) -> dict:
    return dict(model=at.final_model, env=at.env, pairs=at.output(COLLECT.name),
                expert_max_length=at.job.spec.environment.expert.max_length)


def _replay(at: Inputs) -> dict:
    return dict(sources=at.offline_sources)


def _grpo_or_sft(section: Any) -> TrlConfig:
    return "GRPOConfig" if section.runs_grpo else "SFTConfig"


# --- the stages ----------------------------------------------------------------------------------

PREFLIGHT = register(StageDef(
    C.PreflightConfig, "act_trainer.preflight:run", when="first", build=_preflight,
    help="check every input of an ACTJob that needs I/O, before any stage",
    runs_with={"max_retries": 2, "timeout_seconds": 300, "resources": {"cpu": "500m", "memory": "1Gi"}},
    key_metrics=("seconds",)))
WARMUP = register(StageDef(
    C.WarmupConfig, "act_trainer.stages.warmup:run", settings=K.WarmupSettings, output="models/warmup",
    build=_warmup, topology="gang", makes_model=True, trl=lambda s: "SFTConfig",
    help="make the initial policy pi0 from a base model (IL on the expert's episodes)",
    skip=lambda spec: None if spec.stages.warmup.enabled else
    "stages.warmup.enabled is false (collect samples from model.uri)",
    plays=lambda spec: not spec.environment.expert.uri,
    key_metrics=("loss_first", "loss_last", "steps")))
COLLECT = register(StageDef(
    C.CollectConfig, "act_trainer.stages.collect:run", settings=K.CollectSettings, output="pairs",
    inputs=(WARMUP.name,), build=_collect, topology="shards", plays=_yes, unit="states",
    help="sample alternatives at the expert's states and keep contrast pairs",
    reuse=lambda spec: spec.stages.collect.reuse,
    skip=lambda spec: None if spec.stages.collect.enabled else "stages.collect.enabled is false",
    live_metrics=("sampled", "kept"), key_metrics=("pairs_train", "pairs_heldout", "kept", "sampled")))
JUDGE = register(StageDef(
    C.JudgeConfig, "act_trainer.stages.judge:run", settings=K.JudgeSettings, output="models/judge",
    inputs=(WARMUP.name, COLLECT.name), build=_judge, topology="gang", makes_model=True, trl=_grpo_or_sft,
    help="train the judge (ACT: GRPO on choosing the better action; or an Early Experience baseline)",
    reuse=lambda spec: spec.stages.judge.reuse,
    skip=lambda spec: None if spec.stages.judge.enabled else "stages.judge.enabled is false (baseline without ACT)",
    live_metrics=("reward", "loss", "malformed_rate"),
    key_metrics=("reward_first", "reward_last", "malformed_rate_first", "malformed_rate_last", "steps")))
POLICY = register(StageDef(
    C.PolicyConfig, "act_trainer.stages.policy:run", settings=K.PolicySettings, output="models/policy",
    inputs=(WARMUP.name, COLLECT.name, JUDGE.name), build=_policy, topology="gang", makes_model=True, trl=_grpo_or_sft,
    help="train the policy (IL or RL), starting from the judge",
    skip=lambda spec: "stages.policy.method is none" if spec.stages.policy.method == "none" else None,
    plays=lambda spec: spec.stages.policy.method == "online-rl",
    live_metrics=("loss", "reward", "malformed_rate", "mean_token_accuracy"),
    key_metrics=("train_loss", "reward_last", "steps")))
EVAL = register(StageDef(
    C.EvalConfig, "act_trainer.stages.evaluate:run", settings=K.EvalSettings, output="eval",
    inputs=(WARMUP.name, COLLECT.name, JUDGE.name, POLICY.name), build=_eval, topology="shards", plays=_yes, unit="episodes",
    help="evaluate the final model: success rate, next-action and judgement accuracy",
    skip=lambda spec: None if spec.stages.eval.enabled else "stages.eval.enabled is false",
    live_metrics=("success_rate", "malformed_rate"),
    key_metrics=("success_rate", "next_action_accuracy", "judge_accuracy", "accuracy")))  # accuracy: reasoning/*
REPLAY = register(StageDef(
    C.ReplayConfig, "act_trainer.cli:replay", when="after", build=_replay,
    help="replay the stages' tracking recorded while MLflow did not answer into child runs under the "
         "ACTJob's parent run (idempotent)",
    runs_with={"max_retries": 3, "timeout_seconds": 900, "resources": {"cpu": "500m", "memory": "1Gi"}}))
