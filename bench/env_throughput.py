"""Environment throughput: steps/s of each adapter vs the environment package's own step loop,
replaying the same expert actions on the same episodes, in the same process.

    OMP_NUM_THREADS=1 python bench/env_throughput.py     # target: ratio >= 0.9 for every row
    OMP_NUM_THREADS=1 python bench/env_throughput.py textworld_express alfworld_collect   # some rows only

Baselines ("raw"), each the package's own Python API, used the way its README shows:
- ScienceWorld: `scienceworld.ScienceWorldEnv` load(task, variation, simplification) / reset() / step().
- ALFWorld: `textworld.start(game, EnvInfos(won, admissible_commands), wrappers=[AlfredDemangler,
  AlfredInfos])` / reset() / step(): ALFWorld's engine without AlfredTWEnv's config and gym batching
  (which only add overhead), i.e. the fastest raw path.
- TextWorldExpress: `textworld_express.TextWorldExpressEnv` reset(seed, fold, game, params) / step().
Steps are timed alone (resets are reported apart). An untimed pass of each side first warms it up
(the JVMs' JIT) and sizes the window: each round replays the episodes as many times as it takes for
a side to step for at least MIN_WINDOW_S (TextWorldExpress's 40 short games step in ~0.2 s, where
one scheduling hiccup on a shared machine swung the ratio from 0.24x to 13.8x). Within a round raw
and adapter alternate episode by episode, so drift and load bursts hit both alike; the table shows
the median of ROUNDS rounds' ratios and their spread (lowest-highest).

ALFWorld games come from $ALFWORLD_DATA when it holds them, else a few are unpacked from ../shared/data/alfworld's
archive into a temporary directory. A row is skipped (with the reason) when its package is missing.
More rows (e.g. the collect stage's states/s on ALFWorld) are functions added to ROWS.
"""

from __future__ import annotations

import math
import os
import statistics
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

from act_trainer.config import EnvironmentConfig
from act_trainer.envs import make_env

ROUNDS = 5
MIN_WINDOW_S = 2.0  # the least time a side steps in one round
SHARED = Path(os.environ.get("ACT_SHARED_DIR") or Path(__file__).resolve().parents[2] / "shared")
ALFWORLD_GAMES = [  # short walkthroughs of four task types, in three splits
    "train/pick_and_place_simple-AlarmClock-None-Desk-307/trial_T20190907_072303_146844",
    "train/pick_heat_then_place_in_recep-Apple-None-CounterTop-2/trial_T20190908_112534_364453",
    "valid_seen/pick_cool_then_place_in_recep-Apple-None-CounterTop-14/trial_T20190909_044933_815840",
    "valid_unseen/pick_two_obj_and_place-Pillow-None-Sofa-219/trial_T20190907_163240_345855",
]


@dataclass
class Row:
    env: str
    episodes: int
    steps: int                 # per round
    raw_steps_s: float
    ours_steps_s: float
    raw_reset_s: float         # seconds per reset, median over rounds
    ours_reset_s: float
    ratios: list[float]        # each round's ours/raw steps/s, sorted
    repeat: int                # passes over the episodes per round and side
    note: str = ""

    @property
    def ratio(self) -> float:
        return statistics.median(self.ratios)


def _timed(episodes: list, reset: Callable, step: Callable, repeat: int = 1) -> tuple[float, float, int]:
    """(seconds stepping, seconds resetting, steps) for `repeat` passes over the episodes."""
    stepping = resetting = 0.0
    n = 0
    for episode, actions in episodes * repeat:
        t = time.perf_counter()
        reset(episode)
        resetting += time.perf_counter() - t
        t = time.perf_counter()
        for a in actions:
            step(a)
        stepping += time.perf_counter() - t
        n += len(actions)
    return stepping, resetting, n


