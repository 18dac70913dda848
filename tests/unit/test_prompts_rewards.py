"""Prompts, lenient parsing, rewards and the filter rules: pure functions."""

import pytest

from act_trainer.data import State
from act_trainer.filters import filter_alternatives
from act_trainer.prompts import (
    action_prompt,
    judgement_prompt,
    normalize_action,
    order_candidates,
    parse_action,
    parse_choice,
)
from act_trainer.rewards import action_match, action_reward, make_judgement_reward, token_f1

STATE = State("e/1", 0, "boil water", "You are in the kitchen.", [("look around", "A stove.")])


@pytest.mark.parametrize("text,choice", [
    ("<think>2 looks wrong</think><answer>1</answer>", 1),
    ("<answer> 2 </answer>", 2),
    ("reasoning...\nAnswer: 2", 2),
    ("<think>Answer: 1</think> Answer: Action 2", 2),  # reasoning is not read as the choice
    ("<answer>1</answer> then <answer>2</answer>", 2),  # the last choice counts
    ("I cannot decide", None),
    ("<answer>3</answer>", None),
])
def test_parse_choice(text, choice):
    assert parse_choice(text) == choice


@pytest.mark.parametrize("text,action", [
    ("<think>hmm</think><action>open door</action>", "open door"),
    ("<action>go to  kitchen", "go to kitchen"),  # prefilled, unclosed
    ("I think so.\nAction: pick up thermometer", "pick up thermometer"),
    ("<action>   </action>", None),
    ("no action here", None),
])
def test_parse_action(text, action):
    assert parse_action(text) == action


def test_order_is_seeded_and_balanced():
    orders = [order_candidates("exp", "alt", f"k{i}", seed=0)[2] for i in range(400)]
    assert orders == [order_candidates("exp", "alt", f"k{i}", seed=0)[2] for i in range(400)]
    assert 150 < orders.count(1) < 250
    first, second, idx = order_candidates("exp", "alt", "k", 0)
    assert (first, second)[idx - 1] == "exp"


def test_prompts_show_state_and_candidates():
    text = judgement_prompt(STATE, "open door", "eat stove")[0]["content"]
    assert "boil water" in text and "Action 1: open door" in text and "Action 2: eat stove" in text
    assert "> look around" in action_prompt(STATE)[0]["content"]


def test_judgement_reward():
    reward = make_judgement_reward(malformed_penalty=-0.5)
    completions = [[{"role": "assistant", "content": "<answer>1</answer>"}], "<answer>2</answer>", "??"]
    assert reward(completions, answer=[1, 1, 2]) == [1.0, 0.0, -0.5]


def test_action_reward():
    assert action_match("Open the door", "open the door") == 1.0
    assert 0 < action_match("open door", "open the door") < 0.5
    assert action_match(None, "x") == 0.0
    assert token_f1("a b", "c d") == 0.0
    assert action_reward(["<action>look around</action>", "junk"], expert_action=["look around", "x"]) == [1.0, 0.0]
    assert normalize_action("Go to: Kitchen!") == "go to kitchen"


def test_filter_rules_are_counted():
    samples = ["<action>open door", "<action>Open Door!", "<action>look", "<action>look", "???",
               "<action>fly away", "<action>eat"]
    kept, report = filter_alternatives("look", samples, admissible=["open door", "look", "eat", "wait"],
                                       max_alternatives=1)
    assert kept == ["open door"]
    assert report.removed == {"unparseable": 1, "same_as_expert": 2, "inadmissible": 1, "duplicate": 1,
                              "over_limit": 1, "as_good_as_expert": 0, "unverifiable": 0}
    assert report.sampled == 7 and report.kept == 1


def test_filter_without_admissible_list_keeps_any_parseable_action():
    kept, report = filter_alternatives("look", ["<action>fly", "<action>swim"], None, max_alternatives=4)
    assert kept == ["fly", "swim"] and report.removed["inadmissible"] == 0


def test_tiny_tokenizer_keeps_tags_when_special_tokens_are_skipped():
    """TRL decodes completions with skip_special_tokens=True: the answer tags must survive it."""
    from act_trainer.models import build_tokenizer

    tok = build_tokenizer(512)
    text = "<think>x</think><answer>1</answer> <action>open door</action>"
    ids = tok(text, add_special_tokens=False).input_ids
    assert tok.decode(ids, skip_special_tokens=True) == text
    assert tok.convert_ids_to_tokens(tok("<answer>", add_special_tokens=False).input_ids) == ["<answer>"]
    assert "<|im_end|>" not in tok.decode(ids + [tok.eos_token_id], skip_special_tokens=True)
