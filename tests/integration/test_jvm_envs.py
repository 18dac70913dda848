"""The lifecycle the Java-backed adapters share (act_trainer.envs.jvm): the simulator's JVM starts on
first use, never for nothing, and a missing Java or a setting the simulator rejects leaves none running."""

from __future__ import annotations

import shutil

import pytest
from env_fixtures import needs_java

from act_trainer.config import EnvironmentConfig
from act_trainer.envs import REGISTRY, EnvError, make_env

pytestmark = pytest.mark.integration

SIMULATORS = {  # name: (config, a setting the simulator rejects, the error it gives)
    "scienceworld": (dict(tasks=["find-non-living-thing"]), dict(simplification="easy,flyingCars"),
                     r"env\.simplification.*flyingCars"),
    "textworld-express": (dict(game="twc", game_params="numLocations=1,numItemsToPutAway=2"),
                          dict(game_params="numLocations=1,flyingCars=2"),
                          r"environment\.gameParams.*flyingCars.*Known properties"),
}
LABELS = {"scienceworld": "ScienceWorld", "textworld-express": "TextWorldExpress"}


@pytest.fixture(params=sorted(SIMULATORS))
def name(request) -> str:
    pytest.importorskip(REGISTRY[request.param].modules[0])
    return request.param


def config(name: str, **kw) -> EnvironmentConfig:
    return EnvironmentConfig(**{"name": name, "max_steps": 10, **SIMULATORS[name][0], **kw})


def test_missing_java_says_how_to_install(name, monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda cmd: None)
    e = make_env(config(name))
    with pytest.raises(EnvError, match=rf"{LABELS[name]} needs a Java runtime \(>= 11\).*apt-get install default-jre-headless"):
        e.episodes("train")
    assert e._sim is None


def test_step_before_reset_starts_nothing(name):
    e = make_env(config(name))
    with pytest.raises(EnvError, match="before reset"):
        e.step("look around")
    assert e.admissible() is None and e._sim is None
    e.close()
    e.close()


@needs_java
def test_a_rejected_setting_names_the_field_and_stops_the_simulator(name):
    _, bad, message = SIMULATORS[name]
    e = make_env(config(name, **bad))
    with pytest.raises(EnvError, match=message):
        e.episodes("dev")
    assert e._sim is None
