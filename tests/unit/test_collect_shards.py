"""collect's sharding: whatever the shard count, every state is sampled in the same generate
batch with the same seed, so the shards together give exactly the pairs one shard gives."""

import random

import pytest

from act_trainer import data
from act_trainer.config import CollectConfig, EnvironmentConfig, JobRef, Shard
from act_trainer.stages.collect import batch_seed, contrast_pairs


class SeededEngine:
    """Like HFEngine: one seed per call, draws in prompt order, so a sample depends on its batch."""

    def __init__(self):
        self.calls = []

    def generate(self, prompts, *, n, temperature, top_p, max_new_tokens, prefill, seed):
        self.calls.append((len(prompts), seed))
        rng = random.Random(seed)
        return [[f"<action>take {rng.randrange(6)}</action>" for _ in range(n)] for _ in prompts]


def trajectories(episodes=5, steps=7):
    return [data.Trajectory(env="scienceworld", task=f"t{e}", goal="g", variation=e,
                            steps=[data.Step(f"obs {e}.{s}", f"take {s % 6}") for s in range(steps)])
            for e in range(episodes)]


CFG = CollectConfig(job=JobRef(name="u", uid="u"), output="file:///tmp/unit-collect", model="tiny://qwen3-tiny",
                    env=EnvironmentConfig(name="scienceworld", history=2), samples=4, max_alternatives=3,
                    batch_size=4, seed=7)


@pytest.mark.parametrize("count", [2, 3, 9])
def test_shards_together_give_the_pairs_of_one(count):
    trajs = trajectories()
    one, report = contrast_pairs(CFG, SeededEngine(), trajs)
    parts, sampled = [], 0
    for index in range(count):
        engine = SeededEngine()
        rows, r = contrast_pairs(CFG, engine, trajs, Shard(index=index, count=count))
        assert [seed for _, seed in engine.calls] == [batch_seed(7, b) for b in range(index, 9, count)]
        parts += rows
        sampled += r.sampled
    assert one and sorted(p["pair_id"] for p in parts) == sorted(p["pair_id"] for p in one)
    assert sorted(map(str, parts)) == sorted(map(str, one))
    assert sampled == report.sampled == 35 * CFG.samples


def test_batch_seeds_differ_by_batch_and_seed():
    assert len({batch_seed(s, b) for s in range(3) for b in range(50)}) == 150
