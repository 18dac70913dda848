"""WebShop's human demonstrations, read as expert trajectories.

Expert trajectories come from human demonstrations in the format of WebShop's
`il_trajs_finalized_images.jsonl` (one JSON object per line: `states`, `actions`,
`available_actions`, `action_idxs`, optional `actions_translate`, `images`), given by
`environment.dataDir` (the file, or a directory holding it; `human_goals.json` beside it gives
each demonstration its goal index and so its split). The states there are in WebShop's
"text_rich" mode ("[button] x [button_]" markers, one field per line); we convert them to the
"text" mode the live adapter produces, so prompts look the same in training and evaluation.
The file holds no rewards: a demonstration counts as an expert trajectory when it ends with a
purchase (click[buy now]).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable

from act_trainer.data import Step, Trajectory
from act_trainer.envs.webshop_pages import SEP, parse_action

END_BUTTON = "buy now"
DEMOS_FILE = "il_trajs_finalized_images.jsonl"
_MARKERS = re.compile(r"\[(?:clicked )?button_?\]")


def rich_to_text(state: str) -> str:
    """A "text_rich" state (one field per line, [button] markers) in the "text" mode: fields
    joined with " [SEP] ". States already in text mode are returned as they are."""
    if "[SEP]" in state:
        return state
    lines = [ln.strip() for ln in state.split("\n")]
    # text_rich prepends "You have clicked <option>." for each chosen option; the page shows them anyway.
    while lines and re.fullmatch(r"You have clicked .*\.", lines[0] or ""):
        lines.pop(0)
    fields = [" ".join(_MARKERS.sub(" ", ln).split()) for ln in lines]
    return SEP.join(f for f in fields if f)


def demo_instruction(state: str) -> str:
    """The instruction shown in a demonstration's first state (either observation mode)."""
    text = state.replace(SEP, "\n")
    m = re.search(r"Instruction:\s*(.*?)\s*(?:\[button\]|\n\s*Search\s*$|$)", text, re.DOTALL | re.IGNORECASE)
    if m is None:
        raise ValueError("no 'Instruction:' in the first state")
    return " ".join(m.group(1).split())


def _goal_key(instruction: str) -> str:
    # WebShop's baselines match a demonstration to human_goals.json this way (process_goal).
    s = instruction.lower().replace('"', "").replace("'", "").strip()
    return s.split(", and price lower than")[0].strip()


def _as_click(action: str) -> str:
    return action if parse_action(action) else f"click[{action}]"


def parse_demonstrations(lines: Iterable[str], human_goals: list[str] | None = None,
                         name: str = DEMOS_FILE) -> list[tuple[int | None, Trajectory]]:
    """(goal index, trajectory) per demonstration that ends in a purchase, in file order.

    The goal index is the instruction's place in `human_goals` (None without them, or when the
    instruction is not among them). Raises ValueError naming the line for records that are
    not in the documented format.
    """
    goal_index = {_goal_key(g): i for i, g in enumerate(human_goals or [])}
    out: list[tuple[int | None, Trajectory]] = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as e:
            raise ValueError(f"{name}: line {n} is not JSON ({e})") from None
        states, actions = rec.get("states"), rec.get("actions")
        if not isinstance(states, list) or not isinstance(actions, list) or not states or not actions:
            raise ValueError(f"{name}: line {n} lacks non-empty 'states' and 'actions' lists "
                             "(WebShop il_trajs format)")
        if len(states) < len(actions):
            raise ValueError(f"{name}: line {n} has {len(actions)} actions but {len(states)} states")
        available = rec.get("available_actions") or [None] * len(actions)
        try:
            goal = demo_instruction(states[0])
        except ValueError as e:
            raise ValueError(f"{name}: line {n}: {e}") from None
        steps = []
        for state, action, valid in zip(states, actions, available, strict=True):
            parsed = parse_action(action)
            if parsed is None:
                raise ValueError(f"{name}: line {n}: action {action!r} is neither search[...] nor click[...]")
            # The file lists the search steps' "available actions" as candidate queries; a
            # search box takes any text, so there is no admissible list there.
            adm = [_as_click(v) for v in valid] if parsed[0] == "click" and isinstance(valid, list) \
                and valid else None
            steps.append(Step(observation=rich_to_text(state), action=action.strip(), admissible=adm))
        if parse_action(actions[-1]) != ("click", END_BUTTON):
            continue  # an abandoned session: no purchase, no outcome
        idx = goal_index.get(_goal_key(goal))
        reward = rec.get("reward")
        score = round(100.0 * float(reward), 4) if isinstance(reward, (int, float)) else None
        out.append((idx, Trajectory(env="webshop", task="webshop", goal=goal, steps=steps,
                                    variation=idx if idx is not None else f"line{n}", split="train",
                                    success=True, score=score)))
    return out

