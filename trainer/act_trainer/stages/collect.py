"""collect: sample K alternatives per expert state from the initial policy, filter them by
the METHOD.md rules (counting what each rule removed), and write contrast pairs.

Where the expert's steps record no admissible actions but the environment can list them
(ScienceWorld lists them only when asked), the environment is asked at each restored state
(ActionLister), so the inadmissible rule runs on every environment that lists actions.

With verify_alternatives, each alternative that passes the other rules is also taken in the
environment from its restored expert state (Environment.branch) and dropped when it does as well
as the expert's action (filters.as_good_as_expert). With verify_alternatives or record_outcomes,
each pair also holds the observation that followed each action (expert_next, alternative_next):
what the Early Experience judge methods learn from.

Outputs under cfg.output: pairs/train.parquet, pairs/heldout.parquet (episodes held out
for judgement accuracy), expert.jsonl (the trajectories used), filter_report.json.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import time
from collections.abc import Callable

from tqdm.auto import tqdm

from act_trainer import data, plots, progress, store
from act_trainer.config import CollectConfig, Shard
from act_trainer.contract import ENV_FACTS
from act_trainer.engines import make_engine
from act_trainer.envs import Environment, make_env
from act_trainer.envs.branching import ReplayDiverged
from act_trainer.errors import InputError
from act_trainer.filters import FilterReport, as_good_as_expert, filter_alternatives
from act_trainer.models import resolve_model
from act_trainer.prompts import action_prompt
from act_trainer.stages.common import stage
from act_trainer.stages.expert import expert_trajectories

log = logging.getLogger("act_trainer.collect")


def batch_seed(seed: int, batch: int) -> int:
    """The sampling seed of one generate batch, from the run's seed and the batch's number."""
    return int.from_bytes(hashlib.sha256(f"{seed}/{batch}".encode()).digest()[:4], "big")


class Verifier:
    """Takes the expert's action and an alternative from the same restored state (Environment.branch)
    and records the observations that followed; when it verifies (`drop`), asks
    filters.as_good_as_expert too. Counts what it ran and its time. A state whose expert prefix does
    not replay (ReplayDiverged) cannot be verified: its alternatives are dropped as "unverifiable"
    when verifying, else kept without outcomes."""

    def __init__(self, env: Environment, drop: bool = True):
        self.env, self.drop = env, drop
        self.alternatives = 0      # alternatives taken in the environment
        self.seconds = 0.0         # spent branching, the expert's actions included
        self.outcomes: dict[tuple[str, int, str], str] = {}  # (episode, step, alternative) -> next observation

    def _branch(self, traj: data.Trajectory, step: int, action: str):
        try:
            return self.env.branch(traj, step, action)
        except ReplayDiverged as e:
            log.warning("collect: %s", e)
            return None

    def expert_outcomes(self, batch: list) -> dict:
        """The expert's action at each state of a generate batch, in trajectory order: consecutive
        states extend one replay (the branching cursor) instead of replaying each prefix."""
        t0 = time.monotonic()
        out = {(t.episode_id, s.step): self._branch(t, s.step, a) for t, s, a in batch}
        self.seconds += time.monotonic() - t0
        return out

    def verify(self, traj: data.Trajectory, step: int, expert_outcome) -> Callable[[str], str | None]:
        """filter_alternatives' verify for one state: the rule that drops an alternative, or None."""
        def check(alternative: str) -> str | None:
            if expert_outcome is None:
                return "unverifiable" if self.drop else None
            t0 = time.monotonic()
            outcome = self._branch(traj, step, alternative)
            self.seconds += time.monotonic() - t0
            if outcome is None:
                return "unverifiable" if self.drop else None
            self.alternatives += 1
            self.outcomes[traj.episode_id, step, alternative] = outcome.next.text
            if not self.drop:
                return None
            why = as_good_as_expert(expert_outcome, outcome)
            if why:
                log.debug("%s step %d: dropped %r: %s", traj.episode_id, step, alternative, why)
            return "as_good_as_expert" if why else None
        return check


