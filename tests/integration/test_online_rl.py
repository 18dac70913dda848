"""policy method online-rl (stages/online_rl.py) on the real TextWorldExpress simulator: its rollouts
play the episodes and earn the rewards that playing them one at a time gives (the sequential
reference, with a scripted policy), in lockstep with a gang's other processes too; and the policy
stage trains a model with it, alone and as a gang of two processes (gloo)."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess

import pytest

pytest.importorskip("textworld_express")

from env_fixtures import needs_java  # noqa: E402
from reference_play import sequential_play  # noqa: E402

from act_operator.local import stage_command  # noqa: E402
from act_trainer.config import (  # noqa: E402
    EnvironmentConfig,
    EvalConfig,
    ExpertSource,
    JobRef,
    PolicyConfig,
    WarmupConfig,
)
from act_trainer.envs import make_env  # noqa: E402
from act_trainer.envs.workers import EnvPool  # noqa: E402
from act_trainer.manifest import read_manifest  # noqa: E402
from act_trainer.rewards import episode_reward  # noqa: E402
from act_trainer.stages import online_rl  # noqa: E402

pytestmark = [pytest.mark.integration, needs_java]

ENV = EnvironmentConfig(name="textworld-express", game="twc", game_params="numLocations=1,numItemsToPutAway=2",
                        max_steps=6, history=2)
ACTIONS = ["look around", "inventory", "take {}", "take {}", "open fridge", "move south"]
OBJECT = re.compile(r"(?:There is also|You also see) an? ([a-z ]+?)\.")
MODEL = "tiny://qwen3-tiny"


def scripted(prompt: list[dict]) -> str:
    """A deterministic policy: the output a function of the prompt; one output in seven unreadable."""
    h = int(hashlib.sha256(repr(prompt).encode()).hexdigest(), 16)
    seen = OBJECT.findall(prompt[-1]["content"]) or ["nothing"]
    action = ACTIONS[h % len(ACTIONS)].format(seen[h % len(seen)])
    return f"<action>{action}</action>" if h % 7 else "no idea"


class ScriptedEngine:
    """The scripted policy behind eval's engine interface: what the sequential reference plays with."""

    name = "scripted"

    def generate(self, prompts, *, n, temperature, max_new_tokens=32, **_):
        return [[scripted(p)] for p in prompts]


class ScriptedGenerator:
    """The scripted policy behind online-rl's generator interface. `extra_rounds`: rounds a gang's
    other process still plays after every episode here ended (generate gets no prompts then)."""

    def __init__(self, extra_rounds: int = 0):
        self.extra, self.empty_calls = extra_rounds, 0

    def more(self, live: int) -> bool:
        if live:
            return True
        self.extra -= 1
        return self.extra >= 0

    def generate(self, prompts):
        if not prompts:
            self.empty_calls += 1
        return [online_rl.Generated([len(p[-1]["content"])], [1, 2], None, scripted(p)) for p in prompts]


def reference(episodes: list[str]) -> list[dict]:
    cfg = EvalConfig(job=JobRef(name="t", uid="u"), output="file:///tmp/unused", model=MODEL, env=ENV)
    env = make_env(ENV)
    try:
        return [sequential_play(env, ScriptedEngine(), ep, cfg) for ep in episodes]
    finally:
        env.close()


@pytest.fixture(scope="module")
def groups():
    """Three tasks, each a group of two episodes (as GRPO's sampler lays out a batch), and the
    reference results of each task played alone."""
    env = make_env(ENV)
    try:
        tasks = env.episodes("train")[:3]
    finally:
        env.close()
    return [t for t in tasks for _ in range(2)], dict(zip(tasks, reference(tasks), strict=True))


@pytest.mark.parametrize("extra_rounds", [0, 3])
def test_rollouts_play_as_the_sequential_loop(groups, extra_rounds):
    episodes, expected = groups
    assert len({(r["steps"], r["score"]) for r in expected.values()}) > 1  # the tasks differ
    assert any(r["malformed"] for r in expected.values())
    generator = ScriptedGenerator(extra_rounds)
    with EnvPool(ENV, 3) as pool:
        played = online_rl.play(pool.workers, generator, episodes, SimpleSettings())
    assert [e.result for e in played] == [expected[ep] for ep in episodes]
    assert [len(e.turns) for e in played] == [expected[ep]["steps"] for ep in episodes]
    assert generator.empty_calls == extra_rounds  # in lockstep with a process still playing
    for kind in ("success", "score"):
        out = online_rl.collate(played, [e.turns[-1] for e in played], kind)
        rewards = episode_reward(["x"] * len(played), **{k: out[k] for k in
                                                        ("episode_reward", "won", "score", "turns", "malformed")})
        assert rewards == [online_rl.reward_of(expected[ep], kind) for ep in episodes]
        assert out["completion_ids"] == [[1, 2]] * len(played) and out["logprobs"] is None


