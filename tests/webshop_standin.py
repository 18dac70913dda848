"""A stand-in WebShop web server for tests: pages with the same structure, URLs and forms as
WebShop's app (web_agent_site/app.py and its templates), a three-product catalogue and a toy
reward. It checks the adapter's HTTP mechanics, not WebShop's behaviour. `serve()` runs it on
loopback; the `webshop_server` fixture (conftest.py) gives its URL.
"""

from __future__ import annotations

import ast
import contextlib
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar
from urllib.parse import parse_qs, quote, unquote

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


@contextlib.contextmanager
def serve() -> Iterator[str]:
    """The stand-in on a free loopback port; yields its URL."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), StandIn)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


# The actions that buy each goal's item with its options (reward 1.0).
WINNING = {
    0: ["search[clip-in hair extension]", "click[b09qqldj93]", "click[natural black]", "click[16 inch]",
        "click[buy now]"],
    1: ["search[wool hat]", "click[b07z8kts6g]", "click[grey]", "click[buy now]"],
}


def write_demonstrations(env, directory: Path) -> Path:
    """il_trajs_finalized_images.jsonl and human_goals.json in WebShop's format for the stand-in's
    goals (both in the test split), recorded by playing WINNING with a WebShop adapter `env` on the
    stand-in: states in the "text" mode the adapter shows, clickables as its admissible actions."""
    lines = []
    for goal, actions in WINNING.items():
        obs = env.reset(f"fixed_{goal}")
        states, available = [], []
        for action in actions:
            states.append(obs.text)
            available.append(obs.admissible or [])
            obs = env.step(action)
        assert obs.won, (goal, obs)
        lines.append(json.dumps({"states": states, "actions": actions, "available_actions": available}))
    (directory / "il_trajs_finalized_images.jsonl").write_text("\n".join(lines) + "\n")
    # human_goals.json holds the instructions as WebShop's baselines process them: no price clause.
    (directory / "human_goals.json").write_text(json.dumps([g["instruction"].split(", and price")[0] for g in GOALS]))
    return directory