class ActionLister:
    """The admissible actions at expert states whose trajectories record none (ScienceWorld lists them
    only when asked: 10-50 ms a state), asked of the environment at the restored state
    (Environment.admissible_at), so that the inadmissible rule runs there too. A batch's states are
    walked in trajectory order, so restoring them is one replay per trajectory. A state whose prefix
    does not replay (ReplayDiverged) gets no list and is counted (`unlisted`). Counts its time."""

    def __init__(self, env: Environment):
        self.env = env
        self.listed = self.unlisted = 0
        self.seconds = 0.0
        self.diverged: set[str] = set()

    @staticmethod
    def needed(cfg: CollectConfig, trajs: list[data.Trajectory]) -> bool:
        """Whether collect must ask the environment: the rule is on, the environment restores states
        (ENV_FACTS.branching) and some step records no list."""
        return (cfg.filter_inadmissible and ENV_FACTS[cfg.env.name].branching
                and any(step.admissible is None for t in trajs for step in t.steps))

    def lists(self, batch: list) -> dict[tuple[str, int], list[str] | None]:
        t0 = time.monotonic()
        out = {}
        for traj, state, _ in batch:
            if state.admissible is not None:
                continue
            try:
                out[traj.episode_id, state.step] = self.env.admissible_at(traj, state.step)
                self.listed += 1
            except ReplayDiverged as e:
                if traj.episode_id not in self.diverged:  # once per episode: its later states diverge too
                    log.warning("collect: no admissible actions for %s from step %d on: %s", traj.episode_id,
                                state.step, e)
                    self.diverged.add(traj.episode_id)
                self.unlisted += 1
        self.seconds += time.monotonic() - t0
        return out


def contrast_pairs(cfg: CollectConfig, engine, trajs: list[data.Trajectory],
                   shard: Shard | None = None, verifier: Verifier | None = None,
                   on_progress=None, lister: ActionLister | None = None) -> tuple[list[dict], FilterReport]:
    """The states of `trajs`, in order, are cut into generate batches of cfg.batch_size; batch b
    belongs to shard b % count and is sampled with batch_seed(seed, b). So every state is sampled
    in the same batch with the same seed, and gives the same pairs, whatever the shard count.
    `on_progress` gets a progress record (states sampled of this shard's) when one is due."""
    shard = shard or Shard()
    items = [(t, s, a) for t in trajs for s, a in data.states(t, cfg.env.history)]
    starts = range(0, len(items), cfg.batch_size)
    mine = range(shard.index, len(starts), shard.count)
    meter = progress.Meter(cfg.stage, sum(len(items[starts[b]:starts[b] + cfg.batch_size]) for b in mine))
    report, rows = FilterReport(), []
    for i, b in enumerate(tqdm(mine, desc="generate", unit="batch")):
        batch = items[starts[b]:starts[b] + cfg.batch_size]
        samples = engine.generate([action_prompt(s) for _, s, _ in batch], n=cfg.samples,
                                  temperature=cfg.temperature, top_p=cfg.top_p,
                                  max_new_tokens=cfg.max_new_tokens, prefill=cfg.prefill,
                                  seed=batch_seed(cfg.seed, b))
        listed = lister.lists(batch) if lister else {}  # before the verifier's walk: both move forward
        experts = verifier.expert_outcomes(batch) if verifier else {}
        for (traj, state, expert), outs in zip(batch, samples, strict=True):
            expert_outcome = experts.get((traj.episode_id, state.step))
            verify = verifier.verify(traj, state.step, expert_outcome) if verifier else None
            admissible = state.admissible if state.admissible is not None else listed.get((traj.episode_id, state.step))
            kept, r = filter_alternatives(expert, outs, admissible, cfg.max_alternatives,
                                          cfg.filter_inadmissible, verify)
            report.add(r)
            expert_next = expert_outcome.next.text if expert_outcome else None
            rows.extend(data.pair_record(state, expert, alt, expert_next, verifier.outcomes.get(
                (traj.episode_id, state.step, alt)) if verifier else None) for alt in kept)
        p = meter.update(advance=len(batch), metrics={"sampled": report.sampled, "kept": report.kept},
                         final=i == len(mine) - 1)
        if p and on_progress:
            on_progress(p)
    return rows, report


