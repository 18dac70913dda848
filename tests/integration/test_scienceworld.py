"""The ScienceWorld adapter against the real simulator (the scienceworld package's JVM): what
only ScienceWorld does. The protocol every adapter keeps is checked in test_env_protocol.py,
the JVM's lifecycle in test_jvm_envs.py.

Tasks are the ones with the shortest gold paths (2-10 steps), so the file runs in well
under a minute on 2 cores. Gold paths are drawn at random by the simulator's gold agent,
so the tests check outcomes, not exact action sequences.
"""

from __future__ import annotations

import pytest

pytest.importorskip("scienceworld")

from env_fixtures import module_env, module_expert, needs_java  # noqa: E402

from act_trainer.config import EnvironmentConfig  # noqa: E402
from act_trainer.envs import EnvError, make_env  # noqa: E402

pytestmark = pytest.mark.integration

TASKS = ["find-non-living-thing", "lifespan-longest-lived", "lifespan-shortest-lived"]
MAX_STEPS = 30


def config(**kw) -> EnvironmentConfig:
    return EnvironmentConfig(**{"name": "scienceworld", "tasks": TASKS, "max_steps": MAX_STEPS, **kw})


env = module_env(config, java=True)
expert = module_expert("train", limit=3, max_length=20)


def test_episodes_per_split(env):
    assert env.splits() == ["train", "dev", "test"]
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


def test_gold_paths(env, expert):
    assert len(expert) == 3
    assert {t.task for t in expert} == set(TASKS)  # round-robin: one per task
    for traj in expert:
        assert traj.env == "scienceworld" and traj.split == "train"
        assert traj.success and traj.score == 100.0
        assert 1 <= len(traj.steps) <= 20
        assert traj.goal.startswith("Your task is to")
        assert traj.steps[0].observation.startswith("This room is called")
        assert all(s.admissible is None and s.action for s in traj.steps)

        # ... and replay to a win through reset/step: test_env_protocol.py.


def test_task_failure_ends_the_episode(env):
    env.reset("lifespan-longest-lived:0")
    obs = env.step("focus on agent")  # not an animal outside: the task fails
    assert obs.done and not obs.won and obs.score == -100.0


def test_admissible_only_when_asked(env):
    obs = env.reset("find-non-living-thing:0")
    assert obs.admissible is None and env.step("look around").admissible is None
    actions = env.admissible()
    assert "look around" in actions and "focus on agent" in actions
    assert len(actions) == len(set(actions))


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


def test_unknown_task_names_the_field_and_the_valid_names():
    with pytest.raises(EnvError, match=r"env\.tasks.*'boill'.*valid names:.*\bboil\b"):
        make_env(config(tasks=["boil", "boill"]))


def test_task_ids_are_accepted():
    assert make_env(config(tasks=["1-1", "boil", "find-animal"])).tasks == ["boil", "find-animal"]


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
    assert e._sim is None
