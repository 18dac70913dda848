"""Reward functions with TRL's signature: reward(completions, **dataset_columns) -> list[float].

Pure functions: no model, no I/O. GRPOTrainer passes each dataset column as a keyword.
"""

from __future__ import annotations

from collections import Counter

from act_trainer.prompts import completion_text, normalize_action, parse_action, parse_choice


def make_judgement_reward(malformed_penalty: float = 0.0):
    """1 for choosing the expert's action, 0 for the other one, `malformed_penalty` if no choice is readable."""

    def judgement_reward(completions, answer, **_) -> list[float]:
        rewards = []
        for completion, expert_index in zip(completions, answer):
            choice = parse_choice(completion_text(completion))
            rewards.append(malformed_penalty if choice is None else float(choice == int(expert_index)))
        return rewards

    return judgement_reward


def token_f1(a: str, b: str) -> float:
    ta, tb = normalize_action(a).split(), normalize_action(b).split()
    common = sum((Counter(ta) & Counter(tb)).values())
    if not ta or not tb or not common:
        return 0.0
    p, r = common / len(ta), common / len(tb)
    return 2 * p * r / (p + r)


def action_match(predicted: str | None, expert: str) -> float:
    """1 for the expert's action (normalised), else half the token F1: partial credit that
    never reaches an exact match's reward."""
    if predicted is None:
        return 0.0
    if normalize_action(predicted) == normalize_action(expert):
        return 1.0
    return 0.5 * token_f1(predicted, expert)


def action_reward(completions, expert_action, **_) -> list[float]:
    return [action_match(parse_action(completion_text(c)), e) for c, e in zip(completions, expert_action)]
