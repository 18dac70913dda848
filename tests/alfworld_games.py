"""A few ALFWorld games per split, unpacked from ../shared/data/alfworld's archive for tests
(the shared copy is never written)."""

from __future__ import annotations

import os
import tarfile
from pathlib import Path

# The checkout's sibling shared/ (repo /work/main -> /work/shared), or $ACT_SHARED_DIR.
SHARED = Path(os.environ.get("ACT_SHARED_DIR") or Path(__file__).resolve().parents[2] / "shared")
ARCHIVE = SHARED / "data" / "alfworld" / "json_2.1.1.tar.xz"
GAMES = {
    "train": [
        "pick_and_place_simple-AlarmClock-None-Desk-307/trial_T20190907_072303_146844",
        "pick_heat_then_place_in_recep-Apple-None-CounterTop-2/trial_T20190908_112534_364453",
    ],
    "valid_seen": [
        "look_at_obj_in_light-AlarmClock-None-DeskLamp-323/trial_T20190909_044715_250790",
        "pick_cool_then_place_in_recep-Apple-None-CounterTop-14/trial_T20190909_044933_815840",
    ],
    "valid_unseen": [
        "pick_and_place_simple-Mug-None-Desk-308/trial_T20190908_125200_737896",
        "pick_heat_then_place_in_recep-Apple-None-Fridge-10/trial_T20190906_182259_116320",
        "pick_two_obj_and_place-CD-None-Safe-308/trial_T20190907_050942_897916",  # handcoded expert loses
    ],
}
HANDCODED_LOSES = GAMES["valid_unseen"][2]


def extract(root: Path) -> Path:
    """An ALFWORLD_DATA-style directory holding json_2.1.1/ with only the games above."""
    wanted = tuple(f"json_2.1.1/{split}/{game}/" for split, games in GAMES.items() for game in games)
    with tarfile.open(ARCHIVE, "r:xz") as tf:
        members = [m for m in tf if m.isfile() and m.name.startswith(wanted)]
        tf.extractall(root, members=members, filter="data")
    assert len([m for m in members if m.name.endswith("game.tw-pddl")]) == 7
    (root / "json_2.1.1" / "valid_train").mkdir()  # an empty split
    return root
