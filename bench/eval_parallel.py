"""Eval episodes/s: 16 episodes played in parallel (16 ScienceWorld instances in lockstep, one
batched generate per round) vs the sequential loop (one episode at a time, one prompt per
generate), same model, same episodes, greedy, in the same process.

    OMP_NUM_THREADS=1 python bench/eval_parallel.py     # target: ratio >= 4

The results are checked equal episode by episode before the ratio is printed.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

from act_trainer.config import EnvironmentConfig, EvalConfig, JobRef  # noqa: E402
from act_trainer.engines.hf import HFEngine  # noqa: E402
from act_trainer.envs import make_env  # noqa: E402
from act_trainer.models import resolve_model  # noqa: E402
from act_trainer.stages import evaluate  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from reference_play import sequential_play  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="tiny://qwen3-tiny")
    ap.add_argument("--episodes", type=int, default=16)
    ap.add_argument("--parallel", type=int, default=16)
    ap.add_argument("--max-steps", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(1)
    env_cfg = EnvironmentConfig(name="scienceworld", tasks=["find-living-thing"], max_steps=args.max_steps)
    cfg = EvalConfig(job=JobRef(name="bench", uid="bench"), output="file:///tmp/bench", model=args.model,
                     env=env_cfg, parallel_episodes=args.parallel)
    engine = HFEngine(str(resolve_model(args.model)), batch_size=args.parallel)
    envs = [make_env(env_cfg) for _ in range(args.parallel)]
    try:
        episodes = envs[0].episodes("dev")[: args.episodes]
        # Start every JVM, then warm each one up (JIT) on other episodes, as a long eval would be:
        # the cold first pass is reported apart
        t = time.perf_counter()
        evaluate.play_many(envs, engine, episodes, cfg)
        cold = time.perf_counter() - t
        evaluate.play_many(envs, engine, envs[0].episodes("test")[: 2 * args.parallel], cfg)
        seq, par = [], []
        for _ in range(args.rounds):  # interleaved, so drift on a shared machine hits both alike
            t = time.perf_counter()
            reference = [sequential_play(envs[0], engine, ep, cfg) for ep in episodes]
            seq.append(time.perf_counter() - t)
            t = time.perf_counter()
            results = evaluate.play_many(envs, engine, episodes, cfg)
            par.append(time.perf_counter() - t)
            assert results == reference, "parallel episodes differ from the sequential loop"
    finally:
        for e in envs:
            e.close()
    s, p = len(episodes) / statistics.median(seq), len(episodes) / statistics.median(par)
    turns = sum(r["steps"] for r in reference)
    print(f"eval episodes: ScienceWorld find-living-thing dev, {len(episodes)} episodes ({turns} turns, "
          f"{sum(r['malformed'] for r in reference)} malformed), {args.model}, max_new_tokens "
          f"{cfg.max_new_tokens}, {args.rounds} rounds (median); results equal")
    print(f"  sequential loop          : {s:7.3f} episodes/s")
    print(f"  {args.parallel:2d} episodes in parallel : {p:7.3f} episodes/s")
    print(f"  ratio (parallel / sequential) = {p / s:.2f}   (target >= 4)")
    print(f"  first parallel pass, {args.parallel} cold JVMs started: {len(episodes) / cold:.3f} episodes/s "
          f"(ratio {len(episodes) / cold / s:.2f})")


if __name__ == "__main__":
    main()
