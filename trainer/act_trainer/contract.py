"""What a user tunes in each stage, defined once.

The ACTJob spec (act_operator.api) and the stage configs (act_trainer.config) both build
on these models: the spec adds what only a cluster needs (resources, retries, shards,
enabling and reuse), the config adds what the executor fills in (the job, its inputs and
output, the shard). Field names, bounds, defaults and descriptions live here and nowhere
else. Import-light on purpose (pydantic only): the operator imports it without torch.

Python names are snake_case; the ACTJob spec shows them camelCase (its alias generator),
stage configs keep snake_case.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic.alias_generators import to_camel

from act_trainer.rules import check_value, enforce, uri_rules

ENVIRONMENTS = ("scienceworld", "alfworld", "textworld-express", "webshop")
URI_SCHEMES = ("s3://", "file://")
# Episodes eval plays at once when parallelEpisodes is unset: each needs its own simulator
# instance, and the Java-backed ones start a JVM each (~150 MB), so they get a smaller pool.
PARALLEL_EPISODES = {"scienceworld": 4, "textworld-express": 4, "alfworld": 16, "webshop": 16}
ENGINES = ("auto", "hf", "vllm")
PRECISIONS = ("auto", "bf16", "fp32")
PRECISION_DESCRIPTION = (
    "Numeric precision of training and sampling. auto: mixed precision bf16 training on GPUs, float32 on CPUs; "
    "the transformers sampler in float32, vLLM in the checkpoint's dtype (float32 on CPUs). bf16: mixed "
    "precision bf16 in every training stage (TRL's bf16; the weights stay float32) and bfloat16 weights in the "
    "samplers of collect, eval and the Early Experience rollouts, on CPUs too, where it pays only with bf16 "
    "instructions (AVX512-BF16, AMX). fp32: float32 everywhere, GPUs included.")


# --- what each environment adapter knows without I/O -------------------------------------------

@dataclass(frozen=True)
class EnvFacts:
    """Static facts of one environment: what admission checks and the adapter reads (one definition).

    `tasks`: the task names environment.tasks may hold (empty: the environment has no task names,
    so tasks must stay empty); `task_ids`: other spellings the adapter accepts for them (ALFWorld's
    type ids 1-6, ScienceWorld's paper ids like 1-1). `games`: environment.game values (empty: the
    field does not apply). ScienceWorld's task names and TextWorldExpress's games are copies of
    the packages' own lists (scienceworld/tasks.json, textworld_express.GAME_NAMES); a unit test
    compares them where the packages are installed.
    """

    label: str
    splits: tuple[str, ...]
    tasks: tuple[str, ...] = ()
    task_ids: tuple[str, ...] = ()
    games: tuple[str, ...] = ()
    default_game: str | None = None
    branching: bool = True  # deterministic: Environment.branch() restores expert states by replay

    @property
    def task_names(self) -> tuple[str, ...]:
        """Everything environment.tasks accepts: names, then ids."""
        return self.tasks + self.task_ids


_SCIENCEWORLD_TASKS = {  # scienceworld 1.2.3 constants.ID2TASK (tasks.json), in the package's order
    "1-1": "boil", "1-2": "melt", "1-3": "freeze", "1-4": "change-the-state-of-matter-of",
    "2-1": "use-thermometer", "2-2": "measure-melting-point-known-substance",
    "2-3": "measure-melting-point-unknown-substance", "3-1": "power-component",
    "3-2": "power-component-renewable-vs-nonrenewable-energy", "3-3": "test-conductivity",
    "3-4": "test-conductivity-of-unknown-substances", "4-1": "find-living-thing", "4-2": "find-non-living-thing",
    "4-3": "find-plant", "4-4": "find-animal", "5-1": "grow-plant", "5-2": "grow-fruit", "6-1": "chemistry-mix",
    "6-2": "chemistry-mix-paint-secondary-color", "6-3": "chemistry-mix-paint-tertiary-color",
    "7-1": "lifespan-longest-lived", "7-2": "lifespan-shortest-lived",
    "7-3": "lifespan-longest-lived-then-shortest-lived", "8-1": "identify-life-stages-1",
    "8-2": "identify-life-stages-2", "9-1": "inclined-plane-determine-angle",
    "9-2": "inclined-plane-friction-named-surfaces", "9-3": "inclined-plane-friction-unnamed-surfaces",
    "10-1": "mendelian-genetics-known-plant", "10-2": "mendelian-genetics-unknown-plant",
}
ALFWORLD_TASK_TYPES = ("pick_and_place_simple", "look_at_obj_in_light", "pick_clean_then_place_in_recep",
                       "pick_heat_then_place_in_recep", "pick_cool_then_place_in_recep", "pick_two_obj_and_place")
TEXTWORLD_EXPRESS_GAMES = ("cookingworld", "coin", "twc", "mapreader", "arithmetic", "sorting", "simonsays",
                           "peckingorder")

ENV_FACTS: dict[str, EnvFacts] = {
    "scienceworld": EnvFacts("ScienceWorld", ("train", "dev", "test"), tuple(_SCIENCEWORLD_TASKS.values()),
                             tuple(_SCIENCEWORLD_TASKS)),
    "alfworld": EnvFacts("ALFWorld", ("train", "valid_seen", "valid_unseen", "valid_train"), ALFWORLD_TASK_TYPES,
                         tuple(str(i) for i in range(1, len(ALFWORLD_TASK_TYPES) + 1))),
    # one game per environment: tasks, if given, is [game] (the adapter's rule)
    "textworld-express": EnvFacts("TextWorldExpress", ("train", "dev", "test"), TEXTWORLD_EXPRESS_GAMES,
                                  games=TEXTWORLD_EXPRESS_GAMES, default_game="twc"),
    "webshop": EnvFacts("WebShop", ("train", "dev", "test"), branching=False),  # goal index ranges; no task names
}
assert set(ENV_FACTS) == set(ENVIRONMENTS)
MAX_TASKS = 64         # environment.tasks: at most this many entries (bounds the CEL cost) ...
MAX_NAME_LENGTH = 128  # ... each at most this long; also eval splits
MAX_SPLITS = 8         # stages.eval.splits: at most this many


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="after")
    def _admission(self):
        """The admission rules of act_trainer.rules (the same CEL is in the CRD)."""
        return enforce(self)


def listed_once(names: list[str], what: str) -> None:
    """A list keyed by name (benchmarks, env variables): each name once, else a ValueError saying which."""
    if twice := sorted({n for n in names if names.count(n) > 1}):
        raise ValueError(f"{', '.join(twice)} {what} more than once; keep one entry per name")


def check_uri(value: str, *, allow_path: bool = False, extra_schemes: tuple[str, ...] = ()) -> str:
    """Accept s3:// and file:// URIs (and plain paths where allowed). Pydantic prefixes the field name."""
    return check_value(value, uri_rules(URI_SCHEMES + extra_schemes, allow_path=allow_path))


