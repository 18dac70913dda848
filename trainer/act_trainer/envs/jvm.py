"""What the Java-backed adapters (ScienceWorld, TextWorldExpress) share.

Both packages ship a Scala simulator that they start in a JVM and drive over a py4j gateway;
both adapters call the gateway object (`env.server`) directly for cheap stepping (see each
module). This base holds what is the same:

- lifecycle: one simulator (one JVM) per adapter, started on first use, never by the
  constructor; a clear error when Java is missing or the JVM does not come up; the adapter's
  settings are checked against the started simulator (a rejected setting shuts it down
  again); close() shuts it down and may be called again; a later call starts a fresh one;
- episodes: reset() loads a game and observes its first state; step() counts steps against
  environment.maxSteps; a failed load leaves no episode to step in. reset(), expert() and
  episodes() (the first time it needs the simulator's lists) all drive the one simulator, so
  each of them ends the episode in progress;
- experts: each episode of a split loaded with the simulator's gold path, the path replayed
  through the agent's own step (without the agent's step limit); only winning replays are yielded;
- branching (envs/branching.py): replaying an expert prefix through the same step.

A subclass says how to start and configure the simulator (its package is the registry's, in
envs/__init__.py), how to load an episode, and how to read the simulator's answers into
Observations.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Iterator

from act_trainer.contract import ENV_FACTS
from act_trainer.data import Step, Trajectory
from act_trainer.envs import import_package
from act_trainer.envs.base import EnvError, Observation
from act_trainer.envs.branching import Replaying

log = logging.getLogger(__name__)

SPLITS = ENV_FACTS["scienceworld"].splits  # the one definition: act_trainer.contract


def install_java(label: str) -> str:
    return (f"{label} needs a Java runtime (>= 11) on PATH to start its simulator; "
            "install one, e.g. `apt-get install default-jre-headless`")


def shutdown(sim) -> None:
    """Close a simulator (the package's env object) once."""
    try:
        sim.close()
    finally:
        # The package's __del__ calls close() again, and py4j logs a traceback for shutting
        # down a closed gateway; once is enough.
        sim.close = lambda: None


class JavaSimulatorEnv(Replaying):
    """Base of the adapters whose simulator runs in a JVM; see the module docstring."""

    name: str
    label: str           # how messages name the environment, e.g. "ScienceWorld"

    def __init__(self, cfg):
        self.cfg = cfg
        self._sim = None            # the package's env object, started lazily
        self._episode: str | None = None
        self._goal = ""
        self._steps = 0
        self._played: list[str] = []     # actions since the episode's reset (the branching cursor)
        self._now: Observation | None = None

    # --- what a subclass gives -------------------------------------------------------------

    def _start(self, package):
        """The package's env object (this starts the JVM)."""
        raise NotImplementedError

    def _configure(self, sim) -> None:
        """Check the adapter's settings against the started simulator; EnvError if it rejects them."""

    def _split_episodes(self, split: str) -> list[str]:
        raise NotImplementedError

    def _parse(self, episode: str) -> tuple[str, int]:
        """(task or fold, variation or seed) of an episode id; EnvError for a bad one."""
        raise NotImplementedError

    def _load(self, episode: str, gold: bool) -> None:
        """Load an episode's game (with its gold path when `gold`)."""
        raise NotImplementedError

    def _first(self) -> Observation:
        """The first observation of the game just loaded."""
        raise NotImplementedError

    def _act(self, action: str, limit: bool) -> Observation:
        """Send an action to the simulator and observe the result."""
        raise NotImplementedError

    def task_type(self, episode: str) -> str | None:
        raise NotImplementedError

    def _task(self, episode: str) -> str:
        """The task an expert trajectory of the episode records."""
        raise NotImplementedError

    # --- lifecycle -------------------------------------------------------------------------

    def _package(self):
        return import_package(self.name)

    def _server(self):
        """The simulator's gateway object, starting the JVM the first time."""
        if self._sim is None:
            package = self._package()
            if shutil.which("java") is None:
                raise EnvError(install_java(self.label))
            try:
                sim = self._start(package)
            except Exception as e:  # py4j raises plain Exceptions when the JVM does not come up
                raise EnvError(f"the {self.label} simulator did not start: {e}. {install_java(self.label)}") from e
            try:
                self._configure(sim)
            except BaseException:
                shutdown(sim)
                raise
            self._sim = sim
        return self._sim.server

    def close(self) -> None:
        if self._sim is not None:
            sim, self._sim, self._episode = self._sim, None, None
            shutdown(sim)

    # --- protocol --------------------------------------------------------------------------

    def splits(self) -> list[str]:
        return list(SPLITS)

    def episodes(self, split: str) -> list[str]:
        if split not in SPLITS:
            raise EnvError(f"unknown split '{split}'; {self.label} has {', '.join(SPLITS)}")
        return self._split_episodes(split)

    def _out_of_steps(self, limit: bool) -> bool:
        return limit and self._steps >= self.cfg.max_steps

    def _begin(self, episode: str) -> Observation:
        self._episode, self._goal, self._steps = episode, self._server().getTaskDescription(), 0
        self._played, self._now = [], self._first()
        return self._now

    def reset(self, episode: str) -> Observation:
        self._episode = None
        self._load(episode, gold=False)
        return self._begin(episode)

    def _step(self, action: str, limit: bool) -> Observation:
        if self._episode is None:
            raise EnvError("step() before reset(): start an episode first")
        self._steps += 1
        self._now = self._act(action, limit)
        self._played.append(action)
        return self._now

    def step(self, action: str) -> Observation:
        return self._step(action, limit=True)

    def _advance(self, action: str) -> Observation:
        return self._step(action, limit=False)

    def expert(self, split: str, limit: int, max_length: int) -> Iterator[Trajectory]:
        """The simulator's gold paths, replayed; yields only those that end in a win.

        A simulator's gold agent may make random choices (ScienceWorld's: which object, which
        route), so two runs may give different paths for the same episode.
        """
        made = skipped = 0
        for episode in self.episodes(split):
            if made >= limit:
                break
            self._episode = None
            self._load(episode, gold=True)
            gold = list(self._server().getGoldActionSequence())
            if not gold or len(gold) > max_length:
                skipped += 1
                continue
            obs = self._begin(episode)
            steps: list[Step] = []
            for action in gold:
                steps.append(Step(observation=obs.text, action=action, admissible=obs.admissible))
                obs = self._step(action, limit=False)  # the agent's step limit is not the expert's
                if obs.done:
                    break
            if not obs.won:
                log.warning("%s %s: gold path did not win (score %s); skipped", self.label, episode, obs.score)
                skipped += 1
                continue
            made += 1
            yield Trajectory(env=self.name, task=self._task(episode), goal=obs.goal, steps=steps,
                             variation=self._parse(episode)[1], split=split, success=True, score=obs.score)
        if skipped:
            log.info("%s %s: skipped %d gold paths (longer than %d steps or not winning)",
                     self.label, split, skipped, max_length)
