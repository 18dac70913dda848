"""ScienceWorld adapter: the `scienceworld` package, a Scala simulator driven over py4j.

Cheap stepping. `scienceworld.ScienceWorldEnv.step()` makes eight JVM round trips per action:
the step, score, completion flag and move count, then look, inventory, task description and
`get_valid_action_object_combinations()`, which enumerates every action-object combination
in view (1,000+ strings in a kitchen). We call the gateway object `env.server` (a
`scienceworld.runtime.pythonapi.PythonInterface`) directly instead:
`server.step(action)` returns the observation and stores the score and completion flag in
fields, and `server.getScore()` / `server.getCompleted()` only read those fields. That is
three round trips per action and no enumeration: on 2 cores, replaying the same five gold
paths (315 steps, warm JVM), about 120-160 steps/s against 16-17 for `env.step()`. The
valid-action list is computed only when `admissible()` is asked (10-50 ms, warm JVM).

Semantics, as the simulator reports them: the score lies in [0, 1] (we report 0-100, like
the package); a task failure (e.g. focusing on the wrong object) sets the score to -1 and
leaves the completion flag false; the flag becomes true only when the task is done, with
score 1. The package's own wrapper ends an episode on a negative score, and so do we.
"""

from __future__ import annotations

import itertools
import logging
import shutil
from collections.abc import Iterator

from act_trainer.data import Step, Trajectory
from act_trainer.envs.base import EnvError, Observation

log = logging.getLogger(__name__)

SPLITS = ("train", "dev", "test")
INSTALL_JAVA = ("ScienceWorld needs a Java runtime (>= 11) on PATH to start its simulator; "
                "install one, e.g. `apt-get install default-jre-headless`")


def _package():
    try:
        import scienceworld
    except ImportError as e:
        raise EnvError(f"the ScienceWorld adapter needs the `scienceworld` package ({e}); "
                       "install it with `pip install 'act-operator[envs]'`") from None
    return scienceworld


def task_names() -> list[str]:
    """All task names, in the package's task order (tasks.json); no JVM needed."""
    _package()
    from scienceworld.constants import ID2TASK

    return list(ID2TASK.values())


def _shutdown(sw) -> None:
    sw.close()
    # The package's __del__ calls close() again, and py4j logs a traceback for shutting
    # down a closed gateway; once is enough.
    sw.close = lambda: None


