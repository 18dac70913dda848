"""95% confidence intervals for the experiment's table, from what each rate is made of.

An eval writes one verdict per item (judgements.jsonl per held-out pair, actions.jsonl per expert
state, episodes.json per episode). Every seed of an arm scores the same items, so an arm's rate is
the mean over items of the item's mean verdict over seeds, and its interval is a percentile
bootstrap over items: it counts the items' variance (the one that shrinks with more items), and the
seeds' through each item's mean. Two arms scored on the same items are compared paired: the
bootstrap resamples items and takes the difference of the two arms' means on the same draw, so the
interval of the difference is narrower than the two intervals side by side would suggest.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

import numpy as np

RESAMPLES = 10_000
LEVEL = 0.95


def item_means(seeds: list[Mapping[str, float]]) -> dict[str, float]:
    """Each item's mean verdict over the seeds that scored it (items one seed lacks still count)."""
    sums: dict[str, list[float]] = {}
    for verdicts in seeds:
        for item, v in verdicts.items():
            sums.setdefault(item, []).append(float(v))
    return {item: sum(vs) / len(vs) for item, vs in sorted(sums.items())}


def _bounds(draws: np.ndarray) -> tuple[float, float]:
    lo, hi = np.quantile(draws, [(1 - LEVEL) / 2, 1 - (1 - LEVEL) / 2])
    return float(lo), float(hi)


def interval(values: Mapping[str, float], seed: int = 0) -> dict:
    """Mean of the items' values and its percentile-bootstrap interval."""
    x = np.array(list(values.values()), dtype=float)
    if x.size == 0:
        return {"mean": float("nan"), "lo": float("nan"), "hi": float("nan"), "items": 0}
    draws = np.random.default_rng(seed).choice(x, size=(RESAMPLES, x.size), replace=True).mean(axis=1)
    lo, hi = _bounds(draws)
    return {"mean": float(x.mean()), "lo": lo, "hi": hi, "items": int(x.size)}


def paired(a: Mapping[str, float], b: Mapping[str, float], seed: int = 0) -> dict:
    """a - b on the items both scored: the mean difference, its interval, and the two-sided bootstrap
    p-value (twice the share of draws on the far side of zero); significant when the interval
    excludes zero."""
    common = sorted(set(a) & set(b))
    if not common:
        return {"diff": float("nan"), "lo": float("nan"), "hi": float("nan"), "p": float("nan"), "items": 0,
                "significant": False}
    d = np.array([a[i] - b[i] for i in common], dtype=float)
    draws = np.random.default_rng(seed).choice(d, size=(RESAMPLES, d.size), replace=True).mean(axis=1)
    lo, hi = _bounds(draws)
    p = min(1.0, 2 * min(float((draws <= 0).mean()), float((draws >= 0).mean())))
    return {"diff": float(d.mean()), "lo": lo, "hi": hi, "p": p, "items": len(common),
            "significant": bool(lo > 0 or hi < 0)}


def verdicts(files: Mapping[str, str]) -> dict[str, dict[str, float]]:
    """One eval's verdicts by metric (judge_accuracy, <split>/next_action_accuracy, <split>/success_rate),
    each by item, from the texts of judgements.jsonl, actions.jsonl and episodes.json (absent: skipped)."""
    out: dict[str, dict[str, float]] = {}
    if text := files.get("judgements.jsonl"):
        by_pair: dict[str, list[float]] = {}  # a pair judged in both orders is one item: the mean of the two
        for r in map(json.loads, text.splitlines()):
            by_pair.setdefault(str(r["pair_id"]), []).append(float(r["correct"]))
        out["judge_accuracy"] = {pair: sum(v) / len(v) for pair, v in by_pair.items()}
    if text := files.get("actions.jsonl"):
        for r in map(json.loads, text.splitlines()):
            out.setdefault(f"{r['split']}/next_action_accuracy", {})[f"{r['episode']}#{r['step']}"] = float(r["exact"])
    if text := files.get("episodes.json"):
        for split, episodes in json.loads(text).items():
            out[f"{split}/success_rate"] = {str(e["episode"]): float(e["won"]) for e in episodes}
    return out
