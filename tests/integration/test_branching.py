"""Environment.branch (envs/branching.py) on the real environments: a state restored by replaying
the expert prefix equals the live one (the same observation, score and admissible actions as
playing the expert to that step), with and without the replay caches."""

from __future__ import annotations

import copy
import dataclasses
import shutil

import pytest

from act_trainer.config import EnvironmentConfig
from act_trainer.envs import EnvError, make_env
from act_trainer.envs.base import Observation, alike

pytestmark = pytest.mark.integration

CASES = {
    "scienceworld": ("train", lambda r: EnvironmentConfig(name="scienceworld", tasks=["find-non-living-thing"],
                                                           max_steps=200)),
    "alfworld": ("valid_seen", lambda r: EnvironmentConfig(name="alfworld", max_steps=200,
                                                           data_dir=str(r.getfixturevalue("alfworld_data")))),
    "textworld-express": ("train", lambda r: EnvironmentConfig(name="textworld-express", game="twc", max_steps=200,
                                                               game_params="numLocations=1,numItemsToPutAway=2")),
}


@pytest.fixture(params=sorted(CASES))
def env_and_expert(request):
    name = request.param
    pytest.importorskip("alfworld" if name == "alfworld" else name.replace("-", "_"))
    if name != "alfworld" and shutil.which("java") is None:
        pytest.skip("the simulator needs a Java runtime")
    split, config = CASES[name]
    env = make_env(config(request))
    try:
        traj = next(iter(env.expert(split, limit=1, max_length=30)))
        yield env, traj
    finally:
        env.close()


def same(a: Observation, b: Observation) -> bool:
    """Equal, but for the order of like-named objects in a ScienceWorld room listing (base.alike)."""
    return alike(a.text, b.text) and dataclasses.replace(a, text="") == dataclasses.replace(b, text="")


def play_live(env, episode: str, traj):
    """The expert played live through reset/step: each state's observation and admissible actions."""
    obs = [env.reset(episode)]
    admissible = [env.admissible()]
    for step in traj.steps:
        obs.append(env.step(step.action))
        admissible.append(env.admissible())
    return obs, admissible


@pytest.mark.parametrize("caching", [True, False], ids=["cached", "uncached"])
def test_restored_state_equals_the_live_one(env_and_expert, caching):
    env, traj = env_and_expert
    env.caching = caching
    live, admissible = play_live(env, env._episode_of(traj), traj)
    n = len(traj.steps)
    assert live[-1].won and n >= 3

    # The expert's action at every state, in order: with the cursor one replay in all, without it
    # a reload and a replay of each prefix. Each state and the next one equal the live ones, and
    # the adapter is left where live play was (admissible() there too).
    before = copy.copy(env.replay_stats)
    for i, step in enumerate(traj.steps):
        b = env.branch(traj, i, step.action)
        assert same(b.state, live[i]), i
        assert same(b.next, live[i + 1]), i
        assert b.score_change == live[i + 1].score - live[i].score
        assert env.admissible() == admissible[i + 1], i
    stats = env.replay_stats
    if caching:  # live play left the simulator at the end: one reload for state 0, then forward
        assert (stats.resets - before.resets, stats.steps - before.steps) == (1, n)
    else:
        assert (stats.resets - before.resets, stats.steps - before.steps) == (n, n * (n + 1) // 2)

    # An alternative at each state, latest first: each restore starts from a reload (the last
    # alternative left the simulator off the expert's path) and still sees the live state.
    for i in reversed(range(n)):
        alternative = next(a for a in admissible[i] if a != traj.steps[i].action)
        b = env.branch(traj, i, alternative)
        assert same(b.state, live[i]), i
        hits = env.replay_stats.hits
        again = env.branch(traj, i, alternative)  # deterministic, and answered by the LRU when caching
        assert same(again.state, b.state) and same(again.next, b.next)
        assert env.replay_stats.hits == hits + caching


def test_a_trajectory_that_does_not_replay_is_refused(env_and_expert):
    env, traj = env_and_expert
    bad = copy.deepcopy(traj)
    bad.steps[2].observation = "something else"
    env.branch(bad, 1, bad.steps[1].action)  # the prefix before the difference still replays
    with pytest.raises(EnvError, match=r"does not replay in .*after 2 of its actions the observation differs"):
        env.branch(bad, 2, bad.steps[2].action)
    with pytest.raises(EnvError, match=r"step 99 is not a state of .*\(\d+ steps: 0-\d+\)"):
        env.branch(traj, 99, "look")
    other = copy.deepcopy(traj)
    other.env = "webshop"
    with pytest.raises(EnvError, match="is a webshop trajectory, not"):
        env.branch(other, 0, "look")