# --- where the agent acts ----------------------------------------------------------------------

class EnvironmentSettings(Settings):
    """The environment the agent acts in, and how prompts show it."""

    name: Literal[ENVIRONMENTS] = Field(description="Environment the agent acts in.")
    tasks: list[Annotated[str, Field(max_length=MAX_NAME_LENGTH)]] = Field(
        default_factory=list, max_length=MAX_TASKS,
        description="Task names to use (empty: all tasks). ScienceWorld: task names or ids (1-1); ALFWorld: "
                    "task types or ids 1-6; TextWorldExpress: none (set game); WebShop: none.")
    max_steps: int = Field(50, ge=1, le=1000, description="Step limit of an evaluation episode.")
    history: int = Field(4, ge=0, le=64, description="Past (action, observation) turns shown in prompts.")
    simplification: str = Field("easy", description="ScienceWorld simplification string.")
    expert_type: Literal["default", "walkthrough", "handcoded"] = Field(
        "default", description="Which expert plays when trajectories are generated: ALFWorld's stored "
                               "walkthroughs or its handcoded expert; other environments have one (default).")
    data_dir: str | None = Field(None, description="Game files (ALFWorld: the ALFWORLD_DATA directory).")
    url: str | None = Field(None, description="Address of a running environment server (WebShop).")
    game: str | None = Field(None, description="TextWorldExpress game type (default twc): "
                                               + ", ".join(TEXTWORLD_EXPRESS_GAMES) + ".")
    game_params: str = Field("", description="TextWorldExpress game parameters, e.g. 'numLocations=1'.")


