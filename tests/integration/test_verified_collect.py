"""collect with stages.collect.verifyAlternatives on: alternatives are taken in the real environment
from their restored expert state and dropped when they do as well as the expert's action.

Two levels. The stage program (`act-trainer collect`, the tiny model, real ScienceWorld, file://
storage) checks the wiring: the filter report counts the rule, the metrics give the cost, and
every kept alternative really does worse than the expert's action. The tiny model's random samples
are never as good as the expert's, so the rule's dropping side is tested on contrast_pairs itself
with a scripted policy that proposes plausible actions (like-verbed admissible ones, those of the
episode's other steps; on ScienceWorld some do better than the expert, e.g. walking on where the
expert opens a door that is already open) on ScienceWorld and ALFWorld.
"""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from act_operator.local import stage_command
from act_trainer import data, store
from act_trainer.config import CollectConfig, EnvironmentConfig, ExpertSource, JobRef
from act_trainer.envs import make_env
from act_trainer.envs.base import Branch
from act_trainer.stages.collect import Verifier, contrast_pairs

pytestmark = pytest.mark.integration

SCIENCEWORLD = EnvironmentConfig(name="scienceworld", tasks=["find-living-thing"], max_steps=50, history=2)


def does_worse(expert: Branch, alternative: Branch) -> bool:
    """The alternative loses to the expert's action by the environment's own measure, written out."""
    exp, alt = expert.next, alternative.next
    if alt.won:
        return False
    if expert.score_change > 0:
        return alternative.score_change < expert.score_change
    return alternative.score_change <= expert.score_change and (
        sorted(alt.text.splitlines()) != sorted(exp.text.splitlines()) or alt.score != exp.score
        or (alt.admissible is not None and exp.admissible is not None and sorted(alt.admissible) != sorted(exp.admissible)))


def assert_kept_do_worse(env_cfg: EnvironmentConfig, trajs: list[data.Trajectory], pairs: list[dict]) -> None:
    """Every kept pair's alternative, branched again in a fresh, uncached adapter, does worse."""
    by_id = {t.episode_id: t for t in trajs}
    env = make_env(env_cfg)
    env.caching = False
    try:
        for p in pairs:
            traj = by_id[p["episode_id"]]
            step = int(p["step"])
            assert traj.steps[step].action == p["expert_action"]
            expert, alt = env.branch(traj, step, p["expert_action"]), env.branch(traj, step, p["alternative"])
            assert does_worse(expert, alt), (p["episode_id"], step, p["alternative"], alt.next)
    finally:
        env.close()


def run_collect(cfg: CollectConfig, tmp_path) -> tuple[subprocess.CompletedProcess, dict]:
    """The stage program as a pod runs it; its termination report."""
    config = tmp_path / "collect.json"
    config.write_text(cfg.model_dump_json())
    result = tmp_path / "collect.result"
    proc = subprocess.run(stage_command(cfg, config), env={**os.environ, "ACT_TERMINATION_LOG": str(result)},
                          capture_output=True, text=True, timeout=900)
    return proc, json.loads(result.read_text()) if result.exists() else {}


