"""policy: teach the model to act, starting from the judge's checkpoint (or from the base
model when the judge was skipped: the IL / RL baselines).

il: SFT on (state -> <action>expert action</action>).
rl: GRPO generating the action; reward = normalised match with the expert's (rewards.py).
online-rl: GRPO over whole episodes played in the environment; reward = the episode's outcome
(stages/online_rl.py).
"""

from __future__ import annotations

from act_trainer import data
from act_trainer.config import PolicyConfig
from act_trainer.stages import action_training, online_rl
from act_trainer.stages.common import stage


def run(cfg: PolicyConfig) -> dict:
    with stage(cfg) as st:
        if cfg.method == "online-rl":
            return online_rl.train(cfg, st)
        trajs = data.load_trajectories(cfg.expert, field="expert")
        return action_training.train(cfg, st, trajs, cfg.expert, cfg.method)