def SimpleSettings():  # noqa: N802 - what LiveEpisode reads, as online_rl.play_settings builds it
    from types import SimpleNamespace

    return SimpleNamespace(env=ENV)


def test_the_step_limit_is_max_turns():
    cfg = policy_config("file:///tmp/unused", online={"max_turns": 2})
    assert online_rl.play_settings(cfg).env.max_steps == 2
    assert online_rl.play_settings(policy_config("file:///tmp/unused")).env.max_steps == ENV.max_steps


def policy_config(output: str, **kw) -> PolicyConfig:
    return PolicyConfig(**{**dict(job=JobRef(name="itest", uid="u1"), output=output, model=MODEL,
                                  expert="/nonexistent", method="online-rl", env=ENV, group_size=2,
                                  max_completion_length=8, learning_rate=1e-3, max_steps=2, batch_size=2,
                                  save_steps=100, gradient_checkpointing=False), **kw})


def run_stage(cfg, tmp_path) -> None:
    config = tmp_path / f"{cfg.stage}.json"
    config.write_text(cfg.model_dump_json())
    env = {**os.environ, "ACT_TERMINATION_LOG": str(tmp_path / "result"), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(stage_command(cfg, config), env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


# coin in one room: "take coin" wins at once, so a model that acts at all wins some episodes
COIN = EnvironmentConfig(name="textworld-express", game="coin", game_params="numLocations=1", max_steps=6, history=2)


@pytest.fixture(scope="module")
def warmed(tmp_path_factory):
    """pi0: IL on the coin game's expert. A random-weight model never writes a readable action, so
    every episode would fail, every advantage be zero and no weight move; after this, rewards differ."""
    tmp = tmp_path_factory.mktemp("warmup")
    cfg = WarmupConfig(job=JobRef(name="itest", uid="u1"), output=f"file://{tmp}/warmup", model=MODEL, env=COIN,
                       expert=ExpertSource(episodes=8), learning_rate=1e-2, max_steps=50, batch_size=8,
                       save_steps=1000, gradient_checkpointing=False)
    run_stage(cfg, tmp)
    return cfg.output


@pytest.mark.parametrize("processes, zero_stage", [(1, 0), (2, 3)])
def test_policy_stage_trains_on_episodes(warmed, tmp_path, processes, zero_stage):
    """From pi0, alone and as a gang of two (gloo, ZeRO-3: each generation gathers the sharded weights,
    a collective, so the gang's rounds must stay in lockstep): whole episodes cut at maxTurns, each
    group's episodes rewarded with their outcome, and the weights move."""
    cfg = policy_config(f"file://{tmp_path}/policy", model=warmed, env=COIN, group_size=4, batch_size=4,
                        max_steps=3, online={"tasks": 4, "max_turns": 3, "envs_per_process": 2},
                        processes_per_node=processes, zero_stage=zero_stage)
    run_stage(cfg, tmp_path)
    manifest = read_manifest(cfg.output)
    assert manifest["metrics"]["steps"] == 3 and manifest["metrics"]["tasks"] == 4
    assert manifest["method"] == "online-rl" and manifest["world_size"] == processes
    log = [h for h in json.loads((tmp_path / "policy" / "train_log.json").read_text()) if "reward" in h]
    assert len(log) == 3 and all(1 <= h["episode_turns"] <= 3 for h in log)  # whole episodes, cut at maxTurns
    assert all(h["reward"] == h["success_rate"] for h in log)  # reward: success
    assert any(h["reward_std"] > 0 for h in log)  # some group's episodes ended differently
    assert changed(warmed, cfg.output)


def changed(start: str, output: str) -> list[str]:
    """The tensors training changed."""
    from safetensors.torch import load_file

    from act_trainer.models import resolve_model

    before = load_file(str(resolve_model(start) / "model.safetensors"))
    after = load_file(str(resolve_model(output) / "model.safetensors"))
    return [k for k in before if not before[k].equal(after[k])]


def test_fewer_tasks_than_one_step_plays_are_refused(warmed, tmp_path):
    """TRL draws a generation batch from distinct tasks: with fewer, it trains 0 steps and says nothing."""
    cfg = policy_config(f"file://{tmp_path}/policy", model=warmed, env=COIN, group_size=2, batch_size=4,
                        online={"tasks": 1})
    config = tmp_path / "policy.json"
    config.write_text(cfg.model_dump_json())
    env = {**os.environ, "ACT_TERMINATION_LOG": str(tmp_path / "result"), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(stage_command(cfg, config), env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert "stages.policy.online.tasks: 1 task(s)" in proc.stderr and "plays 2" in proc.stderr, proc.stderr[-2000:]
