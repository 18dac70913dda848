"""Teach a model to act from expert trajectories, then publish it: what the policy stage and the
warm-up (IL before collect) share.

il: SFT on (state -> <action>expert action</action>), plus, with formatJudgements, judgement
    prompts answered with a random label (the answer format, nothing about which action is better).
rl: GRPO generating the action; reward = normalised match with the expert's (rewards.py).
"""

from __future__ import annotations

import logging
import random

from act_trainer import data
from act_trainer.config import TrainerBase
from act_trainer.prompts import action_prompt, judgement_prompt, normalize_action
from act_trainer.stages import training

log = logging.getLogger("act_trainer.action_training")


def action_rows(trajs: list[data.Trajectory], history: int, method: str) -> list[dict]:
    rows = []
    for traj in trajs:
        for state, expert in data.states(traj, history):
            prompt = action_prompt(state)
            if method == "il":
                rows.append({"prompt": prompt,
                             "completion": [{"role": "assistant", "content": f"<action>{expert}</action>"}]})
            else:
                rows.append({"prompt": prompt, "expert_action": expert})
    return rows


def format_rows(trajs: list[data.Trajectory], history: int, share: float, seed: int) -> list[dict]:
    """Judgement prompts whose answer is a coin flip: the model learns to answer in the
    format, and nothing about which action is better (that is the judge stage's job).
    The other candidate is an admissible action, else an expert action of another state."""
    rng = random.Random(seed)
    items = [(s, a) for t in trajs for s, a in data.states(t, history)]
    actions = sorted({a for _, a in items})
    rows = []
    for state, expert in items:
        if rng.random() >= share:
            continue
        pool = [a for a in (state.admissible or actions) if normalize_action(a) != normalize_action(expert)]
        if not pool:
            continue
        first, second = (expert, rng.choice(pool)) if rng.random() < 0.5 else (rng.choice(pool), expert)
        rows.append({"prompt": judgement_prompt(state, first, second),
                     "completion": [{"role": "assistant", "content": f"<answer>{rng.choice((1, 2))}</answer>"}]})
    return rows


def train(cfg: TrainerBase, st, trajs: list[data.Trajectory], source: str, method: str) -> dict:
    """IL or RL on `trajs` (read from `source`), then publish the model: the policy stage, and
    the warm-up (IL) before collect."""
    rows = action_rows(trajs, cfg.history, method)
    if method == "il" and cfg.format_judgements:
        extra = format_rows(trajs, cfg.history, cfg.format_judgements, cfg.seed)
        log.info("%s: %d format-only judgement examples (random labels)", cfg.stage, len(extra))
        rows = rows + extra
    log.info("%s (%s): %d examples from %d episodes, starting from %s", cfg.stage, method, len(rows),
             len(trajs), cfg.model)
    done = training.fit(cfg, st, rows, method)
    if done is None:
        return {}
    metrics, info = done
    metrics["examples"] = len(rows)
    st.run.log_dataset(source, "expert", data.digest_trajectories(trajs), "training",
                       rows=[{"episode": t.episode_id, "steps": len(t.steps)} for t in trajs])
    result = st.publish(metrics, extra={"method": method, "start_model": cfg.model, **info})
    training.delete_all_checkpoints(cfg)
    return result

