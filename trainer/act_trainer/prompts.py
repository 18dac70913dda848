"""Judgement and action prompts, and lenient parsing of what the model answers.

Format (METHOD.md, ours): free reasoning in <think>...</think>, then the choice in
<answer>1</answer> / <answer>2</answer> or the action in <action>...</action>.
Parsing accepts the tag, then the paper's "Action: ..." line, so that a correct
answer that misses the tag is not punished for format alone.
"""

from __future__ import annotations

import random
import re

from act_trainer.data import State

MAX_OBS_CHARS = 1200  # long observations (room descriptions) are cut from the front


def _clip(text: str, limit: int = MAX_OBS_CHARS) -> str:
    text = text.strip()
    return text if len(text) <= limit else "..." + text[-limit:]


def describe_state(state: State) -> str:
    lines = [f"Task: {state.goal.strip()}"]
    if state.history:
        lines.append("Recent history:")
        for action, obs in state.history:
            lines.append(f"> {action}")
            if obs:
                lines.append(_clip(obs, 300))
    lines.append(f"Current observation: {_clip(state.observation)}")
    return "\n".join(lines)


def action_prompt(state: State) -> list[dict]:
    text = (
        "You are an agent acting in a text environment.\n"
        f"{describe_state(state)}\n"
        "What is the best next action? Think briefly inside <think></think>, "
        "then give the action as <action>your action</action>."
    )
    return [{"role": "user", "content": text}]


def judgement_prompt(state: State, first: str, second: str) -> list[dict]:
    text = (
        "You are an agent acting in a text environment.\n"
        f"{describe_state(state)}\n"
        "Two candidate next actions:\n"
        f"Action 1: {first}\n"
        f"Action 2: {second}\n"
        "Which action is better for completing the task? Think inside <think></think>, "
        "then answer <answer>1</answer> or <answer>2</answer>."
    )
    return [{"role": "user", "content": text}]


def world_model_prompt(state: State, action: str) -> list[dict]:
    """Early Experience, implicit world modelling: what follows `action` in `state`?"""
    text = (
        "You are an agent acting in a text environment.\n"
        f"{describe_state(state)}\n"
        f"You take the action: {action}\n"
        "What do you observe next? Give the observation as <observation>what you see</observation>."
    )
    return [{"role": "user", "content": text}]


def world_model_answer(observation: str) -> str:
    return f"<observation>{_clip(observation)}</observation>"


def reflection_prompt(state: State, expert: str, expert_next: str, alternative: str, alternative_next: str
                      ) -> list[dict]:
    """Early Experience, self-reflection: the model explains, from both outcomes, why the expert's
    action is the better one; the explanation (not this prompt) is what it is then trained on."""
    text = (
        "You are an agent acting in a text environment.\n"
        f"{describe_state(state)}\n"
        f"Action A: {expert}\nWhat followed A: {_clip(expert_next, 300)}\n"
        f"Action B: {alternative}\nWhat followed B: {_clip(alternative_next, 300)}\n"
        "Action A is the better action for the task. Explain briefly why, inside <think></think>."
    )
    return [{"role": "user", "content": text}]


def reflection_answer(rationale: str, expert: str) -> str:
    """What self-reflection trains on, after an action prompt: the rationale, then the action."""
    return f"<think>{rationale.strip()}</think><action>{expert}</action>"


def order_candidates(expert: str, alternative: str, key: str, seed: int) -> tuple[str, str, int]:
    """Seeded random order; returns (first, second, index of the expert action: 1 or 2)."""
    if random.Random(f"{seed}|{key}").random() < 0.5:
        return expert, alternative, 1
    return alternative, expert, 2


def candidate_orders(expert: str, alternative: str, key: str, seed: int, both: bool = False
                     ) -> list[tuple[str, str, int]]:
    """How a pair is put to a judge: [order_candidates(...)], or (both) expert first then second."""
    if both:
        return [(expert, alternative, 1), (alternative, expert, 2)]
    return [order_candidates(expert, alternative, key, seed)]


def completion_text(completion) -> str:
    """TRL passes conversational completions as [{'role': 'assistant', 'content': ...}]."""
    if isinstance(completion, list):
        return "".join(m.get("content", "") for m in completion if isinstance(m, dict))
    return str(completion)


_THINK = re.compile(r"<think>.*?(</think>|$)", re.S)
_ANSWER_TAG = re.compile(r"<answer>\s*(?:action\s*)?([12])\s*</answer>", re.I)
_ANSWER_LINE = re.compile(r"(?:answer|choice)\s*[:=]?\s*(?:action\s*)?([12])\b", re.I)
# An unclosed tag counts up to the line end: collect prefills "<action>" (see stages/collect.py).
_ACTION_TAG = re.compile(r"<action>(.*?)(?:</action>|\n|$)", re.I)
_ACTION_LINE = re.compile(r"^\s*action\s*:\s*(.+?)\s*$", re.I | re.M)


def _strip_think(text: str) -> str:
    return _THINK.sub(" ", text)


def parse_choice(text: str) -> int | None:
    """1 or 2, or None when no choice can be read."""
    body = _strip_think(text)
    for pattern in (_ANSWER_TAG, _ANSWER_LINE):
        found = pattern.findall(body)
        if found:
            return int(found[-1])
    return None


def normalize_action(action: str) -> str:
    return " ".join(re.sub(r"[^\w\s-]", " ", action.lower()).split())


# The action prompt's own example ("<action>your action</action>"): a model that echoes it names no action.
PLACEHOLDERS = {"your action", "your_action", "action"}


def parse_action(text: str) -> str | None:
    """The action, or None when the output holds no readable action (or only the prompt's placeholder)."""
    body = _strip_think(text)
    for pattern in (_ACTION_TAG, _ACTION_LINE):
        found = pattern.findall(body)
        if found:
            action = " ".join(found[-1].split())
            norm = normalize_action(action)
            return action if norm and norm not in PLACEHOLDERS else None
    return None