class ScienceWorldEnv:
    """One simulator (one JVM) per adapter, started on first use; episode ids are "TASK:VARIATION".

    reset(), expert() and episodes() (the first time it meets a task) all drive that one
    simulator, so each of them ends the episode in progress.
    """

    name = "scienceworld"

    def __init__(self, cfg):
        self.cfg = cfg
        self.tasks = self._check_tasks(list(cfg.tasks))
        self._sw = None            # scienceworld.ScienceWorldEnv, started lazily
        self._variations: dict[str, dict[str, list[int]]] = {}
        self._episode: str | None = None
        self._goal = ""
        self._steps = 0

    # --- setup -----------------------------------------------------------------------------

    @staticmethod
    def _check_tasks(tasks: list[str]) -> list[str]:
        from scienceworld.utils import infer_task

        valid = task_names()
        if not tasks:
            return valid
        # infer_task also accepts the paper's ids ("1-1") and long names.
        names = [infer_task(t) for t in tasks]
        unknown = [t for t, n in zip(tasks, names, strict=True) if n not in valid]
        if unknown:
            raise EnvError(f"env.tasks: unknown ScienceWorld task(s) {unknown}; "
                           f"valid names: {', '.join(valid)}")
        return list(dict.fromkeys(names))

    def _server(self):
        """The simulator's gateway object, starting the JVM the first time (a few seconds)."""
        if self._sw is None:
            package = _package()
            if shutil.which("java") is None:
                raise EnvError(INSTALL_JAVA)
            try:
                sw = package.ScienceWorldEnv("")
            except Exception as e:  # py4j raises plain Exceptions when the JVM does not come up
                raise EnvError(f"the ScienceWorld simulator did not start: {e}. {INSTALL_JAVA}") from e
            possible = ["easy"] + sw.get_possible_simplifications()
            unknown = [s for s in self.cfg.simplification.split(",") if s and s not in possible]
            if unknown:
                _shutdown(sw)
                raise EnvError(f"env.simplification: unknown {unknown}; use a comma-separated subset of "
                               f"{', '.join(possible)}")
            self._sw = sw
        return self._sw.server

    def _load(self, task: str, variation: int, gold: bool) -> None:
        simplification = self.cfg.simplification
        if "noElectricalAction" in simplification and ("power-component" in task or "conductivity" in task):
            raise EnvError(f"env.simplification: task '{task}' needs electrical actions; "
                           "drop noElectricalAction for it")
        self._episode = None
        err = self._server().load(task, variation, simplification, gold)
        if err:  # the simulator answers a bad variation with an error string, not an exception
            raise EnvError(f"ScienceWorld could not load {task}:{variation}: {err}")

    def _parse(self, episode: str) -> tuple[str, int]:
        task, _, variation = episode.rpartition(":")
        if not task or not variation.isdigit():
            raise EnvError(f"episode id '{episode}' is not TASK:VARIATION (e.g. boil:3)")
        if task not in task_names():
            raise EnvError(f"episode '{episode}': unknown task '{task}'; "
                           f"valid names: {', '.join(task_names())}")
        return task, int(variation)

    # --- protocol --------------------------------------------------------------------------

    def splits(self) -> list[str]:
        return list(SPLITS)

    def _split_variations(self, task: str) -> dict[str, list[int]]:
        # The variation lists come from the loaded task, so listing them means loading it.
        if task not in self._variations:
            self._load(task, 0, gold=False)
            srv = self._server()
            self._variations[task] = {
                "train": list(srv.getVariationsTrain()),
                "dev": list(srv.getVariationsDev()),
                "test": list(srv.getVariationsTest()),
            }
        return self._variations[task]

    def episodes(self, split: str) -> list[str]:
        if split not in SPLITS:
            raise EnvError(f"unknown split '{split}'; ScienceWorld has {', '.join(SPLITS)}")
        per_task = [[f"{t}:{v}" for v in self._split_variations(t)[split]] for t in self.tasks]
        # Round-robin over tasks, so the first N episodes cover several tasks.
        return [e for row in itertools.zip_longest(*per_task) for e in row if e is not None]

    def _begin(self, episode: str) -> Observation:
        srv = self._server()
        self._episode, self._goal, self._steps = episode, srv.getTaskDescription(), 0
        # "look around" is free (no simulated time) and refreshes the score fields, which a
        # load leaves stale; the package's own reset() does the same.
        return self._observe(srv.step("look around"), limit=False)

    def _observe(self, text: str, limit: bool) -> Observation:
        srv = self._server()
        score = float(round(100 * srv.getScore()))
        completed = bool(srv.getCompleted())
        out_of_steps = limit and self._steps >= self.cfg.max_steps
        return Observation(text=text, goal=self._goal, done=completed or score < 0 or out_of_steps,
                           won=completed and score > 0, score=score)

    def reset(self, episode: str) -> Observation:
        task, variation = self._parse(episode)
        self._load(task, variation, gold=False)
        return self._begin(episode)

    def _step(self, action: str, limit: bool) -> Observation:
        if self._episode is None:
            raise EnvError("step() before reset(): start an episode first")
        self._steps += 1
        return self._observe(self._server().step(action), limit)

    def step(self, action: str) -> Observation:
        return self._step(action, limit=True)

    def admissible(self) -> list[str] | None:
        # The expensive call (every valid action-object combination: 100-1,500 strings, 10-50 ms):
        # worth paying only when a caller asks, e.g. collect filtering inadmissible candidates.
        if self._episode is None:
            return None
        return list(dict.fromkeys(self._server().getValidActionObjectCombinations()))

    def expert(self, split: str, limit: int, max_length: int) -> Iterator[Trajectory]:
        """Gold paths replayed in the simulator; yields only those that end in success.

        The simulator's gold agent makes random choices (which object, which route), so two
        runs may give different paths for the same variation.
        """
        made = skipped = 0
        for episode in self.episodes(split):
            if made >= limit:
                break
            task, variation = self._parse(episode)
            self._load(task, variation, gold=True)
            gold = list(self._server().getGoldActionSequence())
            if not gold or len(gold) > max_length:
                skipped += 1
                continue
            obs = self._begin(episode)
            steps: list[Step] = []
            for action in gold:
                steps.append(Step(observation=obs.text, action=action, admissible=None))
                obs = self._step(action, limit=False)  # the agent's step limit is not the expert's
                if obs.done:
                    break
            if not obs.won:
                log.warning("ScienceWorld %s: gold path did not complete the task (score %s); skipped",
                            episode, obs.score)
                skipped += 1
                continue
            made += 1
            yield Trajectory(env=self.name, task=task, goal=obs.goal, steps=steps, variation=variation,
                             split=split, success=True, score=obs.score)
        if skipped:
            log.info("ScienceWorld %s: skipped %d gold paths (longer than %d steps or not successful)",
                     split, skipped, max_length)

    def close(self) -> None:
        if self._sw is not None:
            sw, self._sw, self._episode = self._sw, None, None
            _shutdown(sw)
