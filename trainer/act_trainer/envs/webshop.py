"""WebShop adapter: a running WebShop web server, driven over HTTP, plus its human demonstrations.

WebShop (princeton-nlp/WebShop) cannot be installed here: its product data, search index and
spaCy model are downloads of their own, and the `webshop` package on PyPI is a stub. So this
adapter talks to a WebShop web app that the user runs (`./run_dev.sh`, i.e.
`python -m web_agent_site.app`, port 3000; `environment.url`), the way a browser does, and renders each page into WebShop's
text observation itself. No WebShop code is vendored.

**What was not run: a real WebShop server.** The unit tests exercise this module against
pages written from WebShop's published templates (web_agent_site/templates/*.html) and a small
stand-in HTTP server in the test that serves pages in that format; the demonstration parser
is tested on records written from the documented format of WebShop's
`baseline_models/data/il_trajs_finalized_images.jsonl`. Run it once against a real server
before relying on it.

The web app's pages and how the adapter uses them:
- `GET /<session>`: the search page (instruction, search box). A session id containing
  "fixed" selects goal `int(session.split("_")[-1])` (goals shuffled with seed 233 by the app),
  so episode ids are WebShop's own fixed sessions, "fixed_<goal index>", used as the session id.
- `search[query]`: `POST /<session>` with form field `search_query`; the app redirects to
  `/search_results/<session>/<keywords>/<page>`. As in WebShop's text environment, a search is
  allowed from any page.
- `click[x]`: x names a clickable of the current page, as WebShop's text environment lists
  them (`get_available_actions`): the text of an element with class `btn` (a `<button>` in a
  `<form>`: we submit the form, POST to its action), of a `product-link` anchor (GET its href,
  the product's ASIN), or the value of an `input[type=radio]` option (GET its `data-url`).
  Names match case-insensitively; `click[search]` and unknown names change nothing, as there.
  We are a little more lenient than WebShop's `(.+)\\[(.+)\\]` about the action word and spaces
  (`Click [ Buy Now ]` is a click on "buy now"); anything else is a no-op, as there.
  Clicking "Buy Now" leads to `/done/...`, whose `#reward` element holds the reward (0-1).
- Observation text: WebShop's "text" observation mode: the page's visible text nodes (not in
  style/script/head/title/meta, not comments) joined with " [SEP] ". Unlike WebShop's
  BeautifulSoup version we drop whitespace-only nodes (it keeps all but a bare "\\n", which puts
  empty fields between separators); the fields themselves are the same.

Splits follow WebShop's baselines (baseline_models/env.py): goals 0-499 are test, 500-1499 dev
(their "eval"), 1500 up to the number of human instructions (12,087 in the paper) train.
Success = reward 1.0 (the paper's success rate); score = 100 x reward.

Expert trajectories come from human demonstrations in the format of WebShop's
`il_trajs_finalized_images.jsonl` (one JSON object per line: `states`, `actions`,
`available_actions`, `action_idxs`, optional `actions_translate`, `images`), given by
`environment.dataDir` (the file, or a directory holding it; `human_goals.json` beside it gives
each demonstration its goal index and so its split). The states there are in WebShop's
"text_rich" mode ("[button] x [button_]" markers, one field per line); we convert them to the
"text" mode the live adapter produces, so prompts look the same in training and evaluation.
The file holds no rewards: a demonstration counts as an expert trajectory when it ends with a
purchase (click[buy now]).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urljoin

from act_trainer.data import Step, Trajectory
from act_trainer.envs.base import EnvError, Observation

log = logging.getLogger(__name__)

SPLITS = ("train", "dev", "test")
NUM_GOALS = 12087                     # human instructions in WebShop (paper); the train split's end
SPLIT_GOALS = {"test": range(500), "dev": range(500, 1500), "train": range(1500, NUM_GOALS)}
END_BUTTON = "buy now"
DEMOS_FILE = "il_trajs_finalized_images.jsonl"
GOALS_FILE = "human_goals.json"
SEP = " [SEP] "
START_SERVER = ("start WebShop's web app (princeton-nlp/WebShop: `./setup.sh`, then `./run_dev.sh` "
                "or `python -m web_agent_site.app`) and set environment.url to its address, "
                "e.g. http://127.0.0.1:3000")
TIMEOUT = (5.0, 120.0)                # connect, read (a search over 1.18M products can take seconds)

_IGNORED = {"style", "script", "head", "title", "meta", "[document]"}
_VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "param",
         "source", "track", "wbr"}
_ACTION = re.compile(r"^\s*(search|click)\s*\[(.*)\]\s*$", re.DOTALL | re.IGNORECASE)
_EPISODE = re.compile(r"^fixed_(\d+)$")


# --- actions -------------------------------------------------------------------------------

def parse_action(action: str) -> tuple[str, str] | None:
    """("search", query) or ("click", name) from "search[...]" / "click[...]"; None otherwise.

    Like WebShop, the argument is what lies between the first "[" and the last "]", lowercased.
    """
    m = _ACTION.match(action or "")
    if m is None:
        return None
    return m.group(1).lower(), m.group(2).strip().lower()


# --- pages ---------------------------------------------------------------------------------

@dataclass
class Clickable:
    name: str
    method: str            # "GET" or "POST"
    url: str | None        # None: nothing to follow (e.g. a button outside any form)
    kind: str              # "button", "product", "option"


@dataclass
class Page:
    """A WebShop page as its text environment sees it."""

    texts: list[str] = field(default_factory=list)
    clickables: dict[str, Clickable] = field(default_factory=dict)
    has_search_bar: bool = False
    instruction: str = ""
    reward: float | None = None

    @property
    def text(self) -> str:
        return SEP.join(self.texts)

    def available_actions(self) -> list[str] | None:
        """click[...] for each clickable; None where the page has a search box (free text)."""
        if self.has_search_bar:
            return None
        return [f"click[{name}]" for name in self.clickables if name != "search"]


class _PageParser(HTMLParser):
    """A stack of open tags is all we need: the parent of each text node, and the text of the
    few elements we read (buttons, product links, the instruction's <h4>, the reward)."""

    def __init__(self, base_url: str):
        super().__init__(convert_charrefs=True)
        self.base = base_url
        self.page = Page()
        self.stack: list[str] = []
        self.form: tuple[str, str] | None = None     # (method, action) of the form we are in
        # Elements whose text we collect: (depth, what, attributes, text parts).
        self.reading: list[tuple[int, str, dict, list[str]]] = []
        self.in_instruction: int | None = None       # depth of #instruction-text

    def handle_starttag(self, tag, attrs):
        a = {k: (v or "") for k, v in attrs}
        classes = a.get("class", "").split()
        if a.get("id") == "search_input":
            self.page.has_search_bar = True
        if tag == "form":
            self.form = ((a.get("method") or "get").upper(), urljoin(self.base, a.get("action", "")))
        if tag == "input" and a.get("type", "").lower() == "radio":
            url = a.get("data-url")
            self._add(a.get("value", ""), "GET", urljoin(self.base, url) if url else None, "option")
        if tag in _VOID:
            return
        self.stack.append(tag)
        depth = len(self.stack)
        if "product-link" in classes:
            self.reading.append((depth, "product", a, []))
        elif "btn" in classes:
            self.reading.append((depth, "button", {**a, "tag": tag}, []))
        if a.get("id") == "instruction-text":
            self.in_instruction = depth
        elif tag == "h4" and self.in_instruction is not None and not self.page.instruction \
                and not any(w == "instruction" for _, w, _, _ in self.reading):
            self.reading.append((depth, "instruction", a, []))
        if a.get("id") == "reward":
            self.reading.append((depth, "reward", a, []))

    def handle_startendtag(self, tag, attrs):
        self.handle_starttag(tag, attrs)
        if tag not in _VOID:
            self.handle_endtag(tag)

    def handle_endtag(self, tag):
        if tag == "form":
            self.form = None
        if tag not in self.stack:
            return  # a stray end tag (the templates have a few): ignore it, as html.parser trees do
        while self.stack:
            depth = len(self.stack)
            open_tag = self.stack.pop()
            self.close_depth(depth)
            if open_tag == tag:
                break

    def close_depth(self, depth: int) -> None:
        if depth == self.in_instruction:
            self.in_instruction = None
        while self.reading and self.reading[-1][0] == depth:
            _, what, a, parts = self.reading.pop()
            text = "".join(parts)
            if what == "product":
                href = a.get("href")
                self._add(text, "GET", urljoin(self.base, href) if href else None, "product")
            elif what == "button":
                if a["tag"] == "a" and a.get("href"):
                    self._add(text, "GET", urljoin(self.base, a["href"]), "button")
                elif self.form is not None:
                    self._add(text, self.form[0], self.form[1], "button")
                else:
                    self._add(text, "GET", None, "button")
            elif what == "instruction":
                self.page.instruction = _instruction(text)
            elif what == "reward":
                numbers = re.findall(r"-?\d+(?:\.\d+)?(?:[eE]-?\d+)?", text.split("max 1.0)")[-1])
                if numbers:
                    self.page.reward = float(numbers[-1])

    def _add(self, name: str, method: str, url: str | None, kind: str) -> None:
        key = name.strip().lower()
        # A dict, as in WebShop's text environment: the last element of a name wins.
        self.page.clickables[key] = Clickable(key, method, url, kind)

    def handle_data(self, data):
        for _, _, _, parts in self.reading:
            parts.append(data)
        parent = self.stack[-1] if self.stack else "[document]"
        if parent not in _IGNORED and data.strip():
            self.page.texts.append(data.strip())


def _instruction(text: str) -> str:
    text = " ".join(text.split())
    return re.sub(r"^instruction:\s*", "", text, flags=re.IGNORECASE)


def parse_page(html: str, url: str = "http://webshop/") -> Page:
    """WebShop's text view of one HTML page: visible text, clickables, instruction, reward."""
    p = _PageParser(url)
    p.feed(html)
    p.close()
    while p.stack:  # unclosed elements at the end of the document
        d = len(p.stack)
        p.stack.pop()
        p.close_depth(d)
    return p.page


# --- demonstrations ------------------------------------------------------------------------

_MARKERS = re.compile(r"\[(?:clicked )?button_?\]")


def rich_to_text(state: str) -> str:
    """A "text_rich" state (one field per line, [button] markers) in the "text" mode: fields
    joined with " [SEP] ". States already in text mode are returned as they are."""
    if "[SEP]" in state:
        return state
    lines = [ln.strip() for ln in state.split("\n")]
    # text_rich prepends "You have clicked <option>." for each chosen option; the page shows them anyway.
    while lines and re.fullmatch(r"You have clicked .*\.", lines[0] or ""):
        lines.pop(0)
    fields = [" ".join(_MARKERS.sub(" ", ln).split()) for ln in lines]
    return SEP.join(f for f in fields if f)


def demo_instruction(state: str) -> str:
    """The instruction shown in a demonstration's first state (either observation mode)."""
    text = state.replace(SEP, "\n")
    m = re.search(r"Instruction:\s*(.*?)\s*(?:\[button\]|\n\s*Search\s*$|$)", text, re.DOTALL | re.IGNORECASE)
    if m is None:
        raise ValueError("no 'Instruction:' in the first state")
    return " ".join(m.group(1).split())


def _goal_key(instruction: str) -> str:
    # WebShop's baselines match a demonstration to human_goals.json this way (process_goal).
    s = instruction.lower().replace('"', "").replace("'", "").strip()
    return s.split(", and price lower than")[0].strip()


def _as_click(action: str) -> str:
    return action if parse_action(action) else f"click[{action}]"


def parse_demonstrations(lines: Iterable[str], human_goals: list[str] | None = None,
                         name: str = DEMOS_FILE) -> list[tuple[int | None, Trajectory]]:
    """(goal index, trajectory) per demonstration that ends in a purchase, in file order.

    The goal index is the instruction's place in `human_goals` (None without them, or when the
    instruction is not among them). Raises ValueError naming the line for records that are
    not in the documented format.
    """
    goal_index = {_goal_key(g): i for i, g in enumerate(human_goals or [])}
    out: list[tuple[int | None, Trajectory]] = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as e:
            raise ValueError(f"{name}: line {n} is not JSON ({e})") from None
        states, actions = rec.get("states"), rec.get("actions")
        if not isinstance(states, list) or not isinstance(actions, list) or not states or not actions:
            raise ValueError(f"{name}: line {n} lacks non-empty 'states' and 'actions' lists "
                             "(WebShop il_trajs format)")
        if len(states) < len(actions):
            raise ValueError(f"{name}: line {n} has {len(actions)} actions but {len(states)} states")
        available = rec.get("available_actions") or [None] * len(actions)
        try:
            goal = demo_instruction(states[0])
        except ValueError as e:
            raise ValueError(f"{name}: line {n}: {e}") from None
        steps = []
        for state, action, valid in zip(states, actions, available, strict=True):
            parsed = parse_action(action)
            if parsed is None:
                raise ValueError(f"{name}: line {n}: action {action!r} is neither search[...] nor click[...]")
            # The file lists the search steps' "available actions" as candidate queries; a
            # search box takes any text, so there is no admissible list there.
            adm = [_as_click(v) for v in valid] if parsed[0] == "click" and isinstance(valid, list) \
                and valid else None
            steps.append(Step(observation=rich_to_text(state), action=action.strip(), admissible=adm))
        if parse_action(actions[-1]) != ("click", END_BUTTON):
            continue  # an abandoned session: no purchase, no outcome
        idx = goal_index.get(_goal_key(goal))
        reward = rec.get("reward")
        score = round(100.0 * float(reward), 4) if isinstance(reward, (int, float)) else None
        out.append((idx, Trajectory(env="webshop", task="webshop", goal=goal, steps=steps,
                                    variation=idx if idx is not None else f"line{n}", split="train",
                                    success=True, score=score)))
    return out


def split_of(goal_idx: int | None) -> str | None:
    if goal_idx is None:
        return None
    return next((s for s, r in SPLIT_GOALS.items() if goal_idx in r), None)


# --- the environment -----------------------------------------------------------------------

class WebShopEnv:
    """Episodes are WebShop fixed sessions "fixed_<goal index>"; one HTTP session per adapter."""

    name = "webshop"

    def __init__(self, cfg):
        self.cfg = cfg
        if cfg.tasks:
            raise EnvError("environment.tasks: WebShop has no task types; leave tasks empty "
                           "(episodes are goal indices: fixed_<n>)")
        self.url = cfg.url.rstrip("/") if cfg.url else None
        self._http = None
        self._episode: str | None = None
        self._page: Page | None = None
        self._page_url = ""
        self._goal = ""
        self._steps = 0
        self._done = False

    # --- HTTP ------------------------------------------------------------------------------

    def _session(self):
        if self.url is None:
            raise EnvError(f"environment.url: WebShop needs a running WebShop web server; {START_SERVER}")
        if self._http is None:
            try:
                import requests
            except ImportError:  # pragma: no cover - requests comes with the trainer extra
                raise EnvError("the WebShop adapter needs `requests`; "
                               "install it with `pip install 'act-operator[trainer]'`") from None
            self._http = requests.Session()
        return self._http

    def _fetch(self, method: str, url: str, data: dict | None = None) -> Page:
        import requests

        try:
            r = self._session().request(method, url, data=data, timeout=TIMEOUT, allow_redirects=True)
        except requests.RequestException as e:
            raise EnvError(f"environment.url: the WebShop server at {self.url} does not answer "
                           f"({type(e).__name__}: {e}); {START_SERVER}") from None
        if r.status_code >= 400:
            raise EnvError(f"WebShop server at {self.url} answered {r.status_code} to {method} {url}"
                           f"{' (does it have that many goals?)' if r.status_code == 500 else ''}")
        self._page_url = r.url
        return parse_page(r.text, r.url)

    # --- protocol --------------------------------------------------------------------------

    def splits(self) -> list[str]:
        return list(SPLITS)

    def episodes(self, split: str) -> list[str]:
        if split not in SPLITS:
            raise EnvError(f"unknown split '{split}'; WebShop has {', '.join(SPLITS)}")
        return [f"fixed_{i}" for i in SPLIT_GOALS[split]]

    def reset(self, episode: str) -> Observation:
        self._episode = None
        if not _EPISODE.match(episode or ""):
            raise EnvError(f"episode id '{episode}' is not fixed_<goal index> (e.g. fixed_12)")
        self._session()  # no url: say how to get one
        page = self._fetch("GET", f"{self.url}/{episode}")
        if not page.instruction:
            raise EnvError(f"{self._page_url} is not a WebShop search page (no instruction-text); "
                           f"check environment.url")
        self._episode, self._page, self._goal = episode, page, page.instruction
        self._steps, self._done = 0, False
        return self._observe(page)

    def _observe(self, page: Page) -> Observation:
        out_of_steps = self._steps >= self.cfg.max_steps
        reward = (page.reward or 0.0) if self._done else 0.0
        return Observation(text=page.text, goal=self._goal, done=self._done or out_of_steps,
                           won=self._done and reward >= 1.0, score=round(100.0 * reward, 4),
                           admissible=page.available_actions())

    def step(self, action: str) -> Observation:
        if self._episode is None or self._page is None:
            raise EnvError("step() before reset(): start an episode first")
        self._steps += 1
        page = self._page
        parsed = None if self._done else parse_action(action)  # after the purchase nothing changes
        if parsed is not None:
            kind, arg = parsed
            if kind == "search" and arg:
                page = self._fetch("POST", f"{self.url}/{self._episode}", data={"search_query": arg})
            elif kind == "click" and arg != "search" and arg in page.clickables:
                target = page.clickables[arg]
                if target.url is not None:
                    page = self._fetch(target.method, target.url)
                    if arg == END_BUTTON:
                        self._done = True
                        if page.reward is None:
                            raise EnvError(f"WebShop's done page {self._page_url} shows no #reward; "
                                           "is environment.url a WebShop server?")
        self._page = page
        return self._observe(page)

    def admissible(self) -> list[str] | None:
        if self._episode is None or self._page is None:
            return None
        return self._page.available_actions()

    def task_type(self, episode_id: str) -> str:
        return "webshop"

    # --- demonstrations --------------------------------------------------------------------

    @staticmethod
    def _read(where: str) -> bytes | None:
        """A local path, file:// or s3:// URI's bytes; None when there is no such file."""
        if "://" not in where:
            p = Path(where)
            return p.read_bytes() if p.is_file() else None
        from act_trainer import store

        try:
            return store.read_bytes(where) if store.exists(where) else None
        except store.StoreError as e:
            raise EnvError(f"environment.dataDir: {e}") from None

    def demonstrations(self) -> tuple[list[tuple[int | None, Trajectory]], bool]:
        """The parsed demonstrations file, and whether human_goals.json came with it."""
        src = self.cfg.data_dir
        if not src:
            raise EnvError("environment.dataDir: WebShop's expert trajectories are its human demonstrations; "
                           f"set environment.dataDir to {DEMOS_FILE} (WebShop's baseline_models/data) or "
                           "the directory holding it, or give expert.uri in the trajectory format")
        src = src.rstrip("/")
        is_file = src.endswith(".jsonl")
        demos_at = src if is_file else f"{src}/{DEMOS_FILE}"
        base = src.rsplit("/", 1)[0] if is_file else src
        blob = self._read(demos_at)
        if blob is None:
            raise EnvError(f"environment.dataDir: no WebShop demonstrations at {demos_at}; point it at "
                           f"{DEMOS_FILE} or the directory holding it")
        goals_blob = self._read(f"{base}/{GOALS_FILE}")
        try:
            goals = json.loads(goals_blob) if goals_blob is not None else None
            return parse_demonstrations(blob.decode().splitlines(), goals, name=demos_at), goals is not None
        except ValueError as e:  # json.JSONDecodeError is one
            raise EnvError(f"environment.dataDir: {e}") from None

    def expert(self, split: str, limit: int, max_length: int) -> Iterator[Trajectory]:
        """Human demonstrations of a split (by goal index, as WebShop's baselines split them)."""
        if split not in SPLITS:
            raise EnvError(f"unknown split '{split}'; WebShop has {', '.join(SPLITS)}")
        demos, have_goals = self.demonstrations()
        if not have_goals and split != "train":
            raise EnvError(f"WebShop demonstrations can be split only with {GOALS_FILE} beside "
                           f"{DEMOS_FILE} (environment.dataDir); without it all of them are 'train'")
        made = skipped = unmatched = 0
        for idx, traj in demos:
            if made >= limit:
                break
            if have_goals and idx is None:
                unmatched += 1
                continue
            if (split_of(idx) if have_goals else "train") != split:
                continue
            if len(traj.steps) > max_length:
                skipped += 1
                continue
            traj.split = split
            made += 1
            yield traj
        if skipped:
            log.info("WebShop %s: skipped %d demonstrations longer than %d steps", split, skipped, max_length)
        if unmatched:
            log.warning("WebShop: %d demonstrations have an instruction that is not in %s; skipped",
                        unmatched, GOALS_FILE)

    def close(self) -> None:
        if self._http is not None:
            self._http.close()
        self._http, self._episode, self._page = None, None, None