class ExpertSettings(Settings):
    """Where expert trajectories come from: a file, or the environment's own expert."""

    uri: str | None = Field(None, description="Expert trajectories file (JSONL or parquet; format: docs/actjob.md#expert-trajectory-format). "
                                              "Unset: the collect stage generates them with the environment's expert.")
    split: str = Field("train", description="Split the environment's expert plays when uri is unset.")
    episodes: int = Field(8, ge=1, le=100000, description="Expert episodes to generate when uri is unset.")
    max_length: int = Field(40, ge=1, le=1000, description="Skip expert episodes longer than this many steps.")

    @field_validator("uri")
    @classmethod
    def _uri(cls, v: str | None) -> str | None:
        return None if v is None else check_uri(v, allow_path=True)


class S3Settings(Settings):
    """How to reach S3. Credentials never appear here: they come from the environment
    (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, filled from a Secret on a cluster)."""

    endpoint: str | None = Field(None, description="S3 endpoint URL for MinIO/Ceph/SeaweedFS; unset for AWS.")
    region: str | None = Field(None, description="S3 region.")


class TrackingSettings(Settings):
    """MLflow: where runs go."""

    uri: str | None = Field(None, description="MLflow tracking URI. Unset in an ACTJob: sqlite:/// under the "
                                              "local run directory (actjob run), or the operator's default; "
                                              "unset in a stage config: no tracking.")
    experiment: str = Field("act", min_length=1, description="MLflow experiment name.")


# --- the stages --------------------------------------------------------------------------------

class CollectSettings(Settings):
    """collect: sample K alternatives per expert state and keep up to M as contrast pairs."""

    samples: int = Field(8, ge=1, le=256, description="K: alternatives sampled per expert state.")
    max_alternatives: int = Field(4, ge=1, le=256, description="M: distinct alternatives kept per state.")
    temperature: float = Field(1.0, gt=0.0, le=5.0, description="Sampling temperature.")
    top_p: float = Field(1.0, gt=0.0, le=1.0, description="Nucleus sampling threshold.")
    max_new_tokens: int = Field(32, ge=1, le=4096, description="Token budget of one sampled action.")
    heldout_fraction: float = Field(0.2, ge=0.0, lt=1.0, description="Share of episodes whose pairs are held "
                                                                     "out for judgement accuracy.")
    engine: Literal[ENGINES] = Field("auto", description="Sampler: auto (vLLM where it runs: GPUs, "
                                                         "or CPUs with its CPU build; transformers otherwise), hf (transformers) or vllm.")
    batch_size: int = Field(16, ge=1, le=4096, description="Prompts per generate call.")
    filter_inadmissible: bool = Field(True, description="Drop alternatives the environment does not list as "
                                                        "admissible (where it lists them).")
    verify_alternatives: bool = Field(False, description="Take each alternative in the environment, from the "
                                      "expert state restored by replay, and drop it when it does as well as "
                                      "the expert's action: wins, gains as much score, or reaches the same "
                                      "next observation. ScienceWorld, ALFWorld, TextWorldExpress; costs a "
                                      "replay of the state's prefix per alternative.")
    record_outcomes: bool = Field(False, description="Take each kept alternative in the environment, from the "
                                  "expert state restored by replay, and store what followed (the next "
                                  "observation of the alternative and of the expert's action) with the pair: "
                                  "the Early Experience judge methods (iwm, sr) learn from it. verifyAlternatives "
                                  "records it too. ScienceWorld, ALFWorld, TextWorldExpress.")

    @property
    def branches(self) -> bool:
        """Whether collect takes alternatives in the environment (restoring expert states by replay)."""
        return self.verify_alternatives or self.record_outcomes

    def branching_refusal(self, env: str) -> str | None:
        """Why collect cannot take alternatives in environment `env` as asked, or None."""
        if not self.branches or ENV_FACTS[env].branching:
            return None
        field = "verifyAlternatives" if self.verify_alternatives else "recordOutcomes"
        return (f"stages.collect.{field}: {ENV_FACTS[env].label} cannot restore expert states by replay; "
                f"turn {field} off for it")


