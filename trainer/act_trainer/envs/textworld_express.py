"""TextWorldExpress adapter: the `textworld-express` package, a Scala simulator driven over py4j.

The CPU-demo environment: a JVM starts in about half a second and games are small.

One game type per adapter (`environment.game`, default **twc**: TextWorld Commonsense, put
objects away in their usual places; about 15-20 steps with the package's default parameters,
a handful of admissible actions per state). Other games: cookingworld (long: ~45 steps),
coin, mapreader, arithmetic, sorting, simonsays, peckingorder. `environment.gameParams` is
passed to the simulator as is (e.g. "numLocations=1,numItemsToPutAway=2" for twc); the
simulator's own error names the known parameters.

Splits are the simulator's game folds, each a fixed list of seeds: train (seeds 0-999),
dev (10000-10999), test (20000-20999). Episode ids are "FOLD:SEED", e.g. "dev:10003".
The simulator itself generates any seed in any fold; we refuse a seed outside its fold's
list, so that train and eval episodes cannot overlap by mistake.

Cheap stepping. The package's `TextWorldExpressEnv.step()` makes two JVM round trips per
action (`stepJSON`, then `getTaskDescription` to copy into the info dict) and keeps a run
history. We call the gateway object `env.server` (a `textworldexpress.runtime.PythonInterface`)
directly: `server.stepJSON(action)` returns observation, score, success/failure flags and the
valid actions in one JSON string, so a step is one round trip, and `admissible()` is free.

Semantics, as the simulator reports them: `score` is normalised to [0, 1] (we report 0-100);
`tasksuccess` / `taskfailure` end the episode (a failure, e.g. eating a needed ingredient in
cookingworld, leaves the score where it was); an unknown action returns a message and changes
nothing.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Iterator

from act_trainer.data import Step, Trajectory
from act_trainer.envs.base import EnvError, Observation

log = logging.getLogger(__name__)

SPLITS = ("train", "dev", "test")
DEFAULT_GAME = "twc"
INSTALL_JAVA = ("TextWorldExpress needs a Java runtime (>= 11) on PATH to start its simulator; "
                "install one, e.g. `apt-get install default-jre-headless`")


def _package():
    try:
        import textworld_express
    except ImportError as e:
        raise EnvError(f"the TextWorldExpress adapter needs the `textworld-express` package ({e}); "
                       "install it with `pip install 'act-operator[envs]'`") from None
    return textworld_express


def game_names() -> list[str]:
    """The game types the package knows (no JVM needed)."""
    return list(_package().GAME_NAMES)


try:  # orjson is a dependency of textworld-express and parses the step JSON ~5x faster
    from orjson import loads as _loads
except ImportError:  # pragma: no cover
    _loads = json.loads


def _ints(java_list) -> list[int]:
    text = java_list.toString().strip("[]")
    return [int(x) for x in text.split(",")] if text.strip() else []


def _shutdown(twx) -> None:
    try:
        twx.close()
    finally:
        # The package's __del__ calls close() again, which would shut down a dead gateway.
        twx.close = lambda: None


class TextWorldExpressEnv:
    """One simulator (one JVM) per adapter, started on first use; episode ids are "FOLD:SEED".

    reset(), expert() and episodes() (the first time) drive that one simulator, so each of
    them ends the episode in progress.
    """

    name = "textworld-express"

    def __init__(self, cfg):
        self.cfg = cfg
        self.game = cfg.game or DEFAULT_GAME
        valid = game_names()
        if self.game not in valid:
            raise EnvError(f"environment.game: unknown TextWorldExpress game '{self.game}'; "
                           f"choose one of {', '.join(valid)}")
        if cfg.tasks and list(cfg.tasks) != [self.game]:
            raise EnvError(f"environment.tasks: TextWorldExpress plays one game per environment, chosen "
                           f"with environment.game (now '{self.game}'); leave tasks empty")
        self.params = cfg.game_params or ""
        self._twx = None            # textworld_express.TextWorldExpressEnv, started lazily
        self._seeds: dict[str, list[int]] | None = None
        self._episode: str | None = None
        self._goal = ""
        self._steps = 0
        self._last: dict | None = None   # the last step's parsed JSON

    # --- setup -----------------------------------------------------------------------------

    def _server(self):
        """The simulator's gateway object; starts the JVM and loads the game the first time."""
        if self._twx is None:
            package = _package()
            if shutil.which("java") is None:
                raise EnvError(INSTALL_JAVA)
            try:
                twx = package.TextWorldExpressEnv(envStepLimit=10**9)
            except Exception as e:  # py4j raises plain Exceptions when the JVM does not come up
                raise EnvError(f"the TextWorldExpress simulator did not start: {e}. {INSTALL_JAVA}") from e
            err = twx.server.load(self.game, self.params)
            if err:  # the simulator answers bad parameters with a message, not an exception
                _shutdown(twx)
                raise EnvError(f"environment.gameParams: TextWorldExpress rejected '{self.params}' for "
                               f"game '{self.game}': {err.strip()}")
            self._twx = twx
        return self._twx.server

    def _fold_seeds(self) -> dict[str, list[int]]:
        if self._seeds is None:
            srv = self._server()
            # toString() of the Java list: one round trip instead of one per seed through py4j.
            self._seeds = {"train": _ints(srv.getSeedsTrain()), "dev": _ints(srv.getSeedsDev()),
                           "test": _ints(srv.getSeedsTest())}
        return self._seeds

    def _parse(self, episode: str) -> tuple[str, int]:
        fold, _, seed = episode.partition(":")
        if fold not in SPLITS or not seed.isdigit():
            raise EnvError(f"episode id '{episode}' is not FOLD:SEED with FOLD one of "
                           f"{', '.join(SPLITS)} (e.g. dev:10003)")
        seed_n = int(seed)
        seeds = self._fold_seeds()[fold]
        if seed_n not in set(seeds):
            raise EnvError(f"episode '{episode}': seed {seed_n} is not in the {fold} fold "
                           f"(its seeds are {seeds[0]}-{seeds[-1]})")
        return fold, seed_n

    # --- protocol --------------------------------------------------------------------------

    def splits(self) -> list[str]:
        return list(SPLITS)

    def episodes(self, split: str) -> list[str]:
        if split not in SPLITS:
            raise EnvError(f"unknown split '{split}'; TextWorldExpress has {', '.join(SPLITS)}")
        return [f"{split}:{s}" for s in self._fold_seeds()[split]]

    def _new_game(self, episode: str, gold: bool) -> Observation:
        self._episode = None
        fold, seed = self._parse(episode)
        srv = self._server()
        info = _loads(srv.generateNewGameJSON(seed, fold, gold))
        self._episode, self._goal, self._steps = episode, srv.getTaskDescription(), 0
        return self._observe(info, limit=False)

    def _observe(self, info: dict, limit: bool) -> Observation:
        self._last = info
        score = float(info["score"])
        won = bool(info["tasksuccess"])
        out_of_steps = limit and self._steps >= self.cfg.max_steps
        return Observation(text=info["observation"], goal=self._goal,
                           done=won or bool(info["taskfailure"]) or score >= 1.0 or out_of_steps,
                           won=won, score=round(100.0 * score, 4), admissible=list(info["validActions"]))

    def reset(self, episode: str) -> Observation:
        return self._new_game(episode, gold=False)

    def _step(self, action: str, limit: bool) -> Observation:
        if self._episode is None:
            raise EnvError("step() before reset(): start an episode first")
        self._steps += 1
        return self._observe(_loads(self._server().stepJSON(action)), limit)

    def step(self, action: str) -> Observation:
        return self._step(action, limit=True)

    def admissible(self) -> list[str] | None:
        # Free: every step's JSON carries them.
        if self._episode is None or self._last is None:
            return None
        return list(self._last["validActions"])

    def expert(self, split: str, limit: int, max_length: int) -> Iterator[Trajectory]:
        """The simulator's gold paths, replayed; yields only those that end in success."""
        made = skipped = 0
        for episode in self.episodes(split):
            if made >= limit:
                break
            obs = self._new_game(episode, gold=True)
            gold = list(self._server().getGoldActionSequence())
            if not gold or len(gold) > max_length:
                skipped += 1
                continue
            steps: list[Step] = []
            for action in gold:
                steps.append(Step(observation=obs.text, action=action, admissible=obs.admissible))
                obs = self._step(action, limit=False)  # the agent's step limit is not the expert's
                if obs.done:
                    break
            if not obs.won:
                log.warning("TextWorldExpress %s %s: gold path did not win (score %s); skipped",
                            self.game, episode, obs.score)
                skipped += 1
                continue
            made += 1
            fold, seed = self._parse(episode)
            yield Trajectory(env=self.name, task=self.game, goal=obs.goal, steps=steps, variation=seed,
                             split=fold, success=True, score=obs.score)
        if skipped:
            log.info("TextWorldExpress %s: skipped %d gold paths (longer than %d steps or not winning)",
                     split, skipped, max_length)

    def close(self) -> None:
        if self._twx is not None:
            twx, self._twx, self._episode, self._last = self._twx, None, None, None
            _shutdown(twx)
