"""WebShop's human demonstrations as expert trajectories (act_trainer.envs.webshop_demos and the
adapter's expert()), without WebShop: tests/fixtures/webshop/il_trajs_finalized_images.jsonl is
written from the documented format of WebShop's human demonstration file.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from act_trainer.config import EnvironmentConfig
from act_trainer.data import dumps_jsonl, loads_trajectories
from act_trainer.envs import EnvError, make_env
from act_trainer.envs.webshop_demos import parse_demonstrations, rich_to_text

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "webshop"
G1 = "i need a long clip-in hair extension which is natural looking, and price lower than 40.00 dollars"


# --- demonstrations ------------------------------------------------------------------------

def demo_lines() -> list[str]:
    return (FIXTURES / "il_trajs_finalized_images.jsonl").read_text().splitlines()


def human_goals() -> list[str]:
    """human_goals.json as WebShop's baselines read it: processed instructions (lowercase, no
    quotes, no price clause), indexed by goal; test 0-499, dev 500-1499, train 1500-."""
    goals = [f"placeholder instruction {i}" for i in range(1602)]
    goals[12] = "i need a long clip-in hair extension which is natural looking"
    goals[700] = "i am looking for a gluten free, 100% vegan plant based protein shake that is soy-free"
    goals[1600] = "find me a black ergonomic office chair with lumbar support"
    goals[1601] = "i want a pack of 2 stainless steel water bottles"
    return goals


def test_rich_to_text():
    rich = ("You have clicked natural black.\nInstruction: \nbuy hair\n[button] Back to Search [button_]\n"
            "color\n  [clicked button] natural black [clicked button_]\n  [button] dark brown [button_]\n\n")
    assert rich_to_text(rich) == ("Instruction: [SEP] buy hair [SEP] Back to Search [SEP] color [SEP] natural black "
                                  "[SEP] dark brown")
    assert rich_to_text("WebShop [SEP] Instruction: [SEP] x [SEP] Search") == "WebShop [SEP] Instruction: [SEP] x [SEP] Search"


def test_parse_demonstrations():
    demos = parse_demonstrations(demo_lines(), human_goals())
    # Five records; the fourth never buys anything and is left out.
    assert [idx for idx, _ in demos] == [12, 700, 1600, None]
    (_, hair), (_, shake), (_, chair), (_, deo) = demos
    assert hair.goal == G1 and hair.variation == 12 and hair.env == "webshop" and hair.task == "webshop"
    assert [s.action for s in hair.steps] == ["search[long clip-in hair extension natural]", "click[b09qqldj93]",
                                              "click[natural black]", "click[16 inch]", "click[buy now]"]
    # Observations in the live adapter's "text" mode, the instruction included.
    assert hair.steps[0].observation == f"WebShop [SEP] Instruction: [SEP] {G1} [SEP] Search"
    assert hair.steps[1].observation.startswith(f"Instruction: [SEP] {G1} [SEP] Back to Search [SEP] Page 1")
    assert "[button]" not in hair.steps[3].observation and "You have clicked" not in hair.steps[3].observation
    assert hair.steps[3].observation.count("natural black") == 1
    # Admissible actions: none for a search (free text), the page's clicks otherwise.
    assert hair.steps[0].admissible is None
    assert hair.steps[1].admissible == ["click[back to search]", "click[next >]", "click[b09qqldj93]",
                                        "click[b08l5xq1nw]"]
    assert all(s.action in s.admissible for s in hair.steps[1:])
    # Bare clickable names in the file become click[...] actions.
    assert shake.steps[1].admissible == ["click[back to search]", "click[next >]", "click[b07vg2q2m5]"]
    assert shake.steps[0].observation.startswith("Amazon Shopping Game [SEP] Instruction: [SEP] i am looking")
    assert chair.variation == 1600 and len(chair.steps) == 5
    assert deo.variation == "line5"  # not among the human goals
    assert all(t.success and t.score is None for _, t in demos)  # the file holds no rewards


def test_parse_demonstrations_without_goals():
    demos = parse_demonstrations(demo_lines(), None)
    assert [idx for idx, _ in demos] == [None] * 4
    assert [t.variation for _, t in demos] == ["line1", "line2", "line3", "line5"]


@pytest.mark.parametrize("line, message", [
    ("{not json", "line 1 is not JSON"),
    (json.dumps({"states": ["WebShop\nInstruction: \nx"]}), "line 1 lacks non-empty 'states' and 'actions'"),
    (json.dumps({"states": ["WebShop\nInstruction: \nx"], "actions": ["search[x]", "click[buy now]"]}),
     "line 1 has 2 actions but 1 states"),
    (json.dumps({"states": ["WebShop\nInstruction: \nx"], "actions": ["buy it"]}), "neither search"),
    (json.dumps({"states": ["Welcome"], "actions": ["search[x]"]}), "no 'Instruction:'"),
])
def test_bad_demonstrations_name_the_line(line, message):
    with pytest.raises(ValueError, match=message):
        parse_demonstrations([line])


def ws_config(**kw) -> EnvironmentConfig:
    return EnvironmentConfig(**{"name": "webshop", "max_steps": 15, **kw})


def test_expert_from_a_directory_without_goals():
    env = make_env(ws_config(data_dir=str(FIXTURES)))
    trajs = list(env.expert("train", limit=10, max_length=20))
    assert [t.variation for t in trajs] == ["line1", "line2", "line3", "line5"]
    assert all(t.split == "train" for t in trajs)
    assert [t.variation for t in env.expert("train", limit=2, max_length=4)] == ["line2", "line5"]  # <= 4 steps
    with pytest.raises(EnvError, match=r"human_goals\.json"):
        list(env.expert("test", limit=1, max_length=20))


def test_expert_splits_by_goal_index(tmp_path):
    shutil.copy(FIXTURES / "il_trajs_finalized_images.jsonl", tmp_path)
    (tmp_path / "human_goals.json").write_text(json.dumps(human_goals()))
    for data_dir in (str(tmp_path), str(tmp_path / "il_trajs_finalized_images.jsonl"), tmp_path.as_uri()):
        env = make_env(ws_config(data_dir=data_dir))
        got = {s: [t.variation for t in env.expert(s, limit=10, max_length=20)] for s in env.splits()}
        assert got == {"test": [12], "dev": [700], "train": [1600]}  # the unmatched one is left out
    trajs = list(make_env(ws_config(data_dir=str(tmp_path))).expert("test", 1, 20))
    back = loads_trajectories(dumps_jsonl(t.to_dict() for t in trajs))
    assert [t.to_dict() for t in back] == [t.to_dict() for t in trajs] and back[0].split == "test"


def test_expert_errors(tmp_path):
    with pytest.raises(EnvError, match=r"environment\.dataDir.*human demonstrations.*il_trajs_finalized_images"):
        list(make_env(ws_config()).expert("train", 1, 10))
    with pytest.raises(EnvError, match=r"environment\.dataDir: no WebShop demonstrations at .*nowhere"):
        list(make_env(ws_config(data_dir=str(tmp_path / "nowhere"))).expert("train", 1, 10))
    (tmp_path / "il_trajs_finalized_images.jsonl").write_text('{"states": []}\n')
    with pytest.raises(EnvError, match=r"environment\.dataDir: .*line 1 lacks"):
        list(make_env(ws_config(data_dir=str(tmp_path))).expert("train", 1, 10))
    with pytest.raises(EnvError, match=r"unknown split 'valid'"):
        list(make_env(ws_config(data_dir=str(FIXTURES))).expert("valid", 1, 10))
