"""Environment adapters, selected by name."""

from __future__ import annotations

from act_trainer.envs.base import EnvError, Environment, Observation

REGISTRY = {
    "scienceworld": "act_trainer.envs.scienceworld:ScienceWorldEnv",
    "alfworld": "act_trainer.envs.alfworld:ALFWorldEnv",
    "textworld-express": "act_trainer.envs.textworld_express:TextWorldExpressEnv",
    "webshop": "act_trainer.envs.webshop:WebShopEnv",
}


def make_env(cfg) -> Environment:
    """Build the adapter for an EnvironmentConfig; fails with what is missing and how to get it."""
    import importlib

    target = REGISTRY.get(cfg.name)
    if target is None:
        raise EnvError(f"env.name: unknown environment '{cfg.name}'; choose one of {sorted(REGISTRY)}")
    module, cls = target.split(":")
    return getattr(importlib.import_module(module), cls)(cfg)


__all__ = ["Environment", "EnvError", "Observation", "make_env", "REGISTRY"]
