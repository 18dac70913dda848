"""The judge's prompts: one seeded order per pair, or both orders side by side (pure)."""

import pytest

from act_trainer import data
from act_trainer.contract import JudgeSettings
from act_trainer.stages.judge import judgement_rows

PAIRS = [data.pair_record(data.State("e", i, "put a mug in the sink", "You see a mug.", []),
                          "take mug 1 from table 1", f"go to shelf {i}") for i in range(6)]


def expert_position(row):
    return 1 if "Action 1: take mug" in row["prompt"][-1]["content"] else 2


def test_one_seeded_order_per_pair():
    rows = judgement_rows(PAIRS, seed=0, history=0)
    assert [r["pair_id"] for r in rows] == [p["pair_id"] for p in PAIRS]
    assert [r["answer"] for r in rows] == [expert_position(r) for r in rows]


def test_both_orders_are_adjacent_so_a_step_holds_whole_pairs():
    rows = judgement_rows(PAIRS, seed=0, history=0, both_orders=True)
    assert len(rows) == 12 and [r["answer"] for r in rows] == [1, 2] * 6
    assert [expert_position(r) for r in rows] == [1, 2] * 6
    assert all(a["pair_id"] == b["pair_id"] for a, b in zip(rows[0::2], rows[1::2], strict=True))
    order = [r["pair_id"] for r in rows[0::2]]
    assert sorted(order) == sorted(p["pair_id"] for p in PAIRS) and order != [p["pair_id"] for p in PAIRS]  # shuffled
    assert order == [r["pair_id"] for r in judgement_rows(PAIRS, seed=0, history=0, both_orders=True)[0::2]]


@pytest.mark.parametrize("settings,refused", [
    ({"both_orders": True, "group_size": 4, "batch_size": 8}, None),
    ({"both_orders": True, "group_size": 4, "batch_size": 4}, "multiple of 2 x groupSize"),
    ({"both_orders": True, "group_size": 4, "batch_size": 4, "nodes": 2}, None),
    ({"both_orders": True, "method": "iwm"}, "ACT judge \\(method act\\) only")])
def test_both_orders_needs_the_act_judge_and_whole_pairs_per_step(settings, refused):
    if refused is None:
        assert JudgeSettings.model_validate(settings).both_orders
    else:
        with pytest.raises(ValueError, match=refused) as refusal:
            JudgeSettings.model_validate(settings)
        assert "bothOrders: " in str(refusal.value) and str(refusal.value).count("bothOrders: ") == 1


def test_both_orders_reaches_the_judges_config():
    from act_operator import api
    from act_operator.stages import stage_config

    job = api.parse_actjob({"apiVersion": api.API_VERSION, "kind": api.KIND, "metadata": {"name": "c", "uid": "u"},
                            "spec": {"model": {"uri": "tiny://qwen3-tiny"}, "environment": {"name": "alfworld"},
                                     "stages": {"judge": {"bothOrders": True, "groupSize": 4, "batchSize": 8},
                                                "eval": {"splits": ["valid_seen"]}}}})
    job.status.stages["collect"].outputs.uri = "s3://bucket/pairs"
    job.status.stages["collect"].phase = "Succeeded"
    assert stage_config(job, "judge").both_orders
