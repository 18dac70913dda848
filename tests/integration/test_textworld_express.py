"""The TextWorldExpress adapter against the real simulator (the textworld-express package's JVM):
what only TextWorldExpress does. The protocol every adapter keeps is checked in
test_env_protocol.py, the JVM's lifecycle in test_jvm_envs.py.

Small games (twc with one location, two items) keep the file to a few seconds on 2 cores.
"""

from __future__ import annotations

import pytest

pytest.importorskip("textworld_express")

from env_fixtures import module_env, module_expert, needs_java

from act_trainer.config import EnvironmentConfig
from act_trainer.envs import EnvError, make_env

pytestmark = pytest.mark.integration

PARAMS = "numLocations=1,numItemsToPutAway=2"
MAX_STEPS = 20


def config(**kw) -> EnvironmentConfig:
    return EnvironmentConfig(**{"name": "textworld-express", "game": "twc", "game_params": PARAMS,
                                "max_steps": MAX_STEPS, **kw})


env = module_env(config, java=True)
expert = module_expert("train", limit=3, max_length=30)


def test_episodes_per_split(env):
    assert env.splits() == ["train", "dev", "test"]
    splits = {s: env.episodes(s) for s in env.splits()}
    for split, ids in splits.items():
        assert len(ids) == 1000 == len(set(ids))
        assert all(i.startswith(f"{split}:") for i in ids)
        assert env.episodes(split) == ids  # stable
    assert splits["train"][:2] == ["train:0", "train:1"]
    assert splits["dev"][0] == "dev:10000" and splits["test"][0] == "test:20000"


def test_gold_paths(env, expert):
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

        # ... and replay to a win through reset/step: test_env_protocol.py.


def test_unknown_actions_keep_the_admissible_actions(env):
    env.reset("dev:10000")
    for action in ["fly to the moon", "", "look around\ninventory"]:
        env.step(action)
    assert "look around" in env.admissible()


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


def test_unknown_game_names_the_field_and_the_choices():
    with pytest.raises(EnvError, match=r"environment\.game.*'zork'.*cookingworld.*twc"):
        make_env(config(game="zork"))


def test_tasks_are_not_games():
    with pytest.raises(EnvError, match=r"environment\.tasks.*environment\.game"):
        make_env(config(tasks=["coin"]))
    assert make_env(config(tasks=["twc"])).game == "twc"


@needs_java
def test_expert_skips_long_paths():
    e = make_env(config())
    try:
        # Gold paths of dev:10000-10002 take 6 steps, dev:10003's 5 (the simulator is seeded).
        (traj,) = e.expert("dev", limit=1, max_length=5)
        assert traj.variation == 10003 and len(traj.steps) == 5
    finally:
        e.close()
