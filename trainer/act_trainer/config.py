"""Stage configs: the contract between the control plane and the stage programs.

Import-light on purpose (pydantic only): the operator renders these into ConfigMaps
without importing torch. A stage validates its config before it touches any data.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

STAGES = ("collect", "judge", "policy", "eval")
URI_SCHEMES = ("s3://", "file://")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=False)


def check_uri(value: str, *, allow_path: bool = False, extra_schemes: tuple[str, ...] = ()) -> str:
    """Accept s3:// and file:// URIs (and plain paths where allowed). Pydantic prefixes the field name."""
    schemes = URI_SCHEMES + extra_schemes
    if not value:
        raise ValueError("must not be empty")
    if value.startswith("s3://") and not value[len("s3://"):].split("/")[0]:
        raise ValueError(f"'{value}' has no bucket; write s3://BUCKET/prefix")
    if value.startswith(schemes):
        return value
    if "://" in value or not allow_path:
        raise ValueError(f"unsupported URI '{value}'; use one of {', '.join(schemes)}"
                         + (" or a local path" if allow_path else ""))
    return value


class S3Settings(Strict):
    """Where S3 is. Credentials never appear here: they come from the environment
    (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, filled from a Secret on a cluster)."""

    endpoint: str | None = Field(None, description="S3 endpoint URL (MinIO, Ceph, SeaweedFS); None = AWS.")
    region: str | None = Field(None, description="S3 region.")


ENVIRONMENTS = ("scienceworld", "alfworld", "textworld-express", "webshop")


class EnvironmentConfig(Strict):
    name: Literal[ENVIRONMENTS] = Field(description="Environment name.")
    tasks: list[str] = Field(default_factory=list, description="Task names to use; empty = all.")
    max_steps: int = Field(50, ge=1, le=1000, description="Step limit per episode.")
    history: int = Field(4, ge=0, le=64, description="How many past (action, observation) turns a prompt shows.")
    simplification: str = Field("easy", description="ScienceWorld simplification string.")
    expert_type: Literal["default", "walkthrough", "handcoded"] = "default"
    data_dir: str | None = Field(None, description="Game files (ALFWorld: ALFWORLD_DATA).")
    url: str | None = Field(None, description="Running environment server (WebShop).")
    game: str | None = Field(None, description="TextWorldExpress game type.")
    game_params: str = ""


class ExpertSource(Strict):
    """Expert trajectories: a file in the trajectory format, or the environment's own expert."""

    uri: str | None = Field(None, description="Trajectories file (JSONL or parquet), s3:// or file://.")
    split: str = Field("train", description="Split to generate from when no uri is given.")
    episodes: int = Field(8, ge=1, description="How many expert episodes to generate when no uri is given.")
    max_length: int = Field(40, ge=1, description="Skip expert episodes longer than this (steps).")

    @field_validator("uri")
    @classmethod
    def _uri(cls, v: str | None) -> str | None:
        return None if v is None else check_uri(v, allow_path=True)


class TrackingConfig(Strict):
    uri: str | None = Field(None, description="MLflow tracking URI; None disables tracking.")
    experiment: str = Field("act", description="MLflow experiment name.")
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
    stage: str
    job: JobRef
    output: str = Field(description="URI this stage writes its outputs and _MANIFEST.json under.")
    storage: S3Settings = Field(default_factory=S3Settings)
    tracking: TrackingConfig = Field(default_factory=TrackingConfig)
    seed: int = 0
    shard: Shard = Field(default_factory=Shard)
    scratch: str | None = Field(None, description="Local scratch directory; default a temp dir.")

    @field_validator("output")
    @classmethod
    def _output(cls, v: str) -> str:
        return check_uri(v)


class GenerationConfig(Strict):
    temperature: float = Field(1.0, ge=0.0, le=5.0, description="Sampling temperature.")
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    max_new_tokens: int = Field(32, ge=1, le=4096)


class CollectConfig(StageBase):
    stage: Literal["collect"] = "collect"
    model: str = Field(description="Initial policy: a local directory or tiny://PRESET.")
    env: EnvironmentConfig
    expert: ExpertSource = Field(default_factory=ExpertSource)
    samples: int = Field(8, ge=1, le=256, description="K: alternatives sampled per expert state.")
    max_alternatives: int = Field(4, ge=1, le=256, description="M: distinct alternatives kept per state.")
    generation: GenerationConfig = Field(default_factory=GenerationConfig)
    batch_size: int = Field(16, ge=1, description="Prompts per generate call.")
    heldout_fraction: float = Field(0.2, ge=0.0, lt=1.0, description="Episodes kept out for judgement eval.")
    engine: Literal["auto", "hf", "vllm"] = "auto"
    filter_inadmissible: bool = True
    prefill: str = Field("<action>", description="Text the sampled assistant turn starts with, so that every "
                                                 "sample is read as an action (empty: free-form output).")


