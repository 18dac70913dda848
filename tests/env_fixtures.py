"""Fixtures the environment test files share: an adapter per test module, closed after it."""

from __future__ import annotations

import shutil
from collections.abc import Callable

import pytest

from act_trainer.config import EnvironmentConfig
from act_trainer.envs import make_env

needs_java = pytest.mark.skipif(shutil.which("java") is None, reason="the simulator needs a Java runtime")


def module_env(config: Callable[[], EnvironmentConfig], java: bool = False):
    """A module-scoped `env` fixture: the adapter for `config()` (skipped without Java where it needs it)."""

    @pytest.fixture(scope="module")
    def env():
        if java and shutil.which("java") is None:
            pytest.skip("the simulator needs a Java runtime")
        e = make_env(config())
        yield e
        e.close()

    return env


def module_expert(split: str, limit: int, max_length: int):
    """A module-scoped `expert` fixture: the module's env's expert trajectories of a split."""

    @pytest.fixture(scope="module")
    def expert(env):
        return list(env.expert(split, limit=limit, max_length=max_length))

    return expert