def _compare(name: str, episodes: list, raw_reset, raw_step, ours_reset, ours_step, note: str = "") -> Row:
    first = [_timed(episodes, raw_reset, raw_step), _timed(episodes, ours_reset, ours_step)]  # untimed warm-up
    repeat = max(1, math.ceil(MIN_WINDOW_S / max(1e-6, min(f[0] for f in first))))
    raw, ours = [], []
    for _ in range(ROUNDS):  # raw and ours alternate episode by episode (who goes first alternating too):
        r_parts, o_parts = [], []  # a load burst on the shared machine then hits both sides alike
        for i, episode in enumerate(episodes * repeat):
            sides = [(raw_reset, raw_step, r_parts), (ours_reset, ours_step, o_parts)]
            for reset, step, parts in sides[::1 if i % 2 else -1]:
                parts.append(_timed([episode], reset, step))
        raw.append(tuple(map(sum, zip(*r_parts, strict=True))))
        ours.append(tuple(map(sum, zip(*o_parts, strict=True))))
    n = raw[0][2]
    med = statistics.median
    return Row(name, len(episodes), n, n / med(r[0] for r in raw), n / med(o[0] for o in ours),
               med(r[1] for r in raw) / len(episodes) / repeat, med(o[1] for o in ours) / len(episodes) / repeat,
               sorted(r[0] / o[0] for r, o in zip(raw, ours, strict=True)), repeat, note)


# --- rows ----------------------------------------------------------------------------------

def scienceworld() -> Row:
    import scienceworld as sw_package

    cfg = EnvironmentConfig(name="scienceworld", tasks=["find-living-thing", "lifespan-longest-lived"])
    env = make_env(cfg)
    raw = sw_package.ScienceWorldEnv("", envStepLimit=10_000)
    try:
        trajs = list(env.expert("train", 4, 30))
        episodes = [((t.task, int(t.variation)), [s.action for s in t.steps]) for t in trajs]

        def raw_reset(ep):
            raw.load(ep[0], ep[1], cfg.simplification)
            raw.reset()

        return _compare("scienceworld", episodes, raw_reset, raw.step,
                        lambda ep: env.reset(f"{ep[0]}:{ep[1]}"), env.step,
                        "raw env.step() also lists every valid action")
    finally:
        env.close()
        raw.close()


def _alfworld_data() -> tuple[str, tempfile.TemporaryDirectory | None]:
    own = os.environ.get("ALFWORLD_DATA")
    if own and (Path(own) / "json_2.1.1" / ALFWORLD_GAMES[0]).is_dir():
        return own, None
    archive = SHARED / "data" / "alfworld" / "json_2.1.1.tar.xz"
    if not archive.is_file():
        raise RuntimeError(f"no ALFWorld games: set ALFWORLD_DATA or provide {archive}")
    tmp = tempfile.TemporaryDirectory(prefix="bench-alfworld-")
    wanted = tuple(f"json_2.1.1/{g}/" for g in ALFWORLD_GAMES)
    with tarfile.open(archive, "r:xz") as tf:
        tf.extractall(tmp.name, members=[m for m in tf if m.isfile() and m.name.startswith(wanted)],
                      filter="data")
    return tmp.name, tmp


def alfworld() -> Row:
    import textworld
    from alfworld.agents.environment.alfred_tw_env import AlfredDemangler, AlfredInfos

    from act_trainer.envs.alfworld_data import game_path

    data_dir, tmp = _alfworld_data()
    env = make_env(EnvironmentConfig(name="alfworld", data_dir=data_dir, max_steps=1000))
    try:
        episodes = []
        for game in ALFWORLD_GAMES:
            split, episode = game.split("/", 1)
            traj = env._walkthrough(split, episode, max_length=100)
            episodes.append((episode, [s.action for s in traj.steps]))
        infos = textworld.EnvInfos(won=True, admissible_commands=True)
        raw = {}

        def raw_reset(episode):
            path = str(game_path(env.root, episode)[1])
            argv = list(sys.argv)
            if "env" not in raw:  # one engine, loading game after game, as AlfredTWEnv's workers do
                raw["env"] = textworld.start(path, request_infos=infos, wrappers=[AlfredDemangler, AlfredInfos])
            else:
                raw["env"].load(path)
            raw["env"].reset()
            sys.argv = argv  # fast-downward's translator overwrites it

        return _compare("alfworld", episodes, raw_reset, lambda a: raw["env"].step(a), env.reset, env.step,
                        "reset = load + reset; ours remembers PDDL translations")
    finally:
        env.close()
        if tmp is not None:
            tmp.cleanup()


