"""The WebShop adapter's parsing and HTTP path, without WebShop.

A real WebShop server could not be run here (its product data, search index and spaCy model
are separate downloads, and the PyPI package is a stub). What these tests do instead:
- parse pages written from WebShop's templates (test_webshop_pages.py);
- parse demonstrations written in WebShop's format (test_webshop_demos.py);
- play episodes over real HTTP against `StandIn` (tests/webshop_standin.py): a small server
  that serves pages with the same structure, URLs and forms as WebShop's app (a three-product
  catalogue and a toy reward). It checks the adapter's HTTP mechanics, not WebShop's behaviour.
  What every adapter promises is checked in tests/integration/test_env_protocol.py.
"""

from __future__ import annotations

import socket
from urllib.parse import unquote

import pytest
from webshop_standin import GOALS, StandIn

from act_trainer.config import EnvironmentConfig
from act_trainer.envs import EnvError, make_env
from act_trainer.envs.webshop import SPLIT_GOALS


def ws_config(**kw) -> EnvironmentConfig:
    return EnvironmentConfig(**{"name": "webshop", "max_steps": 15, **kw})


# --- episodes and config -------------------------------------------------------------------

def test_episodes_and_splits():
    env = make_env(ws_config(url="http://127.0.0.1:9"))
    assert env.splits() == ["train", "dev", "test"]
    test, dev, train = env.episodes("test"), env.episodes("dev"), env.episodes("train")
    assert (len(test), len(dev)) == (500, 1000) and test[:2] == ["fixed_0", "fixed_1"]
    assert dev[0] == "fixed_500" and train[0] == "fixed_1500" and len(train) == len(SPLIT_GOALS["train"])
    assert env.task_type("fixed_3") == "webshop"
    with pytest.raises(EnvError, match=r"environment\.tasks"):
        make_env(ws_config(tasks=["shoes"]))


def test_no_url_says_how_to_start_a_server():
    env = make_env(ws_config())
    with pytest.raises(EnvError, match=r"environment\.url: WebShop needs a running WebShop web server.*web_agent_site"):
        env.reset("fixed_0")
    with pytest.raises(EnvError, match="before reset"):
        env.step("search[hat]")
    assert env.admissible() is None


def test_server_not_answering_names_the_url():
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = make_env(ws_config(url=f"http://127.0.0.1:{port}/"))
    with pytest.raises(EnvError, match=rf"environment\.url: the WebShop server at http://127\.0\.0\.1:{port} does not answer"):
        env.reset("fixed_0")


@pytest.fixture
def env(webshop_server):
    e = make_env(ws_config(url=webshop_server))
    yield e
    e.close()


def test_buying_the_right_item_wins(env):
    obs = env.reset("fixed_0")
    assert obs.goal == GOALS[0]["instruction"]
    assert obs.text == f"WebShop [SEP] Instruction: [SEP] {GOALS[0]['instruction']} [SEP] Search"
    assert obs.admissible is None and env.admissible() is None and not obs.done

    StandIn.requests.clear()
    obs = env.step("search[Clip-In Hair Extension]")
    # A search is the search form's POST; the app's redirect lands on the results page.
    assert StandIn.requests[0] == ("POST", "/fixed_0")
    assert StandIn.requests[1][1].startswith("/search_results/fixed_0/")
    assert "B09QQLDJ93 [SEP] Long Clip in Hair Extensions Natural Looking [SEP] $24.99" in obs.text
    assert obs.admissible == ["click[back to search]", "click[b09qqldj93]", "click[b08l5xq1nw]"]

    obs = env.step("click[B09QQLDJ93]")
    assert "Price: $24.99" in obs.text and "click[natural black]" in obs.admissible
    obs = env.step("click[natural black]")
    obs = env.step("click[16 inch]")
    obs = env.step("click[Description]")
    assert obs.text.endswith("Natural looking synthetic fibre.")
    assert env.admissible() == ["click[back to search]", "click[< prev]"]
    obs = env.step("click[< Prev]")  # back to the item page, the options kept in its URL
    assert "Price: $24.99" in obs.text
    StandIn.requests.clear()
    obs = env.step("click[buy now]")
    assert StandIn.requests[0][0] == "POST" and StandIn.requests[0][1].startswith("/done/fixed_0/B09QQLDJ93/")
    assert "natural black" in unquote(StandIn.requests[0][1]) and "16 inch" in unquote(StandIn.requests[0][1])
    assert obs.done and obs.won and obs.score == 100.0
    assert "Your score (min 0.0, max 1.0) [SEP] 1.0" in obs.text
    # After the purchase nothing changes.
    assert env.step("click[back to search]") == obs


def test_a_partial_match_scores_but_does_not_win(env):
    env.reset("fixed_0")
    env.step("search[hair]")
    env.step("click[b09qqldj93]")
    obs = env.step("click[dark brown]")
    obs = env.step("click[buy now]")
    assert obs.done and not obs.won and obs.score == pytest.approx(100 / 3, abs=1e-3)


def test_invalid_actions_change_nothing(env):
    start = env.reset("fixed_1")
    StandIn.requests.clear()
    for action in ["click[buy now]", "click[search]", "jump", "", "search[]", "x" * 2000, "click[nothing here]"]:
        obs = env.step(action)
        assert obs.text == start.text and not obs.done and obs.score == 0.0
    assert StandIn.requests == []  # none of them reached the server


def test_search_from_an_item_page_and_back_to_search(env):
    env.reset("fixed_1")
    env.step("search[wool hat]")
    obs = env.step("click[b07z8kts6g]")
    assert obs.admissible == ["click[back to search]", "click[< prev]", "click[grey]", "click[description]",
                              "click[features]", "click[buy now]"]
    obs = env.step("search[hair]")  # allowed from any page, as in WebShop's text environment
    assert "B09QQLDJ93" in obs.text
    obs = env.step("click[back to search]")
    assert obs.text.startswith("WebShop [SEP] Instruction:") and obs.admissible is None


def test_server_errors_become_env_errors(env, webshop_server):
    with pytest.raises(EnvError, match=r"answered 500 to GET .*/fixed_7 \(does it have that many goals\?\)"):
        env.reset("fixed_7")
    with pytest.raises(EnvError, match="before reset"):
        env.step("search[x]")
    with pytest.raises(EnvError, match=r"/plain/fixed_0 is not a WebShop search page.*environment\.url"):
        make_env(ws_config(url=f"{webshop_server}/plain")).reset("fixed_0")
    with pytest.raises(EnvError, match="is not fixed_<goal index>"):
        env.reset("goal:3")
