"""The environment registry: names, adapters, and what each needs installed (act_trainer.envs)."""

from __future__ import annotations

import importlib
import importlib.util

import pytest

from act_trainer.config import EnvironmentConfig
from act_trainer.contract import ENVIRONMENTS
from act_trainer.envs import REGISTRY, EnvError, EnvNotInstalled, import_package, make_env, require


def test_every_configurable_environment_has_an_adapter():
    assert sorted(REGISTRY) == sorted(ENVIRONMENTS)
    for adapter in REGISTRY.values():
        module, cls = adapter.target.split(":")
        assert module.startswith("act_trainer.envs.") and cls.endswith("Env") and adapter.modules


def test_require_passes_when_installed(monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: object())
    for name in REGISTRY:
        require(name)


def test_require_names_the_environment_and_how_to_install_it(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "scienceworld" else real(name, *a))
    with pytest.raises(EnvNotInstalled, match=r"environment 'scienceworld' needs the Python package `scienceworld`, "
                                              r"which is not installed \(no module named 'scienceworld'\); "
                                              r"install it with `pip install 'act-operator\[envs\]'` \(every "
                                              r"environment\) or `pip install scienceworld`$"):
        require("scienceworld")


def test_require_checks_every_package_and_says_what_else_the_install_needs(monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "fast_downward" else object())
    with pytest.raises(EnvNotInstalled, match=r"environment 'alfworld' .*'fast_downward'.*pip install alfworld`; "
                                              r"builds jericho and fast-downward"):
        require("alfworld")


def test_not_installed_is_an_env_error():
    assert issubclass(EnvNotInstalled, EnvError)  # callers that catch EnvError keep working


def test_unknown_environment():
    with pytest.raises(EnvError, match=r"env\.name: unknown environment 'zork'; choose one of \['alfworld'"):
        require("zork")
    with pytest.raises(EnvError, match=r"unknown environment 'zork'"):
        make_env(EnvironmentConfig.model_construct(name="zork"))


def test_a_package_that_fails_to_import_gives_the_same_error(monkeypatch):
    def broken(name, *a):
        raise ImportError("No module named 'py4j'")

    monkeypatch.setattr(importlib, "import_module", broken)
    with pytest.raises(EnvNotInstalled, match=r"environment 'textworld-express' needs .*No module named 'py4j'.*"
                                              r"pip install textworld-express"):
        import_package("textworld-express")
