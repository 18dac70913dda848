"""policy method online-rl: agent RL, GRPO over whole episodes played in the environment.

Each GRPO group is groupSize episodes of one task (an episode id of stages.policy.online.split:
the same task and variation, so the same start). TRL's GRPOTrainer runs GRPO; its `rollout_func`
hands each process its slice of the batch (one entry per episode, a group's entries side by side)
and gets back what to train on. Here that is `Rollouts`: it plays every episode to its end with the
current policy, as eval plays them (eval's per-turn prompts, history window and step limit:
act_trainer.playing), sampling each turn through the trainer's own generation (transformers, or
vLLM colocated or on a server: TRL keeps its weights in sync), and rewards the episode with its
outcome (rewards.episode_reward: success, or the environment's score).

What a GRPO sample is: TRL trains one (prompt, completion) per rollout, while an episode is several
turns, each with a prompt of its own. The sample is one turn of the episode, drawn at random (seeded),
with the episode's reward: every turn's prompt is exactly the one the policy acted on (and eval
prompts with), so the step is on-policy, and in expectation over the drawn turn the gradient is
the episode-level GRPO's (up to the 1/turns weight of a mean over turns).

A gang (several processes, nodes) works as for the other GRPO methods: each process plays its
slice; the rounds of generation are kept in lockstep across processes (a process whose episodes
have ended generates filler), as vLLM's server mode and ZeRO-3 need every process in each call.
"""

from __future__ import annotations

import logging
import random
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from types import SimpleNamespace

from act_trainer.config import PolicyConfig
from act_trainer.envs import make_env
from act_trainer.envs.workers import EnvPool
from act_trainer.errors import InputError
from act_trainer.playing import LiveEpisode
from act_trainer.prompts import parse_action
from act_trainer.rewards import episode_reward
from act_trainer.stages import training

log = logging.getLogger("act_trainer.online_rl")


@dataclass
class Generated:
    """One sampled turn: the prompt's and the completion's tokens, the sampler's logprobs of the
    completion (vLLM; None from transformers), and the completion's text."""

    prompt_ids: list[int]
    completion_ids: list[int]
    logprobs: list[float] | None
    text: str


@dataclass
class Episode:
    """A played episode: eval's result record (won, score, steps, malformed) and its turns."""

    result: dict
    turns: list[Generated] = field(default_factory=list)


def reward_of(result: dict, kind: str) -> float:
    """An episode's reward: success 1/0, or its final score on 0-1 (the environments score 0-100)."""
    return float(result["won"]) if kind == "success" else float(result["score"]) / 100.0


def play_settings(cfg: PolicyConfig):
    """The environment settings episodes are played with: environment.maxSteps, or online.maxTurns."""
    env = cfg.env.model_copy(update={"max_steps": cfg.online.max_turns or cfg.env.max_steps})
    return SimpleNamespace(env=env)  # what LiveEpisode reads (cfg.env.history, cfg.env.max_steps)


def play(envs: list, generator, episodes: list[str], settings) -> list[Episode]:
    """Play `episodes` to their ends on the instances `envs` at once: one round of generation per turn
    over the live episodes (generator.generate, in the order of `episodes`), then one step in each
    environment, from threads (worker processes step at once). A finished episode's instance takes the
    next episode. `generator.more(live)` says whether another round runs (in a gang: while any process
    has a live episode). Each result is what playing its episode alone with the same policy gives."""
    done: dict[int, Episode] = {}
    queue = list(enumerate(episodes))
    live: dict[int, tuple[LiveEpisode, list[Generated]]] = {}
    with ThreadPoolExecutor(max_workers=max(1, len(envs))) as pool:
        def refill(free: list) -> None:
            jobs = [(env, *queue.pop(0)) for env in free[:len(queue)]]
            for (env, i, episode), obs in zip(jobs, pool.map(lambda j: j[0].reset(j[2]), jobs), strict=True):
                live[i] = (LiveEpisode(env, episode, obs), [])

        refill(list(envs))
        while generator.more(len(live)):
            order = sorted(live)
            # called with no prompts too: the other processes of a gang may still be playing
            outs = generator.generate([live[i][0].prompt(settings) for i in order])
            for i, out in zip(order, outs, strict=True):
                live[i][1].append(out)
            list(pool.map(lambda io: live[io[0]][0].act(parse_action(io[1].text), io[1].text),
                          zip(order, outs, strict=True)))
            free = []
            for i in order:
                if live[i][0].done(settings):
                    episode, turns = live.pop(i)
                    done[i] = Episode(episode.result(), turns)
                    free.append(episode.env)
            refill(free)
    return [done[i] for i in range(len(episodes))]


class TrainerGenerator:
    """Samples turns with a GRPOTrainer's own generation (its tokenizer and chat template, its
    generation config: temperature, maxCompletionLength; transformers or vLLM), in lockstep with
    the other processes of a gang: every process runs the same rounds with the same number of
    prompts (filler where it has fewer live episodes), as vLLM's server mode and ZeRO-3 need."""

    def __init__(self, trainer):
        self.trainer, self.width, self.filler = trainer, 0, None

    def more(self, live: int) -> bool:
        import torch

        acc = self.trainer.accelerator
        self.width = int(acc.gather(torch.tensor([live], device=acc.device)).max().item())
        return self.width > 0

    def generate(self, prompts: list[list[dict]]) -> list[Generated]:
        if prompts:
            self.filler = prompts[0]
        if self.filler is None:  # no episode here has started a turn yet: any prompt will do
            self.filler = [{"role": "user", "content": "."}]
        padded = prompts + [self.filler] * (self.width - len(prompts))
        t = self.trainer
        prompt_ids, _, _ = t._tokenize_prompts(padded)
        completion_ids, logprobs = t._generate_single_turn(prompt_ids, None, {}, 1)
        texts = t.processing_class.batch_decode(completion_ids, skip_special_tokens=True)
        return [Generated(list(p), list(c), None if logprobs is None else list(lp), x)
                for p, c, lp, x in zip(prompt_ids, completion_ids, logprobs or [None] * len(padded), texts,
                                       strict=True)][:len(prompts)]


