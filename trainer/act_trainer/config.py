"""Stage configs: what a stage program runs with.

A config is a stage's settings (act_trainer.contract, shared with the ACTJob spec) plus
what the executor fills in: the job, inputs, output and shard. Import-light on purpose
(pydantic only): the operator renders these into ConfigMaps without importing torch.
A stage validates its config before it touches any data.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from act_trainer import contract as K
from act_trainer.contract import S3Settings, check_uri

# every stage config class by the stage it is for (its `stage` literal): what a config file's `stage`
# picks; filled as the classes are defined (the stages' other facts: act_trainer.stagedefs)
CONFIGS: dict[str, type[StageBase]] = {}


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


EnvironmentConfig = K.EnvironmentSettings
ExpertSource = K.ExpertSettings


class TrackingConfig(K.TrackingSettings):
    parent_run_id: str | None = Field(None, description="The ACTJob's parent run; stages log child runs under it.")


class JobRef(Strict):
    name: str
    uid: str
    namespace: str = "default"


class Shard(Strict):
    index: int = Field(0, ge=0)
    count: int = Field(1, ge=1)

    @model_validator(mode="after")
    def _in_range(self) -> Shard:
        if self.index >= self.count:
            raise ValueError(f"shard.index {self.index} must be < shard.count {self.count}")
        return self


class StageBase(Strict):
    """What every stage gets from its executor, whatever the stage."""

    stage: str
    job: JobRef
    output: str = Field(description="URI this stage writes its outputs and _MANIFEST.json under.")
    storage: S3Settings = Field(default_factory=S3Settings)
    tracking: TrackingConfig = Field(default_factory=TrackingConfig)
    seed: int = 0
    precision: Literal[K.PRECISIONS] = Field("auto", description="spec.model.precision: "
                                             + K.PRECISION_DESCRIPTION)
    shard: Shard = Field(default_factory=Shard)
    scratch: str | None = Field(None, description="Local scratch directory; default a temp dir.")
    attempt: int = Field(1, ge=1, description="Which attempt of the stage this is (its MLflow run's act.attempt tag).")
    logs: str | None = Field(None, description="URI this attempt's logs are uploaded under when it ends "
                                               "(one file per pod and rank); none: not uploaded.")

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs):
        super().__pydantic_init_subclass__(**kwargs)
        name = cls.model_fields["stage"].default
        if isinstance(name, str):  # a class for one stage (not a base like TrainerBase)
            CONFIGS[name] = cls

    @field_validator("output")
    @classmethod
    def _output(cls, v: str) -> str:
        return check_uri(v)

    @field_validator("logs")
    @classmethod
    def _logs(cls, v: str | None) -> str | None:
        return None if v is None else check_uri(v)


class CollectConfig(StageBase, K.CollectSettings):
    stage: Literal["collect"] = "collect"
    model: str = Field(description="Initial policy: a local directory or tiny://PRESET.")
    env: EnvironmentConfig
    expert: ExpertSource = Field(default_factory=ExpertSource)
    prefill: str = Field("<action>", description="Text the sampled assistant turn starts with, so that every "
                                                 "sample is read as an action (empty: free-form output).")


class TrainerBase(StageBase):
    model: str
    checkpoints: str | None = Field(None, description="URI checkpoints are synced to; a rerun resumes "
                                                       "from the newest one.")
    history: int = Field(4, ge=0)

    @field_validator("checkpoints")
    @classmethod
    def _ckpt(cls, v: str | None) -> str | None:
        return None if v is None else check_uri(v)


class JudgeConfig(TrainerBase, K.JudgeSettings):
    stage: Literal["judge"] = "judge"
    pairs: str = Field(description="URI of the collect stage output (every train.parquet under it).")
    max_pairs: int | None = Field(None, ge=1)

    @field_validator("pairs")
    @classmethod
    def _pairs(cls, v: str) -> str:
        return check_uri(v)


class PolicyConfig(TrainerBase, K.PolicySettings):
    stage: Literal["policy"] = "policy"
    expert: str = Field(description="URI of the expert trajectories file.")
    env: EnvironmentConfig | None = Field(None, description="The environment online-rl plays (other methods: "
                                                            "unused).")

    @field_validator("method")
    @classmethod
    def _runs(cls, v: str) -> str:
        if v == "none":
            raise ValueError("'none' means the policy stage does not run; a policy config needs il, rl or online-rl")
        return v

    @model_validator(mode="after")
    def _plays(self) -> PolicyConfig:
        if self.method == "online-rl" and self.env is None:
            raise ValueError("method online-rl plays episodes: the policy config needs env (the ACTJob's "
                             "spec.environment)")
        return self

    @field_validator("expert")
    @classmethod
    def _expert(cls, v: str) -> str:
        return check_uri(v, allow_path=True)


class WarmupConfig(TrainerBase, K.WarmupSettings):
    stage: Literal["warmup"] = "warmup"
    env: EnvironmentConfig
    expert: ExpertSource = Field(default_factory=ExpertSource)
    heldout_fraction: float = Field(0.0, ge=0.0, lt=1.0, description="collect's heldoutFraction: the episodes "
                                    "collect will hold out (the same seeded split) are left out of the warm-up.")


class EvalConfig(StageBase, K.EvalSettings):
    stage: Literal["eval"] = "eval"
    model: str
    env: EnvironmentConfig
    pairs: str | None = Field(None, description="Collect output whose pairs/heldout.parquet is scored.")
    expert_max_length: int = Field(40, ge=1, description="Skip held-out expert episodes longer than this.")


class PreflightConfig(StageBase):
    """The checks that need I/O, run before any stage (`act-trainer preflight`): every input of
    the ACTJob is reachable and in the documented format. `output` is the ACTJob's storage root
    (checked for writing); each other field is checked only when set."""

    stage: Literal["preflight"] = "preflight"
    model: str = Field(description="spec.model.uri: must be a loadable checkpoint (config and tokenizer).")
    models: str | None = Field(None, description="<storage.root>/models: where a GGUF model.uri's converted "
                               "checkpoint is written once (gguf-<sha256[:20]>-v<N>), for every ACTJob of "
                               "that storage root; unset, it is converted into the local cache only.")
    pairs: str | None = Field(None, description="spec.stages.collect.reuse: another run's collect output.")
    judge: str | None = Field(None, description="spec.stages.judge.reuse: another run's judge model.")
    expert: str | None = Field(None, description="spec.environment.expert.uri: a trajectories file.")
    env: EnvironmentConfig | None = Field(None, description="The environment, when a stage plays it.")
    packages: dict[str, str] = Field(default_factory=dict, description="Python packages the spec asks for "
                                     "(import name), by the spec field that asks, e.g. vllm for "
                                     "spec.stages.collect.engine.")
    trl: dict[str, TrlOptions] = Field(default_factory=dict, description="The TRL config keys a running "
                                       "stage passes through (spec.stages.<stage>.trl), by stage: checked "
                                       "against the installed TRL's config fields.")
    reasoning: K.ReasoningSettings | None = Field(None, description="spec.stages.eval.reasoning, when eval runs "
                                                 "benchmarks: each one's data read and checked.")


class TrlOptions(Strict):
    """A training stage's pass-through of TRL config keys (spec.stages.<stage>.trl), for the preflight."""

    config: Literal["GRPOConfig", "SFTConfig"] | None = Field(description="The TRL config the stage's method "
                                                                "trains with (None: it does not train with TRL).")
    options: dict[str, Any] = Field(description="The keys as the spec gives them.")


