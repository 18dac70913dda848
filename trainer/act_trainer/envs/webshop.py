"""WebShop adapter: a running WebShop web server, driven over HTTP, plus its human demonstrations.

WebShop (princeton-nlp/WebShop) cannot be installed here: its product data, search index and
spaCy model are downloads of their own, and the `webshop` package on PyPI is a stub. So this
adapter talks to a WebShop web app that the user runs (`./run_dev.sh`, i.e.
`python -m web_agent_site.app`, port 3000; `environment.url`), the way a browser does, and renders each page into WebShop's
text observation itself. No WebShop code is vendored.

**What was not run: a real WebShop server.** The unit tests exercise this module against
pages written from WebShop's published templates (web_agent_site/templates/*.html) and a small
stand-in HTTP server (tests/webshop_standin.py) that serves pages in that format; the demonstration parser
is tested on records written from the documented format of WebShop's
`baseline_models/data/il_trajs_finalized_images.jsonl`. Run it once against a real server
before relying on it.

Splits follow WebShop's baselines (baseline_models/env.py): goals 0-499 are test, 500-1499 dev
(their "eval"), 1500 up to the number of human instructions (12,087 in the paper) train.
Success = reward 1.0 (the paper's success rate); score = 100 x reward.

How pages become text and actions: webshop_pages.py; the demonstrations: webshop_demos.py.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator
from pathlib import Path

from act_trainer.contract import ENV_FACTS
from act_trainer.data import Trajectory
from act_trainer.envs import not_installed
from act_trainer.envs.base import EnvError, EnvUnavailable, Observation
from act_trainer.envs.webshop_demos import DEMOS_FILE, END_BUTTON, parse_demonstrations
from act_trainer.envs.webshop_pages import Page, parse_action, parse_page

log = logging.getLogger(__name__)

SPLITS = ENV_FACTS["webshop"].splits  # the one definition: act_trainer.contract
NUM_GOALS = 12087                     # human instructions in WebShop (paper); the train split's end
SPLIT_GOALS = {"test": range(500), "dev": range(500, 1500), "train": range(1500, NUM_GOALS)}
GOALS_FILE = "human_goals.json"
START_SERVER = ("start WebShop's web app (princeton-nlp/WebShop: `./setup.sh`, then `./run_dev.sh` "
                "or `python -m web_agent_site.app`) and set environment.url to its address, "
                "e.g. http://127.0.0.1:3000")
TIMEOUT = (5.0, 120.0)                # connect, read (a search over 1.18M products can take seconds)
_EPISODE = re.compile(r"^fixed_(\d+)$")


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
            except ImportError as e:  # pragma: no cover - requests comes with the trainer and envs extras
                raise not_installed(self.name, str(e)) from None
            self._http = requests.Session()
        return self._http

    def _fetch(self, method: str, url: str, data: dict | None = None) -> Page:
        import requests

        try:
            r = self._session().request(method, url, data=data, timeout=TIMEOUT, allow_redirects=True)
        except requests.RequestException as e:
            raise EnvUnavailable(f"environment.url: the WebShop server at {self.url} does not answer "
                           f"({type(e).__name__}: {e}); {START_SERVER}") from None
        if r.status_code >= 400:
            raise EnvUnavailable(f"WebShop server at {self.url} answered {r.status_code} to {method} {url}"
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

    def branch(self, traj: Trajectory, step: int, action: str):
        # Human demonstrations recorded elsewhere, and a server whose search results this adapter
        # cannot vouch for (it was never run against a real one): no verified replay.
        raise EnvError("WebShop cannot branch (restore an expert state by replay): turn "
                       "stages.collect.verifyAlternatives off for it")

    def admissible_at(self, traj: Trajectory, step: int):
        return self.branch(traj, step, "")  # the same refusal: no state to restore

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