class Rollouts:
    """TRL's rollout_func: plays the process's episodes, returns one trained turn per episode."""

    def __init__(self, cfg: PolicyConfig):
        self.cfg, self.settings = cfg, play_settings(cfg)
        self.env, self.pool = None, None
        self.calls = 0

    def envs(self) -> list:
        if self.env is None and self.pool is None:
            if self.cfg.online.envs_per_process > 1:
                self.pool = EnvPool(self.settings.env, self.cfg.online.envs_per_process)
            else:
                self.env = make_env(self.settings.env)
        return self.pool.workers if self.pool is not None else [self.env]

    def close(self) -> None:
        if self.pool is not None:
            self.pool.close()
        if self.env is not None:
            self.env.close()
        self.env = self.pool = None

    def __call__(self, prompts: list[str], trainer) -> dict:
        played = play(self.envs(), TrainerGenerator(trainer), list(prompts), self.settings)
        rank = trainer.accelerator.process_index
        rng = random.Random(f"{self.cfg.seed}|{trainer.state.global_step}|{rank}|{self.calls}")
        self.calls += 1
        chosen = [e.turns[rng.randrange(len(e.turns))] for e in played]
        return collate(played, chosen, self.cfg.online.reward)


def collate(played: list[Episode], chosen: list[Generated], reward: str) -> dict:
    """rollout_func's answer: the trained turn of each episode, and the episode's outcome (passed on to
    the reward function as columns)."""
    logprobs = [g.logprobs for g in chosen]
    return {"prompt_ids": [g.prompt_ids for g in chosen], "completion_ids": [g.completion_ids for g in chosen],
            "logprobs": None if any(lp is None for lp in logprobs) else logprobs,
            "episode_reward": [reward_of(e.result, reward) for e in played],
            "won": [float(e.result["won"]) for e in played],
            "score": [float(e.result["score"]) for e in played],
            "turns": [float(e.result["steps"]) for e in played],
            "malformed": [float(e.result["malformed"]) for e in played]}


def tasks(cfg: PolicyConfig) -> list[str]:
    """The episodes trained on: the first online.tasks of online.split."""
    env = make_env(cfg.env)
    try:
        if cfg.online.split not in env.splits():
            raise InputError(f"stages.policy.online.split: '{cfg.online.split}' is not a split of {cfg.env.name}; "
                             f"choose from {env.splits()}")
        return env.episodes(cfg.online.split)[: cfg.online.tasks]
    finally:
        env.close()


def train(cfg: PolicyConfig, st) -> dict:
    """GRPO over episodes from cfg.model, then publish the model."""
    from datasets import Dataset
    from transformers import AutoTokenizer
    from trl import GRPOConfig, GRPOTrainer

    from act_trainer.models import resolve_model

    episodes = tasks(cfg)
    if not episodes:
        raise InputError(f"stages.policy.online: split '{cfg.online.split}' of {cfg.env.name} has no episodes")
    # TRL draws each generation batch from distinct tasks (each played groupSize times): with fewer tasks
    # than one batch needs it trains 0 steps and says nothing
    per_step = -(-cfg.batch_size * cfg.world_size * cfg.gradient_accumulation // cfg.group_size)
    if len(episodes) < per_step:
        raise InputError(f"stages.policy.online.tasks: {len(episodes)} task(s) of {cfg.env.name}/{cfg.online.split}, "
                         f"but one GRPO step plays {per_step} (batchSize {cfg.batch_size} x {cfg.world_size} "
                         f"process(es) x gradientAccumulation {cfg.gradient_accumulation} / groupSize "
                         f"{cfg.group_size}): raise online.tasks or lower batchSize")
    log.info("policy (online-rl): %d tasks of %s/%s, %d episodes a group, reward %s, from %s", len(episodes),
             cfg.env.name, cfg.online.split, cfg.group_size, cfg.online.reward, cfg.model)
    model_dir = resolve_model(cfg.model)
    ckpt_dir = st.scratch / "checkpoints"
    resume = training.fetch_checkpoint(cfg.checkpoints, ckpt_dir)
    rollouts = Rollouts(cfg)
    try:
        trainer = GRPOTrainer(model=str(model_dir), processing_class=AutoTokenizer.from_pretrained(model_dir),
                              reward_funcs=[episode_reward],
                              train_dataset=Dataset.from_list([{"prompt": e} for e in episodes]),
                              args=GRPOConfig(**training.grpo_args(cfg, ckpt_dir)), rollout_func=rollouts,
                              callbacks=training.callbacks(cfg, st, resume))
        done = training.train_and_save(trainer, st, resume)
    finally:
        rollouts.close()
    if done is None:
        return {}
    metrics, info = done
    metrics["tasks"] = len(episodes)
    result = st.publish(metrics, extra={"method": "online-rl", "start_model": cfg.model, "split": cfg.online.split,
                                        "reward": cfg.online.reward, **info})
    training.delete_all_checkpoints(cfg)
    return result
