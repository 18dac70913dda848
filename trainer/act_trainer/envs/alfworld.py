"""ALFWorld adapter: ALFWorld's TextWorld games (PDDL), played with TextWorld's PddlEnv.

Game files: `$ALFWORLD_DATA/json_2.1.1/<split>/<task-folder>/<trial>/game.tw-pddl` (what
`alfworld-download` fetches, or an unpacked json_2.1.1.tar.xz). `environment.dataDir` (else the
ALFWORLD_DATA variable, else ALFWorld's default ~/.cache/alfworld) names the directory that holds
json_2.1.1/ (or json_2.1.1/ itself). Note that importing `alfworld` creates ~/.cache/alfworld and
sets ALFWORLD_DATA to it when unset.

We do not use `AlfredTWEnv`: it needs ALFWorld's YAML config (not in the wheel) and a
`traj_data.json` beside every game, and it plays through `textworld.gym`'s batched,
asynchronous environments. Instead one `textworld.envs.PddlEnv` per adapter, wrapped in
ALFWorld's own `AlfredDemangler` (which gives objects their "apple 1" names, exactly as
AlfredTWEnv does, without shuffling), loads one game file after another. That is the same
engine, the same observations and the same admissible commands as AlfredTWEnv with
`domain_randomization: false`.

Splits: train (3,553 games), valid_seen (140: the in-distribution eval, "ID"), valid_unseen
(134: out-of-distribution, "OOD"), valid_train (200). Episode ids are the game's folder
relative to its split, "<task-folder>/<trial>", e.g.
"pick_clean_then_place_in_recep-Lettuce-None-Fridge-19/trial_T20190908_100138_446072";
trials are unique across splits, so reset() finds the split itself. episodes() lists a split
round-robin over task types (each type sorted by id), so its first N cover all six types.
`environment.tasks` filters by task type (the folder name's prefix; ALFWorld's ids 1-6 are
accepted too). `task_type(episode)` gives an episode's type for per-type success rates.

Observations: the game's text, with TextWorld's "-= Welcome to TextWorld, ALFRED! =-" banner
removed from the first one (as ReAct and most ALFWorld agents do); the goal is its
"Your task is to: ..." line. won = the game's goal check (score 100, else 0). An inadmissible
command gives "Nothing happens." and changes nothing. Admissible commands are computed by the
engine at every step anyway (it needs them to parse the next command), so `admissible()` is free.

Experts (`environment.expertType`): "walkthrough" (the default) replays the walkthrough stored
in each game file; "handcoded" runs ALFWorld's `AlfredExpert(expert_type="handcoded")`, which
reads a `traj_data.json` beside the game. Where it is missing (e.g. the mirror in
../shared/data/alfworld) we derive a minimal one from the task folder name,
`<task_type>-<object>-<mrecep|None>-<parent>-<scene>`, into a temporary directory holding a
link to the game: the data directory is never written. The handcoded expert's random
fallback moves are seeded per episode, so its trajectories repeat. Only winning trajectories
are yielded.

Speed (2 cores): a game's first load costs about 1.3 s (fast-downward translates the PDDL
problem); TextWorld's reset() translates it again, which we spare by remembering the last
translations (`_translations`): reset then costs about 0.15 s, also when an episode is replayed.
A step costs about 0.1 s (the engine enumerates every applicable action), about 10 steps/s.
fast-downward's translator also overwrites `sys.argv`; we restore it.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import os
import random
import re
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

from act_trainer.data import Step, Trajectory
from act_trainer.envs.base import EnvError, Observation

log = logging.getLogger(__name__)

SPLITS = ("train", "valid_seen", "valid_unseen", "valid_train")
TASK_TYPES = ("pick_and_place_simple", "look_at_obj_in_light", "pick_clean_then_place_in_recep",
              "pick_heat_then_place_in_recep", "pick_cool_then_place_in_recep", "pick_two_obj_and_place")
GAME = "game.tw-pddl"
DEFAULT_DATA = "~/.cache/alfworld"
BANNER = re.compile(r"^\s*-= Welcome to TextWorld, ALFRED! =-\s*")
GOAL = re.compile(r"Your task is to: *([^\n]*)")
HOW_TO_GET_DATA = ("unpack ALFWorld's game files (json_2.1.1.tar.xz, or run `alfworld-download`) into a "
                   "directory and set environment.dataDir (or ALFWORLD_DATA) to it, e.g. "
                   "`tar -xJf json_2.1.1.tar.xz -C /data/alfworld` and dataDir: /data/alfworld")
HANDCODED_MAX_STEPS = 200  # the handcoded expert gives up (raises) after this many of its own steps


def _packages():
    try:
        import textworld
        from alfworld.agents.environment.alfred_tw_env import AlfredDemangler, AlfredExpert
        from textworld.envs import PddlEnv
    except ImportError as e:
        raise EnvError(f"the ALFWorld adapter needs the `alfworld` package ({e}); install it with "
                       "`pip install 'act-operator[envs]'` (builds jericho and fast-downward: a C++ "
                       "compiler and about 5 minutes)") from None
    return textworld, PddlEnv, AlfredDemangler, AlfredExpert


def task_type_of(episode: str) -> str:
    """The task type of an episode id (or a task folder name): the part before the first '-'."""
    return episode.split("/", 1)[0].split("-", 1)[0]


def derive_traj_data(task_folder: str) -> dict:
    """The minimal traj_data.json ALFWorld's handcoded expert reads, from the task folder name
    `<task_type>-<object>-<mrecep|None>-<parent>-<scene>`."""
    parts = task_folder.split("-")
    if len(parts) != 5 or parts[0] not in TASK_TYPES:
        raise EnvError(f"task folder '{task_folder}' is not <task_type>-<object>-<mrecep|None>-<parent>-<scene>")
    task_type, obj, mrecep, parent, _scene = parts
    look = task_type == "look_at_obj_in_light"
    return {"task_type": task_type,
            "pddl_params": {"object_target": obj, "mrecep_target": "" if mrecep == "None" else mrecep,
                            "object_sliced": False, "parent_target": "" if look else parent,
                            "toggle_target": parent if look else ""}}


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


class ALFWorldEnv:
    """One TextWorld PddlEnv per adapter (and a second for the handcoded expert, if used)."""

    name = "alfworld"

    def __init__(self, cfg):
        self.cfg = cfg
        self.task_types = self._check_tasks(list(cfg.tasks))
        self.expert_type = "walkthrough" if cfg.expert_type == "default" else cfg.expert_type
        self.root = self._find_root(cfg.data_dir)
        self._episodes: dict[str, list[str]] = {}
        self._translations = _Translations()
        self._agent: _Game | None = None
        self._expert: _Game | None = None
        self._traj_dir: str | None = None     # derived traj_data.json files, for the handcoded expert
        self._episode: str | None = None
        self._goal = ""
        self._steps = 0

    # --- setup -----------------------------------------------------------------------------

    @staticmethod
    def _check_tasks(tasks: list[str]) -> list[str]:
        if not tasks:
            return list(TASK_TYPES)
        names = [TASK_TYPES[int(t) - 1] if t.isdigit() and 1 <= int(t) <= 6 else t for t in tasks]
        unknown = [t for t, n in zip(tasks, names, strict=True) if n not in TASK_TYPES]
        if unknown:
            raise EnvError(f"environment.tasks: unknown ALFWorld task type(s) {unknown}; valid: "
                           f"{', '.join(TASK_TYPES)} (or their ids 1-6)")
        return list(dict.fromkeys(names))

    @staticmethod
    def _find_root(data_dir: str | None) -> Path:
        """The json_2.1.1 directory (the one holding the split folders)."""
        if data_dir:
            given, source = data_dir, "environment.dataDir"
        elif os.environ.get("ALFWORLD_DATA"):
            given, source = os.environ["ALFWORLD_DATA"], "ALFWORLD_DATA"
        else:  # where `alfworld-download` puts them (and what importing alfworld sets ALFWORLD_DATA to)
            given, source = DEFAULT_DATA, "ALFWorld's default: neither environment.dataDir nor ALFWORLD_DATA is set"
        base = Path(os.path.expandvars(os.path.expanduser(given)))
        for root in (base / "json_2.1.1", base):
            if any((root / s).is_dir() for s in SPLITS):
                return root
        archive = next(iter(sorted(base.glob("json_2.1.1.tar*"))), None) if base.is_dir() else None
        if archive is not None:
            raise EnvError(f"environment.dataDir: {base} ({source}) holds {archive.name} but no unpacked games; "
                           f"`tar -xJf {archive} -C {base}`")
        raise EnvError(f"environment.dataDir: no ALFWorld games under {base} ({source}; expected "
                       f"json_2.1.1/<split>/<task-folder>/<trial>/{GAME}); {HOW_TO_GET_DATA}")

    def _new_game(self, expert: bool = False) -> _Game:
        textworld, PddlEnv, AlfredDemangler, AlfredExpert = _packages()
        infos = textworld.EnvInfos(won=True, admissible_commands=True)
        env = AlfredDemangler(PddlEnv(infos), shuffle=False)
        if expert:
            env = AlfredExpert(env, expert_type="handcoded")  # asks the engine for facts too
        return _Game(env)

    def _load(self, game: _Game, path: str) -> dict:
        """Load (unless already loaded) and reset; the initial game state."""
        with self._translations.active():
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
            base = self.root / split
            ids = sorted(f"{p.parent.parent.name}/{p.parent.name}" for p in base.glob(f"*/*/{GAME}")) \
                if base.is_dir() else []
            by_type = [[e for e in ids if task_type_of(e) == t] for t in self.task_types]
            self._episodes[split] = [e for row in itertools.zip_longest(*by_type) for e in row if e is not None]
        return list(self._episodes[split])

    def task_type(self, episode_id: str) -> str:
        t = task_type_of(episode_id)
        if t not in TASK_TYPES:
            raise EnvError(f"episode '{episode_id}' does not name an ALFWorld task type")
        return t

    def _path(self, episode: str) -> tuple[str, Path]:
        parts = episode.split("/") if episode else []
        if len(parts) != 2 or not all(parts) or ".." in parts:
            raise EnvError(f"episode id '{episode}' is not <task-folder>/<trial> "
                           "(e.g. pick_and_place_simple-Apple-None-Fridge-1/trial_T20190907_000000_000000)")
        for split in SPLITS:
            path = self.root / split / episode / GAME
            if path.is_file():
                return split, path
        raise EnvError(f"episode '{episode}': no {GAME} for it in any split under {self.root}")

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
        return self._observation(state, first=True, limit=False)

    def reset(self, episode: str) -> Observation:
        self._episode = None
        _, path = self._path(episode)
        if self._agent is None:
            self._agent = self._new_game()
        return self._begin(self._agent, episode, path)

    def _step(self, game: _Game, action: str, limit: bool) -> Observation:
        if self._episode is None or game is None or game.state is None:
            raise EnvError("step() before reset(): start an episode first")
        self._steps += 1
        game.state, _, _ = game.env.step(action)
        return self._observation(game.state, first=False, limit=limit)

    def step(self, action: str) -> Observation:
        return self._step(self._agent, action, limit=True)

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
        _, path = self._path(episode)
        # Read from the file (a few ms) so that long walkthroughs are skipped without loading the game.
        try:
            walkthrough = json.loads(path.read_text()).get("walkthrough") or []
        except (OSError, ValueError) as e:
            raise EnvError(f"ALFWorld could not load {path}: {type(e).__name__}: {e}") from e
        if not walkthrough or len(walkthrough) > max_length:
            return None
        if self._agent is None:
            self._agent = self._new_game()
        obs = self._begin(self._agent, episode, path)
        steps: list[Step] = []
        for action in walkthrough:
            steps.append(Step(observation=obs.text, action=action, admissible=obs.admissible))
            obs = self._step(self._agent, action, limit=False)
            if obs.done:
                break
        if not obs.won:
            log.warning("ALFWorld %s: the stored walkthrough did not win; skipped", episode)
            return None
        return self._trajectory(split, episode, steps)

    def _expert_path(self, episode: str, path: Path) -> Path:
        """The game path to give the handcoded expert: one with a traj_data.json beside it."""
        if (path.parent / "traj_data.json").is_file():
            return path
        if self._traj_dir is None:
            self._traj_dir = tempfile.mkdtemp(prefix="act-alfworld-")
        folder = Path(self._traj_dir) / episode
        linked = folder / GAME
        if not linked.exists():
            folder.mkdir(parents=True, exist_ok=True)
            (folder / "traj_data.json").write_text(json.dumps(derive_traj_data(episode.split("/")[0])))
            try:
                linked.symlink_to(path.resolve())
            except OSError:
                shutil.copyfile(path, linked)
        return linked

    def _handcoded(self, split: str, episode: str, max_length: int) -> Trajectory | None:
        _, path = self._path(episode)
        if self._expert is None:
            self._expert = self._new_game(expert=True)
        game = self._expert
        saved = random.getstate()
        random.seed(episode)  # the expert's fallback moves use the global `random`
        try:
            obs = self._begin(game, episode, self._expert_path(episode, path))
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
