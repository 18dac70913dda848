"""Verified alternatives: the pure decision (filters.as_good_as_expert) on the outcomes of the
expert's action and an alternative from the same state, and its place among the filter rules."""

from __future__ import annotations

import pytest

from act_trainer.envs.base import Branch, Observation
from act_trainer.filters import as_good_as_expert, filter_alternatives

GOAL = "Your task is to: put a mug on the desk."


def outcome(text: str, score: float = 0.0, *, before: float = 0.0, won: bool = False, done: bool | None = None,
            admissible: list[str] | None = None) -> Branch:
    state = Observation(text="You are in a room.", goal=GOAL, score=before)
    nxt = Observation(text=text, goal=GOAL, done=won if done is None else done, won=won, score=score,
                      admissible=admissible)
    return Branch(state=state, next=nxt)


EXPERT = outcome("You pick up the mug 1.", admissible=["go to desk 1", "look"])


@pytest.mark.parametrize(("expert", "alternative", "why"), [
    # worse: a different next state, no score either way (the common case: kept)
    (EXPERT, outcome("You open the drawer 1. It is empty.", admissible=["close drawer 1"]), None),
    # worse: the expert gains score, the alternative gains less, nothing, or fails the task
    (outcome("You focus on the apple.", 25.0), outcome("You focus on the chair.", 10.0), None),
    (outcome("You focus on the apple.", 25.0), outcome("You look around.", 0.0), None),
    (outcome("You focus on the apple.", 25.0), outcome("You focus on the chair.", -100.0, done=True), None),
    # as good: it wins; it gains more, or as much as a gaining expert action
    (EXPERT, outcome("You put the mug 1 on the desk 1.", 100.0, won=True), "wins"),
    (EXPERT, outcome("The stove turns on.", 10.0), "gains more score"),
    (outcome("You focus on the apple.", 25.0), outcome("You focus on the red apple.", 25.0), "gains as much score"),
    (outcome("a", 30.0, before=20.0), outcome("b", 15.0, before=5.0), "gains as much score"),  # changes compare
    # as good: the same next observation (no score either way)
    (EXPERT, outcome("You pick up the mug 1.", admissible=["go to desk 1", "look"]), "same next state"),
    (outcome("Nothing happens."), outcome("Nothing happens."), "same next state"),  # no admissible lists
    # the same text but another state (admissible actions differ) or another score: worse
    (EXPERT, outcome("You pick up the mug 1.", admissible=["go to desk 2"]), None),
    (outcome("You see a door.", 5.0, before=5.0), outcome("You see a door.", 0.0, before=5.0), None),
])
def test_the_decision(expert, alternative, why):
    assert as_good_as_expert(expert, alternative) == why


def test_verification_runs_last_and_a_later_candidate_takes_the_place():
    asked = []

    def verify(action: str) -> str | None:
        asked.append(action)
        return {"take mug": "as_good_as_expert", "sing": "unverifiable"}.get(action)

    samples = ["<action>take mug", "<action>look", "<action>take mug", "<action>sing", "<action>open drawer",
               "<action>wait", "???"]
    kept, report = filter_alternatives("go to desk", samples, None, max_alternatives=2, verify=verify)
    # the verified-equal candidate is dropped and counted; its repeat is a duplicate (not run again);
    # verification stops once M are kept (over_limit is not run in the environment)
    assert kept == ["look", "open drawer"]
    assert asked == ["take mug", "look", "sing", "open drawer"]
    assert report.removed == {"unparseable": 1, "same_as_expert": 0, "inadmissible": 0, "duplicate": 1,
                              "over_limit": 1, "as_good_as_expert": 1, "unverifiable": 1}
    assert report.kept + sum(report.removed.values()) == report.sampled == len(samples)
