"""The experiment's intervals and paired comparisons (experiments/intervals.py): pure statistics."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

PATH = Path(__file__).resolve().parents[2] / "experiments" / "intervals.py"


@pytest.fixture(scope="module")
def iv():
    spec = importlib.util.spec_from_file_location("intervals", PATH)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_item_means_average_each_item_over_seeds(iv):
    assert iv.item_means([{"a": 1, "b": 0}, {"a": 0, "b": 0}, {"a": 1}]) == {"a": 2 / 3, "b": 0.0}


def test_interval_covers_the_mean_and_narrows_with_items(iv):
    small = iv.interval({str(i): float(i % 2) for i in range(20)})
    large = iv.interval({str(i): float(i % 2) for i in range(2000)})
    for r in (small, large):
        assert r["lo"] <= r["mean"] <= r["hi"] and r["mean"] == pytest.approx(0.5)
    assert large["hi"] - large["lo"] < (small["hi"] - small["lo"]) / 5
    # the binomial standard error at n=2000 is 0.011: a 95% interval is about +-0.022
    assert large["hi"] - large["lo"] == pytest.approx(2 * 1.96 * 0.5 / 2000 ** 0.5, rel=0.15)
    assert iv.interval({"x": 1.0}) == {"mean": 1.0, "lo": 1.0, "hi": 1.0, "items": 1}


def test_paired_difference_sees_what_two_intervals_side_by_side_miss(iv):
    # 200 items; b gets 40% right, a the same items plus 16 more: +8 points, the same items otherwise
    b = {str(i): float(i < 80) for i in range(200)}
    a = {str(i): float(i < 96) for i in range(200)}
    ia, ib = iv.interval(a), iv.interval(b)
    assert ia["lo"] < ib["hi"]  # the unpaired intervals overlap ...
    d = iv.paired(a, b)
    assert d["diff"] == pytest.approx(0.08) and d["significant"] and d["p"] < 0.01 and d["lo"] > 0  # ... paired, not
    same = iv.paired(b, b)
    assert same["diff"] == 0 and not same["significant"] and same["p"] == 1.0
    # only the items both scored are compared
    assert iv.paired({"1": 1.0, "2": 1.0}, {"2": 0.0, "3": 1.0})["items"] == 1


def test_verdicts_read_each_measure_by_item(iv):
    files = {
        "judgements.jsonl": "".join(json.dumps({"pair_id": p, "correct": c}) + "\n" for p, c in (("p1", True), ("p2", False))),
        "actions.jsonl": json.dumps({"split": "valid_seen", "episode": "e1", "step": 0, "exact": True}) + "\n",
        "episodes.json": json.dumps({"valid_unseen": [{"episode": "g1", "won": False}, {"episode": "g2", "won": True}]}),
    }
    assert iv.verdicts(files) == {"judge_accuracy": {"p1": 1.0, "p2": 0.0},
                                  "valid_seen/next_action_accuracy": {"e1#0": 1.0},
                                  "valid_unseen/success_rate": {"g1": 0.0, "g2": 1.0}}
    assert iv.verdicts({}) == {}
    # a pair judged in both orders (stages.eval.judgeBothOrders) is one item, scored by the mean of the two
    both = "".join(json.dumps({"pair_id": p, "correct": c}) + "\n" for p, c in (("p1", True), ("p1", False)))
    assert iv.verdicts({"judgements.jsonl": both}) == {"judge_accuracy": {"p1": 0.5}}