class RolloutSettings(Settings):
    """How a GRPO stage generates its completions: TRL's vLLM integration or transformers."""

    # nested in a stage's settings: camelCase in the ACTJob spec, snake_case in stage configs
    model_config = ConfigDict(extra="forbid", alias_generator=to_camel, populate_by_name=True)

    engine: Literal[ENGINES] = Field("auto", description="Rollout generator: vllm (TRL's vLLM integration), hf "
                                     "(transformers generate) or auto: vLLM when the stage has GPUs "
                                     "(resources.gpus > 0), transformers otherwise.")
    mode: Literal["colocate", "server"] = Field(
        "colocate", description="vLLM beside each training process on its GPUs (colocate), or in a server pod "
                                "(`trl vllm-serve`) beside the training gang (server).")
    gpu_memory_utilization: float = Field(0.3, gt=0.0, le=1.0, description="Share of GPU memory vLLM takes "
                                          "(colocate: leave the rest to training).")
    tensor_parallel_size: int = Field(1, ge=1, le=64, description="GPUs one vLLM instance spans: in colocate "
                                      "mode it must divide the processes of the gang; in server mode, at most "
                                      "serverGpus.")
    sleep_mode: bool = Field(True, description="Colocate on GPUs: vLLM releases its weights and KV cache while "
                                               "the model trains (TRL's vllm_enable_sleep_mode).")
    server_gpus: int = Field(1, ge=0, le=64, description="Server mode: GPUs of the vLLM server pod (at least 1).")
    server_port: int = Field(8000, ge=1024, le=65535, description="Server mode: HTTP port of the vLLM server.")
    group_port: int = Field(51216, ge=1024, le=65535, description="Server mode: port the trainer pushes "
                                                                  "weights to the server on (NCCL group).")


class TrainSettings(Settings):
    """What the two training stages (judge and policy) share: optimizer, GRPO and the gang."""

    learning_rate: float = Field(1e-6, gt=0.0, le=1.0, description="Learning rate.")
    epochs: float = Field(1.0, gt=0.0, le=1000, description="Passes over the data.")
    max_steps: int = Field(-1, ge=-1, description="Stop after this many optimizer steps (-1: run the epochs).")
    batch_size: int = Field(8, ge=1, le=4096, description="Per-process batch size (completions for GRPO).")
    gradient_accumulation: int = Field(1, ge=1, le=1024, description="Gradient accumulation steps.")
    save_steps: int = Field(50, ge=1, description="Checkpoint to storage every N steps; a retry resumes there.")
    keep_checkpoints: int = Field(2, ge=1, le=1000, description="Complete checkpoints kept in storage: older ones "
                                  "are deleted as newer ones complete (an 8B ZeRO-3 checkpoint is ~100 GB).")
    delete_checkpoints_after_save: bool = Field(False, description="Delete every checkpoint of the stage from "
                                                "storage once its model is saved and published.")
    logging_steps: int = Field(1, ge=1, le=100000, description="Log metrics every N steps.")
    gradient_checkpointing: bool = Field(True, description="Recompute activations in the backward pass: less "
                                                           "memory for large models, wasted time for tiny ones.")
    group_size: int = Field(8, ge=2, le=128, description="G: GRPO completions per prompt.")
    beta: float = Field(0.0, ge=0.0, le=10.0, description="GRPO KL coefficient.")
    epsilon: float = Field(0.2, gt=0.0, le=10.0, description="GRPO clip range.")
    max_completion_length: int = Field(64, ge=1, le=32768, description="GRPO completion token budget "
                                       "(judge method sr: the generated rationale's).")
    temperature: float = Field(1.0, gt=0.0, le=5.0, description="GRPO sampling temperature.")
    rollout: RolloutSettings = Field(default_factory=RolloutSettings, description="How GRPO completions are "
                                     "generated: vLLM (colocated or a server pod) or transformers.")
    nodes: int = Field(1, ge=1, le=512, description="Nodes (pods) of the training gang.")
    processes_per_node: int = Field(1, ge=1, le=64, description="Processes per node (one per GPU).")
    zero_stage: Literal[0, 2, 3] = Field(3, description="DeepSpeed ZeRO stage when world size > 1 (0: DDP).")
    trl: dict[str, Any] = Field(default_factory=dict, description="More TRL config keys, passed through as "
                                "given in TRL's spelling, e.g. {warmup_steps: 10, lr_scheduler_type: cosine}: "
                                "fields of the installed TRL's GRPOConfig where the "
                                "stage's method runs GRPO (judge act, policy rl and online-rl), else of its SFTConfig. The "
                                "preflight refuses a key that TRL config does not have, and one that a field "
                                "here already sets.")

    @property
    def world_size(self) -> int:
        return self.nodes * self.processes_per_node


