"""Eval plays episodes in parallel (N simulator instances in lockstep, one batched generate per
round; in-process or in worker processes) and gets what the sequential loop gets, episode by episode
(greedy), on real ScienceWorld."""

from __future__ import annotations

import hashlib
import shutil

import pytest

pytest.importorskip("scienceworld")

from reference_play import sequential_play  # noqa: E402

from act_trainer.config import EnvironmentConfig, EvalConfig, JobRef  # noqa: E402
from act_trainer.envs import make_env  # noqa: E402
from act_trainer.stages import evaluate  # noqa: E402

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(shutil.which("java") is None, reason="ScienceWorld needs a Java runtime")]

ENV = EnvironmentConfig(name="scienceworld", tasks=["find-living-thing"], max_steps=6, history=2)
# Unambiguous ScienceWorld actions (for an ambiguous one it lists the candidates in a random order);
# `focus on agent` fails the episode, so episodes end at different steps
ACTIONS = ["look around", "open door to hallway", "go to hallway", "inventory", "focus on agent", "look at agent",
           "wait1", "teleport to kitchen"]


class ScriptedEngine:
    """A deterministic policy behind the engine interface: the output is a function of the prompt
    alone (as a greedy model's is), so that episodes differ and step through the simulator;
    one output in nine is unreadable. Records the batch sizes it was asked for."""

    name = "scripted"

    def __init__(self):
        self.batches: list[int] = []

    def generate(self, prompts, *, n, temperature, max_new_tokens=32, **_):
        self.batches.append(len(prompts))
        outs = []
        for p in prompts:
            h = int(hashlib.sha256(repr(p).encode()).hexdigest(), 16)
            outs.append([f"<think>hm</think><action>{ACTIONS[h % len(ACTIONS)]}</action>" if h % 9 else "nothing"])
        return outs


def eval_config(**kw) -> EvalConfig:
    return EvalConfig(job=JobRef(name="t", uid="u"), output="file:///tmp/unused", model="tiny://qwen3-tiny",
                      env=ENV, max_new_tokens=8, **kw)


@pytest.fixture(scope="module")
def envs():
    made = [make_env(ENV) for _ in range(4)]
    yield made
    for e in made:
        e.close()


@pytest.fixture(scope="module")
def episodes(envs):
    return envs[0].episodes("dev")[:7]


def test_parallel_equals_sequential(envs, episodes):
    cfg = eval_config()
    engine = ScriptedEngine()
    reference = [sequential_play(envs[0], engine, ep, cfg) for ep in episodes]
    assert len({r["steps"] for r in reference}) > 1 and any(r["malformed"] for r in reference)  # varied episodes
    engine.batches.clear()
    parallel = evaluate.play_many(envs, engine, episodes, cfg)
    assert parallel == reference
    assert max(engine.batches) == 4  # one generate per round over the 4 live episodes
    assert len(engine.batches) < sum(r["steps"] for r in reference)
    assert evaluate.play(envs[1], engine, episodes[2], cfg) == reference[2]


def test_parallel_equals_sequential_tiny_model(envs, episodes):
    """The real transformers engine, batched greedy: the same results as one prompt at a time."""
    from act_trainer.engines.hf import HFEngine
    from act_trainer.models import resolve_model

    cfg = eval_config()
    engine = HFEngine(str(resolve_model("tiny://qwen3-tiny")), batch_size=16)
    reference = [sequential_play(envs[0], engine, ep, cfg) for ep in episodes[:5]]
    assert evaluate.play_many(envs[:3], engine, episodes[:5], cfg) == reference


def test_parallel_on_worker_processes_equals_sequential(envs, episodes):
    """As eval runs it: each instance in a worker process (envs/workers.py)."""
    from act_trainer.envs.workers import EnvPool

    cfg = eval_config()
    engine = ScriptedEngine()
    reference = [sequential_play(envs[0], engine, ep, cfg) for ep in episodes]
    with EnvPool(ENV, 3) as pool:
        engine.batches.clear()
        assert evaluate.play_many(pool.workers, engine, episodes, cfg) == reference
    assert max(engine.batches) == 3


def test_default_pool_per_environment():
    assert eval_config().episodes_at_once("scienceworld") == 4
    assert eval_config().episodes_at_once("alfworld") == 16
    assert eval_config(parallel_episodes=1).episodes_at_once("scienceworld") == 1
