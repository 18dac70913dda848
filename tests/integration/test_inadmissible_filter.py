"""The inadmissible rule runs on every environment that lists actions: an alternative that is no
action there ("Tell the truth", what SmolLM2 proposed on ScienceWorld; the prompt's own
"<action>your action</action>" echoed) is dropped, an admissible one is kept.

ALFWorld and TextWorldExpress record the admissible actions with every expert step; ScienceWorld
lists them only when asked, so collect asks the environment at each restored state (ActionLister).
Real environments, a scripted policy (the candidates are injected), collect's own contrast_pairs.
"""

from __future__ import annotations

import json
import os
import subprocess

import pytest
from env_fixtures import needs_java

from act_operator.local import stage_command
from act_trainer import data
from act_trainer.config import CollectConfig, EnvironmentConfig, ExpertSource, JobRef
from act_trainer.envs import make_env
from act_trainer.stages.collect import ActionLister, contrast_pairs

pytestmark = pytest.mark.integration

NOT_ACTIONS = ["Tell the truth", "your action", "Your_action"]


class Injected:
    """A policy that proposes, at each state, the non-actions and then one admissible action other
    than the expert's (from the environment's own list at that state)."""

    name = "injected"

    def __init__(self, admissible_actions: list[tuple[str, list[str]]]):
        self.queue = [[*NOT_ACTIONS, next(a for a in adm if a != expert)] for expert, adm in admissible_actions]

    def generate(self, prompts, n, **_):
        batch, self.queue = self.queue[:len(prompts)], self.queue[len(prompts):]
        return [[f"<think>ok</think><action>{a}</action>" for a in actions][:n] for actions in batch]


def configs(request) -> dict[str, tuple[EnvironmentConfig, str]]:
    return {
        "scienceworld": (EnvironmentConfig(name="scienceworld", tasks=["find-living-thing"], history=2), "train"),
        "textworld-express": (EnvironmentConfig(name="textworld-express", game="twc",
                                                game_params="numLocations=1,numItemsToPutAway=2"), "train"),
        "alfworld": (EnvironmentConfig(name="alfworld", data_dir=str(request.getfixturevalue("alfworld_data"))),
                     "valid_seen"),
    }


@needs_java
@pytest.mark.parametrize("env_id", ["scienceworld", "textworld-express", "alfworld"])
def test_a_non_action_alternative_is_filtered_on_each_environment_that_lists_actions(env_id, request):
    env_cfg, split = configs(request)[env_id]
    cfg = CollectConfig(job=JobRef(name="itest", uid="u1"), output="file:///unused", model="tiny://qwen3-tiny",
                        env=env_cfg, samples=4, max_alternatives=4, batch_size=4)
    env = make_env(env_cfg)
    try:
        trajs = list(env.expert(split, limit=1, max_length=12))
        assert trajs
        steps = [s for t in trajs for s in t.steps]
        lister = ActionLister(env) if ActionLister.needed(cfg, trajs) else None
        # ScienceWorld's expert steps record no list (its enumeration costs 10-50 ms a state): the
        # environment is asked; the others record one with every step and need no asking
        assert (lister is not None) == (env_id == "scienceworld")
        assert all((s.admissible is None) == (env_id == "scienceworld") for s in steps)
        lists = [env.admissible_at(t, i) for t in trajs for i in range(len(t.steps))]
        assert all(adm for adm in lists)
        policy = Injected([(s.action, adm) for s, adm in zip(steps, lists, strict=True)])
        rows, report = contrast_pairs(cfg, policy, trajs, lister=lister)
    finally:
        env.close()
    assert report.sampled == len(steps) * cfg.samples
    # the echoed placeholder names no action at all; "Tell the truth" is no action of the environment
    assert report.removed["unparseable"] == 2 * len(steps) and report.removed["inadmissible"] == len(steps)
    assert not {r["alternative"] for r in rows} & set(NOT_ACTIONS)
    assert report.kept == len(rows) == len(steps)  # the admissible alternative of every state stays
    if lister:
        assert lister.listed == len(steps) and lister.unlisted == 0


@needs_java
def test_a_policy_that_writes_no_listed_action_is_told_to_warm_up(tmp_path):
    """The stage program on ScienceWorld with a random model (no warm-up): every sample is dropped as no
    action there, and the error names the fix."""
    env_cfg = EnvironmentConfig(name="scienceworld", tasks=["find-living-thing"], history=2)
    cfg = CollectConfig(job=JobRef(name="itest", uid="u1"), output=f"file://{tmp_path}/pairs",
                        model="tiny://qwen3-tiny", env=env_cfg, expert=ExpertSource(split="train", episodes=1,
                        max_length=8), samples=2, max_alternatives=2, max_new_tokens=8,
                        heldout_fraction=0.0)
    config = tmp_path / "collect.json"
    config.write_text(cfg.model_dump_json())
    result = tmp_path / "collect.result"
    proc = subprocess.run(stage_command(cfg, config), env={**os.environ, "ACT_TERMINATION_LOG": str(result)},
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 2, proc.stderr[-3000:]
    error = json.loads(result.read_text())["error"]
    assert "no contrast pairs" in error and "'inadmissible': " in error and "'inadmissible': 0" not in error
    assert "enable stages.warmup" in error and "filterInadmissible off" in error


@needs_java
def test_states_that_do_not_replay_get_no_list_and_are_counted(caplog):
    """A trajectory whose step 2 was recorded elsewhere (its observation differs): states 0-1 are listed,
    the later ones cannot be restored, so no list (the rule cannot run there), counted, warned once."""
    env_cfg = EnvironmentConfig(name="scienceworld", tasks=["find-living-thing"], history=2)
    env = make_env(env_cfg)
    try:
        (traj,) = env.expert("train", 1, 12)
        traj.steps[2].observation += "\nA recorded line this simulator never shows."
        lister = ActionLister(env)
        batch = [(traj, state, expert) for state, expert in data.states(traj, 2)]
        with caplog.at_level("WARNING", logger="act_trainer.collect"):
            lists = lister.lists(batch)
    finally:
        env.close()
    assert lister.listed == 2 and lister.unlisted == len(traj.steps) - 2
    assert sorted(lists) == [(traj.episode_id, 0), (traj.episode_id, 1)] and all(lists.values())
    assert [r.getMessage() for r in caplog.records if "no admissible actions" in r.getMessage()] == [
        next(r.getMessage() for r in caplog.records if "from step 2 on" in r.getMessage())]
