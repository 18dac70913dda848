"""Every environment adapter against the protocol (act_trainer.envs.base.Environment), by behaviour.

One module-scoped adapter per environment, on short tasks: ScienceWorld and TextWorldExpress
with their real simulators, ALFWorld with real game files (tests/alfworld_games.py), WebShop
over HTTP against the stand-in server (tests/webshop_standin.py) with demonstrations recorded
on it in WebShop's format. What only one environment does is tested in its own file.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass

import pytest
import webshop_standin

from act_trainer.config import EnvironmentConfig
from act_trainer.data import Trajectory, dumps_jsonl, loads_trajectories
from act_trainer.envs import REGISTRY, EnvError, Observation, make_env

pytestmark = pytest.mark.integration

MAX_STEPS = 30     # the agent's step limit
MAX_LENGTH = 30    # the longest expert trajectory asked for (<= MAX_STEPS: replays fit the limit)
EXPERTS = 2        # expert trajectories asked for
UNKNOWN_ACTIONS = ["fly to the moon", "", "x" * 2000, "héllo ☃", "look around\ninventory"]


@dataclass(frozen=True)
class Case:
    id: str
    config: Callable[[pytest.FixtureRequest], EnvironmentConfig]
    split: str                                   # where episodes and experts are taken from
    episode_of: Callable[[Trajectory], str]      # the episode id an expert trajectory was recorded in
    noop: str                                    # an action that changes nothing (for the step limit)
    unknown_text: str | None                     # what an unknown action answers; None: the same text again
    admissible: str                              # "every step": observations carry them; "asked": admissible()
    #                                              lists them; "not on a search page": WebShop's search box
    bad_episode: str                             # an id that is not an episode
    java: bool = False


def _webshop(request) -> EnvironmentConfig:
    url = request.getfixturevalue("webshop_server")
    recorder = make_env(EnvironmentConfig(name="webshop", url=url, max_steps=MAX_STEPS))
    try:
        demos = webshop_standin.write_demonstrations(recorder, request.getfixturevalue("tmp_path_factory").mktemp("ws"))
    finally:
        recorder.close()
    return EnvironmentConfig(name="webshop", url=url, data_dir=str(demos), max_steps=MAX_STEPS)


CASES = [
    Case("scienceworld", split="train", noop="look around", admissible="asked",
         config=lambda r: EnvironmentConfig(name="scienceworld", max_steps=MAX_STEPS,
                                            tasks=["find-non-living-thing", "lifespan-longest-lived"]),
         episode_of=lambda t: f"{t.task}:{t.variation}", unknown_text="No known action matches that input.",
         bad_episode="find-non-living-thing", java=True),
    Case("textworld-express", split="train", noop="inventory", admissible="every step",
         config=lambda r: EnvironmentConfig(name="textworld-express", game="twc", max_steps=MAX_STEPS,
                                            game_params="numLocations=1,numItemsToPutAway=2"),
         episode_of=lambda t: f"{t.split}:{t.variation}", unknown_text="Unknown action: I'm not sure what you mean.",
         bad_episode="valid:3", java=True),
    Case("alfworld", split="valid_seen", noop="look", admissible="every step",
         config=lambda r: EnvironmentConfig(name="alfworld", max_steps=MAX_STEPS,
                                            data_dir=str(r.getfixturevalue("alfworld_data"))),
         episode_of=lambda t: t.variation, unknown_text="Nothing happens.",
         bad_episode="pick_and_place_simple-Apple-None-Fridge-1"),
    Case("webshop", split="test", noop="search[hat]", admissible="not on a search page", config=_webshop,
         episode_of=lambda t: f"fixed_{t.variation}", unknown_text=None, bad_episode="goal:3"),
]


def test_every_adapter_has_a_case():
    assert sorted(c.id for c in CASES) == sorted(REGISTRY)


@pytest.fixture(scope="module", params=CASES, ids=[c.id for c in CASES])
def case(request) -> Case:
    c = request.param
    for module in REGISTRY[c.id].modules:  # the packages the environment needs
        pytest.importorskip(module)
    if c.java and shutil.which("java") is None:
        pytest.skip(f"{c.id} needs a Java runtime")
    return c


@pytest.fixture(scope="module")
def env(case, request):
    e = make_env(case.config(request))
    yield e
    e.close()


@pytest.fixture(scope="module")
def expert(case, env) -> list[Trajectory]:
    return list(env.expert(case.split, limit=EXPERTS, max_length=MAX_LENGTH))


def first_episode(case, env) -> str:
    return env.episodes(case.split)[0]


def assert_observation(obs, goal: str | None = None) -> None:
    assert isinstance(obs, Observation)
    assert isinstance(obs.text, str) and isinstance(obs.goal, str) and obs.goal
    assert isinstance(obs.done, bool) and isinstance(obs.won, bool) and isinstance(obs.score, float)
    assert obs.admissible is None or all(isinstance(a, str) and a for a in obs.admissible)
    if goal is not None:
        assert obs.goal == goal  # the same goal at every step


def test_splits_and_episodes(case, env):
    splits = env.splits()
    assert case.split in splits and all(isinstance(s, str) and s for s in splits)
    ids = env.episodes(case.split)
    assert ids and len(ids) == len(set(ids)) and all(isinstance(i, str) and i for i in ids)
    assert env.episodes(case.split) == ids  # stable
    for episode in ids[:3]:
        task_type = env.task_type(episode)
        assert task_type is None or (isinstance(task_type, str) and task_type)
    with pytest.raises(EnvError, match=rf"unknown split 'nope'; .* has {', '.join(splits)}$"):
        env.episodes("nope")


def test_reset_gives_the_goal(case, env):
    obs = env.reset(first_episode(case, env))
    assert_observation(obs)
    assert obs.text and not obs.done and not obs.won
    asked = env.admissible()
    if case.admissible == "every step":
        assert obs.admissible and asked == obs.admissible
    elif case.admissible == "asked":
        assert obs.admissible is None and asked and len(asked) == len(set(asked))
    else:  # a search box takes any text: nothing to list
        assert obs.admissible is None and asked is None


def test_unknown_actions_change_nothing(case, env):
    start = env.reset(first_episode(case, env))
    for action in UNKNOWN_ACTIONS:
        obs = env.step(action)
        assert_observation(obs, start.goal)
        assert obs.text == (case.unknown_text if case.unknown_text is not None else start.text)
        assert not obs.done and not obs.won and obs.score == start.score


def test_step_limit_ends_the_episode(case, env):
    env.reset(first_episode(case, env))
    done = [env.step(case.noop).done for _ in range(MAX_STEPS)]
    assert done == [False] * (MAX_STEPS - 1) + [True]


def test_bad_episode_leaves_no_episode(case, env):
    env.reset(first_episode(case, env))
    with pytest.raises(EnvError):
        env.reset(case.bad_episode)
    with pytest.raises(EnvError, match="before reset"):
        env.step(case.noop)
    assert env.admissible() is None


def test_step_before_reset(case, request):
    e = make_env(case.config(request))
    with pytest.raises(EnvError, match="before reset"):
        e.step(case.noop)
    assert e.admissible() is None
    e.close()
    e.close()


def test_expert_replays_to_a_win(case, env, expert):
    assert len(expert) == EXPERTS
    for traj in expert:
        assert traj.env == env.name and traj.split == case.split and traj.success
        assert 1 <= len(traj.steps) <= MAX_LENGTH and traj.goal
        assert all(s.action and (s.admissible is None or s.action in s.admissible) for s in traj.steps)
        episode = case.episode_of(traj)
        assert env.task_type(episode) in (None, traj.task)  # a type is the task its experts record

        # The recorded actions win again through the agent-facing reset/step.
        obs = env.reset(episode)
        assert_observation(obs, traj.goal)
        for i, step in enumerate(traj.steps):
            assert not obs.done
            assert obs.text == step.observation, (episode, i)
            assert obs.admissible == step.admissible, (episode, i)
            if obs.admissible is not None:
                assert env.admissible() == obs.admissible
            obs = env.step(step.action)
            assert_observation(obs, traj.goal)
        assert obs.done and obs.won and obs.score == 100.0


def test_expert_round_trips_through_jsonl(expert):
    back = loads_trajectories(dumps_jsonl(t.to_dict() for t in expert))
    assert [t.to_dict() for t in back] == [t.to_dict() for t in expert]


def test_close_is_idempotent_and_the_adapter_starts_again(case, env):
    env.close()
    env.close()
    with pytest.raises(EnvError, match="before reset"):
        env.step(case.noop)
    assert_observation(env.reset(first_episode(case, env)))
