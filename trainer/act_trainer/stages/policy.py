"""policy: teach the model to act, starting from the judge's checkpoint (or from the base
model when the judge was skipped: the IL / RL baselines).

il: SFT on (state -> <action>expert action</action>).
rl: GRPO generating the action; reward = normalised match with the expert's (rewards.py).
"""

from __future__ import annotations

import json
import logging

from act_trainer import data, store
from act_trainer.config import PolicyConfig
from act_trainer.models import resolve_model
from act_trainer.prompts import action_prompt
from act_trainer.rewards import action_reward
from act_trainer.stages import training
from act_trainer.stages.common import stage

log = logging.getLogger("act_trainer.policy")


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


def run(cfg: PolicyConfig) -> dict:
    from datasets import Dataset
    from transformers import AutoTokenizer
    from trl import GRPOConfig, GRPOTrainer, SFTConfig, SFTTrainer

    with stage(cfg) as st:
        model_dir = resolve_model(cfg.model)
        try:
            trajs = data.load_trajectories(cfg.expert)
        except (store.StoreError, FileNotFoundError) as e:
            raise store.StoreError(f"expert: cannot read expert trajectories: {e}") from None
        rows = action_rows(trajs, cfg.history, cfg.method)
        log.info("policy (%s): %d expert states from %d episodes, starting from %s", cfg.method, len(rows),
                 len(trajs), cfg.model)
        ckpt_dir = st.scratch / "checkpoints"
        resume = training.fetch_checkpoint(cfg.checkpoints, ckpt_dir)
        tokenizer = AutoTokenizer.from_pretrained(model_dir)
        callbacks = [training.SyncCheckpoints(cfg.checkpoints), training.LogMetrics(st.run)]
        dataset = Dataset.from_list(rows)
        if cfg.method == "il":
            trainer = SFTTrainer(model=str(model_dir), processing_class=tokenizer, train_dataset=dataset,
                                 args=SFTConfig(**training.common_args(cfg, ckpt_dir)), callbacks=callbacks)
        else:
            trainer = GRPOTrainer(model=str(model_dir), processing_class=tokenizer, reward_funcs=[action_reward],
                                  train_dataset=dataset, args=GRPOConfig(**training.grpo_args(cfg, ckpt_dir)),
                                  callbacks=callbacks)
        result = trainer.train(resume_from_checkpoint=resume)
        trainer.save_model(str(st.out))
        if not trainer.is_world_process_zero():
            return {}
        info = training.runtime_info(trainer)
        log.info("%s trained %d steps on %s", cfg.stage, trainer.state.global_step, info)
        history = trainer.state.log_history
        (st.out / "train_log.json").write_text(json.dumps(history, indent=1))
        metrics = {**training.summarize(history), "steps": trainer.state.global_step, "examples": len(rows),
                   "train_runtime": result.metrics.get("train_runtime", 0.0), "resumed": bool(resume)}
        st.run.log_dataset(cfg.expert, "expert", data.digest_trajectories(trajs), "training",
                           rows=[{"episode": t.episode_id, "steps": len(t.steps)} for t in trajs])
        return st.publish(metrics, extra={"method": cfg.method, "start_model": cfg.model, **info})
