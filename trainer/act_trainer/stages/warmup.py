"""warmup (optional, before collect): make the initial policy pi0 from a base model that does
not answer in the format yet (e.g. random weights, or a model without instruction tuning).

IL (SFT) on the expert's episodes, plus judgement prompts answered with a random label
(formatJudgements): pi0 learns to write <action>...</action> and <answer>N</answer>, and
nothing about which of two actions is better. The episodes collect will hold out (the same
seeded split by episode) are left out, so held-out judgement and action accuracy are not
measured on states the warm-up imitated. Writes expert.jsonl (every episode, for collect to
sample from, so that the environment's expert plays once) beside the model.
"""

from __future__ import annotations

import logging

from act_trainer import data, store
from act_trainer.config import WarmupConfig
from act_trainer.errors import InputError
from act_trainer.stages import action_training
from act_trainer.stages.common import stage
from act_trainer.stages.expert import expert_trajectories

log = logging.getLogger("act_trainer.warmup")


def run(cfg: WarmupConfig) -> dict:
    with stage(cfg) as st:
        trajs = expert_trajectories(cfg)
        (st.out / "expert.jsonl").write_bytes(data.dumps_jsonl(t.to_dict() for t in trajs))
        train, held = data.split_episodes(trajs, cfg.heldout_fraction, cfg.seed)
        if not train:
            raise InputError(f"warmup: all {len(trajs)} expert episodes are held out for collect; raise "
                             "environment.expert.episodes or lower stages.collect.heldoutFraction")
        log.info("warmup: IL on %d of %d expert episodes (%d left out: collect holds them out)", len(train),
                 len(trajs), len(held))
        source = cfg.expert.uri or store.join(cfg.output, "expert.jsonl")
        return action_training.train(cfg, st, train, source, "il")
