"""Eval's loop before episodes were played in parallel, kept verbatim: the independent reference
that the parallel loop must equal (tests/integration/test_eval_parallel.py) and is timed against
(bench/eval_parallel.py)."""

from __future__ import annotations

from act_trainer import data
from act_trainer.config import EvalConfig
from act_trainer.prompts import action_prompt, parse_action


def sequential_play(env, engine, episode: str, cfg: EvalConfig) -> dict:
    """One episode, one generate call per turn."""
    obs = env.reset(episode)
    goal, history, malformed, steps = obs.goal, [], 0, 0
    for steps in range(1, cfg.env.max_steps + 1):
        state = data.State(episode, steps - 1, goal, obs.text, data.last_turns(history, cfg.env.history))
        outs = engine.generate([action_prompt(state)], n=1, temperature=0.0, max_new_tokens=cfg.max_new_tokens)
        action = parse_action(outs[0][0])
        if action is None:
            malformed += 1
            history.append(("(no action)", ""))
            continue
        obs = env.step(action)
        history.append((action, obs.text))
        if obs.done:
            break
    return {"episode": episode, "won": bool(obs.won), "score": obs.score, "steps": steps, "malformed": malformed}
