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

The JVM's lifecycle, episodes and the gold-path replay are shared with ScienceWorld (jvm.py).
"""

from __future__ import annotations

import json

from act_trainer.envs import import_package
from act_trainer.envs.base import EnvError, Observation
from act_trainer.envs.jvm import SPLITS, JavaSimulatorEnv

DEFAULT_GAME = "twc"


def game_names() -> list[str]:
    """The game types the package knows (no JVM needed)."""
    return list(import_package("textworld-express").GAME_NAMES)


try:  # orjson is a dependency of textworld-express and parses the step JSON ~5x faster
    from orjson import loads as _loads
except ImportError:  # pragma: no cover
    _loads = json.loads


def _ints(java_list) -> list[int]:
    text = java_list.toString().strip("[]")
    return [int(x) for x in text.split(",")] if text.strip() else []


class TextWorldExpressEnv(JavaSimulatorEnv):
    """Episode ids are "FOLD:SEED"; one game (environment.game) per adapter."""

    name = "textworld-express"
    label = "TextWorldExpress"

    def __init__(self, cfg):
        super().__init__(cfg)
        self.game = cfg.game or DEFAULT_GAME
        valid = game_names()
        if self.game not in valid:
            raise EnvError(f"environment.game: unknown TextWorldExpress game '{self.game}'; "
                           f"choose one of {', '.join(valid)}")
        if cfg.tasks and list(cfg.tasks) != [self.game]:
            raise EnvError(f"environment.tasks: TextWorldExpress plays one game per environment, chosen "
                           f"with environment.game (now '{self.game}'); leave tasks empty")
        self.params = cfg.game_params or ""
        self._seeds: dict[str, list[int]] | None = None
        self._last: dict | None = None   # the last step's parsed JSON

    # --- setup -----------------------------------------------------------------------------

    def _start(self, package):
        return package.TextWorldExpressEnv(envStepLimit=10**9)

    def _configure(self, sim) -> None:
        err = sim.server.load(self.game, self.params)
        if err:  # the simulator answers bad parameters with a message, not an exception
            raise EnvError(f"environment.gameParams: TextWorldExpress rejected '{self.params}' for "
                           f"game '{self.game}': {err.strip()}")

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

    # --- episodes --------------------------------------------------------------------------

    def _split_episodes(self, split: str) -> list[str]:
        return [f"{split}:{s}" for s in self._fold_seeds()[split]]

    def _task(self, episode: str) -> str:
        return self.game

    def _episode_of(self, traj) -> str:
        return f"{traj.split}:{traj.variation}"

    def task_type(self, episode: str) -> None:
        return None  # one game per adapter: nothing to break down

    # --- playing ---------------------------------------------------------------------------

    def _load(self, episode: str, gold: bool) -> None:
        fold, seed = self._parse(episode)
        self._last = _loads(self._server().generateNewGameJSON(seed, fold, gold))

    def _first(self) -> Observation:
        return self._observe(self._last, limit=False)

    def _observe(self, info: dict, limit: bool) -> Observation:
        self._last = info
        score = float(info["score"])
        won = bool(info["tasksuccess"])
        return Observation(text=info["observation"], goal=self._goal,
                           done=won or bool(info["taskfailure"]) or score >= 1.0 or self._out_of_steps(limit),
                           won=won, score=round(100.0 * score, 4), admissible=list(info["validActions"]))

    def _act(self, action: str, limit: bool) -> Observation:
        return self._observe(_loads(self._server().stepJSON(action)), limit)

    def admissible(self) -> list[str] | None:
        # Free: every step's JSON carries them.
        if self._episode is None or self._last is None:
            return None
        return list(self._last["validActions"])

    def close(self) -> None:
        self._last = None
        super().close()
