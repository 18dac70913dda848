"""The TextWorldExpress adapter against the real simulator (the textworld-express package's JVM).

Small games (twc with one location, two items) keep the file to a few seconds on 2 cores.
"""

from __future__ import annotations

import shutil

import pytest

pytest.importorskip("textworld_express")

from act_trainer.config import EnvironmentConfig
from act_trainer.data import dumps_jsonl, loads_trajectories
from act_trainer.envs import EnvError, Observation, make_env
from act_trainer.envs.base import Environment

pytestmark = pytest.mark.integration
needs_java = pytest.mark.skipif(shutil.which("java") is None, reason="TextWorldExpress needs a Java runtime")

PARAMS = "numLocations=1,numItemsToPutAway=2"
MAX_STEPS = 20


def config(**kw) -> EnvironmentConfig:
    return EnvironmentConfig(**{"name": "textworld-express", "game": "twc", "game_params": PARAMS,
                                "max_steps": MAX_STEPS, **kw})


@pytest.fixture(scope="module")
def env():
    if shutil.which("java") is None:
        pytest.skip("TextWorldExpress needs a Java runtime")
    e = make_env(config())
    yield e
    e.close()


@pytest.fixture(scope="module")
def expert(env):
    return list(env.expert("train", limit=3, max_length=30))


@needs_java
def test_is_an_environment(env):
    assert isinstance(env, Environment)
    assert env.splits() == ["train", "dev", "test"]


@needs_java
def test_episodes_per_split(env):
    splits = {s: env.episodes(s) for s in env.splits()}
    for split, ids in splits.items():
        assert len(ids) == 1000 == len(set(ids))
        assert all(i.startswith(f"{split}:") for i in ids)
        assert env.episodes(split) == ids  # stable
    assert splits["train"][:2] == ["train:0", "train:1"]
    assert splits["dev"][0] == "dev:10000" and splits["test"][0] == "test:20000"


@needs_java
def test_gold_paths_replay_to_success(env, expert):
    assert len(expert) == 3
    assert [t.variation for t in expert] == [0, 1, 2]
    for traj in expert:
        assert traj.env == "textworld-express" and traj.task == "twc" and traj.split == "train"
        assert traj.success and traj.score == 100.0
        assert traj.goal.startswith("Your task is to pick up objects")
        assert 2 <= len(traj.steps) <= 30
        for step in traj.steps:
            # Admissible actions are free here, and the expert's action is always among them.
            assert step.admissible and step.action in step.admissible

        # The recorded actions win again through the agent-facing reset/step.
        obs = env.reset(f"{traj.split}:{traj.variation}")
        assert obs.goal == traj.goal
        for i, step in enumerate(traj.steps):
            assert not obs.done
            assert obs.text == step.observation, i
            assert env.admissible() == step.admissible
            obs = env.step(step.action)
        assert obs.done and obs.won and obs.score == 100.0


@needs_java
def test_trajectory_round_trips_through_jsonl(expert):
    back = loads_trajectories(dumps_jsonl(t.to_dict() for t in expert))
    assert [t.to_dict() for t in back] == [t.to_dict() for t in expert]


@needs_java
def test_invalid_actions_do_not_crash_step(env):
    start = env.reset("dev:10000")
    for action in ["fly to the moon", "", "x" * 2000, "héllo ☃", "look around\ninventory"]:
        obs = env.step(action)
        assert isinstance(obs, Observation)
        assert not obs.done and not obs.won and obs.score == start.score
    assert "look around" in env.admissible()


@needs_java
def test_step_limit_ends_the_episode(env):
    env.reset("test:20001")
    done = [env.step("inventory").done for _ in range(MAX_STEPS)]
    assert done == [False] * (MAX_STEPS - 1) + [True]


@needs_java
def test_bad_episode_ids(env):
    with pytest.raises(EnvError, match="not in the dev fold"):
        env.reset("dev:5")  # a train seed: the simulator would play it, we refuse
    with pytest.raises(EnvError, match="FOLD:SEED"):
        env.reset("valid:3")
    with pytest.raises(EnvError, match="FOLD:SEED"):
        env.reset("train")
    with pytest.raises(EnvError, match="before reset"):
        env.step("look around")


@needs_java
def test_unknown_split(env):
    with pytest.raises(EnvError, match=r"unknown split 'valid_seen'.*train, dev, test"):
        env.episodes("valid_seen")


@needs_java
def test_other_games_and_default():
    e = make_env(EnvironmentConfig(name="textworld-express", max_steps=MAX_STEPS))
    try:
        assert e.game == "twc"
        trajs = list(e.expert("dev", limit=1, max_length=40))
        assert len(trajs) == 1 and trajs[0].split == "dev" and trajs[0].variation == 10000
    finally:
        e.close()
    e = make_env(config(game="coin", game_params="numLocations=4"))
    try:
        (traj,) = e.expert("test", limit=1, max_length=40)
        assert traj.task == "coin" and traj.success
    finally:
        e.close()


@needs_java
def test_bad_game_params_name_the_field():
    e = make_env(config(game_params="numLocations=1,flyingCars=2"))
    with pytest.raises(EnvError, match=r"environment\.gameParams.*flyingCars.*Known properties"):
        e.episodes("train")
    assert e._twx is None


def test_unknown_game_names_the_field_and_the_choices():
    with pytest.raises(EnvError, match=r"environment\.game.*'zork'.*cookingworld.*twc"):
        make_env(config(game="zork"))


def test_tasks_are_not_games():
    with pytest.raises(EnvError, match=r"environment\.tasks.*environment\.game"):
        make_env(config(tasks=["coin"]))
    assert make_env(config(tasks=["twc"])).game == "twc"


def test_missing_java_says_how_to_install(monkeypatch):
    import act_trainer.envs.textworld_express as twx

    monkeypatch.setattr(twx.shutil, "which", lambda name: None)
    e = make_env(config())
    with pytest.raises(EnvError, match=r"Java runtime \(>= 11\).*apt-get install default-jre-headless"):
        e.episodes("train")
    assert e._twx is None


def test_step_before_reset_starts_nothing():
    e = make_env(config())
    with pytest.raises(EnvError, match="before reset"):
        e.step("look around")
    assert e.admissible() is None and e._twx is None
    e.close()
    e.close()


@needs_java
def test_expert_skips_long_paths():
    e = make_env(config())
    try:
        # Gold paths of dev:10000-10002 take 6 steps, dev:10003's 5 (the simulator is seeded).
        (traj,) = e.expert("dev", limit=1, max_length=5)
        assert traj.variation == 10003 and len(traj.steps) == 5
    finally:
        e.close()