def test_collect_stage_with_verified_alternatives(tmp_path):
    out = f"file://{tmp_path}/pairs"
    cfg = CollectConfig(job=JobRef(name="itest", uid="u1"), output=out, model="tiny://qwen3-tiny", env=SCIENCEWORLD,
                        expert=ExpertSource(split="train", episodes=2, max_length=12), samples=4, max_alternatives=2,
                        heldout_fraction=0.0, max_new_tokens=10, verify_alternatives=True,
                        filter_inadmissible=False)  # a random model's samples are no ScienceWorld actions
    proc, result = run_collect(cfg, tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    report = json.loads(store.read_bytes(f"{out}/filter_report.json"))
    assert {"as_good_as_expert", "unverifiable"} <= set(report["removed"])
    assert report["kept"] + sum(report["removed"].values()) == report["sampled"]
    metrics = result["metrics"]
    assert metrics["removed_as_good_as_expert"] == report["removed"]["as_good_as_expert"]
    # every kept alternative (and any dropped as as good) was taken in the environment
    assert metrics["verified"] == report["kept"] + report["removed"]["as_good_as_expert"] > 0
    assert metrics["verify_seconds_per_alternative"] > 0

    trajs = data.loads_trajectories(store.read_bytes(f"{out}/expert.jsonl"))
    pairs = data.read_parquet(store.read_bytes(f"{out}/pairs/train.parquet"))
    assert len(pairs) == report["kept"] > 0
    assert_kept_do_worse(SCIENCEWORLD, trajs, pairs)


def test_an_environment_that_cannot_branch_is_refused_before_sampling(tmp_path):
    cfg = CollectConfig(job=JobRef(name="itest", uid="u1"), output=f"file://{tmp_path}/pairs",
                        model="tiny://qwen3-tiny", env=EnvironmentConfig(name="webshop", url="http://127.0.0.1:9"),
                        verify_alternatives=True)
    proc, result = run_collect(cfg, tmp_path)
    assert proc.returncode == 2 and result["permanent"] is True
    assert "stages.collect.verifyAlternatives: WebShop cannot restore expert states" in result["error"]


class Proposals:
    """A scripted policy: at each state, an action no environment knows, then the admissible actions
    with the expert's verb (where the state lists them: another object to take, another place to go),
    then the actions of the trajectory's other steps, nearest first. The engines' interface."""

    name = "proposals"

    def __init__(self, trajs: list[data.Trajectory], history: int):
        self.queue = []
        for t in trajs:
            for state, expert in data.states(t, history):
                verb = expert.split()[0]
                alike = [a for a in state.admissible or [] if a.split()[0] == verb]
                others = [s.action for s in t.steps[state.step + 1:] + t.steps[:state.step][::-1]]
                self.queue.append(list(dict.fromkeys(a for a in ["fly to the moon", *alike, *others] if a != expert)))

    def generate(self, prompts, n, **_):
        batch, self.queue = self.queue[:len(prompts)], self.queue[len(prompts):]
        return [[f"<action>{a}</action>" for a in (actions * n)[:n]] for actions in batch]


@pytest.mark.parametrize("env_id", ["scienceworld", "alfworld"])
def test_verification_drops_what_does_as_well_as_the_expert(env_id, request):
    env_cfg = SCIENCEWORLD if env_id == "scienceworld" else EnvironmentConfig(
        name="alfworld", data_dir=str(request.getfixturevalue("alfworld_data")), history=2)
    split = "train" if env_id == "scienceworld" else "valid_seen"
    cfg = CollectConfig(job=JobRef(name="itest", uid="u1"), output="file:///unused", model="tiny://qwen3-tiny",
                        env=env_cfg, samples=4, max_alternatives=2, batch_size=4, verify_alternatives=True)
    env = make_env(env_cfg)
    try:
        trajs = list(env.expert(split, limit=1, max_length=12))
        assert trajs
        policy = Proposals(trajs, env_cfg.history)
        states = len(policy.queue)
        verifier = Verifier(env)
        rows, report = contrast_pairs(cfg, policy, trajs, verifier=verifier)
    finally:
        env.close()
    assert report.sampled == states * cfg.samples and report.removed["unverifiable"] == 0
    if env_id == "scienceworld":  # e.g. walking on where the expert opens a door that is already open
        assert report.removed["as_good_as_expert"] > 0
    # ALFWorld scores only the win, so an alternative is as good only where it wins too or changes the
    # same (no such step in these games): the count is whatever the environment says, kept do worse
    assert report.kept == len(rows) > 0
    assert report.kept + sum(report.removed.values()) == report.sampled
    assert verifier.alternatives == report.kept + report.removed["as_good_as_expert"]
    if env_id == "scienceworld":  # no admissible list: the unknown action is taken, changes nothing, is kept
        assert any(r["alternative"] == "fly to the moon" for r in rows)
    assert_kept_do_worse(env_cfg, trajs, rows)

