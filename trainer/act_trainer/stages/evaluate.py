"""eval: the paper's measures for one model.

- success rate: episodes played in the environment on each split (greedy actions);
- next-action accuracy: the model's action vs the expert's on held-out expert states;
- judgement accuracy: choosing the expert action in held-out contrast pairs;
- general reasoning (optional, stages.eval.reasoning): MATH-500 / GPQA-Diamond accuracy, mean ±
  std over repeated runs (act_trainer.reasoning), measured by the first shard alone so that the
  std is over whole runs of the benchmark (the operator's shard merge keeps its numbers as they are).
Results go to results.json as rows (environment, split, metric, value, n) and to metrics; what each
rate is made of to episodes.json (one record per episode), actions.jsonl (per expert state) and
judgements.jsonl (per held-out pair): the model's output, the parsed answer and its verdict; every
episode's steps to transcripts.jsonl, and a few episodes and judgements to MLflow as traces
(act_trainer.transcripts).
"""

from __future__ import annotations

import json
import logging
import time

from tqdm.auto import tqdm

from act_trainer import data, plots, progress, reasoning, store, transcripts
from act_trainer.config import EvalConfig
from act_trainer.engines import make_engine
from act_trainer.envs import make_env
from act_trainer.envs.workers import EnvPool
from act_trainer.errors import InputError
from act_trainer.models import resolve_model
from act_trainer.playing import LiveEpisode
from act_trainer.prompts import (
    action_prompt,
    candidate_orders,
    judgement_prompt,
    normalize_action,
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
    """One episode, one generate call per step: the reference the parallel loop must equal."""
    return play_many([env], engine, [episode], cfg)[0]


def play_many(envs: list, engine, episodes: list[str], cfg: EvalConfig, progress=None,
              turns: list | None = None) -> list[dict]:
    """Play `episodes` on the environment instances `envs` in lockstep: each live episode takes
    one turn per round, and a round is one batched generate over the live episodes' prompts
    (greedy), then one step in each environment, from threads: eval's instances are EnvWorkers
    (envs/workers.py), each in a process of its own, so their steps and resets run at once (in
    one process, ALFWorld's would run one at a time). A finished episode's instance takes the next
    episode. Results are in the order of `episodes`, each what playing that episode alone gives;
    `turns` gets each episode's goal and steps ({"goal", "turns"}), in the same order."""
    from concurrent.futures import ThreadPoolExecutor

    results: dict[int, dict] = {}
    played: dict[int, dict] = {}
    queue = list(enumerate(episodes))
    live: dict[int, LiveEpisode] = {}
    with ThreadPoolExecutor(max_workers=max(1, len(envs))) as pool:
        def refill(free: list) -> None:
            jobs = [(env, *queue.pop(0)) for env in free[:len(queue)]]  # (instance, index, episode), in order
            for (env, i, episode), obs in zip(jobs, pool.map(lambda j: j[0].reset(j[2]), jobs), strict=True):
                live[i] = LiveEpisode(env, episode, obs)

        refill(list(envs))
        while live:
            order = sorted(live)
            started = time.time_ns()
            outs = _gen(engine, [live[i].prompt(cfg) for i in order], cfg)
            list(pool.map(lambda io, t=started: live[io[0]].act(parse_action(io[1]), io[1], t),
                          zip(order, outs, strict=True)))
            free = []
            for i in order:
                if live[i].done(cfg):
                    results[i] = live[i].result()
                    played[i] = {"goal": live[i].goal, "turns": live[i].turns}
                    free.append(live.pop(i).env)
                    if progress is not None:
                        progress.update(1)
            refill(free)
    if turns is not None:
        turns.extend(played[i] for i in range(len(episodes)))
    return [results[i] for i in range(len(episodes))]


class _Played:
    """play_many's `progress`: each finished episode moves the terminal bar and the progress meter."""

    def __init__(self, bar, meter: progress.Meter | None, report):
        self.bar, self.meter, self.report = bar, meter, report

    def update(self, n: int) -> None:
        self.bar.update(n)
        if self.meter is not None and (p := self.meter.update(advance=n)):
            self.report(p)


def shard_episodes(env, split: str, cfg: EvalConfig) -> list[str]:
    return env.episodes(split)[: cfg.episodes][cfg.shard.index::cfg.shard.count]


def success_rate(env, engine, split: str, cfg: EvalConfig, envs: list | None = None,
                 meter: progress.Meter | None = None, report=None,
                 played: list | None = None) -> tuple[dict, list[dict]]:
    """`envs`: the environment instances to play on at once (default: `env` alone); `meter` counts
    the episodes played and `report` gets its records when due; `played` gets each episode's
    transcript (act_trainer.transcripts.episode)."""
    episodes = shard_episodes(env, split, cfg)
    steps: list[dict] = []  # each episode's goal and turns
    with tqdm(total=len(episodes), desc=f"episodes/{split}", unit="ep") as bar:
        results = play_many(envs or [env], engine, episodes, cfg, progress=_Played(bar, meter, report), turns=steps)
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
    if played is not None:
        played.extend(transcripts.episode(split, r, t["goal"], t["turns"]) for r, t in zip(results, steps, strict=True))
    return {**measured, "episodes": len(results)}, results


def next_action_accuracy(env, engine, split: str, cfg: EvalConfig, answers: list | None = None) -> dict:
    """`answers` gets one record per state (the expert's action, the model's output and verdict)."""
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
    if answers is not None:
        answers.extend({"split": split, "episode": s.episode_id, "step": s.step, "expert": e, "action": a,
                        "exact": x, "output": o} for (s, e), a, x, o in zip(items, actions, exact, outs, strict=True))
    return {"next_action_accuracy": sum(exact) / len(items),
            "next_action_match": sum(action_match(a, e) for a, (_, e) in zip(actions, items, strict=True)) / len(items),
            "action_malformed_rate": sum(a is None for a in actions) / len(items), "action_states": len(items)}


def judgement_accuracy(engine, cfg: EvalConfig, answers: list | None = None, samples: list | None = None) -> dict:
    """`answers` gets one record per held-out pair (which candidate was the expert's, the model's output);
    `samples` the first TRACED_JUDGEMENTS of them with the prompt the model got (for traces)."""
    uris = [u for u in store.list_uris(cfg.pairs) if u.endswith("heldout.parquet")] if cfg.pairs else []
    rows = [r for u in uris for r in data.read_parquet(store.read_bytes(u))]
    rows = rows[: cfg.judge_pairs][cfg.shard.index::cfg.shard.count]
    if not rows:
        return {"judge_pairs": 0}
    judged, prompts, expected = [], [], []
    for r in rows:
        state = data.pair_state(r)
        for first, second, answer in candidate_orders(r["expert_action"], r["alternative"], r["pair_id"], cfg.seed,
                                                      cfg.judge_both_orders):
            judged.append(r)
            prompts.append(judgement_prompt(state, first, second))
            expected.append(answer)
    outs = _gen(engine, prompts, cfg)
    choices = [parse_choice(o) for o in outs]
    records = [{"pair_id": r["pair_id"], "answer": a, "choice": c, "correct": c == a, "output": o}
               for r, a, c, o in zip(judged, expected, choices, outs, strict=True)]
    if answers is not None:
        answers.extend(records)
    if samples is not None:
        samples.extend({**r, "prompt": p} for r, p in zip(records[:transcripts.TRACED_JUDGEMENTS], prompts, strict=False))
    result = {"judge_accuracy": sum(c == a for c, a in zip(choices, expected, strict=True)) / len(prompts),
              "judge_malformed_rate": sum(c is None for c in choices) / len(prompts), "judge_pairs": len(rows)}
    if cfg.judge_both_orders:  # records alternate: expert first (answer 1), expert second (answer 2)
        pairs = zip(choices[0::2], choices[1::2], strict=True)
        result["judge_position_consistency"] = sum(c1 is not None and c2 is not None and c1 != c2
                                                   for c1, c2 in pairs) / len(rows)
    return result


def load_reasoning(cfg: EvalConfig) -> dict[str, list[reasoning.Question]]:
    """The questions of every reasoning benchmark this shard runs (the first shard runs them all),
    read before the model loads so that bad data fails first."""
    if cfg.shard.index != 0:
        return {}
    out = {}
    for i, b in enumerate(cfg.reasoning.benchmarks):
        questions = reasoning.load_questions(b.name, b.data, f"reasoning.benchmarks[{i}].data")
        out[b.name] = questions[: cfg.reasoning.limit]
    return out


def reasoning_eval(engine, benchmarks: dict[str, list[reasoning.Question]], cfg: EvalConfig, out_dir
                   ) -> tuple[list[dict], dict, dict]:
    """Each benchmark's runs: (result rows, metrics reasoning/<benchmark>/..., the manifest's summary).
    Every graded answer goes to reasoning/<benchmark>.jsonl under the stage's output."""
    rows, metrics, summary = [], {}, {}
    for name, questions in benchmarks.items():
        measured, records = reasoning.run_benchmark(engine, name, questions, cfg.reasoning)
        (out_dir / "reasoning").mkdir(exist_ok=True)
        (out_dir / "reasoning" / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
        split = f"reasoning/{name}"
        rows.append({"environment": cfg.env.name, "split": split, "metric": "accuracy",
                     "value": round(measured["accuracy"], 6), "std": round(measured["accuracy_std"], 6),
                     "n": measured["questions"], "repeats": measured["repeats"]})
        rows.append({"environment": cfg.env.name, "split": split, "metric": "no_answer_rate",
                     "value": round(measured["no_answer_rate"], 6), "n": measured["questions"] * measured["repeats"]})
        metrics.update({f"{split}/{k}": v for k, v in measured.items()})
        summary[name] = {**measured, "answers": f"reasoning/{name}.jsonl"}
        log.info("eval: %s accuracy %.4f ± %.4f (%d questions x %d runs)", name, measured["accuracy"],
                 measured["accuracy_std"], measured["questions"], measured["repeats"])
    return rows, metrics, summary


def count_for(metric: str, counts: dict, count_key: str) -> int:
    """How many items a rate is over: a task type's (`success_rate.boil` over `episodes.boil`), else
    the split's (`success_rate` over `episodes`)."""
    kind = metric.partition(".")[2]
    return int(counts.get(f"{count_key}.{kind}" if kind else count_key, counts.get(count_key, 0)))


def trace(run, played: list[dict], judged: list[dict]) -> None:
    """The first TRACED_EPISODES episodes of each split and the judgement samples, as MLflow traces
    linked to the stage's run (when MLflow is on; when it does not answer, the replay makes them)."""
    firsts: dict[str, list[dict]] = {}
    for e in played:
        firsts.setdefault(e["split"], []).append(e)
    chosen = [e for split in firsts.values() for e in split[:transcripts.TRACED_EPISODES]]
    if not (chosen or judged):
        return
    started = time.monotonic()
    if (ids := run.log_traces(chosen, judged)) is not None:
        log.info("eval: traced %d episodes and %d judgements in MLflow in %.2f s", len(chosen), len(judged),
                 time.monotonic() - started)
        run.set_tags({"act.traces": ",".join(ids)})


def run(cfg: EvalConfig) -> dict:
    with stage(cfg) as st:
        model_dir = resolve_model(cfg.model)
        env = make_env(cfg.env)  # lists episodes and experts; plays them too when one at a time
        envs, pool = [env], None  # the instances episodes are played on at once
        try:
            unknown = [s for s in cfg.splits if s not in env.splits()]
            if unknown:
                raise InputError(f"splits: {unknown} are not splits of {cfg.env.name}; choose from {env.splits()}")
            benchmarks = load_reasoning(cfg)
            engine = make_engine(cfg.engine, str(model_dir), seed=cfg.seed, batch_size=cfg.batch_size,
                                 precision=cfg.precision)
            if cfg.episodes and (at_once := min(cfg.episodes, cfg.episodes_at_once(cfg.env.name))) > 1:
                pool = EnvPool(cfg.env, at_once)
                envs = pool.workers
                log.info("eval: %d episodes at once, each environment in a worker process (pids %s)", at_once,
                         ", ".join(str(w.pid) for w in envs))
            rows, episodes, metrics = [], {}, {}
            answers: dict[str, list[dict]] = {"actions": [], "judgements": []}  # each item's answer, by measure
            played: list[dict] = []  # every episode's steps
            judged: list[dict] = []  # a few judgements with their prompts, to trace

            def record(split: str, measured: dict, count_key: str) -> None:
                # the counts the rates are over go to metrics too (shards merge by them), not to rows
                counts = {k: measured.pop(k) for k in list(measured)
                          if k in (count_key, "turns") or k.startswith(count_key + ".")}
                for metric, value in measured.items():
                    rows.append({"environment": cfg.env.name, "split": split, "metric": metric,
                                 "value": round(value, 6), "n": count_for(metric, counts, count_key)})
                for metric, value in {**measured, **counts}.items():
                    metrics[f"{split}/{metric}" if split != "heldout" else metric] = value

            meter = progress.Meter(cfg.stage, sum(len(shard_episodes(env, s, cfg)) for s in cfg.splits)
                                    if cfg.episodes else None)
            for split in cfg.splits:
                if cfg.episodes:
                    measured, episodes[split] = success_rate(env, engine, split, cfg, envs, meter, st.run.report,
                                                             played)
                    meter.observe({"success_rate": measured["success_rate"],
                                   "malformed_rate": measured["episode_malformed_rate"]})
                    record(split, measured, "episodes")
                if cfg.action_states:
                    record(split, next_action_accuracy(env, engine, split, cfg, answers["actions"]), "action_states")
            if cfg.judge_pairs and cfg.pairs:
                record("heldout", judgement_accuracy(engine, cfg, answers["judgements"], judged), "judge_pairs")
            reasoning_rows, reasoning_metrics, reasoning_summary = reasoning_eval(engine, benchmarks, cfg, st.out)
            rows += reasoning_rows
            metrics.update(reasoning_metrics)
            if meter is not None:
                st.run.report(meter.update(final=True))
        finally:
            env.close()
            if pool is not None:
                pool.close()
        if not rows and not cfg.reasoning.benchmarks:  # reasoning: the first shard measures it
            raise InputError("eval measured nothing: set episodes, actionStates or judgePairs above 0, "
                             "or reasoning.benchmarks")
        (st.out / "results.json").write_text(json.dumps({"model": cfg.model, "rows": rows}, indent=2))
        (st.out / "episodes.json").write_text(json.dumps(episodes, indent=2))
        for name, records in answers.items():  # what each rate is made of: paired tests, transcripts
            if records:
                (st.out / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
        if played:  # every episode, step by step: `actjob transcript` reads it
            (st.out / transcripts.TRANSCRIPTS).write_text(transcripts.to_jsonl(played))
        trace(st.run, played, judged)
        for r in rows:
            log.info("eval: %-8s %-28s %.4f (n=%d)", r["split"], r["metric"], r["value"], r["n"])
        st.run.log_dict({"rows": rows}, "results.json")
        plots.log_plot(st.run, "eval.png", plots.eval_results, rows, f"eval of {cfg.model}")
        return st.publish(metrics, extra={"results": rows, "model": cfg.model, "engine": engine.name,
                                          "parallel_episodes": len(envs),
                                          **({"reasoning": reasoning_summary} if reasoning_summary else {})})
