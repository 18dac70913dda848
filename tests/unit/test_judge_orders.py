"""Judgement accuracy over held-out pairs, one seeded order or both orders (pure: scripted judges)."""

import re

import pytest

from act_trainer import data, store
from act_trainer.config import EnvironmentConfig, EvalConfig, JobRef
from act_trainer.stages.evaluate import judgement_accuracy


class Judge:
    """Answers every judgement prompt by a rule: always one position, or always the expert's action."""

    def __init__(self, rule):
        self.rule = rule

    def generate(self, prompts, n, temperature, max_new_tokens):
        outs = []
        for messages in prompts:
            first, second = re.findall(r"Action [12]: (.*)", messages[-1]["content"])
            outs.append([f"<answer>{self.rule(first, second)}</answer>"])
        return outs


@pytest.fixture
def pairs(tmp_path):
    # 3 of 4 pairs put the expert first in their seeded order: a position-constant judge looks good or bad
    rows = [data.pair_record(data.State("e", i, "put a mug in the sink", "You see a mug.", []),
                             "take mug 1 from table 1", f"go to shelf {i}") for i in range(12)]
    store.write_bytes(f"file://{tmp_path}/pairs/heldout.parquet", data.write_parquet(rows))
    return f"file://{tmp_path}/pairs"


def config(pairs, both):
    return EvalConfig(job=JobRef(name="t", uid="u"), output="file:///tmp/unused", model="tiny://qwen3-tiny",
                      env=EnvironmentConfig(name="alfworld"), pairs=pairs, judge_pairs=12, judge_both_orders=both)


def test_both_orders_score_a_position_constant_judge_at_one_half(pairs):
    first = Judge(lambda a, b: 1)
    one = judgement_accuracy(first, config(pairs, both=False))
    records = []
    both = judgement_accuracy(first, config(pairs, both=True), records)
    assert one["judge_accuracy"] != 0.5  # the seeded orders of these 12 pairs are not balanced
    assert both == {"judge_accuracy": 0.5, "judge_malformed_rate": 0.0, "judge_pairs": 12,
                    "judge_position_consistency": 0.0}
    assert len(records) == 24 and [r["answer"] for r in records[:4]] == [1, 2, 1, 2]


def test_both_orders_score_a_judge_that_knows_the_expert_at_one(pairs):
    expert = Judge(lambda a, b: 1 if a.startswith("take") else 2)
    assert judgement_accuracy(expert, config(pairs, both=True)) == {
        "judge_accuracy": 1.0, "judge_malformed_rate": 0.0, "judge_pairs": 12, "judge_position_consistency": 1.0}
