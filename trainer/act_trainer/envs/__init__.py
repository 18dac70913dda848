"""Environment adapters, selected by name, and what each needs installed."""

from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass

from act_trainer.envs.base import EnvError, Environment, Observation

ALL_EXTRA = "envs"  # the act-operator extra that installs every environment's packages


class EnvNotInstalled(EnvError):
    """An environment's Python package is not installed."""


@dataclass(frozen=True)
class Adapter:
    target: str                 # "module:Class" of the adapter
    modules: tuple[str, ...]    # the Python packages it imports (import names)
    extra: str                  # the act-operator extra that installs them (pyproject.toml)
    note: str = ""              # anything the install needs besides pip


REGISTRY = {
    "scienceworld": Adapter("act_trainer.envs.scienceworld:ScienceWorldEnv", ("scienceworld",), "scienceworld"),
    "alfworld": Adapter("act_trainer.envs.alfworld:ALFWorldEnv", ("alfworld", "textworld", "fast_downward"),
                        "alfworld", "it builds jericho and fast-downward: a C++ compiler and about 5 minutes"),
    "textworld-express": Adapter("act_trainer.envs.textworld_express:TextWorldExpressEnv", ("textworld_express",),
                                 "textworld-express"),
    "webshop": Adapter("act_trainer.envs.webshop:WebShopEnv", ("requests",), "webshop"),
}


def _adapter(name: str) -> Adapter:
    if name not in REGISTRY:
        raise EnvError(f"env.name: unknown environment '{name}'; choose one of {sorted(REGISTRY)}")
    return REGISTRY[name]


def not_installed(name: str, missing: str) -> EnvNotInstalled:
    """The error for environment `name` whose package `missing` (an import name, or an ImportError's
    text) cannot be imported: which environment, and the pip command that installs it."""
    a = _adapter(name)
    note = f"; {a.note}" if a.note else ""
    return EnvNotInstalled(f"environment '{name}' is not installed ({missing}); install it with "
                           f"`{install_command(name)}`{note} (or `pip install 'act-operator[{ALL_EXTRA}]'` for "
                           "every environment)")


def install_command(name: str) -> str:
    """The pip command that installs environment `name` into an act-operator install."""
    return f"pip install 'act-operator[{_adapter(name).extra}]'"


def require(name: str) -> None:
    """Raise EnvNotInstalled unless every Python package environment `name` imports is installed.

    Cheap (finds the packages, imports nothing), so it can run before any stage starts.
    """
    for module in _adapter(name).modules:
        if importlib.util.find_spec(module) is None:
            raise not_installed(name, f"no module named '{module}'")


def import_package(name: str):
    """Environment `name`'s main Python package, imported; EnvNotInstalled if it is not installed."""
    try:
        return importlib.import_module(_adapter(name).modules[0])
    except ImportError as e:
        raise not_installed(name, str(e)) from None


def make_env(cfg) -> Environment:
    """Build the adapter for an EnvironmentConfig; fails with what is missing and how to get it."""
    module, cls = _adapter(cfg.name).target.split(":")
    return getattr(importlib.import_module(module), cls)(cfg)


__all__ = ["Adapter", "Environment", "EnvError", "EnvNotInstalled", "Observation", "import_package", "make_env",
           "install_command", "not_installed", "require", "REGISTRY"]
