"""ALFWorld adapter: ALFWorld's TextWorld games (PDDL), played with TextWorld's PddlEnv.

Where the game files are, how they split and what episode ids look like: alfworld_data.py.

We do not use `AlfredTWEnv`: it needs ALFWorld's YAML config (not in the wheel) and a
`traj_data.json` beside every game, and it plays through `textworld.gym`'s batched,
asynchronous environments. Instead one `textworld.envs.PddlEnv` per adapter, wrapped in
ALFWorld's own `AlfredDemangler` (which gives objects their "apple 1" names, exactly as
AlfredTWEnv does, without shuffling), loads one game file after another. That is the same
engine, the same observations and the same admissible commands as AlfredTWEnv with
`domain_randomization: false`. `task_type(episode)` gives an episode's type for per-type
success rates. Branching (envs/branching.py) replays an expert prefix in the agent's PddlEnv.

Observations: the game's text, with TextWorld's "-= Welcome to TextWorld, ALFRED! =-" banner
removed from the first one (as ReAct and most ALFWorld agents do); the goal is its
"Your task is to: ..." line. won = the game's goal check (score 100, else 0). An inadmissible
command gives "Nothing happens." and changes nothing. Admissible commands are computed by the
engine at every step anyway (it needs them to parse the next command), so `admissible()` is free.

Experts (`environment.expertType`): "walkthrough" (the default) replays the walkthrough stored
in each game file; "handcoded" runs ALFWorld's `AlfredExpert(expert_type="handcoded")`, which
reads a `traj_data.json` beside the game (derived where it is missing: alfworld_data.py) and
gives up, raising, after 200 of its own steps. Its random fallback moves are seeded per
episode, so its trajectories repeat. Only winning trajectories are yielded.

Speed (2 cores): a game's first load costs about 1.3 s (fast-downward translates the PDDL
problem); TextWorld's reset() translates it again, which we spare by remembering the last
translations (`_Translations`): reset then costs about 0.15 s, also when an episode is replayed.
A step costs about 0.1 s (the engine enumerates every applicable action), about 10 steps/s.
fast-downward's translator also overwrites `sys.argv`; we restore it.
"""

from __future__ import annotations

import contextlib
import logging
import random
import re
import shutil
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

from act_trainer.data import Step, Trajectory
from act_trainer.envs import not_installed
from act_trainer.envs.alfworld_data import (
    SPLITS,
    TASK_TYPES,
    check_tasks,
    find_root,
    game_path,
    read_walkthrough,
    split_episodes,
    task_type_of,
    with_traj_data,
)
from act_trainer.envs.base import EnvError, Observation
from act_trainer.envs.branching import Replaying

log = logging.getLogger(__name__)

BANNER = re.compile(r"^\s*-= Welcome to TextWorld, ALFRED! =-\s*")
GOAL = re.compile(r"Your task is to: *([^\n]*)")


def _packages():
    try:
        import textworld
        from alfworld.agents.environment.alfred_tw_env import AlfredDemangler, AlfredExpert
        from textworld.envs import PddlEnv
    except ImportError as e:
        raise not_installed("alfworld", str(e)) from None
    return textworld, PddlEnv, AlfredDemangler, AlfredExpert


# One TextWorld call (load, reset, step) at a time in the process: its PDDL and text-grammar parsers
# (tatsu, shared by every PddlEnv; a step parses too) and the translation cache's patch of
# fast_downward.pddl2sas and sys.argv are process-wide, and play_many steps instances from threads.
# Eval puts each instance in a worker process of its own (envs/workers.py), so there the lock is
# never contended and the instances' loads and steps run at once.
_TEXTWORLD = threading.Lock()


class _Translations:
    """Remembers fast-downward's PDDL->SAS translations of the last games.

    TextWorld's PddlEnv translates a problem twice in load() and twice again in every reset()
    (1.2 s together); the result depends only on (domain, problem, optimize), and PddlEnv only
    reads it. While `active()`, `fast_downward.pddl2sas` answers from here. It also restores
    sys.argv, which the translator overwrites.
    """

    def __init__(self, keep: int = 4):
        self.keep = keep
        self.memo: dict[tuple, object] = {}

    @contextlib.contextmanager
    def active(self):
        import fast_downward

        original, argv = fast_downward.pddl2sas, sys.argv

        def pddl2sas(domain, problem, verbose=False, optimize=False):
            key = (domain, problem, bool(optimize))
            if key not in self.memo:
                self.memo[key] = original(domain, problem, verbose=verbose, optimize=optimize)
                while len(self.memo) > self.keep:
                    self.memo.pop(next(iter(self.memo)))
            return self.memo[key]

        fast_downward.pddl2sas = pddl2sas
        try:
            yield
        finally:
            fast_downward.pddl2sas = original
            sys.argv = argv