JUDGE_METHODS = ("act", "iwm", "sr")
EARLY_EXPERIENCE = ("iwm", "sr")  # the Early Experience baselines (arXiv 2510.08558): they need outcomes


class JudgeSettings(TrainSettings):
    """judge (the ACT stage): GRPO on choosing the better of two actions; or, in its place, one of the
    Early Experience baselines learning from the same pairs (SFT)."""

    method: Literal[JUDGE_METHODS] = Field("act", description="act: GRPO on choosing the better action (ACT). "
                                           "Early Experience baselines, SFT on the pairs' recorded outcomes "
                                           "(stages.collect.recordOutcomes): iwm (implicit world modelling: "
                                           "predict the next observation after an action) or sr (self-"
                                           "reflection: the model's own rationale for the expert's action "
                                           "given both outcomes, then the action).")
    malformed_penalty: float = Field(0.0, ge=-1.0, le=0.0, description="Reward for an unreadable judgement.")
    both_orders: bool = Field(False, description="method act: train on every pair in both orders, expert first "
                              "and second, side by side in one step, so that a shift of the answer towards one "
                              "position gains as much reward on one order as it loses on the other and only the "
                              "actions themselves are learnt (as reward models train on swapped pairs). Each "
                              "global batch then holds whole pairs: batchSize x nodes x processesPerNode a multiple "
                              "of 2 x groupSize. Off: one seeded order per pair, shuffled.")

    @property
    def runs_grpo(self) -> bool:
        return self.method == "act"


FORMAT_JUDGEMENTS = ("judgement prompts per expert state answered with a random label, teaching the answer "
                     "format (not the judgement) to a model without instruction tuning.")


class WarmupSettings(TrainSettings):
    """warmup (optional): the initial policy pi0, made from a base model that does not answer in the
    format yet: IL (SFT) on the expert's episodes that collect will not hold out, plus judgement
    prompts with random labels. collect and judge then start from it."""

    format_judgements: float = Field(0.5, ge=0.0, le=1.0, description=FORMAT_JUDGEMENTS)


