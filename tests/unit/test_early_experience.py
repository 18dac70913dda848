"""The Early Experience baselines' data (stages/early_experience.py) and the collect side that
records outcomes (stages/collect.Verifier without dropping). Pure: a scripted environment."""

from __future__ import annotations

from act_trainer import data
from act_trainer.envs.base import Branch, Observation
from act_trainer.prompts import parse_action
from act_trainer.stages import early_experience as ee
from act_trainer.stages.collect import Verifier

GOAL = "put a mug on the desk"


def pair(step: int, alternative: str, alt_next: str | None = "You see a drawer.", expert_next: str | None = "Got it."):
    state = data.State("ep1", step, GOAL, f"obs {step}", [("look", "a room")], None)
    return data.pair_record(state, "take mug", alternative, expert_next, alt_next)


def test_world_model_rows_predict_every_alternative_and_the_expert_once_per_state():
    pairs = [pair(0, "open drawer"), pair(0, "look"), pair(1, "sing", alt_next="Nothing happens.")]
    rows = ee.world_model_rows(pairs, history=1)
    assert len(rows) == 2 + 1 + 2  # state 0: expert + 2 alternatives; state 1: expert + 1
    asked = [r["prompt"][0]["content"].split("You take the action: ")[1].splitlines()[0] for r in rows]
    assert asked == ["take mug", "open drawer", "look", "take mug", "sing"]
    answers = [r["completion"][0]["content"] for r in rows]
    assert answers[0] == "<observation>Got it.</observation>"
    assert answers[-1] == "<observation>Nothing happens.</observation>"
    assert all(r["completion"][0]["role"] == "assistant" for r in rows)


def test_pairs_without_outcomes_are_left_out():
    pairs = [pair(0, "open drawer"), pair(1, "look", alt_next=None), pair(2, "sing", expert_next=None)]
    assert [p["step"] for p in ee.with_outcomes(pairs)] == [0]


def test_reflection_prompts_show_both_outcomes_and_the_rows_teach_rationale_then_action():
    pairs = [pair(0, "open drawer", alt_next="The drawer is empty.")]
    prompt = ee.reflection_prompts(pairs, history=1)[0][0]["content"]
    assert "Action A: take mug\nWhat followed A: Got it." in prompt
    assert "Action B: open drawer\nWhat followed B: The drawer is empty." in prompt
    assert ee.rationale("<think> the mug is the goal </think> trailing") == "the mug is the goal"
    assert ee.rationale("<think>cut off by the token budget") == "cut off by the token budget"
    row = ee.reflection_rows(pairs, ["the mug is the goal"], history=1)[0]
    target = row["completion"][0]["content"]
    assert target == "<think>the mug is the goal</think><action>take mug</action>"
    assert parse_action(target) == "take mug"  # the reasoning is never read as the action
    assert "What is the best next action?" in row["prompt"][0]["content"]  # trained on the action prompt


class Scripted:
    """An environment whose branches are given: (step, action) -> next observation text; None diverges."""

    def __init__(self, outcomes):
        self.outcomes = outcomes

    def branch(self, traj, step, action):
        from act_trainer.envs.branching import ReplayDiverged

        text = self.outcomes[(step, action)]
        if text is None:
            raise ReplayDiverged("diverged")
        state = Observation("here", GOAL)
        return Branch(state=state, next=Observation(text, GOAL))


def test_recording_outcomes_keeps_every_alternative_and_remembers_what_followed():
    traj = data.Trajectory("scripted", "mug", GOAL, [])
    ep = traj.episode_id
    env = Scripted({(0, "take mug"): "Got it.", (0, "look"): "Got it.", (0, "sing"): None, (1, "take mug"): None})
    rec = Verifier(env, drop=False)
    expert = rec.expert_outcomes([(traj, data.State(ep, 0, GOAL, "o", [], None), "take mug"),
                                  (traj, data.State(ep, 1, GOAL, "o", [], None), "take mug")])
    assert expert[(ep, 1)] is None  # diverged: unverifiable
    check = rec.verify(traj, 0, expert[(ep, 0)])
    assert check("look") is None  # as good as the expert (same next state), but recording never drops
    assert check("sing") is None  # could not be taken: kept, without an outcome
    assert rec.outcomes == {(ep, 0, "look"): "Got it."}
    assert rec.verify(traj, 1, None)("look") is None
    verifier = Verifier(env)  # verifying drops both
    found = verifier.expert_outcomes([(traj, data.State(ep, 0, GOAL, "o", [], None), "take mug")])
    assert verifier.verify(traj, 0, found[(ep, 0)])("look") == "as_good_as_expert"


def test_a_gangs_ranks_share_the_rationales_to_write_between_them_whole_and_in_order():
    for n, world in [(10, 1), (10, 2), (7, 3), (2, 4)]:
        shares = [ee.share(n, rank, world) for rank in range(world)]
        assert [i for s in shares for i in s] == list(range(n))  # each pair once, in order
        assert max(map(len, shares)) - min(map(len, shares)) <= 1
    assert ee.gather(["a", "b"], 1) == ["a", "b"]  # one process: nothing to gather
