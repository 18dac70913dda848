"""A model that echoes the action prompt's example ("<action>your action</action>", what SmolLM2 did
on ScienceWorld) names no action: collect counts it unparseable, on every environment, whether or
not the environment lists its actions."""

from __future__ import annotations

from act_trainer.data import State
from act_trainer.filters import filter_alternatives
from act_trainer.prompts import action_prompt, parse_action


def test_the_prompts_placeholder_is_no_action():
    prompt = action_prompt(State("e", 0, "Find a plant.", "You are in the kitchen."))[0]["content"]
    assert "<action>your action</action>" in prompt  # what the model may echo
    for echoed in ("<action>your action</action>", "<action>Your_action</action>", "Action: your action",
                   "<action> Your action. </action>"):
        assert parse_action(echoed) is None, echoed
    assert parse_action("<action>take your action figure</action>") == "take your action figure"
    assert parse_action("<think>x</think><action>open door to greenhouse</action>") == "open door to greenhouse"


def test_echoed_placeholders_are_dropped_where_no_list_exists():
    samples = ["<action>your action</action>", "<action>Your_action</action>", "<action>go to kitchen</action>"]
    kept, report = filter_alternatives("open door", samples, admissible=None, max_alternatives=3)
    assert kept == ["go to kitchen"] and report.removed["unparseable"] == 2