def textworld_express() -> Row:
    import textworld_express as twx_package

    game, params = "twc", "numLocations=1,numItemsToPutAway=2"
    env = make_env(EnvironmentConfig(name="textworld-express", game=game, game_params=params, max_steps=1000))
    raw = twx_package.TextWorldExpressEnv(envStepLimit=10_000)
    try:
        trajs = list(env.expert("train", 40, 30))
        episodes = [(int(t.variation), [s.action for s in t.steps]) for t in trajs]
        return _compare("textworld-express", episodes,
                        lambda seed: raw.reset(seed=seed, gameFold="train", gameName=game, gameParams=params),
                        raw.step, lambda seed: env.reset(f"train:{seed}"), env.step,
                        "raw env.step() makes 2 JVM round trips, ours 1")
    finally:
        env.close()
        raw.close()
        raw.close = lambda: None


ROWS: list[Callable[[], Row]] = [scienceworld, alfworld, textworld_express]


def alfworld_collect() -> str:
    """The collect stage's throughput on ALFWorld: sampling K alternatives per walkthrough state
    with the tiny model, and filtering them by ALFWorld's admissible commands."""
    from act_trainer.config import CollectConfig, JobRef
    from act_trainer.engines.hf import HFEngine
    from act_trainer.models import resolve_model
    from act_trainer.stages.collect import contrast_pairs

    data_dir, tmp = _alfworld_data()
    env_cfg = EnvironmentConfig(name="alfworld", data_dir=data_dir, history=2)
    env = make_env(env_cfg)
    try:
        trajs = [env._walkthrough(*game.split("/", 1), max_length=100) for game in ALFWORLD_GAMES]
    finally:
        env.close()
        if tmp is not None:
            tmp.cleanup()
    model_dir = str(resolve_model("tiny://qwen3-tiny"))
    cfg = CollectConfig(job=JobRef(name="bench", uid="bench"), output="file:///tmp/bench", model=model_dir,
                        env=env_cfg, samples=8, max_alternatives=4, batch_size=16,
                        temperature=1.0, max_new_tokens=16)
    engine = HFEngine(model_dir, batch_size=16)
    states = sum(len(t.steps) for t in trajs)
    t = time.perf_counter()
    _, report = contrast_pairs(cfg, engine, trajs)
    secs = time.perf_counter() - t
    return (f"collect on ALFWorld (tiny Qwen3, K=8, admissible filter): {states} states in {secs:.1f} s = "
            f"{states / secs:.1f} states/s, {report.sampled / secs:.0f} alternatives/s")


def main() -> None:
    wanted = set(sys.argv[1:])
    known = {b.__name__ for b in ROWS} | {"alfworld_collect"}
    if wanted - known:
        sys.exit(f"unknown rows {sorted(wanted - known)}; choose from {sorted(known)}")
    rows, skipped = [], []
    for bench in ROWS:
        if wanted and bench.__name__ not in wanted:
            continue
        try:
            rows.append(bench())
        except ImportError as e:
            skipped.append(f"{bench.__name__}: skipped ({e})")
        print(f"done: {bench.__name__}", file=sys.stderr, flush=True)
    head = (f"{'environment':<18} {'episodes':>8} {'steps':>6} {'raw steps/s':>12} {'ours steps/s':>13} "
            f"{'ratio':>6} {'spread':>11} {'raw reset s':>12} {'ours reset s':>13}  note")
    print(head)
    print("-" * len(head))
    for r in rows:
        spread = f"{r.ratios[0]:.2f}-{r.ratios[-1]:.2f}"
        print(f"{r.env:<18} {r.episodes:>8} {r.steps:>6} {r.raw_steps_s:>12.1f} {r.ours_steps_s:>13.1f} "
              f"{r.ratio:>5.2f}x {spread:>11} {r.raw_reset_s:>12.3f} {r.ours_reset_s:>13.3f}  {r.note}"
              + (f"; episodes x{r.repeat} a round" if r.repeat > 1 else ""))
    for s in skipped:
        print(s)
    print(f"target: ratio >= 0.9 (OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}, {ROUNDS} rounds of at least "
          f"{MIN_WINDOW_S:.0f} s stepping a side, median ratio and its spread; load average "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs)")
    if wanted and "alfworld_collect" not in wanted:
        return
    try:
        print(alfworld_collect())
    except (ImportError, RuntimeError) as e:
        print(f"collect on ALFWorld: skipped ({e})")


if __name__ == "__main__":
    main()