class OnlineRLSettings(Settings):
    """policy method online-rl: GRPO over whole episodes played in the environment (agent RL)."""

    model_config = ConfigDict(extra="forbid", alias_generator=to_camel, populate_by_name=True)

    reward: Literal["success", "score"] = Field("success", description="An episode's reward: success (1 won, "
                                                "0 not) or score (the environment's score at the end, / 100).")
    split: str = Field("train", max_length=MAX_NAME_LENGTH, description="The environment's split whose "
                       "episodes (tasks) are trained on.")
    tasks: int | None = Field(None, ge=1, le=100000, description="The first N episodes of the split (unset: all). "
                              "Each GRPO group plays one of them groupSize times.")
    max_turns: int | None = Field(None, ge=1, le=1000, description="Turns an episode may take (unset: "
                                  "environment.maxSteps, as eval plays them).")
    envs_per_process: int = Field(4, ge=1, le=256, description="Environment instances each training process "
                                  "plays its episodes on at once (worker processes when above 1).")


class PolicySettings(TrainSettings):
    """policy: IL or RL action generation, starting from the judge's checkpoint."""

    method: Literal["il", "rl", "online-rl", "none"] = Field(
        "il", description="il: SFT on expert actions; rl: GRPO on one prompt per expert state, reward = match "
        "with the expert action; online-rl: GRPO over whole episodes the policy plays in the environment (groups "
        "of groupSize episodes of one task), reward = the episode's outcome (settings: online).")
    format_judgements: float = Field(0.0, ge=0.0, le=1.0, description="il only: " + FORMAT_JUDGEMENTS)
    online: OnlineRLSettings = Field(default_factory=OnlineRLSettings, description="online-rl only: which "
                                     "episodes are played, for how long, and what rewards them.")

    @property
    def runs_grpo(self) -> bool:
        return self.method in ("rl", "online-rl")


REASONING_BENCHMARKS = ("math500", "gpqa-diamond")  # the paper's Table 3 (act_trainer.reasoning)


class ReasoningBenchmark(Settings):
    """One general-reasoning benchmark and where its questions come from."""

    # nested in a stage's settings: camelCase in the ACTJob spec, snake_case in stage configs
    model_config = ConfigDict(extra="forbid", alias_generator=to_camel, populate_by_name=True)

    name: Literal[REASONING_BENCHMARKS] = Field(description="math500 (MATH-500, graded by math-verify) or "
                                                "gpqa-diamond (GPQA Diamond, four choices in a seeded order).")
    data: str | None = Field(None, description="A JSONL file (s3://, file:// or a path) with the Hub dataset's "
                             "columns, one question a line: math500 problem and answer; gpqa-diamond Question, "
                             "Correct Answer, Incorrect Answer 1-3 (other columns are ignored). "
                             "Unset: the Hugging Face Hub (HuggingFaceH4/MATH-500; Idavidrein/gpqa "
                             "gpqa_diamond, gated: the pods need HF_TOKEN, given by spec.pod.env valueFrom."
                             "secretKeyRef).")


class ReasoningSettings(Settings):
    """General reasoning after agent training (the paper's Table 3): each benchmark run `repeats`
    times with its own sampling seed (and GPQA choice order), reported as mean ± std."""

    model_config = ConfigDict(extra="forbid", alias_generator=to_camel, populate_by_name=True)

    benchmarks: list[ReasoningBenchmark] = Field(default_factory=list, max_length=len(REASONING_BENCHMARKS),
                                                 description="Benchmarks to run, each once (empty: none).")
    repeats: int = Field(3, ge=1, le=64, description="Runs of each benchmark, each with its own sampling seed "
                                                     "and GPQA choice order: accuracy is their mean ± std.")
    temperature: float = Field(0.6, ge=0.0, le=5.0, description="Sampling temperature (0: greedy, and the "
                                                                "repeats agree).")
    top_p: float = Field(0.95, gt=0.0, le=1.0, description="Nucleus sampling cut-off.")
    max_new_tokens: int = Field(4096, ge=1, le=131072, description="Token budget of one answer, reasoning "
                                                                   "included (a cut-off answer scores 0).")
    limit: int | None = Field(None, ge=1, le=100000, description="Questions per benchmark, the first in the "
                                                                 "data's order (unset: all).")
    seed: int = Field(0, ge=0, description="Seed of the sampling and of the GPQA choice order; the same for "
                                           "every arm of an experiment whatever its spec.seed, so that every "
                                           "arm answers the same prompts.")

    @field_validator("benchmarks")
    @classmethod
    def _once(cls, v: list[ReasoningBenchmark]) -> list[ReasoningBenchmark]:
        listed_once([b.name for b in v], "listed")
        return v


