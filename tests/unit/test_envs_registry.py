"""The environment registry: names, adapters, and what each needs installed (act_trainer.envs)."""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util

import pytest

from act_trainer.config import EnvironmentConfig
from act_trainer.contract import ENVIRONMENTS
from act_trainer.envs import (
    REGISTRY,
    EnvError,
    EnvNotInstalled,
    import_package,
    install_command,
    make_env,
    require,
)


def test_every_configurable_environment_has_an_adapter():
    assert sorted(REGISTRY) == sorted(ENVIRONMENTS)
    for adapter in REGISTRY.values():
        module, cls = adapter.target.split(":")
        assert module.startswith("act_trainer.envs.") and cls.endswith("Env") and adapter.modules


def test_require_passes_when_installed_and_fails_when_not(monkeypatch):
    """Real package lookups: `make install` installs every environment (the envs extra), so each
    one passes; an adapter that needs a package this install lacks fails, so passing means
    something was found, not that nothing was looked for."""
    for name in REGISTRY:
        require(name)
    missing = dataclasses.replace(REGISTRY["webshop"], modules=("requests", "act_no_such_package"))
    monkeypatch.setitem(REGISTRY, "webshop", missing)
    with pytest.raises(EnvNotInstalled, match=r"environment 'webshop' is not installed \(no module named "
                                              r"'act_no_such_package'\)"):
        require("webshop")


def test_require_names_the_environment_and_how_to_install_it(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "scienceworld" else real(name, *a))
    with pytest.raises(EnvNotInstalled, match=r"environment 'scienceworld' is not installed \(no module named "
                                              r"'scienceworld'\); install it with `pip install "
                                              r"'act-operator\[scienceworld\]'` \(or `pip install "
                                              r"'act-operator\[envs\]'` for every environment\)$"):
        require("scienceworld")


def test_require_checks_every_package_and_says_what_else_the_install_needs(monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "fast_downward" else object())
    with pytest.raises(EnvNotInstalled, match=r"environment 'alfworld' .*'fast_downward'.*"
                                              r"pip install 'act-operator\[alfworld\]'`; it builds jericho"):
        require("alfworld")


def test_each_environment_has_its_own_extra():
    """The extra an error names exists in pyproject.toml, installs that environment, and `envs` has them all."""
    import tomllib
    from pathlib import Path

    extras = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())["project"][
        "optional-dependencies"]
    for name, adapter in REGISTRY.items():
        assert adapter.extra in extras, name
        assert f"act-operator[{adapter.extra}]" in install_command(name)
    (everything,) = extras["envs"]
    assert everything == "act-operator[" + ",".join(a.extra for a in REGISTRY.values()) + "]"


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
    with pytest.raises(EnvNotInstalled, match=r"environment 'textworld-express' is not installed "
                                              r"\(No module named 'py4j'\).*"
                                              r"pip install 'act-operator\[textworld-express\]'"):
        import_package("textworld-express")
