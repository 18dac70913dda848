"""The ScienceWorld adapter against the real simulator (the scienceworld package's JVM).

Tasks are the ones with the shortest gold paths (2-10 steps), so the file runs in well
under a minute on 2 cores. Gold paths are drawn at random by the simulator's gold agent,
so the tests check outcomes, not exact action sequences.
"""

from __future__ import annotations

import shutil

import pytest

pytest.importorskip("scienceworld")

from act_trainer.config import EnvironmentConfig  # noqa: E402
from act_trainer.data import dumps_jsonl, loads_trajectories  # noqa: E402
from act_trainer.envs import EnvError, Observation, make_env  # noqa: E402
from act_trainer.envs.base import Environment  # noqa: E402

pytestmark = pytest.mark.integration
needs_java = pytest.mark.skipif(shutil.which("java") is None, reason="ScienceWorld needs a Java runtime")

TASKS = ["find-non-living-thing", "lifespan-longest-lived", "lifespan-shortest-lived"]
MAX_STEPS = 30


def config(**kw) -> EnvironmentConfig:
    return EnvironmentConfig(**{"name": "scienceworld", "tasks": TASKS, "max_steps": MAX_STEPS, **kw})


@pytest.fixture(scope="module")
def env():
    if shutil.which("java") is None:
        pytest.skip("ScienceWorld needs a Java runtime")
    e = make_env(config())
    yield e
    e.close()


@pytest.fixture(scope="module")
def expert(env):
    return list(env.expert("train", limit=3, max_length=20))


@needs_java
def test_is_an_environment(env):
    assert isinstance(env, Environment)
    assert env.splits() == ["train", "dev", "test"]


@needs_java
def test_episodes_per_split(env):
    splits = {s: env.episodes(s) for s in env.splits()}
    for split, ids in splits.items():
        assert ids, split
        assert len(ids) == len(set(ids))
        assert {i.rsplit(":", 1)[0] for i in ids} == set(TASKS)
        # Round-robin over tasks, in the configured order.
        assert [i.rsplit(":", 1)[0] for i in ids[:3]] == TASKS
        assert env.episodes(split) == ids  # stable
    assert splits["train"][:3] == [f"{t}:0" for t in TASKS]
    assert not set(splits["train"]) & set(splits["dev"])
    assert not set(splits["dev"]) & set(splits["test"])
    # The package's own split sizes: lifespan tasks have 62 train variations, find-* 150.
    assert sum(i.startswith("lifespan-longest-lived:") for i in splits["train"]) == 62
    assert sum(i.startswith("find-non-living-thing:") for i in splits["train"]) == 150


@needs_java
def test_gold_paths_replay_to_success(env, expert):
    assert len(expert) == 3
    assert {t.task for t in expert} == set(TASKS)  # round-robin: one per task
    for traj in expert:
        assert traj.env == "scienceworld" and traj.split == "train"
        assert traj.success and traj.score == 100.0
        assert 1 <= len(traj.steps) <= 20
        assert traj.goal.startswith("Your task is to")
        assert traj.steps[0].observation.startswith("This room is called")
        assert all(s.admissible is None and s.action for s in traj.steps)

        # The recorded actions win the episode again through the agent-facing reset/step.
        obs = env.reset(f"{traj.task}:{traj.variation}")
        assert obs.goal == traj.goal and obs.text == traj.steps[0].observation
        for i, step in enumerate(traj.steps):
            assert not obs.done
            assert obs.text == step.observation, (traj.task, i)
            obs = env.step(step.action)
        assert obs.done and obs.won and obs.score == 100.0


@needs_java
def test_trajectory_round_trips_through_jsonl(expert):
    blob = dumps_jsonl(t.to_dict() for t in expert)
    back = loads_trajectories(blob)
    assert [t.to_dict() for t in back] == [t.to_dict() for t in expert]


@needs_java
def test_invalid_actions_do_not_crash_step(env):
    start = env.reset("find-non-living-thing:0")
    for action in ["fly to the moon", "", "x" * 2000, "héllo ☃", "open door to kitchen\nlook around"]:
        obs = env.step(action)
        assert isinstance(obs, Observation)
        assert obs.text == "No known action matches that input."
        assert not obs.done and not obs.won and obs.score == start.score


@needs_java
def test_task_failure_ends_the_episode(env):
    env.reset("lifespan-longest-lived:0")
    obs = env.step("focus on agent")  # not an animal outside: the task fails
    assert obs.done and not obs.won and obs.score == -100.0


@needs_java
def test_step_limit_ends_the_episode(env):
    env.reset("find-non-living-thing:1")
    done = [env.step("look around").done for _ in range(MAX_STEPS)]
    assert done == [False] * (MAX_STEPS - 1) + [True]


@needs_java
def test_admissible_only_when_asked(env):
    obs = env.reset("find-non-living-thing:0")
    assert obs.admissible is None and env.step("look around").admissible is None
    actions = env.admissible()
    assert "look around" in actions and "focus on agent" in actions
    assert len(actions) == len(set(actions))


@needs_java
def test_bad_episode_ids(env):
    with pytest.raises(EnvError, match="exceeds the total number of variations"):
        env.reset("find-non-living-thing:99999")
    with pytest.raises(EnvError, match="TASK:VARIATION"):
        env.reset("find-non-living-thing")
    with pytest.raises(EnvError, match="unknown task 'no-such-task'"):
        env.reset("no-such-task:0")
    # A failed load leaves no episode to step in.
    with pytest.raises(EnvError, match="before reset"):
        env.step("look around")


@needs_java
def test_unknown_split(env):
    with pytest.raises(EnvError, match=r"unknown split 'validation'.*train, dev, test"):
        env.episodes("validation")


def test_unknown_task_names_the_field_and_the_valid_names():
    with pytest.raises(EnvError, match=r"env\.tasks.*'boill'.*valid names:.*\bboil\b"):
        make_env(config(tasks=["boil", "boill"]))


def test_task_ids_are_accepted():
    assert make_env(config(tasks=["1-1", "boil", "find-animal"])).tasks == ["boil", "find-animal"]


def test_missing_java_says_how_to_install(monkeypatch):
    import act_trainer.envs.scienceworld as sw

    monkeypatch.setattr(sw.shutil, "which", lambda name: None)
    e = make_env(config())
    with pytest.raises(EnvError, match=r"Java runtime \(>= 11\).*apt-get install default-jre-headless"):
        e.episodes("train")
    assert e._sw is None


def test_step_before_reset_starts_nothing():
    e = make_env(config())
    with pytest.raises(EnvError, match="before reset"):
        e.step("look around")
    assert e.admissible() is None and e._sw is None
    e.close()


@needs_java
def test_expert_skips_long_paths_and_close_is_idempotent():
    # Its gold paths are about 16 steps long, so max_length=1 yields nothing.
    e = make_env(config(tasks=["identify-life-stages-2"]))
    try:
        assert list(e.expert("dev", limit=2, max_length=1)) == []
        assert len(e.episodes("dev")) == 2
    finally:
        e.close()
        e.close()
    assert e._sw is None


@needs_java
def test_unknown_simplification():
    e = make_env(config(simplification="easy,flyingCars"))
    with pytest.raises(EnvError, match=r"env\.simplification.*flyingCars"):
        e.episodes("dev")
    assert e._sw is None
