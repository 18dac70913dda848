"""Reward functions with TRL's signature: reward(completions, **dataset_columns) -> list[float].

Pure functions: no model, no I/O. GRPOTrainer passes each dataset column as a keyword.
"""

from __future__ import annotations

from collections import Counter

from act_trainer.prompts import completion_text, normalize_action, parse_action, parse_choice


def make_judgement_reward(malformed_penalty: float = 0.0):
    """1 for choosing the expert's action, 0 for the other one, `malformed_penalty` if no choice is readable."""

    def judgement_reward(completions, answer, log_metric=None, **_) -> list[float]:
        choices = [parse_choice(completion_text(c)) for c in completions]
        if log_metric is not None and choices:  # TRL passes log_metric: the rate lands in the trainer's logs
            log_metric("malformed_rate", sum(c is None for c in choices) / len(choices))
        return [malformed_penalty if c is None else float(c == int(a)) for c, a in zip(choices, answer, strict=True)]

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


def action_reward(completions, expert_action, log_metric=None, **_) -> list[float]:
    actions = [parse_action(completion_text(c)) for c in completions]
    if log_metric is not None and actions:
        log_metric("malformed_rate", sum(a is None for a in actions) / len(actions))
    return [action_match(a, e) for a, e in zip(actions, expert_action, strict=True)]


def episode_reward(completions, episode_reward, won, score, turns, malformed, log_metric=None, **_) -> list[float]:
    """online-rl: the reward of the episode each completion is a turn of, as the rollout computed it
    from the environment's outcome (stages/online_rl.py); logs the episodes' success rate, score,
    turns and malformed turns."""
    if log_metric is not None and completions:
        n = len(completions)
        log_metric("success_rate", sum(won) / n)
        log_metric("episode_score", sum(score) / n)
        log_metric("episode_turns", sum(turns) / n)
        log_metric("malformed_rate", sum(malformed) / max(1.0, sum(turns)))
    return [float(r) for r in episode_reward]
