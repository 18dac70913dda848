"""The WebShop adapter's parsing and HTTP path, without WebShop.

A real WebShop server could not be run here (its product data, search index and spaCy model
are separate downloads, and the PyPI package is a stub). What these tests do instead:
- parse pages in tests/fixtures/webshop/*.html, written by hand from WebShop's templates
  (web_agent_site/templates) as its Flask app renders them;
- parse demonstrations in tests/fixtures/webshop/il_trajs_finalized_images.jsonl, written
  from the documented format of WebShop's human demonstration file;
- play episodes over real HTTP against `StandIn` below: a small server written for this test
  that serves pages with the same structure, URLs and forms as WebShop's app (a three-product
  catalogue and a toy reward). It checks the adapter's HTTP mechanics, not WebShop's behaviour.
"""

from __future__ import annotations

import ast
import json
import shutil
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar
from urllib.parse import parse_qs, quote, unquote

import pytest

from act_trainer.config import EnvironmentConfig
from act_trainer.data import dumps_jsonl, loads_trajectories
from act_trainer.envs import EnvError, make_env
from act_trainer.envs.base import Environment
from act_trainer.envs.webshop import SPLIT_GOALS, parse_action, parse_demonstrations, parse_page, rich_to_text

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "webshop"
G1 = "i need a long clip-in hair extension which is natural looking, and price lower than 40.00 dollars"


def page(name: str):
    return parse_page((FIXTURES / f"{name}.html").read_text(), "http://127.0.0.1:3000/fixed_12")


# --- actions -------------------------------------------------------------------------------

@pytest.mark.parametrize("action, parsed", [
    ("search[Long Clip-In Hair]", ("search", "long clip-in hair")),
    ("click[< Prev]", ("click", "< prev")),
    ("click[B09QQLDJ93]", ("click", "b09qqldj93")),
    ("click[3 ounce (pack of 1)]", ("click", "3 ounce (pack of 1)")),
    ("click[size [large]]", ("click", "size [large]")),   # to the last bracket, as WebShop's regex
    ("  Click [ buy now ] ", ("click", "buy now")),
    ("search[]", ("search", "")),
    ("buy now", None), ("", None), ("think[what next]", None), ("click buy now]", None),
])
def test_parse_action(action, parsed):
    assert parse_action(action) == parsed


# --- pages ---------------------------------------------------------------------------------

def test_search_page():
    p = page("search_page")
    assert p.text == f"WebShop [SEP] Instruction: [SEP] {G1} [SEP] Search"
    assert p.has_search_bar and p.instruction == G1 and p.reward is None
    assert p.available_actions() is None  # a search box takes any text: nothing to list
    assert p.clickables["search"].method == "POST"


def test_results_page():
    p = page("results_page")
    assert p.text == (
        f"Instruction: {G1} [SEP] Current Query:  long  clip-in  hair  extension [SEP] Results [SEP] "
        "Page 1 (1-10) of 50 total results [SEP] Back to Search [SEP] Next > [SEP] "
        "B09QQLDJ93 [SEP] Long Clip in Hair Extensions Natural Looking 20 Inch Thick Straight Hairpieces [SEP] "
        "$24.99 [SEP] B08L5XQ1NW [SEP] Synthetic Curly Ponytail Extension with Claw Clip [SEP] $12.99 to $18.99 "
        "[SEP] B07Z8KTS6G [SEP] Hair Extension Storage Hanger & Carrier Case [SEP] $9.99")
    assert not p.has_search_bar and p.instruction == G1
    assert p.available_actions() == ["click[back to search]", "click[next >]", "click[b09qqldj93]",
                                     "click[b08l5xq1nw]", "click[b07z8kts6g]"]
    # The commented-out old layout (rendered by Jinja inside <!-- -->) is not on the page.
    assert "B0OLDLAYOUT" not in p.text and "b0oldlayout" not in p.clickables
    nxt, link = p.clickables["next >"], p.clickables["b09qqldj93"]
    assert (nxt.method, nxt.kind) == ("POST", "button") and nxt.url.endswith("%5D/2")
    assert nxt.url.startswith("http://127.0.0.1:3000/search_results/fixed_12/")
    assert (link.method, link.kind) == ("GET", "product") and "/item_page/fixed_12/B09QQLDJ93/" in link.url


def test_item_page():
    p = page("item_page")
    assert p.text == (
        f"Instruction: {G1} [SEP] Current Query: ['long', 'clip-in', 'hair', 'extension'] [SEP] Back to Search "
        "[SEP] < Prev [SEP] color [SEP] natural black [SEP] dark brown [SEP] size [SEP] 16 inch [SEP] 20 inch "
        "[SEP] Long Clip in Hair Extensions Natural Looking 20 Inch Thick Straight Hairpieces [SEP] "
        "Price: $24.99 [SEP] Rating: N.A. [SEP] Description [SEP] Features [SEP] Reviews [SEP] Buy Now")
    assert "addEventListener" not in p.text  # script text is not visible
    assert p.available_actions() == [
        "click[back to search]", "click[< prev]", "click[natural black]", "click[dark brown]", "click[16 inch]",
        "click[20 inch]", "click[description]", "click[features]", "click[reviews]", "click[buy now]"]
    opt = p.clickables["16 inch"]
    assert (opt.method, opt.kind) == ("GET", "option") and opt.url.endswith("%7B%27size%27:%20%2716%20inch%27%7D")
    buy = p.clickables["buy now"]
    assert (buy.method, buy.url) == ("POST", "http://127.0.0.1:3000/done/fixed_12/B09QQLDJ93/%7B%7D")


