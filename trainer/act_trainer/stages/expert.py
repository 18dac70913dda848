"""The expert's trajectories a stage starts from: read from expert.uri, or played by the
environment's own expert (collect, and the warm-up before it)."""

from __future__ import annotations

from act_trainer import data
from act_trainer.config import CollectConfig
from act_trainer.envs import Environment, make_env
from act_trainer.errors import InputError


def expert_trajectories(cfg: CollectConfig, env: Environment | None = None) -> list[data.Trajectory]:
    """The expert trajectories: from expert.uri, else played by `env` (or an adapter of its own)."""
    if cfg.expert.uri:
        return data.load_trajectories(cfg.expert.uri, field="expert.uri")
    own = env is None
    env = make_env(cfg.env) if own else env
    try:
        if cfg.expert.split not in env.splits():
            raise InputError(f"expert.split: '{cfg.expert.split}' is not a split of {cfg.env.name}; "
                             f"choose one of {env.splits()}")
        trajs = list(env.expert(cfg.expert.split, cfg.expert.episodes, cfg.expert.max_length))
    finally:
        if own:
            env.close()
    if not trajs:
        raise InputError(f"the {cfg.env.name} expert produced no successful episode on split "
                           f"'{cfg.expert.split}' within expert.max_length={cfg.expert.max_length}")
    return trajs