class EvalSettings(Settings):
    """eval: success rate, next-action accuracy and judgement accuracy of the final model (greedy);
    optionally general reasoning (MATH-500, GPQA-Diamond)."""

    splits: list[Annotated[str, Field(max_length=MAX_NAME_LENGTH)]] = Field(
                              default_factory=lambda: ["dev"], min_length=1, max_length=MAX_SPLITS,
                              description="Environment splits to evaluate on (e.g. dev, test).")
    episodes: int = Field(4, ge=0, le=100000, description="Episodes per split for success rate (0: skip).")
    action_states: int = Field(32, ge=0, le=1000000, description="Held-out expert states for next-action "
                                                                 "accuracy (0: skip).")
    judge_pairs: int = Field(32, ge=0, le=1000000, description="Held-out contrast pairs for judgement "
                                                               "accuracy (0: skip).")
    judge_both_orders: bool = Field(False, description="Judge each held-out pair twice, the expert's action first "
                                    "and second, as LLM-as-judge evaluations do against position bias: a judge "
                                    "that always picks one position then scores exactly 0.5 (with one seeded "
                                    "order per pair it scores the share of pairs that put the expert there). "
                                    "Also reports judge_position_consistency: the share of pairs whose two "
                                    "judgements pick the same action.")
    max_new_tokens: int = Field(48, ge=1, le=4096, description="Token budget of one generated action.")
    batch_size: int = Field(16, ge=1, le=4096, description="Prompts per generate call.")
    parallel_episodes: int | None = Field(
        None, ge=1, le=1024, description="Episodes played at once, one environment instance each, with one "
        "batched generate per step across them. Unset: 4 for the Java-backed environments (ScienceWorld, "
        "TextWorldExpress: one JVM each), 16 otherwise. 1: one episode at a time.")
    engine: Literal[ENGINES] = Field("auto", description="Generator: auto (vLLM where it runs: GPUs, "
                                                         "or CPUs with its CPU build; transformers otherwise), hf (transformers) or vllm.")
    reasoning: ReasoningSettings = Field(default_factory=ReasoningSettings, description="General reasoning "
                                         "benchmarks (MATH-500, GPQA-Diamond) run by the first eval shard with "
                                         "the same engine (none by default).")

    def episodes_at_once(self, env: str) -> int:
        return self.parallel_episodes or PARALLEL_EPISODES.get(env, 16)


@dataclass(frozen=True)
class Precision:
    """What a precision setting means on this machine: TRL's bf16 flag (mixed precision training),
    the dtype the transformers sampler loads, and vLLM's dtype (None: vLLM's own choice, the
    checkpoint's dtype)."""

    train_bf16: bool
    hf_dtype: Literal["float32", "bfloat16"]
    vllm_dtype: Literal["float32", "bfloat16"] | None


def precision(setting: str, gpu: bool) -> Precision:
    """The pure mapping of spec.model.precision (PRECISIONS) on a machine with or without a GPU.
    auto is what the stages did before the setting existed: bf16 training on GPUs only, the
    transformers sampler in float32, vLLM in the checkpoint's dtype on GPUs and float32 on CPU."""
    if setting == "bf16":
        return Precision(True, "bfloat16", "bfloat16")
    if setting == "fp32":
        return Precision(False, "float32", "float32")
    if setting == "auto":
        return Precision(gpu, "float32", None if gpu else "float32")
    raise ValueError(f"precision: {setting!r} is not one of {', '.join(PRECISIONS)}")


def settings_of(model: BaseModel, settings: type[Settings]) -> dict:
    """The fields of `settings` that `model` (a spec section built on it) holds, by Python name."""
    return {name: getattr(model, name) for name in settings.model_fields}