def test_sub_page_and_done_page():
    p = page("description_page")
    assert p.text.endswith("[SEP] Back to Search [SEP] < Prev [SEP] 100% natural looking synthetic fibre. "
                           "7 pieces with 16 clips; blends with your own hair.")
    assert p.available_actions() == ["click[back to search]", "click[< prev]"]
    assert "/item_page/" in p.clickables["< prev"].url

    d = page("done_page")
    assert d.reward == pytest.approx(2 / 3)
    assert d.available_actions() == [] and d.instruction == ""
    assert d.text.startswith("Thank you for shopping with us! [SEP] Your code: [SEP] None")
    assert "Your score (min 0.0, max 1.0) [SEP] 0.6666666666666666" in d.text


def test_malformed_html_does_not_break_parsing():
    p = parse_page('<div id="instruction-text"><h4>Instruction: buy <b>a</b> hat</h4></div>'
                   '<h4><a class="product-link" href="/x/B1">B1</a></h5><p>stray</span> text'
                   '<form action="/go" method="post"><button class="btn">Go</button>')
    assert p.instruction == "buy a hat"
    assert p.text == "Instruction: buy [SEP] a [SEP] hat [SEP] B1 [SEP] stray [SEP] text [SEP] Go"
    assert p.clickables["b1"].url == "http://webshop/x/B1"
    assert (p.clickables["go"].method, p.clickables["go"].url) == ("POST", "http://webshop/go")


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


# --- episodes and config -------------------------------------------------------------------

def test_episodes_and_splits():
    env = make_env(ws_config(url="http://127.0.0.1:9"))
    assert isinstance(env, Environment)
    assert env.splits() == ["train", "dev", "test"]
    test, dev, train = env.episodes("test"), env.episodes("dev"), env.episodes("train")
    assert (len(test), len(dev)) == (500, 1000) and test[:2] == ["fixed_0", "fixed_1"]
    assert dev[0] == "fixed_500" and train[0] == "fixed_1500" and len(train) == len(SPLIT_GOALS["train"])
    assert env.task_type("fixed_3") == "webshop"
    with pytest.raises(EnvError, match=r"unknown split 'valid_seen'; WebShop has train, dev, test"):
        env.episodes("valid_seen")
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


# --- a stand-in server in WebShop's page format ----------------------------------------------

CATALOG = {
    "B09QQLDJ93": {"title": "Long Clip in Hair Extensions Natural Looking", "price": "$24.99",
                   "options": {"color": ["natural black", "dark brown"], "size": ["16 inch", "20 inch"]},
                   "Description": "Natural looking synthetic fibre.", "Features": "7 pieces, 16 clips."},
    "B08L5XQ1NW": {"title": "Synthetic Curly Ponytail Extension", "price": "$12.99", "options": {},
                   "Description": "A curly ponytail.", "Features": "Claw clip."},
    "B07Z8KTS6G": {"title": "Wool Winter Hat", "price": "$9.99", "options": {"color": ["grey"]},
                   "Description": "A warm hat.", "Features": "Wool."},
}
GOALS = [
    {"instruction": "i need a natural black clip-in hair extension, 16 inch, and price lower than 40.00 dollars",
     "asin": "B09QQLDJ93", "options": {"color": "natural black", "size": "16 inch"}},
    {"instruction": "i want a warm wool hat, and price lower than 20.00 dollars", "asin": "B07Z8KTS6G",
     "options": {"color": "grey"}},
]
HEAD = '<!DOCTYPE html><html><head><title>WebShop</title><script>var x = "not text";</script></head><body>'


def _instruction(text: str, query=None) -> str:
    q = f'<h4 style="padding:2px 10px;">Current Query: {query}</h4>' if query is not None else ""
    return f'<div id="instruction-text"><h4 style="padding:2px 10px;">Instruction: {text}</h4>{q}</div>'


def _button(action: str, label: str) -> str:
    return f'<form method="post" action="{action}"><button type="submit" class="btn btn-primary">{label}</button></form>'