def run(cfg: CollectConfig) -> dict:
    with stage(cfg) as st, contextlib.ExitStack() as cleanup:
        env = None
        if why := cfg.branching_refusal(cfg.env.name):
            raise InputError(why)
        # the environment is also asked for admissible actions where the expert's steps record none
        if cfg.branches or (cfg.filter_inadmissible and ENV_FACTS[cfg.env.name].branching):
            env = make_env(cfg.env)
            cleanup.callback(env.close)
        model_dir = resolve_model(cfg.model)
        trajs = expert_trajectories(cfg, env)
        lister = ActionLister(env) if env is not None and ActionLister.needed(cfg, trajs) else None
        # held-out episodes and generate batches are chosen over all shards alike: the pairs are
        # the same whatever the shard count
        train, held = data.split_episodes(trajs, cfg.heldout_fraction, cfg.seed)
        n_batches = -(-sum(len(t.steps) for t in trajs) // cfg.batch_size)
        if cfg.shard.index >= n_batches:
            raise InputError(f"shard {cfg.shard.index} of {cfg.shard.count} has no states to sample "
                               f"({n_batches} generate batches of {cfg.batch_size}); use fewer shards, "
                               "more episodes or a smaller batchSize")
        log.info("collect: %d expert episodes (%d train, %d held out), %d states, shard %d of %d", len(trajs),
                 len(train), len(held), sum(len(t.steps) for t in trajs), cfg.shard.index, cfg.shard.count)

        engine = make_engine(cfg.engine, str(model_dir), seed=cfg.seed, batch_size=cfg.batch_size,
                             precision=cfg.precision)
        t0 = time.monotonic()
        verifier = Verifier(env, drop=cfg.verify_alternatives) if cfg.branches else None
        rows, report = contrast_pairs(cfg, engine, train + held, cfg.shard, verifier, on_progress=st.run.report,
                                      lister=lister)
        gen_s = time.monotonic() - t0
        held_ids = {t.episode_id for t in held}
        train_rows = [r for r in rows if r["episode_id"] not in held_ids]
        held_rows = [r for r in rows if r["episode_id"] in held_ids]
        if not train_rows and (cfg.shard.count == 1 or not held_rows):  # a shard may hold held-out states only
            raise InputError(  # seeded sampling: a retry samples the same
                f"no contrast pairs: of {report.sampled} samples, removed {report.removed}. "
                "Raise samples or temperature, or start from a policy that emits actions"
                + ("; most samples are no action the environment lists: enable stages.warmup (IL on the "
                   "expert's actions teaches their wording), or turn stages.collect.filterInadmissible off"
                   if report.removed["inadmissible"] * 2 > report.sampled else ""))
        trajs = trajs[cfg.shard.index::cfg.shard.count]  # each shard keeps a copy of its part of the episodes

        (st.out / "pairs").mkdir()
        if train_rows:
            (st.out / "pairs" / "train.parquet").write_bytes(data.write_parquet(train_rows))
        if held_rows:
            (st.out / "pairs" / "heldout.parquet").write_bytes(data.write_parquet(held_rows))
        if trajs:  # more shards than episodes: some keep none
            (st.out / "expert.jsonl").write_bytes(data.dumps_jsonl(t.to_dict() for t in trajs))
        filter_report = {"sampled": report.sampled, "kept": report.kept, "removed": report.removed}
        (st.out / "filter_report.json").write_text(json.dumps(filter_report, indent=2))

        metrics = {
            "episodes": len(trajs), "states": report.sampled // cfg.samples, "sampled": report.sampled,
            "kept": report.kept, "pairs_train": len(train_rows), "pairs_heldout": len(held_rows),
            **{f"removed_{rule}": n for rule, n in report.removed.items()},
            "alternatives_per_s": round(report.sampled / gen_s, 3) if gen_s else 0.0,
            "generate_seconds": round(gen_s, 3),  # what alternatives_per_s is over: shards merge by it
        }
        if verifier:  # the cost of branching (the expert's actions included) per alternative taken
            metrics.update(verified=verifier.alternatives, verify_seconds_per_alternative=round(
                verifier.seconds / verifier.alternatives, 4) if verifier.alternatives else 0.0,
                outcomes_recorded=sum(r["alternative_next"] is not None for r in rows))
        if lister:  # what checking candidates against the environment's list cost
            metrics.update(states_listed=lister.listed, states_unlisted=lister.unlisted,
                           list_seconds_per_state=round(lister.seconds / lister.listed, 4) if lister.listed else 0.0)
        log.info("collect: kept %d of %d samples; removed %s", report.kept, report.sampled, report.removed)
        st.run.log_dict(filter_report, "filter_report.json")
        plots.log_plot(st.run, "filter_report.png", plots.filter_report, filter_report)
        expert_src = cfg.expert.uri or store.join(cfg.output, "expert.jsonl")
        expert_digest = data.digest_trajectories(trajs)
        st.run.log_dataset(expert_src, "expert", expert_digest, "expert",
                           rows=[{"episode": t.episode_id, "steps": len(t.steps)} for t in trajs])
        extra = {"engine": engine.name, "expert_digest": expert_digest}
        if hasattr(engine, "prefix_cache_hit_rate"):  # vLLM: K samples and successive states share prefixes
            extra["prefix_cache_hit_rate"] = engine.prefix_cache_hit_rate()
        return st.publish(metrics, extra=extra)
