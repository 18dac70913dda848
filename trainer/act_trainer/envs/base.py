"""The environment protocol every adapter implements.

An adapter wraps one real environment package. The stages only see this protocol:
collect and policy need expert trajectories, eval needs episodes it can play and their task
types. tests/integration/test_env_protocol.py checks every adapter against it by behaviour.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

from act_trainer.data import Trajectory
from act_trainer.errors import PermanentError, TransientError


class EnvError(PermanentError, RuntimeError):
    """The environment cannot be used as configured (missing package, runtime, data or split):
    permanent (stage exit code 2), unless it is an EnvUnavailable."""


class EnvUnavailable(TransientError, EnvError):
    """The environment's server does not answer (yet), or answers with an error: a retry may fix it."""


@dataclass
class Observation:
    text: str                            # what the agent sees now
    goal: str                            # the episode's task, the same at every step
    done: bool = False                   # won, failed, or out of steps (environment.maxSteps)
    won: bool = False
    score: float = 0.0                   # 0-100 (ScienceWorld: -100 for a failed task)
    admissible: list[str] | None = None  # where the environment lists them with every step, else None


def alike(a: str, b: str) -> bool:
    """Two observation texts of the same state: equal, or the same lines in another order
    (ScienceWorld lists a room's like-named objects, e.g. three wood cups, in an order that
    varies from one load of the episode to the next)."""
    return a == b or sorted(a.splitlines()) == sorted(b.splitlines())


@dataclass
class Branch:
    """An action taken at a restored expert state (Environment.branch): the state, and what followed."""

    state: Observation   # the expert state, as playing the expert live to it shows it
    next: Observation    # after the action; done means won or failed (no agent step limit here)

    @property
    def score_change(self) -> float:
        return self.next.score - self.state.score


class Environment(Protocol):
    name: str

    def splits(self) -> list[str]:
        """Split names this environment has (e.g. train, dev, test)."""

    def episodes(self, split: str) -> list[str]:
        """Episode ids of a split, unique and in a stable order (an id identifies task + variation/game).

        An unknown split raises EnvError naming it and the splits there are.
        """

    def task_type(self, episode: str) -> str | None:
        """The episode's task type, for eval's per-type success rates: the `task` of its expert
        trajectories; None where eval does not break the environment's results down by type."""

    def reset(self, episode: str) -> Observation:
        """Start an episode: its first observation (text and goal non-empty, not done).

        A bad id raises EnvError and leaves no episode to step in.
        """

    def step(self, action: str) -> Observation:
        """Take an action: any string (one the environment does not know changes nothing and does
        not end the episode); the episode is done after environment.maxSteps steps at the latest.
        Raises EnvError before reset(). Cheap: no enumeration of admissible actions unless the
        environment gives them free."""

    def admissible(self) -> list[str] | None:
        """Admissible actions now (None before reset(), or where the environment cannot list them)."""

    def expert(self, split: str, limit: int, max_length: int) -> Iterator[Trajectory]:
        """Up to `limit` winning expert trajectories of a split (e.g. gold paths), none longer than
        `max_length` steps. Replaying one's actions from reset() of its episode sees the same
        observations and admissible actions and wins (where it was recorded in this environment)."""

    def branch(self, traj: Trajectory, step: int, action: str) -> Branch:
        """Restore the state before `traj.steps[step]` (an expert trajectory of this environment) and
        take `action` there, without the agent's step limit. Replays the expert's first `step`
        actions from reset() of the trajectory's episode; ReplayDiverged (an EnvError) when they do
        not replay here (an observation differs from the recorded one), EnvError when the
        environment cannot branch. Replays are
        cached (envs/branching.py). Ends the episode in progress: call reset() before step() again."""

    def admissible_at(self, traj: Trajectory, step: int) -> list[str] | None:
        """The admissible actions at the state before `traj.steps[step]`, restored as branch() restores
        it (None where the environment cannot list them); EnvError where it cannot branch."""

    def close(self) -> None:
        """Release what the adapter started (simulator, engine, HTTP session); safe to call more than
        once. An adapter used again afterwards starts what it needs afresh."""
