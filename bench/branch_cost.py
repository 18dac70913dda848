"""Verified alternatives (stages.collect.verifyAlternatives): seconds per alternative taken in the
environment from its restored expert state, through collect's own Verifier (the expert's action
at every state, then each alternative), with the replay caches (envs/branching.py: the cursor and
the outcome LRU) vs without them (every branch reloads the episode and replays its prefix).

    OMP_NUM_THREADS=1 python bench/branch_cost.py     # about 15 minutes on 2 busy cores

Alternatives: at each state, up to ALTS actions of the same trajectory's other steps (what an
IL-trained policy proposes: plausible actions of the episode), the same in both modes; the expert's
own outcomes are computed before them, as collect does. After an untimed warm-up pass (the JVM's
JIT), the modes alternate over ROUNDS rounds, each round starting with the other mode; the table
shows medians. ALFWorld games: bench/env_throughput.py's.
"""

from __future__ import annotations

import os
import statistics
import sys
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

from act_trainer import data  # noqa: E402
from act_trainer.config import EnvironmentConfig  # noqa: E402
from act_trainer.envs import make_env  # noqa: E402
from act_trainer.stages.collect import Verifier  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from env_throughput import _alfworld_data  # noqa: E402

ROUNDS = 3
ALTS = 3


def alternatives(traj: data.Trajectory, i: int) -> list[str]:
    own = traj.steps[i].action
    return list(dict.fromkeys(s.action for s in traj.steps[i + 1:] + traj.steps[:i] if s.action != own))[:ALTS]


def verify_all(env, trajs: list[data.Trajectory]) -> tuple[float, int, int]:
    """(seconds, alternatives taken, alternatives dropped) for every state of `trajs`."""
    v, dropped = Verifier(env), 0
    for traj in trajs:
        batch = [(traj, s, a) for s, a in data.states(traj, 0)]
        experts = v.expert_outcomes(batch)
        for t, s, _ in batch:
            check = v.verify(t, s.step, experts[t.episode_id, s.step])
            dropped += sum(check(alt) == "as_good_as_expert" for alt in alternatives(t, s.step))
    return v.seconds, v.alternatives, dropped


def measure(label: str, cfg: EnvironmentConfig, splits: list[tuple[str, int]], rounds: int = ROUNDS) -> None:
    env = make_env(cfg)
    try:
        trajs = [t for split, n in splits for t in env.expert(split, limit=n, max_length=30)]
        steps = sum(len(t.steps) for t in trajs)
        per = {True: [], False: []}
        verify_all(env, trajs)  # warm-up
        for r in range(rounds):
            for caching in ((True, False) if r % 2 == 0 else (False, True)):
                env.caching = caching
                env._outcomes().clear()
                seconds, n, dropped = verify_all(env, trajs)
                per[caching].append(seconds / n)
        cached, uncached = statistics.median(per[True]), statistics.median(per[False])
        print(f"| {label} | {len(trajs)} episodes, {steps} states, {n} alternatives ({dropped} as good as the "
              f"expert's) | {cached:.3f} | {uncached:.3f} | {uncached / cached:.1f}x |", flush=True)
    finally:
        env.close()


def main() -> None:
    print("| environment | work | s/alternative cached | s/alternative uncached | uncached/cached |")
    print("|---|---|---|---|---|")
    measure("ScienceWorld", EnvironmentConfig(name="scienceworld", tasks=["find-living-thing"]),
            [("train", 2)])
    if "--scienceworld-only" in sys.argv:
        return
    root, tmp = _alfworld_data()
    try:
        measure("ALFWorld", EnvironmentConfig(name="alfworld", data_dir=root),
                [("train", 2), ("valid_seen", 1), ("valid_unseen", 1)], rounds=1)  # ~2-3 s per alternative
    finally:
        if tmp is not None:
            tmp.cleanup()


if __name__ == "__main__":
    main()
