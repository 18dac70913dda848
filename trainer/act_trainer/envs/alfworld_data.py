"""ALFWorld's game files: where they are, how they split, what their folder names say.

Game files: `$ALFWORLD_DATA/json_2.1.1/<split>/<task-folder>/<trial>/game.tw-pddl` (what
`alfworld-download` fetches, or an unpacked json_2.1.1.tar.xz). `environment.dataDir` (else the
ALFWORLD_DATA variable, else ALFWorld's default ~/.cache/alfworld) names the directory that holds
json_2.1.1/ (or json_2.1.1/ itself). Note that importing `alfworld` creates ~/.cache/alfworld and
sets ALFWORLD_DATA to it when unset.

Splits: train (3,553 games), valid_seen (140: the in-distribution eval, "ID"), valid_unseen
(134: out-of-distribution, "OOD"), valid_train (200). Episode ids are the game's folder
relative to its split, "<task-folder>/<trial>", e.g.
"pick_clean_then_place_in_recep-Lettuce-None-Fridge-19/trial_T20190908_100138_446072";
trials are unique across splits, so an episode's split is found from its id. A split lists
round-robin over task types (each type sorted by id), so its first N cover all six types.
`environment.tasks` filters by task type (the folder name's prefix; ALFWorld's ids 1-6 are
accepted too).

ALFWorld's handcoded expert reads a `traj_data.json` beside the game. Where it is missing
(e.g. the mirror in ../shared/data/alfworld) we derive a minimal one from the task folder name,
`<task_type>-<object>-<mrecep|None>-<parent>-<scene>`, into a temporary directory holding a
link to the game: the data directory is never written.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

from act_trainer.contract import ENV_FACTS
from act_trainer.envs.base import EnvError

SPLITS = ENV_FACTS["alfworld"].splits  # the one definition: act_trainer.contract
TASK_TYPES = ENV_FACTS["alfworld"].tasks
GAME = "game.tw-pddl"
DEFAULT_DATA = "~/.cache/alfworld"
HOW_TO_GET_DATA = ("unpack ALFWorld's game files (json_2.1.1.tar.xz, or run `alfworld-download`) into a "
                   "directory and set environment.dataDir (or ALFWORLD_DATA) to it, e.g. "
                   "`tar -xJf json_2.1.1.tar.xz -C /data/alfworld` and dataDir: /data/alfworld")


def task_type_of(episode: str) -> str:
    """The task type of an episode id (or a task folder name): the part before the first '-'."""
    return episode.split("/", 1)[0].split("-", 1)[0]


def check_tasks(tasks: list[str]) -> list[str]:
    """environment.tasks as task type names (all six when empty), in the configured order."""
    if not tasks:
        return list(TASK_TYPES)
    names = [TASK_TYPES[int(t) - 1] if t.isdigit() and 1 <= int(t) <= 6 else t for t in tasks]
    unknown = [t for t, n in zip(tasks, names, strict=True) if n not in TASK_TYPES]
    if unknown:
        raise EnvError(f"environment.tasks: unknown ALFWorld task type(s) {unknown}; valid: "
                       f"{', '.join(TASK_TYPES)} (or their ids 1-6)")
    return list(dict.fromkeys(names))


def find_root(data_dir: str | None) -> Path:
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


def split_episodes(root: Path, split: str, task_types: list[str]) -> list[str]:
    """Episode ids of a split, round-robin over `task_types` (in that order), each type sorted."""
    base = root / split
    ids = sorted(f"{p.parent.parent.name}/{p.parent.name}" for p in base.glob(f"*/*/{GAME}")) \
        if base.is_dir() else []
    by_type = [[e for e in ids if task_type_of(e) == t] for t in task_types]
    return [e for row in itertools.zip_longest(*by_type) for e in row if e is not None]


def game_path(root: Path, episode: str) -> tuple[str, Path]:
    """(split, game file) of an episode id."""
    parts = episode.split("/") if episode else []
    if len(parts) != 2 or not all(parts) or ".." in parts:
        raise EnvError(f"episode id '{episode}' is not <task-folder>/<trial> "
                       "(e.g. pick_and_place_simple-Apple-None-Fridge-1/trial_T20190907_000000_000000)")
    for split in SPLITS:
        path = root / split / episode / GAME
        if path.is_file():
            return split, path
    raise EnvError(f"episode '{episode}': no {GAME} for it in any split under {root}")


def read_walkthrough(path: Path) -> list[str]:
    """The walkthrough stored in a game file (a few ms: no need to load the game)."""
    try:
        return json.loads(path.read_text()).get("walkthrough") or []
    except (OSError, ValueError) as e:
        raise EnvError(f"ALFWorld could not load {path}: {type(e).__name__}: {e}") from e


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


def with_traj_data(episode: str, path: Path, traj_dir: Callable[[], Path]) -> Path:
    """A game path with a traj_data.json beside it: `path` itself if it has one, else a link to it
    under `traj_dir()` beside a traj_data.json derived from the episode's task folder name."""
    if (path.parent / "traj_data.json").is_file():
        return path
    folder = traj_dir() / episode
    linked = folder / GAME
    if not linked.exists():
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "traj_data.json").write_text(json.dumps(derive_traj_data(episode.split("/")[0])))
        try:
            linked.symlink_to(path.resolve())
        except OSError:
            shutil.copyfile(path, linked)
    return linked