class ReplayConfig(StageBase):
    """`act-trainer replay`: the tracking the stages recorded in storage while MLflow did not answer
    (`<output>/_TRACKING.json`), replayed into child runs under the ACTJob's parent run, once.
    `output` is the ACTJob's storage root; nothing is written there."""

    stage: Literal["replay"] = "replay"
    sources: dict[str, str] = Field(min_length=1, description="The output URI of every stage whose tracking "
                                    "was recorded offline, by stage name.")

    @model_validator(mode="after")
    def _parent(self) -> ReplayConfig:
        if not (self.tracking.uri and self.tracking.parent_run_id):
            raise ValueError("tracking.uri and tracking.parent_run_id: a replay attaches child runs under the "
                             "ACTJob's parent run; both must be set")
        return self


class ConfigError(ValueError):
    """A stage config that fails validation: one line per problem, each naming the field."""


def format_errors(err: ValidationError, prefix: str = "") -> str:
    lines = []
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"] if p != "config")
        lines.append(f"{prefix}{loc or '(root)'}: {e['msg']}")
    return "\n".join(lines)


def parse_stage_config(data: dict, expected: str | None = None):
    """The config of the stage that `data["stage"]` names, validated."""
    stage = data.get("stage") if isinstance(data, dict) else None
    if stage not in CONFIGS:
        got = "missing" if stage is None else f"unknown stage {stage!r}"
        raise ConfigError(f"stage: {got}; one of {', '.join(CONFIGS)}")
    try:
        cfg = CONFIGS[stage].model_validate(data)
    except ValidationError as err:
        raise ConfigError(format_errors(err)) from None
    if expected and cfg.stage != expected:
        raise ConfigError(f"stage: config is for '{cfg.stage}', but the '{expected}' program was run")
    return cfg


def load_stage_config(path: str | Path, expected: str | None = None):
    p = Path(path)
    try:
        data = json.loads(p.read_text())
    except FileNotFoundError:
        raise ConfigError(f"--config: {p} does not exist") from None
    except json.JSONDecodeError as e:
        raise ConfigError(f"--config: {p} is not valid JSON ({e})") from None
    return parse_stage_config(data, expected)