class _Game:
    """One PddlEnv (one copy of fast-downward's library) and the game it has loaded."""

    def __init__(self, env):
        self.env = env
        self.path: str | None = None
        self.state = None


class ALFWorldEnv(Replaying):
    """One TextWorld PddlEnv per adapter (and a second for the handcoded expert, if used)."""

    name = "alfworld"

    def __init__(self, cfg):
        self.cfg = cfg
        self.task_types = check_tasks(list(cfg.tasks))
        self.expert_type = "walkthrough" if cfg.expert_type == "default" else cfg.expert_type
        self.root = find_root(cfg.data_dir)
        self._episodes: dict[str, list[str]] = {}
        self._translations = _Translations()
        self._agent: _Game | None = None
        self._expert: _Game | None = None
        self._traj_dir: str | None = None     # derived traj_data.json files, for the handcoded expert
        self._episode: str | None = None
        self._goal = ""
        self._steps = 0
        self._played: list[str] = []     # actions since the episode's reset (the branching cursor)
        self._now: Observation | None = None

    # --- setup -----------------------------------------------------------------------------

    def _new_game(self, expert: bool = False) -> _Game:
        textworld, PddlEnv, AlfredDemangler, AlfredExpert = _packages()
        infos = textworld.EnvInfos(won=True, admissible_commands=True)
        env = AlfredDemangler(PddlEnv(infos), shuffle=False)
        if expert:
            env = AlfredExpert(env, expert_type="handcoded")  # asks the engine for facts too
        return _Game(env)

    def _load(self, game: _Game, path: str) -> dict:
        """Load (unless already loaded) and reset; the initial game state."""
        with _TEXTWORLD, self._translations.active():
            try:
                if game.path != path:
                    game.path = None
                    game.env.load(path)
                    game.path = path
                game.state = game.env.reset()
            except (OSError, ValueError, KeyError) as e:  # an unreadable or malformed game file
                game.path = game.state = None
                raise EnvError(f"ALFWorld could not load {path}: {type(e).__name__}: {e}") from e
        return game.state

    # --- episodes --------------------------------------------------------------------------

    def splits(self) -> list[str]:
        return list(SPLITS)

    def episodes(self, split: str) -> list[str]:
        if split not in SPLITS:
            raise EnvError(f"unknown split '{split}'; ALFWorld has {', '.join(SPLITS)}")
        if split not in self._episodes:
            self._episodes[split] = split_episodes(self.root, split, self.task_types)
        return list(self._episodes[split])

    def task_type(self, episode: str) -> str:
        t = task_type_of(episode)
        if t not in TASK_TYPES:
            raise EnvError(f"episode '{episode}' does not name an ALFWorld task type")
        return t

    # --- playing ---------------------------------------------------------------------------

    def _observation(self, state, first: bool, limit: bool) -> Observation:
        text = state.feedback or ""
        if first:
            text = BANNER.sub("", text)
        won = bool(state["won"])
        out_of_steps = limit and self._steps >= self.cfg.max_steps
        return Observation(text=text, goal=self._goal, done=won or out_of_steps, won=won,
                           score=100.0 if won else 0.0, admissible=list(state["admissible_commands"]))

    def _begin(self, game: _Game, episode: str, path: Path) -> Observation:
        self._episode = None
        state = self._load(game, str(path))
        m = GOAL.search(state.feedback or "")
        self._goal = f"Your task is to: {m.group(1).strip()}" if m else ""
        self._episode, self._steps = episode, 0
        self._played, self._now = [], self._observation(state, first=True, limit=False)
        return self._now

    def _agent_game(self) -> _Game:
        if self._agent is None:
            self._agent = self._new_game()
        return self._agent

    def reset(self, episode: str) -> Observation:
        self._episode = None
        _, path = game_path(self.root, episode)
        return self._begin(self._agent_game(), episode, path)

    def _step(self, game: _Game, action: str, limit: bool) -> Observation:
        if self._episode is None or game is None or game.state is None:
            raise EnvError("step() before reset(): start an episode first")
        self._steps += 1
        with _TEXTWORLD:
            game.state, _, _ = game.env.step(action)
        self._now = self._observation(game.state, first=False, limit=limit)
        self._played.append(action)
        return self._now

    def step(self, action: str) -> Observation:
        return self._step(self._agent, action, limit=True)

    def _advance(self, action: str) -> Observation:
        return self._step(self._agent, action, limit=False)

    def _episode_of(self, traj) -> str:
        return str(traj.variation)

    def admissible(self) -> list[str] | None:
        if self._episode is None or self._agent is None or self._agent.state is None:
            return None
        return list(self._agent.state["admissible_commands"])

    # --- experts ---------------------------------------------------------------------------

    def expert(self, split: str, limit: int, max_length: int) -> Iterator[Trajectory]:
        """Winning expert trajectories of a split: stored walkthroughs or the handcoded expert."""
        made = skipped = 0
        for episode in self.episodes(split):
            if made >= limit:
                break
            if self.expert_type == "handcoded":
                traj = self._handcoded(split, episode, max_length)
            else:
                traj = self._walkthrough(split, episode, max_length)
            if traj is None:
                skipped += 1
                continue
            made += 1
            yield traj
        if skipped:
            log.info("ALFWorld %s: skipped %d games (%s expert: longer than %d steps or not winning)",
                     split, skipped, self.expert_type, max_length)

    def _trajectory(self, split: str, episode: str, steps: list[Step]) -> Trajectory:
        return Trajectory(env=self.name, task=task_type_of(episode), goal=self._goal, steps=steps,
                          variation=episode, split=split, success=True, score=100.0)

    def _walkthrough(self, split: str, episode: str, max_length: int) -> Trajectory | None:
        _, path = game_path(self.root, episode)
        # Read from the file so that long walkthroughs are skipped without loading the game.
        walkthrough = read_walkthrough(path)
        if not walkthrough or len(walkthrough) > max_length:
            return None
        game = self._agent_game()
        obs = self._begin(game, episode, path)
        steps: list[Step] = []
        for action in walkthrough:
            steps.append(Step(observation=obs.text, action=action, admissible=obs.admissible))
            obs = self._step(game, action, limit=False)
            if obs.done:
                break
        if not obs.won:
            log.warning("ALFWorld %s: the stored walkthrough did not win; skipped", episode)
            return None
        return self._trajectory(split, episode, steps)

    def _traj_data_dir(self) -> Path:
        if self._traj_dir is None:
            self._traj_dir = tempfile.mkdtemp(prefix="act-alfworld-")
        return Path(self._traj_dir)

    def _handcoded(self, split: str, episode: str, max_length: int) -> Trajectory | None:
        _, path = game_path(self.root, episode)
        if self._expert is None:
            self._expert = self._new_game(expert=True)
        game = self._expert
        saved = random.getstate()
        random.seed(episode)  # the expert's fallback moves use the global `random`
        try:
            obs = self._begin(game, episode, with_traj_data(episode, path, self._traj_data_dir))
            steps: list[Step] = []
            while not obs.won and len(steps) < max_length:
                action = game.state["extra.expert_plan"][0]
                steps.append(Step(observation=obs.text, action=action, admissible=obs.admissible))
                obs = self._step(game, action, limit=False)
        except Exception as e:  # noqa: BLE001 - the expert raises plain Exception("Timeout") when it gives up
            log.warning("ALFWorld %s: the handcoded expert failed (%s); skipped", episode, e)
            return None
        finally:
            random.setstate(saved)
            self._episode = None  # the expert's game is not the agent's episode
        if not obs.won:
            return None
        return self._trajectory(split, episode, steps)

    def close(self) -> None:
        for game in (self._agent, self._expert):
            if game is not None:
                with contextlib.suppress(Exception):
                    game.env.close()
        self._agent = self._expert = None
        self._episode = None
        if self._traj_dir is not None:
            shutil.rmtree(self._traj_dir, ignore_errors=True)
            self._traj_dir = None
