"""eval: the paper's measures for one model.

- success rate: episodes played in the environment on each split (greedy actions);
- next-action accuracy: the model's action vs the expert's on held-out expert states;
- judgement accuracy: choosing the expert action in held-out contrast pairs.
Results go to results.json as rows (environment, split, metric, value, n) and to metrics.
"""

from __future__ import annotations

import json
import logging

from tqdm.auto import tqdm

from act_trainer import data, store
from act_trainer.config import EvalConfig
from act_trainer.engines import make_engine
from act_trainer.envs import make_env
from act_trainer.errors import InputError
from act_trainer.models import resolve_model
from act_trainer.prompts import (
    action_prompt,
    judgement_prompt,
    normalize_action,
    order_candidates,
    parse_action,
    parse_choice,
)
from act_trainer.rewards import action_match
from act_trainer.stages.common import stage

log = logging.getLogger("act_trainer.eval")


def _gen(engine, prompts, cfg: EvalConfig) -> list[str]:
    outs = engine.generate(prompts, n=1, temperature=0.0, max_new_tokens=cfg.max_new_tokens)  # greedy
    return [o[0] for o in outs]


def play(env, engine, episode: str, cfg: EvalConfig) -> dict:
    obs = env.reset(episode)
    goal, history, malformed, steps = obs.goal, [], 0, 0
    for steps in range(1, cfg.env.max_steps + 1):
        # prompts do not show admissible actions: don't ask for them (ScienceWorld enumerates them)
        state = data.State(episode, steps - 1, goal, obs.text, data.last_turns(history, cfg.env.history))
        action = parse_action(_gen(engine, [action_prompt(state)], cfg)[0])
        if action is None:  # a malformed turn costs a step and changes nothing
            malformed += 1
            history.append(("(no action)", ""))
            continue
        obs = env.step(action)
        history.append((action, obs.text))
        if obs.done:
            break
    return {"episode": episode, "won": bool(obs.won), "score": obs.score, "steps": steps, "malformed": malformed}


def success_rate(env, engine, split: str, cfg: EvalConfig) -> tuple[dict, list[dict]]:
    episodes = env.episodes(split)[: cfg.episodes][cfg.shard.index::cfg.shard.count]
    results = [play(env, engine, ep, cfg) for ep in tqdm(episodes, desc=f"episodes/{split}", unit="ep")]
    n = max(1, len(results))
    turns = max(1, sum(r["steps"] for r in results))
    measured = {"success_rate": sum(r["won"] for r in results) / n, "score": sum(r["score"] for r in results) / n,
                "episode_malformed_rate": sum(r["malformed"] for r in results) / turns,
                "turns": sum(r["steps"] for r in results)}
    by_type: dict[str, list[bool]] = {}  # e.g. ALFWorld's six task types, as the paper breaks results down
    for r in results:
        if (task_type := env.task_type(r["episode"])) is not None:
            r["task_type"] = task_type
            by_type.setdefault(task_type, []).append(r["won"])
    measured.update({f"success_rate.{t}": sum(w) / len(w) for t, w in sorted(by_type.items())})
    measured.update({f"episodes.{t}": len(w) for t, w in sorted(by_type.items())})
    return {**measured, "episodes": len(results)}, results


def next_action_accuracy(env, engine, split: str, cfg: EvalConfig) -> dict:
    items = []
    for traj in env.expert(split, limit=max(1, cfg.action_states), max_length=cfg.expert_max_length):
        items.extend(data.states(traj, cfg.env.history))
        if len(items) >= cfg.action_states:
            break
    items = items[: cfg.action_states][cfg.shard.index::cfg.shard.count]
    if not items:
        return {"action_states": 0}
    outs = _gen(engine, [action_prompt(s) for s, _ in items], cfg)
    actions = [parse_action(o) for o in outs]
    exact = [a is not None and normalize_action(a) == normalize_action(e) for a, (_, e) in zip(actions, items, strict=True)]
    return {"next_action_accuracy": sum(exact) / len(items),
            "next_action_match": sum(action_match(a, e) for a, (_, e) in zip(actions, items, strict=True)) / len(items),
            "action_malformed_rate": sum(a is None for a in actions) / len(items), "action_states": len(items)}


def judgement_accuracy(engine, cfg: EvalConfig) -> dict:
    uris = [u for u in store.list_uris(cfg.pairs) if u.endswith("heldout.parquet")] if cfg.pairs else []
    rows = [r for u in uris for r in data.read_parquet(store.read_bytes(u))]
    rows = rows[: cfg.judge_pairs][cfg.shard.index::cfg.shard.count]
    if not rows:
        return {"judge_pairs": 0}
    prompts, answers = [], []
    for r in rows:
        first, second, answer = order_candidates(r["expert_action"], r["alternative"], r["pair_id"], cfg.seed)
        prompts.append(judgement_prompt(data.pair_state(r), first, second))
        answers.append(answer)
    choices = [parse_choice(o) for o in _gen(engine, prompts, cfg)]
    return {"judge_accuracy": sum(c == a for c, a in zip(choices, answers, strict=True)) / len(rows),
            "judge_malformed_rate": sum(c is None for c in choices) / len(rows), "judge_pairs": len(rows)}


def run(cfg: EvalConfig) -> dict:
    with stage(cfg) as st:
        model_dir = resolve_model(cfg.model)
        env = make_env(cfg.env)
        try:
            unknown = [s for s in cfg.splits if s not in env.splits()]
            if unknown:
                raise InputError(f"splits: {unknown} are not splits of {cfg.env.name}; choose from {env.splits()}")
            engine = make_engine("auto", str(model_dir), seed=cfg.seed, batch_size=cfg.batch_size)
            rows, episodes, metrics = [], {}, {}

            def record(split: str, measured: dict, count_key: str) -> None:
                # the counts the rates are over go to metrics too (shards merge by them), not to rows
                counts = {k: measured.pop(k) for k in list(measured)
                          if k in (count_key, "turns") or k.startswith(count_key + ".")}
                n = int(counts.get(count_key, 0))
                for metric, value in measured.items():
                    rows.append({"environment": cfg.env.name, "split": split, "metric": metric,
                                 "value": round(value, 6), "n": n})
                for metric, value in {**measured, **counts}.items():
                    metrics[f"{split}/{metric}" if split != "heldout" else metric] = value

            for split in cfg.splits:
                if cfg.episodes:
                    measured, episodes[split] = success_rate(env, engine, split, cfg)
                    record(split, measured, "episodes")
                if cfg.action_states:
                    record(split, next_action_accuracy(env, engine, split, cfg), "action_states")
            if cfg.judge_pairs and cfg.pairs:
                record("heldout", judgement_accuracy(engine, cfg), "judge_pairs")
        finally:
            env.close()
        if not rows:
            raise InputError("eval measured nothing: set episodes, actionStates or judgePairs above 0")
        (st.out / "results.json").write_text(json.dumps({"model": cfg.model, "rows": rows}, indent=2))
        (st.out / "episodes.json").write_text(json.dumps(episodes, indent=2))
        for r in rows:
            log.info("eval: %-8s %-28s %.4f (n=%d)", r["split"], r["metric"], r["value"], r["n"])
        st.run.log_dict({"rows": rows}, "results.json")
        return st.publish(metrics, extra={"results": rows, "model": cfg.model})