class OptimConfig(Strict):
    learning_rate: float = Field(1e-6, gt=0.0, le=1.0)
    epochs: float = Field(1.0, gt=0.0)
    max_steps: int = Field(-1, ge=-1, description="-1 = run the epochs.")
    batch_size: int = Field(8, ge=1, description="Per-device train batch size (completions for GRPO).")
    gradient_accumulation: int = Field(1, ge=1)
    save_steps: int = Field(50, ge=1, description="Checkpoint every N steps (resumable).")
    logging_steps: int = Field(1, ge=1)
    gradient_checkpointing: bool = Field(True, description="Trade compute for activation memory.")


class DistributedConfig(Strict):
    nodes: int = Field(1, ge=1, le=512)
    processes_per_node: int = Field(1, ge=1, le=64)
    zero_stage: Literal[0, 2, 3] = 3
    # multi-node rendezvous; filled in by the operator
    master_addr: str | None = None
    master_port: int = 29500

    @property
    def world_size(self) -> int:
        return self.nodes * self.processes_per_node


class GRPOSettings(Strict):
    group_size: int = Field(8, ge=2, le=128, description="G: completions per prompt.")
    beta: float = Field(0.0, ge=0.0, description="KL coefficient.")
    epsilon: float = Field(0.2, gt=0.0, description="Clip range.")
    max_completion_length: int = Field(64, ge=1)
    temperature: float = Field(1.0, gt=0.0)
    use_vllm: bool = Field(False, description="Sample with vLLM (GPU only).")


class TrainerBase(StageBase):
    model: str
    checkpoints: str | None = Field(None, description="URI checkpoints are synced to; a rerun resumes "
                                                       "from the newest one.")
    grpo: GRPOSettings = Field(default_factory=GRPOSettings)
    optim: OptimConfig = Field(default_factory=OptimConfig)
    distributed: DistributedConfig = Field(default_factory=DistributedConfig)
    history: int = Field(4, ge=0)

    @field_validator("checkpoints")
    @classmethod
    def _ckpt(cls, v: str | None) -> str | None:
        return None if v is None else check_uri(v)


class JudgeConfig(TrainerBase):
    stage: Literal["judge"] = "judge"
    pairs: str = Field(description="URI of the collect stage output (every train.parquet under it).")
    malformed_penalty: float = Field(0.0, le=0.0, description="Reward for an unparseable judgement.")
    max_pairs: int | None = Field(None, ge=1)

    @field_validator("pairs")
    @classmethod
    def _pairs(cls, v: str) -> str:
        return check_uri(v)


class PolicyConfig(TrainerBase):
    stage: Literal["policy"] = "policy"
    method: Literal["il", "rl"]
    expert: str = Field(description="URI of the expert trajectories file.")
    format_judgements: float = Field(0.0, ge=0.0, le=1.0, description="IL only: add this many judgement "
                                     "prompts per expert state, answered with a random label, to teach the "
                                     "answer format (not the judgement) to a model with no instruction tuning.")

    @field_validator("expert")
    @classmethod
    def _expert(cls, v: str) -> str:
        return check_uri(v, allow_path=True)


class EvalConfig(StageBase):
    stage: Literal["eval"] = "eval"
    model: str
    env: EnvironmentConfig
    splits: list[str] = Field(default_factory=lambda: ["dev"])
    episodes: int = Field(4, ge=0, description="Episodes per split for success rate (0 = skip).")
    action_states: int = Field(32, ge=0, description="Held-out expert states for next-action accuracy.")
    pairs: str | None = Field(None, description="Collect output whose pairs/heldout.parquet is scored.")
    judge_pairs: int = Field(32, ge=0, description="Held-out pairs for judgement accuracy.")
    expert_max_length: int = Field(40, ge=1, description="Skip held-out expert episodes longer than this.")
    generation: GenerationConfig = Field(default_factory=lambda: GenerationConfig(temperature=0.0))
    batch_size: int = Field(16, ge=1)

    @field_validator("splits")
    @classmethod
    def _splits(cls, v: list[str]) -> list[str]:
        if not v:
            raise ValueError("splits must name at least one split")
        return v


StageConfig = Annotated[
    CollectConfig | JudgeConfig | PolicyConfig | EvalConfig, Field(discriminator="stage")
]


class _Envelope(BaseModel):
    config: StageConfig


class ConfigError(ValueError):
    """A stage config that fails validation: one line per problem, each naming the field."""


def format_errors(err: ValidationError, prefix: str = "") -> str:
    lines = []
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"] if p != "config")
        lines.append(f"{prefix}{loc or '(root)'}: {e['msg']}")
    return "\n".join(lines)


def parse_stage_config(data: dict, expected: str | None = None):
    try:
        cfg = _Envelope.model_validate({"config": data}).config
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
