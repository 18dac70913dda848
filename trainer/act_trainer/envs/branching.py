"""Branching by replay: restore an expert state and take another action there.

ALFWorld, ScienceWorld and TextWorldExpress replay deterministically (ScienceWorld up to the order
in which a room lists like-named objects, and rare divergences: ReplayDiverged), and none of
their engines can save and load a state (ScienceWorld's and TextWorldExpress's Scala simulators have no snapshot
call; TextWorld's PddlEnv keeps its state inside fast-downward's C library). So a state is
restored by replaying: reset the trajectory's episode, step its first `step` expert actions,
and check that every observation is the recorded one, up to the order of its lines (base.alike;
a trajectory recorded elsewhere, or for another episode, fails loudly instead of branching from
the wrong state).

What is cached (`Replaying.caching`, on by default):

- **the cursor**: the adapter remembers its episode and the actions played since its reset
  (`_played`, kept by the adapter's own reset and step) and the last observation. A branch
  whose prefix extends those actions steps forward only the missing ones; any other reloads
  the episode and replays the prefix. Costs a list of action strings. Walking a trajectory's
  states in order (the expert's action at each) is therefore one replay in all.
- **an LRU of outcomes**: (episode, prefix, action) -> Branch, the last BRANCH_CACHE
  (1,024) branches. A hit moves nothing. Costs two Observations per entry (a few KB: the texts,
  and the admissible list where the environment gives one), a few MB in all. It answers a branch
  asked again in the same process (collect keeps the expert's outcomes of a batch itself, and
  asks each distinct alternative once, so there it seldom hits).

Without snapshots an alternative still costs a reload and a replay of its prefix (the
alternative leaves the simulator off the expert's path): about `step` simulator steps.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from act_trainer.data import Trajectory
from act_trainer.envs.base import Branch, EnvError, Observation, alike

BRANCH_CACHE = 1024  # outcomes kept (LRU)


class ReplayDiverged(EnvError):
    """An expert prefix did not replay to its recorded observations: the state cannot be restored.
    Rare in the environment's own trajectories (ScienceWorld: a thermometer reading one degree off
    on a replay, about 1 in 20 episodes); every step for trajectories recorded elsewhere."""


@dataclass
class ReplayStats:
    """What branching cost: how each restore began, and the simulator steps it took."""

    branches: int = 0      # branch() calls
    hits: int = 0          # answered from the outcome LRU
    resets: int = 0        # restores that reloaded the episode
    forward: int = 0       # restores that continued from the cursor
    steps: int = 0         # simulator steps taken for branching (replayed prefixes and the actions)


class Replaying:
    """Mixin of the deterministic adapters: branch() by replay, with the cursor and outcome LRU.

    The adapter gives `_episode_of(traj)` and `_advance(action)` (a step without the agent's step
    limit), and keeps `_episode` (None: no episode), `_played` (actions since its reset) and
    `_now` (the last observation) in its own reset and step.
    """

    caching: bool = True
    _episode: str | None
    _played: list[str]
    _now: Observation | None

    def _episode_of(self, traj: Trajectory) -> str:
        raise NotImplementedError

    def _advance(self, action: str) -> Observation:
        raise NotImplementedError

    def reset(self, episode: str) -> Observation:
        raise NotImplementedError

    @property
    def replay_stats(self) -> ReplayStats:
        if not hasattr(self, "_replay_stats"):
            self._replay_stats = ReplayStats()
        return self._replay_stats

    def _outcomes(self) -> OrderedDict:
        if not hasattr(self, "_outcome_lru"):
            self._outcome_lru: OrderedDict[tuple, Branch] = OrderedDict()
        return self._outcome_lru

    def branch(self, traj: Trajectory, step: int, action: str) -> Branch:
        self._check_step(traj, step)
        episode = self._episode_of(traj)
        prefix = tuple(s.action for s in traj.steps[:step])
        key = (episode, prefix, action)
        stats, lru = self.replay_stats, self._outcomes()
        stats.branches += 1
        if self.caching and key in lru:
            lru.move_to_end(key)
            stats.hits += 1
            return lru[key]
        state = self._restore(traj, episode, prefix)
        out = Branch(state=state, next=self._advance(action))
        stats.steps += 1
        if self.caching:
            lru[key] = out
            while len(lru) > BRANCH_CACHE:
                lru.popitem(last=False)
        return out

    def admissible_at(self, traj: Trajectory, step: int) -> list[str] | None:
        """The admissible actions at the state before `traj.steps[step]`, restored by replay (through
        the cursor: a trajectory's states asked in order cost one replay in all, plus the listing).
        What collect filters candidates by where a trajectory records no list (ScienceWorld, whose
        enumeration is too costly to make at every step). ReplayDiverged as for branch()."""
        self._check_step(traj, step)
        obs = self._restore(traj, self._episode_of(traj), tuple(s.action for s in traj.steps[:step]))
        return obs.admissible if obs.admissible is not None else self.admissible()

    def _check_step(self, traj: Trajectory, step: int) -> None:
        if traj.env != self.name:
            raise EnvError(f"branch: {traj.episode_id} is a {traj.env} trajectory, not {self.name}'s")
        if not 0 <= step < len(traj.steps):
            raise EnvError(f"branch: step {step} is not a state of {traj.episode_id} "
                           f"({len(traj.steps)} steps: 0-{len(traj.steps) - 1})")

    def _restore(self, traj: Trajectory, episode: str, prefix: tuple[str, ...]) -> Observation:
        stats, n = self.replay_stats, len(self._played)
        if (self.caching and self._episode == episode and self._now is not None and n <= len(prefix)
                and tuple(self._played) == prefix[:n]):
            stats.forward += 1
            obs = self._now
            self._check(traj, n, obs)
        else:
            stats.resets += 1
            obs, n = self.reset(episode), 0
            self._check(traj, 0, obs)
        for i in range(n, len(prefix)):
            obs = self._advance(prefix[i])
            stats.steps += 1
            self._check(traj, i + 1, obs)
        return obs

    def _check(self, traj: Trajectory, i: int, obs: Observation) -> None:
        if not alike(obs.text, traj.steps[i].observation):
            raise ReplayDiverged(f"branch: expert trajectory {traj.episode_id} does not replay in {self.name}: "
                           f"after {i} of its actions the observation differs from the recorded one "
                           f"({obs.text[:80]!r} vs {traj.steps[i].observation[:80]!r}); branch only trajectories "
                           "recorded in this environment (e.g. by its own expert)")
