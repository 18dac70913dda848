"""The environment protocol every adapter implements.

An adapter wraps one real environment package. The stages only see this protocol:
collect and policy need expert trajectories, eval needs episodes it can play.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from act_trainer.data import Trajectory


class EnvError(RuntimeError):
    """The environment cannot be used as configured (missing package, runtime, data or split)."""


@dataclass
class Observation:
    text: str
    goal: str
    done: bool = False
    won: bool = False
    score: float = 0.0
    admissible: list[str] | None = None


@runtime_checkable
class Environment(Protocol):
    name: str

    def splits(self) -> list[str]:
        """Split names this environment has (e.g. train, dev, test)."""

    def episodes(self, split: str) -> list[str]:
        """Episode ids of a split, in a stable order (an id identifies task + variation/game)."""

    def reset(self, episode: str) -> Observation:
        """Start an episode; the observation holds the goal."""

    def step(self, action: str) -> Observation:
        """Take an action; cheap: no enumeration of admissible actions unless the env gives them free."""

    def admissible(self) -> list[str] | None:
        """Admissible actions now, or None where the environment cannot list them cheaply."""

    def expert(self, split: str, limit: int, max_length: int) -> Iterator[Trajectory]:
        """Up to `limit` expert trajectories of a split (e.g. gold paths), skipping longer ones."""

    def close(self) -> None: ...
