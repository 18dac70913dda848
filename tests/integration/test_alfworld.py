"""The ALFWorld adapter against the real engine (alfworld's TextWorld PddlEnv + fast-downward)
and real game files: a few games per split, unpacked from ../shared/data/alfworld's archive
into a temporary directory (the shared copy is never written). What only ALFWorld does: the
protocol every adapter keeps is checked in test_env_protocol.py.

The games are fixed: two short ones of different task types per split, and in valid_unseen
a third on which ALFWorld's handcoded expert does not win within 40 steps, so the file runs
in about a minute on 2 cores.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

pytest.importorskip("alfworld")

from alfworld_games import GAMES, HANDCODED_LOSES  # noqa: E402  (tests/ is on sys.path)

from act_trainer.config import EnvironmentConfig
from act_trainer.envs import EnvError, make_env
from act_trainer.envs.alfworld_data import TASK_TYPES, derive_traj_data

pytestmark = pytest.mark.integration

EVAL_SPLITS = ("train", "valid_seen", "valid_unseen")
MAX_STEPS = 30


def config(data_dir, **kw) -> EnvironmentConfig:
    return EnvironmentConfig(**{"name": "alfworld", "data_dir": str(data_dir), "max_steps": MAX_STEPS, **kw})


@pytest.fixture(scope="module")
def env(alfworld_data):
    e = make_env(config(alfworld_data))
    yield e
    e.close()


@pytest.fixture(scope="module")
def walkthroughs(env):
    return {s: list(env.expert(s, limit=10, max_length=30)) for s in EVAL_SPLITS}


def test_splits_and_default_expert(env):
    assert env.splits() == ["train", "valid_seen", "valid_unseen", "valid_train"]
    assert env.expert_type == "walkthrough"  # the default for ALFWorld


def test_episodes_per_split(env):
    for split in EVAL_SPLITS:
        ids = env.episodes(split)
        # Round-robin over task types in ALFWorld's order (types 1-6), each sorted.
        order = sorted(GAMES[split], key=lambda g: TASK_TYPES.index(g.split("-")[0]))
        assert ids == order
        assert env.episodes(split) == ids  # stable
        for ep in ids:
            assert env.task_type(ep) == ep.split("-")[0]
    assert env.episodes("valid_train") == []


def test_task_filter(alfworld_data):
    e = make_env(config(alfworld_data, tasks=["pick_heat_then_place_in_recep", "1"]))
    assert e.task_types == ["pick_heat_then_place_in_recep", "pick_and_place_simple"]
    assert e.episodes("train") == GAMES["train"][::-1]  # heat first: the configured order
    assert e.episodes("valid_seen") == []


def test_walkthroughs(env, walkthroughs):
    for split in EVAL_SPLITS:
        trajs = walkthroughs[split]
        assert sorted(t.variation for t in trajs) == sorted(GAMES[split])
        for traj in trajs:
            assert traj.env == "alfworld" and traj.split == split and traj.success and traj.score == 100.0
            assert traj.task == traj.variation.split("-")[0] in TASK_TYPES
            assert traj.goal.startswith("Your task is to: ")
            first = traj.steps[0].observation
            assert first.startswith("You are in the middle of a room.") and "Welcome" not in first
            assert traj.goal in first
            for step in traj.steps:
                assert step.admissible and step.action in step.admissible

            # ... and replay to a win through reset/step: test_env_protocol.py.


def test_handcoded_expert_wins(alfworld_data):
    before = sorted(p.relative_to(alfworld_data) for p in alfworld_data.rglob("*"))
    e = make_env(config(alfworld_data, expert_type="handcoded"))
    try:
        for split in EVAL_SPLITS:
            trajs = list(e.expert(split, limit=10, max_length=40))
            expected = [g for g in e.episodes(split) if g != HANDCODED_LOSES]
            assert [t.variation for t in trajs] == expected  # only winning games
            for t in trajs:
                assert t.success and t.split == split and t.task == t.variation.split("-")[0]
                assert t.steps[0].action == "look"  # the handcoded expert always looks first
                assert all(s.action in s.admissible for s in t.steps)
            # Seeded: the same trajectories again.
            assert [t.to_dict() for t in e.expert(split, limit=1, max_length=40)] == [trajs[0].to_dict()]
        assert e._traj_dir and (Path(e._traj_dir) / GAMES["train"][0] / "traj_data.json").is_file()
        traj_dir = e._traj_dir
    finally:
        e.close()
    assert not os.path.exists(traj_dir)
    # The data directory was not written: traj_data.json went to a temporary directory.
    assert sorted(p.relative_to(alfworld_data) for p in alfworld_data.rglob("*")) == before


def test_derived_traj_data():
    assert derive_traj_data("look_at_obj_in_light-AlarmClock-None-DeskLamp-323") == {
        "task_type": "look_at_obj_in_light",
        "pddl_params": {"object_target": "AlarmClock", "mrecep_target": "", "object_sliced": False,
                        "parent_target": "", "toggle_target": "DeskLamp"}}
    d = derive_traj_data("pick_cool_then_place_in_recep-Apple-None-CounterTop-14")["pddl_params"]
    assert d["parent_target"] == "CounterTop" and d["mrecep_target"] == "" and d["toggle_target"] == ""
    with pytest.raises(EnvError, match="not <task_type>"):
        derive_traj_data("made_up-thing")


def test_bad_episode_ids(env):
    with pytest.raises(EnvError, match="no game.tw-pddl for it"):
        env.reset("pick_and_place_simple-Apple-None-Fridge-1/trial_T20000101_000000_000000")
    with pytest.raises(EnvError, match="<task-folder>/<trial>"):
        env.reset("pick_and_place_simple-Apple-None-Fridge-1")
    with pytest.raises(EnvError, match="<task-folder>/<trial>"):
        env.reset("../valid_seen/x")
    with pytest.raises(EnvError, match="before reset"):
        env.step("look")  # a failed reset leaves no episode
    with pytest.raises(EnvError, match="task type"):
        env.task_type("nonsense")


def test_unknown_task_type_names_the_field(alfworld_data):
    with pytest.raises(EnvError, match=r"environment\.tasks.*'pick_and_eat'.*pick_two_obj_and_place"):
        make_env(config(alfworld_data, tasks=["pick_and_place_simple", "pick_and_eat"]))
    with pytest.raises(EnvError, match=r"'7'"):
        make_env(config(alfworld_data, tasks=["7"]))


def test_missing_data_dir_says_how_to_provide_it(monkeypatch, tmp_path, alfworld_data):
    monkeypatch.delenv("ALFWORLD_DATA", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # ALFWorld's default, ~/.cache/alfworld, holds nothing
    with pytest.raises(EnvError, match=r"environment\.dataDir: no ALFWorld games under .*/\.cache/alfworld "
                                       r"\(ALFWorld's default: neither environment\.dataDir nor ALFWORLD_DATA "
                                       r"is set.*tar -xJf json_2\.1\.1\.tar\.xz"):
        make_env(EnvironmentConfig(name="alfworld"))
    with pytest.raises(EnvError, match=r"no ALFWorld games under .*empty"):
        make_env(config(tmp_path / "empty"))
    (tmp_path / "json_2.1.1.tar.xz").write_bytes(b"")
    with pytest.raises(EnvError, match=r"\(environment\.dataDir\) holds json_2\.1\.1\.tar\.xz but no unpacked games; `tar -xJf"):
        make_env(config(tmp_path))
    # ALFWORLD_DATA is the fallback, and json_2.1.1/ itself is accepted too.
    monkeypatch.setenv("ALFWORLD_DATA", str(alfworld_data))
    assert make_env(EnvironmentConfig(name="alfworld")).root == alfworld_data / "json_2.1.1"
    assert make_env(config(alfworld_data / "json_2.1.1")).root == alfworld_data / "json_2.1.1"


def test_sys_argv_survives_fast_downward(env):
    argv = list(sys.argv)
    env.reset(GAMES["valid_unseen"][1])
    assert sys.argv == argv  # fast-downward's translator sets sys.argv; the adapter restores it


def test_long_walkthroughs_are_skipped(env):
    assert list(env.expert("valid_seen", limit=5, max_length=2)) == []


def test_episodes_played_at_once_from_threads_see_their_own_games(alfworld_data, env):
    """Eval plays its parallel episodes from a thread pool (stages/evaluate.play_many): TextWorld's
    parsers and the translation cache are process-wide, so its calls must not interleave."""
    from concurrent.futures import ThreadPoolExecutor

    def play(e, episode):  # a reset, then the first two admissible actions
        seen = [e.reset(episode).text]
        for _ in range(2):
            seen.append(e.step(sorted(e.admissible())[0]).text)
        return seen

    episodes = [ep for split in EVAL_SPLITS for ep in env.episodes(split)]
    expected = {ep: play(env, ep) for ep in episodes}
    envs = [make_env(config(alfworld_data)) for _ in episodes]
    try:
        for _ in range(2):  # a second round: every env loads another game than the one it holds
            with ThreadPoolExecutor(len(envs)) as pool:
                got = list(pool.map(lambda pair: play(*pair), zip(envs, episodes, strict=True)))
            assert got == [expected[ep] for ep in episodes]
            episodes = episodes[1:] + episodes[:1]
    finally:
        for e in envs:
            e.close()