class StandIn(BaseHTTPRequestHandler):
    """Routes and pages shaped like web_agent_site/app.py and its templates."""

    requests: ClassVar[list[tuple[str, str]]] = []

    def log_message(self, *args):  # quiet
        pass

    def do_GET(self):
        self.route("GET", {})

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        self.route("POST", parse_qs(self.rfile.read(length).decode()))

    def send(self, status: int, body: str = "", location: str | None = None):
        data = body.encode()
        self.send_response(status)
        if location:
            self.send_header("Location", location)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def route(self, method: str, form: dict):
        StandIn.requests.append((method, self.path))
        parts = [unquote(p) for p in self.path.strip("/").split("/")]
        if parts[0] == "plain":  # some other web site
            return self.send(200, "<html><body><p>not a shop</p></body></html>")
        session = parts[1] if len(parts) > 1 else parts[0]
        try:
            goal = GOALS[int(session.split("_")[-1])]
        except (ValueError, IndexError):
            return self.send(500, "Internal Server Error")
        s, ins = quote(session), goal["instruction"]
        if len(parts) == 1:
            if method == "POST" and "search_query" in form:
                keywords = form["search_query"][0].lower().split(" ")
                return self.send(302, location=f"/search_results/{s}/{quote(str(keywords))}/1")
            return self.send(200, HEAD + '<div id="logo"><h2>WebShop</h2></div>'
                             f'<div id="instruction-text"><h4>Instruction: <br>{ins}</h4></div>'
                             f'<form method="post" action="/{s}"><input id="search_input" type="text" '
                             'name="search_query"/><button class="btn btn-success" type="submit">Search</button>'
                             '</form></body></html>')
        kind = parts[0]
        if kind == "search_results":
            keywords, page_no = ast.literal_eval(parts[2]), int(parts[3])
            hits = [a for a, p in CATALOG.items() if any(k in p["title"].lower() for k in keywords)]
            kw = quote(str(keywords))
            body = _instruction(ins, " ".join(keywords)) + f"<p>Page {page_no} of {len(hits)} total results</p>"
            body += _button(f"/{s}", "Back to Search")
            for a in hits:
                body += (f'<h4 class="product-asin"><a class="product-link" href="/item_page/{s}/{a}/{kw}/{page_no}/'
                         f'{quote(str({}))}">{a}</a></h4><h4>{CATALOG[a]["title"]}</h4><h5>{CATALOG[a]["price"]}</h5>')
            return self.send(200, HEAD + body + "</body></html>")
        if kind in ("item_page", "item_sub_page"):
            asin, kw, page_no = parts[2], quote(parts[3]), parts[4]
            options = ast.literal_eval(parts[-1])
            product = CATALOG[asin]
            body = _instruction(ins, parts[3]) + _button(f"/{s}", "Back to Search")
            if kind == "item_sub_page":
                body += _button(f"/item_page/{s}/{asin}/{kw}/{page_no}/{quote(str(options))}", "&lt; Prev")
                body += f'<p class="product-info">{product[parts[5]]}</p>'
                return self.send(200, HEAD + body + "</body></html>")
            body += _button(f"/search_results/{s}/{kw}/{page_no}", "&lt; Prev")
            for name, values in product["options"].items():
                body += f"<h4>{name}</h4>"
                for i, v in enumerate(values):
                    url = f"/item_page/{s}/{asin}/{kw}/{page_no}/{quote(str({**options, name: v}))}"
                    body += (f'<input type="radio" id="radio_{name}{i}" name="{name}" value="{v}" data-url="{url}">'
                             f'<label for="radio_{name}{i}">{v}</label>')
            body += f"<h2>{product['title']}</h2><h4>Price: {product['price']}</h4>"
            for sub in ("Description", "Features"):
                body += _button(f"/item_sub_page/{s}/{asin}/{kw}/{page_no}/{sub}/{quote(str(options))}", sub)
            body += (f'<form method="post" action="/done/{s}/{asin}/{quote(str(options))}">'
                     '<button type="submit" class="btn btn-lg purchase">Buy Now</button></form>')
            return self.send(200, HEAD + body + "</body></html>")
        if kind == "done":
            asin, options = parts[2], ast.literal_eval(parts[3])
            wanted = goal["options"]
            hits = sum(options.get(k) == v for k, v in wanted.items())
            reward = (asin == goal["asin"]) * (1 + hits) / (1 + len(wanted))
            return self.send(200, HEAD + "<h1>Thank you for shopping with us!</h1>"
                             '<div style="display:none"><h4 id="asin">asin<pre>' + asin + "</pre></h4></div>"
                             f'<h3 id="reward">Your score (min 0.0, max 1.0)<pre>{reward}</pre></h3></body></html>')
        return self.send(404, "Not Found")


@pytest.fixture(scope="module")
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), StandIn)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def env(server):
    e = make_env(ws_config(url=server))
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


def test_step_limit(server):
    e = make_env(ws_config(url=server, max_steps=3))
    e.reset("fixed_1")
    assert [e.step("search[hat]").done for _ in range(3)] == [False, False, True]


def test_server_errors_become_env_errors(env, server):
    with pytest.raises(EnvError, match=r"answered 500 to GET .*/fixed_7 \(does it have that many goals\?\)"):
        env.reset("fixed_7")
    with pytest.raises(EnvError, match="before reset"):
        env.step("search[x]")
    with pytest.raises(EnvError, match=r"/plain/fixed_0 is not a WebShop search page.*environment\.url"):
        make_env(ws_config(url=f"{server}/plain")).reset("fixed_0")
    with pytest.raises(EnvError, match="is not fixed_<goal index>"):
        env.reset("goal:3")
