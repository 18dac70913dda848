"""judge (the ACT stage): GRPO on "which of these two actions is better?" (method act; the Early
Experience baselines iwm and sr run in its place: stages/early_experience.py).

Each contrast pair becomes one prompt with the expert's and the alternative action in a
seeded random order, or (bothOrders) two prompts side by side, one per order; the reward is 1
for choosing the expert's action (rewards.py).
Nothing supervises the reasoning. Checkpoints go to storage; a rerun resumes there.
"""

from __future__ import annotations

import logging
import random

from act_trainer import data
from act_trainer.config import JudgeConfig
from act_trainer.models import resolve_model
from act_trainer.prompts import candidate_orders, judgement_prompt
from act_trainer.rewards import make_judgement_reward
from act_trainer.stages import training
from act_trainer.stages.common import stage

log = logging.getLogger("act_trainer.judge")


def judgement_rows(pairs: list[dict], seed: int, history: int, both_orders: bool = False) -> list[dict]:
    """One prompt per pair in a seeded order; or (both_orders) the pairs in a seeded shuffle, each as
    two adjacent prompts, expert first then second: the trainer must then not shuffle them apart."""
    rows = []
    if both_orders:
        pairs = random.Random(seed).sample(pairs, len(pairs))
    for p in pairs:
        state = data.pair_state(p, history)
        rows.extend({"prompt": judgement_prompt(state, first, second), "answer": answer, "pair_id": p["pair_id"]}
                    for first, second, answer in candidate_orders(p["expert_action"], p["alternative"],
                                                                  p["pair_id"], seed, both_orders))
    return rows


def run(cfg: JudgeConfig) -> dict:
    if not cfg.runs_grpo:  # an Early Experience baseline in the ACT stage's place
        from act_trainer.stages import early_experience

        return early_experience.run(cfg)
    from datasets import Dataset
    from transformers import AutoTokenizer
    from trl import GRPOConfig, GRPOTrainer

    with stage(cfg) as st:
        model_dir = resolve_model(cfg.model)
        pairs = data.load_pairs(cfg.pairs)[: cfg.max_pairs]
        rows = judgement_rows(pairs, cfg.seed, cfg.history, cfg.both_orders)
        log.info("judge: %d judgement prompts (expert first in %d)", len(rows), sum(r["answer"] == 1 for r in rows))
        ckpt_dir = st.scratch / "checkpoints"
        resume = training.fetch_checkpoint(cfg.checkpoints, ckpt_dir)
        tokenizer = AutoTokenizer.from_pretrained(model_dir)
        trainer = GRPOTrainer(
            model=str(model_dir), processing_class=tokenizer,
            reward_funcs=[make_judgement_reward(cfg.malformed_penalty)],
            # both orders: TRL's sampler takes the prompts in order, so each step holds whole pairs
            args=GRPOConfig(**training.grpo_args(cfg, ckpt_dir) | ({"shuffle_dataset": False} if cfg.both_orders else {})),
            train_dataset=Dataset.from_list(rows),
            callbacks=[training.SyncCheckpoints(cfg.checkpoints, cfg.keep_checkpoints, resume), training.LogMetrics(st.run),
                       training.ReportProgress(st.run)],
        )
        done = training.train_and_save(trainer, st, resume)
        if done is None:
            return {}
        metrics, info = done
        metrics["pairs"] = len(rows)
        pairs_manifest = data.manifest_digest(cfg.pairs)
        st.run.log_dataset(cfg.pairs, "contrast_pairs", pairs_manifest, "training",
                           rows=[{k: p[k] for k in ("pair_id", "expert_action", "alternative")} for p in pairs])
        result = st.publish(metrics, extra={"base_model": cfg.model, "pairs": cfg.pairs,
                                            "pairs_digest": pairs_manifest, **info})
        training.delete_all_checkpoints(cfg)
        return result

